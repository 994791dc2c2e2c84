"""Where the model runs and at what precision: ``--device`` and ``--quantization``."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from engine.errors import DeviceError

DEVICES = ("auto", "cuda", "cpu")
QUANTIZATIONS = ("auto", "nf4", "int8", "bf16", "fp32")

# The CPU default comes from bench/llm_precision.py on a 2-core x86-64 machine
# without AVX512-BF16/AMX (numbers in the README): SmolLM2-135M decodes at 14.5
# tokens/s in fp32, 15.5 in bf16, 8.3 in NF4 and 6.9 in int8. bf16 barely helps
# decoding there while bf16 encoder and training matmuls run several times slower,
# so fp32 is the default; NF4 saves memory but costs speed on such CPUs. int8 on a CPU is
# weight-only int8 (engine/model/int8.py): about 1.1× faster than fp32 on long files, with WER
# moving by up to 5 points either way on the dev sets (README, Performance), so not the default.
CPU_DEFAULT_QUANTIZATION = "fp32"
CUDA_DEFAULT_QUANTIZATION = "nf4"


@dataclass(frozen=True)
class Runtime:
    device: str  # "cpu" or "cuda"
    quantization: str  # "nf4" | "int8" | "bf16" | "fp32" (applies to the LLM)

    @property
    def compute_dtype(self) -> torch.dtype:
        """Dtype of activations, and of the encoder and adapter weights."""
        if self.device == "cuda" and self.quantization != "fp32":
            return torch.bfloat16
        return torch.bfloat16 if self.quantization == "bf16" else torch.float32

    @property
    def bitsandbytes(self) -> bool:
        """Whether the LLM loads through bitsandbytes: NF4 anywhere, int8 on CUDA (LLM.int8).

        int8 on the CPU is engine.model.int8's weight-only layers instead, applied after loading.
        """
        return self.quantization == "nf4" or (self.quantization == "int8" and self.device == "cuda")

    def describe(self) -> str:
        return f"{self.device.upper()} · {self.quantization.upper()}"


def _bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def resolve_runtime(device: str = "auto", quantization: str = "auto") -> Runtime:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("No CUDA GPU is available to this PyTorch build: use --device cpu (or auto).")
    if quantization == "auto":
        quantization = CUDA_DEFAULT_QUANTIZATION if device == "cuda" else CPU_DEFAULT_QUANTIZATION
        if not _can_run(Runtime(device, quantization)):
            quantization = "bf16" if device == "cuda" else "fp32"
    runtime = Runtime(device=device, quantization=quantization)
    if runtime.bitsandbytes and not _bitsandbytes_available():
        raise DeviceError(f"{quantization.upper()} needs the bitsandbytes package: pip install bitsandbytes, or pick --quantization fp32.")
    if not _can_run(runtime):
        raise DeviceError("This PyTorch build has no CPU int8 matmul (torch._weight_int8pack_mm): pick --quantization fp32.")
    return runtime


def _can_run(runtime: Runtime) -> bool:
    if runtime.bitsandbytes:
        return _bitsandbytes_available()
    if runtime.quantization == "int8":
        from engine.model.int8 import int8_kernel_available

        return int8_kernel_available()
    return True


def llm_load_kwargs(runtime: Runtime) -> dict:
    """``from_pretrained`` arguments that load the LLM for this runtime."""
    if runtime.quantization == "nf4":
        from transformers import BitsAndBytesConfig

        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=runtime.compute_dtype,
            ),
            "dtype": runtime.compute_dtype,
            "device_map": {"": runtime.device},
        }
    if runtime.quantization == "int8" and runtime.bitsandbytes:
        from transformers import BitsAndBytesConfig

        return {
            "quantization_config": BitsAndBytesConfig(load_in_8bit=True),
            "dtype": runtime.compute_dtype,
            "device_map": {"": runtime.device},
        }
    return {"dtype": runtime.compute_dtype}
