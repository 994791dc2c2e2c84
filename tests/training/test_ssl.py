"""BEST-RQ on the tiny encoder: targets, span masks, the frozen quantizer, training and resume,
and an SFT run that starts from the SSL encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[2]
SAMPLE_RATE = 16000
TEXTS = ["good morning", "thank you", "the harbour", "forty sensors", "next question", "see you soon"]


def _clip(index: int, seconds: float) -> np.ndarray:
    """Chords that change every 0.3 s, different in each clip: codes that vary, but with context."""
    t = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
    parts = []
    for segment in range(int(np.ceil(seconds / 0.3))):
        low, high = 200 + 90 * ((index + segment) % 6), 700 + 130 * ((2 * index + 3 * segment) % 7)
        parts.append(0.1 * np.sin(2 * np.pi * low * t) + 0.1 * np.sin(2 * np.pi * high * t))
    return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)].astype(np.float32)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[Path, Path]:
    """The same six clips (1.0-1.5 s) as an audio-only manifest (SSL) and a labeled one (SFT)."""
    from training.data.manifest import Utterance, write_manifest

    root = tmp_path_factory.mktemp("ssl-data")
    utterances = []
    for i, text in enumerate(TEXTS):
        seconds = 1.0 + 0.1 * i
        sf.write(root / f"u{i}.flac", _clip(i, seconds), SAMPLE_RATE)
        utterances.append(Utterance(id=f"u{i}", audio=root / f"u{i}.flac", text=text, duration_s=seconds))
    lines = [json.dumps({"id": u.id, "audio": u.audio.name, "duration_s": u.duration_s}) for u in utterances]
    (root / "audio.jsonl").write_text("\n".join(lines) + "\n")
    return root / "audio.jsonl", write_manifest(root / "labeled.jsonl", utterances)


def _tiny(seed: int = 0, **overrides):
    from engine.model.checkpoint import build_whisper_encoder
    from training.recipes import ssl

    config = ssl.SSLConfig(model="tiny", train_manifests=("unused.jsonl",), codebook_size=256, seed=seed, **overrides)
    torch.manual_seed(seed)
    quantizer = ssl.RandomProjectionQuantizer(2 * 80, config.codebook_size, config.codebook_dim, seed)
    return ssl.BestRQ(build_whisper_encoder(config.encoder_config()), quantizer), config


def _batch(model, config, seconds: list[float], seed: int = 0):
    from engine.model.encoder import LogMelFrontend
    from training.recipes import ssl

    features = LogMelFrontend(80)([_clip(i, s) for i, s in enumerate(seconds)])
    return features, ssl.make_batch(model.quantizer, features, config, torch.Generator().manual_seed(seed))


def test_targets_and_logits_follow_the_encoder_frames():
    model, config = _tiny()
    features, batch = _batch(model, config, [1.0, 0.55])
    assert features.mel_lengths.tolist() == [100, 55]  # 100 Hz
    assert batch.targets.shape == batch.scored.shape == (2, 50)  # 50 Hz, trimmed to the longest clip
    assert batch.targets.dtype == torch.long and 0 <= int(batch.targets.min()) and int(batch.targets.max()) < 256
    with torch.no_grad():
        logits = model(batch.mel, batch.mel_lengths)
    assert logits.shape == (2, 50, 256)


def test_span_masks_cover_the_expected_fraction_in_whole_spans():
    from training.recipes import ssl

    mask = ssl.span_mask(torch.full((32,), 3000), 3000, 0.01, 40, torch.Generator().manual_seed(0))  # (32, 3000)
    # A frame stays clear only if none of the 40 frames up to it started a span.
    assert float(mask.float().mean()) == pytest.approx(1 - 0.99**40, abs=0.03)
    for row in mask.int():
        edges = torch.diff(torch.cat([torch.zeros(1, dtype=torch.int), row, torch.zeros(1, dtype=torch.int)]))
        starts, ends = (edges == 1).nonzero().flatten(), (edges == -1).nonzero().flatten()
        assert len(starts) > 0
        # Every masked run is one or more whole spans, unless the utterance's end cuts it.
        assert all(end - start >= 40 or end == 3000 for start, end in zip(starts.tolist(), ends.tolist(), strict=True))


def test_padding_is_never_masked_nor_scored():
    from training.recipes import ssl

    model, config = _tiny(mask_prob=0.3, mask_span_frames=4)  # nearly every real frame masked
    features, batch = _batch(model, config, [1.5, 0.4])
    for row, length in enumerate(features.mel_lengths.tolist()):
        assert batch.frame_mask[row, :length].float().mean() > 0.5 and not batch.frame_mask[row, length:].any()
        positions = (length + 1) // 2
        assert batch.scored[row, :positions].any() and not batch.scored[row, positions:].any()
    # Unmasked frames, padding included, reach the encoder unchanged; masked ones are N(0, 0.1²) noise.
    masked = batch.frame_mask[:, None, :].expand_as(features.mel)
    assert torch.equal(batch.mel[~masked], features.mel[~masked])
    assert float(batch.mel[masked].std()) == pytest.approx(0.1, rel=0.05) and abs(float(batch.mel[masked].mean())) < 0.01
    # The loss does not see positions that are not scored.
    logits = torch.randn(*batch.targets.shape, 256)
    changed = torch.where(batch.scored[..., None], logits, torch.randn_like(logits))
    loss = ssl.masked_prediction_loss(logits, batch.targets, batch.scored).loss
    assert torch.equal(loss, ssl.masked_prediction_loss(changed, batch.targets, batch.scored).loss)


def test_quantizer_is_a_frozen_seeded_nearest_neighbour_lookup():
    from training.recipes import ssl

    model, config = _tiny()
    quantizer = model.quantizer
    assert {"quantizer.projection", "quantizer.codebook"} <= set(model.state_dict())
    assert not any(name.startswith("quantizer.") for name, _ in model.named_parameters())
    assert torch.allclose(quantizer.codebook.norm(dim=-1), torch.ones(256))
    stacked = torch.randn(2, 50, 160)
    projected = torch.nn.functional.normalize(stacked @ quantizer.projection, dim=-1)
    assert torch.equal(quantizer(stacked), torch.cdist(projected, quantizer.codebook).argmin(dim=-1))
    same, other = (ssl.RandomProjectionQuantizer(160, 256, 16, seed) for seed in (0, 1))
    assert torch.equal(same.projection, quantizer.projection) and torch.equal(same.codebook, quantizer.codebook)
    assert torch.equal(same(stacked), quantizer(stacked)) and not torch.equal(other(stacked), quantizer(stacked))
    # Same seed, same batch: targets, masks and noise.
    first, again = _batch(model, config, [1.0, 0.7])[1], _batch(model, config, [1.0, 0.7])[1]
    assert torch.equal(first.targets, again.targets) and torch.equal(first.mel, again.mel)


def _masked_prediction(model, config, seconds: list[float]) -> tuple[float, float]:
    """Loss and accuracy on masked positions of one fixed batch (the same masks for every model)."""
    from training.recipes import ssl

    _, batch = _batch(model, config, seconds, seed=123)
    with torch.no_grad():
        result = ssl.masked_prediction_loss(model.eval()(batch.mel, batch.mel_lengths), batch.targets, batch.scored)
    return result.loss.item(), float((result.predictions == result.targets).float().mean())


@pytest.fixture(scope="module")
def ssl_run(manifests, tmp_path_factory):
    """The tiny preset through the CLI, stopped at step 8 and resumed to 16."""
    from safetensors.torch import load_file

    from training.__main__ import main as training_main
    from training.config import load_config
    from training.recipes import ssl

    out = tmp_path_factory.mktemp("ssl-run") / "run"
    settings = {"train_manifests": [str(manifests[0])], "out_dir": str(out)}
    yaml = REPO / "training" / "configs" / "ssl-tiny.yaml"
    assert training_main(["ssl", "--config", str(yaml), *(f"{k}={v}" for k, v in settings.items()), "steps=8"]) == 0
    saved = load_file(out / "last" / ssl.WEIGHTS_FILE)
    config = load_config(ssl.SSLConfig, yaml, settings | {"steps": 16})
    state = ssl.setup(config)
    loaded = {k: torch.equal(v, saved[k]) for k, v in state.model.state_dict().items()}
    resumed_at = state.step
    ssl.train(state)
    clips = [1.0 + 0.1 * i for i in range(len(TEXTS))]
    untrained, _ = _tiny(seed=config.seed)  # what setup() starts from: same seed, same order of draws
    before, after = _masked_prediction(untrained, config, clips), _masked_prediction(state.model, config, clips)
    return {"out": out, "state": state, "resumed_at": resumed_at, "loaded": loaded, "before": before, "after": after}


def test_ssl_loss_falls_and_masked_accuracy_rises(ssl_run):
    (loss_before, accuracy_before), (loss_after, accuracy_after) = ssl_run["before"], ssl_run["after"]
    assert loss_after < 0.8 * loss_before
    assert accuracy_after > accuracy_before + 0.05
    records = [json.loads(line) for line in (ssl_run["out"] / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["loss"] < records[0]["loss"]
    assert all(0 < r["masked_fraction"] < 1 and r["code_perplexity"] > 1 and 0 <= r["accuracy"] <= 1 for r in records)
    assert (ssl_run["out"] / "loss.png").stat().st_size > 1000


def test_ssl_resumes_where_it_stopped(ssl_run):
    state = ssl_run["state"]
    assert ssl_run["resumed_at"] == 8 and all(ssl_run["loaded"].values())
    assert state.step == 16
    assert state.optimizer.state_dict()["state"][0]["step"] == 16  # Adam's moments came back too
    steps = [json.loads(line)["step"] for line in (ssl_run["out"] / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 8, 12, 16]


def test_quantizer_is_unchanged_by_training(ssl_run):
    from safetensors.torch import load_file

    from training.recipes import ssl

    fresh = ssl.RandomProjectionQuantizer(160, 256, 16, seed=0)
    saved = load_file(ssl_run["out"] / "last" / ssl.WEIGHTS_FILE)
    for name in ("projection", "codebook"):
        trained = getattr(ssl_run["state"].model.quantizer, name)
        assert not trained.requires_grad
        assert trained.numpy().tobytes() == getattr(fresh, name).numpy().tobytes() == saved[f"quantizer.{name}"].numpy().tobytes()


def test_ssl_writes_the_encoder_with_its_dims(ssl_run):
    from safetensors.torch import load_file

    from engine.model.config import WhisperDims
    from training.recipes import ssl

    path = ssl_run["out"] / ssl.ENCODER_FILE
    written, own = load_file(path), ssl_run["state"].model.whisper.state_dict()
    assert written.keys() == own.keys() and all(torch.equal(written[k], own[k]) for k in own)
    assert ssl.encoder_dims(path) == WhisperDims()  # the tiny preset's
    assert json.loads((ssl_run["out"] / ssl.ENCODER_INFO_FILE).read_text())["steps"] == 16


def test_sft_starts_from_the_ssl_encoder(ssl_run, manifests, tmp_path):
    import shutil

    from safetensors.torch import load_file

    from engine.model.checkpoint import build_model, load_checkpoint
    from engine.model.runtime import Runtime
    from engine.model.tiny import tiny_config
    from engine.weights import sha256_of
    from training.features import cache_key
    from training.recipes import sft

    labeled = manifests[1]
    encoder_file = shutil.copy(ssl_run["out"] / "encoder.safetensors", tmp_path / "ssl-encoder.safetensors")
    ssl_weights, digest = load_file(encoder_file), sha256_of(Path(encoder_file))
    out = tmp_path / "sft"
    config = sft.SFTConfig(
        model="tiny", encoder_init=str(encoder_file), train_manifests=(str(labeled),), out_dir=str(out),
        cache_dir=str(tmp_path / "cache"), steps=2, batch_size=6, warmup_steps=1, log_every=1, save_every=2,
    )  # fmt: skip
    state = sft.train(sft.setup(config))
    own = state.model.encoder.whisper.state_dict()
    assert own.keys() == ssl_weights.keys() and all(torch.equal(own[k], v) for k, v in ssl_weights.items())

    Path(encoder_file).unlink()  # the checkpoint must not need the SSL file any more
    runtime = Runtime(device="cpu", quantization="fp32")
    reloaded = load_checkpoint(out / "last", runtime)
    weights = reloaded.encoder.whisper.state_dict()
    assert weights.keys() == ssl_weights.keys() and all(torch.equal(weights[k], v) for k, v in ssl_weights.items())
    saved = json.loads((out / "last" / "config.json").read_text())["encoder"]
    assert saved["source"] == "checkpoint:encoder" and saved["init_weights"] is None
    assert json.loads((out / "last" / "sources.json").read_text())["encoder"]["initialised_from"]["sha256"] == digest

    random_init = build_model(tiny_config(lora=True), runtime, seed=0)
    assert cache_key(state.model, labeled) != cache_key(random_init, labeled)
    assert cache_key(reloaded, labeled) == cache_key(state.model, labeled)  # same weights, same cache


def test_options_that_do_not_fit_are_refused(manifests, tmp_path):
    from engine.model.config import AcLLMConfig, EncoderConfig
    from training.data.manifest import read_manifest
    from training.recipes import sft, ssl

    with pytest.raises(ValueError, match="init_from brings its own encoder"):
        sft.SFTConfig(train_manifests=("a.jsonl",), init_from="runs/x/best", encoder_init="runs/ssl/encoder.safetensors")
    with pytest.raises(ValueError, match="source to 'random'"):
        AcLLMConfig(encoder=EncoderConfig(init_weights="encoder.safetensors"))
    with pytest.raises(ValueError, match="model: default"):
        ssl.SSLConfig(model="tiny", init="pretrained", train_manifests=("a.jsonl",))
    with pytest.raises(ValueError, match="missing required key"):
        read_manifest(manifests[0])  # the labeled reader still needs a transcript
    assert [u.text for u in read_manifest(manifests[0], require_text=False)] == [""] * 6
    with pytest.raises(FileNotFoundError, match="encoder.safetensors"):
        sft.SFTConfig(model="tiny", train_manifests=("a.jsonl",), encoder_init=str(tmp_path / "nope.safetensors")).model_config()
