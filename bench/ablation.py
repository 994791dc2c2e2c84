"""The training-stage ablation (Seed-ASR's, at our scale): one command, every cell measured the same way.

    python bench/ablation.py --stage SFT=runs/sft-default/best \\
        --stage "+context SFT=runs/context-sft-default/best" --stage "+MWER=runs/mwer-default/best" \\
        --data data --limit 40 --bias-limit 40

Each ``--stage LABEL=DIR`` is a checkpoint folder the engine loads. For each, in turn:

- dev WER (greedy, empty context) on every dev set found in ``--data`` (asterisk-dev, dev-tts,
  dev-noisy), first ``--limit`` utterances each, as bench/asr_wer.py measures it;
- on the utterances of ``--bias-manifest`` that carry hotwords (bench/biasing.py's lists and
  metrics, Le et al. 2021): no list; the true list among 100 distractors with the prompt alone
  (boost 0) and with the engine's default boost; and a misleading meeting paragraph (it names
  distractors, never the spoken terms) at the engine's default α. For each: WER, U-WER, B-WER and
  hotword recall.
- with ``--ctc-probe``, also the greedy best paths of the encoder's character CTC and the
  adapter's token CTC on the same dev utterances: WER and CER. Those heads read the (frozen)
  encoder directly, so this compares encoders, e.g. SSL-initialised against randomly initialised,
  before the LLM has learned anything (README, "SSL init vs random init").

The last line compares the second stage with the first: hotword recall at true+100 (default boost),
in points, and the relative change of the mean dev WER. Runs are seeded and the lists are the
same for every stage, so the stages differ only by their weights.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.decoding import DecodingOptions  # noqa: E402
from training.data.manifest import read_manifest  # noqa: E402

DEV_SETS = ("asterisk-dev", "dev-tts", "dev-noisy")
DISTRACTORS = 100


def _load_biasing():
    """bench/biasing.py as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_biasing", Path(__file__).with_name("biasing.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


biasing = _load_biasing()


@dataclass(frozen=True)
class StageResult:
    label: str
    dev_wer: dict[str, float]  # dev set name -> WER
    dev_hypotheses: dict[str, list[str]]  # dev set name -> hypotheses, in manifest order
    bias: dict[str, object]  # condition label -> biasing.BiasingCounts
    wall_s: float
    probe: dict[str, dict[str, object]] = field(default_factory=dict)  # dev set -> CTC head -> training.evaluate.ErrorRates

    @property
    def mean_dev_wer(self) -> float:
        return sum(self.dev_wer.values()) / len(self.dev_wer) if self.dev_wer else float("nan")


def bias_conditions() -> dict[str, object]:
    """The biasing conditions of the table, by label."""
    Condition = biasing.Condition
    default = DecodingOptions()
    return {
        "none": Condition("keyscribe", None),
        f"true+{DISTRACTORS} prompt": Condition("keyscribe", DISTRACTORS, 0.0),
        f"true+{DISTRACTORS} boost": Condition("keyscribe", DISTRACTORS, default.hotword_boost),
        "misleading context": Condition("keyscribe", None, context="misleading", context_weight=default.context_weight),
    }


def ctc_probe(model, utterances: list) -> dict[str, object]:
    """WER and CER of the greedy best paths of the character CTC and the token CTC."""
    from training.evaluate import encoded_batches, error_rates

    chars, tokens = [], []
    for _, frames, lengths in encoded_batches(model, utterances):
        chars += model.ctc_hypotheses(frames, lengths)
        tokens += model.token_ctc_hypotheses(frames, lengths)
    references = [u.text for u in utterances]
    return {"char-CTC": error_rates(references, chars), "token-CTC": error_rates(references, tokens)}


def run_stage(
    label: str, model, dev: dict[str, list], bias_utterances: list, lists: dict, meetings: dict, log=print, probe: bool = False
) -> StageResult:
    from training.evaluate import error_rates, transcribe_with_keyscribe

    start = time.perf_counter()
    dev_wer, dev_hypotheses = {}, {}
    for name, utterances in dev.items():
        hyps = dev_hypotheses[name] = transcribe_with_keyscribe(model, utterances)
        dev_wer[name] = error_rates([u.text for u in utterances], hyps).wer
        log(f"{label}: {name} WER {100 * dev_wer[name]:.1f}%")
    probes = {name: ctc_probe(model, utterances) for name, utterances in dev.items()} if probe else {}
    bias = {}
    if bias_utterances:
        decoder = biasing.CachedDecoder(model)
        conditions = bias_conditions()
        results = biasing.run_keyscribe(decoder, bias_utterances, lists, list(conditions.values()), DecodingOptions(), log, meetings)
        for name, result in zip(conditions, results, strict=True):
            bias[name] = result.counts
    return StageResult(label, dev_wer, dev_hypotheses, bias, time.perf_counter() - start, probes)


def format_tables(results: list[StageResult]) -> str:
    pct = biasing._pct
    sets = [name for name in DEV_SETS if any(name in r.dev_wer for r in results)]
    lines = [f"{'stage':<22} " + " ".join(f"{name:>13}" for name in sets) + f" {'mean':>7}"]
    for r in results:
        lines.append(f"{r.label:<22} " + " ".join(f"{pct(r.dev_wer.get(name, float('nan'))):>13}" for name in sets) + f" {pct(r.mean_dev_wer):>7}")
    if any(r.probe for r in results):
        lines += ["", f"{'stage':<22} {'CTC head':<10} " + " ".join(f"{name + ' WER/CER':>26}" for name in sets)]
        for r in results:
            for head in ("char-CTC", "token-CTC"):
                cells = [r.probe.get(name, {}).get(head) for name in sets]
                lines.append(f"{r.label:<22} {head:<10} " + " ".join(f"{(pct(c.wer) + ' / ' + pct(c.cer)) if c else 'n/a':>26}" for c in cells))
    if any(r.bias for r in results):
        lines += ["", f"{'stage':<22} {'condition':<22} {'WER':>7} {'U-WER':>7} {'B-WER':>7} {'recall':>7}"]
        for r in results:
            for name, c in r.bias.items():
                lines.append(f"{r.label:<22} {name:<22} {pct(c.wer):>7} {pct(c.u_wer):>7} {pct(c.b_wer):>7} {pct(c.recall):>7}")
    return "\n".join(lines)


def summary(results: list[StageResult]) -> str:
    """The second stage against the first: recall gain at true+100 and the relative dev-WER change."""
    if len(results) < 2:
        return f"{results[0].label}: mean dev WER {biasing._pct(results[0].mean_dev_wer)}"
    first, second = results[0], results[1]
    parts = []
    key = f"true+{DISTRACTORS} boost"
    if key in first.bias and key in second.bias:
        parts.append(f"hotword recall at true+{DISTRACTORS} {100 * (second.bias[key].recall - first.bias[key].recall):+.1f} points")
    relative = (second.mean_dev_wer - first.mean_dev_wer) / first.mean_dev_wer if first.mean_dev_wer else float("nan")
    parts.append(f"mean dev WER {100 * relative:+.1f}% relative")
    return f"{second.label} vs {first.label}: " + ", ".join(parts)


def write_hypotheses(path: Path, dev: dict[str, list], results: list[StageResult]) -> None:
    """One JSON line per stage, dev set and utterance, for reading what the WERs hide."""
    with path.open("w", encoding="utf-8") as out:
        for r in results:
            for name, utterances in dev.items():
                for utt, hyp in zip(utterances, r.dev_hypotheses[name], strict=True):
                    out.write(json.dumps({"stage": r.label, "set": name, "id": utt.id, "reference": utt.text, "hypothesis": hyp}) + "\n")


def _stage(text: str) -> tuple[str, Path]:
    label, sep, folder = text.partition("=")
    if not sep or not label.strip() or not folder.strip():
        raise argparse.ArgumentTypeError(f"expected LABEL=DIR, got {text!r}")
    return label.strip(), Path(folder.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", type=_stage, action="append", required=True, help="LABEL=DIR, in pipeline order")
    parser.add_argument("--data", type=Path, default=Path("data"), help="folder with the dev manifests")
    parser.add_argument("--limit", type=int, default=40, help="first N utterances per dev set (0 = all)")
    parser.add_argument("--bias-manifest", type=Path, default=None, help="utterances with hotwords (default: DATA/dev-tts.jsonl)")
    parser.add_argument("--pool", type=Path, nargs="*", default=None, help="distractor manifests (default: DATA/tts-train.jsonl if present)")
    parser.add_argument("--bias-limit", type=int, default=40, help="first N utterances with hotwords (0 = all; -1 = skip biasing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dump", type=Path, default=None, help="write every dev-set hypothesis to this JSONL file")
    parser.add_argument("--ctc-probe", action="store_true", help="also score the CTC heads' greedy best paths on the dev sets")
    args = parser.parse_args()

    missing = [str(folder) for _, folder in args.stage if not (folder / "config.json").is_file()]
    if missing:
        print(f"not a model folder (no config.json): {', '.join(missing)}", file=sys.stderr)
        return 2
    dev = {}
    for name in DEV_SETS:
        path = args.data / f"{name}.jsonl"
        if path.is_file():
            utterances = read_manifest(path)
            dev[name] = utterances[: args.limit] if args.limit else utterances
    bias_manifest = args.bias_manifest or args.data / "dev-tts.jsonl"
    bias_utterances, lists, meetings = [], {}, {}
    if args.bias_limit >= 0 and bias_manifest.is_file():
        bias_utterances = [u for u in read_manifest(bias_manifest) if u.hotwords]
        if args.bias_limit:
            bias_utterances = bias_utterances[: args.bias_limit]
        pools = args.pool if args.pool is not None else [p for p in [args.data / "tts-train.jsonl"] if p.is_file()]
        pool = biasing.gather_pool([read_manifest(bias_manifest)] + [read_manifest(p) for p in pools])
        try:
            lists = {u.id: biasing.biasing_lists(u, pool, [DISTRACTORS], args.seed) for u in bias_utterances}
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
        meetings = {u.id: {"misleading": biasing.meeting_paragraph(u, pool, "misleading", args.seed)} for u in bias_utterances}
    if not dev and not bias_utterances:
        print(f"no dev sets in {args.data}; build them with `python -m training data build --out {args.data}`", file=sys.stderr)
        return 2

    from engine.model.load import load_model

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    print(f"dev sets: {', '.join(f'{n} ({len(u)})' for n, u in dev.items())}; biasing: {len(bias_utterances)} utterances, "
          f"true+{DISTRACTORS}, seed {args.seed}")
    results = []
    for label, folder in args.stage:
        model = load_model(folder, "cpu", "fp32")
        results.append(run_stage(label, model, dev, bias_utterances, lists, meetings, log, probe=args.ctc_probe))
        log(f"{label}: {results[-1].wall_s:.0f} s")
        del model
    if args.dump is not None:
        write_hypotheses(args.dump, dev, results)
    print(format_tables(results))
    print(summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
