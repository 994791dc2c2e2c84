"""The look: Fusion with a calm light palette, one accent colour and soft borders."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#2456c9"
TEXT = "#1d2330"
MUTED = "#6b7280"
BORDER = "#e2e5ea"
WINDOW = "#f4f5f7"
SURFACE = "#ffffff"

STYLESHEET = f"""
QMainWindow, QDialog {{ background: {WINDOW}; }}
QWidget {{ color: {TEXT}; }}
QLabel#hint, QLabel#meta {{ color: {MUTED}; }}
QLabel#panelTitle {{ font-size: 11pt; font-weight: 600; }}
QLabel#jobTitle {{ font-size: 15pt; font-weight: 600; }}
QLabel#bigClock {{ font-size: 26pt; font-weight: 300; }}
QLabel#clock {{ color: {MUTED}; min-width: 84px; }}
QLabel#emptyState {{ color: {MUTED}; font-size: 11pt; }}
QFrame#sidebar, QFrame#hotwordsPane {{ background: {SURFACE}; border: none; }}
QFrame#sidebar {{ border-right: 1px solid {BORDER}; }}
QFrame#hotwordsPane {{ border-left: 1px solid {BORDER}; }}
QFrame#card {{ background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 10px; }}
QFrame#banner {{ background: #fff7e0; border-bottom: 1px solid #f0dfa8; }}
QLabel#bannerText {{ color: #6b4e00; }}
QToolButton#bannerClose {{ background: transparent; border: none; color: #6b4e00; padding: 2px 6px; }}
QToolButton#bannerClose:hover {{ background: #f6e7b8; }}
QListView {{ background: {SURFACE}; border: none; outline: 0; }}
QListView#jobs::item {{ border: none; }}
QListView#hotwordTerms {{ border: 1px solid {BORDER}; border-radius: 8px; padding: 4px; }}
QListView#hotwordTerms::item {{ padding: 4px 6px; border-radius: 5px; }}
QListView#hotwordTerms::item:selected {{ background: #e9f0fd; color: {TEXT}; }}
QLineEdit, QPlainTextEdit, QComboBox {{
    background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 7px; padding: 5px 8px;
    selection-background-color: #cfdcf8; selection-color: {TEXT};
}}
QLineEdit:focus, QPlainTextEdit:focus, QComboBox:focus {{ border: 1px solid {ACCENT}; }}
QPlainTextEdit#segmentEditor {{ border: 1px solid {ACCENT}; border-radius: 6px; padding: 2px 4px; }}
QPushButton, QToolButton {{
    background: {SURFACE}; border: 1px solid {BORDER}; border-radius: 7px; padding: 6px 12px;
}}
QPushButton:hover, QToolButton:hover {{ background: #f0f2f5; }}
QPushButton:pressed, QToolButton:pressed {{ background: #e6e9ee; }}
QPushButton:disabled, QToolButton:disabled {{ color: #a5abb5; background: #f7f8fa; }}
QPushButton#primary {{ background: {ACCENT}; border: 1px solid {ACCENT}; color: white; font-weight: 600; }}
QPushButton#primary:hover {{ background: #1d49ad; }}
QPushButton#primary:disabled {{ background: #9db3e6; border-color: #9db3e6; }}
QToolButton#playButton {{ background: {ACCENT}; border: 1px solid {ACCENT}; color: white; font-weight: 600; min-width: 56px; }}
QToolButton#playButton:hover {{ background: #1d49ad; }}
QToolButton::menu-indicator {{ image: none; width: 0; }}
QSlider::groove:horizontal {{ height: 4px; background: {BORDER}; border-radius: 2px; }}
QSlider::sub-page:horizontal {{ background: {ACCENT}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {SURFACE}; border: 2px solid {ACCENT}; width: 10px; height: 10px; margin: -5px 0; border-radius: 7px; }}
QSplitter::handle {{ background: {BORDER}; }}
QStatusBar {{ background: {SURFACE}; border-top: 1px solid {BORDER}; color: {MUTED}; }}
QStatusBar QLabel {{ color: {MUTED}; padding: 0 8px; }}
QMenuBar {{ background: {SURFACE}; border-bottom: 1px solid {BORDER}; }}
QMenuBar::item {{ padding: 4px 10px; background: transparent; }}
QMenuBar::item:selected {{ background: #eef1f5; border-radius: 5px; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
QScrollBar::handle:vertical {{ background: #cfd4db; border-radius: 3px; min-height: 30px; }}
QScrollBar::add-line:vertical, QScrollBar::sub-line:vertical {{ height: 0; }}
QToolTip {{ background: {TEXT}; color: white; border: none; padding: 4px 6px; }}
"""


# Qt style sheets take images only from files, so the combo-box chevron is written to a private temp folder.
CHEVRON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="12" height="12" viewBox="0 0 12 12">'
    f'<path d="M2.5 4.5 L6 8 L9.5 4.5" fill="none" stroke="{MUTED}" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"/>'
    "</svg>"
)


def _chevron_file() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="keyscribe-style-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "chevron-down.svg"
    path.write_text(CHEVRON_SVG, encoding="utf-8")
    return path


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    palette.setColor(QPalette.ColorRole.Window, QColor(WINDOW))
    palette.setColor(QPalette.ColorRole.Base, QColor(SURFACE))
    palette.setColor(QPalette.ColorRole.AlternateBase, QColor("#f7f8fa"))
    palette.setColor(QPalette.ColorRole.Text, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.ButtonText, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.Button, QColor(SURFACE))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("white"))
    palette.setColor(QPalette.ColorRole.PlaceholderText, QColor(MUTED))
    palette.setColor(QPalette.ColorRole.ToolTipBase, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.ToolTipText, QColor("white"))
    app.setPalette(palette)
    font = QFont()
    font.setFamilies(["Inter", "Segoe UI", "Cantarell", "Noto Sans", "DejaVu Sans"])
    font.setPointSizeF(10)
    app.setFont(font)
    chevron = _chevron_file().as_posix()
    app.setStyleSheet(
        STYLESHEET
        + "QComboBox::drop-down { subcontrol-origin: padding; subcontrol-position: center right; width: 22px; border: none; }\n"
        + f"QComboBox::down-arrow {{ image: url({chevron}); width: 12px; height: 12px; }}\n"
    )
