"""Hotword biasing: does a list of names help, and does it still help when the names hide among distractors?

    python bench/biasing.py --manifest data/dev-tts.jsonl --pool data/tts-train.jsonl [--limit N] [--model DIR]

Follows the LibriSpeech biasing benchmark of Le et al. 2021 ("Contextualized
streaming end-to-end speech recognition with trie-based deep biasing and
shallow fusion", arXiv 2104.02194). Each utterance that carries ``hotwords``
in its manifest (the rare names and terms of its reference) is decoded with
no list, with its true list, and with its true list shuffled among N
distractors: hotwords of other utterances drawn from the manifest and the
``--pool`` manifests. The lists for N = 100, 500, 1000 are nested. Every list
condition runs at each ``--boost`` (the decoder's hotword bonus; 0 leaves only
the prompt). faster-whisper tiny.en (int8, beam 5) runs with no list and with
the true+100 list, comma-joined, as its ``initial_prompt``; that prompt is
420-500 Whisper tokens and faster-whisper keeps only its last 223, so about
half of the true terms reach the peer (54 of 116 on dev-tts with seed 0), as
they would for a user who pasted the same list.

Scores, after Whisper's English normalisation (training/evaluate.normalize):
WER; U-WER, the error rate on reference words outside the utterance's true
hotwords; B-WER, the error rate on the words of its true hotwords (an inserted
word counts towards B-WER when it is one of those words, otherwise towards
U-WER); and hotword recall, the share of the true hotwords' occurrences in the
reference that the hypothesis also contains. The last line is Keyscribe's
B-WER(true+100)/B-WER(none) at the default boost.

Keyscribe decodes each utterance as one chunk, the way Transcriber does with
``segment=None`` (lists longer than ``prompt_hotwords`` filtered by the CTC
first pass, the repetition fallback), with the encoder run once per utterance
and its frames shared by all conditions, and each list condition's text goes through the
hotword correction (engine/correction.py) as Transcriber's does; ``--uncorrected`` also reports
the text before it. ``--dump FILE`` writes every hypothesis as JSONL.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.audio import SAMPLE_RATE  # noqa: E402
from engine.decoding import DecodingOptions  # noqa: E402
from engine.model.encoder import CHUNK_SECONDS  # noqa: E402
from engine.prompt import PromptContext  # noqa: E402
from engine.transcribe import SILENCE_RMS, TranscribeOptions, chunk_prompts, generate_with_fallback, with_hotwords_corrected  # noqa: E402
from training.data.manifest import Utterance, read_manifest  # noqa: E402
from training.evaluate import normalize  # noqa: E402

if TYPE_CHECKING:
    import torch

RATIO_DISTRACTORS = 100  # the last line compares true+100 with no list
PEER_DISTRACTORS = 100  # the peer's initial_prompt holds the true+100 list


# ----------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class BiasingCounts:
    """Error counts of Le et al. 2021, summed over utterances."""

    words: int = 0  # reference words
    errors: int = 0  # substitutions + deletions + insertions
    unbiased_words: int = 0
    unbiased_errors: int = 0
    biased_words: int = 0
    biased_errors: int = 0
    hotwords: int = 0  # occurrences of true hotwords in the references
    hotwords_found: int = 0

    def __add__(self, other: BiasingCounts) -> BiasingCounts:
        return BiasingCounts(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def _values(self) -> tuple[int, ...]:
        return (self.words, self.errors, self.unbiased_words, self.unbiased_errors,
                self.biased_words, self.biased_errors, self.hotwords, self.hotwords_found)

    @property
    def wer(self) -> float:
        return _ratio(self.errors, self.words)

    @property
    def u_wer(self) -> float:
        return _ratio(self.unbiased_errors, self.unbiased_words)

    @property
    def b_wer(self) -> float:
        return _ratio(self.biased_errors, self.biased_words)

    @property
    def recall(self) -> float:
        return _ratio(self.hotwords_found, self.hotwords)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def _occurrences(term: str, text: str) -> int:
    """How often the word sequence ``term`` occurs in ``text`` (both normalised), on word boundaries."""
    words, term_words = text.split(), term.split()
    n = len(term_words)
    return sum(words[i : i + n] == term_words for i in range(len(words) - n + 1)) if n else 0


def score_utterance(reference: str, hypothesis: str, hotwords: Sequence[str]) -> BiasingCounts:
    """B-WER/U-WER counts and hotword recall for one utterance; ``hotwords`` is its true biasing list."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        raise ValueError(f"reference {reference!r} has no words after normalisation")
    terms = [t for t in (normalize(h) for h in hotwords) if t]
    biased = {word for term in terms for word in term.split()}
    out = jiwer.process_words(ref, hyp)
    ref_words, hyp_words = out.references[0], out.hypotheses[0]
    errors = {True: 0, False: 0}  # keyed by "is a biased word"
    for chunk in out.alignments[0]:
        if chunk.type in ("substitute", "delete"):  # an error on each reference word of the chunk
            for word in ref_words[chunk.ref_start_idx : chunk.ref_end_idx]:
                errors[word in biased] += 1
        elif chunk.type == "insert":  # an inserted word belongs where its own spelling puts it
            for word in hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx]:
                errors[word in biased] += 1
    n_biased = sum(word in biased for word in ref_words)
    expected = [_occurrences(term, ref) for term in terms]
    found = [min(n, _occurrences(term, hyp)) for term, n in zip(terms, expected, strict=True)]
    return BiasingCounts(
        words=len(ref_words),
        errors=errors[True] + errors[False],
        unbiased_words=len(ref_words) - n_biased,
        unbiased_errors=errors[False],
        biased_words=n_biased,
        biased_errors=errors[True],
        hotwords=sum(expected),
        hotwords_found=sum(found),
    )


def biasing_counts(utterances: Sequence[Utterance], hypotheses: Sequence[str]) -> BiasingCounts:
    if len(utterances) != len(hypotheses):
        raise ValueError(f"{len(utterances)} utterances but {len(hypotheses)} hypotheses")
    total = BiasingCounts()
    for utt, hyp in zip(utterances, hypotheses, strict=True):
        total = total + score_utterance(utt.text, hyp, utt.hotwords)
    return total


# ----------------------------------------------------------------------------- biasing lists
def gather_pool(manifests: Sequence[Sequence[Utterance]]) -> tuple[str, ...]:
    """Every hotword of the manifests once (case variants collapse), in order of first appearance."""
    seen: set[str] = set()
    pool: list[str] = []
    for utterances in manifests:
        for utt in utterances:
            for term in utt.hotwords:
                if term.casefold() not in seen:
                    seen.add(term.casefold())
                    pool.append(term)
    return tuple(pool)


def biasing_lists(utterance: Utterance, pool: Sequence[str], sizes: Sequence[int], seed: int) -> dict[int, tuple[str, ...]]:
    """The true hotwords among N distractors, per N in ``sizes``; the lists are nested and shuffled.

    A distractor is never one of the utterance's hotwords nor spoken in its reference,
    so the words of the true list are exactly the utterance's biased words.
    """
    own = {term.casefold() for term in utterance.hotwords}
    reference = normalize(utterance.text)
    candidates = [t for t in pool if t.casefold() not in own and normalize(t) and not _occurrences(normalize(t), reference)]
    largest = max(sizes, default=0)
    if largest > len(candidates):
        raise ValueError(
            f"the distractor pool has {len(candidates)} terms for {utterance.id} but true+{largest} needs {largest}: "
            "add manifests with hotwords through --pool, or ask for fewer --distractors"
        )
    # One fixed order of the whole pool per utterance: true+N is the same list whatever other sizes are asked for.
    drawn = list(candidates)
    random.Random(f"{seed}/{utterance.id}").shuffle(drawn)
    lists = {}
    for n in sizes:
        terms = list(utterance.hotwords) + drawn[:n]
        # Shuffled, so neither the prompt order nor retrieval's tie-breaking gives the true terms away.
        random.Random(f"{seed}/{utterance.id}/{n}").shuffle(terms)
        lists[n] = tuple(terms)
    return lists


# ----------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class EncodedUtterance:
    frames: torch.Tensor | None  # (1, T, C) encoder frames; None for a silent utterance
    lengths: torch.Tensor | None  # (1,)


class CachedDecoder:
    """Decodes utterances as single chunks from encoder frames computed once.

    Mirrors Transcriber._decode for one chunk (tests/test_bench_biasing.py holds the two to the
    same text at the default boost): skip silence, filter long lists by the CTC first pass,
    retry looping text with the fallback options.
    """

    def __init__(self, model, options: TranscribeOptions = TranscribeOptions()):
        self.model = model
        self.options = options
        self.encoded: dict[str, EncodedUtterance] = {}
        self.encode_s = 0.0  # wall time of loading audio and running the encoder, all utterances

    def encode(self, utterances: Sequence[Utterance]) -> None:
        from engine.audio import load_audio

        for utt in utterances:
            if utt.id in self.encoded:
                continue
            start = time.perf_counter()
            samples = load_audio(utt.audio)
            if len(samples) > CHUNK_SECONDS * SAMPLE_RATE:
                raise ValueError(f"{utt.id} is {len(samples) / SAMPLE_RATE:.1f} s long; this benchmark decodes ≤ {CHUNK_SECONDS} s utterances")
            if _rms(samples) < SILENCE_RMS:
                self.encoded[utt.id] = EncodedUtterance(None, None)
            else:
                self.encoded[utt.id] = EncodedUtterance(*self.model.encode_frames(self.model.frontend([samples])))
            self.encode_s += time.perf_counter() - start

    def decode(self, utt: Utterance, hotwords: tuple[str, ...], decoding: DecodingOptions, meeting: str = "") -> str:
        return self.decode_both(utt, hotwords, decoding, meeting)[1]

    def decode_both(self, utt: Utterance, hotwords: tuple[str, ...], decoding: DecodingOptions, meeting: str = "") -> tuple[str, str, float]:
        """(the text as the LLM wrote it, the text after hotword correction, seconds the correction took)."""
        encoded = self.encoded[utt.id]
        if encoded.frames is None:
            return "", "", 0.0
        context = PromptContext(meeting=meeting, hotwords=hotwords)
        contexts, decoding, char_log_probs, spotted = chunk_prompts(
            self.model, encoded.frames, encoded.lengths, context, decoding, self.options.prompt_hotwords
        )
        # A looping text is decoded again with the fallback options, keeping the condition's biasing, as Transcriber's is.
        text = generate_with_fallback(self.model, encoded.frames, encoded.lengths, contexts, decoding, self.options.fallback)[0].text
        start = time.perf_counter()
        fixed = with_hotwords_corrected(self.model, [text], encoded.frames, encoded.lengths, context, decoding, char_log_probs, spotted)[0][0]
        return text, fixed, time.perf_counter() - start


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


# ----------------------------------------------------------------------------- conditions
@dataclass(frozen=True)
class Condition:
    system: str  # "keyscribe" or "peer"
    distractors: int | None  # None: no list; 0: the true list alone
    boost: float | None = 0.0  # Keyscribe's hotword_boost, None = automatic (unused without a list and for the peer)
    context: str = ""  # a meeting paragraph: "" none, "true" naming the true terms, "misleading" naming distractors
    context_weight: float = 1.0  # DecodingOptions.context_weight (α); < 1 is joint decoding
    corrected: bool = True  # Keyscribe's hotword correction (engine/correction.py) applied; False: the LLM's text

    @property
    def name(self) -> str:
        listed = "none" if self.distractors is None else ("true" if self.distractors == 0 else f"true+{self.distractors}")
        if self.system == "peer":
            return f"peer {listed}" + (" (prompt)" if self.distractors is not None else "")
        if self.context:
            return f"keyscribe {self.context} context α {self.context_weight:g}"
        boost = "auto" if self.boost is None else f"{self.boost:g}"
        return f"keyscribe {listed}" + (f" boost {boost}" if self.distractors is not None else "") + ("" if self.corrected else " uncorrected")


@dataclass(frozen=True)
class ConditionResult:
    condition: Condition
    counts: BiasingCounts
    wall_s: float
    hypotheses: tuple[str, ...]


def keyscribe_conditions(distractors: Sequence[int], boosts: Sequence[float], context_weights: Sequence[float] = ()) -> list[Condition]:
    """No list; each list at each boost; then, with no list, a true and a misleading meeting paragraph at each α."""
    conditions = [Condition("keyscribe", None)] + [Condition("keyscribe", n, b) for b in boosts for n in distractors]
    return conditions + [Condition("keyscribe", None, context=kind, context_weight=a) for kind in ("true", "misleading") for a in context_weights]


def meeting_paragraph(utterance: Utterance, pool: Sequence[str], kind: str, seed: int) -> str:
    """A short description of the recording naming the utterance's true terms, or as many distractors instead.

    The misleading one reads just as plausibly, so only the audio can tell the model that
    none of its names are spoken (Seed-ASR's case for joint decoding with weight α).
    """
    if kind == "true":
        names = list(utterance.hotwords)
    else:
        drawn = biasing_lists(utterance, pool, [max(3, len(utterance.hotwords))], seed)
        own = {t.casefold() for t in utterance.hotwords}
        names = [t for t in next(iter(drawn.values())) if t.casefold() not in own]
    return f"A recorded conversation. People and things mentioned: {', '.join(names)}."


def run_keyscribe(
    decoder: CachedDecoder,
    utterances: Sequence[Utterance],
    lists: dict[str, dict[int, tuple[str, ...]]],
    conditions: Sequence[Condition],
    base: DecodingOptions = DecodingOptions(),
    log: Callable[[str], None] = lambda line: None,
    meetings: dict[str, dict[str, str]] | None = None,
    uncorrected: bool = False,
) -> list[ConditionResult]:
    """Each condition over all utterances; wall_s includes the shared encoder pass, as a lone run would.

    With ``uncorrected``, each list condition is also reported as the LLM wrote it, before hotword
    correction: the same decoding, so the two rows differ by the correction alone (its time too)."""
    decoder.encode(utterances)
    results = []
    for condition in conditions:
        decoding = replace(base, hotword_boost=condition.boost, context_weight=condition.context_weight)
        start = time.perf_counter()
        hyps, written, correction_s = [], [], 0.0
        for utt in utterances:
            hotwords = () if condition.distractors is None else lists[utt.id][condition.distractors]
            meeting = meetings[utt.id][condition.context] if condition.context else ""
            as_written, fixed, seconds = decoder.decode_both(utt, hotwords, decoding, meeting)
            hyps.append(fixed)
            written.append(as_written)
            correction_s += seconds
        wall_s = time.perf_counter() - start + decoder.encode_s
        if uncorrected and condition.distractors is not None:
            before = replace(condition, corrected=False)
            results.append(ConditionResult(before, biasing_counts(utterances, written), wall_s - correction_s, tuple(written)))
        results.append(ConditionResult(condition, biasing_counts(utterances, hyps), wall_s, tuple(hyps)))
        log(f"{condition.name}: {wall_s:.1f} s, of which {correction_s:.1f} s hotword correction")
    return results


def run_peer(utterances: Sequence[Utterance], lists: dict[str, dict[int, tuple[str, ...]]], distractors: int) -> list[ConditionResult]:
    """faster-whisper with no prompt and with the true+N list, comma-joined, as its initial prompt."""
    from training.evaluate import transcribe_with_peer

    results = []
    for n in (None, distractors):
        prompts = None if n is None else [", ".join(lists[u.id][n]) for u in utterances]
        start = time.perf_counter()
        hyps = transcribe_with_peer(utterances, initial_prompts=prompts)
        wall_s = time.perf_counter() - start  # includes loading the peer (about a second)
        results.append(ConditionResult(Condition("peer", n), biasing_counts(utterances, hyps), wall_s, tuple(hyps)))
    return results


def b_wer_ratio(results: Sequence[ConditionResult], distractors: int, boost: float | None) -> float:
    """Keyscribe's B-WER with the true+N list over its B-WER with none."""
    by_condition = {r.condition: r.counts for r in results}
    none = by_condition[Condition("keyscribe", None)].b_wer
    listed = by_condition[Condition("keyscribe", distractors, boost)].b_wer
    return listed / none if none else float("nan")


def format_table(results: Sequence[ConditionResult]) -> str:
    lines = [f"{'condition':<46} {'WER':>7} {'U-WER':>7} {'B-WER':>7} {'recall':>7} {'wall s':>8}"]
    for r in results:
        c = r.counts
        lines.append(
            f"{r.condition.name:<46} {_pct(c.wer):>7} {_pct(c.u_wer):>7} {_pct(c.b_wer):>7} {_pct(c.recall):>7} {r.wall_s:>8.1f}"
        )
    return "\n".join(lines)


def write_hypotheses(path: Path, utterances: Sequence[Utterance], results: Sequence[ConditionResult]) -> None:
    """One JSON line per condition and utterance, for reading what the numbers hide."""
    import json

    with path.open("w", encoding="utf-8") as out:
        for r in results:
            for utt, hyp in zip(utterances, r.hypotheses, strict=True):
                record = {"condition": r.condition.name, "id": utt.id, "hotwords": list(utt.hotwords), "reference": utt.text, "hypothesis": hyp}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


# ----------------------------------------------------------------------------- command line
def _numbers(kind: type, auto: bool = False) -> Callable[[str], list]:
    """A comma-separated list of non-negative numbers; with ``auto``, the word auto stands for None."""

    def one(part: str):
        return None if auto and part.strip() == "auto" else kind(part)

    def parse(text: str) -> list:
        try:
            values = [one(part) for part in text.split(",") if part.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err
        if not values or any(v is not None and v < 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected non-negative comma-separated numbers, got {text!r}")
        return values

    return parse


def with_hotwords(utterances: Sequence[Utterance], offset: int = 0, limit: int = 0) -> list[Utterance]:
    """The utterances that carry hotwords, without the first ``offset`` of them, at most ``limit`` (0 = all)."""
    selected = [u for u in utterances if u.hotwords][offset:]
    return selected[:limit] if limit else selected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True, help="JSONL manifest whose utterances carry hotwords")
    parser.add_argument("--distractor-pool", "--pool", dest="pool", type=Path, nargs="+", default=[],
                        help="more manifests whose hotwords serve as distractors (the --manifest's own always do)")
    parser.add_argument("--limit", type=int, default=0, help="first N utterances that have hotwords (0 = all)")
    parser.add_argument("--offset", type=int, default=0, help="skip the first N utterances that have hotwords "
                        "(e.g. keep some for tuning and report on the rest)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--allow-untrained", action="store_true", help="without a shipped model, run the untrained default (noise)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quantization", default="auto")
    parser.add_argument("--distractors", type=_numbers(int), default=[0, 100, 500, 1000], help="list sizes beyond the true terms")
    parser.add_argument("--boost", type=_numbers(float, auto=True), default=[DecodingOptions().hotword_boost],
                        help="e.g. 0,3,auto (auto: the engine's default, by list length)")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--context-weight", type=_numbers(float), default=[], help="also decode with a true and a misleading "
                        "meeting paragraph (no list) at each joint-decoding weight α, e.g. 1,0.5")
    parser.add_argument("--ctc-weight", type=float, default=DecodingOptions().ctc_weight, help="λ of the token-CTC fusion (0 = off)")
    parser.add_argument("--draft-bonus", type=float, default=DecodingOptions().draft_bonus, help="bonus of the lexicon draft (0 = off)")
    parser.add_argument("--draft-with-hotwords", action="store_true", help="draft the chunks of a job with a list too (as the CLI flag)")
    parser.add_argument("--uncorrected", action="store_true",
                        help="also report each list condition before hotword correction (the same decoding)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peer", action="store_true", help="skip faster-whisper")
    parser.add_argument("--dump", type=Path, default=None, help="write every hypothesis to this JSONL file")
    args = parser.parse_args()

    utterances = with_hotwords(read_manifest(args.manifest), args.offset, args.limit)
    if not utterances:
        skipped = f" after the first {args.offset} (--offset)" if args.offset else ""
        print(f"{args.manifest} has no utterance with hotwords{skipped}", file=sys.stderr)
        return 2
    pool = gather_pool([read_manifest(args.manifest)] + [read_manifest(p) for p in args.pool])
    sizes = sorted(set(args.distractors) | ({PEER_DISTRACTORS} if not args.no_peer else set()))
    try:
        lists = {u.id: biasing_lists(u, pool, sizes, args.seed) for u in utterances}
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2

    from engine.model.load import load_model

    model = load_model(args.model, args.device, args.quantization, allow_untrained=args.allow_untrained)
    n_hotwords = sum(len(u.hotwords) for u in utterances)
    print(f"model {model.config.name} on {model.runtime.describe()}; {len(utterances)} utterances "
          f"({sum(u.duration_s for u in utterances):.0f} s) with {n_hotwords} hotwords; pool of {len(pool)} terms; seed {args.seed}")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    base = DecodingOptions(
        beam_size=args.beam_size, ctc_weight=args.ctc_weight, draft_bonus=args.draft_bonus, draft_with_hotwords=args.draft_with_hotwords
    )
    decoder = CachedDecoder(model)
    meetings = {u.id: {kind: meeting_paragraph(u, pool, kind, args.seed) for kind in ("true", "misleading")} for u in utterances}
    conditions = keyscribe_conditions(args.distractors, args.boost, args.context_weight)
    results = run_keyscribe(decoder, utterances, lists, conditions, base, log, meetings, args.uncorrected)
    if not args.no_peer:
        results += run_peer(utterances, lists, PEER_DISTRACTORS)
    if args.dump is not None:
        write_hypotheses(args.dump, utterances, results)
    print(format_table(results))
    print(f"Keyscribe wall s includes the shared encoder pass ({decoder.encode_s:.1f} s); peer wall s includes loading it.")
    ratio_n = RATIO_DISTRACTORS if RATIO_DISTRACTORS in args.distractors else max(args.distractors)
    ratio_boost = base.hotword_boost if base.hotword_boost in args.boost else args.boost[-1]
    print(f"B-WER(true+{ratio_n})/B-WER(none) = {b_wer_ratio(results, ratio_n, ratio_boost):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
