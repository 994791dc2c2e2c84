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
    n_terms = len(terms)
    if n_terms == 0:
        return np.zeros(0, dtype=np.float32)
    lp = torch.as_tensor(log_probs, dtype=torch.float32)
    ratio = lp - lp.max(dim=1, keepdim=True).values  # (T, V), 0 on each frame's best label
    longest = max(1, max(len(t) for t in terms))
    n_states = 2 * longest - 1  # label, blank, label, ..., label: the span starts and ends on a label
    states = torch.full((n_terms, n_states), blank, dtype=torch.long)
    valid = torch.zeros(n_terms, n_states, dtype=torch.bool)
    can_skip = torch.zeros(n_terms, n_states, dtype=torch.bool)  # a label reached straight from the one before
    final = torch.zeros(n_terms, dtype=torch.long)
    for i, labels in enumerate(terms):
        if not labels:
            continue
        states[i, 0 : 2 * len(labels) - 1 : 2] = torch.as_tensor(list(labels))
        valid[i, : 2 * len(labels) - 1] = True
        final[i] = 2 * len(labels) - 2
        for j in range(1, len(labels)):
            can_skip[i, 2 * j] = labels[j] != labels[j - 1]
    blocked = torch.full((n_terms, n_states), NEG_INF)
    score = blocked.clone()
    best = torch.full((n_terms,), NEG_INF)
    rows = torch.arange(n_terms)
    fresh = torch.zeros(n_terms, 1)  # the first label can start on any frame, from a free prefix
    two_back_start = torch.full((n_terms, 2), NEG_INF)
    for t in range(ratio.shape[0]):
        from_previous = torch.cat((fresh, score[:, :-1]), dim=1)
        from_two_back = torch.where(can_skip, torch.cat((two_back_start, score[:, :-2]), dim=1), blocked)
        score = torch.maximum(torch.maximum(score, from_previous), from_two_back) + ratio[t][states]
        score = torch.where(valid, score, blocked)
        best = torch.maximum(best, score[rows, final])
    lengths = torch.tensor([max(1, len(t)) for t in terms], dtype=torch.float32)
    out = best / lengths
    out[(best < NEG_INF / 2) | torch.tensor([not t for t in terms])] = float("-inf")
    return out.numpy()
