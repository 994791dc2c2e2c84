"""engine.segment on real speech: Asterisk's recorded prompts, joined with known
silences, so where a chunk may and may not be cut is known without the VAD."""

from __future__ import annotations

import importlib.util
import itertools
import logging
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf
import soxr

from engine import segment
from engine.audio import SAMPLE_RATE
from engine.segment import Chunk, SegmentOptions, iter_chunks
from tests.conftest import ASTERISK_DIR

HAS_SILERO = importlib.util.find_spec("silero_vad") is not None and importlib.util.find_spec("onnxruntime") is not None
BACKENDS = [pytest.param("silero", marks=pytest.mark.skipif(not HAS_SILERO, reason="pip install silero-vad")), "energy"]

# One speaker, sentences of 1.5-5 s whose own pauses are all shorter than 0.25 s.
PROMPTS = [
    "agent-newlocation", "agent-pass", "auth-incorrect", "call-fwd-no-ans", "cannot-complete-as-dialed",
    "check-number-dial-again", "conf-getchannel", "conf-getconfno", "conf-getpin", "conf-invalidpin",
    "conf-noempty", "conf-onlyperson", "conf-placeintoconf", "conf-waitforleader", "confbridge-begin-glorious-a",
    "confbridge-begin-leader", "confbridge-binaural-off", "confbridge-dec-list-vol-in", "confbridge-inc-talk-vol-out",
    "confbridge-invalid", "confbridge-lock-no-join", "confbridge-only-participant", "confbridge-pin-bad",
    "confbridge-rest-list-vol-in", "confbridge-remove-last-in", "demo-echodone", "demo-nomatch", "dir-firstlast",
    "conf-roll-callcomplete",
]  # fmt: skip
GAP_S = 0.8  # silence between prompts
LONG_GAP_S = 5.0  # one silence long enough to be dropped
LONG_GAP_AFTER = 12  # index of the prompt it follows
NOISE_DBFS = -60.0  # a quiet room, not digital silence


def _noise(rng: np.random.Generator, duration_s: float, dbfs: float = NOISE_DBFS) -> np.ndarray:
    return (rng.standard_normal(round(duration_s * SAMPLE_RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def _trimmed_prompt(name: str) -> np.ndarray:
    """A prompt at 16 kHz without its lead-in and tail (20 ms frames 40 dB below the loudest)."""
    path = ASTERISK_DIR / f"{name}.wav"
    if not path.is_file():
        pytest.skip("Debian package asterisk-core-sounds-en-wav is not installed")
    samples, rate = sf.read(path, dtype="float32")
    samples = np.asarray(soxr.resample(samples, rate, SAMPLE_RATE), dtype=np.float32)
    frames = samples[: len(samples) // 320 * 320].reshape(-1, 320)  # (N, 20 ms)
    level_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(level_db > level_db.max() - 40)
    return samples[loud[0] * 320 : (loud[-1] + 1) * 320]


@pytest.fixture(scope="module")
def prompts() -> list[np.ndarray]:
    return [_trimmed_prompt(name) for name in PROMPTS]


@pytest.fixture(scope="module")
def stream(prompts) -> tuple[np.ndarray, list[tuple[int, int]], tuple[int, int]]:
    """About 114 s: the prompts with 0.8 s of room noise between them and one 5 s
    silence. Returns samples, each prompt's span and the long silence's span (samples)."""
    rng = np.random.default_rng(0)
    parts: list[np.ndarray] = [_noise(rng, 0.5)]
    spans: list[tuple[int, int]] = []
    pos = len(parts[0])
    for i, prompt in enumerate(prompts):
        if i:
            gap = _noise(rng, LONG_GAP_S if i == LONG_GAP_AFTER + 1 else GAP_S)
            if i == LONG_GAP_AFTER + 1:
                long_gap = (pos, pos + len(gap))
            parts.append(gap)
            pos += len(gap)
        parts.append(prompt)
        spans.append((pos, pos + len(prompt)))
        pos += len(prompt)
    parts.append(_noise(rng, 0.5))
    return np.concatenate(parts), spans, long_gap


def _blocks(samples: np.ndarray, block_s: float) -> Iterator[np.ndarray]:
    step = round(block_s * SAMPLE_RATE)
    return (samples[i : i + step] for i in range(0, len(samples), step))


def _check_chunks(chunks: list[Chunk], samples: np.ndarray, max_chunk_s: float) -> None:
    """The invariants every user relies on, whatever the audio."""
    for chunk in chunks:
        assert chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1
        assert 0 < len(chunk.samples) <= round(max_chunk_s * SAMPLE_RATE)
        start = round(chunk.start_s * SAMPLE_RATE)
        assert chunk.start_s * SAMPLE_RATE == pytest.approx(start, abs=1e-6)
        # start_s is the true position: the chunk is exactly that stretch of the stream.
        np.testing.assert_array_equal(chunk.samples, samples[start : start + len(chunk.samples)])
    for earlier, later in itertools.pairwise(chunks):
        assert earlier.end_s <= later.start_s  # in order, no overlap


def _boundaries(chunks: list[Chunk]) -> list[int]:
    return [b for c in chunks for b in (round(c.start_s * SAMPLE_RATE), round(c.end_s * SAMPLE_RATE))]


@pytest.mark.parametrize("vad", BACKENDS)
@pytest.mark.parametrize("max_chunk_s", [10.0, 30.0])
def test_real_speech_is_cut_only_between_prompts(stream, vad, max_chunk_s):
    samples, spans, long_gap = stream
    chunks = list(iter_chunks(_blocks(samples, 0.5), SegmentOptions(vad=vad, max_chunk_s=max_chunk_s)))
    _check_chunks(chunks, samples, max_chunk_s)
    # Chunks are as long as the pauses allow: one cut for length (not at the long
    # silence or the end) falls at most a prompt and a gap (under 6 s) short of the maximum.
    for chunk, following in itertools.pairwise(chunks):
        if following.start_s - chunk.end_s < LONG_GAP_S / 2:
            assert chunk.end_s - chunk.start_s > max_chunk_s - 6.0
    for boundary in _boundaries(chunks):
        inside = [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in spans if s < boundary < e]
        assert not inside, f"cut at {boundary / SAMPLE_RATE:.2f} s inside a prompt spoken over {inside}"
    for s, e in spans:
        assert any(round(c.start_s * SAMPLE_RATE) <= s and e <= round(c.end_s * SAMPLE_RATE) for c in chunks), (
            f"prompt at {s / SAMPLE_RATE:.2f}-{e / SAMPLE_RATE:.2f} s is not inside one chunk"
        )
    # The 5 s silence is not sent to the decoder: at most padding of it is.
    gap_start, gap_end = long_gap
    covered = sum(max(0, min(c.end_s * SAMPLE_RATE, gap_end) - max(c.start_s * SAMPLE_RATE, gap_start)) for c in chunks)
    assert covered < 1.0 * SAMPLE_RATE


@pytest.mark.parametrize("vad", BACKENDS)
def test_block_size_does_not_change_the_chunks(stream, vad):
    samples = stream[0]
    options = SegmentOptions(vad=vad, max_chunk_s=10.0)
    results = [list(iter_chunks(_blocks(samples, block_s), options)) for block_s in (30.0, 0.5, 0.0371)]
    reference = results[0]
    assert len(reference) >= 10
    for other in results[1:]:
        assert [c.start_s for c in other] == [c.start_s for c in reference]
        for a, b in zip(other, reference):
            np.testing.assert_array_equal(a.samples, b.samples)


@pytest.mark.parametrize("vad", BACKENDS)
def test_speech_without_pauses_is_split_into_short_chunks(prompts, vad):
    samples = np.concatenate(prompts)[: 40 * SAMPLE_RATE]  # 40 s of prompts back to back
    chunks = list(iter_chunks(_blocks(samples, 1.0), SegmentOptions(vad=vad, max_chunk_s=15.0)))
    _check_chunks(chunks, samples, 15.0)
    assert len(chunks) >= 3
    # The first word starts at the first sample, before the VAD has any context.
    assert chunks[0].start_s <= 0.25 and chunks[-1].end_s >= len(samples) / SAMPLE_RATE - 0.05
    # Nothing spoken is left out: chunks are apart by at most a short pause.
    assert all(later.start_s - earlier.end_s < 0.3 for earlier, later in itertools.pairwise(chunks))


class _AlwaysSpeech:
    """A VAD that hears speech everywhere, so only the no-pause rule can cut."""

    frame_len = 512

    def __init__(self, options: SegmentOptions):
        pass

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.ones(len(frames), dtype=np.float32)


def test_unbroken_speech_is_cut_at_the_quietest_point_of_the_last_third(monkeypatch):
    monkeypatch.setitem(segment.VAD_BACKENDS, "always", _AlwaysSpeech)
    rng = np.random.default_rng(1)
    samples = _noise(rng, 40.0, dbfs=-20.0)
    dip = 320  # 20 ms
    samples[12 * SAMPLE_RATE : 12 * SAMPLE_RATE + dip] *= 0.001  # quietest of all, but in the first two thirds
    samples[25 * SAMPLE_RATE : 25 * SAMPLE_RATE + dip] *= 0.01  # quietest of the last third (20-30 s)
    chunks = list(iter_chunks(_blocks(samples, 0.7), SegmentOptions(vad="always", max_chunk_s=30.0)))
    _check_chunks(chunks, samples, 30.0)
    assert [round(c.start_s, 3) for c in chunks] == [0.0, 25.01]
    assert chunks[0].end_s == chunks[1].start_s and chunks[1].end_s == 40.0  # nothing lost


def _bursts(rng: np.random.Generator, pattern: list[tuple[float, float]]) -> np.ndarray:
    """(speech_s, pause_s) pairs: noise at -20 dBFS in 4 Hz syllables, pauses at -70 dBFS."""
    parts = []
    for speech_s, pause_s in pattern:
        t_s = np.arange(round(speech_s * SAMPLE_RATE)) / SAMPLE_RATE
        envelope = np.sin(2 * np.pi * 2.0 * t_s) ** 2  # dips between syllables, as in speech
        parts += [_noise(rng, speech_s, -20.0) * envelope.astype(np.float32), _noise(rng, pause_s, -70.0)]
    return np.concatenate(parts)


def test_window_is_cut_in_the_longest_pause_of_its_second_half():
    # Pauses at 2.5 s (0.4 s long), 8.5 s (1.5 s, but in the window's first half),
    # 14.3 s and 19.2 s (0.4 s), 24.3 s (1.0 s: the one to cut in) and 27.8 s (0.4 s).
    pattern = [(2.5, 0.4), (5.6, 1.5), (4.3, 0.4), (4.5, 0.4), (4.7, 1.0), (2.5, 0.4), (6.0, 0.0)]
    samples = _bursts(np.random.default_rng(2), pattern)
    chunks = list(iter_chunks(_blocks(samples, 0.5), SegmentOptions(vad="energy", max_chunk_s=30.0)))
    _check_chunks(chunks, samples, 30.0)
    assert len(chunks) == 2
    assert 24.3 < chunks[0].end_s < chunks[1].start_s < 25.3


@pytest.mark.parametrize("vad", BACKENDS)
def test_silence_yields_no_chunks(vad):
    rng = np.random.default_rng(3)
    options = SegmentOptions(vad=vad)
    assert list(iter_chunks(_blocks(np.zeros(60 * SAMPLE_RATE, np.float32), 1.0), options)) == []
    assert list(iter_chunks(_blocks(_noise(rng, 60.0), 1.0), options)) == []
    assert list(iter_chunks([], options)) == []


def test_memory_stays_bounded_over_twenty_minutes():
    """20 min of float32 is 77 MB; the segmenter may hold only about one window."""
    rng = np.random.default_rng(4)
    # Mostly unbroken speech (forced cuts) with a sentence pause now and then.
    pattern = [(float(rng.uniform(3, 9)), float(rng.choice([0.1, 0.1, 0.5, 2.5]))) for _ in range(60)]
    cycle = _bursts(rng, pattern)  # ~6 min, repeated; blocks are cut out of it one at a time

    def blocks() -> Iterator[np.ndarray]:
        for i in range(20 * 60):
            start = i * SAMPLE_RATE % (len(cycle) - SAMPLE_RATE)
            yield cycle[start : start + SAMPLE_RATE].copy()

    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        spoken_s, last_end_s, count = 0.0, 0.0, 0
        for chunk in iter_chunks(blocks(), SegmentOptions(vad="energy", max_chunk_s=30.0)):
            spoken_s += chunk.end_s - chunk.start_s
            last_end_s, count = chunk.end_s, count + 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count >= 40 and spoken_s > 15 * 60 and last_end_s > 20 * 60 - 5
    window_bytes = (30.0 + 2.0 + 1.0) * SAMPLE_RATE * 4  # window + drop lookahead + a block: 2.1 MB
    # The buffer, its joined copy, the chunk being made and the one this loop still
    # holds: about 4 windows (7.5 MB measured); buffering everything would be 77 MB.
    assert peak - base < 5 * window_bytes, f"peak {(peak - base) / 1e6:.1f} MB"


def test_missing_silero_falls_back_to_energy(monkeypatch, caplog, stream):
    samples = stream[0][: 20 * SAMPLE_RATE]
    monkeypatch.setattr(segment, "_silero_onnx_path", lambda: None)
    with caplog.at_level(logging.WARNING, logger="engine.segment"):
        fallback = list(iter_chunks(_blocks(samples, 1.0), SegmentOptions(vad="silero")))
    assert "pip install silero-vad" in caplog.text
    energy = list(iter_chunks(_blocks(samples, 1.0), SegmentOptions(vad="energy")))
    assert len(fallback) >= 1 and [c.start_s for c in fallback] == [c.start_s for c in energy]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"vad": "whisper"}, "vad"),
        ({"max_chunk_s": 0.5}, "max_chunk_s"),
        ({"max_chunk_s": float("nan")}, "max_chunk_s"),
        ({"min_silence_s": 0.0}, "min_silence_s"),
        ({"min_silence_s": 3.0}, "min_silence_s"),
        ({"speech_pad_s": -0.1}, "speech_pad_s"),
        ({"speech_pad_s": 1.5}, "speech_pad_s"),
        ({"threshold": 1.0}, "threshold"),
        ({"drop_silence_s": 40.0}, "drop_silence_s"),
        ({"min_speech_s": -1.0}, "min_speech_s"),
    ],
)
def test_bad_options_say_what_to_change(changes, field):
    with pytest.raises(ValueError, match=field):
        SegmentOptions(**changes)


def test_blocks_must_be_one_dimensional():
    with pytest.raises(ValueError, match="1-D"):
        list(iter_chunks([np.zeros((1600, 2), np.float32)], SegmentOptions(vad="energy")))
