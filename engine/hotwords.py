"""Hotword lists: one term per line, as users paste them."""

from __future__ import annotations

from pathlib import Path

from engine.errors import KeyscribeError


def parse_hotwords(text: str) -> tuple[str, ...]:
    """Terms in order of first appearance; ``#`` starts a comment; case variants and repeats collapse."""
    seen: set[str] = set()
    terms: list[str] = []
    for line in text.removeprefix("\ufeff").splitlines():
        term = " ".join(line.split("#", 1)[0].split())
        if term and term.casefold() not in seen:
            seen.add(term.casefold())
            terms.append(term)
    return tuple(terms)


def read_hotwords(path: str | Path) -> tuple[str, ...]:
    path = Path(path)
    try:
        return parse_hotwords(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as err:
        raise KeyscribeError(f"Hotword file {path} does not exist: check the path.") from err
    except UnicodeDecodeError as err:
        raise KeyscribeError(f"Hotword file {path} is not UTF-8 text: save it as UTF-8 and try again.") from err


def _fold(text: str) -> str:
    """Lower case, letters and digits only, single spaces: how the CTC head spells."""
    kept = "".join(ch if ch.isalnum() or ch == "'" else " " for ch in text.casefold())
    return " ".join(kept.split())


def retrieve(hotwords: tuple[str, ...], hypothesis: str, limit: int = 20, min_score: float = 60.0) -> tuple[str, ...]:
    """The hotwords most likely spoken in a chunk, judged from its first-pass (CTC) hypothesis.

    Lists of thousands of terms cannot all go into the prompt, so each chunk gets
    at most ``limit``: those whose spelling best matches some stretch of the hypothesis
    with a score of at least ``min_score`` (fuzzy partial matching, as in SLAM-LLM's
    contextual-ASR filter mode). A list no longer than ``limit`` is returned whole:
    nothing needs filtering.

    The cut-off trades what reaches the prompt against what misleads it. On the first 40
    dev-tts utterances with the shipped model, a cut-off of 70 kept 0.6 terms a chunk and
    32% of the true ones among 100 distractors; taking the best 20 whatever their score
    kept 85% of them, yet on 20 utterances WER rose from 27.4% to 51.2% (boost 3): the
    shipped model, trained without lists, takes the distractors that come along for
    words it heard (bench/biasing.py; README, Hotwords).

    The context-SFT weights learned to ignore distractors, so the cut-off went down to 60.
    On the first 40 dev-tts utterances with names (boost 3, CTC fusion with its hotword
    guard), WER / U-WER / B-WER / recall at true+100 went from 21.3 / 8.7 / 67.8 / 28.8%
    at 70 to 17.3 / 7.8 / 52.2 / 42.4% at 60, and at true+1000 from 23.2 / 9.0 / 75.6 /
    22.0% to 22.2 / 10.5 / 65.6 / 32.2%. With no cut-off (the best 20), +100 gave
    25.8 / 17.1 / 57.8 / 40.7%: distractors still get written when too many come along.
    """
    if len(hotwords) <= limit:
        return hotwords
    from rapidfuzz import process

    folded_hypothesis = _fold(hypothesis)
    if not folded_hypothesis:
        return ()
    choices = {i: _fold(term) for i, term in enumerate(hotwords)}
    matches = process.extract(folded_hypothesis, choices, scorer=_term_in_text, limit=limit, score_cutoff=min_score)
    # Keep the user's order among the chosen terms: it is stable from chunk to chunk.
    chosen = sorted(index for _, _, index in matches)
    return tuple(hotwords[i] for i in chosen)


def _term_in_text(text: str, term: str, **kwargs) -> float:
    """How well ``term`` matches its best-aligned stretch of ``text`` (0-100); short terms must match closely."""
    from rapidfuzz import fuzz

    if not term:
        return 0.0
    score = fuzz.partial_ratio(term, text, **kwargs)
    return score if len(term) >= 5 or score == 100 else 0.0
