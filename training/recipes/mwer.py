"""MWER: the reinforcement stage (Seed-ASR's RL stage; Prabhavalkar et al. 2018, arXiv 1712.01818).

Continues an SFT (or context-SFT) checkpoint. Each step decodes an N-best list per utterance
by beam search from the current model (no gradient), scores every hypothesis again with
teacher forcing (with gradient), and minimises the expected word errors over the list,
renormalised to it and relative to the list's mean error (training/losses.py), plus λ times
the cross-entropy of the reference transcript, which keeps the model anchored to the
references (Prabhavalkar et al. interpolate the same way). Errors on the utterance's hotwords
(its manifest ``hotwords``) count ``hotword_weight`` times (Seed-ASR's weighted WER).

The encoder cache, batches, dev evaluation, checkpoints and resume are SFT's
(training/recipes/sft.py); trained are the same parts as in SFT except the encoder's CTC
head, which this loss does not reach.

    python -m training mwer --config training/configs/mwer-default.yaml
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.decoding import DecodingOptions
from engine.model.acllm import AcLLM, Hypothesis
from engine.model.checkpoint import load_checkpoint
from engine.model.runtime import Runtime
from engine.prompt import PromptContext
from training.data.manifest import Utterance
from training.evaluate import normalize
from training.losses import mwer_loss, weighted_word_errors
from training.recipes import sft

PLOTTED = ("expected_errors", "nbest_wer", "lm_loss")  # the loss itself can be negative (baseline subtracted)


@dataclass(frozen=True)
class MWERConfig:
    init_from: str = ""  # required: the checkpoint folder SFT wrote, e.g. runs/sft-default/best
    train_manifests: tuple[str, ...] = ()
    dev_manifests: tuple[str, ...] = ()
    out_dir: str = "runs/mwer"
    cache_dir: str = "data/cache"
    steps: int = 200  # optimizer steps
    batch_size: int = 4  # utterances per step (per process); each brings n_best hypotheses
    n_best: int = 4  # hypotheses per utterance the expectation runs over
    beam_size: int = 4  # ≥ n_best; the N-best are the top n_best of this beam
    mwer_weight: float = 1.0
    ce_weight: float = 0.1  # λ: + λ·(token-mean cross-entropy of the reference)
    hotword_weight: float = 2.0  # a hotword word's substitution or deletion counts this many errors (Seed-ASR gives no value)
    # λ of the token-CTC fusion the N-best are decoded with (DecodingOptions.ctc_weight). The engine decodes
    # with it, so its errors are the ones worth training away; 0 = beams of the LLM's own scores.
    ctc_weight: float = DecodingOptions.ctc_weight
    # ~10x below SFT's: a fresh AdamW's first steps move every weight by ~lr, and at the tiny preset's SFT lr
    # (3e-3) one or two steps took the expected errors from 0.7 to over 2 per utterance, CE alone as well.
    lr: float = 1e-4
    warmup_steps: int = 10  # linear warmup, then constant
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    bf16: bool = False
    log_every: int = 5
    save_every: int = 50
    eval_every: int = 0  # 0 = only before the first step and at the end
    eval_utterances: int = 32  # per dev manifest
    max_duration_s: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.init_from:
            raise ValueError(
                "init_from is empty: MWER continues an SFT run; set it to its checkpoint folder, e.g. runs/sft-default/best"
            )
        if not self.train_manifests:
            raise ValueError("train_manifests is empty: list at least one JSONL manifest")
        for name in ("steps", "batch_size", "log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.n_best < 2:
            raise ValueError(f"n_best must be ≥ 2 (the loss compares hypotheses of one utterance), got {self.n_best}")
        for name in ("mwer_weight", "ce_weight", "hotword_weight", "warmup_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.mwer_weight == 0 and self.ce_weight == 0:
            raise ValueError("mwer_weight and ce_weight are both 0: nothing to train")
        self.decoding()  # beam_size against n_best is checked there, with the engine's other options

    def decoding(self) -> DecodingOptions:
        """How the N-best are decoded: beam search with the engine's token-CTC fusion (``ctc_weight``), no
        hotword boost and no context-free stream (α 1). The loss then re-scores them with the LLM alone,
        P(y | speech, context), the part of the decoder it trains."""
        return DecodingOptions(beam_size=self.beam_size, n_best=self.n_best, hotword_boost=0.0, context_weight=1.0, ctc_weight=self.ctc_weight)


class SequenceScorer(nn.Module):
    """``AcLLM.sequence_log_probs`` as a module accelerate can wrap (DDP)."""

    def __init__(self, model: AcLLM):
        super().__init__()
        self.model = model

    def forward(self, frames, frame_lengths, contexts, target_ids):
        return self.model.sequence_log_probs(frames, frame_lengths, contexts, target_ids)


@dataclass
class MWERState:
    """The fields sft.make_batch, sft.evaluate_dev, sft.save and sft.resume_if_saved read, plus the scorer."""

    config: MWERConfig
    accelerator: object
    model: AcLLM
    scorer: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train: list[Utterance]
    dev: dict[str, list[Utterance]]
    frames: dict[str, torch.Tensor]  # utterance id -> (T, C) float16 encoder frames
    step: int = 0
    best_wer: float = math.inf


def setup(config: MWERConfig) -> MWERState:
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="bf16" if config.bf16 else "no")
    torch.manual_seed(config.seed)
    model = load_checkpoint(Path(config.init_from), Runtime(device=accelerator.device.type, quantization="fp32"))
    # The CTC head reads the (cached) encoder frames only: no gradient reaches it here.
    model.encoder.ctc_head.requires_grad_(False)
    train, dev, frames = sft.load_cached_data(config, model, accelerator)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warmup = config.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
    scorer, optimizer, scheduler = accelerator.prepare(SequenceScorer(model), optimizer, scheduler)
    state = MWERState(config, accelerator, model, scorer, optimizer, scheduler, train, dev, frames)
    sft.resume_if_saved(state)
    return state


def nbest(state: MWERState, utterances: list[Utterance]) -> tuple[torch.Tensor, torch.Tensor, list[Hypothesis], torch.Tensor]:
    """Padded frames (B, T, C) and lengths (B,), the N-best by beam search (B·N, input-major), and their
    weighted word errors (B, N)."""
    config = state.config
    frames, lengths, *_ = sft.make_batch(state, utterances, for_training=False)  # (B, T, C), (B,)
    was_training = state.model.training
    state.model.eval()
    hyps = state.model.generate_from_frames(frames, lengths, [PromptContext()] * len(utterances), config.decoding())
    state.model.train(was_training)
    return frames, lengths, hyps, _word_errors(utterances, hyps, config.hotword_weight)


def _word_errors(utterances: list[Utterance], hyps: list[Hypothesis], hotword_weight: float) -> torch.Tensor:
    """(B, N) word errors of input-major N-best lists; weight 1 gives the plain counts."""
    n = len(hyps) // len(utterances)
    rows = [
        [weighted_word_errors(u.text, h.text, u.hotwords, hotword_weight) for h in hyps[b * n : (b + 1) * n]]
        for b, u in enumerate(utterances)
    ]
    return torch.tensor(rows, dtype=torch.float32)


def score(state: MWERState, frames: torch.Tensor, lengths: torch.Tensor, hyps: list[Hypothesis], utterances: list[Utterance]):
    """Sequence log-probs of the N-best (B, N) and of the references (B,), in one teacher-forced pass."""
    batch, n = len(utterances), state.config.n_best
    eos = state.model.prompt.eos_id
    targets = [[*h.token_ids, eos] for h in hyps] + [state.model.prompt.target_ids(u.text) for u in utterances]
    rows = torch.cat([torch.arange(batch).repeat_interleave(n), torch.arange(batch)])  # audio row of each sequence
    log_probs = state.scorer(frames[rows], lengths[rows], [PromptContext()] * len(targets), targets)  # (B·N + B,)
    reference_tokens = sum(len(t) for t in targets[batch * n :])
    return log_probs[: batch * n].view(batch, n), log_probs[batch * n :], reference_tokens


@torch.no_grad()
def expected_word_errors(state: MWERState, utterances: list[Utterance]) -> float:
    """The MWER objective, measured: mean over utterances of Σ_i P_i·err_i over a fresh N-best (eval mode)."""
    frames, lengths, hyps, errors = nbest(state, utterances)
    was_training = state.model.training
    state.model.eval()
    log_probs, _, _ = score(state, frames, lengths, hyps, utterances)
    state.model.train(was_training)
    return float((torch.softmax(log_probs.float(), dim=1).cpu() * errors).sum(dim=1).mean())


def mwer_step(state: MWERState, utterances: list[Utterance]) -> dict[str, float]:
    """Loss and gradients for one batch (the caller steps the optimizer); returns what to log."""
    config, acc = state.config, state.accelerator
    frames, lengths, hyps, errors = nbest(state, utterances)
    state.scorer.train()
    with acc.autocast():
        log_probs, reference_log_probs, reference_tokens = score(state, frames, lengths, hyps, utterances)
    errors = errors.to(log_probs.device)
    mwer = mwer_loss(log_probs, errors, torch.ones_like(errors, dtype=torch.bool))
    ce = -reference_log_probs.sum() / reference_tokens
    loss = config.mwer_weight * mwer + config.ce_weight * ce
    acc.backward(loss)
    plain = _word_errors(utterances, hyps, 1.0)  # (B, N) unweighted, for WERs
    reference_words = max(1, sum(len(normalize(u.text).split()) for u in utterances))
    probs = torch.softmax(log_probs.detach().float(), dim=1)  # (B, N)
    return {
        "loss": loss.item(),
        "mwer_loss": mwer.item(),
        "lm_loss": ce.item(),
        "expected_errors": float((probs * errors).sum(dim=1).mean()),  # the objective (weighted), per utterance
        "nbest_wer": float(plain.mean(dim=1).sum()) / reference_words,  # mean WER over the N-best
        "top_wer": float(plain[:, 0].sum()) / reference_words,  # WER of the beam's best
    }


def _sample(state: MWERState) -> list[Utterance]:
    """This process's share of the step's global batch; the same for the same (seed, step), so resuming continues identically."""
    acc, config = state.accelerator, state.config
    rng = random.Random(f"mwer/{config.seed}/{state.step}")
    batch = rng.sample(state.train, min(config.batch_size * acc.num_processes, len(state.train)))
    return batch[acc.process_index :: acc.num_processes]


def train(state: MWERState) -> MWERState:
    from tqdm import tqdm

    config, acc = state.config, state.accelerator
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = [p for p in state.model.parameters() if p.requires_grad]
    if state.step == 0:
        sft.evaluate_dev(state)  # the starting point's dev WER, so "best" never ends worse than it
    bar = tqdm(total=config.steps, initial=state.step, desc="mwer", disable=not acc.is_main_process, dynamic_ncols=True)
    window: list[dict[str, float]] = []
    start_time = time.perf_counter()
    while state.step < config.steps:
        logged = mwer_step(state, _sample(state))
        acc.clip_grad_norm_(params, config.max_grad_norm)
        state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        window.append(logged)
        bar.update(1)
        bar.set_postfix({k: f"{logged[k]:.3f}" for k in ("expected_errors", "nbest_wer", "lm_loss")})
        last_step = state.step == config.steps
        if state.step % config.log_every == 0 or last_step:
            record = {key: sum(w[key] for w in window) / len(window) for key in window[0]}
            record.update(
                step=state.step, lr=state.scheduler.get_last_lr()[0], elapsed_s=round(time.perf_counter() - start_time, 1)
            )
            window = []
            if acc.is_main_process:
                with open(out / "metrics.jsonl", "a") as handle:
                    handle.write(json.dumps(record) + "\n")
        if (config.eval_every and state.step % config.eval_every == 0) or last_step:
            sft.evaluate_dev(state)
        if state.step % config.save_every == 0 or last_step:
            save(state, out / "last", with_training_state=True)
            if acc.is_main_process:
                sft.plot_metrics(out / "metrics.jsonl", out / "loss.png", keys=PLOTTED)
    bar.close()
    return state


def save(state: MWERState, directory: Path, with_training_state: bool) -> None:
    sft.save(state, directory, with_training_state)
