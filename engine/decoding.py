"""Decoding options and their translation into transformers ``generate`` arguments."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

from engine.lexicon import LexiconOptions

# Whisper's heuristic (openai/whisper transcribe.py, compression_ratio_threshold=2.4):
# text that gzip shrinks this much is a repetition loop, not speech.
MAX_COMPRESSION_RATIO = 2.4


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def looks_degenerate(text: str, max_ratio: float = MAX_COMPRESSION_RATIO) -> bool:
    """True for the LLM-ASR failure of looping on a phrase ("the audio is: the audio is: ...")."""
    return compression_ratio(text) > max_ratio


# The automatic hotword bonus (DecodingOptions.boost_for). A list short enough to go into every prompt whole
# (TranscribeOptions.prompt_hotwords, 20) gets the strong bonus; a longer one is filtered per chunk, and the
# terms that get through include false alarms that a strong bonus writes. With hotword correction on, on
# dev-tts utterances 41-85 with names (scratch script over bench/biasing.py's lists, shipped weights),
# WER / U-WER / B-WER / recall at boost 5 → 3: true list 13.2 / 13.8 / 11.0 / 87.7% → 12.8 / 12.8 / 13.0 /
# 84.2%; true+100 16.3 / 16.4 / 16.0 / 80.7% → 14.1 / 13.6 / 16.0 / 80.7% (boost 4: 15.7 / 15.1 / 18.0 /
# 78.9%, boost 2 as 3). Before the correction the switch sat at 200 terms (README, Hotwords).
SHORT_LIST_BOOST = 5.0
LONG_LIST_BOOST = 3.0
SHORT_LIST_TERMS = 20


@dataclass(frozen=True)
class DecodingOptions:
    beam_size: int = 1  # 1 = greedy
    n_best: int = 1  # hypotheses returned per input: the top n_best of the beam (MWER training)
    temperature: float = 0.0  # > 0 samples (only with beam_size 1)
    max_tokens_per_second: float = 8.0  # runaway guard: cap new tokens by audio duration
    min_new_tokens_cap: int = 16  # the cap never goes below this, for very short chunks
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    # Logit bonus for tokens that start/continue a hotword (engine/biasing.py); 0 = off; None = by the length
    # of the user's list (``boost_for``, measured above): the longer the list, the more of its terms are false
    # alarms in any one chunk, and the more a strong bonus writes them.
    hotword_boost: float | None = None
    # α of the joint decoding with and without the context (engine.biasing.ContextMix): each step scores
    # α·log P(y | speech, context) + (1 − α)·log P(y | speech); 1 = the context alone (no second stream).
    # 0.5 measured with bench/biasing.py --context-weight 1,0.5 (dev-tts, 20 utterances, meeting paragraph,
    # no list): a misleading paragraph took WER from 35.3% (none) to 51.7% at α 1 and 34.3% at 0.5; a true
    # one gave 28.4% at α 1 and 26.9% at 0.5. With a list and boost 3 the two were within 1 point. Chunks
    # with a context cost about 1.3× the decoding time (two streams).
    context_weight: float = 0.5
    # After decoding, a term of the hotword list that the character CTC spots in a chunk but the text lacks
    # replaces the words aligned to where it was heard, when the CTC finds the chunk's text so edited about as
    # likely or more (engine/correction.py). Nothing changes without a list.
    hotword_correction: bool = True
    # Greedy decoding verifies the adapter's token-CTC draft in blocks (engine/speculative.py): the same
    # tokens as plain greedy decoding, in fewer sequential LLM passes when the draft agrees. Off: with the
    # shipped weights only 19% of drafted tokens were accepted and decoding took 2.6× longer on the sample
    # (`python bench/ctc_draft.py --rounds 1`, 2-core VM under load; session-3 note, issue 7).
    ctc_draft: bool = False
    # λ of joint CTC/LLM decoding (engine/ctc_fusion.py): each of the LLM's top ``ctc_top_k`` tokens scores
    # (1 − λ)·log P_LLM + λ·(its token-CTC prefix-probability gain), so the adapter's CTC keeps the LLM on what
    # the audio holds; 0 = the LLM alone. Needs a model trained with a token CTC (token_ctc_weight > 0).
    # 0.3 measured on the first 20 utterances of each dev set (SFT checkpoint, greedy): WER at λ 0 / 0.3 / 0.5 was
    # asterisk-dev 70.4% / 29.2% / 28.0% (the LLM alone paraphrased and cut the long prompts short),
    # dev-tts 33.5% / 33.9% / 34.9%, dev-noisy 69.3% / 64.2% / 67.4%.
    ctc_weight: float = 0.3
    ctc_top_k: int = 8
    # Lexicon drafts (engine/lexicon.py, engine/draft.py): the character CTC's lexicon beam search under the model's
    # word LM gives each chunk a draft, and every LLM token that keeps to the draft's words gains this bonus (nats);
    # 0 = off. With a draft the token-CTC fusion above is not used. Needs a model with a word LM (word_lm.json.gz).
    # 30 measured on dev-tts 40-199 / dev-noisy 40-248 (shipped weights, /root/ks-scratch/draft15.py; the report's
    # first 40 utterances not read): WER at bonus 12 / 20 / 30 / 50 was 31.9 / 26.7 / 26.2 / 26.3% and
    # 60.8 / 52.8 / 52.3 / 52.2%, against 44.5% and 63.2% with the token-CTC fusion alone. The LLM holds its own
    # words firmly: below 20 it overrides the draft where the draft is right.
    draft_bonus: float = 30.0
    # Nats less for a mark that joins two words (a hyphen, "%", "/": engine.draft._joins) after a word. With the bonus
    # alone the LLM often fell into chains like "The Degree-Of-Technical-Confidence-Is-Inversely-Proportional": on dev-tts
    # 40-139 (/root/ks-scratch/s17/hyph.py, shipped weights) the text had 103 such joins where the references have 18,
    # in 27 of 100 utterances. At 10 / 15 / 20 nats it had 16 / 4 / 1, in 7 / 1 / 0 utterances with more than their
    # reference, and the WER was 23.4 / 23.6 / 23.6% (23.6% at 0). The two bench files of bench/cpu_speed.py lost
    # all 24 of theirs ("We installed forty-sensors") at 15, at the same 11.0% WER. At 15 the few left are ones the LLM is sure of.
    draft_join_penalty: float = 15.0
    # Plain greedy decoding runs its own loop (engine.speculative.batch_greedy_with_proposals), with the same tokens as
    # generate(): rows that have finished leave the batch, and with a lexicon draft each row checks a guess at its next
    # tokens (the rest of its draft, FollowDraft.proposal) in the same LLM pass. verify_block_tokens bounds rows × guessed
    # tokens per pass, so guesses are made when few rows are left. Off: generate(). Transcribing one 2-minute bench file
    # (shipped weights, one process, settings alternated, 3 runs each; /root/ks-scratch/s17/abproc.py) took 18.3 s on
    # average with generate(), 17.5 s with no guesses, 17.4 s at 16, 15.6 s at 48, 17.9 s at 96 and 19.3 s at 160 (a
    # second series: 18.3 s against 15.8 s at 48). With hotwords (no draft) on dev-names 0-47, true lists and a meeting
    # line: the same tokens for all 48, 46.2 s against 48.1 s with generate() (/root/ks-scratch/s18/hwequal.py).
    verify_drafts: bool = True
    verify_block_tokens: int = 48
    lexicon: LexiconOptions = field(default_factory=LexiconOptions)
    # The terms whose words join the drafts' vocabulary: the user's whole hotword list, set once per job
    # (engine.transcribe.chunk_prompts), so one lexicon serves every chunk; None = each chunk's own hotwords.
    draft_terms: tuple[str, ...] | None = None
    # Whether chunks are drafted when the user gave hotwords, the draft's words left open where a term is heard.
    # Off: with a hotword list every chunk decodes as without a word LM (token-CTC fusion), because the names the
    # character CTC spells as heard are what a draft cannot hold. On dev-names 0-99, true terms + 100 distractors
    # (bench/biasing.py, shipped weights), WER / U-WER / B-WER / recall were 7.0 / 4.9 / 18.1 / 78.6% with it on,
    # and 10.5 / 9.8 / 14.6 / 82.1% when only chunks with retrieved terms went undrafted: chunks whose share of a
    # long list was empty lost the names the correction used to put in. Session 14's decoding, which this keeps
    # for list users, reached 90.1% on dev-names 100-299 (README, Hotwords).
    draft_with_hotwords: bool = False

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be ≥ 1, got {self.beam_size}")
        if not 1 <= self.n_best <= self.beam_size:
            raise ValueError(f"n_best must be 1 to beam_size ({self.beam_size}), got {self.n_best}: raise beam_size to n_best")
        if self.temperature < 0:
            raise ValueError(f"temperature must be ≥ 0, got {self.temperature}")
        if self.temperature > 0 and self.beam_size > 1:
            raise ValueError("sampling (temperature > 0) and beam search (beam_size > 1) exclude each other: set one of them back")
        if self.max_tokens_per_second <= 0:
            raise ValueError(f"max_tokens_per_second must be > 0, got {self.max_tokens_per_second}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.hotword_boost is not None and self.hotword_boost < 0:
            raise ValueError(f"hotword_boost must be ≥ 0, got {self.hotword_boost}")
        if not 0.0 <= self.context_weight <= 1.0:
            raise ValueError(f"context_weight must be between 0 and 1, got {self.context_weight}")
        if not 0.0 <= self.ctc_weight < 1.0:
            raise ValueError(f"ctc_weight must be ≥ 0 and < 1, got {self.ctc_weight}")
        if self.ctc_top_k < 1:
            raise ValueError(f"ctc_top_k must be ≥ 1, got {self.ctc_top_k}")
        if self.draft_bonus < 0:
            raise ValueError(f"draft_bonus must be ≥ 0, got {self.draft_bonus}")
        if self.draft_join_penalty < 0:
            raise ValueError(f"draft_join_penalty must be ≥ 0, got {self.draft_join_penalty}")
        if self.verify_block_tokens < 1:
            raise ValueError(f"verify_block_tokens must be ≥ 1, got {self.verify_block_tokens}")
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size must be ≥ 0, got {self.no_repeat_ngram_size}")

    def biased_like(self, other: DecodingOptions) -> DecodingOptions:
        """These options with ``other``'s biasing (hotword boost, context weight α, CTC weight λ and its top k, the lexicon draft):
        how a fallback retry keeps the user's choice."""
        return replace(
            self, hotword_boost=other.hotword_boost, context_weight=other.context_weight, ctc_weight=other.ctc_weight, ctc_top_k=other.ctc_top_k,
            draft_bonus=other.draft_bonus, draft_join_penalty=other.draft_join_penalty, lexicon=other.lexicon, draft_terms=other.draft_terms,
            draft_with_hotwords=other.draft_with_hotwords,
        )

    def boost_for(self, n_terms: int) -> float:
        """The hotword bonus for a list of ``n_terms`` terms (the user's whole list, before per-chunk retrieval)."""
        if self.hotword_boost is not None:
            return self.hotword_boost
        return SHORT_LIST_BOOST if n_terms <= SHORT_LIST_TERMS else LONG_LIST_BOOST

    def max_new_tokens(self, duration_s: float) -> int:
        return max(self.min_new_tokens_cap, int(duration_s * self.max_tokens_per_second) + 1)

    def generate_kwargs(self, duration_s: float, eos_id: int, pad_id: int) -> dict:
        kwargs = {
            "max_new_tokens": self.max_new_tokens(duration_s),
            "num_beams": self.beam_size,
            "do_sample": self.temperature > 0,
            "eos_token_id": eos_id,
            "pad_token_id": pad_id,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "output_scores": True,
            "return_dict_in_generate": True,
        }
        if self.temperature > 0:
            kwargs["temperature"] = self.temperature
            kwargs["top_k"] = 0
        else:
            kwargs["temperature"] = None
            kwargs["top_p"] = None
            kwargs["top_k"] = None
        if self.beam_size > 1:
            kwargs["length_penalty"] = self.length_penalty
            kwargs["early_stopping"] = True
        if self.n_best > 1:
            kwargs["num_return_sequences"] = self.n_best
        return kwargs
