"""Jobs saved as projects: one JSON file per job in the user data folder.

A project holds what the user put into a job and what came out of it: the
audio path, the hotword list, the meeting context, the status and the (possibly
edited) transcript. Files are written atomically (temp file, then rename), so a
crash while saving keeps the previous version. No Qt here: the window decides
when to save, this module only reads and writes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.export import write_atomically
from engine.transcript import Transcript

log = logging.getLogger(__name__)

FORMAT = "keyscribe-project/1"


@dataclass(frozen=True)
class Project:
    """The saved form of one job."""

    job_id: str
    audio_path: Path
    hotword_list: str = ""  # the saved list it was picked from ("" = none or typed by hand)
    hotwords: tuple[str, ...] = ()
    context: str = ""
    status: str = "ready"  # a JobStatus value
    message: str = ""
    transcript: Transcript | None = None
    edited: bool = False  # the transcript holds the user's corrections
    created: float = 0.0  # seconds since the epoch, for ordering the list

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "id": self.job_id,
            "audio": str(self.audio_path),
            "hotword_list": self.hotword_list,
            "hotwords": list(self.hotwords),
            "context": self.context,
            "status": self.status,
            "message": self.message,
            "transcript": self.transcript.to_dict() if self.transcript is not None else None,
            "edited": self.edited,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Project:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a Keyscribe project (format {data.get('format')!r}, expected {FORMAT!r})")
        raw_transcript = data.get("transcript")
        return cls(
            job_id=str(data["id"]),
            audio_path=Path(data["audio"]),
            hotword_list=str(data.get("hotword_list", "")),
            hotwords=tuple(str(term) for term in data.get("hotwords", ())),
            context=str(data.get("context", "")),
            status=str(data.get("status", "ready")),
            message=str(data.get("message", "")),
            transcript=Transcript.from_dict(raw_transcript) if raw_transcript is not None else None,
            edited=bool(data.get("edited", False)),
            created=float(data.get("created", 0.0)),
        )


class ProjectStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path_for(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def save(self, project: Project) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path_for(project.job_id)
        data = json.dumps(project.to_dict(), ensure_ascii=False, indent=1).encode("utf-8")
        write_atomically(path, data)
        return path

    def delete(self, job_id: str) -> None:
        self.path_for(job_id).unlink(missing_ok=True)

    def load_all(self) -> list[Project]:
        """Every readable project, oldest first. A damaged file is skipped with a warning, never deleted."""
        projects = []
        if not self.folder.is_dir():
            return projects
        for path in sorted(self.folder.glob("*.json")):
            try:
                projects.append(Project.from_dict(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.warning("Skipping the damaged project file %s: %s", path, err)
        return sorted(projects, key=lambda p: p.created)
