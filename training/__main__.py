"""python -m training {data,ssl,sft,context-sft,mwer,char-ctc,word-lm,run-all,export,evaluate} ..."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

# Each training stage: its recipe module, its config class, and a line for --help. Every recipe has setup/train/save.
RECIPES = {
    "ssl": ("training.recipes.ssl", "SSLConfig", "BEST-RQ self-supervised encoder pretraining on (unlabeled) audio"),
    "sft": ("training.recipes.sft", "SFTConfig", "speech->text SFT (LLM frozen)"),
    "context-sft": ("training.recipes.context_sft", "ContextSFTConfig", "SFT on <context, speech, text> triples: hotwords, meeting, history"),
    "mwer": ("training.recipes.mwer", "MWERConfig", "MWER on N-best lists with hotword-weighted word errors (continues SFT)"),
    "char-ctc": ("training.recipes.char_ctc", "CharCTCConfig", "a convolutional character-CTC head on the frozen encoder (spells hotwords)"),
    "word-lm": ("training.recipes.word_lm", "WordLMConfig", "the word bigram of the lexicon drafts, from the training transcripts"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "run-all":
        from training.pipeline import main as pipeline_main

        return pipeline_main(argv[1:])
    if argv and argv[0] == "data":
        from training.data.build import main as data_main

        return data_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m training", description="Keyscribe training stages.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("data", help="build manifests and the synthetic corpus (see `python -m training data --help`)")
    sub.add_parser("run-all", help="SSL, SFT, context SFT, MWER and export in order (see `python -m training run-all --help`)")
    for name, (_, _, help_text) in RECIPES.items():
        stage = sub.add_parser(name, help=help_text)
        stage.add_argument("--config", type=Path, required=True, help=f"YAML, e.g. training/configs/{name}-default.yaml")
        stage.add_argument("overrides", nargs="*", help="key=value settings that win over the YAML")
    export = sub.add_parser("export", help="copy a run's checkpoint into a model folder the engine loads")
    export.add_argument("--run", type=Path, required=True, help="the run folder (out_dir)")
    export.add_argument("--which", choices=("best", "last"), default="best")
    export.add_argument("--to", type=Path, required=True, help="e.g. resources/models/default")
    export.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                        help="precision of the shipped trained weights (float16 halves the repository's share)")
    ev = sub.add_parser("evaluate", help="WER of a model (and the Whisper tiny.en peer) on manifests")
    ev.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    ev.add_argument("--manifest", type=Path, nargs="+", required=True)
    ev.add_argument("--limit", type=int, default=0, help="first N utterances of each manifest (0 = all)")
    ev.add_argument("--peer", action="store_true", help="also run faster-whisper tiny.en (int8, beam 5)")
    ev.add_argument("--beam-size", type=int, default=1)
    ev.add_argument("--draft-bonus", type=float, default=None, help="bonus of the lexicon draft (default: the engine's; 0 = off)")
    ev.add_argument("--quantization", default="auto", help="LLM precision: auto, fp32, bf16, int8, nf4")
    args = parser.parse_args(argv)

    if args.command in RECIPES:
        from training.config import parse_override

        run_recipe(args.command, args.config, dict(parse_override(o) for o in args.overrides))
        return 0
    if args.command == "export":
        return _export(args.run / args.which, args.to, args.dtype)
    if args.command == "evaluate":
        from training.evaluate_cli import run

        return run(args)
    return 2


def run_recipe(name: str, config_path: Path, overrides: dict) -> None:
    """Load stage ``name``'s config (YAML + overrides) and train it."""
    import importlib

    from training.config import load_config

    module_name, config_name, _ = RECIPES[name]
    recipe = importlib.import_module(module_name)
    config = load_config(getattr(recipe, config_name), config_path, overrides)
    recipe.train(recipe.setup(config))


def _export(source: Path, target: Path, dtype: str = "float16") -> int:
    import torch
    from safetensors.torch import load_file, save_file

    from engine.model.checkpoint import TRAINED_FILE

    if not (source / TRAINED_FILE).is_file():
        print(f"export: {source} holds no checkpoint", file=sys.stderr)
        return 2
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("training_state.pt"))
    # The engine casts each tensor to its compute dtype on load, so a float16 file loads anywhere.
    tensors = load_file(target / TRAINED_FILE)
    save_file({k: v.to(getattr(torch, dtype)).contiguous() for k, v in tensors.items()}, target / TRAINED_FILE)
    size_mb = (target / TRAINED_FILE).stat().st_size / 1e6
    print(f"export: wrote {target} ({len(tensors)} tensors, {size_mb:.1f} MB {dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
