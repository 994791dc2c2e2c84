"""Context SFT: ⟨context, speech, text⟩ triples (Seed-ASR's context SFT, SLAM-LLM's contextual ASR).

Continues an SFT checkpoint (``init_from``) with SFT's loss, encoder cache, loop, checkpoints
and resume (training/recipes/sft.py); only the prompts change. Each training utterance gets a
context drawn by training/context.py: a hotword list with some of its own rare words or names
among distractors (or distractors only, or no list), a meeting description, the transcript so
far. Dev WER is measured with an empty context and, for dev sets whose utterances carry
hotwords, with those in the prompt (``dev_wer/NAME+hotwords``).

    python -m training context-sft --config training/configs/context-sft-default.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.context import ContextConfig, ContextSampler
from training.data.manifest import read_manifest
from training.recipes import sft
from training.recipes.sft import SFTConfig, SFTState


@dataclass(frozen=True)
class ContextSFTConfig(SFTConfig):
    """SFT's settings plus a ``context`` section (how often each kind of context is drawn)."""

    context: ContextConfig = field(default_factory=ContextConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model != "tiny" and not self.init_from:
            raise ValueError("context SFT continues an SFT run: set init_from to its checkpoint, e.g. runs/sft-default/best")


@dataclass
class ContextSFTState:
    sft: SFTState
    contexts: ContextSampler


def setup(config: ContextSFTConfig) -> ContextSFTState:
    # The sampler first: it reads every training transcript, and fails before the encoder cache is built.
    contexts = ContextSampler(config.context, [read_manifest(m) for m in config.train_manifests], seed=config.seed)
    return ContextSFTState(sft.setup(config), contexts)


def train(state: ContextSFTState) -> ContextSFTState:
    sft.train(state.sft, contexts=state.contexts, eval_hotwords=True)
    return state


def save(state: ContextSFTState, directory: Path, with_training_state: bool) -> None:
    sft.save(state.sft, directory, with_training_state)
