"""How the job list looks: one card per job with a status dot, its name, a status line and progress."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.jobs import JobsModel, JobStatus

STATUS_COLORS = {
    JobStatus.READY.value: QColor("#9aa3af"),
    JobStatus.QUEUED.value: QColor("#9aa3af"),
    JobStatus.RUNNING.value: QColor("#2456c9"),
    JobStatus.DONE.value: QColor("#2f9e6b"),
    JobStatus.FAILED.value: QColor("#d14343"),
    JobStatus.CANCELLED.value: QColor("#c08a00"),
}
ROW_HEIGHT = 62


class JobDelegate(QStyledItemDelegate):
    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(option.rect.width(), ROW_HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = QRectF(option.rect.adjusted(8, 3, -8, -3))
        if option.state & QStyle.StateFlag.State_Selected:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#e9f0fd"))
            painter.drawRoundedRect(card, 8, 8)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#f5f6f8"))
            painter.drawRoundedRect(card, 8, 8)

        status = index.data(JobsModel.StatusRole)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(STATUS_COLORS.get(status, QColor("#9aa3af")))
        dot_y = card.top() + 17
        painter.drawEllipse(QRectF(card.left() + 12, dot_y - 4, 8, 8))

        left = int(card.left()) + 30
        width = int(card.width()) - 42
        name_font = QFont(option.font)
        name_font.setWeight(QFont.Weight.DemiBold)
        painter.setFont(name_font)
        painter.setPen(QColor("#1d2330"))
        name = QFontMetrics(name_font).elidedText(index.data() or "", Qt.TextElideMode.ElideMiddle, width)
        painter.drawText(QRect(left, int(card.top()) + 8, width, 20), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)

        line_font = QFont(option.font)
        line_font.setPointSizeF(option.font.pointSizeF() * 0.9)
        painter.setFont(line_font)
        painter.setPen(QColor("#d14343") if status == JobStatus.FAILED.value else QColor("#6b7280"))
        line = QFontMetrics(line_font).elidedText(index.data(JobsModel.StatusLineRole) or "", Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRect(left, int(card.top()) + 28, width, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, line)

        fraction = index.data(JobsModel.ProgressRole)
        if status == JobStatus.RUNNING.value:
            bar = QRectF(left, card.bottom() - 9, width, 4)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#e2e5ea"))
            painter.drawRoundedRect(bar, 2, 2)
            if fraction:
                painter.setBrush(STATUS_COLORS[JobStatus.RUNNING.value])
                painter.drawRoundedRect(QRectF(bar.left(), bar.top(), bar.width() * fraction, bar.height()), 2, 2)
        painter.restore()


class JobListView(QListView):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("jobs")
        self.setItemDelegate(JobDelegate(self))
        self.setMouseTracking(True)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
