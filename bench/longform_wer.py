"""Long-form against one by one: does transcribing a long recording lose accuracy over its utterances?

    python bench/longform_wer.py --manifest data/dev-tts.jsonl [--minutes 10] [--model DIR|tiny] [--history]

Stitches the manifest's utterances, in order, with pauses into one recording of about
``--minutes`` (cpu_speed.build_long_file, cached under --data), then transcribes:

- long-form: the whole recording, as `keyscribe transcribe` does (voice-activity chunks,
  batches, the default options; ``--history`` carries the transcript so far);
- one by one: each of the same utterances as its own file, through the same Transcriber.

Both are scored against the same reference (the utterances' texts joined) after Whisper's
English normalisation. Printed: WER and CER of each, wall time, and as the last line the
ratio long-form WER / one-by-one WER (1.0: no loss from the long-form loop).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from cpu_speed import build_long_file, load_keyscribe, read_utterances  # noqa: E402 -- after the path set-up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=None, help="JSONL manifest (default: the bundled sample, repeated)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", default=None, help="model folder, or `tiny` (random, for a smoke run); default: the shipped model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quantization", default="auto")
    parser.add_argument("--history", action="store_true", help="long-form with the transcript so far in each prompt")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "keyscribe-bench")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be > 0")

    from engine.transcribe import TranscribeOptions, Transcriber
    from training.evaluate import error_rates

    utterances = read_utterances(args.manifest)
    source = args.manifest.stem if args.manifest is not None else "sample"
    args.data.mkdir(parents=True, exist_ok=True)
    out = args.data / f"longform-{source}-{args.minutes:g}min.flac"
    long_file = build_long_file(utterances, args.minutes * 60.0, 0, out)
    used = _count_used(utterances, long_file.reference)
    model, note = load_keyscribe(args.model, args.device, args.quantization)
    print(f"model: {note}; {long_file.duration_s / 60:.1f} min of audio from {used} utterances of {source}")

    start = time.perf_counter()
    longform = Transcriber(model, TranscribeOptions(history=args.history)).transcribe(long_file.audio).text
    longform_s = time.perf_counter() - start
    start = time.perf_counter()
    one_by_one = Transcriber(model, TranscribeOptions())
    pieces = [one_by_one.transcribe(audio).text for audio, _ in (utterances[i % len(utterances)] for i in range(used))]
    pieces_s = time.perf_counter() - start

    rates = {
        "long-form" + (" (history)" if args.history else ""): (error_rates([long_file.reference], [longform]), longform_s),
        "one by one": (error_rates([long_file.reference], [" ".join(pieces)]), pieces_s),
    }
    print(f"{'transcribed as':<24} {'WER':>7} {'CER':>7} {'wall s':>8}")
    for name, (rate, wall_s) in rates.items():
        print(f"{name:<24} {100 * rate.wer:>6.1f}% {100 * rate.cer:>6.1f}% {wall_s:>8.1f}")
    (long_rate, _), (piece_rate, _) = rates.values()
    ratio = long_rate.wer / piece_rate.wer if piece_rate.wer else float("nan")
    print(f"long-form WER / one-by-one WER = {ratio:.2f}")
    return 0


def _count_used(utterances: list[tuple[Path, str]], reference: str) -> int:
    """How many utterances (from the first, cycling) build_long_file joined into ``reference``."""
    joined, count = "", 0
    while len(joined) < len(reference):
        joined = (joined + " " if joined else "") + utterances[count % len(utterances)][1]
        count += 1
    return count


if __name__ == "__main__":
    raise SystemExit(main())
