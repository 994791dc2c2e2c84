"""Keyscribe vs faster-whisper tiny.en (same Whisper weights, int8, beam 5), side by side.

    python bench/asr_wer.py [--model DIR] [--data data] [--limit N] [--quantization Q] [--no-peer]

Runs both systems on the project's fixed dev sets (built by `python -m training
data build --out data`) in one process and prints WER, CER, wall time and RTF
for each, and the WER ratio keyscribe/peer per set as the last lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEV_SETS = ("asterisk-dev", "dev-tts", "dev-noisy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="folder with the dev manifests")
    parser.add_argument("--limit", type=int, default=0, help="first N utterances per set (0 = all)")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--quantization", default="auto", help="LLM precision: auto, fp32, bf16, int8, nf4")
    parser.add_argument("--no-peer", action="store_true", help="Keyscribe only")
    parser.add_argument("--draft-bonus", type=float, default=None, help="bonus of the lexicon draft (default: the engine's; 0 = off)")
    args = parser.parse_args()
    manifests = [args.data / f"{name}.jsonl" for name in DEV_SETS]
    missing = [str(m) for m in manifests if not m.is_file()]
    if missing:
        print(f"missing dev sets: {', '.join(missing)}; build them with `python -m training data build --out {args.data}`", file=sys.stderr)
        return 2
    from training.evaluate_cli import run

    return run(
        argparse.Namespace(
            model=args.model, manifest=manifests, limit=args.limit, peer=not args.no_peer, beam_size=args.beam_size, quantization=args.quantization,
            draft_bonus=args.draft_bonus,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
