"""Transcribe a file of any length: cut it into ≤ 30 s chunks, decode, collect segments.

Chunks come from voice-activity segmentation (engine/segment.py: cut at pauses,
never mid-word, silence skipped) or, with ``segment=None``, from fixed windows.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from engine.align import word_times
from engine.audio import SAMPLE_RATE, iter_audio_blocks, probe_duration_s
from engine.correction import correct_hotwords
from engine.decoding import DecodingOptions, looks_degenerate
from engine.hotwords import retrieve, spot
from engine.journal import Journal
from engine.model.acllm import ENCODER_FRAME_S, AcLLM, Hypothesis
from engine.model.encoder import CHUNK_SECONDS
from engine.prompt import PromptContext
from engine.segment import Chunk, SegmentOptions, iter_chunks
from engine.transcript import Segment, Transcript, Word

# Chunks are cut at pauses into pieces of at most this length. The shipped model was trained on
# single utterances of 2-10 s and stops early on longer chunks: on the sample interview (24 s) it
# scored 43% WER with 6 s chunks, 51% with 10 s and 82% with one 24 s chunk (session-2 note, issue 3).
DEFAULT_MAX_CHUNK_S = 6.0
SILENCE_RMS = 1e-4  # a window quieter than this (about -80 dBFS) holds no speech: skip the LLM


@dataclass(frozen=True)
class TranscribeOptions:
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    segment: SegmentOptions | None = field(default_factory=lambda: SegmentOptions(max_chunk_s=DEFAULT_MAX_CHUNK_S))  # None: fixed windows
    window_s: float = float(CHUNK_SECONDS)  # fixed-window length when segment is None
    # Chunks decoded together: CPU decoding is bound by reading the LLM's weights, which a batch shares.
    # On 4 min of speech (`python bench/cpu_speed.py --runs 1 --threads 1 --no-peer --batch-size B`, 2-core VM,
    # same WER): B=8 42.9 s, 16 37.8 s, 32 34.8 s; peak RSS 1.48, 1.68, 1.93 GB. 16 keeps segments arriving
    # every ~80 s of audio (~12 s of waiting here). With history on, chunks are decoded one at a time.
    batch_size: int = 16
    prompt_hotwords: int = 20  # longer hotword lists are filtered per chunk (engine.hotwords.retrieve)
    # The tail of the transcript so far goes into each chunk's prompt (Seed-ASR's long-form context).
    # Off by default: the shipped SFT model never saw history in training and drifts with it
    # (sample interview: 78% WER with history vs 43% without, 6 s chunks); context SFT will train it.
    history: bool = False
    word_timestamps: bool = True  # CTC forced alignment of each segment's text (engine/align.py)
    # A chunk whose text loops (engine.decoding.looks_degenerate) is decoded again with these options.
    fallback: DecodingOptions | None = field(default_factory=lambda: DecodingOptions(no_repeat_ngram_size=4, repetition_penalty=1.3))

    def __post_init__(self) -> None:
        if not 1.0 <= self.window_s <= CHUNK_SECONDS:
            raise ValueError(f"window_s must be between 1 and {CHUNK_SECONDS} seconds, got {self.window_s}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")
        if self.segment is not None and self.segment.max_chunk_s > CHUNK_SECONDS:
            raise ValueError(f"segment.max_chunk_s must be at most {CHUNK_SECONDS} s, the encoder's window")


@dataclass(frozen=True)
class Progress:
    done_s: float  # audio seconds transcribed so far
    total_s: float | None  # None if the container does not say

    @property
    def fraction(self) -> float | None:
        return None if not self.total_s else min(1.0, self.done_s / self.total_s)


class Cancelled(Exception):
    """Raised when a transcription is cancelled through its cancel event."""


class Transcriber:
    """Runs one model over whole files. Callbacks are plain functions (no Qt)."""

    def __init__(self, model: AcLLM, options: TranscribeOptions | None = None):
        self.model = model
        self.options = options or TranscribeOptions()

    def transcribe(
        self,
        path: str | Path,
        context: PromptContext = PromptContext(),
        progress_callback: Callable[[Progress], None] | None = None,
        on_segment: Callable[[Segment], None] | None = None,
        cancel: threading.Event | None = None,
        journal: Journal | None = None,
    ) -> Transcript:
        """Decode every chunk; with a journal, segments finished by an earlier run are reused, not redone."""
        total_s = probe_duration_s(path)
        segments: list[Segment] = list(journal.finished) if journal is not None else []
        done_s = segments[-1].end_s if segments else 0.0
        for segment in segments:
            if on_segment is not None:
                on_segment(segment)
        # Reading and segmenting the audio runs ahead in a thread, while the model decodes the batch before.
        with closing(_prefetched(self._chunks(path), depth=2 * self.options.batch_size)) as reader:
            chunks = (c for c in reader if c.end_s > done_s + 1e-6)
            # History needs each chunk's predecessor decoded first, so with history chunks go one at a time.
            for batch in _batched(chunks, 1 if self.options.history else self.options.batch_size):
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"transcription of {path} was cancelled")
                history = " ".join(s.text for s in segments if s.text) if self.options.history else ""
                decoded = self._decode(batch, replace(context, history=history), cancel)
                if cancel is not None and cancel.is_set():  # decoding stopped early: its text is incomplete
                    raise Cancelled(f"transcription of {path} was cancelled")
                for chunk, text, logprob, words in zip(batch, *decoded, strict=True):
                    segment = Segment(start_s=chunk.start_s, end_s=chunk.end_s, text=text, words=words, avg_logprob=logprob)
                    segments.append(segment)
                    if journal is not None:
                        journal.append(segment)
                    done_s = chunk.end_s
                    if on_segment is not None:
                        on_segment(segment)
                if progress_callback is not None:
                    progress_callback(Progress(done_s=done_s, total_s=total_s))
        return Transcript(segments=tuple(segments), duration_s=max(done_s, total_s or 0.0), model=self.model.config.name)

    def _chunks(self, path: str | Path) -> Iterator[Chunk]:
        if self.options.segment is not None:
            yield from iter_chunks(iter_audio_blocks(path, block_s=10.0), self.options.segment)
            return
        start_s = 0.0
        for block in iter_audio_blocks(path, block_s=self.options.window_s):
            yield Chunk(start_s=start_s, samples=block)
            start_s += len(block) / SAMPLE_RATE

    def _decode(
        self, batch: list[Chunk], context: PromptContext, cancel: threading.Event | None = None
    ) -> tuple[list[str], list[float | None], list[tuple[Word, ...]]]:
        texts: list[str] = [""] * len(batch)
        logprobs: list[float | None] = [None] * len(batch)
        words: list[tuple[Word, ...]] = [()] * len(batch)
        voiced = [i for i, w in enumerate(batch) if _rms(w.samples) >= SILENCE_RMS]
        if voiced:
            frames, lengths = self.model.encode_frames(self.model.frontend([batch[i].samples for i in voiced]))
            contexts, decoding, char_log_probs, spotted = chunk_prompts(
                self.model, frames, lengths, context, self.options.decoding, self.options.prompt_hotwords
            )
            should_stop = cancel.is_set if cancel is not None else None
            hyps = generate_with_fallback(self.model, frames, lengths, contexts, decoding, self.options.fallback, should_stop)
            corrected, char_log_probs = with_hotwords_corrected(
                self.model, [h.text for h in hyps], frames, lengths, context, decoding, char_log_probs, spotted
            )
            for i, hyp, text in zip(voiced, hyps, corrected, strict=True):
                texts[i], logprobs[i] = text, hyp.avg_logprob
            if self.options.word_timestamps:
                if char_log_probs is None:
                    char_log_probs = self.model.ctc_log_probs(frames, lengths)  # B arrays (T_b, V)
                for i, log_probs in zip(voiced, char_log_probs, strict=True):
                    chunk = batch[i]
                    words[i] = word_times(texts[i], log_probs, self.model.ctc.index, chunk.start_s, chunk.end_s, ENCODER_FRAME_S)
        return texts, logprobs, words


def chunk_prompts(
    model: AcLLM, frames, lengths, context: PromptContext, decoding: DecodingOptions, prompt_hotwords: int
) -> tuple[list[PromptContext], DecodingOptions, list | None, list | None]:
    """What each chunk of a batch is decoded with: its prompt context, where a hotword list longer than
    ``prompt_hotwords`` is cut to the terms the chunk's CTC posteriors spot (engine.hotwords.retrieve),
    and ``decoding`` with the automatic hotword bonus and the lexicon drafts' extra words settled on the whole
    list, not a chunk's share of it. Also the CTC posteriors (B arrays (T_b, V)) and each chunk's keyword scores for the list
    (engine.hotwords.spot), when they were computed, else None."""
    decoding = replace(decoding, hotword_boost=decoding.boost_for(len(context.hotwords)), draft_terms=tuple(context.hotwords))
    if len(context.hotwords) <= prompt_hotwords:
        return [context] * frames.shape[0], decoding, None, None
    char_log_probs = model.ctc_log_probs(frames, lengths)
    spotted = [spot(context.hotwords, log_probs, model.ctc.encode) for log_probs in char_log_probs]
    contexts = [
        replace(context, hotwords=retrieve(context.hotwords, log_probs, model.ctc.encode, limit=prompt_hotwords, spotted=found))
        for log_probs, found in zip(char_log_probs, spotted, strict=True)
    ]
    return contexts, decoding, char_log_probs, spotted


def with_hotwords_corrected(
    model: AcLLM,
    texts: list[str],
    frames,
    lengths,
    context: PromptContext,
    decoding: DecodingOptions,
    char_log_probs: list | None,
    spotted: list | None = None,
) -> tuple[list[str], list | None]:
    """``texts`` with the terms of the user's whole hotword list that the CTC hears but the LLM did not write
    put in (engine.correction), when ``decoding.hotword_correction`` is on; and the character CTC posteriors
    (B arrays (T_b, V)), computed here if they were not given and were needed. ``spotted``: chunk_prompts'."""
    if not decoding.hotword_correction or not context.hotwords:
        return texts, char_log_probs
    if char_log_probs is None:
        char_log_probs = model.ctc_log_probs(frames, lengths)
    spotted = spotted or [None] * len(texts)
    corrected = [
        correct_hotwords(text, lp, context.hotwords, model.ctc, spotted=found)
        for text, lp, found in zip(texts, char_log_probs, spotted, strict=True)
    ]
    return corrected, char_log_probs


def generate_with_fallback(
    model: AcLLM, frames, lengths, contexts: list[PromptContext], decoding: DecodingOptions, fallback: DecodingOptions | None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Hypothesis]:
    """Decode chunks from their encoder frames; those whose text loops are decoded again with ``fallback``
    (keeping ``decoding``'s biasing settings) and without history, unless ``should_stop`` says stop."""
    hyps = model.generate_from_frames(frames, lengths, contexts, decoding, should_stop)
    if fallback is None or (should_stop is not None and should_stop()):
        return hyps
    looping = [j for j, hyp in enumerate(hyps) if looks_degenerate(hyp.text)]
    if looping:
        # The retry also drops the history: a loop is often the model continuing it.
        retry = model.generate_from_frames(
            frames[looping], lengths[looping], [replace(contexts[j], history="") for j in looping], fallback.biased_like(decoding), should_stop
        )
        for j, hyp in zip(looping, retry, strict=True):
            hyps[j] = hyp
    return hyps


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _prefetched(items: Iterator, depth: int) -> Iterator:
    """``items``, produced by a background thread up to ``depth`` ahead of the consumer.

    The audio decoder and the VAD (onnxruntime) release the GIL in their heavy parts, so they
    use the core that the model leaves idle between its matmuls. An exception in the producer
    is raised here, in the consumer, at the point where its item would have come. Closing this
    generator (a cancel, an error downstream) stops the producer and closes ``items``.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as error:  # handed to the consumer, which raises it
            put((done, error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name="keyscribe-audio-reader", daemon=True)
    producer.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        producer.join()
