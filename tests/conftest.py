"""Shared fixtures. Tests never touch the network or the user's own folders."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Converted base weights are cached between runs inside the repo's pytest cache,
# never in the user's cache folder; a set KEYSCRIBE_CACHE wins.
os.environ.setdefault("KEYSCRIBE_CACHE", str(REPO / ".pytest_cache" / "keyscribe-weights"))
# Journals and other user data go to a throwaway folder, never the user's own.
os.environ.setdefault("KEYSCRIBE_DATA", tempfile.mkdtemp(prefix="keyscribe-test-data-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en")


@pytest.fixture(scope="session")
def runtime_cpu():
    from engine.model.runtime import resolve_runtime

    return resolve_runtime("cpu", "fp32")


@pytest.fixture(scope="session")
def real_speech() -> "tuple[object, str]":
    """A real recording (16 kHz mono float32) and its transcript, or a skip."""
    import numpy as np
    import soundfile as sf
    import soxr

    path = ASTERISK_DIR / "agent-loginok.wav"
    if not path.is_file():
        pytest.skip("Debian package asterisk-core-sounds-en-wav is not installed")
    samples, rate = sf.read(path, dtype="float32")
    return np.asarray(soxr.resample(samples, rate, 16000), dtype=np.float32), "Agent logged in."
