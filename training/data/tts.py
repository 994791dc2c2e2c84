"""Synthetic corpus: plan utterances from a seed, then render them in parallel.

Planning (main process, cheap) decides everything random: sentence, voice,
speed, pitch and augmentation. Rendering (worker processes) only executes the
plan, so the same seed gives the same corpus whatever --jobs is. Each audio file
name carries a digest of its plan; an existing file is reused, which makes an
interrupted build resumable and a changed plan re-render only what changed.

Splits: train uses TRAIN_VOICES and sentences whose text hashes to train;
dev-tts uses the held-out DEV_VOICES and dev-hashed sentences, clean.
tts-names (optional) is more train data dense in names, none of them a dev-tts name; dev-names
(optional) is held-out speech whose names no train split holds.
dev-noisy is a strongly corrupted copy of dev utterances (plan_noisy_copies).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import augment
from .audio_io import duration_s, read_mono_16k, write_flac
from .manifest import Utterance
from .splits import is_dev_text
from .text_sources import COMPANY_SUFFIXES, EXTRA_NAME_LOCALES, FORTUNE_DIR, NAME_LOCALES, Sentence, sentence_stream
from .voices import DEV_VOICES, TRAIN_VOICES, PiperEngine, Prosody, Voice, synthesize

TTS_SPLIT_SALT = "keyscribe-tts"
DEV_SENTENCE_SHARE = 0.2  # share of the sentence stream routed to the held-out pool
ENGINE_WEIGHTS = {"piper": 0.3, "flite": 0.25, "espeak": 0.25, "festival": 0.2}
SPEED_RANGE = (0.85, 1.2)
PITCH_RANGE = (0.85, 1.2)
# Rough TTS timing, to turn --tts-hours into a number of sentences before synthesis
# (fitted on a 0.3 h build: planned and rendered hours agree within a few percent).
SECONDS_PER_WORD = 0.31
SECONDS_OVERHEAD = 0.5


@dataclass(frozen=True)
class SynthItem:
    """Speak `text` with `voice` and `prosody`, then augment."""

    id: str
    text: str
    voice: Voice
    prosody: Prosody
    augment: augment.AugmentPlan
    hotwords: tuple[str, ...] = ()

    @property
    def speaker(self) -> str:
        return self.voice.key

    def render(self):
        return augment.apply_augmentation(synthesize(self.text, self.voice, self.prosody), self.augment)


@dataclass(frozen=True)
class CopyItem:
    """Re-record an existing utterance's audio through an augmentation plan."""

    id: str
    source_audio: str
    text: str
    speaker: str | None
    augment: augment.AugmentPlan
    hotwords: tuple[str, ...] = ()

    def render(self):
        return augment.apply_augmentation(read_mono_16k(self.source_audio), self.augment)


Item = SynthItem | CopyItem


def audio_file_name(item: Item) -> str:
    """<id>-<digest>.flac; the digest changes whenever anything in the plan changes."""
    digest = hashlib.sha256(repr(item).encode("utf-8")).hexdigest()[:10]
    return f"{item.id}-{digest}.flac"


# --- planning ------------------------------------------------------------------------------


def estimated_duration_s(text: str, prosody: Prosody) -> float:
    return len(text.split()) * SECONDS_PER_WORD / prosody.speed + SECONDS_OVERHEAD


def _pick_voice(rng: random.Random, voices: Sequence[Voice]) -> Voice:
    engines = sorted({voice.engine for voice in voices})
    engine = rng.choices(engines, weights=[ENGINE_WEIGHTS.get(e, 0.1) for e in engines])[0]
    return rng.choice([voice for voice in voices if voice.engine == engine])


def _plan_item(item_id: str, sentence: Sentence, rng: random.Random, voices: Sequence[Voice],
               config: augment.AugmentConfig, babble_pool: Sequence[str]) -> SynthItem:
    voice = _pick_voice(rng, voices)
    speed = rng.uniform(*SPEED_RANGE)
    pitch = rng.uniform(*PITCH_RANGE)
    prosody = Prosody(round(speed, 3), round(pitch, 3) if voice.base_f0_hz is not None else 1.0)
    plan = augment.plan_augmentation(rng, config, babble_pool)
    return SynthItem(item_id, sentence.text, voice, prosody, plan, sentence.hotwords)


def _split_streams(seed: int, fortune_share: float, fortune_dir: Path) -> tuple[Iterator[Sentence], Iterator[Sentence]]:
    """Two disjoint sentence streams (train, held-out) cut from one seeded stream by text hash."""
    stream = sentence_stream(seed, fortune_share, fortune_dir)
    pending: dict[bool, deque[Sentence]] = {False: deque(), True: deque()}

    def take(dev: bool) -> Iterator[Sentence]:
        while True:
            if pending[dev]:
                yield pending[dev].popleft()
                continue
            sentence = next(stream)
            pending[is_dev_text(sentence.text, DEV_SENTENCE_SHARE, TTS_SPLIT_SALT)].append(sentence)

    return take(False), take(True)


def _plan_hours(split: str, seed: int, sentences: Iterator[Sentence], hours: float, max_utterances: int | None,
                voices: Sequence[Voice], config: augment.AugmentConfig, babble_pool: Sequence[str]) -> list[SynthItem]:
    """Items tts-<split>-000000, … from ``sentences`` until about ``hours`` of speech (estimated) are planned."""
    items: list[SynthItem] = []
    planned_s = 0.0
    while planned_s < hours * 3600 and (max_utterances is None or len(items) < max_utterances):
        index = len(items)
        rng = random.Random(f"tts/{seed}/{split}/{index}")
        item = _plan_item(f"tts-{split}-{index:06d}", next(sentences), rng, voices, config, babble_pool)
        items.append(item)
        planned_s += estimated_duration_s(item.text, item.prosody)
    return items


@dataclass(frozen=True)
class TtsPlan:
    train: tuple[SynthItem, ...]
    dev: tuple[SynthItem, ...]


def plan_tts_corpus(
    seed: int,
    train_hours: float,
    dev_utterances: int,
    train_voices: Sequence[Voice] = TRAIN_VOICES,
    dev_voices: Sequence[Voice] = DEV_VOICES,
    babble_pool: Sequence[str] = (),
    train_augment: augment.AugmentConfig = augment.TRAIN,
    fortune_share: float = 0.4,
    fortune_dir: str | Path = FORTUNE_DIR,
    max_train_utterances: int | None = None,
) -> TtsPlan:
    """Plans a train split of about train_hours (estimated from word counts) and a clean held-out split."""
    if train_hours < 0 or dev_utterances < 0:
        raise ValueError("train_hours and dev_utterances must not be negative.")
    if (train_hours > 0 and not train_voices) or (dev_utterances > 0 and not dev_voices):
        raise ValueError("No working TTS voice for a requested split; install flite, espeak-ng or festival.")
    if {v.key for v in train_voices} & {v.key for v in dev_voices}:
        raise ValueError("A voice is both in train and in the held-out set; dev-tts must use unseen voices.")
    train_stream, dev_stream = _split_streams(seed, fortune_share, Path(fortune_dir))
    train = _plan_hours("train", seed, train_stream, train_hours, max_train_utterances, train_voices, train_augment,
                        babble_pool)
    dev = [
        _plan_item(f"tts-dev-{index:06d}", next(dev_stream), random.Random(f"tts/{seed}/dev/{index}"),
                   dev_voices, augment.CLEAN, ())
        for index in range(dev_utterances)
    ]
    return TtsPlan(tuple(train), tuple(dev))


# Words of a hotword that are not a name: a dev term "Kisman Group" must not keep "Bosch Group" out.
_NOT_NAME_WORDS = frozenset({"and", "the"} | {suffix.casefold() for suffix in COMPANY_SUFFIXES})


def name_words(terms: Sequence[str]) -> set[str]:
    """The words of ``terms`` that belong to a name, casefolded: "Kisman Group" → {"kisman"}."""
    return {word.casefold() for term in terms for word in term.split()} - _NOT_NAME_WORDS


def _name_sentences(seed: int, dev: bool, avoid_terms: Sequence[str]) -> Iterator[Sentence]:
    """Template sentences with at least one name, from a stream independent of tts-train's, with
    names from more locales; the train or the dev side of the split; none sharing a name word with
    ``avoid_terms``."""
    avoid = name_words(avoid_terms)
    for sentence in sentence_stream(seed, 0.0, name_locales=NAME_LOCALES + EXTRA_NAME_LOCALES, stream="names-"):
        if (sentence.hotwords and is_dev_text(sentence.text, DEV_SENTENCE_SHARE, TTS_SPLIT_SALT) == dev
                and not name_words(sentence.hotwords) & avoid):
            yield sentence


def plan_names_corpus(
    seed: int,
    hours: float,
    avoid_terms: Sequence[str],
    train_voices: Sequence[Voice] = TRAIN_VOICES,
    babble_pool: Sequence[str] = (),
    train_augment: augment.AugmentConfig = augment.TRAIN,
    max_utterances: int | None = None,
) -> tuple[SynthItem, ...]:
    """About ``hours`` of extra train utterances (tts-names), each with a name, company or city.

    A character head learns to spell names it has never heard from many different ones. Give
    ``avoid_terms`` dev-tts's hotwords, so that the dev names stay unheard in this split.
    """
    if hours < 0:
        raise ValueError("hours must not be negative.")
    if hours > 0 and not train_voices:
        raise ValueError("No working TTS voice for the names split; install flite, espeak-ng or festival.")
    sentences = _name_sentences(seed, False, avoid_terms)
    return tuple(_plan_hours("names", seed, sentences, hours, max_utterances, train_voices, train_augment, babble_pool))


def plan_names_dev(seed: int, utterances: int, avoid_terms: Sequence[str],
                   dev_voices: Sequence[Voice] = DEV_VOICES) -> tuple[SynthItem, ...]:
    """A clean held-out set (dev-names) of sentences with names, spoken by the held-out voices.

    Give ``avoid_terms`` every train split's hotwords: then no name in it was heard in training,
    which is what a meeting's list of unusual names is like.
    """
    if utterances < 0:
        raise ValueError("utterances must not be negative.")
    if utterances > 0 and not dev_voices:
        raise ValueError("No working held-out TTS voice for dev-names; install flite, espeak-ng or festival.")
    sentences = _name_sentences(seed, True, avoid_terms)
    return tuple(
        _plan_item(f"names-dev-{index:06d}", next(sentences), random.Random(f"tts/{seed}/names-dev/{index}"),
                   dev_voices, augment.CLEAN, ())
        for index in range(utterances)
    )


def plan_noisy_copies(utterances: Sequence[Utterance], seed: int, prefix: str = "noisy",
                      config: augment.AugmentConfig = augment.STRONG) -> tuple[CopyItem, ...]:
    """Strongly corrupted copies; babble comes from the other utterances of the same list."""
    pool = [str(u.audio) for u in utterances]
    items = []
    for index, utterance in enumerate(utterances):
        rng = random.Random(f"noisy/{seed}/{utterance.id}")
        others = pool[:index] + pool[index + 1 :]
        plan = augment.plan_augmentation(rng, config, others)
        items.append(CopyItem(f"{prefix}-{utterance.id}", str(utterance.audio), utterance.text,
                              utterance.speaker, plan, utterance.hotwords))
    return tuple(items)


# --- rendering -----------------------------------------------------------------------------


def _init_worker() -> None:
    PiperEngine.threads = 1  # one onnxruntime thread per worker process; the processes give the parallelism


def _render_to(job: tuple[Item, str]) -> tuple[str, float]:
    item, path = job
    return item.id, write_flac(path, item.render())


def render_items(items: Sequence[Item], audio_dir: str | Path, jobs: int = 1, desc: str = "tts") -> list[Utterance]:
    """Renders every item whose audio file is missing, then returns utterances in plan order."""
    audio_dir = Path(audio_dir).resolve()  # absolute, so plans that name these files don't depend on the cwd
    paths = {item.id: audio_dir / audio_file_name(item) for item in items}
    durations = {item.id: duration_s(paths[item.id]) for item in items if paths[item.id].is_file()}
    todo = [(item, str(paths[item.id])) for item in items if item.id not in durations]
    with tqdm(total=len(items), initial=len(durations), desc=desc, unit="utt", dynamic_ncols=True) as progress:
        if jobs <= 1 or len(todo) <= 1:
            for job in todo:
                item_id, seconds = _render_to(job)
                durations[item_id] = seconds
                progress.update()
        else:
            # spawn, not fork: a forked onnxruntime session (Piper) can deadlock.
            context = multiprocessing.get_context("spawn")
            with context.Pool(jobs, initializer=_init_worker) as pool:
                for item_id, seconds in pool.imap_unordered(_render_to, todo, chunksize=2):
                    durations[item_id] = seconds
                    progress.update()
    return [
        Utterance(item.id, paths[item.id], item.text, durations[item.id], speaker=item.speaker, hotwords=item.hotwords)
        for item in items
    ]
