"""Hotword correction: after decoding, write a listed term where the audio fits it better than the words there.

The boost (engine/biasing.py) can only help a term the LLM already leans towards. When the LLM
writes another word ("Carla" where "Tino" was said, "shavon" for "Siobhan"), the encoder's
character CTC often still hears the term: keyword spotting (engine/kws.py) finds the frames where
it fits best. This pass puts the term in place of the words aligned to those frames and keeps
the change only if the whole chunk's text, so edited, is more likely under the CTC than as
written (the CTC sequence probability, summed over all alignments, Graves et al. 2006). A term
that was not said has no stretch of audio that prefers it to the words that were, so the
comparison turns it away; the LLM's context-aware text stands wherever the audio does not
object. Rescoring a first pass's words against a list of phrases in this way is a second-pass
form of contextual biasing (e.g. the "spelling correction" and "post-processing" families in the
contextual-ASR literature); here the judge is the model's own CTC head.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.align import word_frames
from engine.hotwords import spot, without_accents

_LEADING = re.compile(r"^[^\w]*")
_TRAILING = re.compile(r"('s)?[^\w]*$")


@dataclass(frozen=True)
class Edit:
    first: int  # the first word replaced
    stop: int  # one past the last word replaced; == first for an insertion
    term: str
    gain: float  # CTC log-likelihood of the edited text minus that of the text as written


def correct_hotwords(
    text: str,
    log_probs: np.ndarray,
    hotwords: Sequence[str],
    char_ctc,
    min_score: float = -2.0,
    limit: int = 20,
    bonus: float = 0.0,
    spotted: tuple[np.ndarray, np.ndarray] | None = None,
) -> str:
    """``text`` with each spotted term of ``hotwords`` written in where the CTC prefers it.

    ``log_probs`` (T, V) are the chunk's character-CTC log-probabilities and ``char_ctc`` their
    alphabet (engine.model.acllm.CharCTC). Terms already in the text are left alone; of the rest,
    those with a keyword score of at least ``min_score`` (at most ``limit``, best first) are tried in
    place of the words aligned to the frames they were spotted on, or of those words and one
    neighbour, or between words when none is there. An edit is kept when it raises the text's CTC
    log-likelihood by more than ``-bonus`` (``bonus`` > 0 trusts the list a little more than the
    audio); of edits that touch the same words, the larger gain wins. ``spotted`` is
    engine.hotwords.spot's answer for ``hotwords`` in this chunk, when the caller has it already.
    """
    words = text.split()
    if not words or not hotwords:
        return text
    written = f" {char_ctc.normalize(without_accents(text))} "
    missing = [i for i, t in enumerate(hotwords) if (n := char_ctc.normalize(without_accents(t))) and f" {n} " not in written]
    if not missing:
        return text
    scores, spans = spotted if spotted is not None else spot(tuple(hotwords), log_probs, char_ctc.encode)
    scores, spans, missing = scores[missing], spans[missing], [hotwords[i] for i in missing]
    chosen = [i for i in np.argsort(-scores, kind="stable")[:limit] if scores[i] >= min_score]
    if not chosen:
        return text
    frames = word_frames(words, log_probs, char_ctc.index)
    if frames is None:
        return text
    candidates: list[tuple[str, int, int]] = []
    for i in chosen:
        for first, stop in _windows(frames, int(spans[i, 0]), int(spans[i, 1])):
            candidates.append((missing[i], first, stop))
    texts = [text] + [" ".join(_replaced(words, term, first, stop)) for term, first, stop in candidates]
    likelihood = _ctc_log_likelihoods(log_probs, [char_ctc.encode(without_accents(t)) for t in texts])
    edits = [
        Edit(first, stop, term, float(likelihood[k + 1] - likelihood[0]))
        for k, (term, first, stop) in enumerate(candidates)
        if likelihood[k + 1] - likelihood[0] > -bonus
    ]
    kept: list[Edit] = []
    for edit in sorted(edits, key=lambda e: -e.gain):
        if edit.term not in {k.term for k in kept} and not any(_clash(edit, k) for k in kept):
            kept.append(edit)
    # Right to left, so earlier word indices stay valid; at one index the replacement goes before the insertion.
    for edit in sorted(kept, key=lambda e: (-e.first, e.first == e.stop)):
        words = _replaced(words, edit.term, edit.first, edit.stop)
    return " ".join(words)


def _windows(frames: list[tuple[int, int] | None], start: int, end: int) -> set[tuple[int, int]]:
    """Word ranges [first, stop) that a term spotted on frames [start, end] may replace."""
    n = len(frames)
    over = [k for k, f in enumerate(frames) if f is not None and f[0] <= end and f[1] >= start]
    if not over:
        before = sum(1 for f in frames if f is not None and f[1] < start)
        return {(before, before)}
    first, stop = over[0], over[-1] + 1
    # Those words, one neighbour more, or nothing (the term was left out next to them).
    windows = {(first, stop), (max(0, first - 1), stop), (first, min(n, stop + 1)), (first, first), (stop, stop)}
    if stop - first > 1:
        windows |= {(first + 1, stop), (first, stop - 1)}
    return windows


def _replaced(words: list[str], term: str, first: int, stop: int) -> list[str]:
    """``words`` with [first, stop) replaced by ``term``, keeping the punctuation around them and a possessive."""
    if first == stop:
        return words[:first] + [term] + words[first:]
    lead = _LEADING.match(words[first]).group(0)
    trail = _TRAILING.search(words[stop - 1]).group(0)
    if trail.startswith("'s") and term.lower().endswith("'s"):
        trail = trail[2:]
    return words[:first] + [lead + term + trail] + words[stop:]


def _clash(a: Edit, b: Edit) -> bool:
    """Whether two edits touch the same words (an insertion: the same gap, or a gap inside the other's words)."""
    a_inserts, b_inserts = a.first == a.stop, b.first == b.stop
    if not a_inserts and not b_inserts:
        return max(a.first, b.first) < min(a.stop, b.stop)
    if a_inserts and b_inserts:
        return a.first == b.first
    gap, words = (a, b) if a_inserts else (b, a)
    return words.first < gap.first < words.stop


@torch.inference_mode()
def _ctc_log_likelihoods(log_probs: np.ndarray, targets: list[list[int]]) -> np.ndarray:
    """log P(target | frames) under the CTC for each target; -inf where it cannot fit."""
    lp = torch.as_tensor(log_probs, dtype=torch.float32)
    n = len(targets)
    flat = torch.tensor([label for t in targets for label in t], dtype=torch.long)
    loss = F.ctc_loss(
        lp[:, None, :].expand(-1, n, -1),
        flat,
        torch.full((n,), lp.shape[0], dtype=torch.long),
        torch.tensor([len(t) for t in targets], dtype=torch.long),
        blank=0,
        reduction="none",
        zero_infinity=False,
    )
    return (-loss).numpy()
