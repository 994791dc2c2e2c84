"""The `keyscribe` command, end to end, in a subprocess as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.model.checkpoint import build_model, save_checkpoint
from engine.model.tiny import tiny_config


def keyscribe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, runtime_cpu) -> Path:
    path = tmp_path_factory.mktemp("cli") / "model"
    save_checkpoint(build_model(tiny_config(), runtime_cpu), path)
    return path


@pytest.fixture(scope="module")
def long_audio(tmp_path_factory) -> Path:
    """70 s of tone bursts: three 30 s windows, the last one short."""
    t = np.arange(int(70 * 16000)) / 16000
    samples = (0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)).astype(np.float32)
    path = tmp_path_factory.mktemp("cli-audio") / "meeting.flac"
    sf.write(path, samples, 16000)
    return path


def test_transcribe_json_to_stdout(tiny_model, long_audio):
    result = keyscribe("transcribe", long_audio, "--model", tiny_model, "--format", "json", "--segmentation", "fixed", "--quiet")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"text", "segments", "duration", "model"}
    assert data["duration"] == pytest.approx(70.0, abs=0.01)
    starts = [s["start"] for s in data["segments"]]
    assert starts == [0.0, 30.0, 60.0]
    assert data["segments"][-1]["end"] == pytest.approx(70.0, abs=0.01)
    assert data["text"] == " ".join(s["text"].strip() for s in data["segments"] if s["text"].strip())


def test_transcribe_writes_files_with_context(tiny_model, long_audio, tmp_path):
    hotwords = tmp_path / "names.txt"
    hotwords.write_text("# guests\nPriya Raghunathan\nNovartis\nnovartis\n", encoding="utf-8")
    for fmt in ("vtt", "docx"):  # the other formats share the exporter, tested on its own
        result = keyscribe(
            "transcribe", long_audio, "--model", tiny_model, "--hotwords", hotwords,
            "--context", "Quarterly review", "--format", fmt, "--output-dir", tmp_path / "out", "--quiet",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"wrote {tmp_path / 'out' / f'meeting.{fmt}'}" in result.stderr
    # A random model may write no words, so the formats with headers are the ones checked for content.
    assert (tmp_path / "out" / "meeting.vtt").read_text().startswith("WEBVTT")
    assert (tmp_path / "out" / "meeting.docx").read_bytes()[:2] == b"PK"  # a zip container
    plain = keyscribe("transcribe", long_audio, "--model", tiny_model, "--hotwords", hotwords, "--no-hotword-correction", "--format", "json", "--quiet")
    assert plain.returncode == 0, plain.stderr
    assert set(json.loads(plain.stdout)) >= {"text", "segments"}


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp, model: ["transcribe", tmp / "missing.wav", "--model", model], "missing.wav"),
        (lambda tmp, model: ["transcribe", _text_file(tmp), "--model", model], "notes.wav"),
        (lambda tmp, model: ["transcribe", _wav(tmp), "--model", tmp / "no-model"], "does not exist"),
        (lambda tmp, model: ["transcribe", _wav(tmp), "--model", model, "--hotwords", tmp / "nope.txt"], "nope.txt"),
        (lambda tmp, model: ["transcribe", _wav(tmp), "--model", model, "--beam-size", "0"], "beam_size"),
    ],
)
def test_bad_input_gets_one_clear_line(tiny_model, tmp_path, make_args, message):
    result = keyscribe(*make_args(tmp_path, tiny_model))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("keyscribe: error:")


def _text_file(tmp: Path) -> Path:
    path = tmp / "notes.wav"
    path.write_text("these are meeting notes, not audio\n")
    return path


def _wav(tmp: Path) -> Path:
    path = tmp / "ok.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    return path


def test_engine_imports_without_qt():
    code = "import sys; sys.modules['PySide6'] = None; import engine, engine.cli, engine.transcribe, engine.model.load"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr


def test_progress_goes_to_a_log_as_plain_lines(tiny_model, long_audio):
    """stderr is a pipe here, as in a log file: no bar, but a line per report interval and one at the end."""
    result = keyscribe("transcribe", long_audio, "--model", tiny_model, "--segmentation", "fixed")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("meeting.flac: ")]
    assert lines and lines[-1].startswith("meeting.flac: 100% (70 of 70 s of audio) in ")
    assert "\r" not in result.stderr  # no bar redrawn into the log
    quiet = keyscribe("transcribe", long_audio, "--model", tiny_model, "--segmentation", "fixed", "--quiet")
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("meeting.flac: ")]


def test_progress_line_reports_the_time_left_at_the_pace_since_the_first_report():
    from engine.cli import _progress_line

    # Resumed at 1800 s of 3600; 600 s of audio more in the last 100 s: 1200 s left at 6 audio s/s = 200 s.
    line = _progress_line("talk.m4a", 2400.0, 3600.0, 130.0, first=(1000.0, 1800.0), now=1100.0)
    assert line == "talk.m4a: 67% (2400 of 3600 s of audio) in 2.2 min, about 3.3 min left"
    assert _progress_line("talk.m4a", 3600.0, 3600.0, 130.0, (1000.0, 1800.0), 1100.0).endswith("in 2.2 min")
    assert _progress_line("stream", 60.0, None, 30.0, (0.0, 0.0), 30.0) == "stream: 60 s of audio done in 0.5 min"
