"""`python -m training evaluate`: Keyscribe and the peer side by side on each manifest."""

from __future__ import annotations

from functools import partial

from training.data.manifest import read_manifest
from training.evaluate import run_system, transcribe_with_keyscribe, transcribe_with_peer


def run(args) -> int:
    from engine.model.load import load_model

    model = load_model(args.model, "auto", getattr(args, "quantization", "auto"))
    print(f"model {model.config.name} on {model.runtime.describe()}")
    header = f"{'set':<16} {'utts':>5} {'system':<22} {'WER':>7} {'CER':>7} {'wall s':>8} {'RTF':>6}"
    print(header)
    for manifest in args.manifest:
        utterances = read_manifest(manifest)
        if args.limit:
            utterances = utterances[: args.limit]
        ours = run_system("keyscribe", partial(transcribe_with_keyscribe, model, beam_size=args.beam_size, draft_bonus=args.draft_bonus), utterances)
        rows = [ours]
        if args.peer:
            rows.append(run_system("whisper-tiny.en (fw)", transcribe_with_peer, utterances))
        for r in rows:
            print(f"{manifest.stem:<16} {len(utterances):>5} {r.name:<22} {100 * r.rates.wer:>6.1f}% {100 * r.rates.cer:>6.1f}% {r.wall_s:>8.1f} {r.rtf:>6.3f}")
        if args.peer and rows[1].rates.wer > 0:
            print(f"{manifest.stem}: WER ratio keyscribe/peer = {ours.rates.wer / rows[1].rates.wer:.2f}")
    return 0
