"""Joint CTC/LLM decoding: the adapter's token CTC scores every prefix the LLM proposes.

An LLM decoder left to itself can drift from the audio: it paraphrases a long prompt, stops
early, or loops. The adapter's token-CTC head (training/losses.py) reads the same frames over
the LLM's own vocabulary and knows which token sequences the audio can have produced, and
where they end. As in hybrid CTC/attention decoding (Watanabe et al. 2017, "Hybrid
CTC/Attention Architecture for End-to-End Speech Recognition", IEEE JSTSP 11(8)), each step
scores a candidate token c after the prefix g as

    (1 − λ)·log P_LLM(c | g) + λ·(log P_CTC(g·c…) − log P_CTC(g…))

where P_CTC(h…) is the CTC prefix probability, the total probability of every frame alignment
whose labels begin with h, and the end token scores log P_CTC(g) − log P_CTC(g…), the
probability that the audio holds exactly g. Only the LLM's ``top_k`` tokens are scored (the
pre-beam of the paper); the rest are ruled out.

The prefix probability follows the paper's recursion over frames t for the forward variables
r_n(t) (the last frame emits the prefix's last label) and r_b(t) (it emits blank):

    r_n^h(t) = (r_n^h(t−1) + φ(t−1))·y_c(t),    r_b^h(t) = (r_b^h(t−1) + r_n^h(t−1))·y_blank(t)

with φ = r_b^g + r_n^g (only r_b^g when c repeats g's last label). Both are first-order linear
recurrences, so they are solved for all frames at once with cumulative sums and
``logcumsumexp`` in log space, not a loop over frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

from engine.biasing import HotwordBoost

NEG_INF = float("-inf")


@dataclass(frozen=True)
class PrefixState:
    """CTC forward variables of one prefix over the chunk's frames, log space, float64, on the frames' device."""

    r_n: torch.Tensor  # (T,)
    r_b: torch.Tensor  # (T,)
    last: int | None  # the prefix's last token (None: empty prefix)
    log_prefix: float  # log P_CTC(prefix…)

    @property
    def log_final(self) -> float:
        """log P_CTC(prefix): the audio holds exactly this prefix."""
        return float(torch.logaddexp(self.r_n[-1], self.r_b[-1]))


def _shifted_cumsum(values: torch.Tensor) -> torch.Tensor:
    """[0, v0, v0+v1, ...] along the last axis: the sum of everything before each position."""
    return torch.nn.functional.pad(values.cumsum(dim=-1)[..., :-1], (1, 0))


NORM_ROWS = 256  # frames per matmul when computing normalisers: bounds the (1+V, 256) temporary (50 MB in fp32)


def _score_dtype(queries: torch.Tensor, keys: torch.Tensor) -> torch.dtype:
    return torch.float64 if torch.float64 in (queries.dtype, keys.dtype) else torch.float32


def log_normalisers(queries: list[torch.Tensor], keys: torch.Tensor) -> list[torch.Tensor]:
    """log Σ_label exp(q_t·k_label) over all 1+V labels for every frame t of every chunk: (T_i,) each.

    This is the one product over the whole vocabulary (49,153 labels for SmolLM2), so the frames of a
    whole batch go through it together, in blocks of NORM_ROWS, as K·Qᵀ. On the 2-core development CPU
    that took 0.53 ms a frame against 0.84 ms for one 60-frame chunk at a time as Q·Kᵀ.
    """
    if not queries:
        return []
    dtype = _score_dtype(queries[0], keys)
    keys = keys.to(dtype)
    frames = torch.cat([q.to(dtype) for q in queries])  # (ΣT, D)
    norms = torch.cat([torch.mm(keys, block.T).logsumexp(dim=0) for block in frames.split(NORM_ROWS)]) if len(frames) else frames[:, 0]
    return list(norms.split([len(q) for q in queries]))


class CTCPrefixScorer:
    """Prefix probabilities of token sequences under one chunk's token-CTC posteriors.

    The posteriors are log_softmax(queries @ keys.T) over T frames and 1+V labels: label 0 is
    blank, 1+i is LLM token i (AcLLM's token-CTC layout, FrameStackProjector.token_logit_parts).
    Only the normaliser is computed over the whole vocabulary, once; a token's column is computed
    when a prefix ends in it, so the (T, 1+V) matrix is never held.
    """

    def __init__(self, queries: torch.Tensor, keys: torch.Tensor, log_norm: torch.Tensor | None = None):
        """``log_norm``: the (T,) normaliser from log_normalisers, when the caller computed it for many chunks at once."""
        if queries.ndim != 2 or queries.shape[0] == 0 or keys.ndim != 2 or keys.shape[1] != queries.shape[1]:
            raise ValueError(f"expected queries (T > 0, D) and keys (1+V, D), got {tuple(queries.shape)} and {tuple(keys.shape)}")
        dtype = _score_dtype(queries, keys)
        self.queries, self.keys = queries.to(dtype), keys.to(dtype)
        self.vocab = keys.shape[0] - 1
        self._log_norm = (log_normalisers([queries], keys)[0] if log_norm is None else log_norm).double()  # (T,)
        if self._log_norm.shape != queries.shape[:1]:
            raise ValueError(f"log_norm has shape {tuple(self._log_norm.shape)}, expected ({queries.shape[0]},)")
        blank = self.columns([-1])[:, 0]
        self._blank_cum = blank.cumsum(dim=0)  # B(t) = Σ_{u≤t} log y_blank(u)
        self._blank_before = _shifted_cumsum(blank)  # B(t−1), with B(−1) = 0

    @classmethod
    def from_log_probs(cls, log_probs: torch.Tensor) -> CTCPrefixScorer:
        """A scorer for an explicit (T, 1+V) log-probability matrix (tests, other CTC heads)."""
        return cls(log_probs.double(), torch.eye(log_probs.shape[1], dtype=torch.float64))

    def columns(self, tokens: list[int]) -> torch.Tensor:
        """log y_c(t) for LLM tokens c (−1: blank): (T, K), float64."""
        keys = self.keys[torch.tensor(tokens, dtype=torch.long, device=self.keys.device) + 1]
        return (self.queries @ keys.T).double() - self._log_norm[:, None]

    def initial(self) -> PrefixState:
        """The empty prefix: all-blank alignments only; its prefix probability is 1."""
        r_n = torch.full_like(self._blank_cum, NEG_INF)
        return PrefixState(r_n=r_n, r_b=self._blank_cum.clone(), last=None, log_prefix=0.0)

    def extend(self, state: PrefixState, tokens: list[int]) -> list[PrefixState]:
        """The states of ``state``'s prefix followed by each of ``tokens`` (LLM token ids < vocab)."""
        if not tokens:
            return []
        y = self.columns(tokens).T  # (K, T)
        phi = torch.logaddexp(state.r_b, state.r_n).expand_as(y).clone()  # (K, T)
        if state.last is not None:
            repeats = torch.tensor([t == state.last for t in tokens], device=y.device)
            phi[repeats] = state.r_b  # a repeated label needs a blank in between
        # φ(t−1), with what precedes the first frame: 1 for the empty prefix, 0 otherwise.
        start = torch.full((len(tokens), 1), 0.0 if state.last is None else NEG_INF, dtype=y.dtype, device=y.device)
        phi_before = torch.cat([start, phi[:, :-1]], dim=1)
        # r_n(t) = C(t) + logcumsumexp_s≤t(φ(s−1) − C(s−1)), C the cumulative log y_c.
        c_cum, c_before = y.cumsum(dim=1), _shifted_cumsum(y)
        r_n = c_cum + torch.logcumsumexp(phi_before - c_before, dim=1)
        # r_b(t) = B(t) + logcumsumexp_{1≤s≤t}(r_n(s−1) − B(s−1)); r_b(0) = 0 in probability.
        r_n_before = torch.cat([torch.full((len(tokens), 1), NEG_INF, dtype=y.dtype, device=y.device), r_n[:, :-1]], dim=1)
        r_b = self._blank_cum + torch.logcumsumexp(r_n_before - self._blank_before, dim=1)
        # P(h…): the first frame that emits c, after any alignment of g.
        log_prefix = torch.logsumexp(phi_before + y, dim=1)
        return [
            PrefixState(r_n=r_n[k], r_b=r_b[k], last=token, log_prefix=float(log_prefix[k]))
            for k, token in enumerate(tokens)
        ]


class CTCPrefixFusion(LogitsProcessor):
    """Rescores the LLM's top-k tokens with the token-CTC prefix probability (see the module docstring).

    One scorer per input chunk; ``num_beams`` rows of the batch share one. Prefix states are cached
    by the generated token ids, so beam search's reordering of rows needs no bookkeeping. Put it
    last in the processor list: it reads the scores after the other processors and rules out
    everything outside the top-k.
    """

    def __init__(
        self, scorers: list[CTCPrefixScorer], weight: float, eos_id: int, top_k: int = 8, num_beams: int = 1, hotwords: HotwordBoost | None = None
    ):
        if not 0.0 < weight < 1.0:
            raise ValueError(f"the CTC weight λ must be between 0 and 1 (exclusive), got {weight}")
        if top_k < 1:
            raise ValueError(f"top_k must be ≥ 1, got {top_k}")
        self.scorers = scorers
        self.weight = weight
        self.eos_id = eos_id
        self.top_k = top_k
        self.num_beams = num_beams
        # The user's hotwords are the words the CTC spells worst (rare names): a token the boost rewards at this
        # step may gain from the CTC but never lose. With a true list and boost 3, the plain fusion cut hotword
        # recall from 63% to 57% (bench/biasing.py, 20 dev-tts utterances).
        self.hotwords = hotwords
        self._states: list[dict[tuple[int, ...], PrefixState]] = [{(): s.initial()} for s in scorers]

    def _state(self, source: int, prefix: tuple[int, ...]) -> PrefixState:
        cache = self._states[source]
        state = cache.get(prefix)
        if state is None:  # a token from outside the last step's candidates (another processor forced it)
            parent = self._state(source, prefix[:-1])
            state = cache[prefix] = self._extend(source, parent, [prefix[-1]])[0]
        return state

    def _extend(self, source: int, state: PrefixState, tokens: list[int]) -> list[PrefixState]:
        scorer = self.scorers[source]
        known = [t for t in tokens if 0 <= t < scorer.vocab]
        extended = dict(zip(known, scorer.extend(state, known), strict=True))
        # A token the CTC has no label for (none in practice) keeps the prefix's CTC score.
        return [extended.get(t, PrefixState(state.r_n, state.r_b, state.last, state.log_prefix)) for t in tokens]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        log_probs = scores.float().log_softmax(dim=-1)
        fused = torch.full_like(log_probs, NEG_INF)
        k = min(self.top_k, log_probs.shape[-1])
        candidates = log_probs.topk(k, dim=-1).indices.tolist()
        fresh: list[dict[tuple[int, ...], PrefixState]] = [{} for _ in self.scorers]
        for row, generated in enumerate(input_ids.tolist()):
            source = row // self.num_beams
            if self.eos_id in generated:  # a finished row (generate() pads it): nothing left to score
                fused[row] = log_probs[row]
                continue
            prefix = tuple(generated)
            state = fresh[source][prefix] = self._state(source, prefix)  # kept: the parent of next step's prefix
            if not math.isfinite(state.log_prefix):  # more tokens than the frames can hold: the LLM alone
                fused[row] = log_probs[row]
                continue
            tokens = [t for t in candidates[row] if t != self.eos_id]
            gains = {}
            for token, new in zip(tokens, self._extend(source, state, tokens), strict=True):
                fresh[source][prefix + (token,)] = new
                gains[token] = new.log_prefix - state.log_prefix
            if self.eos_id in candidates[row]:
                gains[self.eos_id] = state.log_final - state.log_prefix
            ids = torch.tensor(list(gains), device=log_probs.device)
            ctc = torch.tensor(list(gains.values()), dtype=log_probs.dtype, device=log_probs.device)
            if self.hotwords is not None and self.hotwords.last_boost is not None:
                ctc = torch.where(self.hotwords.last_boost[row, ids] > 0, ctc.clamp(min=0.0), ctc)
            fused[row, ids] = (1.0 - self.weight) * log_probs[row, ids] + self.weight * ctc
        # Keep only this step's candidates (and the empty prefix): every row's next prefix is one of them.
        for source, states in enumerate(fresh):
            states.setdefault((), self._states[source][()])
            self._states[source] = states
        return fused.to(scores.dtype)
