"""Lexicon drafts: the word bigram, the lexicon beam search over character CTC, and the LLM following a draft."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.draft import FollowDraft, aligned_position
from engine.lexicon import SENTENCE_END, SENTENCE_START, LexiconOptions, LexiconSearch, WordLM, build_word_lm, words_of

ALPHABET = " abcdefghijklmnopqrstuvwxyz'"
SHIPPED_TOKENIZER = Path(__file__).resolve().parents[2] / "resources" / "models" / "default" / "tokenizer"


def small_lm(**kwargs) -> WordLM:
    sentences = ["the cat sat", "the cat ran", "a dog sat", "the dog ran home"]
    general = {"the": 0.05, "a": 0.03, "cat": 0.001, "hat": 0.001, "home": 0.002, "café": 0.001}
    return build_word_lm(sentences, general, ALPHABET, **kwargs)


def test_every_bigram_distribution_sums_to_one():
    lm = small_lm()
    assert "café" not in lm.unigram  # the head cannot spell "é"
    assert math.isclose(sum(lm.unigram.values()), 1.0, rel_tol=1e-9)
    for previous in [SENTENCE_START, "the", "cat", "home", "hat"]:  # seen contexts, and "hat", never seen first
        total = sum(math.exp(lm.log_prob(w, previous)) for w in [*lm.words, SENTENCE_END])
        assert math.isclose(total, 1.0, rel_tol=1e-9), previous


def test_a_seen_bigram_beats_the_unigram_guess():
    lm = small_lm()
    assert lm.log_prob("cat", "the") > lm.log_prob("hat", "the")
    assert lm.log_prob("cat", "the") > math.log(lm.unigram["cat"])


def test_the_lm_file_round_trips_and_a_broken_one_says_what_to_do(tmp_path):
    lm = small_lm()
    lm.save(tmp_path / "lm.json.gz")
    again = WordLM.load(tmp_path / "lm.json.gz")
    assert again.unigram == lm.unigram and again.bigrams == lm.bigrams and again.discount == lm.discount
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="word-lm"):
        WordLM.load(tmp_path / "bad.json.gz")


def test_words_of_keeps_apostrophes_and_breaks_on_everything_else():
    assert words_of("Don’t — Call-Forward, O'Neil!", ALPHABET) == ["don't", "call", "forward", "o'neil"]


def emissions(spelling: list[str | dict[str, float]], frames_per_symbol: int = 2, alphabet: str = ALPHABET) -> np.ndarray:
    """CTC log-probabilities that spell ``spelling``: each entry a character (certain) or {char: probability},
    held for ``frames_per_symbol`` frames and followed by a blank frame."""
    rows = []
    for symbol in spelling:
        probs = np.full(1 + len(alphabet), 1e-4)
        choices = {symbol: 1.0} if isinstance(symbol, str) else symbol
        for ch, p in choices.items():
            probs[1 + alphabet.index(ch)] = p
        for _ in range(frames_per_symbol):
            rows.append(probs / probs.sum())
        blank = np.full(1 + len(alphabet), 1e-4)
        blank[0] = 1.0
        rows.append(blank / blank.sum())
    return np.log(np.array(rows, dtype=np.float32))


def test_the_language_model_settles_a_letter_the_audio_leaves_open():
    search = LexiconSearch(small_lm(), ALPHABET)
    # "the ?at": c or h equally likely; only "the cat" was ever said.
    spelled = emissions(list("the ") + [{"c": 0.5, "h": 0.5}] + list("at"))
    assert search.decode(spelled) == ["the", "cat"]


def test_only_lexicon_words_come_out_unless_the_user_lists_them():
    spelled = emissions(list("the zork"))
    assert "zork" not in LexiconSearch(small_lm(), ALPHABET).decode(spelled)
    assert LexiconSearch(small_lm(), ALPHABET, hotwords=["Zork Inc"]).decode(spelled) == ["the", "zork"]


def test_an_empty_chunk_has_an_empty_draft_and_a_wrong_width_is_refused():
    search = LexiconSearch(small_lm(), ALPHABET, LexiconOptions(beam_size=8))
    assert search.decode(np.zeros((0, 1 + len(ALPHABET)), dtype=np.float32)) == []
    with pytest.raises(ValueError, match="log-probabilities"):
        search.decode(np.zeros((5, 3), dtype=np.float32))


def test_aligned_position_counts_the_draft_words_covered():
    draft = ("press", "one", "to", "leave", "now")
    assert aligned_position((), draft) == 0
    assert aligned_position(("press", "one"), draft) == 2
    assert aligned_position(("press", "two", "to"), draft) == 3  # a substitution
    assert aligned_position(("press", "to"), draft) == 3  # a deletion ("one" skipped)
    assert aligned_position(("please", "press", "one"), draft) == 2  # an insertion
    # One written word for two draft words whose letters it shares: both are covered.
    assert aligned_position(("thank", "you", "wolfgang"), ("thank", "you", "will", "gang")) == 4
    assert aligned_position(("thank", "you", "wolfgang"), ("thank", "you", "will", "go", "home")) == 3


def greedy_with(processor: FollowDraft, tokenizer, eos_id: int, noise: float, forced: dict[int, str] | None = None, steps: int = 80) -> str:
    """Greedy decoding by a stand-in LLM whose scores are random noise; ``forced`` writes a text at a step."""
    generator = torch.Generator().manual_seed(0)
    ids: list[int] = []
    for step in range(steps):
        if forced and step in forced:
            ids += tokenizer.encode(forced[step], add_special_tokens=False)
            continue
        scores = torch.rand((1, len(tokenizer)), generator=generator) * noise
        chosen = int(processor(torch.tensor([ids], dtype=torch.long), scores).argmax())
        if chosen == eos_id:
            break
        ids.append(chosen)
    else:
        raise AssertionError(f"never ended: {tokenizer.decode(ids)!r}")
    return tokenizer.decode(ids)


@pytest.mark.parametrize("which", ["bytes", "smollm2"])
def test_a_draft_followed_closely_comes_out_word_for_word(which):
    if which == "bytes":
        from engine.model.tiny import byte_tokenizer

        tokenizer = byte_tokenizer()
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    draft = ["please", "enter", "your", "password", "followed", "by", "the", "pound", "key"]
    follow = FollowDraft([draft], tokenizer, ALPHABET, eos, bonus=8.0)
    text = greedy_with(follow, tokenizer, eos, noise=4.0)
    assert words_of(text, ALPHABET) == draft, text
    # With no bonus the same stand-in writes noise.
    off = FollowDraft([draft], tokenizer, ALPHABET, eos, bonus=0.0)
    with pytest.raises(AssertionError, match="never ended"):
        greedy_with(off, tokenizer, eos, noise=4.0, steps=30)


def test_after_a_word_off_the_draft_the_draft_resumes():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    draft = ["thank", "you", "will", "gang", "let's", "move", "on"]
    follow = FollowDraft([draft], tokenizer, ALPHABET, eos, bonus=8.0)
    # The LLM writes a hotword where the draft has two words: the draft goes on after them.
    text = greedy_with(follow, tokenizer, eos, noise=4.0, forced={2: " Wolfgang"})
    written = words_of(text, ALPHABET)
    assert written[:3] == ["thank", "you", "wolfgang"], text
    assert written[-3:] == ["let's", "move", "on"], text


def test_the_model_writes_its_draft_and_reports_the_llms_own_confidence(runtime_cpu, monkeypatch, tmp_path):
    import dataclasses  # noqa: I001

    from engine.decoding import DecodingOptions
    from engine.model.checkpoint import build_model, load_checkpoint, save_checkpoint
    from engine.model.tiny import tiny_config
    from engine.prompt import PromptContext

    model = build_model(tiny_config(), runtime_cpu)
    model.word_lm = build_word_lm(["press one to leave", "press two to stay"], {}, model.ctc.alphabet, frequency_share=0.0)
    alphabet = model.ctc.alphabet
    spoken = [emissions(list(text), frames_per_symbol=1, alphabet=alphabet) for text in ("press one", "press two to stay")]
    monkeypatch.setattr(model, "ctc_log_probs", lambda frames, lengths: spoken)
    frames = torch.zeros(2, 100, model.encoder.dim)
    lengths = torch.tensor([100, 100])
    options = DecodingOptions(draft_bonus=1000.0, min_new_tokens_cap=48)
    hyps = model.generate_from_frames(frames, lengths, [PromptContext(), PromptContext()], options)
    assert [words_of(h.text, alphabet) for h in hyps] == [["press", "one"], ["press", "two", "to", "stay"]]
    # The random tiny LLM never believed these bytes: its own mean log-probability, not the bonus's ≈ 0.
    assert all(h.avg_logprob < -1.0 for h in hyps), [h.avg_logprob for h in hyps]
    # Without the draft the same model writes something else.
    plain = model.generate_from_frames(frames, lengths, [PromptContext(), PromptContext()], DecodingOptions(draft_bonus=0.0, min_new_tokens_cap=48))
    assert [words_of(h.text, alphabet) for h in plain] != [["press", "one"], ["press", "two", "to", "stay"]]
    # A chunk with hotwords is decoded without its draft (the other keeps its own), unless asked for.
    listed = [PromptContext(), PromptContext(hotwords=("Zanzibar",))]
    mixed = model.generate_from_frames(frames, lengths, listed, options)
    assert words_of(mixed[0].text, alphabet) == ["press", "one"]
    assert mixed[1].text == plain[1].text or words_of(mixed[1].text, alphabet) != ["press", "two", "to", "stay"]
    # A chunk whose share of the job's list is empty is not drafted either: the correction puts names in there.
    assert model._lexicon_drafts(frames, lengths, [PromptContext()] * 2, dataclasses.replace(options, draft_terms=("Zanzibar",))) == [None, None]
    drafts = model._lexicon_drafts(frames, lengths, listed, dataclasses.replace(options, draft_with_hotwords=True))
    assert drafts == [["press", "one"], ["press", "two", "to", "stay"]]  # "zanzibar" is heard nowhere: nothing left open
    # The word LM travels with the checkpoint.
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "ckpt"), runtime_cpu)
    assert loaded.word_lm is not None and loaded.word_lm.bigrams == model.word_lm.bigrams


def test_checking_the_draft_in_blocks_writes_what_step_by_step_decoding_writes(runtime_cpu, monkeypatch):
    import dataclasses

    from engine.decoding import DecodingOptions
    from engine.model.checkpoint import build_model
    from engine.model.tiny import tiny_config
    from engine.prompt import PromptContext

    model = build_model(tiny_config(), runtime_cpu)
    model.word_lm = build_word_lm(["press one to leave", "press two to stay"], {}, model.ctc.alphabet, frequency_share=0.0)
    texts = ("press one", "press two to stay", "press one to leave")
    monkeypatch.setattr(model, "ctc_log_probs", lambda frames, lengths: [emissions(list(t), 1, model.ctc.alphabet) for t in texts])
    frames = torch.zeros(3, 100, model.encoder.dim)
    lengths = torch.tensor([60, 100, 80])
    for bonus in (1000.0, 3.0):  # the random LLM keeps to its draft, or leaves it now and then
        for context in (PromptContext(), PromptContext(meeting="Phone menu recordings")):  # one stream, or joint decoding
            options = DecodingOptions(draft_bonus=bonus, min_new_tokens_cap=48, verify_block_tokens=24)
            checked = model.generate_from_frames(frames, lengths, [context] * 3, options)
            stepped = model.generate_from_frames(frames, lengths, [context] * 3, dataclasses.replace(options, verify_drafts=False))
            assert [h.token_ids for h in checked] == [h.token_ids for h in stepped]
            assert [h.avg_logprob for h in checked] == pytest.approx([h.avg_logprob for h in stepped], abs=1e-4)
            kept = [words_of(h.text, model.ctc.alphabet) == t.split() for h, t in zip(checked, texts, strict=True)]
            assert all(kept) if bonus == 1000.0 else not all(kept)  # so both kinds of pass were checked


def test_bad_draft_settings_are_refused_with_what_to_change():
    from engine.decoding import DecodingOptions

    with pytest.raises(ValueError, match="draft_bonus"):
        DecodingOptions(draft_bonus=-1.0)
    with pytest.raises(ValueError, match="beam size"):
        LexiconOptions(beam_size=0)
    with pytest.raises(ValueError, match="draft_join_penalty"):
        DecodingOptions(draft_join_penalty=-1.0)
    with pytest.raises(ValueError, match="verify_block_tokens"):
        DecodingOptions(verify_block_tokens=0)


def test_a_listed_term_the_llm_has_begun_is_finished_and_the_draft_resumes_after_it():
    from transformers import AutoTokenizer

    from engine.biasing import HotwordBoost, TokenTrie

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    draft = ["thank", "you", "our", "again", "let's", "go"]
    term = tokenizer.encode(" Hourigan", add_special_tokens=False)
    assert len(term) > 1

    def decode(with_list: bool) -> str:
        boost = HotwordBoost([TokenTrie.for_hotwords(tokenizer, ["Hourigan"] if with_list else [])], bonus=3.0)
        follow = FollowDraft([draft], tokenizer, ALPHABET, eos, bonus=30.0, hotwords=boost)
        ids: list[int] = tokenizer.encode("Thank you", add_special_tokens=False) + term[:1]  # the LLM began the term
        for _ in range(20):
            input_ids = torch.tensor([ids], dtype=torch.long)
            chosen = int(follow(input_ids, boost(input_ids, torch.zeros(1, len(tokenizer)))).argmax())
            if chosen == eos:
                break
            ids.append(chosen)
        return tokenizer.decode(ids)

    # With the list the term is finished, and "our again", which it stands for, is not written after it.
    assert words_of(decode(with_list=True), ALPHABET) == ["thank", "you", "hourigan", "let's", "go"]
    # Without it the draft takes over again after the stray first token.
    assert words_of(decode(with_list=False), ALPHABET)[-2:] == ["let's", "go"]


def test_the_chunks_own_hotwords_win_a_close_call_in_the_lexicon_search():
    lm = small_lm()
    # "the ?at": the audio says h (by 7.8 nats over c, more than the LM's 5.0 for "the cat"), but "Cat
    # Stevens" is this chunk's term.
    spelled = emissions(list("the ") + [{"c": 0.02, "h": 0.98}] + list("at"))
    plain = LexiconSearch(lm, ALPHABET, LexiconOptions(hotword_bonus=0.0), hotwords=["Cat Stevens", "Hat Trick"])
    assert plain.decode(spelled, hotwords=["Cat Stevens"]) == ["the", "hat"]
    boosted = LexiconSearch(lm, ALPHABET, LexiconOptions(hotword_bonus=5.0), hotwords=["Cat Stevens", "Hat Trick"])
    assert boosted.decode(spelled, hotwords=["Cat Stevens"]) == ["the", "cat"]
    assert boosted.decode(spelled, hotwords=["Hat Trick"]) == ["the", "hat"]


def test_words_come_with_the_frames_they_were_read_from():
    spelled = emissions(list("the cat"))  # 3 frames a character: 2 of it, 1 blank
    words = LexiconSearch(small_lm(), ALPHABET).decode_with_spans(spelled)
    assert [w for w, _, _ in words] == ["the", "cat"]
    (_, the_first, the_last), (_, cat_first, cat_last) = words
    assert the_first == 0 and 6 <= the_last <= 11  # "t h e" are frames 0-7, the space 9-10
    assert cat_first == 12 and cat_last >= 19  # "c a t" are frames 12-19


def test_an_open_slot_is_left_to_the_llm_and_the_draft_resumes_after_it():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    sentence = tokenizer.encode("Thank you Hourigan, let's go", add_special_tokens=False) + [eos]

    def decode(draft: list[str | None]) -> str:
        follow = FollowDraft([draft], tokenizer, ALPHABET, eos, bonus=30.0)
        ids: list[int] = []
        for _ in range(20):
            scores = torch.zeros(1, len(tokenizer))
            if ids == sentence[: len(ids)]:  # a stand-in LLM that believes the sentence, by 2 nats a token
                scores[0, sentence[len(ids)]] = 2.0
            chosen = int(follow(torch.tensor([ids], dtype=torch.long), scores).argmax())
            if chosen == eos:
                break
            ids.append(chosen)
        return tokenizer.decode(ids)

    assert words_of(decode(["thank", "you", "our", "again", "let's", "go"]), ALPHABET) == ["thank", "you", "our", "again", "let's", "go"]
    assert words_of(decode(["thank", "you", None, None, "let's", "go"]), ALPHABET) == ["thank", "you", "hourigan", "let's", "go"]


def test_a_close_second_reading_of_a_word_becomes_its_alternative():
    # "the ?at": c a little likelier than h (the LM also says "cat"), and "hat" within the gap.
    spelled = emissions(list("the ") + [{"c": 0.6, "h": 0.4}] + list("at"))
    words = LexiconSearch(small_lm(), ALPHABET, LexiconOptions(alternative_gap=8.0)).decode_with_alternatives(spelled)
    assert [choices for choices, _, _ in words] == [("the",), ("cat", "hat")]  # the best reading first
    assert words[1][1:] == LexiconSearch(small_lm(), ALPHABET).decode_with_spans(spelled)[1][1:]  # the same frames
    # With no gap, or a sure letter, each word stands alone.
    alone = LexiconSearch(small_lm(), ALPHABET, LexiconOptions(alternative_gap=0.0)).decode_with_alternatives(spelled)
    assert [choices for choices, _, _ in alone] == [("the",), ("cat",)]
    sure = LexiconSearch(small_lm(), ALPHABET, LexiconOptions(alternative_gap=8.0)).decode_with_alternatives(emissions(list("the cat")))
    assert [choices for choices, _, _ in sure] == [("the",), ("cat",)]


def test_the_llm_chooses_between_a_draft_words_alternatives():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def decode(believed: str, draft: list) -> str:
        """Greedy decoding by a stand-in LLM that believes ``believed`` by 2 nats a token."""
        sentence = tokenizer.encode(believed, add_special_tokens=False) + [eos]
        follow = FollowDraft([draft], tokenizer, ALPHABET, eos, bonus=30.0)
        ids: list[int] = []
        for _ in range(20):
            scores = torch.zeros(1, len(tokenizer))
            if ids == sentence[: len(ids)]:
                scores[0, sentence[len(ids)]] = 2.0
            chosen = int(follow(torch.tensor([ids], dtype=torch.long), scores).argmax())
            if chosen == eos:
                return tokenizer.decode(ids)
            ids.append(chosen)
        raise AssertionError(f"never ended: {tokenizer.decode(ids)!r}")

    draft = ["you", "will", ("now", "not"), "be", "placed"]
    assert words_of(decode("You will not be placed", draft), ALPHABET) == ["you", "will", "not", "be", "placed"]
    assert words_of(decode("You will now be placed", draft), ALPHABET) == ["you", "will", "now", "be", "placed"]
    # A word that is not among the alternatives does not keep to the draft: the lexicon's best reading wins,
    # and a later reading needs the LLM to prefer it by more than the penalty.
    assert words_of(decode("You will never be placed", draft), ALPHABET) == ["you", "will", "now", "be", "placed"]
    assert aligned_position(("you", "will", "not"), tuple(draft)) == 3
    follow = FollowDraft([draft], tokenizer, ALPHABET, eos, bonus=30.0, alternative_penalty=3.0)
    scores = torch.zeros(1, len(tokenizer))
    scores[0, tokenizer.encode(" not", add_special_tokens=False)[0]] = 2.0
    chosen = int(follow(torch.tensor([tokenizer.encode("You will", add_special_tokens=False)]), scores).argmax())
    assert tokenizer.decode([chosen]).strip().lower() == "now"


@pytest.mark.parametrize("mark", ["-", "%", "/"])
def test_a_mark_that_joins_draft_words_costs_its_penalty(mark):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    hyphen = tokenizer.encode(mark, add_special_tokens=False)[0]
    draft = ["the", "degree", "of", "confidence"]

    def decode(penalty: float) -> str:
        """Greedy decoding by a stand-in LLM that likes the mark after a word by 3 nats over anything else."""
        follow = FollowDraft([draft], tokenizer, ALPHABET, eos, bonus=30.0, join_penalty=penalty)
        ids: list[int] = []
        for _ in range(20):
            scores = torch.zeros(1, len(tokenizer))
            if tokenizer.decode(ids)[-1:].isalpha():
                scores[0, hyphen] = 3.0
            chosen = int(follow(torch.tensor([ids], dtype=torch.long), scores).argmax())
            if chosen == eos:
                return tokenizer.decode(ids)
            ids.append(chosen)
        raise AssertionError(f"never ended: {tokenizer.decode(ids)!r}")

    chained, spaced = decode(0.0), decode(15.0)
    assert words_of(chained, ALPHABET) == words_of(spaced, ALPHABET) == draft
    assert chained.count(mark) >= 3 and mark not in spaced, (chained, spaced)


def test_the_proposal_is_the_rest_of_the_draft_as_the_llm_would_write_it():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(SHIPPED_TOKENIZER)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    follow = FollowDraft([["please", "enter", "your", "password", "now"], ["hello", None, "there"]], tokenizer, ALPHABET, eos)

    def guess(row: int, written: str, limit: int = 20) -> str:
        return tokenizer.decode(follow.proposal(row, tokenizer.encode(written, add_special_tokens=False), limit))

    assert guess(0, "Please enter") == " your password now.<|im_end|>"
    assert guess(0, "Please enter your pass") == "word now.<|im_end|>"  # the word being written is finished first
    assert guess(0, "Please enter. Your") == " password now.<|im_end|>"
    assert guess(0, "Please. Enter") == " your password now.<|im_end|>"
    assert guess(0, "Please enter.") == " Your password now.<|im_end|>"  # a new sentence starts with a capital
    assert guess(0, "Please enter your password now.") == "<|im_end|>"  # no second full stop
    assert guess(0, "Please enter", limit=2) == " your password"
    assert guess(0, "Please enter your passport") == ""  # off the draft: the LLM writes on its own
    assert guess(1, "Hello") == ""  # an open slot next
    assert guess(0, "Please enter your password now.<|im_end|>") == ""
