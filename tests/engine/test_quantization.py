"""NF4 (bitsandbytes) and int8 (weight-only int8 layers) on the CPU, and the 4-bit CUDA path where a GPU exists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.decoding import DecodingOptions
from engine.errors import DeviceError
from engine.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from engine.model.runtime import resolve_runtime
from engine.model.tiny import tiny_config
from engine.prompt import PromptContext

pytest.importorskip("bitsandbytes")


def _quantized_linears(model, quantization: str = "nf4") -> int:
    import bitsandbytes as bnb

    kind = bnb.nn.Linear4bit if quantization == "nf4" else bnb.nn.Linear8bitLt
    return sum(isinstance(m, kind) for m in model.llm.modules())


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, runtime_cpu):
    path = tmp_path_factory.mktemp("nf4") / "ckpt"
    save_checkpoint(build_model(tiny_config(), runtime_cpu), path)
    return path


def test_runtime_resolution():
    assert resolve_runtime("cpu", "auto").quantization in ("fp32", "bf16", "nf4")
    with pytest.raises(ValueError, match="quantization must be one of"):
        resolve_runtime("cpu", "int3")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="--device cpu"):
            resolve_runtime("cuda", "nf4")


def test_nf4_load_and_generate_on_cpu(tiny_checkpoint):
    quantization = "nf4"
    model = load_checkpoint(tiny_checkpoint, resolve_runtime("cpu", quantization))
    assert _quantized_linears(model, quantization) > 0
    features = model.frontend([np.zeros(16000 * 2, dtype=np.float32) + 0.01])
    hyps = model.generate(features, [PromptContext()], DecodingOptions(min_new_tokens_cap=8, max_tokens_per_second=2))
    assert len(hyps) == 1 and np.isfinite(hyps[0].avg_logprob)


def test_nf4_logits_stay_close_to_fp32(tiny_checkpoint, runtime_cpu):
    """4-bit weights change the numbers a little, not the model: same prompt, close next-token distributions."""
    full = load_checkpoint(tiny_checkpoint, runtime_cpu)
    nf4 = load_checkpoint(tiny_checkpoint, resolve_runtime("cpu", "nf4"))
    ids = torch.tensor([full.prompt.render(PromptContext()).prefix])
    with torch.no_grad():
        p = torch.softmax(full.llm(input_ids=ids).logits[0, -1].float(), -1)
        q = torch.softmax(nf4.llm(input_ids=ids).logits[0, -1].float(), -1)
    assert 0.5 * (p - q).abs().sum() < 0.2  # total variation distance


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_nf4_on_cuda(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint, resolve_runtime("cuda", "nf4"))
    assert _quantized_linears(model) > 0
    assert model.device.type == "cuda" and next(model.llm.parameters()).device.type == "cuda"
    features = model.frontend([np.zeros(16000 * 3, dtype=np.float32) + 0.01])
    hyps = model.generate(features, [PromptContext()], DecodingOptions(min_new_tokens_cap=8))
    assert len(hyps) == 1 and np.isfinite(hyps[0].avg_logprob)


def test_int8_on_cpu_is_weight_only_int8_layers_close_to_fp32(tiny_checkpoint, runtime_cpu):
    from engine.model.int8 import Int8Linear, int8_kernel_available
    from engine.model.load import load_model

    if not int8_kernel_available():
        pytest.skip("this PyTorch build has no CPU int8 matmul")
    model = load_model(tiny_checkpoint, "cpu", "int8")
    linears = [m for m in model.llm.modules() if isinstance(m, torch.nn.Linear)]
    int8 = [m for m in model.llm.modules() if isinstance(m, Int8Linear)]
    assert int8 and not linears  # every LLM linear, the vocabulary projection included
    assert model.runtime.describe() == "CPU · INT8" and model.encoder.whisper.conv1.weight.dtype == torch.float32

    full = load_model(tiny_checkpoint, "cpu", "fp32")
    ids = torch.tensor([full.prompt.render(PromptContext()).prefix])
    with torch.no_grad():
        p = torch.softmax(full.llm(input_ids=ids).logits[0, -1].float(), -1)
        q = torch.softmax(model.llm(input_ids=ids).logits[0, -1].float(), -1)
    assert 0.5 * (p - q).abs().sum() < 0.05  # total variation distance: int8 weights move the numbers a little
    features = model.frontend([np.zeros(16000 * 2, dtype=np.float32) + 0.01])
    hyps = model.generate(features, [PromptContext()], DecodingOptions(min_new_tokens_cap=8, max_tokens_per_second=2))
    assert len(hyps) == 1 and np.isfinite(hyps[0].avg_logprob)


def test_int8_layer_matches_the_float_layer():
    from engine.model.int8 import Int8Linear, int8_kernel_available, quantize_linears

    if not int8_kernel_available():
        pytest.skip("this PyTorch build has no CPU int8 matmul")
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 48, bias=True)
    x = torch.randn(2, 5, 64)  # (batch, time, in)
    q = Int8Linear(layer)
    with torch.no_grad():
        ref, out = layer(x), q(x)
    assert out.shape == (2, 5, 48) and out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.02 * ref.abs().max()  # bf16 rows and int8 weights: about 1% here
    assert q.weight_int8.dtype == torch.int8 and q.weight_int8.abs().max() == 127  # each row uses the full range
    stack = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(8, 4, bias=False)))
    assert quantize_linears(stack) == 2 and isinstance(stack[2][0], Int8Linear) and stack[2][0].bias is None
