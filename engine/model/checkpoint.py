"""Build an AcLLM from its config, and save/load checkpoint folders.

A checkpoint folder describes itself:

    config.json          AcLLMConfig (encoder, adapter, LLM, prompt settings)
    trained.safetensors  the trained parts: adapter, CTC head, LoRA (+ encoder if fine-tuned)
    tokenizer/           the LLM's tokenizer with its chat template
    sources.json         where the base weights come from, with sha256 where known
    word_lm.json.gz      optional: the word bigram of the lexicon drafts (engine/lexicon.py)
    encoder/, llm/       full weights, only for components that have no external source (random
                         architectures, SSL-initialised encoders, parts loaded from another checkpoint)

Loading checks keys strictly: a checkpoint whose trained parts do not fit the
model its config describes is refused, never half-loaded.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from engine.errors import ModelError
from engine.lexicon import WORD_LM_FILE, WordLM
from engine.model.acllm import AcLLM, CharCTC
from engine.model.adapter import FrameStackProjector
from engine.model.config import AcLLMConfig, EncoderConfig
from engine.model.encoder import SpeechEncoder
from engine.model.runtime import Runtime, llm_load_kwargs
from engine.weights import PACKAGED, WeightSource, load_causal_lm, load_whisper_encoder, sha256_of

TRAINED_FILE = "trained.safetensors"


def build_model(config: AcLLMConfig, runtime: Runtime, checkpoint_dir: Path | None = None, seed: int = 0) -> AcLLM:
    """Assemble an AcLLM: base weights from their sources, freshly initialised trained parts."""
    torch.manual_seed(seed)
    whisper = build_whisper_encoder(config.encoder, checkpoint_dir)
    llm, tokenizer = _build_llm(config, runtime, checkpoint_dir)
    if checkpoint_dir is not None and (checkpoint_dir / "tokenizer").is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir / "tokenizer")
    ctc = CharCTC(config.encoder.ctc_alphabet)
    encoder = SpeechEncoder(
        whisper,
        ctc.vocab_size,
        trimmed=config.encoder.window == "trimmed",
        head_layers=config.encoder.ctc_head_layers,
        head_hidden=config.encoder.ctc_head_hidden,
    )
    adapter = FrameStackProjector(encoder.dim, llm.config.hidden_size, config.adapter.stack, config.adapter.hidden)
    if config.llm.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = config.llm.lora
        llm = get_peft_model(
            llm,
            LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules)),
        )
    encoder.to(device=runtime.device, dtype=runtime.compute_dtype)
    adapter.to(device=runtime.device, dtype=runtime.compute_dtype)
    if not runtime.bitsandbytes:  # bitsandbytes places its layers itself (device_map)
        llm.to(device=runtime.device)
    model = AcLLM(config, encoder, adapter, llm, tokenizer, runtime)
    _set_trainable(model)
    return model.eval()


def build_whisper_encoder(config: EncoderConfig, checkpoint_dir: Path | None = None):
    """The WhisperEncoder (float32, eval mode) an encoder config describes: from its weight source, or
    a random architecture, seeded by the caller or started from ``init_weights``."""
    if config.source != "random":
        return load_whisper_encoder(config.source, checkpoint_dir)
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    dims = config.random_dims
    encoder = WhisperEncoder(
        WhisperConfig(
            d_model=dims.d_model,
            encoder_layers=dims.layers,
            encoder_attention_heads=dims.heads,
            encoder_ffn_dim=dims.ffn_dim,
            num_mel_bins=dims.n_mels,
            max_source_positions=1500,
        )
    )
    if config.init_weights is not None:
        _load_init_weights(encoder, Path(config.init_weights))
    return encoder.eval()


def _load_init_weights(encoder, path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelError(f"Encoder initial weights {path} do not exist: pass the encoder.safetensors an SSL run wrote.")
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as err:
        raise ModelError(f"Encoder initial weights {path} are unreadable ({err}): write them again.") from err
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelError(f"Encoder initial weights {path} do not fit encoder.random_dims: {err}") from err


def _build_llm(config: AcLLMConfig, runtime: Runtime, checkpoint_dir: Path | None):
    if config.llm.source != "random":
        return load_causal_lm(config.llm.source, checkpoint_dir, llm_load_kwargs(runtime))
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.model.tiny import byte_tokenizer

    tokenizer = byte_tokenizer()
    dims = config.llm.random_dims
    llm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=dims.hidden,
            num_hidden_layers=dims.layers,
            num_attention_heads=dims.heads,
            num_key_value_heads=dims.kv_heads,
            intermediate_size=dims.intermediate,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            initializer_range=0.1,  # wide enough that a tiny model can make peaked predictions
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    return llm.to(runtime.compute_dtype).eval(), tokenizer


def _set_trainable(model: AcLLM) -> None:
    """Freeze the base weights; the adapter, CTC head and LoRA (and a trainable encoder) learn."""
    for p in model.parameters():
        p.requires_grad_(False)
    trained = set(model.trainable_state_dict())
    for name, p in model.named_parameters():
        if name in trained and p.is_floating_point():
            p.requires_grad_(True)


def save_checkpoint(model: AcLLM, directory: Path) -> Path:
    """Write a self-describing checkpoint folder; components without an external source go inside it."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    init_weights = config.encoder.init_weights
    # A random-architecture encoder (seeded or SSL-initialised) or one loaded from another checkpoint
    # has no source outside this folder: its full weights go inside, even when frozen.
    if WeightSource.parse(config.encoder.source).kind in ("random", "checkpoint"):
        sub = directory / "encoder"
        sub.mkdir(exist_ok=True)
        model.encoder.whisper.config.to_json_file(sub / "config.json")
        save_file(_contiguous(model.encoder.whisper.state_dict()), sub / "model.safetensors")
        encoder = dataclasses.replace(config.encoder, source="checkpoint:encoder", random_dims=None, init_weights=None)
        config = dataclasses.replace(config, encoder=encoder)
    if WeightSource.parse(config.llm.source).kind in ("random", "checkpoint"):
        _plain_llm(model).save_pretrained(directory / "llm")
        model.tokenizer.save_pretrained(directory / "llm")
        config = dataclasses.replace(config, llm=dataclasses.replace(config.llm, source="checkpoint:llm", random_dims=None))
    config.save(directory / "config.json")
    save_file(_contiguous(model.trainable_state_dict()), directory / TRAINED_FILE)
    model.tokenizer.save_pretrained(directory / "tokenizer")
    if model.word_lm is not None:
        model.word_lm.save(directory / WORD_LM_FILE)
    sources = _describe_sources(config)
    if init_weights is not None:
        start = Path(init_weights)
        sources["encoder"]["initialised_from"] = {"file": str(start.resolve()), "sha256": sha256_of(start)}
    (directory / "sources.json").write_text(json.dumps(sources, indent=2) + "\n")
    return directory


def _plain_llm(model: AcLLM):
    """The LLM without LoRA layers, as a model transformers can save (tied weights intact)."""
    if model.config.llm.lora is None:
        return model.llm
    base = model.llm.get_base_model()
    state = {k.replace(".base_layer", ""): v for k, v in base.state_dict().items() if "lora_" not in k}
    plain = type(base)(base.config)
    plain.load_state_dict(state, strict=True)
    return plain


def load_checkpoint(directory: Path, runtime: Runtime) -> AcLLM:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise ModelError(f"{directory} is not a Keyscribe model folder (no config.json): pass the folder that training exported.")
    try:
        config = AcLLMConfig.load(directory / "config.json")
    except (ValueError, TypeError, json.JSONDecodeError) as err:
        raise ModelError(f"{directory / 'config.json'} is not a valid Keyscribe config: {err}") from err
    if not (directory / TRAINED_FILE).is_file():
        raise ModelError(f"{directory} has no {TRAINED_FILE}: the export did not finish; export the checkpoint again.")
    model = build_model(config, runtime, checkpoint_dir=directory)
    try:
        state = load_file(directory / TRAINED_FILE)
        model.load_trainable_state_dict(state)
    except (SafetensorError, OSError) as err:
        raise ModelError(f"{directory / TRAINED_FILE} is corrupt ({err}): export the checkpoint again.") from err
    except KeyError as err:
        raise ModelError(f"{directory} does not match its config: {err.args[0]}") from err
    if (directory / WORD_LM_FILE).is_file():
        try:
            model.word_lm = WordLM.load(directory / WORD_LM_FILE)
        except ValueError as err:
            raise ModelError(str(err)) from err
    return model.eval()


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state.items()}


def _describe_sources(config: AcLLMConfig) -> dict:
    out = {}
    for part, spec in (("encoder", config.encoder.source), ("llm", config.llm.source)):
        source = WeightSource.parse(spec)
        entry = {"source": str(source)}
        if source.kind == "package" and source.ref in PACKAGED:
            info = PACKAGED[source.ref]
            entry.update({"file": info.relpath, "sha256": info.sha256, "description": info.description})
        out[part] = entry
    return out
