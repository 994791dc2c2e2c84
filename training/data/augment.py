"""Acoustic augmentation: noise, room reverb, telephone band, lossy codecs, volume.

All random choices are drawn up front into a frozen AugmentPlan (from a seeded
random.Random), so a corpus is reproducible and a plan can be logged or hashed;
apply_augmentation then only executes it. Every step keeps the length of the
input, so labels and durations stay valid.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyroomacoustics as pra
import scipy.signal
import soundfile as sf
import soxr

from .audio_io import SAMPLE_RATE, read_mono_16k

NOISE_KINDS = ("white", "pink", "babble")
CODECS = {  # name → (soundfile format, subtype)
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "vorbis": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
}
# soundfile compression_level: 0 = best quality; libsndfile's MP3 encoder rejects 1.0.
# At 0.95 MP3 runs at about 26 kbit/s and Opus at about 20 kbit/s for 16 kHz speech.
CODEC_COMPRESSION_RANGE = (0.5, 0.95)
MAX_IMAGE_ORDER = 40
MIN_BABBLE_TALKERS = 4  # fewer talkers sound like one competing voice rather than a crowd  # caps image-source RIR cost (~0.5 s per room) for long RT60 in big rooms


@dataclass(frozen=True)
class NoiseSpec:
    kind: str  # one of NOISE_KINDS
    snr_db: float
    seed: int
    babble_sources: tuple[str, ...] = ()  # audio files mixed for "babble"
    babble_offsets: tuple[float, ...] = ()  # where each source starts, as a fraction of its length


@dataclass(frozen=True)
class RoomSpec:
    dims_m: tuple[float, float, float]
    rt60_s: float
    source_m: tuple[float, float, float]
    mic_m: tuple[float, float, float]


@dataclass(frozen=True)
class AugmentPlan:
    reverb: RoomSpec | None = None
    noise: NoiseSpec | None = None
    telephone: bool = False
    codec: str | None = None  # a key of CODECS
    codec_compression: float = 0.5  # soundfile compression_level: 0 best quality, 1 smallest
    peak_dbfs: float | None = None  # final peak level; None keeps the level (only prevents clipping)

    @property
    def is_clean(self) -> bool:
        return self == AugmentPlan()


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges from which plans are drawn."""

    p_reverb: float = 0.3
    rt60_range_s: tuple[float, float] = (0.2, 0.8)
    p_noise: float = 0.4
    snr_range_db: tuple[float, float] = (5.0, 30.0)
    noise_weights: tuple[float, float, float] = (0.3, 0.3, 0.4)  # white, pink, babble
    p_telephone: float = 0.1
    p_codec: float = 0.15
    p_volume: float = 0.5
    peak_range_dbfs: tuple[float, float] = (-30.0, -1.0)

    def __post_init__(self) -> None:
        for name in ("p_reverb", "p_noise", "p_telephone", "p_codec", "p_volume"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AugmentConfig.{name} is a probability; give a value between 0 and 1.")
        if len(self.noise_weights) != len(NOISE_KINDS):
            raise ValueError(f"noise_weights needs one weight per kind {NOISE_KINDS}.")


CLEAN = AugmentConfig(p_reverb=0.0, p_noise=0.0, p_telephone=0.0, p_codec=0.0, p_volume=0.0)
TRAIN = AugmentConfig()
# dev-noisy: hard but not hopeless. Whisper tiny.en WER, clean → corrupted:
#   real Asterisk prompts 0.04 → white 5 dB 0.30, 4-talker babble 5 dB 0.92, RT60 0.9 s 0.38;
#   flite rms (TTS)       0.15 → white 10 dB 0.51, 6-talker babble 15 dB 0.26, RT60 0.6 s 0.40.
# TTS speech suffers more than real speech, hence SNR up to 20 dB and reverb on 40 %.
STRONG = AugmentConfig(p_reverb=0.4, rt60_range_s=(0.4, 0.8), p_noise=1.0, snr_range_db=(5.0, 20.0),
                       p_telephone=0.15, p_codec=0.2, p_volume=0.3)


def _random_room(rng: random.Random, rt60_range_s: tuple[float, float]) -> RoomSpec:
    dims = (rng.uniform(3.0, 10.0), rng.uniform(3.0, 8.0), rng.uniform(2.4, 3.6))

    def position(height_range: tuple[float, float]) -> tuple[float, float, float]:
        margin = 0.5  # metres from any wall
        return (rng.uniform(margin, dims[0] - margin), rng.uniform(margin, dims[1] - margin), rng.uniform(*height_range))

    return RoomSpec(dims, rng.uniform(*rt60_range_s), position((1.2, 1.9)), position((0.7, 1.5)))


def plan_augmentation(rng: random.Random, config: AugmentConfig, babble_pool: Sequence[str] = ()) -> AugmentPlan:
    """Draws one plan. Babble needs a pool of other utterances' audio files; without one it is never chosen."""
    reverb = _random_room(rng, config.rt60_range_s) if rng.random() < config.p_reverb else None
    noise = None
    if rng.random() < config.p_noise:
        weights = list(config.noise_weights)
        if len(babble_pool) < MIN_BABBLE_TALKERS:
            weights[NOISE_KINDS.index("babble")] = 0.0
        kind = rng.choices(NOISE_KINDS, weights=weights)[0]
        sources: tuple[str, ...] = ()
        offsets: tuple[float, ...] = ()
        if kind == "babble":
            talkers = rng.randint(MIN_BABBLE_TALKERS, 2 * MIN_BABBLE_TALKERS)
            sources = tuple(rng.sample(list(babble_pool), k=min(len(babble_pool), talkers)))
            offsets = tuple(rng.random() for _ in sources)
        noise = NoiseSpec(kind, rng.uniform(*config.snr_range_db), rng.getrandbits(32), sources, offsets)
    telephone = rng.random() < config.p_telephone
    codec = rng.choice(sorted(CODECS)) if rng.random() < config.p_codec else None
    compression = rng.uniform(*CODEC_COMPRESSION_RANGE)
    peak = rng.uniform(*config.peak_range_dbfs) if rng.random() < config.p_volume else None
    return AugmentPlan(reverb, noise, telephone, codec, compression if codec else 0.5, peak)


# --- the steps ------------------------------------------------------------------------------


def _active_power(audio: np.ndarray) -> float:
    """Mean power of the frames within 40 dB of the loudest, so leading silence doesn't inflate SNR."""
    frame = SAMPLE_RATE // 50  # 20 ms
    usable = len(audio) // frame * frame
    if usable == 0:
        return float(np.mean(audio**2)) + 1e-12
    powers = np.mean(audio[:usable].reshape(-1, frame) ** 2, axis=1)  # (frames,)
    active = powers[powers >= powers.max() * 1e-4]
    return float(np.mean(active)) + 1e-12


def _pink(length: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length)
    freqs[0] = freqs[1] if length > 1 else 1.0
    return np.fft.irfft(spectrum / np.sqrt(freqs), n=length)  # power ∝ 1/f


def _babble(length: int, spec: NoiseSpec, rng: np.random.Generator) -> np.ndarray:
    mix = np.zeros(length)
    for path, offset in zip(spec.babble_sources, spec.babble_offsets):
        talker = read_mono_16k(path)
        talker = np.roll(talker, -int(offset * len(talker)))
        talker = np.tile(talker, length // len(talker) + 1)[:length]  # loop short talkers
        mix += talker / np.sqrt(_active_power(talker)) * rng.uniform(0.5, 1.0)
    return mix


def add_noise(audio: np.ndarray, spec: NoiseSpec) -> np.ndarray:
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "white":
        noise = rng.standard_normal(len(audio))
    elif spec.kind == "pink":
        noise = _pink(len(audio), rng)
    elif spec.kind == "babble":
        noise = _babble(len(audio), spec, rng)
    else:
        raise ValueError(f"Unknown noise kind {spec.kind!r}; choose one of {NOISE_KINDS}.")
    noise_power = float(np.mean(noise**2)) + 1e-12
    gain = np.sqrt(_active_power(audio) / (noise_power * 10 ** (spec.snr_db / 10)))
    return audio + gain * noise


def room_impulse_response(room: RoomSpec) -> np.ndarray:
    """(taps,) RIR from pyroomacoustics' image-source shoebox model, RT60 set by Sabine's formula."""
    absorption, max_order = pra.inverse_sabine(room.rt60_s, list(room.dims_m))
    shoebox = pra.ShoeBox(list(room.dims_m), fs=SAMPLE_RATE, materials=pra.Material(absorption),
                          max_order=min(max_order, MAX_IMAGE_ORDER))
    shoebox.add_source(list(room.source_m))
    shoebox.add_microphone(list(room.mic_m))
    shoebox.compute_rir()
    return np.asarray(shoebox.rir[0][0], dtype=np.float64)


def add_reverb(audio: np.ndarray, room: RoomSpec) -> np.ndarray:
    rir = room_impulse_response(room)
    wet = scipy.signal.fftconvolve(audio, rir)
    direct = int(np.argmax(np.abs(rir)))  # start at the direct path so words don't shift in time
    wet = wet[direct : direct + len(audio)]
    wet = np.pad(wet, (0, len(audio) - len(wet)))
    return wet * np.sqrt(_active_power(audio) / _active_power(wet))


_TELEPHONE_BAND = scipy.signal.butter(4, (300.0, 3400.0), btype="bandpass", fs=SAMPLE_RATE, output="sos")


def telephone(audio: np.ndarray) -> np.ndarray:
    """300–3400 Hz band, an 8 kHz round trip and 8-bit mu-law, like a narrowband phone call."""
    band = scipy.signal.sosfiltfilt(_TELEPHONE_BAND, audio)  # zero phase: no time shift
    narrow = soxr.resample(band, SAMPLE_RATE, 8000)
    scale = max(1e-9, float(np.max(np.abs(narrow))))
    mu = 255.0
    companded = np.sign(narrow / scale) * np.log1p(mu * np.abs(narrow / scale)) / np.log1p(mu)
    quantized = np.round(companded * 127.0) / 127.0
    narrow = np.sign(quantized) * np.expm1(np.abs(quantized) * np.log1p(mu)) / mu * scale
    wide = soxr.resample(narrow, 8000, SAMPLE_RATE)
    return _fit_length(wide, len(audio))


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    return np.pad(audio[:length], (0, max(0, length - len(audio))))


def _codec_delay(decoded: np.ndarray, original: np.ndarray, max_lag: int = 4096) -> int:
    """Encoder delay (samples) that MP3 adds at the start, found by cross-correlation."""
    window = min(len(original), 2 * SAMPLE_RATE)
    if window == 0 or len(decoded) < window:
        return 0
    lags = min(max_lag, len(decoded) - window)
    corr = scipy.signal.correlate(decoded[: window + lags], original[:window], mode="valid")  # (lags + 1,)
    return int(np.argmax(corr))


def codec_round_trip(audio: np.ndarray, codec: str, compression: float) -> np.ndarray:
    if codec not in CODECS:
        raise ValueError(f"Unknown codec {codec!r}; choose one of {sorted(CODECS)}.")
    if not 0.0 <= compression <= 0.99:
        raise ValueError(f"Codec compression {compression} is outside 0–0.99 (libsndfile's MP3 encoder fails at 1.0).")
    file_format, subtype = CODECS[codec]
    scale = max(1.0, float(np.max(np.abs(audio))))  # encoders clip above full scale
    buffer = io.BytesIO()
    sf.write(buffer, (audio / scale).astype(np.float32), SAMPLE_RATE, format=file_format, subtype=subtype,
             compression_level=compression)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float64")
    if decoded.ndim == 2:
        decoded = decoded.mean(axis=1)
    delay = _codec_delay(decoded, audio / scale) if codec == "mp3" else 0
    return _fit_length(decoded[delay:], len(audio)) * scale


def apply_augmentation(audio: np.ndarray, plan: AugmentPlan) -> np.ndarray:
    """(T,) float → (T,) float32, same length, finite, peak ≤ 0.99."""
    out = np.asarray(audio, dtype=np.float64)
    if plan.reverb is not None:
        out = add_reverb(out, plan.reverb)
    if plan.noise is not None:
        out = add_noise(out, plan.noise)
    if plan.telephone:
        out = telephone(out)
    if plan.codec is not None:
        out = codec_round_trip(out, plan.codec, plan.codec_compression)
    peak = float(np.max(np.abs(out))) + 1e-12
    target = 10 ** (plan.peak_dbfs / 20) if plan.peak_dbfs is not None else min(peak, 0.99)
    out = out * (target / peak)
    if len(out) != len(audio) or not np.all(np.isfinite(out)):
        raise RuntimeError(f"Augmentation broke the audio (plan {plan}); this is a bug.")
    return out.astype(np.float32)
