"""The engine as the app uses it: settings in, a model loaded once, transcripts out.

No Qt here. The worker thread (app/worker.py) calls these methods and turns
their plain callbacks into Qt signals; tests swap this class for a fake with
the same three methods. torch and the model code are imported on first use, in
the worker thread, so the window opens without waiting for them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.transcript import Segment, Transcript

UNTRAINED_WARNING = (
    "No trained model is installed, so Keyscribe runs an untrained one and its transcripts are noise. "
    "Choose a trained model folder in Settings, or train one with `python -m training`."
)


@dataclass(frozen=True)
class EngineSettings:
    model_dir: Path | None = None  # None: the shipped model
    device: str = "auto"  # engine.model.runtime.DEVICES
    quantization: str = "auto"  # engine.model.runtime.QUANTIZATIONS
    beam_size: int = 1
    language: str = "en"  # recorded in the transcript; the shipped model transcribes English
    draft_with_hotwords: bool = False  # engine.decoding.DecodingOptions.draft_with_hotwords (README, Hotwords)


@dataclass(frozen=True)
class JobRequest:
    job_id: str
    audio_path: Path
    hotwords: tuple[str, ...] = ()
    context: str = ""


@dataclass(frozen=True)
class EngineStatus:
    """What the window tells the user about the engine before any job runs."""

    runtime: str  # device and precision actually used, e.g. "CPU · FP32"
    model: str  # which model a job will use
    warnings: tuple[str, ...] = ()  # one sentence each, for the banner


class Backend(Protocol):
    def check(self, settings: EngineSettings) -> EngineStatus: ...

    def warm_up(self, settings: EngineSettings) -> None: ...

    def prepare(self, settings: EngineSettings) -> None: ...

    def transcribe(
        self,
        request: JobRequest,
        settings: EngineSettings,
        progress_callback: Callable[[float, float | None], None],
        on_segment: Callable[[Segment], None],
        cancel: threading.Event,
    ) -> Transcript: ...


class EngineBackend:
    """Loads the model for the current settings (once) and runs jobs with a resumable journal."""

    def __init__(self) -> None:
        self._model = None
        self._model_key: tuple | None = None

    def check(self, settings: EngineSettings) -> EngineStatus:
        from engine.model.load import shipped_model_dir
        from engine.model.runtime import resolve_runtime

        runtime = resolve_runtime(settings.device, settings.quantization)  # DeviceError says what to change
        warnings = []
        if settings.device == "auto" and runtime.device == "cpu":
            warnings.append("No CUDA GPU found: transcription runs on the CPU, which is slower.")
        if settings.model_dir is not None:
            model = settings.model_dir.name
            if not (settings.model_dir / "config.json").is_file():
                warnings.append(
                    f"The model folder {settings.model_dir} holds no config.json: in Settings, choose the folder "
                    "that `python -m training export` wrote, or clear it to use the shipped model."
                )
        elif shipped_model_dir() is not None:
            model = "shipped model"
        else:
            model = "untrained model"
            warnings.append(UNTRAINED_WARNING)
        return EngineStatus(runtime=runtime.describe(), model=model, warnings=tuple(warnings))

    def warm_up(self, settings: EngineSettings) -> None:
        """Load the model for these settings in the worker thread while the window sits idle.

        Loading holds the GIL in long pieces: loading torch's libraries took 0.3 s in one go
        here, parsing the tokenizer's JSON 0.23 s, and PySide6's import hook inspects every
        new module. Inside a job those pieces stalled the window's event loop by up to 0.25 s
        (bench/gui_latency.py); done when the window opens, the first job starts at once and
        its decoding leaves the loop within a few milliseconds of time.
        """
        import engine.transcribe  # noqa: F401 -- the rest of what a job imports

        self.prepare(settings)

    def prepare(self, settings: EngineSettings) -> None:
        key = (settings.model_dir, settings.device, settings.quantization)
        if self._model_key == key:
            return
        from engine.model.load import load_model

        self._model = None  # free the old model before loading the new one
        self._model = load_model(settings.model_dir, settings.device, settings.quantization, allow_untrained=True)
        self._model_key = key

    def transcribe(self, request, settings, progress_callback, on_segment, cancel) -> Transcript:
        from engine.audio import probe_audio
        from engine.decoding import DecodingOptions
        from engine.journal import Journal, default_journal_path, job_key
        from engine.prompt import PromptContext
        from engine.transcribe import TranscribeOptions, Transcriber

        probe_audio(request.audio_path)  # a bad file fails with one clear sentence
        self.prepare(settings)
        options = TranscribeOptions(decoding=DecodingOptions(beam_size=settings.beam_size, draft_with_hotwords=settings.draft_with_hotwords))
        context = PromptContext(meeting=request.context, hotwords=request.hotwords)
        key = job_key(request.audio_path, self._model.config.name, (options, context))
        journal = Journal(default_journal_path(request.audio_path, key), key)
        try:
            transcript = Transcriber(self._model, options).transcribe(
                request.audio_path,
                context,
                progress_callback=lambda p: progress_callback(p.done_s, p.total_s),
                on_segment=on_segment,
                cancel=cancel,
                journal=journal,
            )
        except BaseException:
            journal.close()  # kept: a retry resumes after the segments it holds
            raise
        journal.close(remove=True)
        return dataclasses.replace(transcript, language=settings.language)
