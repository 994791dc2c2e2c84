"""CTC-draft verification gives exactly greedy decoding's tokens, in fewer LLM passes when the draft is good."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessorList

from engine.biasing import HotwordBoost, TokenTrie
from engine.speculative import batch_greedy_with_proposals, greedy_with_draft

VOCAB = 64


@pytest.fixture(scope="module")
def llm():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def prompt():
    return torch.randn(1, 11, 32, generator=torch.Generator().manual_seed(1))  # (1, L, D)


def _greedy(llm, prompt, max_new_tokens, eos_id, processors=None):
    """transformers' own greedy decoding from embeddings, with its per-step scores."""
    return llm.generate(
        inputs_embeds=prompt,
        attention_mask=torch.ones(prompt.shape[:2], dtype=torch.long),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        logits_processor=processors,
        output_scores=True,
        return_dict_in_generate=True,
        temperature=None,
        top_p=None,
        top_k=None,
    )


def _generate(llm, prompt, max_new_tokens, eos_id, processors=None) -> list[int]:
    ids = _greedy(llm, prompt, max_new_tokens, eos_id, processors).sequences[0].tolist()
    return ids[: ids.index(eos_id) + 1] if eos_id in ids else ids


def test_a_perfect_draft_is_accepted_in_few_passes(llm, prompt):
    reference = _generate(llm, prompt, 30, eos_id=VOCAB + 1)  # an id it never emits: runs the whole budget
    result = greedy_with_draft(llm, prompt, reference, 30, stop_ids={VOCAB + 1})
    assert result.token_ids == reference and len(result.log_probs) == 30
    # every pass yields its accepted draft tokens plus one of its own: blocks of 2, 4, 8, 8, … instead of 29 one-token steps
    assert result.stats.accepted + result.stats.forwards == 29 and result.stats.forwards <= 6


@pytest.mark.parametrize("kind", ["random", "shifted", "empty", "noisy"])
def test_any_draft_gives_the_greedy_tokens(llm, prompt, kind):
    reference = _generate(llm, prompt, 25, eos_id=VOCAB + 1)
    rng = torch.Generator().manual_seed(3)
    draft = {
        "random": torch.randint(0, VOCAB, (25,), generator=rng).tolist(),
        "shifted": [7, 7, *reference],  # two spurious tokens first
        "empty": [],
        "noisy": [t if i % 4 else (t + 1) % VOCAB for i, t in enumerate(reference)],  # every 4th token wrong
    }[kind]
    result = greedy_with_draft(llm, prompt, draft, 25, stop_ids={VOCAB + 1})
    assert result.token_ids == reference
    if kind == "noisy":
        assert result.stats.accepted > 10 and result.stats.forwards < 24


def test_stops_at_the_end_token_like_generate(llm, prompt):
    free = _generate(llm, prompt, 20, eos_id=VOCAB + 1)
    eos = free[6]  # pretend the 7th greedy token ends the sequence
    reference = _generate(llm, prompt, 20, eos_id=eos)
    result = greedy_with_draft(llm, prompt, free, 20, stop_ids={eos})
    assert result.token_ids == reference and result.token_ids[-1] == eos and len(reference) <= 7


def test_logits_processors_are_applied_as_in_generate(llm, prompt):
    trie = TokenTrie([[5, 9, 13]])  # a hotword spelled as three token ids
    processors = LogitsProcessorList([HotwordBoost([trie], bonus=6.0)])
    plain = _generate(llm, prompt, 20, eos_id=VOCAB + 1)
    boosted = _generate(llm, prompt, 20, eos_id=VOCAB + 1, processors=processors)
    assert boosted != plain  # the boost changes the path, so the check below means something
    result = greedy_with_draft(llm, prompt, plain, 20, stop_ids={VOCAB + 1}, processors=processors)
    assert result.token_ids == boosted


def test_log_probs_match_generate_scores(llm, prompt):
    out = _greedy(llm, prompt, 12, eos_id=VOCAB + 1)
    expected = llm.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0].tolist()
    result = greedy_with_draft(llm, prompt, out.sequences[0].tolist(), 12, stop_ids={VOCAB + 1})
    assert result.log_probs == pytest.approx(expected, abs=1e-4)


def test_the_model_decodes_the_same_with_and_without_its_draft(runtime_cpu):
    import dataclasses

    import numpy as np

    from engine.decoding import DecodingOptions
    from engine.model.checkpoint import build_model
    from engine.model.tiny import tiny_config
    from engine.prompt import PromptContext

    model = build_model(dataclasses.replace(tiny_config(), token_ctc_weight=1.0), runtime_cpu)
    rng = np.random.default_rng(0)
    frames, lengths = model.encode_frames(model.frontend([(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (24000, 56000)]))
    contexts = [PromptContext(hotwords=("Zanzibar",)), PromptContext()]
    options = DecodingOptions(min_new_tokens_cap=24, ctc_draft=True, context_weight=1.0, ctc_weight=0.0)  # plain greedy: one stream, no CTC fusion
    assert model._can_draft(options, contexts)
    drafted = model.generate_from_frames(frames, lengths, contexts, options)
    plain = model.generate_from_frames(frames, lengths, contexts, dataclasses.replace(options, ctc_draft=False))
    assert [h.token_ids for h in drafted] == [h.token_ids for h in plain] and any(h.token_ids for h in plain)
    assert [h.avg_logprob for h in drafted] == pytest.approx([h.avg_logprob for h in plain], abs=1e-4)


def test_joint_context_decoding_keeps_one_result_per_chunk(runtime_cpu):
    import dataclasses

    import numpy as np

    from engine.decoding import DecodingOptions
    from engine.model.checkpoint import build_model
    from engine.model.tiny import tiny_config
    from engine.prompt import PromptContext

    model = build_model(tiny_config(), runtime_cpu)
    rng = np.random.default_rng(1)
    frames, lengths = model.encode_frames(model.frontend([(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (24000, 40000)]))
    contexts = [PromptContext(meeting="Board meeting", hotwords=("Zanzibar",))] * 2
    for beam in (1, 3):
        base = DecodingOptions(beam_size=beam, hotword_boost=0.0)
        with_context = model.generate_from_frames(frames, lengths, contexts, base)
        without = model.generate_from_frames(frames, lengths, [PromptContext()] * 2, base)
        # α = 0 ignores the context: the joint search must give the context-free transcript
        joint = model.generate_from_frames(frames, lengths, contexts, dataclasses.replace(base, context_weight=0.0))
        assert [h.token_ids for h in joint] == [h.token_ids for h in without]
        assert len(with_context) == len(joint) == 2
    with pytest.raises(ValueError, match="context_weight"):
        DecodingOptions(context_weight=1.5)


def _batch_reference(llm, embeds, mask, max_new_tokens, eos_id, processors=None):
    """generate()'s greedy tokens per row (up to and with the end token) and the LLM's own log-probability of each."""
    out = llm.generate(
        inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=eos_id,
        pad_token_id=eos_id, logits_processor=processors, output_logits=True, return_dict_in_generate=True, temperature=None, top_p=None,
        top_k=None,
    )
    rows = []
    for row, ids in enumerate(out.sequences.tolist()):
        ids = ids[: ids.index(eos_id) + 1] if eos_id in ids else ids
        rows.append((ids, [float(out.logits[i][row].float().log_softmax(-1)[token]) for i, token in enumerate(ids)]))
    return rows


@pytest.mark.parametrize("guesses", ["perfect", "random", "none"])
def test_a_batch_with_guesses_decodes_generates_greedy_tokens_row_by_row(llm, guesses):
    generator = torch.Generator().manual_seed(5)
    lengths = [11, 7, 9]
    embeds = torch.zeros(3, 11, 32)
    mask = torch.zeros(3, 11, dtype=torch.long)
    for row, length in enumerate(lengths):  # left-padded, as the engine lays out its prompts
        embeds[row, 11 - length :] = torch.randn(length, 32, generator=generator)
        mask[row, 11 - length :] = 1
    tries = [TokenTrie([[5, 9, 13]]), TokenTrie([]), TokenTrie([[2, 4]])]
    processors = LogitsProcessorList([HotwordBoost(tries, bonus=4.0)])
    eos = _batch_reference(llm, embeds, mask, 24, VOCAB + 1, processors)[1][0][5]  # pretend row 1's 6th token ends a text
    reference = _batch_reference(llm, embeds, mask, 24, eos, processors)
    assert len({len(ids) for ids, _ in reference}) > 1  # rows end at different steps, so finished rows leave the batch

    def propose(row: int, tokens: list[int], limit: int) -> list[int]:
        if guesses == "perfect":
            return reference[row][0][len(tokens) : len(tokens) + limit]
        return torch.randint(0, VOCAB, (limit,), generator=generator).tolist()

    results, stats = batch_greedy_with_proposals(
        llm, embeds, mask, 24, eos, filler_id=VOCAB - 1, propose=None if guesses == "none" else propose, processors=processors,
        block_tokens=12,
    )
    for result, (ids, own) in zip(results, reference, strict=True):
        assert result.token_ids == ids
        assert result.log_probs == pytest.approx(own, abs=1e-4)
    steps = max(len(ids) for ids, _ in reference) - 1  # passes after the prompt that step-by-step decoding needs
    if guesses == "perfect":
        assert stats.accepted > 0 and stats.forwards < steps
    elif guesses == "none":
        assert stats.forwards == steps and stats.drafted == 0


def test_a_cancelled_batch_stops_between_passes(llm):
    embeds = torch.randn(2, 6, 32, generator=torch.Generator().manual_seed(2))
    calls = []
    results, stats = batch_greedy_with_proposals(
        llm, embeds, torch.ones(2, 6, dtype=torch.long), 30, VOCAB + 1, filler_id=0, should_stop=lambda: len(calls.append(1) or calls) > 3
    )
    assert stats.forwards == 3 and all(len(r.token_ids) == 4 for r in results)
