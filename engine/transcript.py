"""The transcript a job produces: words inside segments inside a transcript.

These frozen dataclasses are the boundary between the decoder, the exporters and
the GUI's editor. They validate themselves on construction, so any Transcript
that exists has times that are finite, non-negative and never go backwards.

The JSON form (``to_dict``) is a contract read by other tools: the keys
``text``, ``segments[].start``, ``segments[].end``, ``segments[].text``,
``duration`` and ``model`` must not change. Times in it are in seconds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Order checks allow float noise from summing time offsets (e.g. 79.6 + 0.4 = 80.00000000000011);
# a microsecond is far below the millisecond that any export shows.
TIME_TOLERANCE_S = 1e-6


def _check_time_span(what: str, start_s: float, end_s: float) -> None:
    for name, value in (("start", start_s), ("end", end_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what} {name} time must be a number of seconds, got {value!r}.")
        if not math.isfinite(value):
            raise ValueError(
                f"{what} {name} time must be a finite number of seconds, got {value!r}."
            )
    if start_s < 0:
        raise ValueError(f"{what} starts at {start_s} s; times must not be negative.")
    if end_s < start_s - TIME_TOLERANCE_S:
        raise ValueError(
            f"{what} ends at {end_s} s, before it starts at {start_s} s; "
            "the end time must be at or after the start time."
        )


@dataclass(frozen=True)
class Word:
    """One word with its time span; ``probability`` is the model's confidence in [0, 1]."""

    start_s: float
    end_s: float
    text: str
    probability: float | None = None

    def __post_init__(self) -> None:
        _check_time_span(f"Word {self.text!r}", self.start_s, self.end_s)


@dataclass(frozen=True)
class Segment:
    """A stretch of speech (usually a sentence or phrase) and its optional word timings.

    Words must lie inside the segment and their start and end times must not
    decrease from one word to the next. A list of words is stored as a tuple.
    """

    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float | None = None

    def __post_init__(self) -> None:
        _check_time_span("Segment", self.start_s, self.end_s)
        if not isinstance(self.text, str):
            raise TypeError(f"Segment text must be a str, got {type(self.text).__name__}.")
        words = tuple(self.words)
        object.__setattr__(self, "words", words)  # frozen: normalise a list to a tuple once
        previous: Word | None = None
        for index, word in enumerate(words):
            if not isinstance(word, Word):
                raise TypeError(
                    f"Segment.words[{index}] must be a Word, got {type(word).__name__}; "
                    "use Transcript.from_dict to build a transcript from plain data."
                )
            if (
                word.start_s < self.start_s - TIME_TOLERANCE_S
                or word.end_s > self.end_s + TIME_TOLERANCE_S
            ):
                raise ValueError(
                    f"Word {index} {word.text!r} ({word.start_s}-{word.end_s} s) lies outside its "
                    f"segment ({self.start_s}-{self.end_s} s); clamp word times to the segment."
                )
            if previous is not None and (
                word.start_s < previous.start_s - TIME_TOLERANCE_S
                or word.end_s < previous.end_s - TIME_TOLERANCE_S
            ):
                raise ValueError(
                    f"Word {index} {word.text!r} ({word.start_s}-{word.end_s} s) goes back in time "
                    f"from the word before it ({previous.start_s}-{previous.end_s} s); "
                    "word times must not decrease."
                )
            previous = word


@dataclass(frozen=True)
class Transcript:
    """All segments of one recording, in time order.

    Segment start and end times must not decrease from one segment to the next
    (segments may touch or overlap slightly; the subtitle exporter resolves
    overlaps). Segments are not checked against ``duration_s``, because decoders
    routinely place the last segment's end a little past the end of the audio.
    """

    segments: tuple[Segment, ...]
    duration_s: float
    model: str = ""
    language: str = "en"

    def __post_init__(self) -> None:
        duration_s = self.duration_s
        if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)):
            raise TypeError(f"Transcript duration must be a number of seconds, got {duration_s!r}.")
        if not (math.isfinite(duration_s) and duration_s >= 0):
            raise ValueError(
                "Transcript duration must be a finite, non-negative number of seconds, "
                f"got {duration_s!r}."
            )
        segments = tuple(self.segments)
        object.__setattr__(self, "segments", segments)  # frozen: normalise a list to a tuple once
        previous: Segment | None = None
        for index, segment in enumerate(segments):
            if not isinstance(segment, Segment):
                raise TypeError(
                    f"Transcript.segments[{index}] must be a Segment, "
                    f"got {type(segment).__name__}; "
                    "use Transcript.from_dict to build a transcript from plain data."
                )
            if previous is not None and (
                segment.start_s < previous.start_s - TIME_TOLERANCE_S
                or segment.end_s < previous.end_s - TIME_TOLERANCE_S
            ):
                raise ValueError(
                    f"Segment {index} ({segment.start_s}-{segment.end_s} s) goes back in time from "
                    f"segment {index - 1} ({previous.start_s}-{previous.end_s} s); "
                    "segments must be in time order."
                )
            previous = segment

    @property
    def text(self) -> str:
        """All segment texts, stripped, joined by single spaces; empty segments are skipped."""
        return " ".join(stripped for segment in self.segments if (stripped := segment.text.strip()))

    def with_segment_text(self, index: int, text: str) -> Transcript:
        """Return a copy with segment ``index`` holding ``text`` (the editor's one edit operation).

        An edited segment drops its word timings and ``avg_logprob``: they
        describe what the model heard, not the corrected text.
        """
        if not 0 <= index < len(self.segments):
            raise IndexError(
                f"Segment index {index} is out of range; this transcript has "
                f"{len(self.segments)} segments (0 to {len(self.segments) - 1})."
            )
        old = self.segments[index]
        if text == old.text:
            return self
        new = dataclasses.replace(old, text=text, words=(), avg_logprob=None)
        segments = self.segments[:index] + (new,) + self.segments[index + 1 :]
        return dataclasses.replace(self, segments=segments)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``text`` is derived from the segments and ignored by ``from_dict``."""
        return {
            "text": self.text,
            "segments": [
                {
                    "start": segment.start_s,
                    "end": segment.end_s,
                    "text": segment.text,
                    "words": [
                        {
                            "start": word.start_s,
                            "end": word.end_s,
                            "text": word.text,
                            "probability": word.probability,
                        }
                        for word in segment.words
                    ],
                    "avg_logprob": segment.avg_logprob,
                }
                for segment in self.segments
            ],
            "duration": self.duration_s,
            "model": self.model,
            "language": self.language,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transcript:
        """Rebuild a transcript from ``to_dict`` output; raises ValueError naming the bad field."""
        raw_segments = _field(data, "segments", "transcript")
        if not isinstance(raw_segments, list):
            raise ValueError(
                f"Transcript 'segments' must be a list, got {type(raw_segments).__name__}."
            )
        segments = []
        for seg_index, raw_segment in enumerate(raw_segments):
            where = f"segments[{seg_index}]"
            start_s = _seconds(raw_segment, "start", where)  # also checks raw_segment is an object
            raw_words = raw_segment.get("words") or []
            if not isinstance(raw_words, list):
                raise ValueError(
                    f"Transcript data at {where}.words must be a list, "
                    f"got {type(raw_words).__name__}."
                )
            words = tuple(
                Word(
                    start_s=_seconds(raw_word, "start", f"{where}.words[{word_index}]"),
                    end_s=_seconds(raw_word, "end", f"{where}.words[{word_index}]"),
                    text=str(_field(raw_word, "text", f"{where}.words[{word_index}]")),
                    probability=raw_word.get("probability"),
                )
                for word_index, raw_word in enumerate(raw_words)
            )
            segments.append(
                Segment(
                    start_s=start_s,
                    end_s=_seconds(raw_segment, "end", where),
                    text=str(_field(raw_segment, "text", where)),
                    words=words,
                    avg_logprob=raw_segment.get("avg_logprob"),
                )
            )
        return cls(
            segments=tuple(segments),
            duration_s=_seconds(data, "duration", "transcript"),
            model=str(data.get("model", "")),
            language=str(data.get("language", "en")),
        )


def _field(data: Any, key: str, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(
            f"Transcript data at {where} must be an object, got {type(data).__name__}."
        )
    if key not in data:
        raise ValueError(f"Transcript data at {where} is missing the {key!r} field.")
    return data[key]


def _seconds(data: Any, key: str, where: str) -> float:
    value = _field(data, key, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Transcript data at {where}.{key} must be a number of seconds, got {value!r}."
        )
    return float(value)
