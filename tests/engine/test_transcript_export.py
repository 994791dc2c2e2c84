"""Transcript invariants and exporters, each export read back with a real parser."""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import docx
import pytest
import srt
import webvtt

from engine import export as export_module
from engine.export import (
    FORMATS,
    MAX_CUE_DURATION_S,
    MAX_LINE_CHARS,
    MAX_LINES_PER_CUE,
    export,
    format_timestamp,
    subtitle_cues,
)
from engine.transcript import Segment, Transcript, Word

REPO_ROOT = Path(__file__).resolve().parents[2]


def _words_for(
    text: str, start_s: float, seconds_per_word: float, gap_s: float = 0.0
) -> tuple[Word, ...]:
    """Whisper-style words (leading spaces) laid out one after another."""
    words = []
    time_s = start_s
    for index, token in enumerate(text.split()):
        words.append(Word(time_s, time_s + seconds_per_word, (" " if index else "") + token, 0.9))
        time_s += seconds_per_word + gap_s
    return tuple(words)


LONG_TEXT = (
    "So the first thing we did when we arrived at the station was look for the "
    "timetable, which of course had been moved to the other side of the building "
    "during the renovation, and nobody could tell us where."
)


@pytest.fixture
def interview() -> Transcript:
    """An interview with timed words, untimed text, an empty segment, unicode and a long segment."""
    return Transcript(
        segments=(
            Segment(
                0.0, 2.5, " Hello and welcome.", _words_for("Hello and welcome.", 0.2, 0.6), -0.2
            ),
            Segment(2.5, 5.0, "Thanks for having me. ", avg_logprob=-0.4),
            Segment(5.0, 5.5, "   "),
            Segment(5.5, 9.0, "Café, naïve — 東京で会いましょう 🎙️"),
            Segment(62.345, 80.0, LONG_TEXT, _words_for(LONG_TEXT, 62.5, 0.35, gap_s=0.05)),
            Segment(3725.0, 3727.25, "Bye & <thanks> --> see you."),
        ),
        duration_s=3730.0,
        model="keyscribe-small",
        language="en",
    )


def _compact(text: str) -> list[str]:
    return text.split()


def _assert_cue_times_ordered(times: list[tuple[float, float]]) -> None:
    previous_end_s = 0.0
    for start_s, end_s in times:
        assert start_s >= previous_end_s - 1e-3, (
            f"cue starting at {start_s} overlaps the one before"
        )
        assert end_s >= start_s
        previous_end_s = end_s


# ---------------------------------------------------------------------------
# Transcript


def test_text_is_stripped_segment_texts_joined_by_single_spaces(interview):
    expected = " ".join(s.text.strip() for s in interview.segments if s.text.strip())
    assert interview.text == expected
    assert interview.text.startswith("Hello and welcome. Thanks for having me. Café")
    assert "  " not in interview.text


def test_empty_transcript_has_empty_text():
    assert Transcript(segments=(), duration_s=0.0).text == ""


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Segment(-0.1, 1.0, "x"), "negative"),
        (lambda: Segment(2.0, 1.0, "x"), "before it starts"),
        (lambda: Segment(0.0, math.nan, "x"), "finite"),
        (lambda: Word(1.0, 0.5, "x"), "before it starts"),
        (lambda: Segment(1.0, 2.0, "a b", (Word(0.5, 1.5, "a"),)), "outside its segment"),
        (lambda: Segment(1.0, 2.0, "a b", (Word(1.0, 2.5, "a"),)), "outside its segment"),
        (
            lambda: Segment(0.0, 3.0, "a b", (Word(1.0, 2.0, "a"), Word(0.5, 2.5, "b"))),
            "goes back in time",
        ),
        (
            lambda: Transcript((Segment(5.0, 6.0, "b"), Segment(1.0, 2.0, "a")), duration_s=10.0),
            "Segment 1 .* goes back in time",
        ),
        (lambda: Transcript((), duration_s=-1.0), "non-negative"),
    ],
)
def test_invalid_times_raise_a_clear_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_plain_dicts_in_place_of_segments_are_rejected_with_a_hint():
    with pytest.raises(TypeError, match="from_dict"):
        Transcript(segments=({"start": 0, "end": 1, "text": "x"},), duration_s=1.0)


def test_lists_are_stored_as_tuples_so_transcripts_compare_and_hash():
    from_lists = Transcript([Segment(0.0, 1.0, "a", [Word(0.0, 1.0, "a")])], duration_s=1.0)
    from_tuples = Transcript((Segment(0.0, 1.0, "a", (Word(0.0, 1.0, "a"),)),), duration_s=1.0)
    assert from_lists == from_tuples
    assert hash(from_lists) == hash(from_tuples)


def test_dict_round_trip_and_fixed_json_contract(interview):
    data = interview.to_dict()
    assert Transcript.from_dict(data) == interview
    assert data["text"] == interview.text
    assert data["duration"] == 3730.0
    assert data["model"] == "keyscribe-small"
    first = data["segments"][0]
    assert (first["start"], first["end"], first["text"]) == (0.0, 2.5, " Hello and welcome.")
    assert first["words"][0] == {"start": 0.2, "end": 0.8, "text": "Hello", "probability": 0.9}
    assert first["avg_logprob"] == -0.2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"duration": 1.0}, "missing the 'segments' field"),
        ({"segments": []}, "missing the 'duration' field"),
        ({"segments": [{"end": 1.0, "text": "x"}], "duration": 1.0}, r"segments\[0\] .*'start'"),
        (
            {"segments": [{"start": "0", "end": 1.0, "text": "x"}], "duration": 1.0},
            "number of seconds",
        ),
    ],
)
def test_from_dict_names_the_bad_field(data, message):
    with pytest.raises(ValueError, match=message):
        Transcript.from_dict(data)


def test_with_segment_text_returns_an_edited_copy(interview):
    edited = interview.with_segment_text(0, "Hello, and welcome!")
    assert edited.segments[0].text == "Hello, and welcome!"
    assert edited.text.startswith("Hello, and welcome! Thanks")
    # Word timings and confidence described the old text, so the edit drops them.
    assert edited.segments[0].words == () and edited.segments[0].avg_logprob is None
    assert edited.segments[1:] == interview.segments[1:]
    assert interview.segments[0].text == " Hello and welcome."  # the original is untouched
    assert interview.with_segment_text(0, interview.segments[0].text) == interview


def test_with_segment_text_rejects_a_bad_index(interview):
    with pytest.raises(IndexError, match="6 segments"):
        interview.with_segment_text(6, "x")
    with pytest.raises(IndexError):
        interview.with_segment_text(-1, "x")


# ---------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize(
    ("seconds", "kwargs", "expected"),
    [
        (62.345, {}, "00:01:02.345"),
        (62.345, {"sep": ","}, "00:01:02,345"),
        (62.345, {"always_hours": False}, "01:02.345"),
        (3725.5, {"always_hours": False}, "01:02:05.500"),
        (59.9996, {}, "00:01:00.000"),
        (0, {}, "00:00:00.000"),
        (100 * 3600, {}, "100:00:00.000"),
    ],
)
def test_format_timestamp(seconds, kwargs, expected):
    assert format_timestamp(seconds, **kwargs) == expected


@pytest.mark.parametrize("bad", [-0.001, math.nan])
def test_format_timestamp_rejects_negative_and_nan(bad):
    with pytest.raises(ValueError, match="non-negative"):
        format_timestamp(bad)


# ---------------------------------------------------------------------------
# Exporters, read back with real parsers


def test_srt_parses_and_keeps_text_and_time_order(interview, tmp_path):
    path = export(interview, tmp_path / "talk.srt")
    raw = path.read_text(encoding="utf-8")
    assert re.search(r"^00:01:02,345 --> \d\d:\d\d:\d\d,\d{3}$", raw, re.MULTILINE)
    subtitles = list(srt.parse(raw))
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))
    assert _compact(" ".join(s.content for s in subtitles)) == _compact(interview.text)
    _assert_cue_times_ordered([(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles])
    assert subtitles[-1].start.total_seconds() == pytest.approx(3725.0)
    assert subtitles[-1].end.total_seconds() == pytest.approx(3727.25)


def test_vtt_parses_and_keeps_text_and_time_order(interview, tmp_path):
    path = export(interview, tmp_path / "talk.vtt")
    raw = path.read_text(encoding="utf-8")
    assert raw.startswith("WEBVTT\n\n")
    assert re.search(r"^00:01:02\.345 --> \d\d:\d\d:\d\d\.\d{3}$", raw, re.MULTILINE)
    assert "Bye &amp; &lt;thanks&gt; --&gt; see you." in raw  # cue text is markup: escaped
    captions = list(webvtt.read(str(path)))
    # webvtt-py hands back cue text as written, so undo the markup escaping here.
    recovered = " ".join(html.unescape(c.text) for c in captions)
    assert _compact(recovered) == _compact(interview.text)
    assert "Bye & <thanks> --> see you." in recovered
    times_s = [
        (c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000)
        for c in captions
    ]
    _assert_cue_times_ordered(times_s)
    assert times_s[-1] == (3725.0, 3727.25)


def test_json_round_trips_through_the_file(interview, tmp_path):
    path = export(interview, tmp_path / "talk.json")
    raw = path.read_text(encoding="utf-8")
    assert "東京で会いましょう 🎙️" in raw  # ensure_ascii=False: readable, not \\u escapes
    assert raw.startswith('{\n  "text"')  # indent=2
    assert Transcript.from_dict(json.loads(raw)) == interview


def test_docx_has_title_meta_and_a_timestamped_paragraph_per_segment(interview, tmp_path):
    path = export(interview, tmp_path / "interview-03.docx")
    document = docx.Document(str(path))
    paragraphs = [p for p in document.paragraphs]
    assert paragraphs[0].text == "interview-03"
    assert paragraphs[0].style.name == "Title"
    assert "01:02:10" in paragraphs[1].text and "keyscribe-small" in paragraphs[1].text
    body = paragraphs[2:]
    spoken = [s for s in interview.segments if s.text.strip()]
    assert len(body) == len(spoken)
    stamps = ["00:00:00", "00:00:02", "00:00:05", "00:01:02", "01:02:05"]
    for paragraph, segment, stamp in zip(body, spoken, stamps, strict=True):
        assert paragraph.text == f"[{stamp}] {segment.text.strip()}"
        assert paragraph.runs[0].text == f"[{stamp}]" and paragraph.runs[0].bold
        assert paragraph.runs[0].font.color.rgb != paragraph.runs[1].font.color.rgb  # grey stamp


def test_docx_uses_the_given_title(interview, tmp_path):
    path = export(interview, tmp_path / "x.docx", title="Interview with Ana Núñez")
    assert docx.Document(str(path)).paragraphs[0].text == "Interview with Ana Núñez"


def test_txt_has_one_line_per_segment_optionally_timestamped(interview, tmp_path):
    plain = export(interview, tmp_path / "plain.txt").read_text(encoding="utf-8")
    lines = plain.splitlines()
    assert lines[:2] == ["Hello and welcome.", "Thanks for having me."]
    assert len(lines) == 5 and _compact(plain) == _compact(interview.text)

    stamped = export(interview, tmp_path / "stamped.txt", timestamps=True).read_text(
        encoding="utf-8"
    )
    stamped_lines = stamped.splitlines()
    assert stamped_lines[0] == "[00:00:00] Hello and welcome."
    assert stamped_lines[2] == "[00:00:05] Café, naïve — 東京で会いましょう 🎙️"
    assert stamped_lines[4] == "[01:02:05] Bye & <thanks> --> see you."
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] \S", line) for line in stamped_lines)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unicode_survives_every_format(interview, tmp_path, fmt):
    path = export(interview, tmp_path / f"out.{fmt}")
    if fmt == "docx":
        content = "\n".join(p.text for p in docx.Document(str(path)).paragraphs)
    else:
        content = path.read_text(encoding="utf-8")
    assert "Café, naïve — 東京で会いましょう 🎙️" in content


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_transcript_exports_to_every_format(tmp_path, fmt):
    path = export(Transcript((), duration_s=0.0), tmp_path / "empty", fmt=fmt)
    assert path.exists()


# ---------------------------------------------------------------------------
# Cue splitting


def _check_cues_fit_segment(cues, segment: Segment) -> None:
    assert len(cues) > 1, "a long segment should be split into several cues"
    for cue in cues:
        assert 1 <= len(cue.lines) <= MAX_LINES_PER_CUE
        assert all(0 < len(line) <= MAX_LINE_CHARS for line in cue.lines), cue.lines
        assert segment.start_s <= cue.start_s <= cue.end_s <= segment.end_s
    _assert_cue_times_ordered([(c.start_s, c.end_s) for c in cues])
    assert cues[0].start_s == segment.start_s and cues[-1].end_s == segment.end_s
    assert _compact(" ".join(" ".join(c.lines) for c in cues)) == _compact(segment.text)


def test_long_segment_with_words_splits_at_word_times():
    words = _words_for(LONG_TEXT, 10.2, 0.4, gap_s=0.05)
    segment = Segment(10.0, 30.0, LONG_TEXT, words)
    cues = subtitle_cues(Transcript((segment,), duration_s=30.0))
    _check_cues_fit_segment(cues, segment)
    word_starts = {w.start_s for w in words}
    word_ends = {w.end_s for w in words}
    for before, after in pairwise(cues):
        assert before.end_s in word_ends and after.start_s in word_starts
    for cue in cues[:-1]:
        assert cue.end_s - cue.start_s <= MAX_CUE_DURATION_S


def test_long_segment_without_words_splits_in_proportion_to_characters():
    segment = Segment(100.0, 112.0, LONG_TEXT)
    cues = subtitle_cues(Transcript((segment,), duration_s=120.0))
    _check_cues_fit_segment(cues, segment)
    total_chars = len("".join(LONG_TEXT.split()))
    for before, after in pairwise(cues):
        assert before.end_s == after.start_s  # no gaps without word timings
    for cue in cues:
        cue_chars = len("".join("".join(cue.lines).split()))
        assert cue.end_s - cue.start_s == pytest.approx(12.0 * cue_chars / total_chars)


def test_short_text_over_a_long_time_is_split_by_duration():
    segment = Segment(0.0, 20.0, "one two three four five six")
    cues = subtitle_cues(Transcript((segment,), duration_s=20.0))
    assert len(cues) >= 3
    assert all(c.end_s - c.start_s <= MAX_CUE_DURATION_S + 1e-9 for c in cues)
    assert " ".join(" ".join(c.lines) for c in cues) == segment.text


def test_a_word_longer_than_a_line_is_broken_to_fit():
    url = "https://example.com/" + "a" * 100
    segment = Segment(0.0, 3.0, f"see {url} now")
    cues = subtitle_cues(Transcript((segment,), duration_s=3.0))
    lines = [line for cue in cues for line in cue.lines]
    assert all(len(line) <= MAX_LINE_CHARS for line in lines)
    assert "".join("".join(lines).split()) == "".join(segment.text.split())


def test_overlapping_segments_give_non_overlapping_cues(tmp_path):
    transcript = Transcript(
        (Segment(0.0, 3.0, "first part"), Segment(2.5, 5.0, "second part")), duration_s=5.0
    )
    cues = subtitle_cues(transcript)
    assert [(c.start_s, c.end_s) for c in cues] == [(0.0, 3.0), (3.0, 5.0)]
    subtitles = list(srt.parse(export(transcript, tmp_path / "o.srt").read_text(encoding="utf-8")))
    assert subtitles[1].start.total_seconds() == pytest.approx(3.0)


def test_subtitle_file_of_a_long_segment_respects_cue_limits(tmp_path):
    transcript = Transcript((Segment(0.0, 25.0, LONG_TEXT * 2),), duration_s=25.0)
    subtitles = list(
        srt.parse(export(transcript, tmp_path / "long.srt").read_text(encoding="utf-8"))
    )
    assert len(subtitles) > 2
    for subtitle in subtitles:
        lines = subtitle.content.split("\n")
        assert len(lines) <= MAX_LINES_PER_CUE and all(
            len(line) <= MAX_LINE_CHARS for line in lines
        )


# ---------------------------------------------------------------------------
# Choosing the format and writing safely


def test_format_comes_from_the_suffix_case_insensitively(interview, tmp_path):
    path = export(interview, tmp_path / "TALK.SRT")
    assert len(list(srt.parse(path.read_text(encoding="utf-8")))) > 1
    explicit = export(interview, tmp_path / "talk.subtitles", fmt="vtt")
    assert explicit.read_text(encoding="utf-8").startswith("WEBVTT")


@pytest.mark.parametrize(
    ("name", "fmt", "message"),
    [
        ("talk.pdf", None, "'.pdf'.*txt, srt, vtt, json, docx"),
        ("talk.txt", "odt", "'odt'.*txt, srt, vtt, json, docx"),
        ("talk", None, "no file extension"),
    ],
)
def test_unknown_format_is_a_clear_error_and_writes_nothing(
    interview, tmp_path, name, fmt, message
):
    with pytest.raises(ValueError, match=message):
        export(interview, tmp_path / name, fmt=fmt)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_a_clear_error(interview, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export(interview, tmp_path / "nowhere" / "talk.txt")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(
    interview, tmp_path, monkeypatch
):
    path = tmp_path / "talk.txt"
    path.write_text("previous export\n", encoding="utf-8")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(export_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        export(interview, path)
    assert path.read_text(encoding="utf-8") == "previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["talk.txt"]


def test_export_overwrites_an_existing_file(interview, tmp_path):
    path = tmp_path / "talk.txt"
    path.write_text("x" * 10_000, encoding="utf-8")
    export(interview, path)
    assert path.read_text(encoding="utf-8").startswith("Hello and welcome.\n")
    assert [p.name for p in tmp_path.iterdir()] == ["talk.txt"]


def test_export_module_imports_without_python_docx(tmp_path):
    script = (
        "import sys; sys.modules['docx'] = None\n"
        "from engine.export import export\n"
        "from engine.transcript import Transcript\n"
        "try:\n"
        "    export(Transcript((), 0.0), sys.argv[1])\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "t.docx")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "pip install python-docx" in result.stdout


def test_docx_drops_characters_xml_cannot_hold(tmp_path):
    transcript = Transcript(segments=(Segment(0.0, 2.0, "bell\x07 and\x00 nul"),), duration_s=2.0)
    out = export(transcript, tmp_path / "t.docx")
    text = "\n".join(p.text for p in docx.Document(str(out)).paragraphs)
    assert "bell and nul" in text
