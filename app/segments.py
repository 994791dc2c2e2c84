"""The transcript under review as a Qt list model: one row per segment.

Editing a row goes through ``Transcript.with_segment_text`` (the one edit the
engine defines) and reports the new transcript with ``transcriptEdited``. The
model also knows which segment is playing, what the find bar looks for, and
which words are hotword hits, and renders a row's text as HTML with those marked.
"""

from __future__ import annotations

import bisect
import html
import re

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from app.jobs import format_clock
from engine.transcript import Segment, Transcript

HOTWORD_COLOR = "#2456c9"
FIND_BACKGROUND = "#ffe8a3"

_ROOT = QModelIndex()  # the invisible root: a default argument for rowCount


def hotword_spans(text: str, hotwords: tuple[str, ...]) -> list[tuple[int, int]]:
    """Character spans of ``text`` that spell a hotword (case-insensitive, whole words only)."""
    terms = sorted({t for t in hotwords if t.strip()}, key=len, reverse=True)  # longest first: "New York Times" over "New York"
    if not terms:
        return []
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE)
    return [match.span() for match in pattern.finditer(text)]


def find_spans(text: str, needle: str) -> list[tuple[int, int]]:
    if not needle:
        return []
    return [match.span() for match in re.finditer(re.escape(needle), text, re.IGNORECASE)]


def marked_html(text: str, hot: list[tuple[int, int]], found: list[tuple[int, int]]) -> str:
    """``text`` as HTML with hotword hits in bold accent colour and find matches on a yellow ground."""
    flags = [0] * len(text)  # bit 1: hotword, bit 2: find match
    for start, end in hot:
        for i in range(start, end):
            flags[i] |= 1
    for start, end in found:
        for i in range(start, end):
            flags[i] |= 2
    parts = []
    i = 0
    while i < len(text):
        j = i
        while j < len(text) and flags[j] == flags[i]:
            j += 1
        piece = html.escape(text[i:j])
        style = []
        if flags[i] & 1:
            style.append(f"color:{HOTWORD_COLOR}; font-weight:600")
        if flags[i] & 2:
            style.append(f"background-color:{FIND_BACKGROUND}")
        parts.append(f'<span style="{"; ".join(style)}">{piece}</span>' if style else piece)
        i = j
    return "".join(parts)


class SegmentsModel(QAbstractListModel):
    StartRole = Qt.ItemDataRole.UserRole + 1  # float seconds
    EndRole = Qt.ItemDataRole.UserRole + 2
    TimeLabelRole = Qt.ItemDataRole.UserRole + 3  # "1:05"
    HtmlRole = Qt.ItemDataRole.UserRole + 4
    HotwordHitsRole = Qt.ItemDataRole.UserRole + 5  # list[str]: the hotwords this segment contains
    IsCurrentRole = Qt.ItemDataRole.UserRole + 6  # bool: the segment being played

    transcriptEdited = Signal(object)  # Transcript, after the user changed a segment's text

    def __init__(self, parent=None):
        super().__init__(parent)
        self._transcript: Transcript | None = None
        self._hotwords: tuple[str, ...] = ()
        self._current_row = -1
        self._find_text = ""
        self._starts: list[float] = []

    # -- Qt model interface --------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        if parent.isValid() or self._transcript is None:
            return 0
        return len(self._transcript.segments)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < self.rowCount():
            return None
        segment = self._transcript.segments[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return segment.text.strip()
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{format_clock(segment.start_s)} – {format_clock(segment.end_s)} · click to play, double-click to edit"
        if role == self.StartRole:
            return segment.start_s
        if role == self.EndRole:
            return segment.end_s
        if role == self.TimeLabelRole:
            return format_clock(segment.start_s)
        if role == self.HtmlRole:
            text = segment.text.strip()
            return marked_html(text, hotword_spans(text, self._hotwords), find_spans(text, self._find_text))
        if role == self.HotwordHitsRole:
            text = segment.text.strip()
            return [text[start:end] for start, end in hotword_spans(text, self._hotwords)]
        if role == self.IsCurrentRole:
            return index.row() == self._current_row
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def setData(self, index: QModelIndex | QPersistentModelIndex, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or self._transcript is None:
            return False
        text = " ".join(str(value).split())  # one line per segment, as every export writes it
        edited = self._transcript.with_segment_text(index.row(), text)
        if edited is self._transcript:
            return False
        self._transcript = edited
        self.dataChanged.emit(index, index)
        self.transcriptEdited.emit(edited)
        return True

    # -- what the review panel drives ------------------------------------------------

    @property
    def transcript(self) -> Transcript | None:
        return self._transcript

    @property
    def current_row(self) -> int:
        return self._current_row

    def set_transcript(self, transcript: Transcript | None, hotwords: tuple[str, ...] = ()) -> None:
        self.beginResetModel()
        self._transcript = transcript
        self._hotwords = tuple(hotwords)
        self._current_row = -1
        self._starts = [s.start_s for s in transcript.segments] if transcript is not None else []
        self.endResetModel()

    def append_segment(self, segment: Segment, duration_s: float | None = None) -> None:
        """A live segment from a running job."""
        previous = self._transcript.segments if self._transcript is not None else ()
        row = len(previous)
        self.beginInsertRows(QModelIndex(), row, row)
        self._transcript = Transcript(segments=(*previous, segment), duration_s=max(segment.end_s, duration_s or 0.0))
        self._starts.append(segment.start_s)
        self.endInsertRows()

    def row_at_time(self, seconds: float) -> int:
        """The segment playing at ``seconds``: the last one starting at or before it (-1 before the first)."""
        return bisect.bisect_right(self._starts, seconds + 1e-6) - 1

    def set_current_row(self, row: int) -> None:
        if row == self._current_row:
            return
        old, self._current_row = self._current_row, row
        for changed in (old, row):
            if 0 <= changed < self.rowCount():
                index = self.index(changed)
                self.dataChanged.emit(index, index, [self.IsCurrentRole])

    def set_find_text(self, text: str) -> None:
        self._find_text = text
        if self.rowCount():
            self.dataChanged.emit(self.index(0), self.index(self.rowCount() - 1), [self.HtmlRole])

    def matching_rows(self) -> list[int]:
        if not self._find_text or self._transcript is None:
            return []
        needle = self._find_text.casefold()
        return [row for row, segment in enumerate(self._transcript.segments) if needle in segment.text.casefold()]
