"""Audio in: any recording or video file to 16 kHz mono float32 samples in [-1, 1].

libsndfile (soundfile) reads WAV, FLAC, OGG Vorbis/Opus and MP3 quickly and with
exact lengths; FFmpeg (PyAV) reads whatever libsndfile refuses (M4A/AAC, MP4,
WebM, MKV, MOV, ...). Both feed one streaming path: decode a chunk, average its
channels, resample with soxr's streaming resampler (it keeps filter state across
chunks, so chunk edges leave no trace), cut into fixed-length blocks. Memory is
one block plus one chunk, whatever the file's length. Every problem with a file
becomes an AudioError: one sentence naming the file, the problem and what to do.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
import soundfile as sf
import soxr

from engine.errors import AudioError

SAMPLE_RATE = 16000  # Hz, what the model's feature extractor expects
# Native frames per decoded chunk (0.37 s at 44.1 kHz): big enough that per-chunk
# Python overhead is noise, small enough that a read failing at damage loses little.
READ_FRAMES = 1 << 14
_LOAD_BLOCK_S = 60.0  # block length load_audio reads with; any length gives the same samples
_RESAMPLE_QUALITY = "HQ"  # soxr's default: passband flat to well past speech bandwidth
# Decoders may add or drop a few codec frames against the header (AAC priming,
# Opus pre-skip); a shortfall beyond this means the file was cut short.
_TRUNCATION_TOLERANCE_S = 0.5
# A 2-D array with more "channels" than this is almost surely (channels, frames).
_MAX_CHANNELS = 64
# Containers that store each track's length (MP4's index, Matroska's DURATION tag)
# rather than leaving FFmpeg to estimate it from the bitrate (raw MP3/AAC streams);
# only there does a decode that ends early prove the file is truncated.
_EXACT_LENGTH_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})

Backend = Literal["soundfile", "pyav"]
NativeChunk = tuple[int, np.ndarray]  # (sample rate in Hz, mono samples (T,) float32)


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, read without decoding the audio."""

    path: Path
    backend: Backend  # which library decodes it
    format_name: str  # e.g. "FLAC/PCM_16" or "mov,mp4,m4a,3gp,3g2,mj2/aac"
    sample_rate: int  # native rate in Hz, before resampling
    channels: int  # native channel count, before the mono downmix
    duration_s: float | None  # None when the header does not say
    duration_is_exact: bool  # False for estimates (MP3, raw AAC, Matroska without a DURATION tag)


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """Read a file's header; raise AudioError if it is missing, empty or not audio."""
    path = _checked_path(path)
    try:
        header = sf.info(str(path))
    except sf.SoundFileError:
        # libsndfile does not know this container (see sf.available_formats());
        # FFmpeg reads nearly everything else, so its verdict is the one we report.
        return _probe_pyav(path)
    # libsndfile takes an MP3's length from its Xing header or a bitrate estimate;
    # for the other formats it knows the exact frame count.
    return AudioInfo(
        path=path,
        backend="soundfile",
        format_name=f"{header.format}/{header.subtype}",
        sample_rate=header.samplerate,
        channels=header.channels,
        duration_s=header.frames / header.samplerate,
        duration_is_exact=header.format != "MP3",
    )


def probe_duration_s(path: str | os.PathLike[str]) -> float | None:
    """Duration in seconds from the container header (no decoding), None if unknown."""
    return probe_audio(path).duration_s


def iter_audio_blocks(path: str | os.PathLike[str], block_s: float = 30.0) -> Iterator[np.ndarray]:
    """Yield consecutive 16 kHz mono float32 blocks of round(block_s * 16000) samples.

    The last block may be shorter. The file is decoded incrementally, so memory
    does not grow with its length. The header is checked at the call, so a bad
    file fails before the first block is asked for. If the file turns out to be
    damaged part way, the blocks decoded before the damage are still yielded and
    AudioError is raised after them.
    """
    block_len = round(block_s * SAMPLE_RATE) if math.isfinite(block_s) else 0
    if block_len < 1:
        raise ValueError(f"block_s must be a positive number of seconds (at least 1/{SAMPLE_RATE}), got {block_s!r}.")
    return _blocks(probe_audio(path), block_len)


def load_audio(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a whole file to 16 kHz mono float32 samples (T,)."""
    return np.concatenate(list(iter_audio_blocks(path, block_s=_LOAD_BLOCK_S)))


def as_mono_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Turn samples a caller already holds, (T,) or (T, C), float or integer PCM,
    into 16 kHz mono float32 (T',) in [-1, 1]."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}.")
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise ValueError(f"samples must be 1-D (frames,) or 2-D (frames, channels), got shape {samples.shape}.")
    if samples.ndim == 2 and samples.shape[1] > _MAX_CHANNELS:
        raise ValueError(f"samples of shape {samples.shape} look like (channels, frames); pass samples.T as (frames, channels).")
    if samples.size == 0:
        raise AudioError("The recording contains no samples; record again and check that the microphone works.")
    floats = _to_float32(samples)
    if not np.isfinite(floats).all():
        raise ValueError("samples contain NaN or infinite values; fix the code that produced them.")
    # Float audio is [-1, 1]; values far outside are integer PCM stored as float,
    # which clipping would flatten into a square wave.
    peak = float(np.abs(floats).max())
    if peak > 2.0:
        raise ValueError(f"float samples must lie in [-1, 1] but reach {peak:g}; divide 16-bit PCM values by 32768.")
    mono = floats if floats.ndim == 1 else floats.mean(axis=1, dtype=np.float32)  # (T,)
    if sample_rate != SAMPLE_RATE:
        mono = soxr.resample(mono, int(sample_rate), SAMPLE_RATE, quality=_RESAMPLE_QUALITY)
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def _to_float32(samples: np.ndarray) -> np.ndarray:
    """Float samples as they are; integer PCM scaled so full scale is 1.0."""
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    if np.issubdtype(samples.dtype, np.signedinteger):
        full_scale = -float(np.iinfo(samples.dtype).min)  # 32768 for int16
        return (samples / full_scale).astype(np.float32)
    if np.issubdtype(samples.dtype, np.unsignedinteger):  # 8-bit PCM is unsigned, centred on 128
        middle = (float(np.iinfo(samples.dtype).max) + 1.0) / 2.0
        return ((samples - middle) / middle).astype(np.float32)
    raise ValueError(f"samples must be float or integer PCM, got dtype {samples.dtype}.")


# --- checks on the file itself ---------------------------------------------------


def _checked_path(path: str | os.PathLike[str]) -> Path:
    """Fail with a plain sentence for the problems no decoder should have to report."""
    path = Path(path)
    try:
        file_stat = path.stat()
    except FileNotFoundError as err:
        raise AudioError(f"{path} does not exist; check the file name and folder.") from err
    except OSError as err:
        raise AudioError(f"{path} cannot be read ({err.strerror}); check that the file is accessible.") from err
    if stat.S_ISDIR(file_stat.st_mode):
        raise AudioError(f"{path} is a folder, not an audio file; choose a file inside it.")
    if not stat.S_ISREG(file_stat.st_mode):
        raise AudioError(f"{path} is not a regular file; choose an audio or video file.")
    if file_stat.st_size == 0:
        raise AudioError(f"{path} is empty (0 bytes); the recording or download failed, so make it again.")
    try:
        path.open("rb").close()
    except OSError as err:
        raise AudioError(f"{path} cannot be read ({err.strerror}); check the file's permissions.") from err
    return path


# --- decoders: libsndfile (soundfile) and FFmpeg (PyAV) --------------------------


def _damaged(path: Path) -> str:
    return f"{path} is damaged or truncated and could not be decoded to the end; re-export or re-download it."


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except av.error.EOFError as err:
        raise AudioError(f"{path} ends before any audio data (it is cut short); re-export or re-download it.") from err
    except av.FFmpegError as err:
        raise AudioError(
            f"{path} cannot be read as audio or video: it is damaged (for example cut short) or not a media file; "
            "check that it plays in a media player, or convert it to WAV or FLAC."
        ) from err


def _audio_stream(container: av.container.InputContainer, path: Path) -> av.AudioStream:
    if container.streams.audio:
        return container.streams.audio[0]  # the first audio track, as media players choose
    format_name = container.format.name
    if format_name == "image2" or format_name.endswith("_pipe"):  # FFmpeg's single-image demuxers: png_pipe, ...
        raise AudioError(f"{path} is an image ({format_name}), not a recording; choose an audio or video file.")
    if container.streams.video:
        raise AudioError(f"{path} is a video without a sound track; choose a file that has audio.")
    raise AudioError(f"{path} contains no audio stream; choose a file that has audio.")


def _probe_pyav(path: Path) -> AudioInfo:
    with _open_container(path) as container:
        stream = _audio_stream(container, path)
        # A length of 0 (fragmented MP4, live recordings) means "not written", like None.
        if stream.duration:
            track_s = float(stream.duration * stream.time_base)
        else:
            track_s = _matroska_track_s(stream)
        exact = track_s is not None and container.format.name in _EXACT_LENGTH_FORMATS
        if track_s is None and container.duration:
            track_s = container.duration / av.time_base  # spans all tracks: only an estimate of the audio's
        return AudioInfo(
            path=path,
            backend="pyav",
            format_name=f"{container.format.name}/{stream.codec_context.name}",
            sample_rate=stream.rate,
            channels=stream.channels,
            duration_s=track_s,
            duration_is_exact=exact,
        )


def _matroska_track_s(stream: av.AudioStream) -> float | None:
    """Matroska keeps a track's length only in a "DURATION" tag ("HH:MM:SS.nnnnnnnnn"),
    which FFmpeg and mkvmerge write and browsers' MediaRecorder does not."""
    try:
        hours, minutes, seconds = stream.metadata.get("DURATION", "").split(":")
        return (int(hours) * 3600 + int(minutes) * 60 + float(seconds)) or None
    except ValueError:  # tag absent or malformed: the length is simply unknown
        return None


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    samples = frame.to_ndarray()  # planar: (C, T); packed: (1, T * C) interleaved
    if not frame.format.is_planar:
        samples = samples.reshape(-1, frame.layout.nb_channels).T  # (C, T)
    return _to_float32(samples).mean(axis=0, dtype=np.float32)  # (T,)


def _pyav_chunks(info: AudioInfo) -> Iterator[NativeChunk]:
    try:
        with _open_container(info.path) as container:
            stream = _audio_stream(container, info.path)
            end_s = 0.0  # timestamp where the last decoded frame ends
            # Codec frames are small (1024 samples for AAC); join them into chunks
            # of about READ_FRAMES so per-chunk overhead stays negligible.
            parts: list[np.ndarray] = []
            parts_len = rate = 0
            for frame in container.decode(stream):
                if parts and (frame.sample_rate != rate or parts_len >= READ_FRAMES):
                    yield rate, np.concatenate(parts)  # a rate change flushes at the old rate
                    parts, parts_len = [], 0
                rate = frame.sample_rate
                parts.append(_frame_to_mono(frame))
                parts_len += frame.samples
                if frame.time is not None:
                    end_s = frame.time + frame.samples / frame.sample_rate
            if parts:
                yield rate, np.concatenate(parts)
    except av.FFmpegError as err:
        raise AudioError(_damaged(info.path)) from err
    # Timestamps rather than a sample count, so gaps in a recording's audio
    # (dropped packets) are not mistaken for a missing end.
    _check_complete(info, decoded_s=end_s)


def _soundfile_chunks(info: AudioInfo) -> Iterator[NativeChunk]:
    frames_read = 0
    try:
        with sf.SoundFile(str(info.path)) as audio_file:
            while len(frames := audio_file.read(READ_FRAMES, dtype="float32", always_2d=True)):  # (T, C)
                frames_read += len(frames)
                yield audio_file.samplerate, frames.mean(axis=1, dtype=np.float32)
    except sf.SoundFileError as err:
        raise AudioError(_damaged(info.path)) from err
    _check_complete(info, decoded_s=frames_read / info.sample_rate)


def _check_complete(info: AudioInfo, decoded_s: float) -> None:
    promised_s = info.duration_s if info.duration_is_exact else None
    if promised_s is not None and decoded_s < promised_s - _TRUNCATION_TOLERANCE_S:
        raise AudioError(
            f"{info.path} is truncated: its header promises {promised_s:.1f} s of audio but only "
            f"{decoded_s:.1f} s could be decoded; re-export or re-download it."
        )


_DECODERS: dict[Backend, Callable[[AudioInfo], Iterator[NativeChunk]]] = {
    "soundfile": _soundfile_chunks,
    "pyav": _pyav_chunks,
}


# --- shared path: resample, check, cut into blocks -------------------------------


def _resampled(chunks: Iterator[NativeChunk]) -> Iterator[np.ndarray]:
    """Mono native-rate chunks in, mono 16 kHz chunks out."""
    resampler: soxr.ResampleStream | None = None
    rate = 0
    flush = np.zeros(0, dtype=np.float32)
    for chunk_rate, mono in chunks:
        if chunk_rate != rate:
            if resampler is not None:
                yield resampler.resample_chunk(flush, last=True)
            # Downmixing before resampling sends one channel, not C, through soxr.
            rate = chunk_rate
            if rate == SAMPLE_RATE:
                resampler = None
            else:
                resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality=_RESAMPLE_QUALITY)
        yield mono if resampler is None else resampler.resample_chunk(mono)
    if resampler is not None:
        yield resampler.resample_chunk(flush, last=True)  # the filter's delayed tail


def _blocks(info: AudioInfo, block_len: int) -> Iterator[np.ndarray]:
    pending: list[np.ndarray] = []
    pending_len = 0
    total_len = 0
    damage: AudioError | None = None
    try:
        for chunk in _resampled(_DECODERS[info.backend](info)):
            if not np.isfinite(chunk).all():
                raise AudioError(f"{info.path} contains invalid (NaN or infinite) samples; re-export it.")
            # Lossy decoders and the resampler can overshoot full scale slightly.
            pending.append(np.clip(chunk, -1.0, 1.0))
            pending_len += len(chunk)
            if pending_len >= block_len:
                joined = np.concatenate(pending)
                n_full = len(joined) // block_len
                for start in range(0, n_full * block_len, block_len):
                    yield joined[start : start + block_len]
                total_len += n_full * block_len
                pending = [joined[n_full * block_len :]]
                pending_len = len(pending[0])
    except AudioError as err:
        # Hand over what decoded cleanly before the damage, then report it.
        damage = err
    if pending_len:
        yield np.concatenate(pending)
        total_len += pending_len
    if damage is not None:
        raise damage
    if total_len == 0:
        raise AudioError(f"{info.path} contains no audio samples; record or export it again.")
