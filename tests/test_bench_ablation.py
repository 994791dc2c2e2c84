"""bench/ablation.py end to end on two tiny checkpoints: a row per stage and dev set, the four biasing conditions, the summary."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def _clip(path: Path, seconds: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(path, (0.2 * np.sin(2 * np.pi * 200 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32), 16000)
    return path


def _manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_ablation_prints_every_stage_and_condition(tmp_path):
    from engine.model.checkpoint import build_model, save_checkpoint
    from engine.model.runtime import Runtime
    from engine.model.tiny import tiny_config

    stages = []
    for seed in (0, 1):
        folder = tmp_path / f"stage{seed}"
        save_checkpoint(build_model(tiny_config(), Runtime("cpu", "fp32"), seed=seed), folder)
        stages.append(folder)
    data = tmp_path / "data"
    data.mkdir()
    _manifest(data / "asterisk-dev.jsonl", [
        {"id": "a1", "audio": str(_clip(data / "a1.wav", 1.0, 0)), "text": "Please enter your password.", "duration_s": 1.0},
    ])
    _manifest(data / "dev-tts.jsonl", [
        {"id": "t1", "audio": str(_clip(data / "t1.wav", 1.2, 1)), "text": "Ask Tino about it.", "duration_s": 1.2, "hotwords": ["Tino"]},
        {"id": "t2", "audio": str(_clip(data / "t2.wav", 1.0, 2)), "text": "We met Olivia da Mota.", "duration_s": 1.0,
         "hotwords": ["Olivia da Mota"]},
    ])
    pool = _manifest(tmp_path / "pool.jsonl", [
        {"id": "p", "audio": "p.wav", "text": "x", "duration_s": 1.0, "hotwords": [f"Distractor {i}" for i in range(120)]},
    ])
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "ablation.py"), "--stage", f"SFT={stages[0]}", "--stage", f"+context SFT={stages[1]}",
         "--data", str(data), "--pool", str(pool), "--dump", str(tmp_path / "dump.jsonl")],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("dev sets: asterisk-dev (1), dev-tts (2); biasing: 2 utterances, true+100")
    dev_rows = [line for line in lines if re.match(r"(SFT|\+context SFT) +\d", line) or re.match(r"(SFT|\+context SFT) +[\d.]+%", line)]
    assert len(dev_rows) == 2 and all(row.count("%") == 3 for row in dev_rows)  # two sets and their mean
    for stage in ("SFT", "+context SFT"):
        conditions = [line for line in lines if line.startswith(f"{stage} ") and line.count("%") == 4]
        assert [re.split(r"\s{2,}", c)[1] for c in conditions] == ["none", "true+100 prompt", "true+100 boost", "misleading context"]
    # The summary's recall difference is the table's, to the tenth of a point.
    recall = {}
    for line in lines:
        match = re.match(r"(SFT|\+context SFT) +true\+100 boost .* ([\d.]+)%$", line)
        if match:
            recall[match.group(1)] = float(match.group(2))
    summary = re.fullmatch(r"\+context SFT vs SFT: hotword recall at true\+100 ([+-][\d.]+) points, mean dev WER ([+-][\d.]+|nan)% relative", lines[-1])
    assert summary, lines[-1]
    dumped = [json.loads(line) for line in (tmp_path / "dump.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(d["stage"], d["set"], d["id"]) for d in dumped] == [
        (stage, name, uid) for stage in ("SFT", "+context SFT") for name, uid in (("asterisk-dev", "a1"), ("dev-tts", "t1"), ("dev-tts", "t2"))
    ]
    assert abs(float(summary.group(1)) - (recall["+context SFT"] - recall["SFT"])) <= 0.11


def test_a_folder_without_a_model_is_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "ablation.py"), "--stage", f"SFT={tmp_path}", "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )
    assert done.returncode == 2 and "no config.json" in done.stderr


def test_the_ctc_probe_scores_both_ctc_heads_on_every_dev_set(tmp_path):
    from engine.model.checkpoint import build_model, save_checkpoint
    from engine.model.runtime import Runtime
    from engine.model.tiny import tiny_config

    folder = tmp_path / "encoder-a"
    save_checkpoint(build_model(tiny_config(), Runtime("cpu", "fp32"), seed=0), folder)
    data = tmp_path / "data"
    data.mkdir()
    _manifest(data / "asterisk-dev.jsonl", [{"id": "a1", "audio": str(_clip(data / "a1.wav", 1.0, 0)), "text": "Please hold.", "duration_s": 1.0}])
    _manifest(data / "dev-tts.jsonl", [{"id": "t1", "audio": str(_clip(data / "t1.wav", 1.2, 1)), "text": "Ask Tino.", "duration_s": 1.2}])
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "ablation.py"), "--stage", f"random init={folder}", "--data", str(data),
         "--bias-limit", "-1", "--ctc-probe"],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if re.match(r"random init +(char|token)-CTC ", line)]
    assert [row.split()[2] for row in rows] == ["char-CTC", "token-CTC"]
    assert all(len(re.findall(r"[\d.]+% / [\d.]+%", row)) == 2 for row in rows)  # WER / CER for both dev sets


def test_the_ctc_probe_compares_each_head_s_best_path_with_the_reference(monkeypatch):
    import importlib.util

    import engine.audio

    spec = importlib.util.spec_from_file_location("bench_ablation", REPO / "bench" / "ablation.py")
    ablation = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, ablation)  # its dataclasses look their module up there
    spec.loader.exec_module(ablation)

    class Utterance:
        def __init__(self, text):
            self.audio, self.text = "unused.wav", text

    class HeadsThatKnowOneAnswer:
        """The char CTC writes the reference, the token CTC a word short of it."""

        def frontend(self, chunks):
            return len(chunks)

        def encode_frames(self, n):
            return n, None

        def ctc_hypotheses(self, n, lengths):
            return ["ask tino about it"] * n

        def token_ctc_hypotheses(self, n, lengths):
            return ["ask tino about"] * n

    monkeypatch.setattr(engine.audio, "load_audio", lambda path: None)
    scores = ablation.ctc_probe(HeadsThatKnowOneAnswer(), [Utterance("Ask Tino about it.")] * 9)  # two batches
    assert scores["char-CTC"].wer == 0.0 and scores["token-CTC"].wer == 0.25
