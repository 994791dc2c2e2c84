"""Character CTC head: a convolutional head on the frozen encoder's frames, trained alone.

The character CTC spells what hotword retrieval and correction search for (engine/kws.py,
engine/correction.py) and what word timestamps are aligned to. A linear layer on Whisper tiny's
frames spells rare names poorly ("milq" for "Michael"), so this stage puts residual convolution
blocks under it (``EncoderConfig.ctc_head_layers``) and trains that head with CTC, everything else
of ``init_from`` frozen and kept, on cached encoder frames (training/features.py). Dev sets are
scored by the head's greedy text; the checkpoint with the lowest mean dev WER is ``best/``.

    python -m training char-ctc --config training/configs/char-ctc-default.yaml
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.model.acllm import AcLLM
from engine.model.encoder import ConvCTCHead
from engine.model.runtime import Runtime
from training.data.manifest import Utterance
from training.recipes import sft


@dataclass(frozen=True)
class CharCTCConfig:
    init_from: str | None = None  # the checkpoint whose encoder frames feed the head; all of it but the head is kept
    model: str = "default"  # the architecture preset when there is no init_from ("tiny" for tests)
    head_layers: int = 2
    head_hidden: int = 384
    dropout: float = 0.1  # on the frames the head reads
    time_mask: float = 0.1  # fraction of each training utterance's frames zeroed, in spans of ≤ 10 frames
    train_manifests: tuple[str, ...] = ()
    dev_manifests: tuple[str, ...] = ()
    out_dir: str = "runs/char-ctc"
    cache_dir: str = "data/cache"
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    log_every: int = 50
    save_every: int = 500
    eval_every: int = 500  # 0 = only at the end
    eval_utterances: int = 100  # per dev manifest
    max_duration_s: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in sft.PRESETS:
            raise ValueError(f"model must be one of {', '.join(sft.PRESETS)}, got {self.model!r}")
        if self.model != "tiny" and not self.init_from:
            raise ValueError("the CTC head is trained on a model's encoder frames: set init_from, e.g. resources/models/default")
        if not self.train_manifests:
            raise ValueError("train_manifests is empty: list at least one JSONL manifest")
        for name in ("head_layers", "head_hidden", "steps", "batch_size", "log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1 or not 0 <= self.time_mask < 1:
            raise ValueError(f"dropout and time_mask must be in [0, 1), got {self.dropout}, {self.time_mask}")


@dataclass
class CharCTCState:
    """What sft.save and sft.resume_if_saved need, under the same names."""

    config: CharCTCConfig
    accelerator: object
    model: AcLLM
    head: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train: list[Utterance]
    dev: dict[str, list[Utterance]]
    frames: dict[str, torch.Tensor]
    step: int = 0
    best_wer: float = math.inf


def setup(config: CharCTCConfig) -> CharCTCState:
    from accelerate import Accelerator

    from engine.model.checkpoint import build_model, load_checkpoint

    accelerator = Accelerator()
    torch.manual_seed(config.seed)
    runtime = Runtime(device=accelerator.device.type, quantization="fp32")
    if config.init_from:
        model = load_checkpoint(Path(config.init_from), runtime)
    else:
        model = build_model(sft.PRESETS[config.model](), runtime, seed=config.seed)
    use_conv_head(model, config.head_layers, config.head_hidden)
    train, dev, frames = sft.load_cached_data(config, model, accelerator)
    optimizer = torch.optim.AdamW(model.encoder.ctc_head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    factor = sft.warmup_cosine(config.steps, config.warmup_steps, config.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    head, optimizer, scheduler = accelerator.prepare(model.encoder.ctc_head, optimizer, scheduler)
    state = CharCTCState(config, accelerator, model, head, optimizer, scheduler, train, dev, frames)
    sft.resume_if_saved(state)
    return state


def use_conv_head(model: AcLLM, layers: int, hidden: int) -> None:
    """Give ``model`` a fresh convolutional character-CTC head (and say so in its config); freeze the rest."""
    encoder = dataclasses.replace(model.config.encoder, ctc_head_layers=layers, ctc_head_hidden=hidden)
    model.config = dataclasses.replace(model.config, encoder=encoder)
    model.requires_grad_(False)
    model.encoder.ctc_head = ConvCTCHead(model.encoder.dim, model.ctc.vocab_size, layers, hidden).to(model.device)


def _batch(state: CharCTCState, utterances: list[Utterance], rng: random.Random | None = None):
    """Padded frames (B, T, C), lengths, CTC targets and their lengths; ``rng`` masks spans of time."""
    frames = [state.frames[u.id].float() for u in utterances]
    if rng is not None and state.config.time_mask > 0:
        frames = [_time_masked(f, state.config.time_mask, rng) for f in frames]
    lengths = torch.tensor([f.shape[0] for f in frames], dtype=torch.long)
    padded = nn.utils.rnn.pad_sequence(frames, batch_first=True).to(state.model.device)
    targets, target_lengths = state.model.ctc_batch([u.text for u in utterances])
    return padded, lengths, targets, target_lengths


def _time_masked(frames: torch.Tensor, fraction: float, rng: random.Random) -> torch.Tensor:
    frames = frames.clone()
    n = frames.shape[0]
    masked = 0
    while masked < fraction * n:
        width = rng.randint(1, 10)
        start = rng.randrange(0, max(1, n - width))
        frames[start : start + width] = 0
        masked += width
    return frames


def train(state: CharCTCState) -> CharCTCState:
    from tqdm import tqdm

    config, acc = state.config, state.accelerator
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dropout = nn.Dropout(config.dropout)
    bar = tqdm(total=config.steps, initial=state.step, desc="char-ctc", disable=not acc.is_main_process, dynamic_ncols=True)
    window: list[float] = []
    start_time = time.perf_counter()
    state.head.train()
    while state.step < config.steps:
        rng = random.Random(f"{config.seed}/{state.step}/{acc.process_index}")
        utterances = rng.sample(state.train, min(config.batch_size, len(state.train)))
        frames, lengths, targets, target_lengths = _batch(state, utterances, rng)
        log_probs = torch.log_softmax(state.head(dropout(frames), lengths).float(), dim=-1)
        loss = nn.functional.ctc_loss(
            log_probs.transpose(0, 1), targets.to(frames.device), lengths, target_lengths, blank=0, zero_infinity=True
        )
        acc.backward(loss)
        acc.clip_grad_norm_(state.head.parameters(), config.max_grad_norm)
        state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        window.append(loss.item())
        bar.update(1)
        bar.set_postfix(ctc_loss=f"{loss.item():.3f}")
        last = state.step == config.steps
        if (state.step % config.log_every == 0 or last) and acc.is_main_process:
            record = {"step": state.step, "loss": sum(window) / len(window), "lr": state.scheduler.get_last_lr()[0]}
            record["elapsed_s"] = round(time.perf_counter() - start_time, 1)
            with open(out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            window = []
        if (config.eval_every and state.step % config.eval_every == 0) or last:
            evaluate_dev(state)
        if state.step % config.save_every == 0 or last:
            sft.save(state, out / "last", with_training_state=True)
            if acc.is_main_process and (out / "metrics.jsonl").is_file():
                sft.plot_metrics(out / "metrics.jsonl", out / "loss.png", keys=("loss",))
    bar.close()
    return state


@torch.inference_mode()
def evaluate_dev(state: CharCTCState) -> dict[str, float]:
    """Each dev set's WER and CER of the head's greedy text; saves ``best/`` on a new lowest mean WER."""
    from training.evaluate import error_rates

    if not state.dev or not state.accelerator.is_main_process:
        return {}
    state.head.eval()
    record: dict = {"step": state.step}
    wers = {}
    for name, utterances in state.dev.items():
        hyps = []
        for start in range(0, len(utterances), state.config.batch_size):
            frames, lengths, _, _ = _batch(state, utterances[start : start + state.config.batch_size])
            hyps += state.model.ctc_hypotheses(frames, lengths)
        rates = error_rates([u.text for u in utterances], hyps)
        record[f"dev_wer/{name}"] = wers[name] = round(rates.wer, 4)
        record[f"dev_cer/{name}"] = round(rates.cer, 4)
    state.head.train()
    with open(Path(state.config.out_dir) / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    mean = sum(wers.values()) / len(wers)
    if mean < state.best_wer:
        state.best_wer = mean
        sft.save(state, Path(state.config.out_dir) / "best", with_training_state=False)
    return wers


def save(state: CharCTCState, directory: Path, with_training_state: bool) -> None:
    sft.save(state, directory, with_training_state)
