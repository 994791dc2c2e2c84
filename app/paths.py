"""Where the app keeps the user's data: recordings and saved projects.

One root for all of it, shared with the engine's journals: KEYSCRIBE_DATA when
set (tests point it at a temporary folder), else the platform's user data
folder (platformdirs: ~/.local/share/keyscribe on Linux).
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    root = os.environ.get("KEYSCRIBE_DATA")
    if root is None:
        from platformdirs import user_data_dir

        root = user_data_dir("keyscribe", appauthor=False)
    return Path(root)


def recordings_dir() -> Path:
    return data_dir() / "recordings"


def projects_dir() -> Path:
    return data_dir() / "projects"
