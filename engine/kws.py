"""Keyword spotting on CTC posteriors: how well each term of a list fits some stretch of a chunk.

The score of a term is the best CTC path of its characters through any span of frames,
compared frame by frame with the unconstrained best path over the same span (the greedy
characters), as a log-likelihood ratio averaged over the term's characters. It is 0 when the
greedy path spells the term in that span, and falls as the posteriors disagree with it: a name
the first pass half-misspells ("shavon" for "Siobhan") still scores well, because the posteriors
keep mass on the right letters even where the argmax went elsewhere. That mass is what matching
the greedy text throws away (posterior-based keyword confidence; the CTC recursion of Graves
et al. 2006 with a free start and end, as in CTC keyword spotting, e.g. Lengerich & Hannun 2016).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

NEG_INF = -1e9


@torch.inference_mode()
def keyword_scores(log_probs: np.ndarray | torch.Tensor, terms: Sequence[Sequence[int]], blank: int = 0) -> np.ndarray:
    """Per term (a sequence of CTC labels, blank excluded): the mean log-likelihood ratio per label of
    its best path through its best span of ``log_probs`` (T, V) against the free best path there.

    Scores are ≤ 0, and -inf for an empty term or one that cannot fit in T frames.
    All terms are scored together: one pass over the frames with the terms padded to the longest.
    """
    return _best_paths(torch.as_tensor(log_probs, dtype=torch.float32), terms, blank)[0]


@torch.inference_mode()
def keyword_spans(log_probs: np.ndarray | torch.Tensor, terms: Sequence[Sequence[int]], blank: int = 0) -> np.ndarray:
    """Per term, the frames [first, last] of the span its keyword score comes from: an (N, 2) int array,
    -1 where the score is -inf. The last frame is where the best path ends; the first is where the best
    path of the reversed term through the reversed frames ends, the same path read backwards."""
    lp = torch.as_tensor(log_probs, dtype=torch.float32)
    scores, last = _best_paths(lp, terms, blank)
    _, first_reversed = _best_paths(lp.flip(0), [list(t)[::-1] for t in terms], blank)
    spans = np.stack([lp.shape[0] - 1 - first_reversed, last], axis=1)
    spans[np.isneginf(scores)] = -1
    return spans


def _best_paths(lp: torch.Tensor, terms: Sequence[Sequence[int]], blank: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, the frame each term's best path ends on) for ``keyword_scores``."""
    n_terms = len(terms)
    if n_terms == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    ratio = lp - lp.max(dim=1, keepdim=True).values  # (T, V), 0 on each frame's best label
    # One extra label, always NEG_INF, for the padding states past a term's end: they can never be on a path.
    ratio = torch.cat((ratio, torch.full((ratio.shape[0], 1), NEG_INF)), dim=1)
    unreachable = ratio.shape[1] - 1
    lengths = np.array([len(t) for t in terms])
    longest = max(1, int(lengths.max()))
    n_states = 2 * longest - 1  # label, blank, label, ..., label: the span starts and ends on a label
    labels = np.full((n_terms, longest), unreachable, dtype=np.int64)
    for i, term in enumerate(terms):
        labels[i, : len(term)] = term
    position = np.arange(longest)
    states = np.full((n_terms, n_states), unreachable, dtype=np.int64)
    states[:, 0::2] = labels
    # A blank between labels j and j + 1 of a term that has both.
    states[:, 1::2] = np.where(position[None, 1:] < lengths[:, None], blank, unreachable)
    # 0 where a label may follow the one before with no blank (they differ), else never.
    skip_cost = np.full((n_terms, n_states), NEG_INF, dtype=np.float32)
    skip_cost[:, 2::2] = np.where((position[None, 1:] < lengths[:, None]) & (labels[:, 1:] != labels[:, :-1]), 0.0, NEG_INF)
    states, skip_cost = torch.from_numpy(states), torch.from_numpy(skip_cost)
    final = torch.from_numpy(np.maximum(2 * lengths - 2, 0))
    # scores[:, 2:] are the states' scores; column 1 is the free start (0) that state 0 may be entered
    # from on any frame, column 0 a never-reachable state two back from state 0.
    scores = torch.full((n_terms, n_states + 2), NEG_INF)
    scores[:, 1] = 0.0
    best = torch.full((n_terms,), NEG_INF)
    last = torch.full((n_terms,), -1, dtype=torch.long)
    rows = torch.arange(n_terms)
    for t in range(ratio.shape[0]):
        step = torch.maximum(scores[:, 2:], scores[:, 1:-1])  # stay, or come from the state before
        step = torch.maximum(step, scores[:, :-2] + skip_cost)  # or from two back, skipping a blank
        scores[:, 2:] = (step + ratio[t][states]).clamp_(min=NEG_INF)
        ending = scores[rows, final + 2]
        last[ending > best] = t
        best = torch.maximum(best, ending)
    out = best / torch.from_numpy(np.maximum(lengths, 1)).float()
    out[(best < NEG_INF / 2) | torch.from_numpy(lengths == 0)] = float("-inf")
    return out.numpy(), last.numpy()
