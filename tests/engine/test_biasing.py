"""Hotword boost: the prefix tree and the logits processor."""

from __future__ import annotations

import pytest
import torch

from engine.biasing import HotwordBoost, TokenTrie
from engine.decoding import DecodingOptions
from engine.model.checkpoint import build_model
from engine.model.tiny import byte_tokenizer, tiny_config
from engine.prompt import PromptContext


def test_trie_offers_starts_and_continuations_only():
    trie = TokenTrie([[5, 6, 7], [5, 9], [20]])
    assert trie.next_tokens([]) == {5, 20}
    assert trie.next_tokens([1, 2, 5]) == {5, 20, 6, 9}  # inside "5 …": 6 or 9 continue it
    assert trie.next_tokens([5, 6]) == {5, 20, 7}
    assert trie.next_tokens([5, 6, 7]) == {5, 20}  # a finished hotword earns nothing more
    assert trie.match([1, 5, 6]) == (2, {7}) and trie.match([5, 6, 7]) == (0, set()) and trie.match([1]) == (0, set())
    assert trie.next_tokens([6]) == {5, 20}  # 6 alone is not the start of anything


def test_trie_tokenizes_hotwords_at_text_start_and_after_a_space():
    tokenizer = byte_tokenizer()
    trie = TokenTrie.for_hotwords(tokenizer, ("Maasvlakte",))
    plain = tokenizer("Maasvlakte", add_special_tokens=False)["input_ids"]
    spaced = tokenizer(" Maasvlakte", add_special_tokens=False)["input_ids"]
    assert trie.size == 2
    assert plain[0] in trie.next_tokens([]) and spaced[0] in trie.next_tokens([])
    assert trie.next_tokens(plain[:3]) >= {plain[3]}


def test_boost_rewards_continuing_and_retracts_unfinished_hotwords():
    tries = [TokenTrie([[3, 4, 5]]), TokenTrie([])]
    boost = HotwordBoost(tries, bonus=2.0, num_beams=2)
    out = boost(torch.tensor([[1, 1], [1, 3], [1, 1], [1, 3]]), torch.zeros(4, 10))
    assert out[0].tolist() == [0, 0, 0, 2.0, 0, 0, 0, 0, 0, 0]  # row 0, beam 0: only the start token earns
    assert out[1, 4] == 2.0  # row 0, beam 1 is 1 token in: continuing earns
    assert out[1, 3] == 0.0 and out[1, 0] == -2.0  # restarting earns nothing net; leaving takes the bonus back
    assert out[2:].abs().sum() == 0  # row 1 has no hotwords
    done = boost(torch.tensor([[3, 4, 5]] * 4), torch.zeros(4, 10))
    assert done[0, 0] == 0.0  # a finished hotword keeps its bonus


def test_a_large_boost_steers_generation_to_the_hotword():
    model = build_model(tiny_config(), torch_runtime(), seed=0)
    frames, lengths = model.encode_frames(model.frontend([torch.zeros(16000).numpy() + 0.01]))
    context = PromptContext(hotwords=("zyx",))
    options = DecodingOptions(hotword_boost=50.0, max_tokens_per_second=4.0, min_new_tokens_cap=3)
    text = model.generate_from_frames(frames, lengths, [context], options)[0].text
    assert text.startswith("zyx")  # a random model never writes this without the bonus
    plain = model.generate_from_frames(frames, lengths, [context], DecodingOptions(hotword_boost=0.0, max_tokens_per_second=4.0, min_new_tokens_cap=3))
    assert not plain[0].text.startswith("zyx")


def torch_runtime():
    from engine.model.runtime import Runtime

    return Runtime(device="cpu", quantization="fp32")


def test_context_mix_gives_both_halves_the_weighted_log_probs():
    from engine.biasing import ContextMix

    scores = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])  # row 0: with context, row 1: the same audio without
    mixed = ContextMix(alpha=0.25)(torch.zeros((2, 0), dtype=torch.long), scores)
    log_p = scores.log_softmax(dim=-1)
    expected = 0.25 * log_p[0] + 0.75 * log_p[1]
    assert torch.allclose(mixed[0], expected) and torch.equal(mixed[0], mixed[1])
    assert int(mixed[0].argmax()) == 1  # the context-free stream outvotes a context that favours token 0
    assert int(ContextMix(alpha=1.0)(torch.zeros((2, 0), dtype=torch.long), scores)[1].argmax()) == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        ContextMix(alpha=1.5)
