"""JSONL manifests: one utterance per line, audio paths relative to the manifest.

A line looks like::

    {"id": "tts-train-000001", "audio": "audio/tts/train/tts-train-000001-3fa2c1d0.flac",
     "text": "Our next speaker is Dr. Priya Raghunathan.", "duration_s": 3.42,
     "speaker": "flite:slt", "hotwords": ["Priya Raghunathan"]}

``id``, ``audio``, ``text`` and ``duration_s`` are required; ``speaker``,
``context`` and ``hotwords`` are optional. Any other key is an error, so a typo
in a hand-edited manifest is caught instead of silently ignored. Audio paths are
written relative to the manifest's folder (a data folder can be moved or copied
as a whole) and resolved to absolute paths on read.

Self-supervised training reads audio-only manifests (``id``, ``audio``,
``duration_s``) with ``read_manifest(path, require_text=False)``; their
utterances get ``text=""``. Labeled readers keep the default and still refuse
a line without ``text``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_KEYS = ("id", "audio", "text", "duration_s")
AUDIO_ONLY_KEYS = ("id", "audio", "duration_s")  # required when the transcript is not (SSL)
OPTIONAL_KEYS = ("speaker", "context", "hotwords")


@dataclass(frozen=True)
class Utterance:
    """One labelled stretch of speech: an audio file and what is said in it."""

    id: str
    audio: Path
    text: str
    duration_s: float
    speaker: str | None = None
    context: str | None = None
    hotwords: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("An utterance needs a non-empty id.")
        if self.duration_s <= 0:
            raise ValueError(f"Utterance {self.id!r} has duration {self.duration_s} s; it must be positive.")
        # Accept any iterable of strings for hotwords but store a tuple, so the
        # dataclass stays hashable and immutable.
        object.__setattr__(self, "hotwords", tuple(self.hotwords))
        object.__setattr__(self, "audio", Path(self.audio))


def _type_problem(record: dict) -> str | None:
    """What is wrong with the types of a record's values, or None."""
    for key in ("id", "audio", "text"):
        if key in record and not isinstance(record[key], str):
            return f"{key!r} must be a string, got {type(record[key]).__name__}"
    if isinstance(record["duration_s"], bool) or not isinstance(record["duration_s"], (int, float)):
        return "'duration_s' must be a number of seconds"
    for key in ("speaker", "context"):
        if record.get(key) is not None and not isinstance(record[key], str):
            return f"{key!r} must be a string or null"
    hotwords = record.get("hotwords", [])
    if not isinstance(hotwords, list) or not all(isinstance(h, str) for h in hotwords):
        return "'hotwords' must be a list of strings"
    return None


def utterance_from_record(record: dict, base_dir: Path, where: str = "manifest", *, require_text: bool = True) -> Utterance:
    """Builds an Utterance from one decoded JSON line; relative audio paths resolve against base_dir.

    With ``require_text=False`` (audio-only manifests for SSL) a line may omit ``text``.
    """
    if not isinstance(record, dict):
        # A bad line is bad data, reported like every other manifest problem.
        raise ValueError(f"{where}: each line must be a JSON object.")  # noqa: TRY004
    unknown = sorted(set(record) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        allowed = ", ".join(REQUIRED_KEYS + OPTIONAL_KEYS)
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys are {allowed}.")
    missing = [key for key in (REQUIRED_KEYS if require_text else AUDIO_ONLY_KEYS) if key not in record]
    if missing:
        raise ValueError(f"{where}: missing required key(s) {missing}.")
    problem = _type_problem(record)
    if problem:
        raise ValueError(f"{where}: {problem}.")
    audio = Path(record["audio"])
    if not audio.is_absolute():
        audio = (base_dir / audio).resolve()
    return Utterance(
        id=record["id"],
        audio=audio,
        text=record.get("text", ""),
        duration_s=float(record["duration_s"]),
        speaker=record.get("speaker"),
        context=record.get("context"),
        hotwords=tuple(record.get("hotwords", ())),
    )


def utterance_to_record(utterance: Utterance, base_dir: Path) -> dict:
    """The JSON object for one utterance, with its audio path relative to base_dir."""
    record: dict = {
        "id": utterance.id,
        "audio": Path(os.path.relpath(Path(utterance.audio).resolve(), base_dir.resolve())).as_posix(),
        "text": utterance.text,
        "duration_s": round(float(utterance.duration_s), 4),
    }
    if utterance.speaker is not None:
        record["speaker"] = utterance.speaker
    if utterance.context is not None:
        record["context"] = utterance.context
    if utterance.hotwords:
        record["hotwords"] = list(utterance.hotwords)
    return record


def read_manifest(path: str | os.PathLike, *, require_text: bool = True) -> list[Utterance]:
    """Reads a JSONL manifest; raises ValueError naming the line of the first bad record.

    ``require_text=False`` also accepts audio-only lines (for self-supervised training).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Manifest {path} does not exist; build it first (python -m training.data build).")
    base_dir = path.resolve().parent
    utterances: list[Utterance] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg}).") from error
            utterance = utterance_from_record(record, base_dir, where, require_text=require_text)
            if utterance.id in seen:
                raise ValueError(f"{where}: duplicate id {utterance.id!r}.")
            seen.add(utterance.id)
            utterances.append(utterance)
    return utterances


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> Path:
    """Writes utterances as JSONL (atomically: a crash leaves the old manifest intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base_dir = path.resolve().parent
    seen: set[str] = set()
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            for utterance in utterances:
                if utterance.id in seen:
                    raise ValueError(f"Duplicate utterance id {utterance.id!r} while writing {path}.")
                seen.add(utterance.id)
                out.write(json.dumps(utterance_to_record(utterance, base_dir), ensure_ascii=False) + "\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def total_hours(utterances: Iterable[Utterance]) -> float:
    return sum(u.duration_s for u in utterances) / 3600.0
