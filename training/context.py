"""Prompt contexts for context SFT: hotword lists, meeting descriptions and history, drawn per utterance.

Seed-ASR's context SFT and SLAM-LLM's contextual ASR train on ⟨context, speech, text⟩
triples. Each training utterance gets, independently:

- a hotword list (with ``p_true``: 1–k of the reference's own rare words, names or
  n-grams, plus distractors; with ``p_none``: distractors only, so the model learns to
  ignore a list that does not apply; otherwise none). Distractors are the rare terms of
  the other utterances in the batch and of a fixed pool (every training transcript's
  rare terms + Faker names and companies), never a term the reference contains;
- a meeting description (``p_meeting``) from a few templates, naming true terms or
  only distractors (or the manifest's own ``context``);
- history (``p_history``): the text of the previous utterances of the same speaker in
  manifest order, as the engine gives the transcript so far in long-form decoding.

Every draw is a function of (seed, step, utterance id) and the batch, so a resumed run
sees the same contexts. "Rare" follows the LibriSpeech biasing lists (Le et al. 2021):
outside the ~5k most frequent English words, here by wordfreq's Zipf frequency
(the 5000th word has Zipf ≈ 4.2), or capitalised where a sentence does not begin (names).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from engine.prompt import PromptContext
from training.data.manifest import Utterance

# A word: a letter, then letters, digits, apostrophes or hyphens, ending in a letter or digit.
_WORD = re.compile(r"[^\W\d_](?:[\w'’-]*\w)?")
_SENTENCE_END = re.compile(r"[.!?:;][\"'”’)\]]*\s*$")
FUNCTION_WORD_ZIPF = 6.0  # above: "the", "so", "our"; below: "john" 5.4, "london" 5.3 (a sentence-opening "New" York is lost)
# Capitalised but no name: pronouns, titles, days and months.
NOT_NAMES = frozenset(
    "i i'm i'd i'll i've dr mr mrs ms prof professor sir madam st "
    "monday tuesday wednesday thursday friday saturday sunday "
    "january february march april may june july august september october november december".split()
)
# Spelled-out numbers ("nineteen", "fifty-fifth") are rare words by frequency but make poor hotwords.
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million "
    "billion first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth thirtieth fortieth fiftieth "
    "sixtieth seventieth eightieth ninetieth hundredth thousandth millionth".split()
)
MEETING_TEMPLATES = (
    "Interview with {a} of {b} about {topic}.",
    "Weekly meeting on {topic}. Present: {terms}.",
    "Podcast episode about {topic}, with {terms}.",
    "Phone call between {a} and {b}.",
    "Notes for a talk on {topic}. Key terms: {terms}.",
    "Board meeting at {b}; on the agenda: {topic} and {a}.",
    "Lecture by {a} on {topic}.",
    "Recorded panel with {terms}.",
    "A conversation about {topic}.",
)
TOPICS = (
    "the quarterly budget", "the product roadmap", "hiring plans", "the new office", "research results",
    "climate policy", "supply chain delays", "customer feedback", "the merger", "the next software release",
    "public health", "local elections", "the research grant", "a data breach", "the annual report",
)  # fmt: skip


@dataclass(frozen=True)
class ContextConfig:
    """How often each kind of context appears in context SFT (each draw is per utterance)."""

    p_true: float = 0.5  # a hotword list holding true terms of the reference
    p_none: float = 0.2  # a hotword list of distractors only; otherwise (1 - p_true - p_none) no list
    max_true: int = 3  # true terms per list: 1..max_true
    p_ngram: float = 0.3  # a true rare word grows into a 2- or 3-gram of the reference
    # Distractors per list: 0..max (1..max for a distractor-only list). The engine puts at most
    # TranscribeOptions.prompt_hotwords (20) terms in a prompt, so longer training lists would not match it.
    max_distractors: int = 20
    p_meeting: float = 0.3
    p_meeting_true: float = 0.5  # a meeting description names true terms (else only distractors)
    p_history: float = 0.3
    max_history_utterances: int = 3  # history is the previous 1..N utterances of the speaker
    rare_zipf: float = 4.2  # a word rarer than this (wordfreq Zipf) is a candidate hotword
    fake_names: int = 2000  # Faker names and companies in the distractor pool (0: none)

    def __post_init__(self) -> None:
        for name in ("p_true", "p_none", "p_ngram", "p_meeting", "p_meeting_true", "p_history"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"context.{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if self.p_true + self.p_none > 1.0:
            raise ValueError(f"context.p_true + context.p_none must be ≤ 1, got {self.p_true} + {self.p_none}")
        for name in ("max_true", "max_history_utterances"):
            if getattr(self, name) < 1:
                raise ValueError(f"context.{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("max_distractors", "fake_names"):
            if getattr(self, name) < 0:
                raise ValueError(f"context.{name} must be ≥ 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class ContextDraw:
    """One utterance's context and how it was made (for tests and inspection)."""

    context: PromptContext
    kind: Literal["true", "none", "empty"]  # the hotword list: with true terms, distractors only, or none
    true_terms: tuple[str, ...]  # the hotwords and meeting terms taken from the reference


# ------------------------------------------------------------------------- terms of a text
@lru_cache(maxsize=200_000)
def _zipf(word: str) -> float:
    try:
        from wordfreq import zipf_frequency
    except ImportError as err:
        raise ImportError("context SFT finds rare words with wordfreq: install it (pip install -e '.[train]')") from err
    return zipf_frequency(word.lower(), "en")


@lru_cache(maxsize=65_536)
def _pattern(term: str) -> re.Pattern:
    words = r"\s+".join(re.escape(w) for w in term.split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


def occurs_in(term: str, text: str) -> bool:
    """Whether ``term`` is in ``text`` as whole words, ignoring case ("Rhône" is in "the rhône's banks")."""
    return bool(term.split()) and _pattern(term).search(text) is not None


def _strip_possessive(word: str) -> str:
    return re.sub(r"['’]s$", "", word, flags=re.IGNORECASE)


@dataclass(frozen=True)
class Terms:
    """A transcript's candidate hotwords."""

    names: tuple[str, ...]  # runs of capitalised words, and the manifest's hotwords found in the text
    rare: tuple[tuple[int, int], ...]  # (start, end) characters of rare single words outside the names


def find_terms(text: str, given: Sequence[str] = (), rare_zipf: float = 4.2) -> Terms:
    """The names and rare words of a transcript; ``given`` are hotwords the manifest lists for it.

    A text in one case (LibriSpeech is all capitals) has no capitalisation to go by: only
    rarity counts there.
    """
    words = list(_WORD.finditer(text))
    names = [h for h in given if occurs_in(h, text)]
    in_name: set[int] = set()
    if text != text.upper() and text != text.lower():
        runs: list[list[int]] = []  # capitalised words joined by single spaces
        for i, word in enumerate(words):
            if not word.group()[0].isupper():
                continue
            if runs and runs[-1][-1] == i - 1 and text[words[i - 1].end() : word.start()] == " ":
                runs[-1].append(i)
            else:
                runs.append([i])
        for run in runs:
            names += _names_in_run(text, words, run, rare_zipf, in_name)
    rare = tuple(
        (w.start(), w.end())
        for i, w in enumerate(words)
        if i not in in_name
        and len(w.group()) >= 3
        and not _is_number(w.group())
        and _zipf(_strip_possessive(w.group())) < rare_zipf
    )
    names = _dedupe(names)
    # "Theo" and "Mota" are no names of their own where the manifest lists "Theo da Mota".
    whole = [n for n in names if not any(other != n and occurs_in(n, other) for other in names)]
    return Terms(tuple(whole), rare)


def _is_number(word: str) -> bool:
    return all(part in NUMBER_WORDS for part in word.lower().split("-"))


def _names_in_run(text: str, words: list[re.Match], run: list[int], rare_zipf: float, in_name: set[int]) -> list[str]:
    """The names in a run of capitalised words, split at titles, days and the like.

    A word capitalised only because a sentence starts there is no name: a lone one counts
    if it is rare; one before other capitalised words counts unless it is a function word
    ("The BBC" gives "BBC", "John Smith" stays whole).
    """
    names = []
    parts: list[list[int]] = [[]]
    for i in run:
        if _strip_possessive(words[i].group()).lower() in NOT_NAMES:
            parts.append([])
        else:
            parts[-1].append(i)
    for part in parts:
        if part and _sentence_initial(text, words, part[0]):
            first = words[part[0]].group()
            if _zipf(first) >= (rare_zipf if len(part) == 1 else FUNCTION_WORD_ZIPF):
                part = part[1:]
        if part:
            names.append(_strip_possessive(text[words[part[0]].start() : words[part[-1]].end()]))
            in_name.update(part)
    return names


def _sentence_initial(text: str, words: list[re.Match], index: int) -> bool:
    return index == 0 or _SENTENCE_END.search(text[: words[index].start()]) is not None


# ------------------------------------------------------------------------- the sampler
class ContextSampler:
    """Draws prompt contexts for training utterances; call it as ``sampler(step, utterances)``.

    ``manifests`` are the training manifests' utterances, each list in manifest order: they
    give the distractor pool and each utterance's history.
    """

    def __init__(self, config: ContextConfig, manifests: Sequence[Sequence[Utterance]], seed: int = 0):
        self.config = config
        self.seed = seed
        self._terms: dict[str, Terms] = {}
        self._history: dict[str, tuple[str, ...]] = {}  # utterance id -> earlier texts of its speaker, latest last
        pool: set[str] = set()
        for utterances in manifests:
            earlier_by_speaker: dict[str | None, list[str]] = {}
            for u in utterances:
                pool.update(self.true_candidates(u))
                earlier = earlier_by_speaker.setdefault(u.speaker, [])
                self._history[u.id] = tuple(earlier[-config.max_history_utterances :])
                earlier.append(u.text)
        if config.fake_names:
            pool.update(fake_names(config.fake_names, seed))
        # Sorted: the pool (and so every draw) is the same whatever the order of set iteration.
        self.pool = tuple(sorted(pool, key=lambda t: (t.casefold(), t)))

    def __call__(self, step: int, utterances: list[Utterance]) -> list[PromptContext]:
        return [draw.context for draw in self.sample(step, utterances)]

    def sample(self, step: int, utterances: list[Utterance]) -> list[ContextDraw]:
        """One draw per utterance, from (seed, step, utterance id); the batch supplies distractors."""
        return [self._draw(step, u, utterances) for u in utterances]

    def terms(self, utterance: Utterance) -> Terms:
        if utterance.id not in self._terms:
            self._terms[utterance.id] = find_terms(utterance.text, utterance.hotwords, self.config.rare_zipf)
        return self._terms[utterance.id]

    def true_candidates(self, utterance: Utterance) -> tuple[str, ...]:
        """Terms of the reference a list may name: its names and rare words (before n-gram growth)."""
        terms = self.terms(utterance)
        return tuple(_dedupe([*terms.names, *(_strip_possessive(utterance.text[a:b]) for a, b in terms.rare)]))

    def _draw(self, step: int, u: Utterance, batch: list[Utterance]) -> ContextDraw:
        c = self.config
        rng = random.Random(f"context/{self.seed}/{step}/{u.id}")
        roll = rng.random()
        kind = "true" if roll < c.p_true else "none" if roll < c.p_true + c.p_none else "empty"
        true_terms = self._true_terms(rng, u) if kind == "true" else []
        if kind == "true" and not true_terms:
            kind = "none"  # nothing rare in this reference: the list can only hold distractors
        hotwords: list[str] = []
        if kind != "empty":
            fewest = 0 if kind == "true" else 1
            count = rng.randint(fewest, c.max_distractors) if c.max_distractors >= fewest else 0
            hotwords = true_terms + self._distractors(rng, u, batch, count, avoid=true_terms)
            rng.shuffle(hotwords)
        meeting, meeting_true = "", []
        if rng.random() < c.p_meeting:
            meeting, meeting_true = self._meeting(rng, u, batch)
        history = ""
        earlier = self._history.get(u.id, ())
        if earlier and rng.random() < c.p_history:
            history = " ".join(earlier[-rng.randint(1, len(earlier)) :])
        context = PromptContext(meeting=meeting, hotwords=tuple(hotwords), history=history)
        return ContextDraw(context, kind, tuple(_dedupe(true_terms + meeting_true)))

    def _true_terms(self, rng: random.Random, u: Utterance) -> list[str]:
        """1..max_true of the reference's names and rare words (a rare word maybe grown into an n-gram)."""
        terms = self.terms(u)
        choices = [("name", name) for name in terms.names] + [("rare", span) for span in terms.rare]
        count = rng.randint(1, self.config.max_true)
        chosen = [
            item if what == "name" else self._grow(rng, u.text, item)
            for what, item in rng.sample(choices, min(count, len(choices)))
        ]
        return [t for t in _dedupe(chosen) if occurs_in(t, u.text)]

    def _grow(self, rng: random.Random, text: str, span: tuple[int, int]) -> str:
        """The rare word at ``span``, or with probability p_ngram a 2- or 3-gram of the reference
        around it (only across single spaces: an n-gram does not cross punctuation)."""
        start, end = span
        if rng.random() < self.config.p_ngram:
            words = [(w.start(), w.end()) for w in _WORD.finditer(text)]
            i = words.index(span)
            size = rng.randint(2, 3)
            lo = rng.randint(max(0, i - size + 1), i)
            hi = min(len(words), lo + size) - 1
            if hi > lo and all(text[words[k][1] : words[k + 1][0]] == " " for k in range(lo, hi)):
                start, end = words[lo][0], words[hi][1]
        return _strip_possessive(text[start:end])

    def _distractors(self, rng: random.Random, u: Utterance, batch: list[Utterance], count: int, avoid: list[str]) -> list[str]:
        """Up to ``count`` terms the reference does not contain: up to half from the rest of the
        batch (terms that sound like this data), the rest from the pool."""
        if count <= 0:
            return []
        others = sorted((other for other in batch if other.id != u.id), key=lambda other: other.id)  # order-free
        from_batch = [t for other in others for t in self.true_candidates(other)]
        rng.shuffle(from_batch)
        from_pool = rng.sample(self.pool, min(len(self.pool), 2 * count + 8))  # spares for the ones filtered out
        seen = {t.casefold() for t in avoid}
        chosen: list[str] = []
        for term in from_batch[: count // 2] + from_pool:
            if len(chosen) == count:
                break
            if term.casefold() not in seen and not occurs_in(term, u.text):
                seen.add(term.casefold())
                chosen.append(term)
        return chosen

    def _meeting(self, rng: random.Random, u: Utterance, batch: list[Utterance]) -> tuple[str, list[str]]:
        """A meeting description (and the true terms it names): the manifest's own, or a template
        filled with true terms and distractors, or with distractors only."""
        if u.context:
            return u.context, []
        true_terms = self._true_terms(rng, u)[:2] if rng.random() < self.config.p_meeting_true else []
        terms = true_terms + self._distractors(rng, u, batch, rng.randint(2, 4), avoid=true_terms)
        rng.shuffle(terms)
        fitting = [t for t in MEETING_TEMPLATES if _terms_needed(t) <= len(terms)]
        text = rng.choice(fitting).format(a=terms[0] if terms else "", b=terms[1] if len(terms) > 1 else "",
                                          terms=", ".join(terms), topic=rng.choice(TOPICS))  # fmt: skip
        return text, [t for t in true_terms if occurs_in(t, text)]


def _terms_needed(template: str) -> int:
    return 2 if "{b}" in template else 1 if "{a}" in template or "{terms}" in template else 0


def _dedupe(terms: list[str]) -> list[str]:
    """Terms without repeats, ignoring case; the first spelling wins."""
    seen: set[str] = set()
    out = []
    for term in terms:
        if term.casefold() not in seen:
            seen.add(term.casefold())
            out.append(term)
    return out


@lru_cache(maxsize=4)
def fake_names(count: int, seed: int) -> tuple[str, ...]:
    """``count`` plain-ASCII people and company names from Faker, the same for the same seed
    (none if Faker is not installed). Cached: building the Faker locales takes seconds."""
    import importlib.util

    if importlib.util.find_spec("faker") is None:
        return ()
    from training.data.text_sources import _Slots

    slots = _Slots(random.Random(f"distractor-names/{seed}"))
    return tuple(slots.company() if i % 4 == 3 else slots.person() for i in range(count))
