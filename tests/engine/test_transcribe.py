"""The Transcriber's loop, with a fake model: order, callbacks, silence, cancel."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from engine.model.acllm import Hypothesis
from engine.model.encoder import LogMelFrontend
from engine.transcribe import Cancelled, Progress, TranscribeOptions, Transcriber


@dataclass(frozen=True)
class _Config:
    name: str = "fake"


class FakeModel:
    """Answers each chunk with its duration, so the test can check which audio went where."""

    config = _Config()

    def __init__(self):
        self.frontend = LogMelFrontend()
        self.calls = 0

    def generate(self, features, contexts, options):
        self.calls += 1
        return [Hypothesis(text=f"chunk of {d:.1f} s", token_ids=(), avg_logprob=-0.1) for d in features.duration_s.tolist()]


def _tone_file(tmp_path, seconds: float, silent_from_s: float | None = None):
    t = np.arange(int(seconds * 16000)) / 16000
    samples = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    if silent_from_s is not None:
        samples[int(silent_from_s * 16000) :] = 0.0
    path = tmp_path / "audio.wav"
    sf.write(path, samples, 16000)
    return path


def test_segments_cover_the_file_in_order(tmp_path):
    path = _tone_file(tmp_path, 65.0)
    seen, progress = [], []
    transcript = Transcriber(FakeModel(), TranscribeOptions(batch_size=2)).transcribe(
        path, on_segment=seen.append, progress_callback=progress.append
    )
    assert [s.start_s for s in transcript.segments] == [0.0, 30.0, 60.0]
    assert transcript.segments[-1].end_s == pytest.approx(65.0)
    assert list(transcript.segments) == seen
    assert transcript.text == "chunk of 30.0 s chunk of 30.0 s chunk of 5.0 s"
    assert [p.done_s for p in progress] == sorted(p.done_s for p in progress)
    assert progress[-1] == Progress(done_s=pytest.approx(65.0), total_s=pytest.approx(65.0))


def test_silent_windows_skip_the_model(tmp_path):
    path = _tone_file(tmp_path, 90.0, silent_from_s=30.0)
    model = FakeModel()
    transcript = Transcriber(model).transcribe(path)
    assert model.calls == 1
    assert [s.text for s in transcript.segments] == ["chunk of 30.0 s", "", ""]


def test_cancel_stops_before_the_next_batch(tmp_path):
    path = _tone_file(tmp_path, 120.0)
    cancel = threading.Event()
    seen = []

    def on_segment(segment):
        seen.append(segment)
        cancel.set()

    with pytest.raises(Cancelled):
        Transcriber(FakeModel()).transcribe(path, on_segment=on_segment, cancel=cancel)
    assert len(seen) == 1


def test_options_are_validated():
    with pytest.raises(ValueError, match="window_s"):
        TranscribeOptions(window_s=45.0)
    with pytest.raises(ValueError, match="batch_size"):
        TranscribeOptions(batch_size=0)
