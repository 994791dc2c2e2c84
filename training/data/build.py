"""Command line for data building.

    python -m training.data build --out data/ --tts-hours 0.5 --seed 0 --jobs 2
    python -m training.data voices
    python -m training.data librispeech --root LibriSpeech/train-clean-100 --out data/ls-train.jsonl
    python -m training.data aishell --root data_aishell --split dev --out data/aishell-dev.jsonl

`build` writes into --out:
    asterisk-train.jsonl, asterisk-dev.jsonl   real speech (Debian's Asterisk prompts)
    tts-train.jsonl                            synthetic, train voices, augmented
    dev-tts.jsonl                              synthetic, held-out voices and sentences, clean
    dev-noisy.jsonl                            dev-tts + asterisk-dev under strong noise and reverb
    tts-names.jsonl                            with --name-hours: more synthetic train speech, dense in
                                               names from more locales, none of them a dev-tts name
    dev-names.jsonl                            with --dev-names-utterances: held-out voices and sentences,
                                               clean, with names that no train manifest holds
    build.json                                 the options, and which voices worked
Audio goes to --out/audio/. Re-running with the same options reuses finished files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .corpora import ASTERISK_SOUNDS_DIR, ASTERISK_TRANSCRIPTS, aishell_utterances, build_asterisk, librispeech_utterances
from .manifest import Utterance, total_hours, write_manifest
from .text_sources import FORTUNE_DIR
from .tts import plan_names_corpus, plan_names_dev, plan_noisy_copies, plan_tts_corpus, render_items
from .voices import DEV_VOICES, ENGINES, TRAIN_VOICES, probe_voices


@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path
    tts_hours: float = 0.5
    seed: int = 0
    jobs: int = 2
    dev_tts_utterances: int = 200
    asterisk: bool = True
    asterisk_sounds_dir: Path = ASTERISK_SOUNDS_DIR
    asterisk_transcripts: Path = ASTERISK_TRANSCRIPTS
    engines: tuple[str, ...] = tuple(ENGINES)
    fortune_dir: Path = FORTUNE_DIR
    name_hours: float = 0.0
    dev_names_utterances: int = 0

    def __post_init__(self) -> None:
        if self.tts_hours < 0:
            raise ValueError("--tts-hours must be 0 or more.")
        if self.name_hours < 0:
            raise ValueError("--name-hours must be 0 or more.")
        if self.dev_names_utterances < 0:
            raise ValueError("--dev-names-utterances must be 0 or more.")
        if self.jobs < 1:
            raise ValueError("--jobs must be at least 1.")
        if self.dev_tts_utterances < 0:
            raise ValueError("--dev-tts-utterances must be 0 or more.")
        unknown = sorted(set(self.engines) - set(ENGINES))
        if unknown or not self.engines:
            raise ValueError(f"--engines: unknown {unknown}; choose from {', '.join(ENGINES)}.")


def build_all(options: BuildOptions, log=print) -> dict[str, list[Utterance]]:
    """Builds every manifest; returns {manifest name: utterances}."""
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    manifests: dict[str, list[Utterance]] = {}
    started = time.monotonic()

    babble_pool: list[str] = []
    asterisk_dev: list[Utterance] = []
    if options.asterisk:
        splits = build_asterisk(out, options.asterisk_sounds_dir, options.asterisk_transcripts)
        manifests["asterisk-train"], manifests["asterisk-dev"] = list(splits.train), list(splits.dev)
        asterisk_dev = list(splits.dev)
        babble_pool = [str(u.audio) for u in splits.train]  # real talkers for babble noise
        log(f"asterisk: skipped {splits.skip_counts()}")

    train_voices, train_failed = probe_voices(tuple(v for v in TRAIN_VOICES if v.engine in options.engines))
    dev_voices, dev_failed = probe_voices(tuple(v for v in DEV_VOICES if v.engine in options.engines))
    for key, reason in {**train_failed, **dev_failed}.items():
        log(f"voice {key} skipped: {reason}")
    log(f"train voices: {', '.join(v.key for v in train_voices)}")
    log(f"held-out voices: {', '.join(v.key for v in dev_voices)}")

    plan = plan_tts_corpus(options.seed, options.tts_hours, options.dev_tts_utterances,
                           train_voices, dev_voices, babble_pool, fortune_dir=options.fortune_dir)
    render_seconds: dict[str, float] = {}

    def render(name, items, audio_dir):
        render_started = time.monotonic()
        manifests[name] = render_items(items, out / "audio" / audio_dir, options.jobs, name)
        render_seconds[name] = round(time.monotonic() - render_started, 1)

    render("tts-train", plan.train, "tts/train")
    render("dev-tts", plan.dev, "tts/dev")
    render("dev-noisy", plan_noisy_copies(manifests["dev-tts"] + asterisk_dev, options.seed), "dev-noisy")
    if options.name_hours > 0:
        dev_terms = [term for item in plan.dev for term in item.hotwords]
        render("tts-names", plan_names_corpus(options.seed, options.name_hours, dev_terms, train_voices, babble_pool),
               "tts/names")
    if options.dev_names_utterances > 0:
        train_terms = [term for name in ("tts-train", "tts-names") for u in manifests.get(name, ()) for term in u.hotwords]
        render("dev-names", plan_names_dev(options.seed, options.dev_names_utterances, train_terms, dev_voices),
               "tts/dev-names")

    for name, utterances in manifests.items():
        if name not in ("asterisk-train", "asterisk-dev"):  # build_asterisk wrote its own
            write_manifest(out / f"{name}.jsonl", utterances)
    info = {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "train_voices": [v.key for v in train_voices],
        "held_out_voices": [v.key for v in dev_voices],
        "failed_voices": {**train_failed, **dev_failed},
        "manifests": {name: {"utterances": len(u), "hours": round(total_hours(u), 4)} for name, u in manifests.items()},
        "render_seconds": render_seconds,  # wall time; files already there are reused
        "total_seconds": round(time.monotonic() - started, 1),
    }
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return manifests


def print_sizes(manifests: dict[str, list[Utterance]], out_dir: Path) -> None:
    print(f"{'manifest':<28} {'utterances':>10} {'hours':>8}")
    for name, utterances in manifests.items():
        print(f"{out_dir / (name + '.jsonl')!s:<28} {len(utterances):>10} {total_hours(utterances):>8.3f}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build the Asterisk, synthetic and dev manifests")
    build.add_argument("--out", type=Path, required=True, help="output folder (manifests and audio/)")
    build.add_argument("--tts-hours", type=float, default=0.5, help="synthetic train hours (estimated before synthesis)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--jobs", type=int, default=2, help="worker processes for synthesis")
    build.add_argument("--dev-tts-utterances", type=int, default=200)
    build.add_argument("--no-asterisk", action="store_true", help="skip the Asterisk prompts")
    build.add_argument("--asterisk-sounds", type=Path, default=ASTERISK_SOUNDS_DIR)
    build.add_argument("--asterisk-transcripts", type=Path, default=ASTERISK_TRANSCRIPTS)
    build.add_argument("--engines", default=",".join(ENGINES), help="comma-separated TTS engines to use")
    build.add_argument("--fortunes", type=Path, default=FORTUNE_DIR, help="folder of fortune files")
    build.add_argument("--name-hours", type=float, default=0.0,
                       help="extra synthetic train hours dense in names (tts-names.jsonl; 0 = none)")
    build.add_argument("--dev-names-utterances", type=int, default=0,
                       help="held-out utterances with names no train split holds (dev-names.jsonl; 0 = none)")

    commands.add_parser("voices", help="try every TTS voice and say which work")

    libri = commands.add_parser("librispeech", help="manifest from a LibriSpeech-style folder")
    libri.add_argument("--root", type=Path, required=True)
    libri.add_argument("--out", type=Path, required=True, help="manifest .jsonl to write")

    aishell = commands.add_parser("aishell", help="manifest from an AISHELL-style folder")
    aishell.add_argument("--root", type=Path, required=True)
    aishell.add_argument("--split", default="train", choices=("train", "dev", "test"))
    aishell.add_argument("--out", type=Path, required=True, help="manifest .jsonl to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            options = BuildOptions(args.out, args.tts_hours, args.seed, args.jobs, args.dev_tts_utterances,
                                   not args.no_asterisk, args.asterisk_sounds, args.asterisk_transcripts,
                                   tuple(e.strip() for e in args.engines.split(",") if e.strip()), args.fortunes,
                                   args.name_hours, args.dev_names_utterances)
            print_sizes(build_all(options), args.out)
        elif args.command == "voices":
            working, failed = probe_voices(TRAIN_VOICES + DEV_VOICES)
            held_out = {v.key for v in DEV_VOICES}
            for voice in working:
                print(f"ok      {voice.key}{'  (held out for dev-tts)' if voice.key in held_out else ''}")
            for key, reason in failed.items():
                print(f"FAILED  {key}: {reason}")
        else:
            if args.command == "librispeech":
                utterances = librispeech_utterances(args.root)
            else:
                utterances = aishell_utterances(args.root, args.split)
            write_manifest(args.out, utterances)
            print(f"{args.out}: {len(utterances)} utterances, {total_hours(utterances):.3f} hours")
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
