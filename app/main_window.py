"""The main window: jobs on the left, the selected job in the middle, hotword lists on the right.

The window owns no engine code: jobs live in the JobsModel, transcription runs
through the TranscriptionQueue (worker thread), recording through the
RecordDialog, and every job is saved as a project (debounced) whenever it changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.engine_backend import Backend, EngineStatus
from app.hotwords_panel import HotwordLibrary, HotwordsPanel
from app.jobs import Job, JobsModel, JobStatus
from app.jobs_view import JobListView
from app.project_store import ProjectStore
from app.record_dialog import RecordDialog
from app.recorder import RecorderError, list_input_devices
from app.review_panel import ReviewPanel
from app.segments import hotword_spans
from app.settings import Settings
from app.settings_dialog import SettingsDialog
from app.worker import TranscriptionQueue
from engine.export import FORMATS, export

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".mp4", ".webm", ".mkv", ".mov", ".wma", ".aiff", ".aif"}
AUDIO_FILTER = "Audio and video (" + " ".join(f"*{e}" for e in sorted(AUDIO_EXTENSIONS)) + ");;All files (*)"
AUTOSAVE_MS = 800
NO_HOTWORDS = "No hotwords"


def recording_problem() -> str:
    """Why recording cannot work on this machine, or "" when a microphone is there."""
    try:
        list_input_devices()
    except RecorderError as err:
        return str(err)
    return ""


class MainWindow(QMainWindow):
    engineStatusShown = Signal(object)  # EngineStatus, once the window shows it (tests wait on this)

    def __init__(self, settings: Settings, backend: Backend, store: ProjectStore, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyscribe")
        self.setAcceptDrops(True)
        self.settings = settings
        self.store = store
        self.jobs = JobsModel(self)
        self.queue = TranscriptionQueue(self.jobs, backend, settings.engine, self)
        self.library = HotwordLibrary(settings)
        self.engine_status: EngineStatus | None = None
        self.recording_problem = recording_problem()
        self._current_id: str | None = None
        self._dirty: set[str] = set()
        self._saved_status: dict[str, JobStatus] = {}
        self._autosave = QTimer(self, singleShot=True, interval=AUTOSAVE_MS)
        self._autosave.timeout.connect(self.save_now)

        self._build_actions()
        self._build_ui()
        self._build_menus()
        self.jobs.jobChanged.connect(self._on_job_changed)
        self.jobs.jobRemoved.connect(self._on_job_removed)
        self.jobs.rowsInserted.connect(self._update_list_visibility)
        self.jobs.rowsRemoved.connect(self._update_list_visibility)
        self.queue.engineChecked.connect(self._on_engine_checked)
        self.queue.engineCheckFailed.connect(lambda message: self._set_banner([message]))
        self.review.model.transcriptEdited.connect(self._on_transcript_edited)
        self.review.playbackError.connect(lambda message: self.statusBar().showMessage(message, 8000))
        self.hotwords_panel.listsChanged.connect(self._refresh_hotword_combo)

        for project in store.load_all():
            self.jobs.add_job(Job.from_project(project))
        self._dirty.clear()  # just read from disk
        if self.jobs.rowCount():
            self.select_job(self.jobs.jobs()[-1].job_id)
        self._show_job(self._current_id)
        if settings.window_geometry:
            self.restoreGeometry(settings.window_geometry)
        else:
            self.resize(1280, 800)
        self.queue.check_engine()

    # -- building ----------------------------------------------------------------------

    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut=None) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            return act

        self.open_action = action("Add files…", self.ask_open_files, QKeySequence.StandardKey.Open)
        self.record_action = action("Record…", self.open_recorder, "Ctrl+R")
        self.settings_action = action("Settings…", self.open_settings, "Ctrl+,")
        self.quit_action = action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.transcribe_action = action("Transcribe", lambda: self.transcribe(self._current_id), "Ctrl+T")
        self.cancel_action = action("Cancel", lambda: self.cancel(self._current_id), "Ctrl+.")
        self.retry_action = action("Retry", lambda: self.transcribe(self._current_id))
        self.remove_action = action("Remove from list", lambda: self.remove(self._current_id))
        self.export_actions = {fmt: action(fmt.upper() + (" (Word)" if fmt == "docx" else ""), lambda _=False, f=fmt: self.ask_export(f)) for fmt in FORMATS}

    def _build_ui(self) -> None:
        # Sidebar: the job queue.
        jobs_title = QLabel("Jobs")
        jobs_title.setObjectName("panelTitle")
        add_button = QPushButton("Add files")
        add_button.setObjectName("primary")
        add_button.clicked.connect(self.ask_open_files)
        record_button = QPushButton("● Record")
        record_button.clicked.connect(self.open_recorder)
        self.job_list = JobListView()
        self.job_list.setModel(self.jobs)
        self.job_list.addActions([self.transcribe_action, self.cancel_action, self.retry_action, self.remove_action])
        self.job_list.selectionModel().currentChanged.connect(lambda current, _prev: self._select_row(current.row()))
        self.drop_hint = QLabel("Drop audio or video files here,\nor add them with the button above.")
        self.drop_hint.setObjectName("emptyState")
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.cancel(self._current_id))
        self.retry_button = QPushButton("Retry")
        self.retry_button.clicked.connect(lambda: self.transcribe(self._current_id))
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.retry_button)
        top = QHBoxLayout()
        top.addWidget(add_button, 1)
        top.addWidget(record_button)
        sidebar = QFrame(objectName="sidebar")
        side = QVBoxLayout(sidebar)
        side.setContentsMargins(8, 16, 8, 12)
        side.setSpacing(10)
        header = QHBoxLayout()
        header.setContentsMargins(8, 0, 8, 0)
        header.addWidget(jobs_title)
        side.addLayout(header)
        top.setContentsMargins(8, 0, 8, 0)
        side.addLayout(top)
        side.addWidget(self.job_list, 1)
        side.addWidget(self.drop_hint, 1)
        buttons.setContentsMargins(8, 0, 8, 0)
        side.addLayout(buttons)

        # Centre: the selected job.
        self.title_label = QLabel(objectName="jobTitle")
        self.meta_label = QLabel(objectName="meta")
        self.export_button = QToolButton(text="Export  ▾")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        export_menu.addActions(list(self.export_actions.values()))
        self.export_button.setMenu(export_menu)
        self.start_button = QPushButton("Transcribe", objectName="primary")
        self.start_button.clicked.connect(self._on_start_button)
        title_row = QHBoxLayout()
        title_col = QVBoxLayout()
        title_col.setSpacing(2)
        title_col.addWidget(self.title_label)
        title_col.addWidget(self.meta_label)
        title_row.addLayout(title_col, 1)
        title_row.addWidget(self.export_button)
        title_row.addWidget(self.start_button)

        self.hotword_combo = QComboBox()
        self.hotword_combo.setMinimumWidth(200)
        self.hotword_combo.currentIndexChanged.connect(self._on_hotword_choice)
        self.context_edit = QPlainTextEdit(placeholderText="Meeting context: who speaks, the topic, names and jargon to expect…")
        self.context_edit.setFixedHeight(64)
        self.context_edit.textChanged.connect(self._on_context_edited)
        hotword_label = QLabel("Hotword list")
        hotword_label.setObjectName("hint")
        context_label = QLabel("Context")
        context_label.setObjectName("hint")
        setup = QHBoxLayout()
        setup.setSpacing(12)
        pick = QVBoxLayout()
        pick.addWidget(hotword_label)
        pick.addWidget(self.hotword_combo)
        pick.addStretch(1)
        ctx = QVBoxLayout()
        ctx.addWidget(context_label)
        ctx.addWidget(self.context_edit)
        setup.addLayout(pick)
        setup.addLayout(ctx, 1)

        self.review = ReviewPanel()
        self.job_card = QFrame(objectName="card")
        card = QVBoxLayout(self.job_card)
        card.setContentsMargins(20, 18, 20, 14)
        card.setSpacing(14)
        card.addLayout(title_row)
        card.addLayout(setup)
        card.addWidget(self.review, 1)
        self.no_job_label = QLabel(
            "Add audio or video files, drop them on this window, or record.\n"
            "Then pick a hotword list, describe the recording, and press Transcribe.",
            objectName="emptyState",
        )
        self.no_job_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(16, 16, 16, 16)
        centre_layout.addWidget(self.job_card, 1)
        centre_layout.addWidget(self.no_job_label, 1)

        # Right: hotword lists.
        self.hotwords_panel = HotwordsPanel(self.library)
        hotwords_pane = QFrame(objectName="hotwordsPane")
        QVBoxLayout(hotwords_pane).addWidget(self.hotwords_panel)
        hotwords_pane.layout().setContentsMargins(0, 0, 0, 0)

        splitter = self.splitter = QSplitter()
        splitter.setHandleWidth(1)
        splitter.addWidget(sidebar)
        splitter.addWidget(centre)
        splitter.addWidget(hotwords_pane)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setStretchFactor(2, 0)
        self._sized = False
        splitter.setCollapsible(1, False)

        # Banner for what the user should know (no model, no GPU, no microphone).
        self.banner = QFrame(objectName="banner")
        self.banner_label = QLabel(objectName="bannerText")
        self.banner_label.setWordWrap(True)
        dismiss = QToolButton(text="✕", objectName="bannerClose")
        dismiss.setAutoRaise(True)
        dismiss.setToolTip("Hide")
        dismiss.clicked.connect(self.banner.hide)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(16, 8, 8, 8)
        banner_layout.addWidget(self.banner_label, 1)
        banner_layout.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.banner.hide()

        root = QWidget()
        root_layout = QVBoxLayout(root)
        root_layout.setContentsMargins(0, 0, 0, 0)
        root_layout.setSpacing(0)
        root_layout.addWidget(self.banner)
        root_layout.addWidget(splitter, 1)
        self.setCentralWidget(root)

        self.engine_label = QLabel("Checking the engine…")
        self.statusBar().addPermanentWidget(self.engine_label)
        self.statusBar().setSizeGripEnabled(False)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addActions([self.open_action, self.record_action])
        export_menu = file_menu.addMenu("Export")
        export_menu.addActions(list(self.export_actions.values()))
        file_menu.addSeparator()
        file_menu.addActions([self.settings_action, self.quit_action])
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self.review.find_action)
        job_menu = self.menuBar().addMenu("&Job")
        job_menu.addActions([self.transcribe_action, self.cancel_action, self.retry_action, self.remove_action])
        play_menu = self.menuBar().addMenu("&Playback")
        play_menu.addActions(self.review.actions_for_menu())

    # -- jobs ------------------------------------------------------------------------------

    def add_files(self, paths: list[Path | str]) -> list[str]:
        """Add audio files as Ready jobs with the hotword list picked in the panel; returns their ids."""
        ids, skipped = [], []
        list_name = self.hotwords_panel.current_list
        for path in map(Path, paths):
            if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
                ids.append(self.jobs.add_file(path, list_name, self.library.get(list_name) if list_name else ()))
            else:
                skipped.append(path.name)
        if skipped:
            self.statusBar().showMessage(f"Not added (not an audio or video file): {', '.join(skipped)}", 8000)
        if ids:
            self.select_job(ids[-1])
        return ids

    def select_job(self, job_id: str | None) -> None:
        if job_id is None:
            return
        index = self.jobs.index(self.jobs.row_of(job_id))
        self.job_list.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def transcribe(self, job_id: str | None) -> None:
        if job_id is None:
            return
        job = self.jobs.job(job_id)
        if not job.status.can_start:
            return
        if job.status is JobStatus.DONE and job.edited:
            answer = QMessageBox.question(self, "Transcribe again", "Transcribing again replaces your corrections to this transcript. Continue?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        if job.hotword_list in self.library.names():  # the list may have been edited since it was picked
            self.jobs.update(job_id, hotwords=self.library.get(job.hotword_list))
        self.queue.enqueue(job_id)

    def cancel(self, job_id: str | None) -> None:
        if job_id is not None:
            self.queue.cancel(job_id)

    def remove(self, job_id: str | None) -> None:
        if job_id is None:
            return
        self.queue.cancel(job_id)
        row = self.jobs.row_of(job_id)
        self.jobs.remove(job_id)
        if self.jobs.rowCount():
            self.select_job(self.jobs.jobs()[min(row, self.jobs.rowCount() - 1)].job_id)
        else:
            self._select_row(-1)

    def export_job(self, job_id: str, path: Path, fmt: str) -> Path:
        job = self.jobs.job(job_id)
        if job.transcript is None:
            raise ValueError(f"{job.name} has no transcript yet: transcribe it first.")
        return export(job.transcript, path, fmt, title=job.audio_path.stem)

    def save_now(self) -> None:
        for job_id in sorted(self._dirty):
            try:
                job = self.jobs.job(job_id)
                self.store.save(job.to_project())
                self._saved_status[job_id] = job.status
            except KeyError:
                continue  # removed meanwhile
            except OSError as err:
                self.statusBar().showMessage(f"Could not save the project for this job: {err}", 10000)
        self._dirty.clear()

    # -- user actions ------------------------------------------------------------------------

    def ask_open_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add recordings", str(Path.home()), AUDIO_FILTER)
        self.add_files(paths)

    def open_recorder(self) -> None:
        dialog = RecordDialog(preferred_device=self.settings.input_device, parent=self)
        dialog.recorded.connect(lambda path: (setattr(self.settings, "input_device", dialog.device_name), self.add_files([path])))
        dialog.open()

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.queue.check_engine()

    def ask_export(self, fmt: str) -> None:
        if self._current_id is None:
            return
        job = self.jobs.job(self._current_id)
        default = self.settings.output_dir / f"{job.audio_path.stem}.{fmt}"
        path, _ = QFileDialog.getSaveFileName(self, f"Export as {fmt.upper()}", str(default), f"{fmt.upper()} (*.{fmt})")
        if not path:
            return
        try:
            written = self.export_job(self._current_id, Path(path), fmt)
        except (OSError, ValueError, RuntimeError) as err:
            QMessageBox.warning(self, "Export", str(err))
            return
        self.settings.output_dir = written.parent
        self.statusBar().showMessage(f"Saved {written}", 6000)

    def _on_start_button(self) -> None:
        if self._current_id is None:
            return
        if self.jobs.job(self._current_id).status.can_cancel:
            self.cancel(self._current_id)
        else:
            self.transcribe(self._current_id)

    # -- keeping the view in step ----------------------------------------------------------------

    def _select_row(self, row: int) -> None:
        self._current_id = self.jobs.jobs()[row].job_id if 0 <= row < self.jobs.rowCount() else None
        self._show_job(self._current_id)

    def _update_list_visibility(self) -> None:
        has_jobs = self.jobs.rowCount() > 0
        self.job_list.setVisible(has_jobs)
        self.drop_hint.setVisible(not has_jobs)

    def _show_job(self, job_id: str | None) -> None:
        self._update_list_visibility()
        self.job_card.setVisible(job_id is not None)
        self.no_job_label.setVisible(job_id is None)
        if job_id is None:
            self.review.show_job(None, None, ())
            self._update_controls(None)
            return
        job = self.jobs.job(job_id)
        self.title_label.setText(job.name)
        self._refresh_hotword_combo()
        if self.context_edit.toPlainText() != job.context:
            self.context_edit.blockSignals(True)
            self.context_edit.setPlainText(job.context)
            self.context_edit.blockSignals(False)
        self.review.show_job(job.audio_path, job.transcript, job.hotwords)
        self._update_controls(job)

    def _update_controls(self, job: Job | None) -> None:
        status = job.status if job is not None else None
        self.meta_label.setText(self._meta_line(job) if job is not None else "")
        self.meta_label.setToolTip(str(job.audio_path) if job is not None else "")
        can_cancel = status is not None and status.can_cancel
        can_start = status is not None and status.can_start
        self.start_button.setText("Cancel" if can_cancel else {JobStatus.READY: "Transcribe", JobStatus.DONE: "Transcribe again"}.get(status, "Retry"))
        self.start_button.setObjectName("" if can_cancel else "primary")
        self.start_button.style().unpolish(self.start_button)
        self.start_button.style().polish(self.start_button)
        self.start_button.setEnabled(can_cancel or can_start)
        self.transcribe_action.setEnabled(status is JobStatus.READY)
        self.cancel_action.setEnabled(can_cancel)
        self.cancel_button.setEnabled(can_cancel)
        retry = status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DONE)
        self.retry_action.setEnabled(retry)
        self.retry_button.setEnabled(retry)
        self.remove_action.setEnabled(job is not None)
        has_text = job is not None and job.transcript is not None and bool(job.transcript.segments)
        self.export_button.setEnabled(has_text and status is not JobStatus.RUNNING)
        for act in self.export_actions.values():
            act.setEnabled(self.export_button.isEnabled())
        editable = status not in (JobStatus.RUNNING, JobStatus.QUEUED)
        self.hotword_combo.setEnabled(editable)
        self.context_edit.setReadOnly(not editable)

    @staticmethod
    def _meta_line(job: Job) -> str:
        parts = [job.status_line]
        if job.transcript is not None and job.status is not JobStatus.RUNNING:
            count = len(job.transcript.segments)
            parts.append(f"{count} segment{'s' if count != 1 else ''}")
            hits = sum(len(hotword_spans(s.text, job.hotwords)) for s in job.transcript.segments)
            if hits:
                parts.append(f"{hits} hotword hit{'s' if hits != 1 else ''}")
        return " · ".join(parts)

    def _on_job_changed(self, job_id: str) -> None:
        job = self.jobs.job(job_id)
        # While a job runs only its progress changes, and a restart reopens it as interrupted anyway
        # (the engine's journal keeps its segments): save its start and its end, not every tick.
        if job.status is not JobStatus.RUNNING or self._saved_status.get(job_id) is not JobStatus.RUNNING:
            self._dirty.add(job_id)
            self._autosave.start()
        if job_id != self._current_id:
            return
        self._update_controls(job)
        shown = self.review.model.transcript
        if job.transcript is shown:
            return
        if job.transcript is not None and shown is not None and len(job.transcript.segments) > len(shown.segments) \
                and job.transcript.segments[: len(shown.segments)] == shown.segments:
            for segment in job.transcript.segments[len(shown.segments):]:  # live segments: append, keep the scroll
                self.review.model.append_segment(segment, job.transcript.duration_s)
        else:
            self.review.show_job(job.audio_path, job.transcript, job.hotwords)

    def _on_job_removed(self, job_id: str) -> None:
        self._dirty.discard(job_id)
        self.store.delete(job_id)

    def _on_transcript_edited(self, transcript) -> None:
        if self._current_id is not None:
            self.jobs.update(self._current_id, transcript=transcript, edited=True)

    def _on_context_edited(self) -> None:
        if self._current_id is not None:
            self.jobs.update(self._current_id, context=self.context_edit.toPlainText())

    def _refresh_hotword_combo(self) -> None:
        job = self.jobs.job(self._current_id) if self._current_id is not None else None
        self.hotword_combo.blockSignals(True)
        self.hotword_combo.clear()
        self.hotword_combo.addItem(NO_HOTWORDS, "")
        for name in self.library.names():
            self.hotword_combo.addItem(f"{name} ({len(self.library.get(name))})", name)
        if job is not None and job.hotword_list and job.hotword_list not in self.library.names():
            self.hotword_combo.addItem(f"{job.hotword_list} (deleted, {len(job.hotwords)})", job.hotword_list)
        index = self.hotword_combo.findData(job.hotword_list if job is not None else "")
        self.hotword_combo.setCurrentIndex(max(index, 0))
        self.hotword_combo.blockSignals(False)

    def _on_hotword_choice(self, index: int) -> None:
        if self._current_id is None or index < 0:
            return
        name = self.hotword_combo.itemData(index) or ""
        hotwords = self.library.get(name) if name in self.library.names() else self.jobs.job(self._current_id).hotwords
        job = self.jobs.update(self._current_id, hotword_list=name, hotwords=hotwords if name else ())
        self.review.show_job(job.audio_path, job.transcript, job.hotwords)

    def _on_engine_checked(self, status: EngineStatus) -> None:
        self.engine_status = status
        self.engine_label.setText(f"{status.model} · {status.runtime}")
        self.engine_label.setToolTip("The model jobs use, and the device and precision it runs at")
        warnings = sorted(status.warnings, key=lambda line: "untrained" not in line)  # the one that matters most first
        if self.review.player.unavailable_reason:
            warnings.append(self.review.player.unavailable_reason)
        if self.recording_problem:
            warnings.append(self.recording_problem + " Importing files still works.")
        self._set_banner(warnings)
        self.engineStatusShown.emit(status)

    def _set_banner(self, lines: list[str]) -> None:
        self.banner_label.setText("\n".join(lines))
        self.banner.setVisible(bool(lines))

    # -- Qt events ----------------------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if self.add_files(paths):
            event.acceptProposedAction()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._sized:  # side panes at a reading-friendly width, the transcript gets the rest
            self._sized = True
            side_px, hotwords_px = 290, 280
            self.splitter.setSizes([side_px, max(400, self.splitter.width() - side_px - hotwords_px), hotwords_px])

    def closeEvent(self, event) -> None:
        self.save_now()
        self.settings.window_geometry = bytes(self.saveGeometry())
        self.settings.sync()
        self.queue.shutdown()
        super().closeEvent(event)
