"""Greedy decoding that verifies a CTC draft: most transcript tokens cost no sequential LLM step.

The adapter's token-CTC head (engine/model/adapter.py) reads a token sequence straight off
the audio, in the LLM's own vocabulary, with no LLM pass. On a CPU one forward pass over a
block of k tokens costs much less than k one-token passes (the weights are read once), so
the draft is fed to the LLM in blocks and checked: the longest prefix on which the LLM's own
greedy choice agrees is accepted at once, and the first disagreement is replaced by the LLM's
token (speculative decoding with a free drafter; Leviathan et al. 2023, arXiv 2211.17192, for
the verification scheme). The output is exactly greedy decoding's: every kept token is the
argmax of the LLM's (processed) scores given the tokens before it.

A draft drifts from the LLM's text where they disagree (a word the LLM spells differently, a
comma the CTC missed); after a rejection the draft pointer is moved to where the LLM's token
occurs a little further on, or one step on (a substitution). Blocks shrink after rejections
and grow after full acceptance, so a poor draft costs little more than plain greedy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, LogitsProcessorList

RESYNC_WINDOW = 3  # after a rejection, look this many draft tokens ahead for the LLM's token


@dataclass
class DraftStats:
    forwards: int = 0  # LLM forward passes after the prompt
    drafted: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens kept

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


@dataclass(frozen=True)
class DraftResult:
    token_ids: list[int]  # generated tokens, the end token included when one was produced
    log_probs: list[float]  # log-probability of each under the processed scores (as generate's scores)
    stats: DraftStats


@torch.inference_mode()
def greedy_with_draft(
    llm,
    embeds: torch.Tensor,  # (1, L, D) prompt with the audio spliced in, no padding
    draft: Sequence[int],
    max_new_tokens: int,
    stop_ids: set[int],
    processors: LogitsProcessorList | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_block: int = 8,
) -> DraftResult:
    if embeds.shape[0] != 1:
        raise ValueError("greedy_with_draft decodes one sequence at a time")
    stats = DraftStats()
    cache = DynamicCache()
    out = llm(inputs_embeds=embeds, past_key_values=cache, use_cache=True, logits_to_keep=1)
    tokens: list[int] = []
    log_probs: list[float] = []

    def choose(logits: torch.Tensor) -> int:
        """The greedy token after ``tokens``, from one position's raw logits (V,)."""
        scores = logits.float()[None]  # (1, V): generate() scores in float32
        if processors is not None:
            scores = processors(torch.tensor([tokens], dtype=torch.long, device=scores.device), scores)
        token = int(scores.argmax(dim=-1))
        log_probs.append(float(scores.log_softmax(dim=-1)[0, token]))
        tokens.append(token)
        return token

    token = choose(out.logits[0, -1])
    pointer, block = 0, 2  # next unused draft token; how many to propose next round
    while token not in stop_ids and len(tokens) < max_new_tokens:
        if should_stop is not None and should_stop():
            break
        pointer = _resync(draft, pointer, token)
        proposal = list(draft[pointer : pointer + min(block, max_new_tokens - len(tokens))])
        fed = torch.tensor([[token, *proposal]], dtype=torch.long, device=embeds.device)  # (1, 1+k)
        out = llm(input_ids=fed, past_key_values=cache, use_cache=True)
        stats.forwards += 1
        stats.drafted += len(proposal)
        kept = 0
        token = choose(out.logits[0, 0])
        while kept < len(proposal) and token == proposal[kept] and token not in stop_ids and len(tokens) < max_new_tokens:
            kept += 1
            token = choose(out.logits[0, kept])
        stats.accepted += kept
        pointer += kept
        if kept < len(proposal):
            cache.crop(-(len(proposal) - kept))  # drop the rejected draft tokens' keys and values
            block = max(1, block // 2)
        else:
            block = min(max_block, block * 2)
    return DraftResult(token_ids=tokens, log_probs=log_probs, stats=stats)


def _resync(draft: Sequence[int], pointer: int, token: int) -> int:
    """Where the draft continues after the LLM chose ``token``: past its next occurrence, else one on."""
    for offset in range(RESYNC_WINDOW):
        if pointer + offset < len(draft) and draft[pointer + offset] == token:
            return pointer + offset + 1
    return pointer + 1
