"""Find and load the model a user asked for (or the shipped default)."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.errors import ModelError
from engine.model.acllm import AcLLM
from engine.model.checkpoint import build_model, load_checkpoint
from engine.model.runtime import Runtime, resolve_runtime
from engine.model.tiny import default_config

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
SHIPPED_MODEL_DIR = RESOURCES / "models" / "default"


def shipped_model_dir() -> Path | None:
    return SHIPPED_MODEL_DIR if (SHIPPED_MODEL_DIR / "config.json").is_file() else None


def load_model(
    model_dir: str | Path | None = None,
    device: str = "auto",
    quantization: str = "auto",
    allow_untrained: bool = False,
) -> AcLLM:
    """Load a checkpoint folder for inference; ``None`` means the shipped default model.

    With no trained weights shipped and ``allow_untrained``, the default
    architecture is built with a freshly initialised adapter: the command path
    works end to end, but its output is noise until the model is trained.
    LoRA is merged into the LLM, and int8 on a CPU quantizes its linears
    (AcLLM.prepare_inference): training loads with
    engine.model.checkpoint.load_checkpoint instead.
    """
    model = _load(model_dir, resolve_runtime(device, quantization), allow_untrained)
    model.prepare_inference()
    return model


def _load(model_dir: str | Path | None, runtime: Runtime, allow_untrained: bool) -> AcLLM:
    if model_dir is not None:
        path = Path(model_dir).expanduser()
        if not path.is_dir():
            raise ModelError(f"Model folder {path} does not exist: pass the folder that `python -m training export` wrote.")
        return load_checkpoint(path, runtime)
    shipped = shipped_model_dir()
    if shipped is not None:
        return load_checkpoint(shipped, runtime)
    if not allow_untrained:
        raise ModelError(f"No trained model found at {SHIPPED_MODEL_DIR}: pass --model DIR or train one with `python -m training`.")
    log.warning("No trained weights at %s: using an untrained adapter, so the transcript will be noise.", SHIPPED_MODEL_DIR)
    return build_model(default_config(), runtime)
