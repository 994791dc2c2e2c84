"""Every training stage in order: SSL → SFT → context SFT → MWER (Seed-ASR's sequence) → character-CTC head → export.

    python -m training run-all --preset tiny --out runs/all-tiny --train data/asterisk-train.jsonl

Each stage reads its preset (``training/configs/<stage>-<preset>.yaml``), writes its run under
``OUT/<stage>`` and hands its checkpoint to the next: SFT starts from the SSL encoder, context
SFT and MWER from the stage before (its ``best`` checkpoint when dev sets chose one, else
``last``). The result is ``OUT/model``, a folder the engine loads. A stage whose run is already
complete is resumed, which for a finished run means skipped, so a re-run continues where an
interrupted one stopped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent / "configs"
STAGES = ("ssl", "sft", "context-sft", "mwer", "char-ctc")


def _checkpoint(run: Path) -> Path:
    return run / "best" if (run / "best").is_dir() else run / "last"


def run_all(preset: str, out: Path, train: list[str], dev: list[str], log=print) -> Path:
    from training.__main__ import _export, run_recipe
    from training.recipes.ssl import ENCODER_FILE

    out = Path(out)
    shared = {"train_manifests": list(train)}
    cached = shared | {"cache_dir": str(out / "cache"), "dev_manifests": list(dev)}
    timings: dict[str, float] = {}

    def stage(name: str, overrides: dict) -> None:
        started = time.perf_counter()
        log(f"run-all: {name} → {overrides['out_dir']}")
        run_recipe(name, CONFIGS / f"{name}-{preset}.yaml", overrides)
        timings[name] = time.perf_counter() - started

    stage("ssl", shared | {"out_dir": str(out / "ssl")})
    stage("sft", cached | {"out_dir": str(out / "sft"), "encoder_init": str(out / "ssl" / ENCODER_FILE)})
    stage("context-sft", cached | {"out_dir": str(out / "context-sft"), "init_from": str(_checkpoint(out / "sft"))})
    stage("mwer", cached | {"out_dir": str(out / "mwer"), "init_from": str(_checkpoint(out / "context-sft"))})
    stage("char-ctc", cached | {"out_dir": str(out / "char-ctc"), "init_from": str(_checkpoint(out / "mwer"))})
    model = out / "model"
    if _export(_checkpoint(out / "char-ctc"), model, "float16") != 0:
        raise RuntimeError(f"run-all: export of {out / 'char-ctc'} failed")
    log("run-all: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()) + f"; model in {model}")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training run-all", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="stage presets to use: tiny (random model, CPU minutes) or default")
    parser.add_argument("--out", type=Path, required=True, help="folder for every stage's run and the final model")
    parser.add_argument("--train", nargs="+", required=True, help="training manifests (JSONL)")
    parser.add_argument("--dev", nargs="*", default=[], help="dev manifests (best checkpoint by dev WER)")
    args = parser.parse_args(argv)
    missing = [stage for stage in STAGES if not (CONFIGS / f"{stage}-{args.preset}.yaml").is_file()]
    if missing:
        parser.error(f"preset {args.preset!r} lacks configs for: {', '.join(missing)} (see {CONFIGS})")
    run_all(args.preset, args.out, args.train, args.dev)
    return 0
