"""SFT: speech -> text (Seed-ASR / SLAM-ASR). The LLM stays frozen.

Trained: the adapter and the encoder's CTC head (+ LoRA on the LLM, + the
encoder itself, by config). Loss = LLM cross-entropy on the transcript tokens
+ λ·CTC on the encoder head + μ·token CTC of the adapter over the LLM's
vocabulary. The first ``align_steps`` steps skip the LLM and train only the
CTC terms: a cheap alignment of the audio embeddings to the token embeddings
(see engine/model/adapter.py) that gets the LLM stage off the plateau where it
ignores the audio. Built on accelerate, so one recipe runs on a CPU,
a GPU, or many (``accelerate launch -m training sft --config ...``).

With a frozen encoder, its outputs are computed once per utterance and cached
(training/features.py); every step then costs only the adapter and the LLM.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.model.acllm import AcLLM
from engine.model.checkpoint import build_model, load_checkpoint, save_checkpoint
from engine.model.config import AcLLMConfig, LoraConfig
from engine.model.runtime import Runtime
from engine.model.tiny import default_config, large_config, tiny_config
from engine.prompt import PromptContext
from training.data.manifest import Utterance, read_manifest

PRESETS = {"tiny": lambda: tiny_config(lora=True), "default": default_config, "large": large_config}
STATE_FILE = "training_state.pt"
# The prompt contexts of a training micro-batch, given the step: empty in SFT, sampled in context SFT.
ContextSampler = Callable[[int, list[Utterance]], list[PromptContext]]


@dataclass(frozen=True)
class SFTConfig:
    model: str = "default"  # architecture preset: "tiny" (random, for tests) or "default"
    init_from: str | None = None  # continue from this checkpoint folder instead of a fresh adapter
    # An SSL run's encoder.safetensors (python -m training ssl): the encoder gets its architecture and
    # weights instead of the preset's, and the checkpoints carry those weights.
    encoder_init: str | None = None
    lora: LoraConfig | None = None  # LoRA on the LLM (the tiny preset always has one)
    ctc_weight: float = 0.3
    token_ctc_weight: float = 0.0  # μ; needed for align_steps
    align_steps: int = 0  # steps before the LLM stage that train only the CTC terms (no LLM forward)
    align_batch_size: int = 32
    align_lr: float = 2e-3
    train_manifests: tuple[str, ...] = ()
    dev_manifests: tuple[str, ...] = ()
    out_dir: str = "runs/sft"
    cache_dir: str = "data/cache"
    steps: int = 1000  # optimizer steps
    batch_size: int = 8  # utterances per micro-batch (per process)
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # cosine decays to lr·min_lr_ratio
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    bf16: bool = False  # bf16 autocast (see README: slower than fp32 on CPUs without AMX/AVX512-BF16)
    log_every: int = 10
    save_every: int = 100
    eval_every: int = 0  # 0 = only at the end
    eval_utterances: int = 32  # per dev manifest
    max_duration_s: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in PRESETS:
            raise ValueError(f"model must be one of {', '.join(PRESETS)}, got {self.model!r}")
        if not self.train_manifests:
            raise ValueError("train_manifests is empty: list at least one JSONL manifest")
        for name in ("steps", "batch_size", "grad_accum", "log_every", "save_every", "align_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.align_steps < 0:
            raise ValueError(f"align_steps must be ≥ 0, got {self.align_steps}")
        if self.align_steps and not self.token_ctc_weight:
            raise ValueError("align_steps trains the token CTC: set token_ctc_weight > 0 too")
        if self.encoder_init and self.init_from:
            raise ValueError("init_from brings its own encoder: drop encoder_init, or start without init_from")

    @property
    def total_steps(self) -> int:
        return self.align_steps + self.steps

    def model_config(self) -> AcLLMConfig:
        config = PRESETS[self.model]()
        llm = config.llm if self.lora is None else dataclasses.replace(config.llm, lora=self.lora)
        encoder = config.encoder
        if self.encoder_init:
            from training.recipes.ssl import encoder_dims

            path = str(Path(self.encoder_init).resolve())
            encoder = dataclasses.replace(encoder, source="random", random_dims=encoder_dims(path), init_weights=path)
        return dataclasses.replace(
            config, encoder=encoder, llm=llm, ctc_weight=self.ctc_weight, token_ctc_weight=self.token_ctc_weight
        )


class FrameLoss(nn.Module):
    """The model's loss from cached encoder frames, as a module accelerate can wrap (DDP)."""

    def __init__(self, model: AcLLM):
        super().__init__()
        self.model = model

    def forward(self, frames, frame_lengths, inputs, ctc_targets, ctc_lengths, token_targets, use_llm=True):
        return self.model.loss_from_frames(frames, frame_lengths, inputs, ctc_targets, ctc_lengths, token_targets, use_llm)


@dataclass
class SFTState:
    config: SFTConfig
    accelerator: object
    model: AcLLM
    wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train: list[Utterance]
    dev: dict[str, list[Utterance]]
    frames: dict[str, torch.Tensor]  # utterance id -> (T, C) float16 encoder frames
    token_vocab: torch.Tensor  # (V',) sorted LLM token ids of the training transcripts (token CTC)
    step: int = 0
    best_wer: float = math.inf


def setup(config: SFTConfig) -> SFTState:
    from accelerate import Accelerator, DistributedDataParallelKwargs

    # Some trained parameters sit out some steps (the LLM's LoRA while aligning, the token-CTC blank
    # without token CTC): DDP must be told, or a multi-process run stops at its second step.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = Accelerator(mixed_precision="bf16" if config.bf16 else "no", kwargs_handlers=[ddp])
    torch.manual_seed(config.seed)
    runtime = Runtime(device=accelerator.device.type, quantization="fp32")
    if config.init_from:
        model = load_checkpoint(Path(config.init_from), runtime)
    else:
        model = build_model(config.model_config(), runtime, seed=config.seed)
    train, dev, frames = load_cached_data(config, model, accelerator)
    token_vocab = torch.tensor(sorted({i for u in train for i in model.prompt.target_ids(u.text)[:-1]}), dtype=torch.long)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(config))
    wrapped, optimizer, scheduler = accelerator.prepare(FrameLoss(model), optimizer, scheduler)
    state = SFTState(config, accelerator, model, wrapped, optimizer, scheduler, train, dev, frames, token_vocab)
    resume_if_saved(state)
    return state


def load_cached_data(
    config, model: AcLLM, accelerator
) -> tuple[list[Utterance], dict[str, list[Utterance]], dict[str, torch.Tensor]]:
    """Training utterances, dev sets by name, and every utterance's cached encoder frames (built if missing).

    ``config`` is any stage config with train_manifests, dev_manifests, max_duration_s,
    eval_utterances and cache_dir (SFT, MWER).
    """
    from training.features import build_encoder_cache, cache_key

    if model.config.encoder.trainable:
        raise ValueError("this recipe trains from cached encoder frames; a trainable encoder needs the audio path")
    # Each manifest is read once: its utterances feed both the encoder cache and training/eval.
    train_sets = {m: [u for u in read_manifest(m) if u.duration_s <= config.max_duration_s] for m in config.train_manifests}
    dev_sets = {m: read_manifest(m)[: config.eval_utterances] for m in config.dev_manifests}
    train = [u for utterances in train_sets.values() for u in utterances]
    if len(train) < accelerator.num_processes:
        n = accelerator.num_processes
        raise ValueError(f"{len(train)} training utterances (≤ max_duration_s) for {n} processes: add data or use fewer")
    dev = {Path(m).stem: utterances for m, utterances in dev_sets.items()}
    frames: dict[str, torch.Tensor] = {}
    for manifest, utterances in [*train_sets.items(), *dev_sets.items()]:
        folder = Path(config.cache_dir) / f"{Path(manifest).stem}-{cache_key(model, Path(manifest))}"
        with accelerator.main_process_first():
            cache = build_encoder_cache(model, utterances, folder, progress=accelerator.is_main_process)
        for shard in sorted(set(cache.index.values())):
            frames.update(cache.load_shard(shard))
    return train, dev, frames


def warmup_cosine(steps: int, warmup: int, min_ratio: float) -> Callable[[int], float]:
    """LR factor per step: linear warmup over ``warmup`` steps, then a cosine down to ``min_ratio`` at ``steps``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _warmup_cosine(config: SFTConfig):
    """LR factor per step: the alignment stage, then the LLM stage, each with its own warmup and cosine."""
    align = warmup_cosine(config.align_steps, min(config.warmup_steps, config.align_steps // 10 + 1), config.min_lr_ratio)
    llm = warmup_cosine(config.steps, config.warmup_steps, config.min_lr_ratio)

    def factor(step: int) -> float:
        if step < config.align_steps:
            return config.align_lr / config.lr * align(step)
        return llm(step - config.align_steps)

    return factor


def make_batch(state: SFTState, utterances: list[Utterance], contexts: list[PromptContext] | None = None, for_training: bool = True):
    """Pad cached frames and lay out prompt + transcript tokens for a list of utterances.

    Token-CTC targets exist only for training batches: dev transcripts may hold tokens the
    training vocabulary lacks.
    """
    model = state.model
    frames = [state.frames[u.id].float() for u in utterances]
    lengths = torch.tensor([f.shape[0] for f in frames], dtype=torch.long)
    padded = nn.utils.rnn.pad_sequence(frames, batch_first=True)  # (B, T, C)
    adapter_lengths = ((lengths + model.adapter.stack - 1) // model.adapter.stack).tolist()
    contexts = contexts or [PromptContext()] * len(utterances)
    prompts = [model.prompt.render(c) for c in contexts]
    inputs = model.prompt.assemble(prompts, adapter_lengths, [model.prompt.target_ids(u.text) for u in utterances])
    ctc_targets, ctc_lengths = model.ctc_batch([u.text for u in utterances])
    with_tokens = for_training and model.config.token_ctc_weight > 0
    token_targets = model.token_ctc_batch([u.text for u in utterances], state.token_vocab) if with_tokens else None
    return padded, lengths, inputs, ctc_targets, ctc_lengths, token_targets


def _sample(state: SFTState, step: int, micro: int) -> list[Utterance]:
    """The same utterances for the same (seed, step), so a resumed run continues identically.

    One global batch of ``batch_size × processes`` is drawn, and each process takes every N-th
    utterance of it: N processes with batch b train on what one process with batch N·b would.
    """
    acc = state.accelerator
    # The trailing "/0" is the seed string one process used before batches were global: its draws stay the same.
    rng = random.Random(f"{state.config.seed}/{step}/{micro}/0")
    size = state.config.align_batch_size if step < state.config.align_steps else state.config.batch_size
    batch = rng.sample(state.train, min(size * acc.num_processes, len(state.train)))
    return batch[acc.process_index :: acc.num_processes]


def train(state: SFTState, contexts: ContextSampler | None = None, eval_hotwords: bool = False) -> SFTState:
    """Run to ``total_steps``. ``contexts`` gives each training utterance its prompt context (default:
    empty); ``eval_hotwords`` adds a dev WER with each dev utterance's own hotwords in the prompt."""
    from tqdm import tqdm

    config, acc = state.config, state.accelerator
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = [p for p in state.model.parameters() if p.requires_grad]
    total = config.total_steps
    bar = tqdm(total=total, initial=state.step, desc="sft", disable=not acc.is_main_process, dynamic_ncols=True)
    window: list[dict] = []
    start_time = time.perf_counter()
    state.wrapped.train()
    while state.step < total:
        aligning = state.step < config.align_steps
        totals: dict[str, float] = {}
        for micro in range(config.grad_accum):
            utterances = _sample(state, state.step, micro)
            batch = make_batch(state, utterances, contexts(state.step, utterances) if contexts else None)
            with acc.autocast():
                result = state.wrapped(*batch, use_llm=not aligning)
            acc.backward(result.loss / config.grad_accum)
            for key in ("loss", "lm_loss", "ctc_loss", "token_ctc_loss"):
                value = getattr(result, key)
                if value is not None:
                    totals[key] = totals.get(key, 0.0) + value.item() / config.grad_accum
        acc.clip_grad_norm_(params, config.max_grad_norm)
        state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        window.append(totals)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in totals.items() if k != "loss"} | {"stage": "align" if aligning else "llm"})
        stage_end = state.step in (config.align_steps, total)
        if state.step % config.log_every == 0 or stage_end:
            keys = sorted({k for w in window for k in w})
            record = {k: sum(w[k] for w in window if k in w) / sum(k in w for w in window) for k in keys}
            record.update(step=state.step, lr=state.scheduler.get_last_lr()[0], elapsed_s=round(time.perf_counter() - start_time, 1))
            window = []
            if acc.is_main_process:
                with open(out / "metrics.jsonl", "a") as handle:
                    handle.write(json.dumps(record) + "\n")
        evaluate_now = config.eval_every and state.step % config.eval_every == 0
        if evaluate_now or stage_end:
            evaluate_dev(state, use_llm=state.step > config.align_steps, hotwords=eval_hotwords)
        if state.step % config.save_every == 0 or stage_end:
            save(state, out / "last", with_training_state=True)
            if acc.is_main_process and (out / "metrics.jsonl").is_file():  # none yet if save_every < log_every
                plot_metrics(out / "metrics.jsonl", out / "loss.png")
    bar.close()
    return state


def evaluate_dev(state: SFTState, use_llm: bool = True, hotwords: bool = False) -> None:
    """Dev WER of the LLM's transcripts (or, during alignment, of the adapter's token-CTC best path).

    With ``hotwords``, dev sets whose utterances carry hotwords are decoded a second time with
    them in the prompt (``dev_wer/NAME+hotwords``), and that WER counts towards the best checkpoint too.
    The best checkpoint is chosen only among LLM-stage evaluations.
    """
    from engine.decoding import DecodingOptions
    from training.evaluate import error_rates

    if not state.dev or not state.accelerator.is_main_process:
        return
    state.model.eval()
    record: dict = {"step": state.step}
    wers = []
    for name, utterances in state.dev.items():
        passes = [("", False)]  # (metric suffix, hotwords in the prompt)
        if use_llm and hotwords and any(u.hotwords for u in utterances):
            passes.append(("+hotwords", True))
        for suffix, given in passes:
            hyps = []
            for start in range(0, len(utterances), state.config.batch_size):
                chunk = utterances[start : start + state.config.batch_size]
                frames, lengths, *_ = make_batch(state, chunk, for_training=False)
                if use_llm:
                    contexts = [PromptContext(hotwords=u.hotwords if given else ()) for u in chunk]
                    hyps += [h.text for h in state.model.generate_from_frames(frames, lengths, contexts, DecodingOptions())]
                else:
                    hyps += state.model.token_ctc_hypotheses(frames, lengths)
            rates = error_rates([u.text for u in utterances], hyps)
            record[(f"dev_wer/{name}" if use_llm else f"dev_token_ctc_wer/{name}") + suffix] = round(rates.wer, 4)
            record[f"dev_example/{name}{suffix}"] = {"ref": utterances[0].text, "hyp": hyps[0]}
            wers.append(rates.wer)
    state.model.train()
    out = Path(state.config.out_dir)
    with open(out / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    mean_wer = sum(wers) / len(wers)
    if use_llm and mean_wer < state.best_wer:
        state.best_wer = mean_wer
        save(state, out / "best", with_training_state=False)


def save(state: SFTState, directory: Path, with_training_state: bool) -> None:
    """Write a loadable checkpoint (and the optimizer state to resume from) atomically."""
    acc = state.accelerator
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_checkpoint(state.model, partial)
    if with_training_state:
        torch.save(
            {
                "step": state.step,
                "best_wer": state.best_wer,
                "optimizer": state.optimizer.state_dict(),
                "scheduler": state.scheduler.state_dict(),
                "config": dataclasses.asdict(state.config),
            },
            partial / STATE_FILE,
        )
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)


def resume_if_saved(state: SFTState) -> None:
    from safetensors.torch import load_file

    last = Path(state.config.out_dir) / "last"
    if not (last / STATE_FILE).is_file():
        return
    # Our own file, written by save(); weights_only refuses anything but tensors and plain data.
    saved = torch.load(last / STATE_FILE, weights_only=True)
    state.model.load_trainable_state_dict(load_file(last / "trained.safetensors"))
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.step = int(saved["step"])
    state.best_wer = float(saved["best_wer"])
    if state.accelerator.is_main_process:
        print(f"resumed from {last} at step {state.step}")


def plot_metrics(metrics: Path, png: Path, keys: tuple[str, ...] = ("loss", "lm_loss", "ctc_loss", "token_ctc_loss")) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    losses = [r for r in rows if "loss" in r]
    evals = [r for r in rows if any(k.startswith(("dev_wer/", "dev_token_ctc_wer/")) for k in r)]
    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(10 if evals else 6, 4), squeeze=False)
    ax = axes[0][0]
    for key in keys:
        rows_with = [r for r in losses if key in r]
        if rows_with:
            ax.plot([r["step"] for r in rows_with], [r[key] for r in rows_with], label=key)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("training loss")
    if evals:
        ax = axes[0][1]
        for key in sorted({k for r in evals for k in r if k.startswith(("dev_wer/", "dev_token_ctc_wer/"))}):
            ax.plot([r["step"] for r in evals if key in r], [100 * r[key] for r in evals if key in r], marker="o", label=key[4:])
        ax.set_xlabel("step")
        ax.set_ylabel("WER %")
        ax.legend()
        ax.set_title("dev WER")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
