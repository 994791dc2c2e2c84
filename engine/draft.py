"""Draft following: the LLM writes the transcript, rewarded for keeping to the lexicon draft's words.

The lexicon search (engine/lexicon.py) gives each chunk a draft: lower-case words, no punctuation,
usually the right words. The LLM gives case, punctuation and numbers as people write them, but on
its own drifts from the audio (a chunk with hotwords is decoded without a draft unless
DecodingOptions.draft_with_hotwords, since the LLM is what writes a listed name). ``FollowDraft`` adds a bonus to every
candidate token whose text keeps the transcript on the draft's words, and to the end token once the
draft is used up. Punctuation and case are free, so "please enter your password" can come out as
"Please enter your password." When the LLM leaves the draft (a hotword, a word the lexicon lacks),
the words written so far are aligned to the draft by edit distance and following resumes from there.
A draft word may come with other readings (LexiconSearch.decode_with_alternatives): each keeps to the
draft, the lexicon's best with a small head start, and the LLM's own probabilities choose.
"""

from __future__ import annotations

import unicodedata
from difflib import SequenceMatcher
from functools import lru_cache

import torch
from transformers import LogitsProcessor

from engine.biasing import HotwordBoost
from engine.lexicon import words_of

CLAUSE_MARKS = ".,?!;:'’\"”)…"  # noqa: RUF001 (what may follow a word straight away; other marks there join words)
Slot = str | tuple[str, ...] | None  # a draft word, or its alternatives (the lexicon's best first), or None: open


def _choices(slot: str | tuple[str, ...]) -> tuple[str, ...]:
    return (slot,) if isinstance(slot, str) else slot


@lru_cache(maxsize=8192)
def aligned_position(written: tuple[str, ...], draft: tuple[Slot, ...]) -> int:
    """How many draft words the written words cover: the end j of the draft prefix closest to them (the
    later j on a tie), by an edit distance over words in which a written word may stand for one draft word
    or for two ("wolfgang" for "will gang"), at a cost that falls with how alike their letters are. An open
    draft word (None) is whatever the LLM wrote there; a word with alternatives is the closest of them.

    Memoised: while a word is being written, every step asks again about the same finished words.
    """
    inf = float("inf")
    previous = [float(j) for j in range(len(draft) + 1)]  # the empty text against each draft prefix
    for word in written:
        row = [previous[0] + 1.0] + [inf] * len(draft)
        for j in range(1, len(draft) + 1):
            row[j] = min(previous[j] + 1.0, row[j - 1] + 1.0, previous[j - 1] + _unlike(word, draft[j - 1]))
            pair = draft[j - 2 : j]
            if j >= 2 and (None not in pair or pair == (None, None)):
                merged = 0.0 if pair == (None, None) else _unlike(word, _choices(pair[0])[0] + _choices(pair[1])[0])
                row[j] = min(row[j], previous[j - 2] + merged)
        previous = row
    best = min(previous)
    return max(j for j, distance in enumerate(previous) if distance <= best + 1e-9)


@lru_cache(maxsize=65536)
def _unlike(word: str, target: Slot) -> float:
    """0 for the same word (or an open one), up to 1 for words with nothing in common (1 − difflib's similarity
    ratio); against alternatives, the least of them."""
    if target is None:
        return 0.0
    return min(0.0 if word == choice else 1.0 - SequenceMatcher(None, word, choice).ratio() for choice in _choices(target))


def _is_punctuation(piece: str) -> bool:
    """Whether a token is only spaces and punctuation (not control characters, symbols or stray bytes)."""
    return bool(piece) and all(ch.isspace() or unicodedata.category(ch).startswith("P") for ch in piece)


class FollowDraft(LogitsProcessor):
    """Adds ``bonus`` (nats) to the tokens among the LLM's ``top_k`` that continue the row's draft.

    A draft word None is an open slot (a listed term was heard there): the LLM writes it unaided. A draft
    word may be a tuple of alternatives (LexiconSearch.decode_with_alternatives): each of them keeps to the
    draft, and the LLM's own probabilities choose, though a token that keeps only to a word's later readings
    gets ``alternative_penalty`` nats less bonus (the first is the lexicon search's best). A hyphen straight
    after a word (or "%", "/", "+": any mark but those that end a clause), or after such a mark, gets
    ``join_penalty`` nats less: it keeps to the draft's words as a space does, and without a cost the LLM
    strings whole sentences together with hyphens.

    Tokens spelling the draft's next word are added to the candidates even when the LLM ranks them
    lower, so a draft word can win that the LLM alone would never pick. ``num_beams`` rows share a
    draft. Put it after the hotword boost: it reads which tokens go on with a listed term.
    """

    def __init__(
        self, drafts: list[list[Slot]], tokenizer, alphabet: str, eos_id: int, bonus: float = 30.0, top_k: int = 8, num_beams: int = 1,
        hotwords: HotwordBoost | None = None, alternative_penalty: float = 1.0, join_penalty: float = 0.0,
    ):
        if bonus < 0:
            raise ValueError(f"the draft bonus must be ≥ 0, got {bonus}")
        self.drafts = [tuple(None if slot is None else _choices(slot) for slot in draft) for draft in drafts]
        # Each draft with every word's first reading alone, or None for a draft without alternatives.
        firsts = [tuple(slot and slot[:1] for slot in draft) for draft in self.drafts]
        self._firsts = [first if first != draft else None for first, draft in zip(firsts, self.drafts, strict=True)]
        self.tokenizer, self.alphabet, self.alternative_penalty = tokenizer, alphabet, alternative_penalty
        self.join_penalty = join_penalty
        self.eos_id, self.bonus, self.top_k, self.num_beams = eos_id, bonus, top_k, num_beams
        self._pieces: dict[int, str] = {}
        # Once the LLM has begun a listed term, the tokens that go on with it get the draft's bonus too, so a
        # term is never left half written. Starting one is the draft's business (the lexicon search favours
        # the chunk's terms): given the bonus as well, term starts won wherever the LLM leaned to them, and
        # U-WER on dev-names 0-99 went from 4.5% to 10.5% (bench/biasing.py, true + 100).
        self.hotwords = hotwords
        self._starts: dict[tuple[str, str], set[int]] = {}  # _word_next_tokens' answers: the same words come up every step

    def _is_break(self, char: str) -> bool:
        """Whether a character ends a word: anything the CTC alphabet cannot spell (as words_of reads it)."""
        return not words_of(char, self.alphabet)

    def _piece(self, token: int) -> str:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.tokenizer.decode([token])
        return piece

    def _written(self, generated: list[int]) -> tuple[str, list[str], str]:
        """The text of ``generated``, its finished words, and the word still being written ("" after a break)."""
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        words = words_of(text, self.alphabet)
        # A token never ends with the space that closes its word, so the last word may go on.
        partial = words[-1] if words and not self._is_break(text[-1]) else ""
        return text, words[:-1] if partial else words, partial

    def _next_tokens(self, slot: tuple[str, ...], partial: str) -> set[int]:
        """Token ids that begin the rest of a word of ``slot`` after ``partial``."""
        return set().union(*(self._word_next_tokens(word, partial) for word in slot if word.startswith(partial)))

    def _word_next_tokens(self, word: str, partial: str) -> set[int]:
        """Token ids that begin the rest of ``word`` after ``partial``, in the usual spellings (as written, capitalised)."""
        known = self._starts.get((word, partial))
        if known is not None:
            return known
        rest = word[len(partial) :]
        spellings = ([rest] if partial else [" " + word, " " + word.capitalize(), word.capitalize(), word]) if rest else []
        ids = set()
        for text in spellings:
            encoded = self.tokenizer.encode(text, add_special_tokens=False)
            if encoded:
                ids.add(encoded[0])
        self._starts[(word, partial)] = ids
        return ids

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """``input_ids`` are the generated tokens only (generate() on inputs_embeds)."""
        if not self.bonus:
            return scores
        scores = scores.clone()
        top = scores.topk(min(self.top_k, scores.shape[-1]), dim=-1).indices.tolist()
        for row, generated in enumerate(input_ids.tolist()):
            if self.eos_id in generated:
                continue
            draft, first_readings = self.drafts[row // self.num_beams], self._firsts[row // self.num_beams]
            text, complete, partial = self._written(generated)
            in_word = bool(partial)
            start = aligned_position(tuple(complete), draft)
            remaining = list(draft[start:])
            breaks_only = False
            if remaining and remaining[0] is None:  # an open slot: a listed term was heard here, the LLM writes it
                continue
            if partial and not (remaining and any(word.startswith(partial) for word in remaining[0])):
                # The word being written is off the draft (a substitution): only a word break may follow it,
                # and the draft resumes after the word it stands for.
                start = aligned_position((*complete, partial), draft)
                remaining = list(draft[start:])
                partial, breaks_only = "", True
                if remaining and remaining[0] is None:
                    continue
            candidates = set(top[row])
            if remaining:
                candidates |= self._next_tokens(remaining[0], partial)
                if partial in remaining[0] and len(remaining) > 1 and remaining[1] is not None:  # the word may be done
                    candidates |= self._next_tokens(remaining[1], "")
            if _done(remaining, partial):
                candidates.add(self.eos_id)
            after_punctuation = bool(text) and _is_punctuation(text[-1])
            boost = self.hotwords.last_boost[row] if self.hotwords is not None and self.hotwords.last_boost is not None else None
            if boost is not None and in_word and bool((boost < 0).any()):  # inside a term's word (HotwordBoost takes back what leaving it earned)
                going_on = (boost > 0).nonzero().flatten().tolist()
                scores[row, going_on] += self.bonus
                candidates -= set(going_on)
            firsts = list(first_readings[start:]) if first_readings is not None else remaining
            joinable = in_word or _joins(text[-1:])  # straight after a word, or after a mark that joins
            for token in candidates:
                if joinable and token != self.eos_id and _joins(self._piece(token)[:1]):
                    scores[row, token] -= self.join_penalty
                if breaks_only and token != self.eos_id and not self._is_break(self._piece(token)[:1] or "a"):
                    continue
                if self._continues(token, partial, remaining, after_punctuation):
                    scores[row, token] += self.bonus
                    if firsts != remaining and not self._continues(token, partial, firsts, after_punctuation):
                        scores[row, token] -= self.alternative_penalty
        return scores

    def proposal(self, row: int, generated: list[int], limit: int) -> list[int]:
        """A guess at the row's next ``limit`` tokens: the rest of its draft as written mid-sentence (first readings,
        lower case, one space apart), then a full stop and the end token. Speculative verification
        (engine.speculative.batch_greedy_with_proposals) checks it against the LLM; it constrains nothing.
        Empty where the LLM is off the draft or at an open slot: there the LLM writes on its own."""
        if limit <= 0 or self.eos_id in generated:
            return []
        draft = self.drafts[row // self.num_beams]
        text, complete, partial = self._written(generated)
        remaining = list(draft[aligned_position(tuple(complete), draft) :])
        guess = ""
        if partial:
            if not remaining or remaining[0] is None or not remaining[0][0].startswith(partial):
                return []
            guess, remaining = remaining[0][0][len(partial) :], remaining[1:]
        sentence_ends = text.rstrip().endswith((".", "?", "!"))
        for count, slot in enumerate(remaining):
            if slot is None or count == limit:  # every word is at least one token
                break
            guess += " " + (slot[0].capitalize() if sentence_ends and not guess else slot[0])
        else:  # the draft ends within the guess
            ids = self.tokenizer.encode(guess + ".", add_special_tokens=False) if guess or not _is_punctuation(text[-1:]) else []
            return [*ids, self.eos_id][:limit]
        return self.tokenizer.encode(guess, add_special_tokens=False)[:limit] if guess else []

    def _continues(self, token: int, partial: str, remaining: list[tuple[str, ...] | None], after_punctuation: bool = False) -> bool:
        """Whether writing ``token`` after the partial word ``partial`` stays on the ``remaining`` draft words.

        Punctuation keeps to the draft where a word ends, once between two words (so a run of it cannot
        stand in for the draft's next word)."""
        if token == self.eos_id:
            return _done(remaining, partial)
        piece = self._piece(token)
        spelled = words_of(partial + piece, self.alphabet)  # the partial word and this token, with the breaks it brings
        if not spelled:
            if not _is_punctuation(piece) or after_punctuation:
                return False
            return not partial or (bool(remaining) and remaining[0] is not None and partial in remaining[0])
        closes = self._is_break(piece[-1])
        finished = spelled if closes else spelled[:-1]
        if len(finished) > len(remaining) or any(slot is None or word not in slot for word, slot in zip(finished, remaining)):
            return False
        if closes:
            return True
        index = len(finished)
        return index < len(remaining) and remaining[index] is not None and any(word.startswith(spelled[-1]) for word in remaining[index])


def _joins(char: str) -> bool:
    """Whether a mark written straight after a word would join it to the next one ("-", "%", "/", "+"): any
    punctuation or symbol but those that end a clause. "\ufffd" is part of a character a byte-level token splits."""
    return bool(char) and unicodedata.category(char)[0] in "PS" and char not in CLAUSE_MARKS and char != "\ufffd"


def _done(remaining: list[tuple[str, ...] | None], partial: str) -> bool:
    """Whether the draft is used up once the word being written (``partial``) ends."""
    return not remaining or (len(remaining) == 1 and remaining[0] is not None and partial in remaining[0])
