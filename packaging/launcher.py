"""Entry point of the Keyscribe desktop bundle (PyInstaller runs this file as __main__).

It dispatches on the first argument (see USAGE): the desktop app, the command
line, a self-test of the build, or the training stages. The self-test needs no
display and no network: it sets QT_QPA_PLATFORM=offscreen and HF_HUB_OFFLINE=1,
never imports Qt, and exits 0 only if every bundled file the engine needs is
found and the sample gives a non-empty transcript.

This folder has no ``__init__.py`` on purpose: it would make ``packaging`` a regular
package that shadows the PyPI ``packaging`` library for anything run from the repo root.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

USAGE = """\
  keyscribe [GUI options]            the desktop app
  keyscribe transcribe AUDIO... ...  the command line; see `keyscribe transcribe --help`
  keyscribe --self-test [--model DIR] [--audio FILE]
                                     check this build: load the model, transcribe the bundled sample, print it
  keyscribe training ...             the training stages (only in builds made with --with-training)"""


class SelfTestError(Exception):
    """A bundle check failed; the message says what is missing and what to do."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    if command in ("-h", "--help"):
        print("usage:\n" + USAGE)
        return 0
    if command == "--self-test":
        return self_test_cli(argv[1:])
    if command == "transcribe":
        from engine.cli import main as cli_main

        return cli_main(argv)
    if command == "training":
        return _run_training(argv[1:])
    return _run_gui(argv)


def self_test_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keyscribe --self-test", description="Check that this Keyscribe build works.")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--audio", type=Path, default=None, help="recording to transcribe (default: the bundled sample)")
    args = parser.parse_args(argv)
    return self_test(args.model, args.audio)


def self_test(model_dir: Path | None = None, audio: Path | None = None) -> int:
    """Check the bundled files, transcribe ``audio`` (default: the bundled sample) and print it.

    Returns 0 on success, 1 with one line saying what failed otherwise.
    """
    # No display, no network: what a build server or a fresh user machine may lack.
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported: no bar for the one-off GGUF conversion
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.WARNING, format="keyscribe: %(message)s")
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="transformers")  # generate() option notes
            warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices, as in the CLI
            text, summary = _transcribe_sample(model_dir, audio)
    except SelfTestError as err:
        print(f"keyscribe self-test: FAILED: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a diagnostic: report anything, with its traceback, and fail
        traceback.print_exc()
        print(f"keyscribe self-test: FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(text)
    print(f"keyscribe self-test: passed ({summary}; {time.perf_counter() - started:.1f} s in all)")
    return 0


def _say(message: str) -> None:
    print(f"keyscribe self-test: {message}", flush=True)


def _transcribe_sample(model_dir: Path | None, audio: Path | None) -> tuple[str, str]:
    from engine.errors import KeyscribeError
    from engine.model.load import RESOURCES, load_model, shipped_model_dir
    from engine.transcribe import Transcriber

    frozen = getattr(sys, "frozen", False)
    _say(f"{'frozen bundle at ' + getattr(sys, '_MEIPASS', '?') if frozen else 'running from source'}; resources {RESOURCES}")
    audio = audio if audio is not None else RESOURCES / "samples" / "interview.flac"
    if not audio.is_file():
        raise SelfTestError(f"the sample recording {audio} is missing: the bundle was built without resources/samples.")
    try:
        _check_bundled_files()
        started = time.perf_counter()
        model = load_model(model_dir, "auto", "auto", allow_untrained=True)
        trained = model_dir is not None or shipped_model_dir() is not None
        _say(
            f"model {model.config.name} on {model.runtime.describe()}"
            f"{'' if trained else ' (no trained weights shipped: the transcript is noise)'}; "
            f"loaded in {time.perf_counter() - started:.1f} s"
        )
        started = time.perf_counter()
        transcript = Transcriber(model).transcribe(audio)
    except KeyscribeError as err:
        raise SelfTestError(str(err)) from err
    elapsed = time.perf_counter() - started
    if not transcript.text.strip():
        raise SelfTestError(f"the model produced no text for {audio.name}: the bundle loads but does not transcribe.")
    return (
        transcript.text,
        f"{audio.name}: {transcript.duration_s:.1f} s of audio, {len(transcript.segments)} segment(s) in {elapsed:.1f} s",
    )


def _check_bundled_files() -> None:
    """The files the engine finds through installed packages: present, and the weights intact."""
    from engine.segment import _silero_onnx_path  # the lookup segmentation itself uses
    from engine.weights import PACKAGED, packaged_file

    for name, info in PACKAGED.items():
        _say(f"base weights {info.description}: {packaged_file(name, verify=True)} (sha256 ok)")
    vad = _silero_onnx_path()
    if vad is None:
        # Segmentation would quietly fall back to the energy VAD; a bundle must not.
        raise SelfTestError("the Silero VAD model (silero_vad/data/silero_vad.onnx) or onnxruntime is missing from the bundle.")
    _say(f"voice activity model: {vad}")


def _run_training(argv: list[str]) -> int:
    try:
        from training.__main__ import main as training_main
    except ModuleNotFoundError as err:
        if err.name is None or not err.name.startswith("training"):
            raise
        print(
            "keyscribe: error: this build has no training module: rebuild with `python build_installer.py --with-training`.",
            file=sys.stderr,
        )
        return 2
    return training_main(argv)


def _run_gui(argv: list[str]) -> int:
    try:
        from app.main import main as gui_main
    except ModuleNotFoundError as err:
        if err.name not in ("app", "app.main") and not (err.name or "").startswith("PySide6"):
            raise
        print(
            f"keyscribe: error: the desktop app is not part of this build ({err}); "
            "`keyscribe transcribe AUDIO` and `keyscribe --self-test` still work.",
            file=sys.stderr,
        )
        return 2
    return gui_main(argv)


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not start the app again
    sys.exit(main())
