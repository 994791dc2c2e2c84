"""Hotword lists: one term per line, as users paste them."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np

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


def spot(hotwords: tuple[str, ...], log_probs: np.ndarray, encode: Callable[[str], list[int]]) -> np.ndarray:
    """Each term's keyword score in a chunk's character posteriors ``log_probs`` (T, V) (engine.kws);
    ``encode`` spells a term in the CTC alphabet."""
    from engine.kws import keyword_scores

    return keyword_scores(log_probs, spelled(hotwords, encode))


def heard_spans(
    hotwords: tuple[str, ...], log_probs: np.ndarray, encode: Callable[[str], list[int]], min_score: float
) -> list[tuple[int, int]]:
    """The frames [first, last] of each term whose keyword score in ``log_probs`` (T, V) is at least ``min_score``."""
    if not hotwords:
        return []
    from engine.kws import keyword_scores, keyword_spans

    terms = spelled(tuple(hotwords), encode)
    heard = [term for term, score in zip(terms, keyword_scores(log_probs, terms), strict=True) if score >= min_score]
    # Spans only for the terms heard, as engine/correction.py does: finding one costs two more passes over the frames.
    return [(int(a), int(b)) for a, b in keyword_spans(log_probs, heard)] if heard else []


def retrieve(
    hotwords: tuple[str, ...],
    log_probs: np.ndarray,
    encode: Callable[[str], list[int]],
    limit: int = 20,
    min_score: float = -1.5,
    spotted: np.ndarray | None = None,
) -> tuple[str, ...]:
    """The hotwords most likely spoken in a chunk, judged from its first-pass CTC posteriors.

    Lists of thousands of terms cannot all go into the prompt, so each chunk gets at most
    ``limit``: those whose spelling fits some stretch of the chunk's character posteriors
    ``log_probs`` (T, V) with a keyword-spotting score (engine/kws.py: mean log-likelihood
    ratio per character against the greedy path) of at least ``min_score``, best first.
    ``encode`` spells a term in the CTC alphabet; a term it cannot spell is never chosen.
    A list no longer than ``limit`` is returned whole: nothing needs filtering. ``spotted`` is
    ``spot``'s answer for this list and chunk, when the caller has it already.

    Matching the posteriors rather than the greedy CTC text keeps the letters the argmax
    lost. On the first 40 dev-tts utterances with names, among 100 distractors, fuzzy
    matching of the CTC text (rapidfuzz partial ratio ≥ 60, the method before this one)
    kept 64.4% of the true terms and 2.83 distractors a chunk; spotting kept 78.0% and 1.20
    at ≥ -1.5, 89.8% and 2.45 at ≥ -2.0; among 1000, 62.7% / 18.3 against 78.0% / 8.6 at
    -1.5. Decoded (boost 3), true+100 gave WER / U-WER / B-WER / recall 17.3 / 7.8 / 52.2 /
    42.4% with the fuzzy method, 15.1 / 9.6 / 35.6 / 62.7% at -1.5 and 16.1 / 12.3 / 30.0 /
    69.5% at -2.0, where more distractors reach the prompt and get written. (The fuzzy
    method is ``retrieve`` at commit 8e7ab57; README, Hotwords.)
    """
    if len(hotwords) <= limit:
        return hotwords
    scores = spotted if spotted is not None else spot(hotwords, log_probs, encode)
    ranked = [i for i in np.argsort(-scores, kind="stable")[:limit] if scores[i] >= min_score]
    # Keep the user's order among the chosen terms: it is stable from chunk to chunk.
    return tuple(hotwords[i] for i in sorted(ranked))


@functools.lru_cache(maxsize=4)
def spelled(hotwords: tuple[str, ...], encode: Callable[[str], list[int]]) -> tuple[tuple[int, ...], ...]:
    """Each term in CTC labels; every chunk of a recording asks for the same list, so it is spelled once."""
    return tuple(tuple(encode(without_accents(term))) for term in hotwords)


def without_accents(text: str) -> str:
    """"São Paulo" -> "Sao Paulo": how an English character CTC spells what it hears."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
