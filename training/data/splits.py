"""Deterministic train/dev assignment by text, so a sentence never lands in both splits."""

from __future__ import annotations

import hashlib
import re

_NOT_WORD = re.compile(r"[^\w' ]+")
_SPACES = re.compile(r"\s+")


def split_key(text: str) -> str:
    """Casing, punctuation and spacing dropped: "Thank you." and "thank you" share a key."""
    text = _NOT_WORD.sub(" ", text.lower().replace("-", " "))
    return _SPACES.sub(" ", text).strip()


def text_fraction(text: str, salt: str) -> float:
    """A stable number in [0, 1) for a text; the salt keeps different corpora's splits independent."""
    digest = hashlib.sha256(f"{salt}\0{split_key(text)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_dev_text(text: str, dev_fraction: float, salt: str) -> bool:
    if not 0.0 <= dev_fraction <= 1.0:
        raise ValueError(f"dev_fraction must be between 0 and 1, got {dev_fraction}.")
    return text_fraction(text, salt) < dev_fraction


def word_count(text: str) -> int:
    return len(split_key(text).split())
