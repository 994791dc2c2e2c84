"""The shipped weights on the bundled sample: a floor under the quick start's output.

The sample (resources/samples/interview.flac, two TTS voices, 24 s) has its reference next to
it. The bound is loose (the shipped model's WER there was 41% when the test was written, 35% before
the lexicon drafts and 14.5% with them, session 15) and catches a decoding or loading change that
breaks transcription, the drafts included, not small accuracy shifts; those are measured by
bench/asr_wer.py and bench/ablation.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.model.load import shipped_model_dir

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


@pytest.mark.skipif(shipped_model_dir() is None, reason="no shipped weights in resources/models/default")
def test_the_shipped_model_transcribes_the_sample():
    from engine.model.load import load_model
    from engine.transcribe import Transcriber
    from training.evaluate import error_rates

    model = load_model(None, "cpu", "fp32")
    transcript = Transcriber(model).transcribe(SAMPLES / "interview.flac")
    reference = (SAMPLES / "interview.txt").read_text(encoding="utf-8")
    assert error_rates([reference], [transcript.text]).wer < 0.3, transcript.text
    assert "three years" in transcript.text.lower()
