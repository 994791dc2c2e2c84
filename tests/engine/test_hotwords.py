"""Hotword files and per-chunk retrieval from the first pass's CTC posteriors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.errors import KeyscribeError
from engine.hotwords import parse_hotwords, read_hotwords, retrieve
from engine.kws import keyword_scores, keyword_spans
from engine.model.acllm import CharCTC
from engine.model.config import DEFAULT_CTC_ALPHABET


def test_parse_handles_comments_duplicates_case_and_spacing():
    text = "\ufeff# board meeting\nPriya Raghunathan\n  Novartis  \nnovartis\nNOVARTIS # again\n\nSão  Paulo\nGDPR\n"
    assert parse_hotwords(text) == ("Priya Raghunathan", "Novartis", "São Paulo", "GDPR")


def test_read_gives_clear_errors(tmp_path):
    with pytest.raises(KeyscribeError, match="does not exist"):
        read_hotwords(tmp_path / "missing.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Müller\n".encode("latin-1"))
    with pytest.raises(KeyscribeError, match="UTF-8"):
        read_hotwords(bad)
    good = tmp_path / "names.txt"
    good.write_text("\ufeffMüller\nKowalski\n", encoding="utf-8")
    assert read_hotwords(good) == ("Müller", "Kowalski")


CTC = CharCTC(DEFAULT_CTC_ALPHABET)  # the engine's character alphabet, 0 the blank
spell = CTC.encode


def posteriors(heard: list[dict[str, float]]) -> np.ndarray:
    """CTC log-probabilities for a first pass that heard each position's characters with these weights,
    one frame per position with a blank frame after it (the rest of each frame's mass is spread thin)."""
    frames = []
    for weights in heard:
        row = np.full(CTC.vocab_size, 1e-4)
        for ch, w in weights.items():
            row[CTC.index[ch]] = w
        frames.append(row / row.sum())
        blank = np.full(CTC.vocab_size, 1e-4)
        blank[0] = 1.0
        frames.append(blank / blank.sum())
    return np.log(np.array(frames))


def test_retrieve_finds_misheard_terms_among_many_distractors():
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(7)
    distractors = {fake.name() for _ in range(600)} | {fake.company() for _ in range(400)}
    true_terms = ("Raghunathan", "Novartis", "Rotterdam harbour")
    hotwords = tuple(sorted(distractors)) + true_terms
    spoken = "our next speaker is doctor priya raghunathan from novartis she runs the rotterdam harbour project"
    # The first pass's argmax slips on some letters of the names, but keeps mass on the right ones.
    slips = {spoken.index("raghunathan") + 2: "", spoken.index("novartis") + 4: "e", spoken.index("rotterdam") + 3: ""}
    heard = []
    for i, ch in enumerate(spoken):
        if i in slips:
            heard.append({slips[i] or " ": 0.55, ch: 0.4})
        else:
            heard.append({ch: 0.95})
    chosen = retrieve(hotwords, posteriors(heard), spell, limit=20)
    assert len(chosen) <= 20
    assert set(true_terms) <= set(chosen)
    assert list(chosen) == [t for t in hotwords if t in chosen]  # the user's order


def test_retrieve_spells_accented_terms_as_the_ctc_hears_them():
    hotwords = tuple(f"Term{i:03d}" for i in range(30)) + ("São Paulo", "José Müller")
    heard = [{ch: 0.95} for ch in "flights to sao paulo with jose muller"]
    assert retrieve(hotwords, posteriors(heard), spell, limit=20) == ("São Paulo", "José Müller")


def test_retrieve_returns_short_lists_whole_and_nothing_for_silence():
    silence = np.log(np.tile(np.r_[1.0, np.full(CTC.vocab_size - 1, 1e-6)], (50, 1)))
    assert retrieve(("Alpha", "Beta"), silence, spell, limit=20) == ("Alpha", "Beta")
    assert retrieve(tuple(f"Term{i:03d}" for i in range(50)), silence, spell, limit=20) == ()


def test_keyword_scores_match_a_brute_force_search_over_spans_and_paths():
    rng = np.random.default_rng(3)
    n_frames, vocab = 6, 4
    log_probs = np.log(rng.dirichlet(np.ones(vocab), size=n_frames))
    ratio = log_probs - log_probs.max(axis=1, keepdims=True)
    terms = [[1], [2, 3], [1, 1], [3, 2, 1], [2, 2, 3], [1, 2, 3, 1], [2, 3, 2, 1, 3, 2], [1, 1, 1, 1], []]

    def collapse(path):
        out = [label for k, label in enumerate(path) if label != 0 and (k == 0 or label != path[k - 1])]
        return out

    def brute(term):
        best = -np.inf
        for start in range(n_frames):
            for end in range(start + 1, n_frames + 1):
                for path in itertools.product(range(vocab), repeat=end - start):
                    if term and collapse(list(path)) == term:
                        best = max(best, sum(ratio[start + k, label] for k, label in enumerate(path)))
        return best / max(1, len(term))

    got = keyword_scores(log_probs, terms)
    expected = np.array([brute(t) for t in terms])
    assert np.isneginf(got[-1]) and np.isneginf(expected[-1])  # the empty term
    assert np.isneginf(got[-2]) and np.isneginf(expected[-2])  # repeats need blanks between: 7 frames, has 6
    np.testing.assert_allclose(got[:-2], expected[:-2], rtol=1e-5, atol=1e-5)


def test_keyword_scores_are_zero_for_what_the_greedy_path_spells():
    heard = [{ch: 0.9} for ch in "call siobhan now"]
    scores = keyword_scores(posteriors(heard), [spell("siobhan"), spell("call"), spell("shavon")])
    assert scores[0] == pytest.approx(0.0, abs=1e-6) and scores[1] == pytest.approx(0.0, abs=1e-6)
    assert scores[2] < -3.0


def test_keyword_spans_give_the_frames_a_term_was_heard_on():
    heard = [{ch: 0.9} for ch in "call siobhan now"]
    terms = [spell("siobhan"), spell("call"), spell("now"), spell("")]
    spans = keyword_spans(posteriors(heard), terms)
    # Character k of the text is heard on frame 2k (a blank frame follows each one).
    assert spans[:3].tolist() == [[10, 22], [0, 6], [26, 30]]
    assert spans[3].tolist() == [-1, -1]  # an empty term is never heard
