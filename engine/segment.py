"""Voice-activity segmentation: cut a 16 kHz stream into chunks of at most
max_chunk_s, at pauses, so the decoder never sees half a word.

A VAD backend gives each fixed frame (32 ms for Silero) a speech probability;
hysteresis turns those into speech/pause flags; a cutter walks the flags:

- a pause of at least drop_silence_s ends the chunk (speech + padding) and the
  silence after it is dropped, so no chunk is spent on a silent stretch;
- a chunk that would outgrow max_chunk_s is cut inside a pause of at least
  min_silence_s: the longest one in the window's second half (long pauses are
  sentence ends, and a late cut keeps chunks long), else the latest one;
- speech with no such pause is cut at the quietest 20 ms in the window's last third.

Every decision depends on the audio alone, never on how it was split into blocks:
a chunk is decided only once the audio up to its window's end plus drop_silence_s
is known (or the stream ended). Memory is that much audio plus one block.
The cutter is written here because silero-vad's get_speech_timestamps needs the
whole recording in memory and splits long speech at a fixed length, mid-word.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

QUIET_WINDOW = SAMPLE_RATE // 50  # 320 samples = 20 ms: the unit a forced cut looks for the quietest point in
HYSTERESIS = 0.15  # speech ends only below threshold - 0.15, as in Silero's own get_speech_timestamps


@dataclass(frozen=True)
class Chunk:
    start_s: float  # true position in the file, so timestamps survive dropped silence
    samples: np.ndarray  # (T,) float32, 16 kHz mono

    @property
    def end_s(self) -> float:
        # Count in whole samples: start_s + T / 16000 can overshoot the next
        # chunk's start_s by a rounding error where two chunks touch.
        return (round(self.start_s * SAMPLE_RATE) + len(self.samples)) / SAMPLE_RATE


@dataclass(frozen=True)
class SegmentOptions:
    vad: str = "silero"  # a key of VAD_BACKENDS
    max_chunk_s: float = 30.0  # the decoder's window
    min_silence_s: float = 0.3  # the shortest pause a chunk may be cut in
    speech_pad_s: float = 0.2  # audio kept around speech: the VAD clips soft word edges
    threshold: float = 0.5  # speech probability from which a frame counts as speech
    drop_silence_s: float = 2.0  # a pause this long ends the chunk, and its silence is not transcribed
    min_speech_s: float = 0.1  # a chunk with less speech than this (a click) is not yielded

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "vad" and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise ValueError(f"{f.name} must be a finite number, got {value!r}.")
        if self.vad not in VAD_BACKENDS:
            raise ValueError(f"vad must be one of {sorted(VAD_BACKENDS)}, got {self.vad!r}.")
        if self.max_chunk_s < 1.0:
            raise ValueError(f"max_chunk_s must be at least 1 second, got {self.max_chunk_s}.")
        if not 0.0 < self.min_silence_s < self.drop_silence_s:
            raise ValueError(
                f"min_silence_s must be above 0 and below drop_silence_s ({self.drop_silence_s}), got {self.min_silence_s}."
            )
        if self.drop_silence_s > self.max_chunk_s:
            raise ValueError(f"drop_silence_s must not exceed max_chunk_s ({self.max_chunk_s}), got {self.drop_silence_s}.")
        if not 0.0 <= self.speech_pad_s < self.drop_silence_s / 2:
            raise ValueError(f"speech_pad_s must be between 0 and half of drop_silence_s, got {self.speech_pad_s}.")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1 (exclusive), got {self.threshold}.")
        if not 0.0 <= self.min_speech_s < self.max_chunk_s:
            raise ValueError(f"min_speech_s must be between 0 and max_chunk_s, got {self.min_speech_s}.")


def iter_chunks(blocks: Iterable[np.ndarray], options: SegmentOptions | None = None) -> Iterator[Chunk]:
    """Yield speech chunks, in order, from 16 kHz mono float32 blocks of any size.

    Each chunk's start_s is its position in the stream; silence of drop_silence_s
    or more between speech is left out. Any split of the same stream into blocks
    gives the same chunks.
    """
    segmenter = _Segmenter(options or SegmentOptions())  # built now, so a missing backend fails at the call

    def chunks() -> Iterator[Chunk]:
        for block in blocks:
            block = np.array(block, dtype=np.float32)  # a copy: callers may reuse their buffer
            if block.ndim != 1:
                raise ValueError(f"blocks must be 1-D (samples,) 16 kHz mono, got shape {block.shape}.")
            yield from segmenter.push(block)
        yield from segmenter.finish()

    return chunks()


# --- VAD backends: stateful, frames in order, (N, frame_len) -> (N,) speech probability


class FrameVad(Protocol):
    frame_len: int  # samples per scored frame

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


def _silero_onnx_path() -> Path | None:
    """The ONNX model inside the silero-vad wheel, found without importing the
    package (its __init__ imports torch, which the ONNX model does not need)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations or importlib.util.find_spec("onnxruntime") is None:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    return path if path.is_file() else None


class _SileroVad:
    frame_len = 512  # 32 ms, the frame the 16 kHz model takes
    _CONTEXT = 64  # samples of the previous frame the model sees before each frame

    def __init__(self, path: Path):
        import onnxruntime

        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = 1  # a 32 ms frame is too small to share out among threads
        session_options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
        self._state = np.zeros((2, 1, 128), dtype=np.float32)  # the model's recurrent state
        self._context = np.zeros((1, self._CONTEXT), dtype=np.float32)
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        probs = np.empty(len(frames), dtype=np.float32)
        for i, frame in enumerate(frames):  # recurrent: one frame after another
            x = np.concatenate([self._context, frame[None]], axis=1)  # (1, 64 + 512)
            out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._rate})
            self._context = x[:, -self._CONTEXT :]
            probs[i] = out[0, 0]
        return probs


def _silero(options: SegmentOptions) -> FrameVad:
    path = _silero_onnx_path()
    if path is None:
        log.warning(
            "silero-vad (or onnxruntime) is not installed, so segmentation uses the energy VAD, which "
            "mistakes noise for speech more often; run `pip install silero-vad` for better chunks."
        )
        return _EnergyVad(options)
    return _SileroVad(path)


class _EnergyVad:
    """Frame level against a running noise floor ("minimum statistics": the quietest
    frame of the last few seconds). Needs nothing; fine for clean recordings."""

    frame_len = SAMPLE_RATE // 50  # 20 ms
    _MARGIN_DB = 12.0  # speech stands this far above the noise floor (probability 0.5 there)
    _SLOPE_DB = 2.0  # dB per logit: how soft the step from pause to speech is
    _GATE_DB = -55.0  # frames quieter than this are never speech (hiss, hum, dither)
    _FLOOR_FRAMES = 250  # 5 s: longer than any syllable, shorter than a change of room
    _PRIOR_DB = -60.0  # assumed floor until real minima have been seen, so an opening word counts

    def __init__(self, options: SegmentOptions):
        self._frame = 0
        self._minima = deque([(0, self._PRIOR_DB)])  # (frame, dB), rising in both: the head is the minimum

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        level_db = 10.0 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12)  # (N,)
        excess_db = np.empty(len(frames))
        for i, db in enumerate(level_db):
            while self._minima and self._minima[-1][1] >= db:
                self._minima.pop()
            self._minima.append((self._frame, db))
            if self._minima[0][0] <= self._frame - self._FLOOR_FRAMES:
                self._minima.popleft()
            excess_db[i] = db - max(self._minima[0][1] + self._MARGIN_DB, self._GATE_DB)
            self._frame += 1
        return 1.0 / (1.0 + np.exp(-excess_db / self._SLOPE_DB))


VAD_BACKENDS: dict[str, Callable[[SegmentOptions], FrameVad]] = {
    "silero": _silero,
    "energy": _EnergyVad,
}


# --- the cutter; all positions are absolute sample (or frame) indices ------------


class _Segmenter:
    """The state iter_chunks carries from block to block."""

    def __init__(self, options: SegmentOptions):
        self.vad = VAD_BACKENDS[options.vad](options)
        frame = self.frame = self.vad.frame_len
        self.max_len = round(options.max_chunk_s * SAMPLE_RATE)
        self.pad = round(options.speech_pad_s * SAMPLE_RATE)
        self.min_pause = math.ceil(options.min_silence_s * SAMPLE_RATE / frame)  # frames
        self.drop_pause = math.ceil(options.drop_silence_s * SAMPLE_RATE / frame)  # frames
        self.min_speech = math.ceil(options.min_speech_s * SAMPLE_RATE / frame)  # frames
        self.on, self.off = options.threshold, max(options.threshold - HYSTERESIS, 0.01)
        self.speaking = False  # hysteresis state
        self.carry = np.zeros(0, dtype=np.float32)  # the frame the VAD has not seen whole yet
        self.parts: list[np.ndarray] = []  # audio from audio_start to audio_end, joined lazily
        self.audio_start = self.audio_end = 0
        self.flags = np.zeros(0, dtype=bool)  # speech per frame, from frame flag0 to n_frames
        self.flag0 = 0
        self.start: int | None = None  # start of the chunk being built; None between speech
        self.prev_end = 0  # end of the last chunk
        self.search = 0  # frame from which the next speech onset is looked for
        self.final = False

    @property
    def n_frames(self) -> int:
        return self.flag0 + len(self.flags)

    def push(self, block: np.ndarray) -> Iterator[Chunk]:
        self.parts.append(block)
        self.audio_end += len(block)
        self._score(np.concatenate([self.carry, block]))
        yield from self._cut()

    def finish(self) -> Iterator[Chunk]:
        self.final = True
        if len(self.carry):  # the last, partial frame, padded with silence
            self._score(np.pad(self.carry, (0, self.frame - len(self.carry))))
        yield from self._cut()

    def _score(self, samples: np.ndarray) -> None:
        n = len(samples) // self.frame
        self.carry = samples[n * self.frame :].copy()
        if n == 0:
            return
        probs = self.vad(samples[: n * self.frame].reshape(n, self.frame))  # (N,)
        flags = np.empty(n, dtype=bool)
        for i, p in enumerate(probs):
            self.speaking = p >= self.on or (self.speaking and p >= self.off)
            flags[i] = self.speaking
        self.flags = np.concatenate([self.flags, flags])

    def _samples(self, start: int, end: int) -> np.ndarray:
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0][start - self.audio_start : end - self.audio_start]

    def _trim(self, keep_from: int) -> None:
        """Forget audio and flags before keep_from: what bounds memory."""
        if keep_from > self.audio_start:
            self.parts = [self._samples(keep_from, self.audio_end)]
            self.audio_start = keep_from
        first = keep_from // self.frame
        if first > self.flag0:
            self.flags = self.flags[first - self.flag0 :]
            self.flag0 = first

    def _cut(self) -> Iterator[Chunk]:
        while True:
            if self.start is None:  # between speech: find the next onset
                ahead = self.flags[max(self.search - self.flag0, 0) :]
                if not ahead.any():
                    self.search = self.n_frames
                    self._trim(min(max(self.prev_end, self.n_frames * self.frame - self.pad), self.audio_end))
                    return
                onset = (self.search + int(np.argmax(ahead))) * self.frame
                self.start = max(onset - self.pad, self.prev_end)
            decision = self._decide()
            if decision is None:  # not enough audio known yet
                self._trim(self.start)
                return
            end, next_start, resume = decision
            assert self.start < end <= self.start + self.max_len and (next_start is None or next_start >= end)
            first, last = self.start // self.frame - self.flag0, -(-end // self.frame) - self.flag0
            if self.flags[first:last].sum() >= self.min_speech:
                yield Chunk(start_s=self.start / SAMPLE_RATE, samples=self._samples(self.start, end).copy())
            self.prev_end, self.start = end, next_start
            if resume is not None:
                self.search = resume

    def _decide(self) -> tuple[int, int | None, int | None] | None:
        """(chunk end, next chunk's start or None, frame to look for speech from
        or None) for the chunk at self.start, or None until enough is known."""
        frame, start = self.frame, self.start
        window_end = start + self.max_len
        first = start // frame
        speech = np.concatenate([[True], self.flags[first - self.flag0 :], [True]]).astype(np.int8)
        steps = np.diff(speech)
        pauses = [  # (a0, a1): frames of each pause that follows speech and starts inside the window
            (int(first + a0), int(first + a1))
            for a0, a1 in zip(np.flatnonzero(steps == -1), np.flatnonzero(steps == 1))
            if start < (first + a0) * frame < window_end
        ]
        for a0, a1 in pauses:
            # A long pause, or the silence that ends the stream, ends the chunk.
            if a1 - a0 >= self.drop_pause or (self.final and a1 == self.n_frames):
                return min(a0 * frame + self.pad, window_end, self.audio_end), None, a1
        if not self.final and self.n_frames < -(-window_end // frame) + self.drop_pause:
            return None  # a pause still open could yet prove long enough to drop
        if self.final and self.audio_end <= window_end:
            return self.audio_end, None, self.n_frames  # speech runs to the end of the stream
        cuts = [((a0 * frame + min(a1 * frame, window_end)) // 2, a0, a1) for a0, a1 in pauses if a1 - a0 >= self.min_pause]
        if cuts:
            late = [c for c in cuts if c[0] - start >= self.max_len // 2]
            if late:  # the latest of the longest: pauses within a quarter of the longest tie (VAD jitter)
                longest = max(a1 - a0 for _, a0, a1 in late)
                late = [c for c in late if c[2] - c[1] >= 0.75 * longest]
            cut, a0, a1 = (late or cuts)[-1]
            return min(a0 * frame + self.pad, cut), max(a1 * frame - self.pad, cut), None
        # No pause: cut at the quietest 20 ms of the last third, most likely between words.
        low = start + 2 * self.max_len // 3
        tail = self._samples(low, window_end)
        n = len(tail) // QUIET_WINDOW
        windows = tail[: n * QUIET_WINDOW].reshape(n, QUIET_WINDOW)  # (N, 20 ms)
        power = np.einsum("ij,ij->i", windows, windows)  # (N,) energy, without a squared copy of the tail
        cut = low + int(np.argmin(power)) * QUIET_WINDOW + QUIET_WINDOW // 2
        return cut, cut, None
