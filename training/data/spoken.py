"""Numbers written as the words a speaker (or a TTS voice) says.

Labels must match the audio word for word: a label "1990" over audio that says
"one thousand nine hundred ninety" teaches the model noise. So every number in
text we synthesize is spelled out before synthesis, and real corpora keep only
numbers whose reading is not in doubt. num2words does the spelling.
"""

from __future__ import annotations

import re

from num2words import num2words

MONTHS = ("January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _tidy(words: str) -> str:
    # num2words writes "three thousand, four hundred and two"; speech has no comma.
    return words.replace(",", "")


def cardinal(n: int) -> str:
    return _tidy(num2words(n, lang="en"))


def ordinal(n: int) -> str:
    return _tidy(num2words(n, lang="en", to="ordinal"))


def year(n: int) -> str:
    """1990 → "nineteen ninety", 2007 → "two thousand and seven"."""
    return _tidy(num2words(n, lang="en", to="year"))


def clock_time(hour: int, minute: int) -> str:
    """(3, 30) → "three thirty"; (9, 0) → "nine o'clock"; (12, 5) → "twelve oh five".

    No "a.m."/"p.m.": TTS engines read those inconsistently ("am", "a m", "ay em").
    """
    if not (1 <= hour <= 12 and 0 <= minute < 60):
        raise ValueError(f"Not a twelve-hour clock time: {hour}:{minute:02d}.")
    if minute == 0:
        return f"{cardinal(hour)} o'clock"
    minutes = f"oh {cardinal(minute)}" if minute < 10 else cardinal(minute)
    return f"{cardinal(hour)} {minutes}"


def money(amount: int, currency: str = "dollars") -> str:
    return f"{cardinal(amount)} {currency}"


def percent(value: int) -> str:
    return f"{cardinal(value)} percent"


# Not part of a word ("3D"), a decimal ("28.8") or a longer number ("1,200").
_SMALL_INTEGER = re.compile(r"(?<![\w.,])(\d{1,2})(?!\w|[.,]\d)")


def spell_small_integers(text: str) -> str:
    """Spells standalone integers 0–99 ("press 1" → "press one"); leaves other digits alone."""
    return _SMALL_INTEGER.sub(lambda match: cardinal(int(match.group(1))), text)


def has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)
