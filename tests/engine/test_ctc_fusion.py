"""engine/ctc_fusion.py: CTC prefix probabilities against brute force, and the fused greedy step."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from engine.ctc_fusion import CTCPrefixFusion, CTCPrefixScorer
from engine.prompt import PromptContext


def _collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    """CTC's many-to-one map: merge repeats, drop blanks (label 0); labels 1+i are tokens i."""
    out, previous = [], 0
    for label in path:
        if label != previous and label != 0:
            out.append(label - 1)
        previous = label
    return tuple(out)


def _brute_force(log_probs: torch.Tensor) -> tuple[dict, dict]:
    """Every alignment's probability summed by its collapsed output: P(exactly y) and P(y…) for all y."""
    n_frames, n_labels = log_probs.shape
    exact: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(n_labels), repeat=n_frames):
        p = math.exp(sum(float(log_probs[t, label]) for t, label in enumerate(path)))
        key = _collapse(path)
        exact[key] = exact.get(key, 0.0) + p
    prefix: dict[tuple[int, ...], float] = {}
    for key, p in exact.items():
        for n in range(len(key) + 1):
            prefix[key[:n]] = prefix.get(key[:n], 0.0) + p
    return exact, prefix


@pytest.fixture
def log_probs():
    torch.manual_seed(0)
    return torch.randn(5, 4, dtype=torch.float64).mul(1.5).log_softmax(dim=-1)  # 5 frames, blank + 3 tokens


def test_prefix_and_final_probabilities_match_every_alignment_summed(log_probs):
    exact, prefix = _brute_force(log_probs)
    scorer = CTCPrefixScorer.from_log_probs(log_probs)
    states = {(): scorer.initial()}
    for length in range(4):
        for key in [k for k in states if len(k) == length]:
            for token, state in zip(range(3), scorer.extend(states[key], [0, 1, 2]), strict=True):
                states[key + (token,)] = state
    checked = 0
    for key, state in states.items():
        assert math.exp(state.log_prefix) == pytest.approx(prefix.get(key, 0.0), rel=1e-9, abs=1e-15), key
        assert math.exp(state.log_final) == pytest.approx(exact.get(key, 0.0), rel=1e-9, abs=1e-15), key
        checked += 1
    assert checked == 1 + 3 + 9 + 27 + 81
    # The repeated label (1, 1) needs a blank between: fewer alignments than (1, 2).
    assert exact[(1, 1)] < prefix[(1, 1)]


def test_final_probability_agrees_with_torch_ctc_loss(log_probs):
    scorer = CTCPrefixScorer.from_log_probs(log_probs)
    state = scorer.initial()
    for token in (2, 0, 0):
        state = scorer.extend(state, [token])[0]
    loss = torch.nn.functional.ctc_loss(
        log_probs[:, None], torch.tensor([[3, 1, 1]]), torch.tensor([5]), torch.tensor([3]), blank=0, reduction="sum"
    )
    assert state.log_final == pytest.approx(-float(loss), rel=1e-9)


def test_scorer_from_embeddings_equals_the_full_softmax():
    torch.manual_seed(1)
    queries, keys = torch.randn(7, 5), torch.randn(201, 5)
    full = (queries @ keys.T).log_softmax(dim=-1).double()
    scorer = CTCPrefixScorer(queries, keys)
    assert torch.allclose(scorer.columns([-1, 0, 17, 199]), full[:, [0, 1, 18, 200]], atol=1e-5)


def test_normalisers_computed_for_many_chunks_at_once_equal_each_chunk_alone(monkeypatch):
    import engine.ctc_fusion as fusion

    monkeypatch.setattr(fusion, "NORM_ROWS", 4)  # blocks that straddle the chunks' borders
    torch.manual_seed(2)
    keys = torch.randn(301, 6)
    chunks = [torch.randn(n, 6) for n in (3, 9, 1)]
    norms = fusion.log_normalisers(chunks, keys)
    assert [n.shape for n in norms] == [(3,), (9,), (1,)]
    for queries, norm in zip(chunks, norms, strict=True):
        assert torch.allclose(norm, (queries @ keys.T).logsumexp(dim=-1), atol=1e-5)
        shared, alone = CTCPrefixScorer(queries, keys, norm), CTCPrefixScorer(queries, keys)
        assert torch.allclose(shared.columns([-1, 5, 299]), alone.columns([-1, 5, 299]), atol=1e-6)
    assert fusion.log_normalisers([], keys) == []
    with pytest.raises(ValueError, match="log_norm has shape"):
        CTCPrefixScorer(chunks[0], keys, norms[1])


def test_fusion_keeps_the_top_k_and_moves_the_end_token_by_the_ctc():
    # Frames say token 1 then token 2; the LLM prefers to stop after token 1.
    ctc = torch.full((6, 4), -9.0, dtype=torch.float64)
    for t, label in enumerate([2, 0, 3, 3, 0, 0]):
        ctc[t, label] = 0.0
    ctc = ctc.log_softmax(dim=-1)
    eos = 3  # the LLM's end token: no CTC label of its own (the LLM vocabulary is 4 here, the CTC's 3)
    fusion = CTCPrefixFusion([CTCPrefixScorer.from_log_probs(ctc)], weight=0.5, eos_id=eos, top_k=3)
    llm = torch.log(torch.tensor([[0.05, 0.6, 0.1, 0.25]]))  # step 0: token 1 wins either way
    fused = fusion(torch.zeros((1, 0), dtype=torch.long), llm)
    assert int(fused.argmax()) == 1
    assert fused[0, 0] == float("-inf")  # outside the LLM's top 3
    llm = torch.log(torch.tensor([[0.05, 0.05, 0.3, 0.6]]))  # step 1: the LLM would stop
    assert int(llm.argmax()) == eos
    fused = fusion(torch.tensor([[1]]), llm)
    assert int(fused.argmax()) == 2  # the audio still holds token 2
    fused = fusion(torch.tensor([[1, 2]]), torch.log(torch.tensor([[0.3, 0.3, 0.2, 0.2]])))
    assert int(fused.argmax()) == eos  # and nothing after it


def test_fusion_recovers_a_prefix_it_did_not_propose_and_rejects_bad_weights(log_probs):
    fusion = CTCPrefixFusion([CTCPrefixScorer.from_log_probs(log_probs)] * 2, weight=0.3, eos_id=3, top_k=1, num_beams=1)
    scores = torch.zeros((2, 4))
    out = fusion(torch.tensor([[2, 0], [1, 1]]), scores)  # neither prefix was a candidate before
    assert torch.isfinite(out).sum(dim=1).tolist() == [1, 1]
    for weight in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="CTC weight"):
            CTCPrefixFusion([], weight=weight, eos_id=0)


@pytest.mark.parametrize("beam_size", [1, 2])
def test_the_model_fuses_one_scorer_per_decoded_row(runtime_cpu, beam_size, monkeypatch):
    import dataclasses

    import numpy as np

    from engine import ctc_fusion
    from engine.decoding import DecodingOptions
    from engine.model.checkpoint import build_model
    from engine.model.tiny import tiny_config
    from engine.prompt import PromptContext

    model = build_model(dataclasses.replace(tiny_config(), token_ctc_weight=1.0), runtime_cpu)
    rng = np.random.default_rng(0)
    frames, lengths = model.encode_frames(model.frontend([(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 40000)]))
    made = []
    original = ctc_fusion.CTCPrefixFusion.__init__

    def spy(self, scorers, *args, **kwargs):
        made.append(list(scorers))
        original(self, scorers, *args, **kwargs)

    monkeypatch.setattr(ctc_fusion.CTCPrefixFusion, "__init__", spy)
    contexts = [PromptContext(meeting="A talk on Zanzibar."), PromptContext()]
    options = DecodingOptions(beam_size=beam_size, ctc_weight=0.3, min_new_tokens_cap=8)  # joint decoding doubles the rows
    hyps = model.generate_from_frames(frames, lengths, contexts, options)
    embed_lengths = ((lengths + model.adapter.stack - 1) // model.adapter.stack).tolist()
    (scorers,) = made
    assert [s.queries.shape[0] for s in scorers] == embed_lengths * 2  # one scorer per chunk, trimmed to its frames, per stream
    assert all(a is b for a, b in zip(scorers[:2], scorers[2:], strict=True))  # the streams hear the same audio: built once
    assert len(hyps) == 2
    made.clear()
    model.generate_from_frames(frames, lengths, contexts, dataclasses.replace(options, ctc_weight=0.0))
    assert made == []


def test_finished_rows_are_left_alone(log_probs):
    # generate() keeps stepping a finished row, appending padding after its end token.
    fusion = CTCPrefixFusion([CTCPrefixScorer.from_log_probs(log_probs)], weight=0.3, eos_id=2, top_k=1)
    scores = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    out = fusion(torch.tensor([[1, 2, 0, 0]]), scores)
    assert torch.allclose(out, scores.log_softmax(dim=-1))


def test_a_token_the_hotword_boost_rewards_never_loses_to_the_ctc():
    # The CTC says "token 1" at every frame; the boost is writing token 2 (a hotword's next piece).
    ctc = torch.full((4, 4), -9.0, dtype=torch.float64)
    ctc[:, 2] = 0.0
    ctc = ctc.log_softmax(dim=-1)

    class Boost:  # what CTCPrefixFusion reads of engine.biasing.HotwordBoost
        last_boost = torch.tensor([[0.0, 0.0, 3.0, 0.0]])

    scores = torch.log(torch.tensor([[0.3, 0.3, 0.3, 0.1]]))
    plain = CTCPrefixFusion([CTCPrefixScorer.from_log_probs(ctc)], weight=0.5, eos_id=3, top_k=4)(torch.zeros((1, 0), dtype=torch.long), scores)
    guarded = CTCPrefixFusion([CTCPrefixScorer.from_log_probs(ctc)], weight=0.5, eos_id=3, top_k=4, hotwords=Boost())(
        torch.zeros((1, 0), dtype=torch.long), scores
    )
    log_probs = scores.log_softmax(dim=-1)
    assert plain[0, 2] < 0.5 * log_probs[0, 2] - 1.0  # the CTC alone buries the hotword token
    assert guarded[0, 2] == pytest.approx(0.5 * float(log_probs[0, 2]))  # its CTC loss is clipped at 0
    assert torch.equal(guarded[0, [0, 1, 3]], plain[0, [0, 1, 3]])  # the other tokens are scored as before


@pytest.mark.parametrize("context", [PromptContext(hotwords=("Zanzibar", "Dar es Salaam")), PromptContext(meeting="A talk on Zanzibar.")])
def test_undrafted_decoding_in_the_own_loop_writes_what_generate_writes(runtime_cpu, context):
    import dataclasses

    import numpy as np

    from engine.decoding import DecodingOptions
    from engine.model.checkpoint import build_model
    from engine.model.tiny import tiny_config

    model = build_model(dataclasses.replace(tiny_config(), token_ctc_weight=1.0), runtime_cpu)
    with torch.no_grad():  # a likelier end token, so that rows finish at different steps and leave the loop
        model.llm.get_output_embeddings().weight[model.prompt.eos_id] *= 6.0
    rng = np.random.default_rng(1)
    frames, lengths = model.encode_frames(model.frontend([(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 40000, 24000, 8000)]))
    contexts = [context, PromptContext(), context, context]
    # Token-CTC fusion, the hotword boost and joint context decoding: every processor of a chunk without a draft.
    options = DecodingOptions(ctc_weight=0.3, min_new_tokens_cap=24)
    own = model.generate_from_frames(frames, lengths, contexts, options)
    stepped = model.generate_from_frames(frames, lengths, contexts, dataclasses.replace(options, verify_drafts=False))
    assert [h.token_ids for h in own] == [h.token_ids for h in stepped]
    assert [h.avg_logprob for h in own] == pytest.approx([h.avg_logprob for h in stepped], abs=1e-4)
    assert len({len(h.token_ids) for h in own}) > 1  # rows did finish apart
