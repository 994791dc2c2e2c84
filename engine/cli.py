"""The ``keyscribe`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from engine.decoding import LONG_LIST_BOOST, SHORT_LIST_BOOST, SHORT_LIST_TERMS, DecodingOptions
from engine.errors import KeyscribeError

FORMATS = ("txt", "json", "srt", "vtt", "docx")
LOG_EVERY_S = 30.0  # progress lines when stderr is not a terminal


def build_parser() -> argparse.ArgumentParser:
    from engine.model.runtime import DEVICES, QUANTIZATIONS

    parser = argparse.ArgumentParser(prog="keyscribe", description="Transcribe recordings on your own machine.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("transcribe", help="transcribe audio or video files")
    t.add_argument("audio", nargs="+", type=Path, help="audio or video files (WAV, FLAC, MP3, OGG, OPUS, M4A, MP4, WEBM, ...)")
    t.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    t.add_argument("--hotwords", type=Path, default=None, help="text file with one name or term per line")
    ctx = t.add_mutually_exclusive_group()
    ctx.add_argument("--context", default="", help="a description of the recording (participants, topic)")
    ctx.add_argument("--context-file", type=Path, default=None, help="read the description from a text file")
    t.add_argument("--format", choices=FORMATS, default="txt", help="output format (default: txt)")
    t.add_argument("--output-dir", type=Path, default=None, help="write FILE.FORMAT here (default: print to stdout; docx needs a folder)")
    t.add_argument("--device", choices=DEVICES, default="auto")
    t.add_argument("--quantization", choices=QUANTIZATIONS, default="auto", help="LLM precision (default: picked per device)")
    t.add_argument("--beam-size", type=int, default=1, help="1 = greedy decoding")
    t.add_argument("--hotword-boost", type=float, default=DecodingOptions.hotword_boost,
                   help=f"logit bonus for hotword tokens while decoding (0 = off; default {SHORT_LIST_BOOST:g} for lists of up "
                        f"to {SHORT_LIST_TERMS} terms, {LONG_LIST_BOOST:g} for longer ones)")
    t.add_argument("--no-hotword-correction", dest="hotword_correction", action="store_false",
                   help="keep the model's text as written: do not put in listed terms that the audio holds but the text lacks")
    t.add_argument("--context-weight", type=float, default=DecodingOptions.context_weight,
                   help="α of the joint decoding with and without hotwords/context: below 1, a context-free stream "
                        f"is mixed in so a misleading context cannot take over (default {DecodingOptions.context_weight}; "
                        "1 = context only, faster)")
    t.add_argument("--ctc-weight", type=float, default=DecodingOptions.ctc_weight,
                   help="λ of the joint decoding with the model's token CTC, which keeps the text to what the audio holds "
                        f"(default {DecodingOptions.ctc_weight}; 0 = the LLM alone; not used while a lexicon draft is)")
    t.add_argument("--draft-with-hotwords", action="store_true",
                   help="draft chunks with hotwords too, leaving the draft open where a term is heard: far fewer errors on "
                        "ordinary words, more missed names (bench interview: WER 12.5%% against 36.5%%; dev-names: 75%% of "
                        "the names against 90%%; see README, Hotwords)")
    t.add_argument("--draft-bonus", type=float, default=DecodingOptions.draft_bonus,
                   help="bonus (nats) for every LLM token that keeps to the lexicon draft, the words the character CTC "
                        f"and the model's word list hear (default {DecodingOptions.draft_bonus}; 0 = no draft)")
    t.add_argument("--batch-size", type=int, default=16,  # TranscribeOptions.batch_size (not imported here: --help stays fast)
                   help="chunks decoded together (default 16; more is faster on long files and uses more memory)")
    t.add_argument("--segmentation", choices=("vad", "fixed"), default="vad", help="cut at pauses (default) or every 30 s")
    t.add_argument("--max-chunk-s", type=float, default=None,
                   help="longest chunk cut at pauses, in seconds (default: what the shipped model was trained for)")
    t.add_argument("--history", action="store_true", help="give the model the transcript so far in each prompt")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-resume", action="store_true", help="start afresh instead of reusing segments an interrupted run finished")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="keyscribe: %(message)s")
    try:
        return _transcribe(args)
    except KeyscribeError as err:
        print(f"keyscribe: error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:  # option combinations the engine refuses
        print(f"keyscribe: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keyscribe: interrupted", file=sys.stderr)
        return 130


def _transcribe(args: argparse.Namespace) -> int:
    if args.format == "docx" and args.output_dir is None:
        args.output_dir = Path(".")
    context = _read_context(args)
    # Everything past here imports torch and transformers: keep `--help` fast.
    _quiet_libraries()
    from engine.audio import probe_audio
    from engine.export import export
    from engine.journal import Journal, default_journal_path, job_key
    from engine.model.load import load_model
    from engine.segment import SegmentOptions
    from engine.transcribe import DEFAULT_MAX_CHUNK_S, TranscribeOptions, Transcriber

    options = TranscribeOptions(
        decoding=DecodingOptions(beam_size=args.beam_size, hotword_boost=args.hotword_boost, context_weight=args.context_weight,
                                  ctc_weight=args.ctc_weight, draft_bonus=args.draft_bonus, draft_with_hotwords=args.draft_with_hotwords,
                                  hotword_correction=args.hotword_correction),
        segment=SegmentOptions(max_chunk_s=args.max_chunk_s or DEFAULT_MAX_CHUNK_S) if args.segmentation == "vad" else None,
        history=args.history,
        batch_size=args.batch_size,
    )
    for path in args.audio:
        probe_audio(path)  # a bad file fails now, before minutes of model loading
    model = load_model(args.model, args.device, args.quantization, allow_untrained=True)
    if not args.quiet:
        print(f"keyscribe: model {model.config.name} on {model.runtime.describe()}", file=sys.stderr)
    transcriber = Transcriber(model, options)
    failures = 0
    for path in args.audio:
        key = job_key(path, model.config.name, (options, context))
        journal_path = default_journal_path(path, key)
        if args.no_resume:
            journal_path.unlink(missing_ok=True)
        journal = Journal(journal_path, key)
        if journal.finished and not args.quiet:
            print(f"keyscribe: resuming {path.name} after {journal.resume_after_s:.1f} s (journal {journal_path})", file=sys.stderr)
        try:
            transcript = _run_one(transcriber, path, context, args.quiet, journal)
        except KeyscribeError as err:
            journal.close()
            print(f"keyscribe: error: {err}", file=sys.stderr)
            failures += 1
            continue
        if args.output_dir is None:
            sys.stdout.write(_render_to_text(transcript, args.format))
            sys.stdout.flush()
        else:
            args.output_dir.mkdir(parents=True, exist_ok=True)
            out = export(transcript, args.output_dir / f"{path.stem}.{args.format}", args.format)
            print(f"keyscribe: wrote {out}", file=sys.stderr)
        journal.close(remove=True)  # the transcript is out; the journal has done its job
    return 1 if failures else 0


def _read_context(args: argparse.Namespace):
    from engine.hotwords import read_hotwords
    from engine.prompt import PromptContext

    meeting = args.context
    if args.context_file is not None:
        try:
            meeting = args.context_file.read_text(encoding="utf-8-sig")
        except (FileNotFoundError, UnicodeDecodeError) as err:
            raise KeyscribeError(f"Cannot read the context file {args.context_file}: {err}") from err
    hotwords = read_hotwords(args.hotwords) if args.hotwords is not None else ()
    return PromptContext(meeting=meeting, hotwords=hotwords)


def _run_one(transcriber, path: Path, context, quiet: bool, journal):
    from tqdm import tqdm

    from engine.audio import probe_duration_s

    total = probe_duration_s(path)
    with tqdm(
        total=round(total, 1) if total else None,
        unit="s",
        desc=path.name,
        disable=quiet or None,  # None: only on a terminal
        file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]",
    ) as bar:
        # Without a terminal (a log file, nohup, a pipe) the bar is off: a plain line every LOG_EVERY_S instead.
        log_lines = not quiet and not sys.stderr.isatty()
        started = time.monotonic()
        first: list[tuple[float, float]] = []  # (time, done_s) of the first report: a resumed job starts part-way
        logged_at = [started]

        def progress(p):
            bar.update(round(p.done_s - bar.n, 1))
            now = time.monotonic()
            if not first:
                first.append((now, p.done_s))
            if log_lines and (now - logged_at[0] >= LOG_EVERY_S or (total and p.done_s >= total - 0.05)):
                logged_at[0] = now
                print(_progress_line(path.name, p.done_s, total, now - started, first[0], now), file=sys.stderr, flush=True)

        return transcriber.transcribe(path, context, progress_callback=progress, journal=journal)


def _progress_line(name: str, done_s: float, total_s: float | None, elapsed_s: float, first: tuple[float, float], now: float) -> str:
    """One line for a log: share done, time spent, and time left at the pace since the first report."""
    if not total_s:
        return f"{name}: {done_s:.0f} s of audio done in {elapsed_s / 60:.1f} min"
    line = f"{name}: {100 * done_s / total_s:.0f}% ({done_s:.0f} of {total_s:.0f} s of audio) in {elapsed_s / 60:.1f} min"
    pace = (done_s - first[1]) / (now - first[0]) if now > first[0] else 0.0  # audio seconds per second
    if pace > 0 and done_s < total_s:
        line += f", about {(total_s - done_s) / pace / 60:.1f} min left"
    return line


def _render_to_text(transcript, fmt: str) -> str:
    """Render a text format into a string through the exporter (one code path for both)."""
    import tempfile

    from engine.export import export

    with tempfile.TemporaryDirectory() as tmp:
        out = export(transcript, Path(tmp) / f"out.{fmt}", fmt)
        return out.read_text(encoding="utf-8")


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices are not for users
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
