"""The word language model of the lexicon drafts (engine/lexicon.py), from the training transcripts.

Copies the model folder ``init_from`` to ``out_dir/best`` and writes ``word_lm.json.gz`` into it: an
interpolated bigram over the transcripts of ``train_manifests``, its vocabulary widened with the
``general_words`` most frequent English words (wordfreq). A training sentence that is also a sentence
of a ``dev_manifests`` file is left out, so the drafts are never scored on text the LM has read.
Seconds on a CPU.

    python -m training word-lm --config training/configs/word-lm-default.yaml
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from engine.lexicon import WORD_LM_FILE, WordLM, build_word_lm, words_of
from engine.model.config import AcLLMConfig
from training.data.manifest import read_manifest


@dataclass(frozen=True)
class WordLMConfig:
    init_from: str = "resources/models/default"  # the model folder that gets the LM (its CTC alphabet spells the lexicon)
    train_manifests: tuple[str, ...] = ()
    dev_manifests: tuple[str, ...] = ()  # their sentences are dropped from the training text
    out_dir: str = "runs/word-lm"
    general_words: int = 40000  # wordfreq's most frequent English words added to the vocabulary; 0 = none
    frequency_share: float = 0.5  # the unigram's share from general English frequency (the rest: the transcripts)
    discount: float = 0.7

    def __post_init__(self) -> None:
        if not self.train_manifests:
            raise ValueError("train_manifests is empty: list at least one JSONL manifest")
        if self.general_words < 0:
            raise ValueError(f"general_words must be ≥ 0, got {self.general_words}")
        if not 0.0 <= self.frequency_share <= 1.0 or (self.general_words == 0 and self.frequency_share > 0):
            raise ValueError(f"frequency_share must be in [0, 1] (0 when general_words is 0), got {self.frequency_share}")


@dataclass
class WordLMState:
    config: WordLMConfig
    alphabet: str
    sentences: list[str]
    dropped: int
    lm: WordLM | None = None


def setup(config: WordLMConfig) -> WordLMState:
    source = Path(config.init_from)
    if not (source / "config.json").is_file():
        raise ValueError(f"{source} is not a Keyscribe model folder (no config.json): set init_from to one")
    alphabet = AcLLMConfig.load(source / "config.json").encoder.ctc_alphabet
    held_out = {" ".join(words_of(u.text, alphabet)) for path in config.dev_manifests for u in read_manifest(Path(path))}
    sentences = [" ".join(words_of(u.text, alphabet)) for path in config.train_manifests for u in read_manifest(Path(path))]
    kept = [s for s in sentences if s and s not in held_out]
    return WordLMState(config, alphabet, kept, dropped=len(sentences) - len(kept))


def _general_frequencies(n_words: int) -> dict[str, float]:
    if n_words == 0:
        return {}
    from wordfreq import top_n_list, word_frequency

    return {w: word_frequency(w, "en") for w in top_n_list("en", n_words)}


def train(state: WordLMState) -> WordLMState:
    config = state.config
    started = time.perf_counter()
    state.lm = build_word_lm(
        state.sentences, _general_frequencies(config.general_words), state.alphabet, frequency_share=config.frequency_share if config.general_words else 0.0,
        discount=config.discount,
    )
    save(state, Path(config.out_dir) / "best")
    n_bigrams = sum(len(c) for c in state.lm.bigrams.values())
    print(
        f"word-lm: {len(state.sentences)} sentences ({state.dropped} dropped: empty or in a dev set), {len(state.lm.words)} words, "
        f"{n_bigrams} bigrams, {time.perf_counter() - started:.1f} s -> {Path(config.out_dir) / 'best'}"
    )
    return state


def save(state: WordLMState, directory: Path, with_training_state: bool = False) -> None:
    """The init_from folder, copied, with the word LM in it (nothing to resume: the LM is built in one pass)."""
    if state.lm is None:
        raise ValueError("no word LM yet: run train() first")
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(Path(state.config.init_from), directory, ignore=shutil.ignore_patterns("training_state.pt", WORD_LM_FILE))
    state.lm.save(directory / WORD_LM_FILE)
