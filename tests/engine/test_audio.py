"""engine.audio on real files of every supported kind, written into tmp_path by the tests.

Signals are analytic (sines), so the expected 16 kHz output is known exactly
without going through the code under test.
"""

from __future__ import annotations

import fractions
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from engine.audio import (
    SAMPLE_RATE,
    as_mono_16k,
    iter_audio_blocks,
    load_audio,
    probe_audio,
    probe_duration_s,
)
from engine.errors import AudioError

DURATION_S = 2.0
LEFT_HZ, RIGHT_HZ = 440.0, 1000.0
AMPLITUDE = 0.6  # per channel; the mono mix is 0.3 * (sin 440 Hz + sin 1000 Hz)
EDGE_S = 0.05  # resampler filters ring at the very start and end; compare the interior


def two_tone(sample_rate: int, channels: int, duration_s: float = DURATION_S) -> np.ndarray:
    """(T, C) float32: left 440 Hz, right 1000 Hz; a mono file gets their average."""
    t_s = np.arange(round(sample_rate * duration_s)) / sample_rate
    left = AMPLITUDE * np.sin(2 * np.pi * LEFT_HZ * t_s)
    right = AMPLITUDE * np.sin(2 * np.pi * RIGHT_HZ * t_s)
    stereo = np.stack([left, right], axis=1)  # (T, 2)
    return (stereo if channels == 2 else stereo.mean(axis=1, keepdims=True)).astype(np.float32)


def expected_mono_16k(n_samples: int) -> np.ndarray:
    """What a perfect decoder + resampler + channel average gives, (T,) at 16 kHz."""
    t_s = np.arange(n_samples) / SAMPLE_RATE
    return AMPLITUDE / 2 * (np.sin(2 * np.pi * LEFT_HZ * t_s) + np.sin(2 * np.pi * RIGHT_HZ * t_s))


def spectrum_peaks_hz(mono: np.ndarray, count: int) -> list[float]:
    """The `count` strongest frequencies, at least 50 Hz apart."""
    magnitude = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    freqs_hz = np.fft.rfftfreq(len(mono), d=1 / SAMPLE_RATE)
    peaks: list[float] = []
    for index in np.argsort(magnitude)[::-1]:
        if all(abs(freqs_hz[index] - p) > 50 for p in peaks):
            peaks.append(float(freqs_hz[index]))
        if len(peaks) == count:
            return sorted(peaks)
    raise AssertionError("spectrum has fewer peaks than asked for")


def write_with_pyav(path: Path, signal: np.ndarray, sample_rate: int, codec: str, video_codec: str | None = None):
    """Encode (T, C) float32 through FFmpeg; PyAV converts to the codec's sample format and frame size."""
    layout = "mono" if signal.shape[1] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        audio = container.add_stream(codec, rate=sample_rate, layout=layout)
        video = None
        if video_codec is not None:
            video = container.add_stream(video_codec, rate=10)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for start in range(0, len(signal), 4096):
            planes = np.ascontiguousarray(signal[start : start + 4096].T)  # (C, T)
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, fractions.Fraction(1, sample_rate)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
        if video is not None:
            for index in range(round(len(signal) / sample_rate * 10)):
                image = np.full((48, 64, 3), index * 7 % 256, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                container.mux(video.encode(frame))
            container.mux(video.encode(None))


@dataclass(frozen=True)
class Case:
    name: str
    sample_rate: int
    channels: int
    backend: str
    lossless: bool
    soundfile_args: dict | None = None  # written by soundfile when set
    codec: str = ""  # otherwise written by PyAV with this audio codec
    video_codec: str | None = None


CASES = [
    Case("tone.wav", 8000, 1, "soundfile", True, {"subtype": "PCM_16"}),
    Case("tone16k.wav", 16000, 2, "soundfile", True, {"subtype": "FLOAT"}),  # no resampling at all
    Case("tone.flac", 22050, 2, "soundfile", True, {}),
    Case("tone.ogg", 32000, 2, "soundfile", False, {"format": "OGG", "subtype": "VORBIS"}),
    Case("tone.opus", 48000, 2, "soundfile", False, {"format": "OGG", "subtype": "OPUS"}),
    Case("tone.mp3", 44100, 2, "soundfile", False, {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
    Case("tone.m4a", 44100, 2, "pyav", False, codec="aac"),
    Case("tone.mp4", 48000, 2, "pyav", False, codec="aac", video_codec="mpeg4"),
    Case("tone.webm", 48000, 2, "pyav", False, codec="libopus"),
    Case("tone.mkv", 22050, 2, "pyav", True, codec="flac"),
    Case("tone.mov", 8000, 1, "pyav", True, codec="pcm_s16le"),
]


def write_case(case: Case, folder: Path) -> Path:
    path = folder / case.name
    signal = two_tone(case.sample_rate, case.channels)
    if case.soundfile_args is not None:
        sf.write(str(path), signal, case.sample_rate, **case.soundfile_args)
    else:
        write_with_pyav(path, signal, case.sample_rate, case.codec, case.video_codec)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    return {case.name: write_case(case, folder) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_every_format_decodes_to_16k_mono_with_the_signal_intact(case: Case, media):
    path = media[case.name]
    info = probe_audio(path)
    assert (info.backend, info.sample_rate, info.channels) == (case.backend, case.sample_rate, case.channels)
    assert probe_duration_s(path) == pytest.approx(DURATION_S, abs=0.05)

    mono = load_audio(path)
    assert mono.dtype == np.float32 and mono.ndim == 1
    # Lossy codecs may keep a few ms of encoder delay (AAC priming); nothing more.
    assert len(mono) / SAMPLE_RATE == pytest.approx(DURATION_S, abs=0.03)
    assert np.abs(mono).max() <= 1.0
    # Both channels survive the downmix at their frequencies, and at the right level.
    assert spectrum_peaks_hz(mono, 2) == pytest.approx([LEFT_HZ, RIGHT_HZ], abs=2.0)
    expected_rms = AMPLITUDE / 2  # two sines of amplitude 0.3: sqrt(2 * 0.3**2 / 2)
    assert np.sqrt(np.mean(mono**2)) == pytest.approx(expected_rms, rel=0.1)


@pytest.mark.parametrize("case", [c for c in CASES if c.lossless], ids=lambda case: case.name)
def test_lossless_formats_match_the_analytic_signal_sample_for_sample(case: Case, media):
    mono = load_audio(media[case.name])
    assert len(mono) == round(DURATION_S * SAMPLE_RATE)
    edge = round(EDGE_S * SAMPLE_RATE)
    error = np.abs(mono - expected_mono_16k(len(mono)))[edge:-edge]
    # 16-bit quantisation is 3e-5; anything near 1e-3 would be a shift, a wrong
    # mix or an edge artefact between decoded chunks.
    assert error.max() < 2e-3


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_streamed_blocks_have_the_asked_size_and_join_up_to_load_audio(case: Case, media):
    path = media[case.name]
    blocks = list(iter_audio_blocks(path, block_s=0.3))
    block_len = round(0.3 * SAMPLE_RATE)
    assert all(len(block) == block_len for block in blocks[:-1])
    assert 0 < len(blocks[-1]) <= block_len
    assert all(block.dtype == np.float32 and block.ndim == 1 for block in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path))


def test_formats_libsndfile_refuses_fall_back_to_ffmpeg(media, monkeypatch):
    # As on a system libsndfile built without MP3 support.
    def refuse(path):
        raise sf.SoundFileError(f"Error opening {path!r}: Format not recognised.")

    monkeypatch.setattr(sf, "info", refuse)
    assert probe_audio(media["tone.mp3"]).backend == "pyav"
    mono = load_audio(media["tone.mp3"])
    assert spectrum_peaks_hz(mono, 2) == pytest.approx([LEFT_HZ, RIGHT_HZ], abs=2.0)


def test_block_length_need_not_divide_a_second(media):
    blocks = list(iter_audio_blocks(media["tone.flac"], block_s=0.7))
    assert [len(block) for block in blocks] == [11200, 11200, 9600]  # 2 s = 32000 samples


@pytest.mark.parametrize("block_s", [0.0, -1.0, float("nan"), float("inf"), 1e-6])
def test_block_length_must_be_a_positive_number_of_samples(block_s, media):
    with pytest.raises(ValueError, match="block_s"):
        iter_audio_blocks(media["tone.wav"], block_s=block_s)


def test_samples_beyond_full_scale_are_clipped(tmp_path):
    path = tmp_path / "loud.wav"
    t_s = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    sf.write(str(path), 1.5 * np.sin(2 * np.pi * LEFT_HZ * t_s), SAMPLE_RATE, subtype="FLOAT")  # float WAV may exceed 1
    mono = load_audio(path)
    assert mono.max() == 1.0 and mono.min() == -1.0
    assert np.mean(np.abs(mono) == 1.0) > 0.2  # clipped, not rescaled


# --- bad input: every problem is an AudioError that names the file --------------


def write_png(path: Path) -> None:
    with av.open(str(path), "w", format="image2pipe") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 8, 8, "rgb24"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode(None))


def write_video_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def cut_in_half(source: Path, target: Path) -> None:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])


BAD_FILES = {
    # name: (how to make it from tmp_path and the good media, words the message must contain)
    "missing.wav": (lambda path, media: None, "does not exist"),
    "folder.wav": (lambda path, media: path.mkdir(), "folder"),
    "empty.wav": (lambda path, media: path.touch(), "empty"),
    "no_samples.wav": (lambda path, media: sf.write(str(path), np.zeros((0, 2)), 16000), "no audio samples"),
    "cut.flac": (lambda path, media: cut_in_half(media["tone.flac"], path), "truncated"),
    "cut.m4a": (lambda path, media: cut_in_half(media["tone.m4a"], path), "damaged"),
    "cut.webm": (lambda path, media: cut_in_half(media["tone.webm"], path), "truncated"),
    "garbage.flac": (
        lambda path, media: path.write_bytes(media["tone.flac"].read_bytes()[:200] + np.random.default_rng(0).bytes(20_000)),
        "damaged",
    ),
    "video_only.mp4": (lambda path, media: write_video_only(path), "without a sound track"),
    "notes.wav": (lambda path, media: path.write_text("Meeting notes, not audio.\n" * 50), "cannot be read"),
    "picture.wav": (lambda path, media: write_png(path), "image"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_raise_audio_error_naming_the_file(name, tmp_path, media):
    make, words = BAD_FILES[name]
    path = tmp_path / name
    make(path, media)
    for read in (load_audio, lambda p: list(iter_audio_blocks(p, block_s=0.25))):
        with pytest.raises(AudioError) as caught:
            read(path)
        message = str(caught.value)
        assert name in message and words in message
        assert message.endswith(".") and "\n" not in message  # one sentence, shown as it is


@pytest.mark.parametrize("name", ["garbage.flac", "notes.wav", "cut.m4a"])
def test_library_errors_are_chained_not_hidden(name, tmp_path, media):
    make, _ = BAD_FILES[name]
    make(tmp_path / name, media)
    with pytest.raises(AudioError) as caught:
        load_audio(tmp_path / name)
    assert isinstance(caught.value.__cause__, (sf.SoundFileError, av.FFmpegError))


def test_bad_file_fails_at_the_call_before_any_block_is_asked_for(tmp_path):
    with pytest.raises(AudioError, match="missing.wav"):
        iter_audio_blocks(tmp_path / "missing.wav")  # no next(): the error must not wait for iteration
    with pytest.raises(AudioError, match="missing.wav"):
        probe_duration_s(tmp_path / "missing.wav")


@pytest.mark.parametrize("case", [c for c in CASES if c.name in ("tone.flac", "tone.webm")], ids=lambda c: c.name)
def test_truncated_file_yields_what_it_decoded_before_raising(case: Case, tmp_path):
    whole = tmp_path / case.name
    signal = two_tone(case.sample_rate, case.channels, duration_s=6.0)
    if case.soundfile_args is not None:
        sf.write(str(whole), signal, case.sample_rate, **case.soundfile_args)
    else:
        write_with_pyav(whole, signal, case.sample_rate, case.codec)
    cut = tmp_path / f"cut_{case.name}"
    cut_in_half(whole, cut)
    decoded_s = 0.0
    with pytest.raises(AudioError, match="truncated"):
        for block in iter_audio_blocks(cut, block_s=0.25):
            decoded_s += len(block) / SAMPLE_RATE
    assert decoded_s > 2.0  # about 3 s were there to hand over before the cut


# --- memory: a long file is never held whole -------------------------------------


def test_long_file_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "twenty_minutes.wav"
    native_rate, duration_s = 8000, 20 * 60
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=native_rate, channels=1, subtype="PCM_16") as out:
        for _ in range(duration_s // 60):  # written a minute at a time: quiet noise
            out.write((0.01 * rng.standard_normal(native_rate * 60)).astype(np.float32))
    whole_file_bytes = duration_s * SAMPLE_RATE * 4  # 77 MB of float32 at 16 kHz

    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        n_samples = 0
        for block in iter_audio_blocks(path, block_s=30.0):
            n_samples += len(block)
        _, streaming_peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole = load_audio(path)
        _, loading_peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert n_samples == len(whole) == duration_s * SAMPLE_RATE
    # The measurement sees whole-file decoding when it happens...
    assert loading_peak_bytes >= whole_file_bytes
    # ...and streaming stays near one 30 s block (1.9 MB) plus one decoded chunk.
    assert streaming_peak_bytes < whole_file_bytes / 8


# --- samples already in memory --------------------------------------------------


def test_as_mono_16k_resamples_and_downmixes_float_stereo():
    stereo = two_tone(48000, 2).astype(np.float64)  # (T, 2)
    mono = as_mono_16k(stereo, 48000)
    assert mono.dtype == np.float32 and mono.shape == (round(DURATION_S * SAMPLE_RATE),)
    edge = round(EDGE_S * SAMPLE_RATE)
    assert np.abs(mono - expected_mono_16k(len(mono)))[edge:-edge].max() < 2e-3


def test_as_mono_16k_scales_integer_pcm_and_passes_16k_through():
    pcm = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    np.testing.assert_allclose(as_mono_16k(pcm, SAMPLE_RATE), [0.0, 0.5, -1.0, 32767 / 32768])
    floats = two_tone(SAMPLE_RATE, 1)[:, 0]
    np.testing.assert_array_equal(as_mono_16k(floats, SAMPLE_RATE), floats)


@pytest.mark.parametrize(
    ("samples", "sample_rate", "words"),
    [
        (np.array([0.0, np.nan]), 16000, "NaN"),
        (np.zeros((4, 2, 2)), 16000, "1-D"),
        (np.zeros((2, 48000)), 48000, "samples.T"),
        (np.array([0.1, 3000.0]), 16000, "32768"),
        (np.zeros(10), 0, "sample_rate"),
        (np.zeros(10), 44100.5, "sample_rate"),
        (np.array(["a", "b"]), 16000, "dtype"),
    ],
)
def test_as_mono_16k_rejects_malformed_input(samples, sample_rate, words):
    with pytest.raises(ValueError, match=words):
        as_mono_16k(samples, sample_rate)


def test_as_mono_16k_reports_an_empty_recording():
    with pytest.raises(AudioError, match="no samples"):
        as_mono_16k(np.zeros((0, 2), dtype=np.float32), 44100)
