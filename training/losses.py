"""Sequence-level training losses, as pure functions of tensors and strings (no model inside).

``mwer_loss`` is the N-best form of minimum word error rate training (Prabhavalkar et al.
2018, arXiv 1712.01818); ``weighted_word_errors`` is the error count it minimises, with
errors on hotwords weighted up (Seed-ASR's weighted WER, Bai et al. 2024).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from training.evaluate import normalize


def mwer_loss(seq_log_probs: torch.Tensor, word_errors: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Expected word errors over each N-best list, relative to the list's mean error.

    For a row with valid hypotheses i: P_i = softmax(seq_log_probs) over the valid entries
    (the model's probabilities renormalised to the N-best), and the row's loss is
    Σ_i P_i · (err_i − mean_valid(err)). The mean is a constant baseline: since Σ P_i = 1 it
    shifts the value, not the gradient, so a constant added to a row's errors changes nothing.
    d loss / d log p_i = P_i · (err_i − Σ_j P_j err_j): hypotheses with fewer errors than the
    current expectation are pushed up. Rows with fewer than two valid hypotheses carry no
    signal and contribute 0 (value and gradient); the result is the mean over all B rows.

    seq_log_probs: (B, N) sequence log-probabilities, with gradients.
    word_errors: (B, N) error counts (e.g. weighted_word_errors); ignored where not valid.
    valid: (B, N) bool, False for padding entries of short N-best lists.
    """
    if seq_log_probs.shape != word_errors.shape or seq_log_probs.shape != valid.shape or seq_log_probs.dim() != 2:
        raise ValueError(
            f"seq_log_probs, word_errors and valid must share one (B, N) shape, got "
            f"{tuple(seq_log_probs.shape)}, {tuple(word_errors.shape)}, {tuple(valid.shape)}"
        )
    valid = valid.to(torch.bool)
    informative = valid.sum(dim=1) >= 2  # (B,)
    usable = valid & informative[:, None]  # (B, N)
    # Masked entries get -inf (probability 0, no gradient); rows without signal get a harmless
    # all-zero row so the softmax stays finite, and are zeroed below.
    dtype = torch.promote_types(seq_log_probs.dtype, torch.float32)  # half precision is too coarse here
    logits = seq_log_probs.to(dtype).masked_fill(~usable, float("-inf"))
    logits = torch.where(informative[:, None], logits, torch.zeros_like(logits))
    probs = torch.softmax(logits, dim=1)  # (B, N)
    errors = torch.where(usable, word_errors.to(probs.dtype), torch.zeros_like(probs))  # (B, N)
    mean_error = errors.sum(dim=1) / usable.sum(dim=1).clamp(min=1)  # (B,)
    relative = torch.where(usable, errors - mean_error[:, None], torch.zeros_like(errors))
    per_row = (probs * relative).sum(dim=1)  # (B,)
    return torch.where(informative, per_row, torch.zeros_like(per_row)).mean()


def hotword_positions(words: Sequence[str], hotwords: Sequence[str]) -> set[int]:
    """Indices of the (normalised) words that belong to an occurrence of a (normalised) hotword."""
    marked: set[int] = set()
    for hotword in hotwords:
        pattern = normalize(hotword).split()
        if not pattern:
            continue
        width = len(pattern)
        for start in range(len(words) - width + 1):
            if list(words[start : start + width]) == pattern:
                marked.update(range(start, start + width))
    return marked


def weighted_word_errors(reference: str, hypothesis: str, hotwords: Sequence[str], hotword_weight: float) -> float:
    """Word edit distance where errors on hotword words of the reference count ``hotword_weight``.

    The rule, exactly: reference, hypothesis and each hotword are normalised like the WER
    (training.evaluate.normalize: lower case, no punctuation, spelling unified). A reference
    word is a hotword word when it lies inside a contiguous occurrence of some hotword's word
    sequence (so multi-word hotwords count only where all their words occur in order). jiwer
    aligns the word sequences (minimum edit distance); each substituted or deleted reference
    word costs ``hotword_weight`` if it is a hotword word and 1 otherwise; each inserted
    hypothesis word costs 1 (an insertion touches no reference word). With weight 1, or no
    hotwords, this is the plain word error count (WER numerator).
    """
    import jiwer

    if hotword_weight < 0:
        raise ValueError(f"hotword_weight must be ≥ 0, got {hotword_weight}")
    ref_words = normalize(reference).split()
    hyp_words = normalize(hypothesis).split()
    if not ref_words:
        return float(len(hyp_words))  # jiwer refuses empty references: all insertions
    marked = hotword_positions(ref_words, hotwords)
    errors = 0.0
    for chunk in jiwer.process_words(" ".join(ref_words), " ".join(hyp_words)).alignments[0]:
        if chunk.type in ("substitute", "delete"):
            errors += sum(hotword_weight if i in marked else 1.0 for i in range(chunk.ref_start_idx, chunk.ref_end_idx))
        elif chunk.type == "insert":
            errors += chunk.hyp_end_idx - chunk.hyp_start_idx
    return errors
