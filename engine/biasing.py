"""Hotword boost: shallow fusion with a prefix tree of the hotwords' tokens, as a logits processor.

Each hotword is tokenized the ways it can appear in the transcript (at the
start of the text and after a space). While decoding, a hypothesis that is d
tokens into a hotword has earned d·bonus; the next token that continues the
hotword earns one more bonus, and a token that leaves it unfinished takes the
earned bonus back (starting another hotword earns one). A finished hotword
keeps its bonus. This is contextual biasing by shallow fusion with failure
retraction (Le et al. 2021, "Deep shallow fusion for RNN-T personalization"),
written as a per-step logits adjustment: a name the audio supports wins over
a common word that sounds alike, and half-written names are not rewarded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    complete: bool = False  # a hotword ends here


class TokenTrie:
    """Prefix tree over token-id sequences."""

    def __init__(self, sequences: list[list[int]]):
        self.root = _Node()
        self.size = 0
        for sequence in sequences:
            node = self.root
            for token in sequence:
                node = node.children.setdefault(token, _Node())
            node.complete = node.complete or bool(sequence)
            self.size += bool(sequence)

    @classmethod
    def for_hotwords(cls, tokenizer, hotwords: tuple[str, ...]) -> TokenTrie:
        sequences = []
        for term in hotwords:
            for spelled in (term, " " + term):  # at the start of the text, and after a space
                ids = tokenizer(spelled, add_special_tokens=False)["input_ids"]
                if ids:
                    sequences.append(ids)
        return cls(sequences)

    def match(self, generated: list[int]) -> tuple[int, set[int]]:
        """(depth, continuations) of the longest unfinished hotword prefix that ends ``generated``.

        depth is 0 when no hotword is in progress (or the longest match is a finished hotword).
        """
        for start in range(len(generated)):  # longest suffix first
            node = self.root
            for token in generated[start:]:
                node = node.children.get(token)
                if node is None:
                    break
            else:
                depth = len(generated) - start
                return (0 if node.complete else depth), set(node.children)
        return 0, set()

    def next_tokens(self, generated: list[int]) -> set[int]:
        """Tokens that start a hotword or continue the one in progress."""
        return set(self.root.children) | self.match(generated)[1]


class HotwordBoost(LogitsProcessor):
    """Adjusts scores by the hotword bonus earned or lost; one trie per batch row (beams share their row's)."""

    def __init__(self, tries: list[TokenTrie], bonus: float, num_beams: int = 1, max_depth: int = 16):
        self.tries = tries
        self.bonus = bonus
        self.num_beams = num_beams
        self.max_depth = max_depth  # only this many trailing tokens can be inside a hotword
        self.last_boost: torch.Tensor | None = None  # the latest step's adjustment (B·beams, V), read by CTCPrefixFusion

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids (B·beams, t): generate() passes only the new tokens when decoding from embeddings
        boost = torch.zeros_like(scores)
        for row, generated in enumerate(input_ids.tolist()):
            trie = self.tries[row // self.num_beams]
            if trie.size == 0:
                continue
            depth, continuations = trie.match(generated[-self.max_depth :])
            boost[row] = -self.bonus * depth  # leaving the hotword unfinished takes back what it earned
            boost[row, list(trie.root.children)] = self.bonus * (1 - depth)  # ... unless another one starts
            if continuations:
                boost[row, list(continuations)] = self.bonus
        self.last_boost = boost
        return scores + boost


class ContextMix(LogitsProcessor):
    """Joint decoding with and without the prompt's context (Seed-ASR's joint context beam search).

    The batch holds every chunk twice: rows ``[0, n)`` are prompted with the context (hotwords,
    meeting description, history), rows ``[n, 2n)`` with none, ``n = chunks · beams``. Both halves
    get the same mixed score α·log P(y | speech, context) + (1 − α)·log P(y | speech), so they pick
    the same tokens and stay in step; only the first half's result is kept. A context that pulls
    the transcript away from what the audio supports is outvoted by the context-free stream.
    Seed-ASR (arXiv 2407.04675) describes this joint search and its weight α.
    """

    def __init__(self, alpha: float):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"the context weight α must be between 0 and 1, got {alpha}")
        self.alpha = alpha

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] % 2:
            raise ValueError("ContextMix needs the batch laid out as [with context; without context]")
        log_probs = scores.float().log_softmax(dim=-1)  # (2n, V)
        with_context, without = log_probs.chunk(2)
        mixed = self.alpha * with_context + (1.0 - self.alpha) * without
        return torch.cat([mixed, mixed]).to(scores.dtype)
