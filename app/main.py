"""Start the desktop app: ``keyscribe-gui [FILES...]`` or ``python -m app``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keyscribe-gui", description="Keyscribe desktop app: transcribe recordings on your own machine.")
    parser.add_argument("files", nargs="*", type=Path, help="audio or video files to add as jobs")
    parser.add_argument("--settings", type=Path, default=None, help="use this settings file (INI) instead of the user's")
    parser.add_argument("--screenshot", type=Path, default=None, metavar="PNG",
                        help="render the window with a sample job offscreen, save it as PNG and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="keyscribe-gui: %(name)s: %(message)s")
    if args.screenshot is not None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before the QApplication exists

    from PySide6.QtWidgets import QApplication

    from app.style import apply_style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Keyscribe")
    app.setOrganizationName("keyscribe")
    apply_style(app)

    if args.screenshot is not None:
        from app.screenshot import render_screenshot

        return render_screenshot(args.screenshot)

    from app.engine_backend import EngineBackend
    from app.main_window import MainWindow
    from app.paths import projects_dir
    from app.project_store import ProjectStore
    from app.settings import Settings, open_settings_file, open_user_settings

    store = open_settings_file(args.settings) if args.settings is not None else open_user_settings()
    window = MainWindow(Settings(store), EngineBackend(), ProjectStore(projects_dir()))
    window.add_files(args.files)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
