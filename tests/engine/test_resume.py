"""Journaled transcription: a killed job resumes without losing or repeating a segment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.journal import Journal
from engine.model.checkpoint import build_model, save_checkpoint
from engine.model.tiny import tiny_config
from engine.transcript import Segment

REPO = Path(__file__).resolve().parents[2]


def test_journal_round_trip_and_broken_tail(tmp_path):
    path = tmp_path / "job.jsonl"
    journal = Journal(path, key="job-a")
    journal.append(Segment(0.0, 30.0, "first"))
    journal.append(Segment(30.0, 60.0, "second"))
    journal.close()
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"start": 60.0, "end": 9')  # a crash in the middle of a write
    again = Journal(path, key="job-a")
    assert [s.text for s in again.finished] == ["first", "second"]
    assert again.resume_after_s == 60.0
    again.append(Segment(60.0, 90.0, "third"))
    again.close()
    assert [s.text for s in Journal(path, key="job-a").finished] == ["first", "second", "third"]
    assert Journal(path, key="another-job").finished == []  # a different job starts afresh


def _cli(args, env):
    return [sys.executable, "-m", "engine", "transcribe", *map(str, args)], dict(env, PYTHONPATH=str(REPO))


def test_killed_job_resumes_without_loss_or_duplicates(tmp_path, runtime_cpu):
    model_dir = tmp_path / "model"
    save_checkpoint(build_model(tiny_config(), runtime_cpu), model_dir)
    rng = np.random.default_rng(0)
    audio = tmp_path / "interview.flac"
    sf.write(audio, (0.05 * rng.standard_normal(300 * 16000)).astype(np.float32), 16000)  # 10 windows of 30 s
    # Batches of 2 windows, so the journal fills in steps the kill can fall between.
    args = [audio, "--model", model_dir, "--segmentation", "fixed", "--batch-size", "2", "--format", "json", "--quiet"]

    env = dict(os.environ, KEYSCRIBE_DATA=str(tmp_path / "data"))
    command, env = _cli(args, env)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal_dir = tmp_path / "data" / "journals"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        files = list(journal_dir.glob("*.jsonl")) if journal_dir.is_dir() else []
        if files and len(files[0].read_text().splitlines()) >= 4:  # header + 3 finished segments
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.2)
    else:
        pytest.fail("the job wrote no journal lines in time")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before_kill = len(files[0].read_text().splitlines()) - 1
    assert 3 <= finished_before_kill < 10

    resumed = subprocess.run(command[:-1], env=env, capture_output=True, text=True, timeout=300)  # without --quiet
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming interview.flac" in resumed.stderr
    assert not list(journal_dir.glob("*.jsonl"))  # removed once the transcript is out

    fresh_env = dict(env, KEYSCRIBE_DATA=str(tmp_path / "fresh"))
    fresh = subprocess.run(command, env=fresh_env, capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    got, want = json.loads(resumed.stdout)["segments"], json.loads(fresh.stdout)["segments"]
    assert [(s["start"], s["end"]) for s in got] == [(30.0 * i, 30.0 * (i + 1)) for i in range(10)]
    assert [(s["start"], s["end"], s["text"]) for s in got] == [(s["start"], s["end"], s["text"]) for s in want]
