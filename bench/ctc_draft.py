"""CTC-draft verification vs plain greedy decoding, side by side on the same chunks.

    python bench/ctc_draft.py [--model DIR] [--manifest M.jsonl --limit 20] [--rounds 2]

Cuts the audio (default: the bundled interview, cut at pauses like the CLI does; or the
utterances of a manifest) into chunks, encodes each once, then decodes every chunk with
``ctc_draft=True`` and ``ctc_draft=False`` in alternation, so load from other programs falls on
both alike. Prints the LLM decode wall time of each, the draft's acceptance rate, how many
LLM passes each needed, whether the transcripts are identical (they must be: verification
keeps exactly greedy's tokens), and as the last line the speed ratio plain/draft.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _chunks(args) -> list:
    from engine.audio import iter_audio_blocks, load_audio
    from engine.segment import SegmentOptions, iter_chunks
    from engine.transcribe import DEFAULT_MAX_CHUNK_S

    if args.manifest is None:
        audio = REPO / "resources" / "samples" / "interview.flac"
        return [c.samples for c in iter_chunks(iter_audio_blocks(audio, block_s=10.0), SegmentOptions(max_chunk_s=DEFAULT_MAX_CHUNK_S))]
    from training.data.manifest import read_manifest

    return [load_audio(u.audio) for u in read_manifest(args.manifest)[: args.limit]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--manifest", type=Path, default=None, help="JSONL manifest instead of the bundled interview")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="decodes of every chunk per mode")
    args = parser.parse_args(argv)

    import torch

    from engine import speculative
    from engine.decoding import DecodingOptions
    from engine.model.load import load_model
    from engine.prompt import PromptContext

    model = load_model(args.model)
    encoded = [model.encode_frames(model.frontend([samples])) for samples in _chunks(args)]
    modes = {"plain greedy": DecodingOptions(ctc_draft=False, ctc_weight=0.0), "CTC draft": DecodingOptions(ctc_draft=True, ctc_weight=0.0)}  # explicit: the defaults may change
    wall = dict.fromkeys(modes, 0.0)
    texts: dict[str, list[str]] = {name: [] for name in modes}
    totals = speculative.DraftStats()
    original = speculative.greedy_with_draft

    def counting(*a, **k):  # the engine calls it through its module; collect its pass counts
        result = original(*a, **k)
        totals.forwards += result.stats.forwards
        totals.drafted += result.stats.drafted
        totals.accepted += result.stats.accepted
        return result

    import engine.model.acllm as acllm

    acllm.greedy_with_draft = counting
    tokens = 0
    with torch.inference_mode():
        for round_ in range(args.rounds):
            for frames, lengths in encoded:
                for name, options in modes.items():
                    started = time.perf_counter()
                    hyp = model.generate_from_frames(frames, lengths, [PromptContext()], options)[0]
                    wall[name] += time.perf_counter() - started
                    if round_ == 0:
                        texts[name].append(hyp.text)
                        tokens += len(hyp.token_ids) if name == "plain greedy" else 0
    same = sum(a == b for a, b in zip(texts["plain greedy"], texts["CTC draft"], strict=True))
    print(f"model {model.config.name}: {len(encoded)} chunks, {tokens} transcript tokens, {args.rounds} rounds, torch threads {torch.get_num_threads()}")
    for name in modes:
        print(f"{name:>13}: {wall[name]:7.2f} s decoding")
    rounds = max(1, args.rounds)
    print(f"draft: {totals.accepted // rounds} of {totals.drafted // rounds} drafted tokens accepted ({100 * totals.acceptance:.0f}%), "
          f"{totals.forwards // rounds} LLM passes after the prompts vs ~{tokens} for plain greedy")
    print(f"identical transcripts: {same} of {len(encoded)}")
    print(f"speed ratio plain/draft = {wall['plain greedy'] / wall['CTC draft']:.2f}")
    return 0 if same == len(encoded) else 1


if __name__ == "__main__":
    sys.exit(main())
