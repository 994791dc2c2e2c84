"""Word timestamps: CTC forced alignment of the final text to the encoder's character posteriors.

The LLM writes the text; the encoder's CTC head says, frame by frame, which
characters it hears. The Viterbi path of the text's characters through those
posteriors (with CTC blanks between them) gives each character, and so each
word, its frames. Written here because the one packaged implementation,
torchaudio.functional.forced_align, is deprecated and torchaudio is not a
dependency; the algorithm is the standard CTC Viterbi (Graves et al. 2006,
section 3; the same recursion as Kürzinger et al. 2020, "CTC-segmentation").
"""

from __future__ import annotations

import numpy as np

from engine.transcript import Word

NEG_INF = -1e30


def ctc_viterbi(log_probs: np.ndarray, targets: list[int], blank: int = 0) -> np.ndarray:
    """Best CTC path of ``targets`` through ``log_probs`` (T, V).

    Returns (S, 2): for each target symbol the first and last frame it is emitted on.
    Needs T ≥ S + number of adjacent repeats; raises ValueError otherwise.
    """
    n_frames = log_probs.shape[0]
    n_targets = len(targets)
    if n_targets == 0:
        return np.zeros((0, 2), dtype=np.int64)
    repeats = sum(1 for a, b in zip(targets, targets[1:], strict=False) if a == b)
    if n_frames < n_targets + repeats:
        raise ValueError(f"{n_targets} symbols cannot fit in {n_frames} frames")
    states = np.full(2 * n_targets + 1, blank, dtype=np.int64)  # blank, t1, blank, t2, ..., blank
    states[1::2] = targets
    n_states = len(states)
    # A label state may be entered from two states back when it differs from that label (skip the blank).
    can_skip = np.zeros(n_states, dtype=bool)
    can_skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(n_states, NEG_INF)
    score[0] = log_probs[0, states[0]]
    score[1] = log_probs[0, states[1]]
    back = np.zeros((n_frames, n_states), dtype=np.int8)  # 0 stay, 1 from previous, 2 from two back
    for t in range(1, n_frames):
        stay = score
        step = np.concatenate(([NEG_INF], score[:-1]))
        skip = np.where(can_skip, np.concatenate(([NEG_INF, NEG_INF], score[:-2])), NEG_INF)
        candidates = np.stack([stay, step, skip])  # (3, n_states)
        choice = candidates.argmax(axis=0)
        score = candidates[choice, np.arange(n_states)] + log_probs[t, states]
        back[t] = choice
    state = n_states - 1 if score[-1] >= score[-2] else n_states - 2
    spans = np.full((n_targets, 2), -1, dtype=np.int64)
    for t in range(n_frames - 1, -1, -1):
        if state % 2 == 1:
            symbol = state // 2
            if spans[symbol, 1] < 0:
                spans[symbol, 1] = t
            spans[symbol, 0] = t
        state -= int(back[t, state])
    return spans


def word_frames(words: list[str], log_probs: np.ndarray, char_index: dict[str, int]) -> list[tuple[int, int] | None] | None:
    """Each word's first and last frame on the best CTC path of ``words`` (joined by spaces) through
    ``log_probs`` (T, V); None for a word with nothing alignable (punctuation, symbols), and None in
    all when the text has more letters than the frames can hold."""
    space = char_index.get(" ")
    targets: list[int] = []
    spans_of_word: list[tuple[int, int]] = []  # [first, last) target positions per word
    for word in words:
        labels = [char_index[ch] for ch in word.lower() if ch in char_index and ch != " "]
        if targets and labels and space is not None:
            targets.append(space)
        spans_of_word.append((len(targets), len(targets) + len(labels)))
        targets.extend(labels)
    try:
        char_spans = ctc_viterbi(log_probs, targets)
    except ValueError:
        return None
    return [None if first == last else (int(char_spans[first, 0]), int(char_spans[last - 1, 1])) for first, last in spans_of_word]


def word_times(
    text: str,
    log_probs: np.ndarray,  # (T, V) the CTC head's log-probabilities for this chunk
    char_index: dict[str, int],  # character -> CTC label (the CTC alphabet, blank = 0)
    start_s: float,
    end_s: float,
    frame_s: float,
) -> tuple[Word, ...]:
    """Each word of ``text`` with its start and end inside [start_s, end_s]."""
    words = text.split()
    if not words:
        return ()
    frames = word_frames(words, log_probs, char_index)
    if frames is None:
        return _evenly_spaced(words, start_s, end_s)  # more letters than frames: no honest alignment
    # A word with nothing alignable is placed after its neighbour below.
    times = [None if span is None else (start_s + span[0] * frame_s, start_s + (span[1] + 1) * frame_s) for span in frames]
    out: list[Word] = []
    previous_end = start_s
    for word, span in zip(words, times, strict=True):
        begin, finish = span if span is not None else (previous_end, previous_end)
        begin = min(max(begin, previous_end), end_s)
        finish = min(max(finish, begin), end_s)
        out.append(Word(start_s=begin, end_s=finish, text=word))
        previous_end = finish
    return tuple(out)


def _evenly_spaced(words: list[str], start_s: float, end_s: float) -> tuple[Word, ...]:
    """Times in proportion to word length, for text the CTC frames cannot hold."""
    weights = np.array([max(1, len(w)) for w in words], dtype=np.float64)
    edges = start_s + (end_s - start_s) * np.concatenate(([0.0], np.cumsum(weights) / weights.sum()))
    return tuple(Word(start_s=float(a), end_s=float(b), text=w) for w, a, b in zip(words, edges[:-1], edges[1:], strict=True))
