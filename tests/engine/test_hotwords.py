"""Hotword files and per-chunk retrieval from a first-pass hypothesis."""

from __future__ import annotations

import pytest

from engine.errors import KeyscribeError
from engine.hotwords import parse_hotwords, read_hotwords, retrieve


def test_parse_handles_comments_duplicates_case_and_spacing():
    text = "\ufeff# board meeting\nPriya Raghunathan\n  Novartis  \nnovartis\nNOVARTIS # again\n\nSão  Paulo\nGDPR\n"
    assert parse_hotwords(text) == ("Priya Raghunathan", "Novartis", "São Paulo", "GDPR")


def test_read_gives_clear_errors(tmp_path):
    with pytest.raises(KeyscribeError, match="does not exist"):
        read_hotwords(tmp_path / "missing.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Müller\n".encode("latin-1"))
    with pytest.raises(KeyscribeError, match="UTF-8"):
        read_hotwords(bad)
    good = tmp_path / "names.txt"
    good.write_text("\ufeffMüller\nKowalski\n", encoding="utf-8")
    assert read_hotwords(good) == ("Müller", "Kowalski")


def test_retrieve_finds_misheard_terms_among_many_distractors():
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(7)
    distractors = {fake.name() for _ in range(600)} | {fake.company() for _ in range(400)}
    true_terms = ("Raghunathan", "Novartis", "Rotterdam harbour")
    hotwords = tuple(sorted(distractors)) + true_terms
    # A CTC first pass spells what it hears: lower case, no punctuation, small slips.
    hypothesis = "our next speaker is doctor priya ragunathan from novartis she runs the roterdam harbour project"
    chosen = retrieve(hotwords, hypothesis, limit=20)
    assert len(chosen) <= 20
    assert set(true_terms) <= set(chosen)


def test_retrieve_returns_short_lists_whole_and_nothing_for_silence():
    assert retrieve(("Alpha", "Beta"), "", limit=20) == ("Alpha", "Beta")
    assert retrieve(tuple(f"Term{i:03d}" for i in range(50)), "", limit=20) == ()
