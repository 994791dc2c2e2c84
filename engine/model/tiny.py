"""Tiny random models built in code, for fast tests and the `tiny` training preset."""

from __future__ import annotations

from engine.model.config import AcLLMConfig, AdapterConfig, EncoderConfig, LLMConfig, LoraConfig, TinyLMDims, WhisperDims

# A ChatML template, the same shape as SmolLM2's, so tiny and real models share prompts.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_LORA_TARGETS = ("q_proj", "v_proj", "o_proj", "up_proj", "down_proj")


def byte_tokenizer():
    """A byte-level tokenizer with no merges: 256 byte symbols plus ChatML specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for bytes
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_config(lora: bool = False, ctc_weight: float = 0.3) -> AcLLMConfig:
    """A random encoder and LLM of a few hundred thousand parameters."""
    return AcLLMConfig(
        encoder=EncoderConfig(source="random", random_dims=WhisperDims()),
        adapter=AdapterConfig(stack=5, hidden=64),
        llm=LLMConfig(
            source="random",
            random_dims=TinyLMDims(),
            # A random LLM only learns through LoRA on most of its projections.
            lora=LoraConfig(rank=8, alpha=32, dropout=0.0, target_modules=TINY_LORA_TARGETS) if lora else None,
        ),
        ctc_weight=ctc_weight,
        name="tiny-random",
    )


def default_config() -> AcLLMConfig:
    """The shipped architecture: Whisper tiny.en encoder + SmolLM2-135M-Instruct."""
    return AcLLMConfig(name="keyscribe-default")


def large_config() -> AcLLMConfig:
    """The `large` architecture for GPU training: Whisper large-v3 encoder + Qwen2.5-7B-Instruct (LoRA), from the hub.

    Needs network access on first use (hub weights) and a GPU; bench/gpu_footprint.py measures its footprint.
    """
    return AcLLMConfig(
        encoder=EncoderConfig(source="hub:openai/whisper-large-v3"),
        adapter=AdapterConfig(stack=5, hidden=4096),
        llm=LLMConfig(source="hub:Qwen/Qwen2.5-7B-Instruct", lora=LoraConfig(rank=16, alpha=32, dropout=0.05, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))),
        name="keyscribe-large",
    )
