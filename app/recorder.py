"""Record from a microphone straight to disk, so a crash loses at most a second.

No Qt here, so the same code runs in the app and, in the crash-safety test, in a
subprocess that is killed mid-recording. PortAudio (through sounddevice) calls
``_on_audio`` on its own thread with each captured block; the block goes into a
queue, and a writer thread appends it to a WAV file and, every FLUSH_INTERVAL_S,
rewrites the WAV header's lengths (libsndfile's SFC_UPDATE_HEADER_NOW) and
fsyncs. After a crash the file on disk is a valid WAV whose header counts
everything up to the last flush, for every reader, not only the lenient ones.

WAV rather than FLAC: a FLAC stream's header (sample count, MD5) is only final
once the encoder is closed, while a WAV header is rewritten by every flush.
16-bit mono at 48 kHz is 345 MB an hour, within WAV's 4 GB up to about six hours.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import KeyscribeError

FLUSH_INTERVAL_S = 0.5  # well inside the promise that a crash loses at most about a second
_SFC_UPDATE_HEADER_NOW = 0x1060  # libsndfile's sndfile.h; soundfile does not name this command
SILENCE_DBFS = -60.0  # the meter's floor
_STOP = object()  # queue sentinel: the stream is closed, finish the file


class RecorderError(KeyscribeError):
    """Recording is impossible or failed; the message says why and what to do."""


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    default_samplerate: float
    is_default: bool


@dataclass(frozen=True)
class Recording:
    path: Path
    duration_s: float
    samplerate: int


def _sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as err:  # OSError: the wheel is there but the PortAudio library is not
        raise RecorderError(
            "Recording needs the PortAudio library, which was not found: install it "
            "(Debian/Ubuntu: sudo apt install libportaudio2) and restart Keyscribe."
        ) from err
    return sounddevice


def list_input_devices() -> list[InputDevice]:
    """The microphones PortAudio sees; raises RecorderError when there is none."""
    sd = _sounddevice()
    try:
        devices = list(sd.query_devices())
        default_input = sd.default.device[0]
    except sd.PortAudioError as err:
        raise RecorderError(f"The sound system could not list microphones ({err}): check the system's sound settings.") from err
    found = [
        InputDevice(index, str(info["name"]), float(info["default_samplerate"]), index == default_input)
        for index, info in enumerate(devices)
        if info["max_input_channels"] > 0
    ]
    if not found:
        raise RecorderError("No microphone was found: connect one or enable it in the system's sound settings, then open the recorder again.")
    return found


def new_recording_path(folder: Path) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%d %H-%M-%S")
    path = Path(folder) / f"Recording {stamp}.wav"
    counter = 2
    while path.exists():
        path = Path(folder) / f"Recording {stamp} ({counter}).wav"
        counter += 1
    return path


class Recorder:
    """One recording: ``start``, then ``pause``/``resume`` any number of times, then ``stop``.

    ``level_dbfs`` and ``elapsed_s`` may be read from any thread at any time.
    A failure while writing (a full disk) stops the writing and is kept in
    ``error``; what was flushed before it stays on disk.
    """

    def __init__(self, path: Path, device: int | None = None, samplerate: int | None = None, flush_interval_s: float = FLUSH_INTERVAL_S):
        self.path = Path(path)
        self.device = device
        self.samplerate = samplerate
        self.flush_interval_s = flush_interval_s
        self.error: Exception | None = None
        self._queue: queue.Queue = queue.Queue()
        self._paused = False
        self._peak = 0.0
        self._frames_accepted = 0
        self._frames_written = 0
        self._stream = None
        self._file: sf.SoundFile | None = None
        self._writer: threading.Thread | None = None

    # -- control (from the caller's thread) --------------------------------

    def start(self) -> None:
        if self._stream is not None:
            raise RuntimeError("this recorder has already been started; make a new Recorder for a new recording")
        sd = _sounddevice()
        try:
            if self.samplerate is None:
                self.samplerate = int(sd.query_devices(self.device, "input")["default_samplerate"])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(self.path, "w", samplerate=self.samplerate, channels=1, format="WAV", subtype="PCM_16")
            self._writer = threading.Thread(target=self._write_loop, name="keyscribe-recorder-writer", daemon=True)
            self._writer.start()
            self._stream = sd.InputStream(
                device=self.device, channels=1, samplerate=self.samplerate, dtype="float32", callback=self._on_audio
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as err:
            self._abort()
            raise RecorderError(
                f"The microphone could not be opened ({err}): pick another input device, or close programs that use it."
            ) from err
        except OSError as err:
            self._abort()
            raise RecorderError(f"Cannot write the recording to {self.path} ({err}): check the disk has room and the folder is writable.") from err

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def stop(self) -> Recording:
        """Close the stream, write what is queued and close the file."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
        self._finish_writer()
        if self.error is not None:
            raise RecorderError(f"Writing the recording failed ({self.error}); what was recorded before that is in {self.path}.")
        return Recording(self.path, self.elapsed_s, int(self.samplerate or 0))

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def elapsed_s(self) -> float:
        return self._frames_accepted / self.samplerate if self.samplerate else 0.0

    @property
    def level_dbfs(self) -> float:
        """Peak of the latest block in dB below full scale, floored at SILENCE_DBFS."""
        peak = self._peak
        return max(SILENCE_DBFS, 20 * math.log10(peak)) if peak > 0 else SILENCE_DBFS

    # -- PortAudio's thread ------------------------------------------------

    def _on_audio(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        block = np.asarray(indata, dtype=np.float32).reshape(len(indata), -1)[:, 0]
        self._peak = float(np.max(np.abs(block))) if len(block) else 0.0
        if not self._paused:
            self._queue.put(block.copy())  # PortAudio reuses its buffer after we return
            self._frames_accepted += len(block)

    # -- writer thread -----------------------------------------------------

    def _write_loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                block = self._queue.get(timeout=self.flush_interval_s / 4)
            except queue.Empty:
                block = None
            if block is _STOP:
                return
            try:
                if block is not None and self.error is None:
                    self._file.write(block)
                    self._frames_written += len(block)
                if time.monotonic() - last_flush >= self.flush_interval_s and self.error is None:
                    self._flush()
                    last_flush = time.monotonic()
            except (OSError, sf.SoundFileRuntimeError) as err:
                self.error = err

    def _flush(self) -> None:
        """Make the file on disk a whole WAV up to here: header lengths rewritten, data fsynced."""
        from soundfile import _ffi, _snd  # the cffi handles soundfile itself uses for sf_command

        _snd.sf_command(self._file._file, _SFC_UPDATE_HEADER_NOW, _ffi.NULL, 0)
        self._file.flush()  # sf_write_sync: fsync

    def _finish_writer(self) -> None:
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _abort(self) -> None:
        self._stream = None
        self._finish_writer()
        if self._frames_written == 0:
            self.path.unlink(missing_ok=True)
