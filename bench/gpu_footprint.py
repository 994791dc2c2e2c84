"""GPU footprint of the `large` architecture, NF4 vs bf16: VRAM, build time, encoder and decode speed.

    python bench/gpu_footprint.py [--modes nf4,bf16] [--audio-s 30] [--new-tokens 100] [--repeats 3]
    python bench/gpu_footprint.py --dry-run              # configs, parameter counts, estimated weight sizes; no CUDA
    python bench/gpu_footprint.py --tiny --device cpu    # the same code at toy sizes, to check the script anywhere

The `large` preset is a Whisper large-v3 encoder (d_model 1280, 32 layers, 20
heads, ffn 5120, 128 mels) + frame-stack adapter + a Qwen2-7B-style LLM (hidden
3584, 28 layers, 28 heads, 4 KV heads, intermediate 18944, vocab 152064). They
are built from transformers configs with RANDOM weights: speed and memory do not
depend on the values, and nothing has to be downloaded. Each model is made on
the meta device and its tensors are then created directly on the GPU, one layer
at a time, so neither host RAM nor VRAM ever holds a bf16 copy of a 4-bit LLM.
NF4 uses the engine's own settings (engine/model/runtime.py llm_load_kwargs:
NF4, double quantization, bf16 compute); its from_pretrained path needs a
checkpoint, so the linear layers are quantized here with bitsandbytes'
Linear4bit the way transformers' quantizer does it (lm_head stays bf16).

Each mode runs in its own subprocess (peak VRAM and host RSS are per mode).
Measured: build time, VRAM of the weights, peak VRAM, encoder time per 30 s
window, prefill time, decode tokens/s and the real-time factor of one chunk
(encode --audio-s of audio, then decode exactly --new-tokens tokens). The last
line is the ratio NF4/bf16 of peak VRAM and of decode speed. Without CUDA it
prints "no CUDA device, skipping" and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

GIB = 1024**3
BLOCKSIZE = 64  # bitsandbytes' 4-bit block: one absmax per 64 weights
NESTED_BLOCKSIZE = 256  # double quantization: the 8-bit absmaxes are themselves quantized in blocks of 256
SKIPPED_MODULES = ("lm_head",)  # transformers' bitsandbytes quantizer keeps the output projection in 16 bit
ADAPTER_STACK, ADAPTER_HIDDEN = 5, 1024  # engine.model.config.AdapterConfig defaults
PROMPT_PREFIX_TOKENS, PROMPT_SUFFIX_TOKENS = 40, 8  # chat template + instruction around the audio, as in engine.prompt


def configs(tiny: bool):
    """(WhisperConfig, Qwen2Config) of the large preset, or toy sizes of the same shape."""
    from transformers import Qwen2Config, WhisperConfig

    if tiny:
        encoder = WhisperConfig(
            d_model=64,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=128,
            num_mel_bins=128,
            max_source_positions=1500,
        )
        llm = Qwen2Config(
            vocab_size=1024,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
        return encoder, llm
    encoder = WhisperConfig(  # openai/whisper-large-v3
        d_model=1280,
        encoder_layers=32,
        encoder_attention_heads=20,
        encoder_ffn_dim=5120,
        num_mel_bins=128,
        max_source_positions=1500,
    )
    llm = Qwen2Config(  # Qwen/Qwen2.5-7B-Instruct
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        tie_word_embeddings=False,
        rms_norm_eps=1e-6,
    )
    return encoder, llm


def meta_models(tiny: bool):
    """The encoder and LLM on the meta device: shapes only, no memory."""
    import torch
    from transformers import Qwen2ForCausalLM
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    encoder_config, llm_config = configs(tiny)
    with torch.device("meta"):
        return WhisperEncoder(encoder_config), Qwen2ForCausalLM(llm_config)


def quantized_linears(llm) -> list[str]:
    """Names of the LLM's linear layers that go to 4 bit."""
    from torch import nn

    return [name for name, m in llm.named_modules() if isinstance(m, nn.Linear) and name.split(".")[-1] not in SKIPPED_MODULES]


def nf4_bytes(numel: int, double_quant: bool) -> float:
    """4-bit weights plus their block scales (8-bit with double quantization, else fp32)."""
    blocks = math.ceil(numel / BLOCKSIZE)
    scales = blocks + 4 * math.ceil(blocks / NESTED_BLOCKSIZE) if double_quant else 4 * blocks
    return numel / 2 + scales


def nf4_settings(device: str):
    """quant type, double quantization and compute dtype, from the engine's own NF4 config."""
    from engine.model.runtime import Runtime, llm_load_kwargs

    config = llm_load_kwargs(Runtime(device, "nf4"))["quantization_config"]
    return config.bnb_4bit_quant_type, config.bnb_4bit_use_double_quant, config.bnb_4bit_compute_dtype


def dry_run(tiny: bool) -> int:
    encoder, llm = meta_models(tiny)
    encoder_config, llm_config = encoder.config, llm.config
    _, double_quant, _ = nf4_settings("cuda")
    adapter_params = (
        ADAPTER_STACK * encoder_config.d_model * ADAPTER_HIDDEN
        + ADAPTER_HIDDEN
        + ADAPTER_HIDDEN * llm_config.hidden_size
        + llm_config.hidden_size
    )
    llm_params = sum(p.numel() for p in llm.parameters())
    modules = dict(llm.named_modules())
    quantized = sum(modules[name].weight.numel() for name in quantized_linears(llm))
    encoder_params = sum(p.numel() for p in encoder.parameters())
    llm_nf4 = nf4_bytes(quantized, double_quant) + 2 * (llm_params - quantized)
    print(
        f"encoder: Whisper d_model {encoder_config.d_model}, {encoder_config.encoder_layers} layers, {encoder_config.encoder_attention_heads} heads, "
        f"ffn {encoder_config.encoder_ffn_dim}, {encoder_config.num_mel_bins} mels"
    )
    print(
        f"llm:     Qwen2 hidden {llm_config.hidden_size}, {llm_config.num_hidden_layers} layers, {llm_config.num_attention_heads} heads, "
        f"{llm_config.num_key_value_heads} KV heads, intermediate {llm_config.intermediate_size}, vocab {llm_config.vocab_size}"
    )
    print(f"{'part':<10} {'parameters':>15} {'':>10} {'bf16 GiB':>9} {'NF4 GiB':>9}")
    rows = [
        ("encoder", encoder_params, 2 * encoder_params, 2 * encoder_params),  # bf16 in both modes
        ("adapter", adapter_params, 2 * adapter_params, 2 * adapter_params),
        ("llm", llm_params, 2 * llm_params, llm_nf4),
    ]
    rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)))
    for name, params, bf16, nf4 in rows:
        print(f"{name:<10} {params:>15,} {params / 1e9:>8.3f}e9 {bf16 / GIB:>9.2f} {nf4 / GIB:>9.2f}")
    print(
        f"llm linear layers in NF4: {quantized:,} parameters ({100 * quantized / llm_params:.0f}%); "
        f"embeddings, lm_head and norms stay bf16; {'double' if double_quant else 'single'} quantization, blocks of {BLOCKSIZE}"
    )
    print("estimates are weights only: activations, the KV cache and the CUDA context come on top")
    print(f"ratio estimated weights nf4/bf16 = {rows[-1][3] / rows[-1][2]:.2f}x (llm alone {llm_nf4 / (2 * llm_params):.2f}x)")
    return 0


# --- building on the device -------------------------------------------------------------


def _replace(root, name: str, module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def _quantize_linears(llm, device: str) -> None:
    """Swap each linear layer for a bitsandbytes Linear4bit holding random weights, one layer at a time."""
    import bitsandbytes as bnb
    import torch

    quant_type, double_quant, compute_dtype = nf4_settings(device)
    for name in quantized_linears(llm):
        linear = llm.get_submodule(name)
        layer = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            compute_dtype=compute_dtype,
            compress_statistics=double_quant,
            quant_type=quant_type,
            device="meta",
        )
        weight = torch.empty(linear.out_features, linear.in_features, dtype=compute_dtype, device=device).normal_(
            0.0, 0.02
        )  # (out, in)
        layer.weight = bnb.nn.Params4bit(
            weight, requires_grad=False, compress_statistics=double_quant, quant_type=quant_type, module=layer
        ).to(device)
        del weight  # only the 4-bit copy stays
        if linear.bias is not None:
            layer.bias = torch.nn.Parameter(
                torch.zeros(linear.out_features, dtype=compute_dtype, device=device), requires_grad=False
            )
        _replace(llm, name, layer)


def _materialize(model, device: str, dtype) -> None:
    """Give every parameter still on the meta device random values on ``device`` (norms 1, biases 0)."""
    import torch
    from torch import nn

    for module in model.modules():
        is_norm = isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("RMSNorm")
        for name, param in list(module.named_parameters(recurse=False)):
            if not param.is_meta:
                continue
            value = torch.empty(param.shape, dtype=dtype, device=device)
            if name == "bias":
                value.zero_()
            elif is_norm:
                value.fill_(1.0)
            else:
                value.normal_(0.0, 0.02)
            setattr(module, name, nn.Parameter(value, requires_grad=False))
    for name, module in list(model.named_modules()):
        if any(b.is_meta for b in module.buffers(recurse=False)):
            if not type(module).__name__.endswith("RotaryEmbedding"):
                raise RuntimeError(
                    f"{name} ({type(module).__name__}) has buffers on the meta device that this script cannot rebuild"
                )
            with torch.device(device):
                _replace(model, name, type(module)(config=module.config))  # inv_freq is computed, not loaded


def build(mode: str, device: str, tiny: bool):
    """Encoder (SpeechEncoder), adapter and LLM of the preset on ``device``, LLM in ``mode``."""
    import torch

    from engine.model.adapter import FrameStackProjector
    from engine.model.config import DEFAULT_CTC_ALPHABET
    from engine.model.encoder import SpeechEncoder
    from engine.model.runtime import Runtime

    dtype = Runtime(device, mode).compute_dtype  # the engine's activation/encoder dtype for this mode
    whisper, llm = meta_models(tiny)
    _materialize(whisper, device, dtype)
    with torch.device(device):
        encoder = SpeechEncoder(whisper, len(DEFAULT_CTC_ALPHABET) + 1).to(dtype)
        adapter = FrameStackProjector(whisper.config.d_model, llm.config.hidden_size, ADAPTER_STACK, ADAPTER_HIDDEN).to(dtype)
    if mode == "nf4":
        _quantize_linears(llm, device)
    _materialize(llm, device, dtype)
    return encoder.eval(), adapter.eval(), llm.eval(), dtype


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: str):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def worker_main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from transformers.utils import logging as hf_logging

    from engine.model.encoder import SAMPLE_RATE, LogMelFrontend

    hf_logging.set_verbosity_error()
    cuda = args.device == "cuda"
    (encoder, adapter, llm, dtype), build_s = _timed(lambda: build(args.worker, args.device, args.tiny), args.device)
    weights_bytes = torch.cuda.memory_allocated() if cuda else 0
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    audio = (0.05 * np.random.default_rng(0).standard_normal(int(args.audio_s * SAMPLE_RATE))).astype(np.float32)  # (T,)
    features = LogMelFrontend(encoder.whisper.config.num_mel_bins)([audio])
    mel, mel_lengths = features.mel.to(args.device), features.mel_lengths.to(args.device)  # (1, 128, 3000), (1,)
    vocab = llm.config.vocab_size
    prefix = torch.randint(0, vocab, (1, PROMPT_PREFIX_TOKENS), device=args.device)
    suffix = torch.randint(0, vocab, (1, PROMPT_SUFFIX_TOKENS), device=args.device)

    def encode():
        frames, lengths = encoder(mel, mel_lengths)  # (1, T, C) at 50 Hz
        embeds, _ = adapter(frames, lengths)  # (1, T/5, D)
        table = llm.get_input_embeddings()
        return torch.cat([table(prefix), embeds.to(table.weight.dtype), table(suffix)], dim=1)  # (1, L, D)

    def decode(inputs_embeds, new_tokens: int):
        mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=args.device)
        return llm.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
        )

    with torch.inference_mode():
        embeds = encode()  # warm-up: kernels, cuBLAS handles
        decode(embeds, 4)
        encode_s = statistics.median(_timed(encode, args.device)[1] for _ in range(args.repeats))
        prefill_s = statistics.median(_timed(lambda: decode(embeds, 1), args.device)[1] for _ in range(args.repeats))
        runs = [_timed(lambda: decode(embeds, args.new_tokens), args.device) for _ in range(args.repeats)]
    generated = runs[0][0].shape[1]
    if generated != args.new_tokens:
        raise RuntimeError(f"decoding made {generated} tokens, not {args.new_tokens}")
    decode_s = statistics.median(t for _, t in runs)
    result = {
        "mode": args.worker,
        "dtype": str(dtype).removeprefix("torch."),
        "build_s": build_s,
        "weights_gib": weights_bytes / GIB,
        "peak_gib": torch.cuda.max_memory_allocated() / GIB if cuda else 0.0,
        "reserved_gib": torch.cuda.max_memory_reserved() / GIB if cuda else 0.0,
        "prompt_positions": int(embeds.shape[1]),
        "encode_s": encode_s,
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "tokens_per_s": (args.new_tokens - 1) / max(decode_s - prefill_s, 1e-9),  # steps after the first token
        "rtf": (encode_s + decode_s) / args.audio_s,
        "device_name": torch.cuda.get_device_name() if cuda else "cpu",
    }
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="nf4,bf16", help="LLM precisions to compare, each in its own process")
    parser.add_argument("--audio-s", type=float, default=30.0, help="audio per chunk (at most 30 s, the encoder's window)")
    parser.add_argument("--new-tokens", type=int, default=100, help="tokens decoded per chunk (exactly)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu only with --tiny")
    parser.add_argument(
        "--dry-run", action="store_true", help="print configs, parameter counts and estimated weight sizes; no CUDA needed"
    )
    parser.add_argument("--tiny", action="store_true", help="toy dimensions, to check the script (numbers mean nothing)")
    parser.add_argument("--worker", choices=("nf4", "bf16"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1.0 <= args.audio_s <= 30.0 or args.new_tokens < 2 or args.repeats < 1:
        parser.error("--audio-s must be 1-30, --new-tokens ≥ 2, --repeats ≥ 1")
    if args.worker:
        return worker_main(args)
    if args.dry_run:
        return dry_run(args.tiny)
    if args.device == "cpu" and not args.tiny:
        parser.error("the full-size preset is a GPU benchmark: --device cpu only with --tiny (or use --dry-run)")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "no CUDA device, skipping (python bench/gpu_footprint.py --dry-run prints the parameter counts and estimated sizes)"
        )
        return 0
    from cpu_speed import run_worker

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - {"nf4", "bf16"})
    if unknown or not modes:
        parser.error(f"--modes takes nf4 and/or bf16, got {args.modes!r}")
    flags = [
        "--device",
        args.device,
        "--audio-s",
        str(args.audio_s),
        "--new-tokens",
        str(args.new_tokens),
        "--repeats",
        str(args.repeats),
    ]
    flags += ["--tiny"] if args.tiny else []
    results = {}
    with tempfile.TemporaryDirectory() as logs:
        for mode in modes:
            result, host_mb = run_worker(BENCH / "gpu_footprint.py", ["--worker", mode, *flags], Path(logs))
            results[mode] = dict(result, host_rss_mb=host_mb)
            if len(results) == 1:
                print(
                    f"{'toy dims (--tiny)' if args.tiny else 'large preset'} on {result['device_name']}, torch {torch.__version__}; "
                    f"{args.audio_s:g} s chunk ({result['prompt_positions']} prompt positions) -> {args.new_tokens} tokens, median of {args.repeats}"
                )
                print(
                    f"{'mode':<5} {'dtype':<9} {'build s':>8} {'weights GiB':>12} {'peak GiB':>9} {'reserved GiB':>13} {'host RSS MB':>12} "
                    f"{'enc ms/30s':>11} {'prefill ms':>11} {'tokens/s':>9} {'RTF':>7}"
                )
            r = results[mode]
            vram = [f"{r[k]:.2f}" if args.device == "cuda" else "-" for k in ("weights_gib", "peak_gib", "reserved_gib")]
            print(
                f"{mode:<5} {r['dtype']:<9} {r['build_s']:>8.1f} {vram[0]:>12} {vram[1]:>9} {vram[2]:>13} "
                f"{host_mb:>12.0f} {1000 * r['encode_s'] * 30 / args.audio_s:>11.1f} {1000 * r['prefill_s']:>11.1f} "
                f"{r['tokens_per_s']:>9.1f} {r['rtf']:>7.4f}",
                flush=True,
            )
    if {"nf4", "bf16"} <= set(results):
        nf4, bf16 = results["nf4"], results["bf16"]
        if args.device == "cuda":
            print(
                f"ratio nf4/bf16: peak VRAM {nf4['peak_gib'] / bf16['peak_gib']:.2f}x, decode tokens/s {nf4['tokens_per_s'] / bf16['tokens_per_s']:.2f}x, "
                f"RTF {nf4['rtf'] / bf16['rtf']:.2f}x"
            )
        else:
            print(
                f"ratio nf4/bf16: decode tokens/s {nf4['tokens_per_s'] / bf16['tokens_per_s']:.2f}x, RTF {nf4['rtf'] / bf16['rtf']:.2f}x (no VRAM on cpu)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
