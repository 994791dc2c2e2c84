"""Journal of finished segments, so an interrupted transcription resumes where it stopped.

One JSON line per finished segment is appended (and flushed to disk) as soon as
the segment is decoded. The first line names the job: the audio file (size and
modification time), the model and the options. Re-running the same job reads
the finished segments back and continues after the last one; a different job
on the same journal path starts afresh. A line cut short by a crash is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from engine.transcript import Segment

FORMAT = "keyscribe-journal/1"


def job_key(audio: Path, model_name: str, options: object) -> str:
    """What must match for finished segments to be reused."""
    stat = Path(audio).stat()
    text = json.dumps([str(Path(audio).resolve()), stat.st_size, stat.st_mtime_ns, model_name, repr(options)])
    return hashlib.sha256(text.encode()).hexdigest()


def default_journal_path(audio: Path, key: str) -> Path:
    """Journals live in the user data folder (KEYSCRIBE_DATA overrides it), one per job."""
    root = os.environ.get("KEYSCRIBE_DATA")
    if root is None:
        from platformdirs import user_data_dir

        root = user_data_dir("keyscribe", appauthor=False)
    return Path(root) / "journals" / f"{Path(audio).stem}-{key[:16]}.jsonl"


class Journal:
    def __init__(self, path: Path, key: str):
        self.path = Path(path)
        self.key = key
        self.finished: list[Segment] = self._read()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.finished:
            self.path.write_text(json.dumps({"format": FORMAT, "job": key}) + "\n", encoding="utf-8")
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 -- held for the job's life

    def _read(self) -> list[Segment]:
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            return []
        if header.get("format") != FORMAT or header.get("job") != self.key:
            return []
        segments = []
        for line in lines[1:]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # the last line was cut short by a crash; everything before it is whole
            segments.append(Segment(start_s=row["start"], end_s=row["end"], text=row["text"], avg_logprob=row.get("avg_logprob")))
        if lines and len(segments) < len(lines) - 1:
            # Rewrite without the broken tail so appends start on a clean line.
            rows = [lines[0], *lines[1 : 1 + len(segments)]]
            self.path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return segments

    @property
    def resume_after_s(self) -> float:
        return self.finished[-1].end_s if self.finished else 0.0

    def append(self, segment: Segment) -> None:
        row = {"start": segment.start_s, "end": segment.end_s, "text": segment.text, "avg_logprob": segment.avg_logprob}
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self, remove: bool = False) -> None:
        self._handle.close()
        if remove:
            self.path.unlink(missing_ok=True)
