"""CTC forced alignment: known character positions come back; times never go backwards."""

from __future__ import annotations

import numpy as np
import pytest

from engine.align import ctc_viterbi, word_times
from engine.model.acllm import CharCTC
from engine.model.config import DEFAULT_CTC_ALPHABET

CTC = CharCTC(DEFAULT_CTC_ALPHABET)
FRAME_S = 0.02


def _posteriors(n_frames: int, placed: dict[int, str]) -> np.ndarray:
    """Blank everywhere except the given frames, which say the given character (confidently)."""
    probs = np.full((n_frames, CTC.vocab_size), 0.01 / CTC.vocab_size)
    probs[:, 0] = 0.99
    for frame, ch in placed.items():
        probs[frame] = 0.01 / CTC.vocab_size
        probs[frame, CTC.index[ch]] = 0.99
    return np.log(probs)


def _spell(start: int, text: str, every: int = 2) -> dict[int, str]:
    return {start + every * i: ch for i, ch in enumerate(text)}


def test_viterbi_finds_the_characters_where_they_are():
    log_probs = _posteriors(40, _spell(5, "hi") | _spell(20, "yo"))
    spans = ctc_viterbi(log_probs, CTC.encode("hi yo"))
    assert spans[0].tolist() == [5, 5] and spans[1].tolist() == [7, 7]  # h, i
    assert spans[3].tolist() == [20, 20] and spans[4].tolist() == [22, 22]  # y, o


def test_viterbi_handles_repeated_letters_and_refuses_too_few_frames():
    log_probs = _posteriors(30, _spell(4, "book", every=3))
    spans = ctc_viterbi(log_probs, CTC.encode("book"))
    assert spans[:, 0].tolist() == [4, 7, 10, 13]
    with pytest.raises(ValueError, match="cannot fit"):
        ctc_viterbi(log_probs[:4], CTC.encode("book"))  # 4 letters + 1 repeat need 5 frames


def test_word_times_follow_the_audio_and_the_segment_offset():
    log_probs = _posteriors(200, _spell(10, "good") | _spell(100, "morning"))
    words = word_times("Good morning!", log_probs, CTC.index, start_s=60.0, end_s=64.0, frame_s=FRAME_S)
    assert [w.text for w in words] == ["Good", "morning!"]
    assert words[0].start_s == pytest.approx(60.0 + 10 * FRAME_S)
    assert words[0].end_s == pytest.approx(60.0 + 17 * FRAME_S)
    assert words[1].start_s == pytest.approx(60.0 + 100 * FRAME_S)
    assert words[1].end_s == pytest.approx(60.0 + 113 * FRAME_S)


def test_word_times_are_monotonic_inside_the_segment_on_any_posteriors():
    rng = np.random.default_rng(0)
    text = "We installed forty sensors — in 2019, near the harbour."
    for _ in range(20):
        logits = rng.normal(size=(int(rng.integers(60, 300)), CTC.vocab_size))
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        words = word_times(text, log_probs, CTC.index, start_s=5.0, end_s=11.0, frame_s=FRAME_S)
        assert [w.text for w in words] == text.split()
        assert all(5.0 <= w.start_s <= w.end_s <= 11.0 for w in words)
        assert all(a.end_s <= b.start_s + 1e-9 for a, b in zip(words, words[1:]))


def test_text_longer_than_the_frames_gets_proportional_times():
    words = word_times("a very long sentence indeed", _posteriors(5, {}), CTC.index, 0.0, 2.0, FRAME_S)
    assert words[0].start_s == 0.0 and words[-1].end_s == pytest.approx(2.0)
    assert all(a.end_s == pytest.approx(b.start_s) for a, b in zip(words, words[1:]))
