"""The character-CTC head recipe on the tiny preset: the CTC loss falls, only the head changes, the engine loads it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.training.conftest import chord_utterances
from training.data.manifest import write_manifest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("char-ctc-data")
    return write_manifest(root / "train.jsonl", chord_utterances(root))


@pytest.fixture(scope="module")
def start(manifest) -> Path:
    """A tiny checkpoint with a linear head, as every model before this recipe had."""
    from engine.model.checkpoint import build_model, save_checkpoint
    from engine.model.runtime import Runtime
    from engine.model.tiny import tiny_config

    model = build_model(tiny_config(lora=True), Runtime(device="cpu", quantization="fp32"), seed=3)
    return save_checkpoint(model, manifest.parent / "start")


@pytest.fixture(scope="module")
def run(manifest, start):
    from training.recipes import char_ctc

    config = char_ctc.CharCTCConfig(
        init_from=str(start), model="tiny", head_layers=1, head_hidden=64, train_manifests=(str(manifest),),
        dev_manifests=(str(manifest),), out_dir=str(manifest.parent / "run"), cache_dir=str(manifest.parent / "cache"),
        steps=300, batch_size=6, lr=2e-2, warmup_steps=5, dropout=0.0, time_mask=0.0, log_every=10, save_every=150,
        eval_every=150, eval_utterances=6,
    )  # fmt: skip
    state = char_ctc.setup(config)
    return char_ctc.train(state)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_ctc_loss_falls_and_the_head_learns_to_spell(run):
    records = _records(Path(run.config.out_dir))
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    evals = [r for r in records if "dev_wer/train" in r]
    assert [r["step"] for r in evals] == [150, 300]
    # An untrained head writes nothing (CER 1); this one has started to spell the six clips from their frames.
    assert evals[-1]["dev_cer/train"] < 0.5
    assert (Path(run.config.out_dir) / "loss.png").stat().st_size > 0


def test_only_the_head_changes(run, start):
    from safetensors.torch import load_file

    before = load_file(start / "trained.safetensors")
    after = load_file(Path(run.config.out_dir) / "last" / "trained.safetensors")
    heads = {k for k in after if k.startswith("encoder.ctc_head.")}
    assert heads and {k for k in before if k.startswith("encoder.ctc_head.")} == {"encoder.ctc_head.weight", "encoder.ctc_head.bias"}
    assert any(k.startswith("encoder.ctc_head.expand.") for k in heads)
    for name in set(after) - heads:
        assert torch.equal(before[name], after[name]), name


def test_the_engine_loads_the_head_and_scores_as_training_did(run):
    from engine.model.encoder import ConvCTCHead
    from engine.model.load import load_model
    from training.recipes.char_ctc import _batch

    loaded = load_model(Path(run.config.out_dir) / "last", "cpu", "fp32")
    assert isinstance(loaded.encoder.ctc_head, ConvCTCHead)
    assert loaded.config.encoder.ctc_head_layers == 1 and loaded.config.encoder.ctc_head_hidden == 64
    frames, lengths, _, _ = _batch(run, run.train)
    run.model.eval()
    expected = run.model.ctc_log_probs(frames, lengths)
    got = loaded.ctc_log_probs(frames, lengths)
    for a, b in zip(expected, got, strict=True):
        assert a.shape == b.shape
        assert abs(a - b).max() < 1e-5
    assert loaded.ctc_hypotheses(frames, lengths) == run.model.ctc_hypotheses(frames, lengths)


def test_a_chunk_gets_the_same_posteriors_alone_or_padded_in_a_batch():
    from engine.model.encoder import ConvCTCHead

    torch.manual_seed(0)
    head = ConvCTCHead(16, 10, layers=2, hidden=8).eval()
    frames = torch.randn(3, 40, 16)
    lengths = torch.tensor([40, 25, 7])
    batched = head(frames, lengths)
    for row, length in enumerate(lengths.tolist()):
        alone = head(frames[row : row + 1, :length], torch.tensor([length]))
        assert torch.allclose(batched[row, :length], alone[0], atol=1e-6)
    # what the padding after row 1 holds changes nothing before it
    noisy = frames.clone()
    noisy[1, 25:] = 100.0
    assert torch.allclose(head(noisy, lengths)[1, :25], batched[1, :25], atol=1e-6)


def test_it_resumes_through_the_cli(run, manifest, tmp_path):
    from training.__main__ import main as training_main

    out = tmp_path / "run"
    shutil.copytree(run.config.out_dir, out)
    overrides = [
        f"init_from={run.config.init_from}", f"train_manifests=[{manifest}]", "dev_manifests=[]", f"out_dir={out}",
        f"cache_dir={run.config.cache_dir}", "steps=305", "batch_size=6", "log_every=1", "head_layers=1", "head_hidden=64",
    ]  # fmt: skip
    assert training_main(["char-ctc", "--config", str(REPO / "training/configs/char-ctc-tiny.yaml"), *overrides]) == 0
    steps = [r["step"] for r in _records(out) if "loss" in r]
    assert steps[-5:] == [301, 302, 303, 304, 305]
    assert torch.load(out / "last" / "training_state.pt", weights_only=True)["step"] == 305


def test_config_says_what_to_fix():
    from training.config import load_config
    from training.recipes.char_ctc import CharCTCConfig

    with pytest.raises(ValueError, match="init_from"):
        CharCTCConfig(train_manifests=("a.jsonl",))
    with pytest.raises(ValueError, match="head_layers must be ≥ 1"):
        CharCTCConfig(model="tiny", train_manifests=("a.jsonl",), head_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        CharCTCConfig(model="tiny", train_manifests=("a.jsonl",), dropout=1.0)
    assert load_config(CharCTCConfig, REPO / "training/configs/char-ctc-default.yaml").head_layers == 2
    assert load_config(CharCTCConfig, REPO / "training/configs/char-ctc-large.yaml").head_hidden == 1280
