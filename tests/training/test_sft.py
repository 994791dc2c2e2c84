"""The SFT recipe on the tiny preset, export to an engine model folder, and the evaluation math."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.training.conftest import TEXTS
from training.data.manifest import Utterance, write_manifest
from training.evaluate import error_rates, normalize


def _run_sft(manifest: Path, out: Path, steps: int, **overrides):
    from training.recipes import sft

    config = sft.SFTConfig(
        model="tiny", train_manifests=(str(manifest),), out_dir=str(out),
        cache_dir=str(out.parent / "cache"), steps=steps, batch_size=6, lr=1e-2, warmup_steps=2,
        log_every=5, save_every=10, eval_utterances=6, **({"dev_manifests": (str(manifest),)} | overrides),
    )  # fmt: skip
    return sft.train(sft.setup(config))


def test_alignment_stage_trains_token_ctc_without_the_llm(tiny_manifest, tmp_path):
    # A dev set whose words the training transcripts never use: evaluation must not need token targets.
    dev = [Utterance(id=f"d{i}", audio=tiny_manifest.parent / f"u{i}.flac", text="quixotic zephyr", duration_s=1.2) for i in range(2)]
    out = tmp_path / "run"
    state = _run_sft(tiny_manifest, out, steps=5, token_ctc_weight=1.0, align_steps=40, align_batch_size=6, align_lr=3e-2,
                     dev_manifests=(str(write_manifest(tmp_path / "dev.jsonl", dev)), str(tiny_manifest)))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    align = [r for r in records if "loss" in r and r["step"] <= 40]
    llm = [r for r in records if "loss" in r and r["step"] > 40]
    assert all("lm_loss" not in r and "token_ctc_loss" in r for r in align)  # no LLM pass while aligning
    assert all("lm_loss" in r and "token_ctc_loss" in r for r in llm)
    assert align[-1]["token_ctc_loss"] < 0.5 * align[0]["token_ctc_loss"]
    assert any("dev_token_ctc_wer/train" in r for r in records) and any("dev_wer/train" in r for r in records)
    assert state.step == 45
    hyps = state.model.token_ctc_hypotheses(*sft_frames(state, ["u0", "u1"]))
    assert len(hyps) == 2 and all(isinstance(h, str) for h in hyps)


def sft_frames(state, ids):
    import torch

    frames = [state.frames[i].float() for i in ids]
    return torch.nn.utils.rnn.pad_sequence(frames, batch_first=True), torch.tensor([f.shape[0] for f in frames])


def test_token_ctc_targets_index_the_vocabulary():
    import torch

    from engine.model.checkpoint import build_model
    from engine.model.runtime import Runtime
    from engine.model.tiny import tiny_config

    model = build_model(tiny_config(), Runtime(device="cpu", quantization="fp32"), seed=0)
    ids = [model.prompt.target_ids(t)[:-1] for t in TEXTS[:2]]
    vocab = torch.tensor(sorted({i for seq in ids for i in seq}))
    batch = model.token_ctc_batch(TEXTS[:2], vocab)
    assert batch.lengths.tolist() == [len(seq) for seq in ids]
    for row, seq in enumerate(ids):
        assert vocab[batch.targets[row, : len(seq)] - 1].tolist() == seq  # 1-based: 0 is the blank
    with pytest.raises(ValueError, match="missing from the token-CTC vocabulary"):
        model.token_ctc_batch(["zzz qqq"], vocab[:1])


def test_sft_loss_falls_and_export_transcribes(tiny_manifest, tmp_path):
    from engine.model.load import load_model
    from engine.transcribe import TranscribeOptions, Transcriber
    from training.__main__ import main as training_main

    out = tmp_path / "run"
    _run_sft(tiny_manifest, out, steps=60)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < 0.75 * losses[0]  # CTC falls fast; a random frozen-ish LLM slowly
    assert (out / "loss.png").stat().st_size > 1000
    assert any("dev_wer/train" in r for r in records)

    assert training_main(["export", "--run", str(out), "--which", "last", "--to", str(tmp_path / "model")]) == 0
    assert not (tmp_path / "model" / "training_state.pt").exists()
    model = load_model(tmp_path / "model", "cpu", "fp32")
    # The clips are chords, not speech: fixed windows, so voice detection does not skip them.
    transcript = Transcriber(model, TranscribeOptions(segment=None)).transcribe(tiny_manifest.parent / "u0.flac")
    assert len(transcript.segments) == 1 and transcript.duration_s == pytest.approx(1.2, abs=0.01)
    assert isinstance(transcript.text, str)


def test_sft_resumes_where_it_stopped(tiny_manifest, tmp_path):
    out = tmp_path / "run"
    _run_sft(tiny_manifest, out, steps=10)
    state = _run_sft(tiny_manifest, out, steps=15)
    assert state.step == 15
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(10) >= 1 and 15 in steps and steps == sorted(steps)


def test_error_rates_on_known_strings():
    rates = error_rates(["the cat sat on the mat", "hello world"], ["the cat sat on mat", "hello there world"])
    # one deletion + one insertion over 8 reference words
    assert rates.wer == pytest.approx(2 / 8)
    assert rates.words == 8
    assert error_rates(["Forty sensors."], ["40 sensors"]).wer == 0.0
    assert normalize("Mr. Smith's HARBOUR, isn't it?") == normalize("mister smith's harbor is not it")
    assert normalize("From other participants...") == normalize("...from other participants.") == "from other participants"
    assert normalize("Wait… what? It costs $3.50.") == normalize("wait what it costs $3.50")
    with pytest.raises(ValueError, match="references"):
        error_rates(["a"], [])


def test_encoder_cache_grows_when_asked_for_more_of_a_manifest(tiny_manifest, tmp_path):
    from engine.model.checkpoint import build_model
    from engine.model.runtime import Runtime
    from engine.model.tiny import tiny_config
    from training.data.manifest import read_manifest
    from training.features import build_encoder_cache

    model = build_model(tiny_config(), Runtime(device="cpu", quantization="fp32"), seed=0)
    utterances = read_manifest(tiny_manifest)
    build_encoder_cache(model, utterances[:2], tmp_path / "cache", progress=False)
    cache = build_encoder_cache(model, utterances[:4], tmp_path / "cache", progress=False)  # same folder, more ids
    frames = cache.load_shard(cache.index[utterances[3].id])
    assert {u.id for u in utterances[:4]} <= set(frames)


def test_encoder_cache_key_tells_the_windows_apart(tiny_manifest):
    import dataclasses

    from engine.model.checkpoint import build_model
    from engine.model.runtime import Runtime
    from engine.model.tiny import tiny_config
    from training.features import cache_key

    config = tiny_config()
    runtime = Runtime(device="cpu", quantization="fp32")
    trimmed = build_model(config, runtime, seed=0)
    padded = build_model(dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, window="padded")), runtime, seed=0)
    assert cache_key(padded, tiny_manifest) != cache_key(trimmed, tiny_manifest)
    assert cache_key(trimmed, tiny_manifest) == cache_key(build_model(config, runtime, seed=0), tiny_manifest)


def test_the_large_preset_describes_the_gpu_architecture():
    from training.config import load_config
    from training.recipes.sft import SFTConfig

    config = load_config(SFTConfig, Path(__file__).resolve().parents[2] / "training/configs/sft-large.yaml")
    model = config.model_config()
    assert model.encoder.source == "hub:openai/whisper-large-v3" and model.llm.source == "hub:Qwen/Qwen2.5-7B-Instruct"
    assert model.llm.lora is not None and config.bf16 and model.token_ctc_weight == 1.0


def test_every_stage_has_tiny_default_and_large_presets_and_the_large_ones_chain():
    from training.config import load_config
    from training.recipes.char_ctc import CharCTCConfig
    from training.recipes.context_sft import ContextSFTConfig
    from training.recipes.mwer import MWERConfig
    from training.recipes.sft import SFTConfig
    from training.recipes.ssl import WHISPER_LARGE_V3, SSLConfig
    from training.recipes.word_lm import WordLMConfig

    configs = Path(__file__).resolve().parents[2] / "training/configs"
    kinds = {"ssl": SSLConfig, "sft": SFTConfig, "context-sft": ContextSFTConfig, "mwer": MWERConfig, "char-ctc": CharCTCConfig, "word-lm": WordLMConfig}
    loaded = {(stage, preset): load_config(kind, configs / f"{stage}-{preset}.yaml") for stage, kind in kinds.items() for preset in ("tiny", "default", "large")}
    assert {path.stem for path in configs.glob("*.yaml")} == {f"{stage}-{preset}" for stage, preset in loaded}
    ssl, sft, context, mwer, char_ctc, word_lm = (loaded[stage, "large"] for stage in kinds)
    assert ssl.encoder_config().source == "hub:openai/whisper-large-v3" and ssl.bf16
    assert replace(ssl, init="random").encoder_config().random_dims == WHISPER_LARGE_V3
    assert context.model_config().llm.source == "hub:Qwen/Qwen2.5-7B-Instruct" and context.bf16 and mwer.bf16
    assert context.init_from == f"{sft.out_dir}/best" and mwer.init_from == f"{context.out_dir}/best"  # each continues the last
    assert char_ctc.init_from == f"{mwer.out_dir}/best"
    assert word_lm.init_from == f"{char_ctc.out_dir}/best"
