"""The AcLLM with tiny random configs: loss, gradients, generation, checkpoints."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from engine.decoding import DecodingOptions
from engine.errors import ModelError
from engine.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from engine.model.config import AcLLMConfig
from engine.model.encoder import N_MEL_FRAMES
from engine.model.tiny import tiny_config
from engine.prompt import IGNORE_INDEX, PromptContext, shared_opening


def _audio(seconds: list[float], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for s in seconds]


def _batch(model, seconds=(2.0, 5.5), texts=("hello world", "good morning everyone")):
    features = model.frontend(_audio(list(seconds)))
    audio = model.encode(features)
    prompts = [model.prompt.render(PromptContext(hotwords=("Zanzibar",)))] * len(texts)
    inputs = model.prompt.assemble(prompts, audio.embed_lengths.tolist(), [model.prompt.target_ids(t) for t in texts])
    ctc_targets, ctc_lengths = model.ctc_batch(list(texts))
    return features, inputs, ctc_targets, ctc_lengths


@pytest.mark.parametrize("lora", [False, True])
def test_loss_trains_only_the_trainable_parts(runtime_cpu, lora):
    model = build_model(tiny_config(lora=lora), runtime_cpu).train()
    features, inputs, ctc_targets, ctc_lengths = _batch(model)
    out = model(features, inputs, ctc_targets, ctc_lengths)
    assert torch.isfinite(out.loss) and out.ctc_loss is not None
    assert torch.allclose(out.loss, out.lm_loss + model.config.ctc_weight * out.ctc_loss)
    out.loss.backward()
    trainable = set(model.trainable_state_dict())
    for name, p in model.named_parameters():
        if name in trainable:
            assert p.requires_grad, name
        else:
            assert not p.requires_grad and p.grad is None, name
    assert model.adapter.proj[0].weight.grad.abs().sum() > 0
    assert model.encoder.ctc_head.weight.grad.abs().sum() > 0
    assert any("lora_" in n for n in trainable) == lora


def test_loss_falls_when_fitting_one_batch(runtime_cpu):
    model = build_model(tiny_config(), runtime_cpu).train()
    batch = _batch(model)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(40):
        optim.zero_grad()
        loss = model(*batch).loss
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_labels_cover_only_the_transcript(runtime_cpu):
    model = build_model(tiny_config(), runtime_cpu)
    _, inputs, _, _ = _batch(model)
    for row in range(inputs.labels.shape[0]):
        labelled = inputs.labels[row][inputs.labels[row] != IGNORE_INDEX].tolist()
        text = ("hello world", "good morning everyone")[row]
        assert labelled == model.prompt.target_ids(text)
    # Audio positions per row equal the adapter's output lengths; right padding for training.
    audio_lengths = model.encode(model.frontend(_audio([2.0, 5.5]))).embed_lengths.tolist()
    assert inputs.audio_mask.sum(dim=1).tolist() == audio_lengths == [20, 55]  # 10 Hz after stacking 5 frames of 50 Hz
    assert inputs.attention_mask[0, 0] == 1 and inputs.attention_mask[0, -1] == 0


def test_encoder_trims_to_real_length(runtime_cpu):
    model = build_model(tiny_config(), runtime_cpu)
    features = model.frontend(_audio([1.0, 3.0]))
    assert features.mel.shape[-1] < N_MEL_FRAMES  # a trimmed encoder's frontend stops after its window
    frames, lengths = model.encoder(features.mel, features.mel_lengths)
    assert lengths.tolist() == [50, 150]  # 50 Hz encoder frames
    assert frames.shape[1] == 150
    with pytest.raises(ValueError, match="at most 30 s"):
        model.frontend(_audio([31.0]))


def test_trimmed_window_runs_the_encoder_on_whole_seconds_of_audio(runtime_cpu):
    import dataclasses

    from engine.model.encoder import trimmed_mel_frames

    assert [trimmed_mel_frames(n) for n in (1, 100, 101, 2999, 3000)] == [100, 100, 200, 3000, 3000]
    config = tiny_config()
    assert config.encoder.window == "trimmed"  # the default
    trimmed = build_model(config, runtime_cpu)
    padded = build_model(dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, window="padded")), runtime_cpu)
    trimmed.load_state_dict(padded.state_dict())
    assert trimmed.encoder.trimmed and not padded.encoder.trimmed
    features = padded.frontend(_audio([1.3, 2.5]))
    seen = []
    hook = trimmed.encoder.whisper.conv1.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[-1]))
    frames, lengths = trimmed.encoder(features.mel, features.mel_lengths)
    hook.remove()
    assert seen == [300]  # 2.5 s of audio rounds up to 3 s of mel frames, not 30 s
    assert lengths.tolist() == [65, 125] and frames.shape[1] == 125
    # Without the silence after it, the chunk's frames come out different from the padded window's ...
    full, _ = padded.encoder(features.mel, features.mel_lengths)
    assert not torch.allclose(frames, full, atol=1e-3)
    # ... but given the whole 30 s, the trimmed path is the Whisper encoder itself.
    whole = torch.full_like(features.mel_lengths, N_MEL_FRAMES)
    torch.testing.assert_close(trimmed.encoder(features.mel, whole)[0], padded.encoder(features.mel, whole)[0])
    with pytest.raises(ValueError, match="encoder.window"):
        dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, window="short"))


def test_the_trimmed_frontend_gives_the_30_s_window_s_first_frames_exactly(runtime_cpu):
    from engine.model.encoder import LogMelFrontend, trimmed_mel_frames

    chunks = _audio([6.0, 1.2, 0.001]) + [np.zeros(16000, dtype=np.float32)]  # one fills its window; one is silence
    padded, trimmed = LogMelFrontend()(chunks), LogMelFrontend(trimmed=True)(chunks)
    window = trimmed_mel_frames(int(padded.mel_lengths.max()))
    assert padded.mel.shape[-1] == N_MEL_FRAMES and window == 600 and window <= trimmed.mel.shape[-1] < window + 10
    assert torch.equal(trimmed.mel_lengths, padded.mel_lengths)
    assert torch.equal(trimmed.mel[..., :window], padded.mel[..., :window])
    model = build_model(tiny_config(), runtime_cpu)
    assert model.frontend.trimmed and model.encoder.trimmed
    for a, b in zip(model.encoder(trimmed.mel, trimmed.mel_lengths), model.encoder(padded.mel, padded.mel_lengths), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_generate_greedy_and_beam(runtime_cpu, beam_size):
    model = build_model(tiny_config(), runtime_cpu)
    features = model.frontend(_audio([1.5, 4.0]))
    options = DecodingOptions(beam_size=beam_size, max_tokens_per_second=4.0, min_new_tokens_cap=8)
    hyps = model.generate(features, [PromptContext(), PromptContext(meeting="weekly sync")], options)
    assert len(hyps) == 2
    for hyp in hyps:
        assert len(hyp.token_ids) <= options.max_new_tokens(4.0)
        assert np.isfinite(hyp.avg_logprob) and hyp.avg_logprob <= 0
        assert model.prompt.eos_id not in hyp.token_ids


def test_generate_stops_when_asked(runtime_cpu):
    model = build_model(tiny_config(), runtime_cpu)
    frames, lengths = model.encode_frames(model.frontend(_audio([4.0])))
    options = DecodingOptions(max_tokens_per_second=10.0, min_new_tokens_cap=40)
    calls = []

    def stop_after_three_steps() -> bool:
        calls.append(1)
        return len(calls) >= 3

    stopped = model.generate_from_frames(frames, lengths, [PromptContext()], options, should_stop=stop_after_three_steps)
    assert len(calls) == 3 and len(stopped[0].token_ids) <= 3


def test_generate_learns_a_transcript(runtime_cpu):
    """After overfitting one clip, greedy decoding reproduces its transcript (through LoRA)."""
    torch.manual_seed(0)
    model = build_model(tiny_config(lora=True), runtime_cpu).train()
    batch = _batch(model, seconds=(2.0,), texts=("hi there",))
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(100):
        optim.zero_grad()
        model(*batch).loss.backward()
        optim.step()
    model.eval()
    # context_weight 1: the prompt alone, the path this test trains for (the mix with a context-free stream: test_speculative.py).
    # No hotword boost: this checks what LoRA learned from the prompt, not the biasing (test_biasing.py); a bonus of 5
    # on a term of the prompt outweighs a tiny model trained for 100 steps.
    options = DecodingOptions(min_new_tokens_cap=20, context_weight=1.0, hotword_boost=0.0)
    hyp = model.generate(batch[0], [PromptContext(hotwords=("Zanzibar",))], options)[0]
    assert hyp.text == "hi there"


@pytest.mark.parametrize("lora", [False, True])
def test_checkpoint_round_trip(runtime_cpu, tmp_path, lora):
    model = build_model(tiny_config(lora=lora), runtime_cpu)
    with torch.no_grad():  # make the trained parts differ from a fresh init
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt", runtime_cpu)
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["encoder"]["source"] == "checkpoint:encoder"
    assert (tmp_path / "ckpt" / "tokenizer" / "tokenizer.json").is_file()
    features = model.frontend(_audio([2.0]))
    options = DecodingOptions(min_new_tokens_cap=10)
    assert model.generate(features, [PromptContext()], options) == loaded.generate(features, [PromptContext()], options)


def test_checkpoint_load_is_strict(runtime_cpu, tmp_path):
    from safetensors.torch import load_file, save_file

    save_checkpoint(build_model(tiny_config(), runtime_cpu), tmp_path / "ckpt")
    state = load_file(tmp_path / "ckpt" / "trained.safetensors")
    state["adapter.extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "ckpt" / "trained.safetensors")
    with pytest.raises(ModelError, match="unexpected"):
        load_checkpoint(tmp_path / "ckpt", runtime_cpu)
    with pytest.raises(ModelError, match="no config.json"):
        load_checkpoint(tmp_path / "empty", runtime_cpu)


def test_config_rejects_unknown_keys():
    data = tiny_config().to_dict()
    assert AcLLMConfig.from_dict(data) == tiny_config()
    data["adapter"]["stride"] = 3
    with pytest.raises(ValueError, match="unknown key.*adapter.*stride"):
        AcLLMConfig.from_dict(data)


def test_decoding_options_are_validated():
    with pytest.raises(ValueError, match="exclude each other"):
        DecodingOptions(beam_size=2, temperature=0.5)
    with pytest.raises(ValueError, match="beam_size"):
        DecodingOptions(beam_size=0)
    assert DecodingOptions(max_tokens_per_second=8).max_new_tokens(10.0) == 81


def test_merging_lora_for_inference_keeps_the_output(runtime_cpu):
    torch.manual_seed(0)
    model = build_model(tiny_config(lora=True), runtime_cpu).eval()
    with torch.no_grad():  # LoRA's B starts at zero: make it count
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    features = model.frontend(_audio([2.0, 1.5]))
    contexts = [PromptContext(hotwords=("Zanzibar",)), PromptContext()]
    options = DecodingOptions(min_new_tokens_cap=12)
    before = model.generate(features, contexts, options)
    assert model.merge_lora() and model.lora_merged
    assert not any("lora_" in name for name, _ in model.llm.named_parameters())
    after = model.generate(features, contexts, options)
    assert [h.token_ids for h in after] == [h.token_ids for h in before] and any(h.token_ids for h in before)
    assert [h.avg_logprob for h in after] == pytest.approx([h.avg_logprob for h in before], abs=1e-4)
    with pytest.raises(ValueError, match="merged for inference"):
        model.trainable_state_dict()
    assert not build_model(tiny_config(lora=False), runtime_cpu).merge_lora()  # nothing to merge


@pytest.mark.parametrize("bias", [False, True])
def test_few_rows_linear_computes_what_nn_linear_does(bias):
    from engine.model.cpu_linear import FEW_ROWS, FewRowsLinear, use_few_rows_linears

    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 40, bias=bias)
    keys = layer.state_dict().keys()
    stack = torch.nn.Sequential(layer, torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(40, 8)))
    assert use_few_rows_linears(stack) == 2 and isinstance(layer, FewRowsLinear) and isinstance(stack[2][0], FewRowsLinear)
    assert layer.state_dict().keys() == keys  # checkpoints still load
    threads = torch.get_num_threads()
    try:
        for shape, n_threads in itertools.product([(1, 48), (3, 7, 48), (FEW_ROWS + 1, 48)], [1, 2]):  # decoding rows, a batch, a prompt
            torch.set_num_threads(n_threads)  # W·xᵀ runs only with more than one thread
            x = torch.randn(*shape)
            expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
            got = layer(x)
            assert got.shape == expected.shape and got.is_contiguous() and torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    finally:
        torch.set_num_threads(threads)


def test_cpu_fp32_inference_uses_few_rows_linears_and_keeps_the_output(runtime_cpu, tmp_path):
    from engine.model.cpu_linear import FewRowsLinear
    from engine.model.load import load_model

    save_checkpoint(build_model(tiny_config(lora=True), runtime_cpu), tmp_path / "ckpt")
    plain = load_checkpoint(tmp_path / "ckpt", runtime_cpu)
    plain.merge_lora()
    model = load_model(tmp_path / "ckpt", "cpu", "fp32")
    linears = [m for m in model.llm.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, FewRowsLinear) for m in linears)
    embeddings, head = model.llm.get_input_embeddings(), model.llm.get_output_embeddings()
    assert isinstance(head, FewRowsLinear)
    if plain.llm.get_output_embeddings().weight is plain.llm.get_input_embeddings().weight:
        assert head.weight is embeddings.weight  # tied weights stay tied
    features = model.frontend(_audio([1.5, 4.0]))
    contexts = [PromptContext(hotwords=("Zanzibar",)), PromptContext()]
    options = DecodingOptions(min_new_tokens_cap=12)
    before, after = plain.generate(features, contexts, options), model.generate(features, contexts, options)
    assert [h.token_ids for h in after] == [h.token_ids for h in before] and any(h.token_ids for h in before)
    assert [h.avg_logprob for h in after] == pytest.approx([h.avg_logprob for h in before], abs=1e-4)


def test_step_log_probs_are_what_transformers_computes(runtime_cpu):
    from engine.model.acllm import _chosen_log_probs

    torch.manual_seed(3)
    model = build_model(tiny_config(), runtime_cpu)
    vocab = model.llm.get_output_embeddings().weight.shape[0]
    scores = [torch.randn(3, vocab) * 4 for _ in range(5)]
    scores[2][1, 7:] = float("-inf")  # a step where a processor ruled most tokens out, as the CTC fusion does
    sequences = torch.stack([s.argmax(dim=-1) for s in scores], dim=1)  # (3, 5), greedy
    expected = model.llm.compute_transition_scores(sequences, tuple(scores), normalize_logits=True)
    assert torch.allclose(_chosen_log_probs(sequences, scores), expected, atol=1e-6)
    assert _chosen_log_probs(sequences[:, :0], []).shape == (3, 0)


def test_assemble_puts_the_padding_after_the_shared_opening(runtime_cpu):
    from engine.prompt import PromptIds

    model = build_model(tiny_config(), runtime_cpu)
    pad = model.prompt.pad_id
    prompts = [PromptIds(prefix=(1, 2, 3, 4), suffix=(9,)), PromptIds(prefix=(1, 2, 5), suffix=(9,))]
    inputs = model.prompt.assemble(prompts, [2, 1], shared=2)
    assert inputs.input_ids.tolist() == [[1, 2, 3, 4, pad, pad, 9], [1, 2, pad, pad, 5, pad, 9]]
    assert inputs.attention_mask.tolist() == [[1] * 7, [1, 1, 0, 0, 1, 1, 1]]
    assert inputs.audio_mask.tolist() == [[False] * 4 + [True, True, False], [False] * 5 + [True, False]]
    # Whole prefixes as the openings: the shorter one is left-padded to the longer, the padding masked.
    inputs = model.prompt.assemble(prompts, [2, 1], shared=4)
    assert inputs.input_ids.tolist() == [[1, 2, 3, 4, pad, pad, 9], [pad, 1, 2, 5, pad, pad, 9]]
    assert inputs.attention_mask.tolist() == [[1] * 7, [0, 1, 1, 1, 0, 1, 1]]
    assert inputs.audio_mask.tolist() == [[False] * 4 + [True, True, False], [False] * 5 + [True, False]]
    with pytest.raises(ValueError, match="longest prompt prefix"):
        model.prompt.assemble(prompts, [2, 1], shared=5)


def test_the_shared_opening_is_the_cheaper_of_the_common_one_and_whole_prefixes():
    system, context = (1, 2, 3), (7, 7, 7, 7, 7, 7)
    assert shared_opening([system + (4,)] * 8) == 4  # one prompt: all of it, once
    assert shared_opening([system + context + (4,)] * 8 + [system + (4,)] * 8) == 10  # joint decoding's two halves
    assert shared_opening([system + (i,) + context for i in range(8)]) == 3  # eight different prompts: their common opening


@pytest.mark.parametrize("context", [PromptContext(), PromptContext(meeting="weekly sync", hotwords=("Zanzibar",))])
def test_the_shared_prompt_cache_changes_nothing(runtime_cpu, monkeypatch, context):
    import engine.model.acllm as acllm

    model = build_model(tiny_config(), runtime_cpu)
    frames, lengths = model.encode_frames(model.frontend(_audio([1.5, 4.0, 2.5])))
    contexts = [context, context, PromptContext()]  # the last row's prompt differs after the opening
    options = DecodingOptions(max_tokens_per_second=4.0, min_new_tokens_cap=8, context_weight=0.5)
    calls = []
    real = model._prefix_cache
    monkeypatch.setattr(model, "_prefix_cache", lambda ids, mask: calls.append((ids.shape[1], len(set(map(tuple, ids.tolist()))))) or real(ids, mask))
    shared = model.generate_from_frames(frames, lengths, contexts, options)
    # One opening for plain prompts; with a context, joint decoding's two prompts (with it and without) are
    # each computed whole, once: the shorter left-padded.
    assert calls == [(len(model.prompt.render(context).prefix), 1 if context.is_empty else 2)]
    monkeypatch.setattr(acllm, "shared_opening", lambda prefixes: 0)
    alone = model.generate_from_frames(frames, lengths, contexts, options)
    assert [h.token_ids for h in shared] == [h.token_ids for h in alone]
    np.testing.assert_allclose([h.avg_logprob for h in shared], [h.avg_logprob for h in alone], rtol=1e-5, atol=1e-5)
    assert len(calls) == 1  # the second run computed every row's prompt in full
