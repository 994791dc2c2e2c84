"""Hotword lists: names and terms the engine should expect, kept as named, saved lists.

``HotwordLibrary`` stores the lists in Settings. ``HotwordListModel`` is the
editable list of one list's terms. ``HotwordsPanel`` is the editor: pick a list,
add, remove, paste many, import or export a .txt file (one term per line, the
same format as the CLI's --hotwords). Every edit is saved at once.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QMessageBox,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.settings import Settings
from engine.errors import KeyscribeError
from engine.hotwords import parse_hotwords, read_hotwords

DEFAULT_LIST_NAME = "My hotwords"

_ROOT = QModelIndex()  # the invisible root: a default argument for rowCount


class HotwordLibrary:
    """Named hotword lists, persisted in Settings on every change."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def names(self) -> list[str]:
        return list(self.settings.hotword_lists)

    def get(self, name: str) -> tuple[str, ...]:
        return self.settings.hotword_lists.get(name, ())

    def save(self, name: str, terms: tuple[str, ...]) -> None:
        name = name.strip()
        if not name:
            raise ValueError("a hotword list needs a name")
        lists = self.settings.hotword_lists
        lists[name] = parse_hotwords("\n".join(terms))  # one rule for duplicates and blanks everywhere
        self.settings.hotword_lists = lists

    def delete(self, name: str) -> None:
        lists = self.settings.hotword_lists
        lists.pop(name, None)
        self.settings.hotword_lists = lists


class HotwordListModel(QAbstractListModel):
    """The terms of one list; editable in place. ``termsChanged`` fires after every edit."""

    termsChanged = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._terms: list[str] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._terms)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._terms):
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return self._terms[index.row()]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def setData(self, index: QModelIndex | QPersistentModelIndex, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        term = " ".join(str(value).split())
        others = {t.casefold() for i, t in enumerate(self._terms) if i != index.row()}
        if not term or term.casefold() in others:
            return False  # an empty or duplicate term would silently vanish on save
        self._terms[index.row()] = term
        self.dataChanged.emit(index, index)
        self.termsChanged.emit()
        return True

    def terms(self) -> tuple[str, ...]:
        return tuple(self._terms)

    def set_terms(self, terms: tuple[str, ...]) -> None:
        self.beginResetModel()
        self._terms = list(terms)
        self.endResetModel()

    def add_terms(self, terms: tuple[str, ...]) -> int:
        """Append the terms not already present (case-insensitive); returns how many were new."""
        seen = {t.casefold() for t in self._terms}
        new = []
        for term in (" ".join(t.split()) for t in terms):
            if term and term.casefold() not in seen:
                seen.add(term.casefold())
                new.append(term)
        if not new:
            return 0
        self.beginInsertRows(QModelIndex(), len(self._terms), len(self._terms) + len(new) - 1)
        self._terms.extend(new)
        self.endInsertRows()
        self.termsChanged.emit()
        return len(new)

    def remove_rows(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._terms[row]
            self.endRemoveRows()
        if rows:
            self.termsChanged.emit()


class HotwordsPanel(QWidget):
    """Editor for the saved lists. ``listsChanged`` fires when lists are added, removed or edited."""

    listsChanged = Signal()

    def __init__(self, library: HotwordLibrary, parent: QWidget | None = None):
        super().__init__(parent)
        self.library = library
        self.model = HotwordListModel(self)
        self.model.termsChanged.connect(self._save_current)

        title = QLabel("Hotwords")
        title.setObjectName("panelTitle")
        hint = QLabel("Names and terms the recording may contain. Pick a list for each job.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)

        self.list_combo = QComboBox()
        self.list_combo.setToolTip("The saved list you are editing")
        self.list_combo.setPlaceholderText("No saved lists")
        self.list_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.list_combo.setMinimumContentsLength(12)
        self.list_combo.currentTextChanged.connect(self._show_list)
        new_button = QToolButton(text="New")
        new_button.setToolTip("Start a new, empty list")
        new_button.clicked.connect(self._ask_new_list)
        more_menu = QMenu(self)
        more_menu.addAction("Import from .txt…", self._ask_import)
        more_menu.addAction("Export as .txt…", self._ask_export)
        more_menu.addSeparator()
        self.delete_list_action = more_menu.addAction("Delete this list…", self._ask_delete_list)
        more_button = QToolButton(text="⋯")
        more_button.setToolTip("Import, export or delete the list")
        more_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        more_button.setMenu(more_menu)

        self.term_edit = QLineEdit(placeholderText="Add a name or term, then Enter")
        self.term_edit.returnPressed.connect(self._add_typed_term)

        self.view = QListView()
        self.view.setObjectName("hotwordTerms")
        self.view.setModel(self.model)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)

        paste_button = QPushButton("Paste many…")
        paste_button.setToolTip("Paste a list, one term per line")
        paste_button.clicked.connect(self._ask_paste)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected terms")
        self.remove_button.clicked.connect(self.remove_selected)
        self.count_label = QLabel()
        self.count_label.setObjectName("hint")

        pick_row = QHBoxLayout()
        pick_row.addWidget(self.list_combo, 1)
        pick_row.addWidget(new_button)
        pick_row.addWidget(more_button)
        edit_row = QHBoxLayout()
        edit_row.addWidget(paste_button)
        edit_row.addWidget(self.remove_button)
        edit_row.addStretch(1)
        edit_row.addWidget(self.count_label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(8)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addLayout(pick_row)
        layout.addWidget(self.term_edit)
        layout.addWidget(self.view, 1)
        layout.addLayout(edit_row)
        self.reload(select=library.settings.current_hotword_list)

    # -- operations (also what tests drive) ---------------------------------------

    @property
    def current_list(self) -> str:
        return self.list_combo.currentText()

    def reload(self, select: str = "") -> None:
        names = self.library.names()
        self.list_combo.blockSignals(True)
        self.list_combo.clear()
        self.list_combo.addItems(names)
        if select in names:
            self.list_combo.setCurrentText(select)
        self.list_combo.blockSignals(False)
        self._show_list(self.list_combo.currentText())

    def new_list(self, name: str, terms: tuple[str, ...] = ()) -> None:
        self.library.save(name, terms)
        self.reload(select=name.strip())
        self.listsChanged.emit()

    def delete_list(self, name: str) -> None:
        self.library.delete(name)
        self.reload()
        self.listsChanged.emit()

    def add_terms_from_text(self, text: str) -> int:
        """Add every term of pasted text or a file's content; creates a list first if there is none."""
        terms = parse_hotwords(text)
        if not terms:
            return 0
        if not self.current_list:
            self.new_list(DEFAULT_LIST_NAME)
        return self.model.add_terms(terms)

    def import_file(self, path: Path) -> int:
        terms = read_hotwords(path)
        if not self.current_list:
            self.new_list(Path(path).stem)
        return self.model.add_terms(terms)

    def export_file(self, path: Path) -> None:
        Path(path).write_text("".join(term + "\n" for term in self.model.terms()), encoding="utf-8")

    def remove_selected(self) -> None:
        self.model.remove_rows([index.row() for index in self.view.selectionModel().selectedRows()])

    # -- internals -------------------------------------------------------------------

    def _show_list(self, name: str) -> None:
        self.model.set_terms(self.library.get(name) if name else ())
        self.library.settings.current_hotword_list = name
        self.delete_list_action.setEnabled(bool(name))
        self._update_count()

    def _save_current(self) -> None:
        if self.current_list:
            self.library.save(self.current_list, self.model.terms())
            self.listsChanged.emit()
        self._update_count()

    def _update_count(self) -> None:
        count = self.model.rowCount()
        self.count_label.setText("" if not self.current_list else f"{count} term{'s' if count != 1 else ''}")

    def _add_typed_term(self) -> None:
        if self.add_terms_from_text(self.term_edit.text()):
            self.view.scrollToBottom()
        self.term_edit.clear()

    def _ask_new_list(self) -> None:
        name, ok = QInputDialog.getText(self, "New hotword list", "Name of the list:")
        if ok and name.strip():
            if name.strip() in self.library.names():
                QMessageBox.information(self, "New hotword list", f"A list called “{name.strip()}” exists already.")
                return
            self.new_list(name)

    def _ask_delete_list(self) -> None:
        name = self.current_list
        answer = QMessageBox.question(self, "Delete hotword list", f"Delete the list “{name}”? Jobs keep the terms they already use.")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_list(name)

    def _ask_paste(self) -> None:
        text, ok = QInputDialog.getMultiLineText(self, "Paste hotwords", "One name or term per line (# starts a comment):")
        if ok:
            self.add_terms_from_text(text)

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import hotwords", str(Path.home()), "Text files (*.txt);;All files (*)")
        if path:
            try:
                self.import_file(Path(path))
            except KeyscribeError as err:
                QMessageBox.warning(self, "Import hotwords", str(err))

    def _ask_export(self) -> None:
        default = Path.home() / f"{self.current_list or 'hotwords'}.txt"
        path, _ = QFileDialog.getSaveFileName(self, "Export hotwords", str(default), "Text files (*.txt)")
        if path:
            try:
                self.export_file(Path(path))
            except OSError as err:
                QMessageBox.warning(self, "Export hotwords", f"Could not write {path}: {err.strerror or err}.")
