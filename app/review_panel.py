"""Review and correct a transcript while listening to it.

A list of segments (time on the left, text on the right, hotword hits marked),
a find bar, and a transport bar. Clicking a segment plays from its start; the
segment being played is highlighted and kept in view; double-click (or F2)
edits a segment's text in place. Playback actions carry keyboard shortcuts and
are exposed for the window's menu.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QAbstractTextDocumentLayout, QAction, QColor, QKeySequence, QPainter, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPlainTextEdit,
    QSlider,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.jobs import format_clock
from app.player import SPEEDS, Player
from app.segments import SegmentsModel

TIME_COLUMN_PX = 64
PAD_X, PAD_Y = 14, 9
CURRENT_BACKGROUND = QColor("#e9f0fd")
CURRENT_BAR = QColor("#2456c9")
SELECTED_BACKGROUND = QColor("#f1f3f6")


class _SegmentEditor(QPlainTextEdit):
    """Multi-line editing of one segment; Enter saves, Shift+Enter is a line break, Esc cancels."""

    accepted = Signal()

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.accepted.emit()
            return
        super().keyPressEvent(event)


class SegmentDelegate(QStyledItemDelegate):
    """Paints a segment as a time stamp and wrapped rich text; edits it with a _SegmentEditor.

    Heights are cached by (text, width): QListView asks every row's height
    whenever a row is added, and laying out a QTextDocument per row each time
    would stall the GUI on long transcripts.
    """

    _HEIGHT_CACHE_LIMIT = 20000

    def __init__(self, parent=None):
        super().__init__(parent)
        self._heights: dict[tuple[str, int, str], int] = {}

    def _document(self, option: QStyleOptionViewItem, index: QModelIndex, width: int) -> QTextDocument:
        document = QTextDocument()
        document.setDefaultFont(option.font)
        document.setDocumentMargin(0)
        document.setHtml(index.data(SegmentsModel.HtmlRole) or "")
        document.setTextWidth(max(50, width))
        return document

    def _text_width(self, option: QStyleOptionViewItem) -> int:
        return option.rect.width() - TIME_COLUMN_PX - 2 * PAD_X

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        width = option.rect.width() if option.rect.width() > 0 else 600
        key = (index.data(SegmentsModel.HtmlRole) or "", width, option.font.key())
        height = self._heights.get(key)
        if height is None:
            option = QStyleOptionViewItem(option)
            option.rect = QRect(0, 0, width, 0)
            height = int(self._document(option, index, self._text_width(option)).size().height()) + 2 * PAD_Y
            if len(self._heights) >= self._HEIGHT_CACHE_LIMIT:
                self._heights.clear()
            self._heights[key] = height
        return QSize(width, height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        rect = option.rect
        current = bool(index.data(SegmentsModel.IsCurrentRole))
        if current:
            painter.fillRect(rect, CURRENT_BACKGROUND)
            painter.fillRect(QRect(rect.left(), rect.top(), 3, rect.height()), CURRENT_BAR)
        elif option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(rect, SELECTED_BACKGROUND)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(rect, QColor("#f7f8fa"))

        time_font = option.font
        painter.setFont(time_font)
        painter.setPen(CURRENT_BAR if current else option.palette.color(QPalette.ColorRole.PlaceholderText))
        time_rect = QRect(rect.left() + PAD_X, rect.top() + PAD_Y, TIME_COLUMN_PX - 8, option.fontMetrics.height())
        painter.drawText(time_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, index.data(SegmentsModel.TimeLabelRole) or "")

        document = self._document(option, index, self._text_width(option))
        painter.translate(rect.left() + PAD_X + TIME_COLUMN_PX, rect.top() + PAD_Y)
        context = QAbstractTextDocumentLayout.PaintContext()
        context.palette.setColor(QPalette.ColorRole.Text, option.palette.color(QPalette.ColorRole.Text))
        document.documentLayout().draw(painter, context)
        painter.restore()

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> QWidget:
        editor = _SegmentEditor(parent)
        editor.setObjectName("segmentEditor")
        editor.accepted.connect(lambda: (self.commitData.emit(editor), self.closeEditor.emit(editor)))
        return editor

    def setEditorData(self, editor: QWidget, index: QModelIndex) -> None:
        editor.setPlainText(index.data(Qt.ItemDataRole.EditRole) or "")
        editor.selectAll()

    def setModelData(self, editor: QWidget, model, index: QModelIndex) -> None:
        model.setData(index, editor.toPlainText(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        rect = option.rect
        editor.setGeometry(QRect(rect.left() + TIME_COLUMN_PX + PAD_X - 6, rect.top() + 2, rect.width() - TIME_COLUMN_PX - PAD_X, rect.height() - 4))


class SegmentView(QListView):
    """A list whose rows re-measure their wrapped height when the width changes."""

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.scheduleDelayedItemsLayout()


class ReviewPanel(QWidget):
    playbackError = Signal(str)

    def __init__(self, player: Player | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = SegmentsModel(self)
        self.player = player or Player(self)
        self._follow = True

        self.find_edit = QLineEdit(placeholderText="Find in transcript")
        self.find_edit.setClearButtonEnabled(True)
        self.find_edit.textChanged.connect(self._on_find_text)
        self.find_edit.returnPressed.connect(self.find_next)
        self.find_label = QLabel()
        self.find_label.setObjectName("hint")
        self.find_label.hide()
        find_row = QHBoxLayout()
        find_row.setContentsMargins(0, 0, 0, 0)
        find_row.addWidget(self.find_edit, 1)
        find_row.addWidget(self.find_label)

        self.view = SegmentView()
        self.view.setObjectName("segments")
        self.view.setModel(self.model)
        self.view.setItemDelegate(SegmentDelegate(self.view))
        self.view.setUniformItemSizes(False)
        self.view.setWordWrap(True)
        self.view.setMouseTracking(True)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.view.clicked.connect(self._on_clicked)
        self.empty_label = QLabel("The transcript appears here as it is written.")
        self.empty_label.setObjectName("emptyState")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)

        # Transport
        self.play_action = self._action("Play", "Ctrl+Space", lambda: self.player.toggle(), "Play or pause")
        self.back_action = self._action("Back 5 s", "Ctrl+J", lambda: self.player.skip_back(), "Jump back five seconds")
        self.faster_action = self._action("Faster", "Ctrl+]", lambda: self._step_rate(1), "Play faster")
        self.slower_action = self._action("Slower", "Ctrl+[", lambda: self._step_rate(-1), "Play slower")
        self.find_action = self._action("Find…", QKeySequence.StandardKey.Find, lambda: self._focus_find(), "Find in transcript")
        back_button = QToolButton()
        back_button.setDefaultAction(self.back_action)
        back_button.setText("−5 s")
        self.play_button = QToolButton()
        self.play_button.setObjectName("playButton")
        self.play_button.setDefaultAction(self.play_action)
        self.position_label = QLabel("0:00 / 0:00")
        self.position_label.setObjectName("clock")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.sliderMoved.connect(lambda ms: self.player.seek(ms / 1000))
        self.speed_combo = QComboBox()
        self.speed_combo.setToolTip("Playback speed (Ctrl+[ and Ctrl+])")
        for speed in SPEEDS:
            self.speed_combo.addItem(f"{speed:g}×", speed)
        self.speed_combo.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_combo.activated.connect(lambda i: self.player.set_rate(self.speed_combo.itemData(i)))
        transport = QHBoxLayout()
        transport.setContentsMargins(0, 0, 0, 0)
        transport.addWidget(self.play_button)
        transport.addWidget(back_button)
        transport.addWidget(self.position_label)
        transport.addWidget(self.slider, 1)
        transport.addWidget(self.speed_combo)
        self.transport = QWidget()
        self.transport.setObjectName("transport")
        self.transport.setLayout(transport)
        if not self.player.available:
            self.transport.setEnabled(False)
            self.transport.setToolTip(self.player.unavailable_reason)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addLayout(find_row)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.empty_label, 1)
        layout.addWidget(self.transport)

        self.player.positionChanged.connect(self._on_position)
        self.player.durationChanged.connect(lambda s: self.slider.setRange(0, int(s * 1000)))
        self.player.playingChanged.connect(lambda playing: self.play_action.setText("Pause" if playing else "Play"))
        self.player.rateChanged.connect(self._on_rate)
        self.player.errorOccurred.connect(self.playbackError)
        self.model.modelReset.connect(self._update_empty)
        self.model.rowsInserted.connect(self._update_empty)
        self._update_empty()

    def actions_for_menu(self) -> list[QAction]:
        return [self.play_action, self.back_action, self.faster_action, self.slower_action]

    # -- what the window drives -----------------------------------------------------

    def show_job(self, audio_path: Path | None, transcript, hotwords: tuple[str, ...]) -> None:
        self.player.set_source(audio_path)
        self.model.set_transcript(transcript, hotwords)
        self.model.set_find_text(self.find_edit.text())
        self._update_find_label()

    def play_segment(self, row: int) -> None:
        start_s = self.model.index(row).data(SegmentsModel.StartRole)
        if start_s is not None:
            self.model.set_current_row(row)
            self.player.play_from(start_s)

    def find_next(self, backwards: bool = False) -> int:
        """Select the next segment containing the find text; returns its row or -1."""
        rows = self.model.matching_rows()
        if not rows:
            return -1
        current = self.view.currentIndex().row()
        if backwards:
            before = [r for r in rows if r < current]
            row = before[-1] if before else rows[-1]
        else:
            after = [r for r in rows if r > current]
            row = after[0] if after else rows[0]
        index = self.model.index(row)
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        self._update_find_label(rows.index(row) + 1)
        return row

    # -- internals ----------------------------------------------------------------------

    def _action(self, text: str, shortcut, slot, tip: str) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})")
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _step_rate(self, steps: int) -> None:
        self.player.step_rate(steps)

    def _on_rate(self, rate: float) -> None:
        for i in range(self.speed_combo.count()):
            if abs(self.speed_combo.itemData(i) - rate) < 1e-6:
                self.speed_combo.setCurrentIndex(i)

    def _focus_find(self) -> None:
        self.find_edit.setFocus()
        self.find_edit.selectAll()

    def _on_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.play_segment(index.row())

    def _on_position(self, seconds: float) -> None:
        duration = self.player.duration_s
        self.position_label.setText(f"{format_clock(seconds)} / {format_clock(duration)}")
        if not self.slider.isSliderDown():
            self.slider.setValue(int(seconds * 1000))
        row = self.model.row_at_time(seconds)
        if row != self.model.current_row:
            self.model.set_current_row(row)
            editing = self.view.state() == QAbstractItemView.State.EditingState
            if row >= 0 and self._follow and not editing:
                self.view.scrollTo(self.model.index(row), QAbstractItemView.ScrollHint.EnsureVisible)

    def _on_find_text(self, text: str) -> None:
        self.model.set_find_text(text)
        self._update_find_label()

    def _update_find_label(self, position: int | None = None) -> None:
        self.find_label.setVisible(bool(self.find_edit.text()))
        if not self.find_edit.text():
            return
        count = len(self.model.matching_rows())
        if count == 0:
            self.find_label.setText("No matches")
        elif position is not None:
            self.find_label.setText(f"{position} of {count}")
        else:
            self.find_label.setText(f"{count} segment{'s' if count != 1 else ''}")

    def _update_empty(self, *args) -> None:
        empty = self.model.rowCount() == 0
        self.view.setVisible(not empty)
        self.empty_label.setVisible(empty)
