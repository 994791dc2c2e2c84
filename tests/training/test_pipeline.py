"""`python -m training run-all`: every stage in order on the tiny preset, ending in a model the engine transcribes with."""

from __future__ import annotations

import json
from pathlib import Path

from tests.training.conftest import chord_utterances
from training.data.manifest import write_manifest


def _manifest(root: Path) -> Path:
    return write_manifest(root / "train.jsonl", chord_utterances(root))


def test_run_all_tiny_runs_every_stage_and_the_engine_loads_the_result(tmp_path):
    from engine.model.checkpoint import load_checkpoint
    from engine.model.runtime import Runtime
    from engine.transcribe import TranscribeOptions, Transcriber
    from training.__main__ import main

    manifest = _manifest(tmp_path)
    out = tmp_path / "all"
    assert main(["run-all", "--preset", "tiny", "--out", str(out), "--train", str(manifest)]) == 0
    for stage in ("ssl", "sft", "context-sft", "mwer", "char-ctc"):
        rows = [json.loads(line) for line in (out / stage / "metrics.jsonl").read_text().splitlines()]
        assert rows and rows[-1]["step"] > 0, stage
    # each stage started from the one before
    sft_sources = json.loads((out / "sft" / "last" / "sources.json").read_text())
    assert "ssl" in json.dumps(sft_sources)
    model = load_checkpoint(out / "model", Runtime(device="cpu", quantization="fp32"))
    assert model.config.encoder.ctc_head_layers == 1  # char-ctc-tiny.yaml's head
    transcript = Transcriber(model, TranscribeOptions(segment=None, word_timestamps=False)).transcribe(tmp_path / "u0.flac")
    assert len(transcript.segments) == 1 and transcript.duration_s > 1.0
