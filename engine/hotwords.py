"""Hotword lists: one term per line, as users paste them."""

from __future__ import annotations

from pathlib import Path

from engine.errors import KeyscribeError


def parse_hotwords(text: str) -> tuple[str, ...]:
    """Terms in order of first appearance; ``#`` starts a comment; case variants and repeats collapse."""
    seen: set[str] = set()
    terms: list[str] = []
    for line in text.splitlines():
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
