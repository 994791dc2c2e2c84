"""Peak memory and wall time against recording length: does the long-form pipeline stay flat?

    python bench/memory_scaling.py [--durations 10m,60m,180m] [--model tiny|default|DIR] [--quick]
                                   [--max-new-tokens 16] [--data DIR]

For each duration a synthetic recording is written on the fly (speech cut from
resources/samples/interview.flac at varying gains, with pauses of 0.3 to 3 s and
a -60 dBFS noise floor), block by block with soundfile, so the generator never
holds the recording in memory either. Each is transcribed by the real streaming
pipeline (audio decode, Silero VAD, chunking, journal, log-mel, encoder, LLM) in
its own subprocess, whose peak RSS comes from os.wait4. The worker also samples
its RSS and CPU time after every chunk: RSS@load is the loaded model, "growth"
the change from a quarter of the way through to the end, where a leak with
length shows, and CPU/s 1st¼ / last¼ the CPU seconds per audio second over the
first and the last quarter of the audio, where a slowdown with length shows
(CPU time, which other programs sharing the machine move far less than wall time).

Decoding hours with the real LLM on a small CPU takes hours, so the default
model is `tiny` (the random test model of engine/model/tiny.py) with at most
--max-new-tokens tokens per chunk: it runs the same pipeline at a bounded decode
cost. `--model default` measures the shipped model. The last line is the ratio
peak RSS(longest)/peak RSS(shortest) and the wall and CPU time ratios against linear.
`--quick` uses 1 min and 3 min.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from cpu_speed import SAMPLE_AUDIO, load_keyscribe, quiet_libraries, run_worker  # noqa: E402 -- after the path set-up

PAUSES_S = (0.3, 0.7, 1.2, 3.0)  # 3 s exceeds the VAD's drop_silence_s, so dropped silence is exercised too
NOISE_RMS = 1e-3  # -60 dBFS: a quiet room, not digital silence
WRITE_BLOCK_S = 60.0


def parse_duration_s(text: str) -> float:
    """'90s', '10m', '3h' or a bare number of minutes, in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"cannot read duration {text!r}: write e.g. 20s, 10m or 3h")
    value, unit = float(match.group(1)), match.group(2) or "m"
    return value * {"s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def label(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def write_synthetic(path: Path, duration_s: float, seed: int = 0) -> None:
    """Speech and pauses, written WRITE_BLOCK_S at a time (memory: the 24 s source plus one block)."""
    import numpy as np
    import soundfile as sf

    from engine.audio import SAMPLE_RATE, load_audio

    rng = np.random.default_rng(seed)
    speech = load_audio(SAMPLE_AUDIO)  # (T,) the bundled 24 s interview
    total = round(duration_s * SAMPLE_RATE)
    block_len = round(WRITE_BLOCK_S * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    pending_len = written = turn = 0
    with sf.SoundFile(path, "w", samplerate=SAMPLE_RATE, channels=1, format="FLAC", subtype="PCM_16") as sink:
        while written < total:
            while pending_len < block_len:
                # A turn: 3-12 s of speech from a random point, then a pause.
                length = int(rng.uniform(3.0, 12.0) * SAMPLE_RATE)
                start = int(rng.integers(0, len(speech) - length))
                pending.append(speech[start : start + length] * np.float32(rng.uniform(0.4, 1.0)))
                pending.append(np.zeros(round(PAUSES_S[turn % len(PAUSES_S)] * SAMPLE_RATE), dtype=np.float32))
                pending_len += length + len(pending[-1])
                turn += 1
            joined = np.concatenate(pending)
            block = joined[: min(block_len, total - written)]
            block = block + rng.normal(0.0, NOISE_RMS, len(block)).astype(np.float32)  # (block,)
            sink.write(np.clip(block, -1.0, 1.0))
            written += len(block)
            pending, pending_len = [joined[len(block) :]], len(joined) - len(block)


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (this benchmark needs Linux)")


def worker_main(args: argparse.Namespace) -> int:
    import torch

    from engine.journal import Journal
    from engine.transcribe import TranscribeOptions, Transcriber

    quiet_libraries()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, note = load_keyscribe(args.model, args.device, args.quantization)
    load_s = time.perf_counter() - start
    options = TranscribeOptions()
    if args.max_new_tokens:
        # Token budget per chunk ≤ max_new_tokens + 1 whatever its length (a 30 s chunk is the longest).
        cap = {"max_tokens_per_second": args.max_new_tokens / 30.0, "min_new_tokens_cap": args.max_new_tokens}
        options = replace(options, decoding=replace(options.decoding, **cap), fallback=replace(options.fallback, **cap))
    rss_after_load = _rss_mb()
    samples: list[tuple[float, float, float, float]] = []  # (audio done s, RSS MB, wall s, CPU s so far) after each chunk
    journal_path = args.audio.with_suffix(".journal.jsonl")
    journal_path.unlink(missing_ok=True)  # a left-over journal would resume instead of measuring
    journal = Journal(journal_path, key="memory-scaling")
    start, cpu_start = time.perf_counter(), time.process_time()

    def sample(progress) -> None:
        samples.append((progress.done_s, _rss_mb(), time.perf_counter() - start, time.process_time() - cpu_start))

    transcript = Transcriber(model, options).transcribe(args.audio, progress_callback=sample, journal=journal)
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    journal.close(remove=True)
    result = {
        "note": note,
        "model": f"{model.config.name} on {model.runtime.describe()}",
        "load_s": load_s,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "segments": len(transcript.segments),
        "rss_after_load_mb": rss_after_load,
        "samples": samples,
    }
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0


def _at(samples: list[list[float]], fraction: float, total_s: float) -> list[float]:
    """The first (done s, RSS MB, wall s, CPU s) sample past ``fraction`` of the audio."""
    return next((sample for sample in samples if sample[0] >= fraction * total_s), samples[-1])


def _quarter_cpu_rates(samples: list[list[float]], total_s: float) -> tuple[float, float]:
    """CPU seconds per audio second over the first and over the last quarter of the audio: a cost
    that grows with the transcript so far (a slowdown with length) makes the second larger.
    CPU time, not wall time, so that other programs sharing the CPU do not move it much."""
    first, third, end = _at(samples, 0.25, total_s), _at(samples, 0.75, total_s), samples[-1]
    if end[0] - third[0] <= 0:  # too few chunks to tell quarters apart
        return float("nan"), float("nan")
    return first[3] / max(first[0], 1e-9), (end[3] - third[3]) / (end[0] - third[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--durations", default="10m,60m,180m", help="comma-separated lengths, e.g. 20s,10m,3h (a bare number is minutes)"
    )
    parser.add_argument("--quick", action="store_true", help="1 min and 3 min")
    parser.add_argument(
        "--model", default="tiny", help="'tiny' (random test model, default), 'default' (the shipped model) or a model folder"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="token cap per chunk (default: 16 for tiny; 0 = the engine's own cap)"
    )
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--quantization", default="auto", choices=("auto", "nf4", "int8", "bf16", "fp32"))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--data", type=Path, default=None, help="folder for the generated recordings (default: a temporary folder, removed after)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--audio", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.max_new_tokens is None:
        args.max_new_tokens = 16 if args.model == "tiny" else 0
    if args.worker:
        return worker_main(args)
    durations = [60.0, 180.0] if args.quick else [parse_duration_s(d) for d in args.durations.split(",") if d.strip()]
    if not durations or min(durations) <= 0:
        parser.error("--durations needs at least one positive length")
    durations.sort()

    data = args.data or Path(tempfile.mkdtemp(prefix="keyscribe-memory-"))
    data.mkdir(parents=True, exist_ok=True)
    worker_args = [
        "--worker",
        "--model",
        args.model,
        "--device",
        args.device,
        "--quantization",
        args.quantization,
        "--threads",
        str(args.threads),
        "--max-new-tokens",
        str(args.max_new_tokens),
    ]
    rows = []
    try:
        for duration_s in durations:
            audio = data / f"synthetic-{label(duration_s)}.flac"
            start = time.perf_counter()
            if not audio.is_file():
                write_synthetic(audio, duration_s)
            made_s = time.perf_counter() - start
            result, peak_mb = run_worker(BENCH / "memory_scaling.py", [*worker_args, "--audio", str(audio)], data / "logs")
            samples = result["samples"]
            if not samples:
                raise RuntimeError(f"the {label(duration_s)} run reported no progress: no chunk was decoded")
            rss_quarter, rss_end = _at(samples, 0.25, duration_s)[1], samples[-1][1]
            cpu_first, cpu_last = _quarter_cpu_rates(samples, duration_s)
            rows.append((duration_s, result, peak_mb))
            if len(rows) == 1:
                print(
                    f"model {result['model']} ({result['note']}); token cap per chunk: {args.max_new_tokens or 'engine default'}; "
                    f"{args.threads} thread(s)"
                )
                print(
                    f"{'audio':>6} {'made s':>7} {'load s':>7} {'chunks':>7} {'wall s':>8} {'RTF':>6} {'CPU s':>8} {'CPU/s 1st¼':>11} "
                    f"{'CPU/s last¼':>12} {'peak RSS MB':>12} "
                    f"{'RSS@load':>9} {'RSS@25%':>8} {'RSS@end':>8} {'growth MB':>10}"
                )
            print(
                f"{label(duration_s):>6} {made_s:>7.1f} {result['load_s']:>7.1f} {result['segments']:>7} {result['wall_s']:>8.1f} "
                f"{result['wall_s'] / duration_s:>6.3f} {result['cpu_s']:>8.1f} {cpu_first:>11.3f} {cpu_last:>12.3f} "
                f"{peak_mb:>12.0f} {result['rss_after_load_mb']:>9.0f} {rss_quarter:>8.0f} "
                f"{rss_end:>8.0f} {rss_end - rss_quarter:>+10.1f}",
                flush=True,
            )
            if args.data is None:
                audio.unlink()  # hours of FLAC: free the disk before the next one is written
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    (short_s, short, short_peak), (long_s, long, long_peak) = rows[0], rows[-1]
    linear = long_s / short_s
    time_ratio, cpu_ratio = long["wall_s"] / short["wall_s"], long["cpu_s"] / short["cpu_s"]
    print(
        f"ratio peak RSS {label(long_s)}/{label(short_s)} = {long_peak / short_peak:.2f}x; "
        f"wall time {time_ratio:.1f}x vs linear {linear:.1f}x ({time_ratio / linear:.2f}x linear); "
        f"CPU time {cpu_ratio:.1f}x ({cpu_ratio / linear:.2f}x linear)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
