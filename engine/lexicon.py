"""Lexicon beam search over the character CTC head, with a word bigram language model.

The character head spells real speech well letter by letter but not word by word: on the first 40
``asterisk-dev`` utterances its greedy best path has 11.3% CER but 38.8% WER ("please ent your
password followed by the poun key"). Searching only spellings of known words, scored by a word
language model, turns those letters into words: the same head then gave 11.1% WER there, against
27.8% for the LLM decoding alone (session 15, README "Accuracy"). The result is a *draft*
(engine/draft.py) that the LLM follows while it writes the transcript with case, punctuation and
the user's hotwords. Where the beam's close runners-up read a word differently ("now" or "not"), the
draft carries those readings too, and the LLM, which hears the audio and reads the context, picks one.

The beam search is flashlight-text's ``LexiconDecoder`` (a C++ CTC lexicon decoder; the word LM is
called back in Python). The language model is an interpolated bigram with absolute discounting
(Ney, Essen & Kneser 1994), trained on the transcripts of the training manifests and backed off to
a unigram that mixes those transcripts with English word frequencies from ``wordfreq``. It is a
few hundred kB of JSON shipped with the model (``word_lm.json.gz``), built by
``python -m training word-lm``.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

WORD_LM_FILE = "word_lm.json.gz"
SENTENCE_END = "</s>"
SENTENCE_START = "<s>"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class WordLM:
    """An interpolated bigram: P(w | v) = max(c(v w) − d, 0) / c(v) + d·n(v) / c(v) · P_uni(w).

    ``unigram`` holds P_uni over the vocabulary and ``</s>``; ``bigrams[v]`` the counts c(v w) seen
    in training text (v may be ``<s>``), n(v) the number of distinct w after v.
    """

    unigram: dict[str, float]
    bigrams: dict[str, dict[str, int]]
    discount: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"the bigram discount must be between 0 and 1, got {self.discount}")
        if SENTENCE_END not in self.unigram:
            raise ValueError(f"the unigram table needs the sentence end {SENTENCE_END!r}")
        totals = {v: (sum(c.values()), len(c)) for v, c in self.bigrams.items()}
        object.__setattr__(self, "_totals", totals)

    @property
    def words(self) -> list[str]:
        return [w for w in self.unigram if w != SENTENCE_END]

    def log_prob(self, word: str, previous: str = SENTENCE_START, unknown: float = 1e-8) -> float:
        """ln P(word | previous); a word outside the vocabulary gets the unigram probability ``unknown``."""
        p_uni = self.unigram.get(word, unknown)
        counts = self.bigrams.get(previous)
        if not counts:
            return math.log(p_uni)
        total, distinct = self._totals[previous]
        seen = max(counts.get(word, 0) - self.discount, 0.0) / total
        return math.log(seen + self.discount * distinct / total * p_uni)

    def with_words(self, words: Iterable[str], probability: float) -> WordLM:
        """This LM with ``words`` given at least unigram probability ``probability`` (the user's hotwords)."""
        unigram = dict(self.unigram)
        for word in words:
            unigram[word] = max(unigram.get(word, 0.0), probability)
        return WordLM(unigram=unigram, bigrams=self.bigrams, discount=self.discount)

    def save(self, path: Path) -> None:
        data = {"version": FORMAT_VERSION, "discount": self.discount, "unigram": self.unigram, "bigrams": self.bigrams}
        with gzip.open(path, "wt", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))

    @classmethod
    def load(cls, path: Path) -> WordLM:
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError, EOFError) as err:
            raise ValueError(f"{path} is not a word LM file ({err}): rebuild it with `python -m training word-lm`") from err
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} has word-LM format {data.get('version')!r}, expected {FORMAT_VERSION}: rebuild it")
        return cls(unigram=data["unigram"], bigrams=data["bigrams"], discount=data["discount"])


def build_word_lm(
    sentences: Iterable[str],
    word_frequencies: dict[str, float],
    spellable: str,
    frequency_share: float = 0.5,
    discount: float = 0.7,
) -> WordLM:
    """A WordLM from normalised training sentences (lower case, words split by spaces).

    ``word_frequencies`` (word → frequency in general English, e.g. wordfreq's top words) widens the
    vocabulary beyond the training text; words with a character outside ``spellable`` are dropped, since the
    CTC head could never spell them. The unigram is (1 − s)·(share in the training text) + s·(share in
    general English), ``</s>`` included in the first; each P(· | v) then sums to one.
    """
    if not 0.0 <= frequency_share <= 1.0:
        raise ValueError(f"frequency_share must be between 0 and 1, got {frequency_share}")
    allowed = set(spellable) - {" "}
    unigram_counts: Counter[str] = Counter()
    bigrams: dict[str, Counter[str]] = defaultdict(Counter)
    for sentence in sentences:
        words = [SENTENCE_START, *sentence.split(), SENTENCE_END]
        unigram_counts.update(words[1:])
        for previous, word in zip(words, words[1:], strict=False):
            bigrams[previous][word] += 1
    total = sum(unigram_counts.values())
    if not total:
        raise ValueError("no training sentences: the word LM needs the transcripts of the training manifests")
    general = {w: f for w, f in word_frequencies.items() if w and set(w) <= allowed}
    general_total = sum(general.values()) or 1.0
    vocabulary = {w for w in unigram_counts if w != SENTENCE_END} | set(general)
    unigram = {
        w: (1 - frequency_share) * unigram_counts.get(w, 0) / total + frequency_share * general.get(w, 0.0) / general_total
        for w in sorted(vocabulary)
        if set(w) <= allowed
    }
    unigram[SENTENCE_END] = (1 - frequency_share) * unigram_counts[SENTENCE_END] / total
    norm = sum(unigram.values())  # less than one when training words were dropped as unspellable
    unigram = {w: p / norm for w, p in unigram.items() if p > 0}
    kept = {v: {w: c for w, c in counts.items() if w in unigram} for v, counts in bigrams.items() if v == SENTENCE_START or v in unigram}
    return WordLM(unigram=unigram, bigrams={v: c for v, c in kept.items() if c}, discount=discount)


@dataclass(frozen=True)
class LexiconOptions:
    beam_size: int = 50
    beam_threshold: float = 25.0  # drop hypotheses this far (nats) below the best
    lm_weight: float = 1.0
    word_score: float = 1.0  # added per word: offsets the LM's cost of each extra word
    hotword_probability: float = 1e-3  # the unigram floor of the user's hotword words (a common word's)
    hotword_bonus: float = 5.0  # nats added to the LM score of a word of the chunk's own hotwords (shallow-fusion biasing)
    # A draft word read where one of the chunk's hotwords scores at least this in keyword spotting (engine/kws.py)
    # is left open for the LLM; -1.5 is hotword retrieval's threshold (engine.hotwords.retrieve).
    open_score: float = -1.5
    # Alternatives: a draft word that another hypothesis of the beam, scoring within this many nats of the best,
    # puts in its place (a one-for-one substitution) joins it as an alternative, and the LLM, which hears the
    # audio and reads the context, picks between them (engine/draft.py). 0 = the best hypothesis alone. Engine WER
    # on asterisk-dev 40-48 / dev-tts 40-139 / dev-noisy 40-99 (/root/ks-scratch/s16/gap.py, shipped weights): gap 0
    # 10.0 / 23.7 / 48.3%, gap 2 6.7 / 23.7 / 47.8%, gap 8 5.6 / 23.9 / 47.9%; gap 4 with a penalty of 0 / 1 / 2
    # nats 5.6 / 23.9 / 47.7%, 5.6 / 23.7 / 47.7%, 6.7 / 23.6 / 47.8%.
    alternative_gap: float = 4.0
    alternative_penalty: float = 1.0  # nats less draft bonus for a word's later readings than for the lexicon's best
    alternatives_from: int = 16  # how many of the beam's distinct word sequences are read for alternatives

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"the lexicon beam size must be ≥ 1, got {self.beam_size}")
        if self.lm_weight < 0:
            raise ValueError(f"the lexicon LM weight must be ≥ 0, got {self.lm_weight}")
        if self.hotword_bonus < 0:
            raise ValueError(f"hotword_bonus must be ≥ 0, got {self.hotword_bonus}")
        if not 0.0 < self.hotword_probability < 1.0:
            raise ValueError(f"hotword_probability must be between 0 and 1, got {self.hotword_probability}")
        if self.alternative_gap < 0 or self.alternative_penalty < 0 or self.alternatives_from < 1:
            raise ValueError(
                "alternative_gap and alternative_penalty must be ≥ 0 and alternatives_from ≥ 1, got "
                f"{self.alternative_gap}, {self.alternative_penalty}, {self.alternatives_from}"
            )


def words_of(text: str, alphabet: str) -> list[str]:
    """``text`` as the words the character head can spell: lower case, anything else a word break."""
    allowed = set(alphabet) - {" "}
    text = text.lower().replace("\u2019", "'")  # a typographic apostrophe ("don’t") is the same letter
    return "".join(ch if ch in allowed else " " for ch in text).split()


class LexiconSearch:
    """Words from character-CTC log-probabilities: flashlight's lexicon beam search under a WordLM.

    ``alphabet`` is the head's alphabet (column 0 of the log-probabilities is blank, column 1+i is
    ``alphabet[i]``, and ``alphabet`` holds the space that ends a word). Building the lexicon trie takes
    a moment for a 40k-word LM, so one search serves every chunk of a job with the same hotwords.
    """

    def __init__(self, lm: WordLM, alphabet: str, options: LexiconOptions | None = None, hotwords: Sequence[str] = ()):
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
            SmearingMode,
            Trie,
        )

        if " " not in alphabet:
            raise ValueError("the lexicon search needs a CTC alphabet with a space (the word break)")
        self.options = options or LexiconOptions()
        self.alphabet = alphabet
        extra = sorted({w for term in hotwords for w in words_of(term, alphabet)})
        self.lm = lm.with_words(extra, self.options.hotword_probability) if extra else lm
        self.vocabulary = [w for w in self.lm.words if w and set(w) <= set(alphabet) - {" "}]
        self._callback = _flashlight_lm(self.lm, self.vocabulary)
        blank, space = 0, 1 + alphabet.index(" ")
        column = {ch: 1 + i for i, ch in enumerate(alphabet)}
        trie = Trie(1 + len(alphabet), space)
        start = self._callback.start(False)
        for index, word in enumerate(self.vocabulary):
            _, score = self._callback.score(start, index)
            trie.insert([column[ch] for ch in word] + [space], index, score)
        trie.smear(SmearingMode.MAX)
        self._trie = trie  # the decoder keeps a reference to it; so must we
        decoder_options = LexiconDecoderOptions(
            beam_size=self.options.beam_size,
            beam_size_token=1 + len(alphabet),
            beam_threshold=self.options.beam_threshold,
            lm_weight=self.options.lm_weight,
            word_score=self.options.word_score,
            unk_score=-math.inf,
            sil_score=0.0,
            log_add=False,
            criterion_type=CriterionType.CTC,
        )
        self._decoder = LexiconDecoder(decoder_options, trie, self._callback, space, blank, -1, [], False)
        # The N-best for alternatives: the same search with every word history its own LM state, so hypotheses
        # that differ early but end alike are not merged into one.
        self._history_callback = _flashlight_lm(self.lm, self.vocabulary, history=True)
        self._history_decoder = LexiconDecoder(decoder_options, trie, self._history_callback, space, blank, -1, [], False)

    def decode(self, log_probs: np.ndarray, hotwords: Sequence[str] = ()) -> list[str]:
        """The best word sequence for one chunk's (T, 1 + len(alphabet)) log-probabilities; the words of
        ``hotwords`` (the terms retrieved for this chunk, a subset of the search's list) gain ``hotword_bonus``."""
        return [word for word, _, _ in self.decode_with_spans(log_probs, hotwords)]

    def decode_with_spans(self, log_probs: np.ndarray, hotwords: Sequence[str] = ()) -> list[tuple[str, int, int]]:
        """``decode``'s words, each with the frames [first, last] its letters were read from."""
        return self._best_spans(self._emissions(log_probs), hotwords)

    def _best_spans(self, emissions: np.ndarray, hotwords: Sequence[str]) -> list[tuple[str, int, int]]:
        results = self._search(self._decoder, self._callback, emissions, hotwords)
        return self._spans(results[0]) if results else []

    def decode_with_alternatives(
        self, log_probs: np.ndarray, hotwords: Sequence[str] = ()
    ) -> list[tuple[tuple[str, ...], int, int]]:
        """``decode_with_spans``' words, each as a tuple: the word, then the words that other hypotheses of the
        beam within ``alternative_gap`` nats of the best put in its place one for one ("now" for "not").

        The alternatives come from a second search that keeps every word history apart; its own best words
        are worse than the merging search's (engine WER on dev-tts 40-139 24.9% against 23.7%, dev-noisy
        40-99 49.9% against 47.7%, /root/ks-scratch/s16/gap.py), so the words are the merging search's."""
        emissions = self._emissions(log_probs)
        best = self._best_spans(emissions, hotwords)
        words = [word for word, _, _ in best]
        choices = [dict.fromkeys([word]) for word in words]
        if words and self.options.alternative_gap > 0:
            results = sorted(self._search(self._history_decoder, self._history_callback, emissions, hotwords), key=lambda r: -r.score)
            seen: set[tuple[str, ...]] = set()
            for result in results:
                if result.score < results[0].score - self.options.alternative_gap or len(seen) >= self.options.alternatives_from:
                    break
                other = tuple(self.vocabulary[w] for w in result.words if w >= 0)
                if other in seen:
                    continue
                seen.add(other)
                for tag, i1, i2, j1, j2 in SequenceMatcher(None, words, other, autojunk=False).get_opcodes():
                    if tag == "replace" and i2 - i1 == j2 - j1:
                        for k in range(i2 - i1):
                            choices[i1 + k][other[j1 + k]] = None
        return [(tuple(choice), first, last) for choice, (_, first, last) in zip(choices, best, strict=True)]

    def _spans(self, result) -> list[tuple[str, int, int]]:
        """A decoder result's words with their frames. The path has one entry per frame plus one before and one
        after; a word is emitted at the word break that ends it, and its letters are the labels since the
        previous word."""
        space = 1 + self.alphabet.index(" ")
        words, first = [], None
        for index, (token, word) in enumerate(zip(result.tokens, result.words, strict=True)):
            if token not in (0, space) and first is None:
                first = index
            if word >= 0:
                frame = max(0, (first if first is not None else index) - 1)
                words.append((self.vocabulary[word], frame, max(frame, index - 1)))
                first = None
        return words

    def _emissions(self, log_probs: np.ndarray) -> np.ndarray:
        """One chunk's log-probabilities checked and laid out as the decoder reads them: (T, V) float32, C order."""
        if log_probs.ndim != 2 or log_probs.shape[1] != 1 + len(self.alphabet):
            raise ValueError(f"expected log-probabilities (T, {1 + len(self.alphabet)}), got {log_probs.shape}")
        return np.ascontiguousarray(log_probs, dtype=np.float32)

    def _search(self, decoder, callback, emissions: np.ndarray, hotwords: Sequence[str]) -> list:
        if emissions.shape[0] == 0:
            return []
        callback.boosted = {w for term in hotwords for w in words_of(term, self.alphabet)}
        callback.bonus = self.options.hotword_bonus
        return decoder.decode(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])


def _flashlight_lm(lm: WordLM, vocabulary: list[str], history: bool = False):
    """The WordLM as flashlight's Python LM callback (flashlight is imported here, when a search is built).

    A bigram's state is its last word, so every state is a child of the start state: the decoder's
    hypotheses that end in the same word then share a state and merge, and the states stay bounded. With
    ``history`` a state is a child of the state before it instead: one per word sequence, nothing merges
    (for an N-best; the beam bounds the states).
    """
    from flashlight.lib.text.decoder import LM, LMState

    class BigramCallback(LM):
        def __init__(self):
            super().__init__()
            self._start = LMState()
            self._word_of = {self._start: SENTENCE_START}
            self.boosted: set[str] = set()  # this chunk's hotword words, and their bonus (nats)
            self.bonus = 0.0
            self._scores: dict[tuple[str, int], float] = {}  # the chunk's bigram scores: the beam asks again and again

        def start(self, start_with_nothing: bool):
            self._start = LMState()
            self._word_of = {self._start: SENTENCE_START}
            self._scores = {}
            return self._start

        def score(self, state, index: int):
            word, previous = vocabulary[index], self._word_of[state]
            out = (state if history else self._start).child(index)
            self._word_of[out] = word
            score = self._scores.get((previous, index))
            if score is None:
                score = self._scores[(previous, index)] = lm.log_prob(word, previous) + (self.bonus if word in self.boosted else 0.0)
            return out, score

        def finish(self, state):
            out = (state if history else self._start).child(-1)
            self._word_of[out] = SENTENCE_END
            return out, lm.log_prob(SENTENCE_END, self._word_of[state])

    return BigramCallback()
