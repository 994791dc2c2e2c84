"""Small audio helpers for data building: read any soundfile format as mono 16 kHz, write FLAC.

The engine has its own streaming reader for multi-hour files; corpora here are
short utterances, so whole-file reads are fine.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000  # Hz; what the Whisper encoder expects


def to_mono_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(T,) or (T, C) at any rate → (T',) float32 at 16 kHz."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)  # (T, C) → (T,)
    if sample_rate != SAMPLE_RATE:
        audio = soxr.resample(audio, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return audio


def read_mono_16k(path: str | os.PathLike) -> np.ndarray:
    """Reads a whole audio file as (T,) float32 mono at 16 kHz."""
    try:
        audio, sample_rate = sf.read(str(path), dtype="float32", always_2d=False)
    except sf.LibsndfileError as error:
        raise ValueError(f"Cannot read audio file {path}: {error}. Check that it exists and is not corrupt.") from error
    if len(audio) == 0:
        raise ValueError(f"Audio file {path} is empty.")
    return to_mono_16k(audio, sample_rate)


def write_flac(path: str | os.PathLike, audio: np.ndarray) -> float:
    """Writes (T,) float32 at 16 kHz as 16-bit FLAC, atomically; returns the duration in seconds.

    Writing to a temporary name and renaming means an interrupted build never
    leaves a truncated file that a resumed build would take as finished.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or len(audio) == 0:
        raise ValueError(f"Refusing to write {path}: expected non-empty mono audio, got shape {audio.shape}.")
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"Refusing to write {path}: the audio contains NaN or infinite samples.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)
    return len(audio) / SAMPLE_RATE


def duration_s(path: str | os.PathLike) -> float:
    return sf.info(str(path)).duration
