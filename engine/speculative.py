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

``batch_greedy_with_proposals`` verifies the same way for a whole batch, with guesses from a
callback (the lexicon draft's next words, engine/draft.py), and lets finished rows leave.
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


Propose = Callable[[int, list[int], int], list[int]]  # (row, its tokens so far, at most how many) → guessed next tokens


@torch.inference_mode()
def batch_greedy_with_proposals(
    llm,
    embeds: torch.Tensor,  # (B, L, D) prompts with the audio spliced in, left-padded
    attention_mask: torch.Tensor,  # (B, L)
    max_new_tokens: int,
    eos_id: int,
    filler_id: int,
    propose: Propose | None = None,
    processors: LogitsProcessorList | None = None,
    should_stop: Callable[[], bool] | None = None,
    cache: DynamicCache | None = None,
    cached: int = 0,
    block_tokens: int = 8,
    processed_log_probs: bool = False,
) -> tuple[list[DraftResult], DraftStats]:
    """Greedy decoding of a batch in which finished rows leave, and each row may check a guessed continuation.

    Each LLM pass feeds every unfinished row its last token and, with ``propose``, its guess at the tokens
    after it; a row keeps the guesses that its own (processed) greedy choice agrees with, plus the LLM's
    token where they part. Rows accept different numbers of tokens, so none waits for another: the keys and
    values of rejected guesses stay in ``cache`` but are masked out, and each row's positions count only
    what it kept. A row that has finished is dropped from the batch, so a pass costs what the rows still
    writing need. A pass over many rows is bound by arithmetic, over a few by reading the weights, so guesses
    are only made while the rows times the guess length stay within ``block_tokens``.

    The tokens are generate()'s greedy ones; the log-probabilities returned are the LLM's own, before the
    processors (how sure the model was of the token that was kept), or with ``processed_log_probs`` those
    of the processed scores (what generate()'s ``scores`` hold). ``cache`` may already hold the first
    ``cached`` positions of every row (a shared prompt opening). The processors see every row, in its
    original place, with its tokens so far left-padded with ``filler_id`` (a special token that is not
    ``eos_id`` and that they ignore), and zero scores for rows that have finished. ``should_stop`` is
    polled between passes.
    """
    rows = embeds.shape[0]
    device = embeds.device
    mask = attention_mask.to(device=device, dtype=torch.long)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    cache = cache if cache is not None else DynamicCache()
    out = llm(
        inputs_embeds=embeds[:, cached:], attention_mask=mask, position_ids=positions[:, cached:], past_key_values=cache, use_cache=True,
        logits_to_keep=1,
    )
    active = list(range(rows))  # the rows still writing, in the cache's order
    seen = mask.sum(-1).tolist()  # positions each active row has kept so far
    tokens: list[list[int]] = [[] for _ in range(rows)]
    log_probs: list[list[float]] = [[] for _ in range(rows)]
    done = [False] * rows
    stats = DraftStats()

    def choose(logits: torch.Tensor, deciding: list[int]) -> dict[int, int]:
        """Appends each deciding row's greedy token, chosen from one position's raw logits of the active rows
        (A, V), and returns them by slot (``deciding`` holds indices into ``active``)."""
        scores = logits.float()
        if processors is not None:
            full = scores.new_zeros((rows, scores.shape[-1]))
            full[active] = scores
            width = max(len(t) for t in tokens)
            history = torch.tensor([[filler_id] * (width - len(t)) + t for t in tokens], dtype=torch.long, device=device)
            scores = processors(history, full)[active]
        chosen = scores.argmax(dim=-1).tolist()
        own = (scores if processed_log_probs else logits.float()).log_softmax(dim=-1)
        for slot in deciding:
            row = active[slot]
            tokens[row].append(chosen[slot])
            log_probs[row].append(float(own[slot, chosen[slot]]))
            done[row] = chosen[slot] == eos_id or len(tokens[row]) >= max_new_tokens
        return {slot: chosen[slot] for slot in deciding}

    choose(out.logits[:, -1], list(range(rows)))
    while not (should_stop is not None and should_stop()):
        staying = [slot for slot, row in enumerate(active) if not done[row]]
        if not staying:
            break
        if len(staying) < len(active):
            cache.batch_select_indices(torch.tensor(staying, device=device))
            mask, active, seen = mask[staying], [active[k] for k in staying], [seen[k] for k in staying]
        room = block_tokens // len(active) - 1  # guessed tokens per row this pass
        guesses = [propose(row, tokens[row], min(room, max_new_tokens - len(tokens[row]) - 1)) if propose and room > 0 else [] for row in active]
        width = 1 + max(len(g) for g in guesses)
        fed = torch.full((len(active), width), filler_id, dtype=torch.long)
        block_mask = torch.zeros((len(active), width), dtype=torch.long)
        for slot, (row, guess) in enumerate(zip(active, guesses, strict=True)):
            fed[slot, : 1 + len(guess)] = torch.tensor([tokens[row][-1], *guess])
            block_mask[slot, : 1 + len(guess)] = 1
        mask = torch.cat([mask, block_mask.to(device)], dim=1)
        block_positions = torch.tensor(seen, device=device)[:, None] + torch.arange(width, device=device)
        out = llm(input_ids=fed.to(device), attention_mask=mask, position_ids=block_positions, past_key_values=cache, use_cache=True)
        stats.forwards += 1
        deciding = list(range(len(active)))
        kept = [0] * len(active)
        for offset in range(width):
            chosen = choose(out.logits[:, offset], deciding)
            deciding = [s for s in deciding if not done[active[s]] and offset < len(guesses[s]) and chosen[s] == guesses[s][offset]]
            for slot in deciding:
                kept[slot] += 1
            if not deciding:
                break
        for slot, accepted in enumerate(kept):
            stats.drafted += len(guesses[slot])
            stats.accepted += accepted
            mask[slot, mask.shape[1] - width + 1 + accepted :] = 0  # the guesses after the first miss were never written
            seen[slot] += 1 + accepted
    return [DraftResult(token_ids=t, log_probs=p, stats=stats) for t, p in zip(tokens, log_probs, strict=True)], stats
