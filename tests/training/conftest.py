"""Shared training-test data: six short chord clips, each a different chord, so the clips are tellable apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data.manifest import Utterance, write_manifest

TEXTS = ["good morning", "thank you", "the harbour", "forty sensors", "next question", "see you soon"]


def chord_utterances(root: Path, hotwords: dict[str, tuple[str, ...]] | None = None) -> list[Utterance]:
    """Write one 1.2 s chord per text under ``root``; ``hotwords`` maps a text to its manifest hotwords."""
    utterances = []
    for i, text in enumerate(TEXTS):
        t = np.arange(int(1.2 * 16000)) / 16000
        samples = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (200 + 90 * i, 700 + 130 * i)).astype(np.float32)
        sf.write(root / f"u{i}.flac", samples, 16000)
        utterances.append(Utterance(id=f"u{i}", audio=root / f"u{i}.flac", text=text, duration_s=1.2,
                                    hotwords=(hotwords or {}).get(text, ())))
    return utterances


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sft-data")
    return write_manifest(root / "train.jsonl", chord_utterances(root))
