"""SSL: BEST-RQ masked prediction (Chiu et al. 2022, arXiv 2202.01855), the open form of Seed-ASR's LUISE.

The targets come from a frozen random-projection quantizer: each utterance's log-mel frames are
normalised, stacked to the encoder's 50 Hz rate, projected by a frozen random matrix and matched
to the nearest entry of a frozen random codebook. The encoder sees the same log-mels with random
spans replaced by noise, and a linear softmax head on its output learns to predict the codebook
index at every masked position. Nothing in the quantizer learns, so the targets cannot collapse
and cost one small matrix product.

The encoder is the engine's WhisperEncoder, fed as in inference (the engine's log-mel front end,
30 s windows, output trimmed to the real length). The run folder gets ``encoder.safetensors`` (a
WhisperEncoder state dict, its dims in the metadata) and ``encoder.json``; an SFT run starts from
it with ``encoder_init: RUN/encoder.safetensors``.

    python -m training ssl --config training/configs/ssl-default.yaml
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.audio import load_audio
from engine.model.checkpoint import build_whisper_encoder
from engine.model.config import EncoderConfig, WhisperDims, dataclass_from_dict
from engine.model.encoder import CHUNK_SECONDS, ENCODER_STRIDE, N_MEL_FRAMES, Features, LogMelFrontend
from engine.model.tiny import default_config, large_config, tiny_config
from training.data.manifest import Utterance, read_manifest
from training.recipes.sft import warmup_cosine

WHISPER_TINY_EN = WhisperDims(d_model=384, layers=4, heads=6, ffn_dim=1536, n_mels=80)  # the packaged encoder's shape
WHISPER_LARGE_V3 = WhisperDims(d_model=1280, layers=32, heads=20, ffn_dim=5120, n_mels=128)  # openai/whisper-large-v3's
ENCODER_FILE = "encoder.safetensors"  # the run's product: a WhisperEncoder state dict
ENCODER_INFO_FILE = "encoder.json"
WEIGHTS_FILE = "ssl.safetensors"  # in last/: encoder, prediction head and quantizer
STATE_FILE = "training_state.pt"


@dataclass(frozen=True)
class SSLConfig:
    model: str = "default"  # encoder architecture: "tiny" (engine/model/tiny.py), "default" (Whisper tiny.en), "large" (large-v3)
    init: str = "random"  # or "pretrained": continue Whisper's own weights (tiny.en packaged; large-v3 from the hub)
    train_manifests: tuple[str, ...] = ()  # JSONL; audio-only lines are enough, a transcript is ignored
    out_dir: str = "runs/ssl"
    codebook_size: int = 1024
    codebook_dim: int = 16
    mask_prob: float = 0.01  # chance that a 100 Hz input frame starts a masked span (paper: 0.01)
    mask_span_frames: int = 40  # span length in 100 Hz frames: 400 ms, as in the paper
    noise_std: float = 0.1  # masked input frames become N(0, noise_std²) noise
    steps: int = 10000  # optimizer steps
    batch_size: int = 8  # utterances per micro-batch (per process)
    grad_accum: int = 1
    lr: float = 5e-4
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05  # cosine decays to lr·min_lr_ratio
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    bf16: bool = False
    num_workers: int = 0  # processes that load audio and compute log-mels ahead of the model
    log_every: int = 10
    save_every: int = 500
    max_duration_s: float = 30.0  # longer utterances are skipped (the encoder sees one 30 s window)
    seed: int = 0  # also seeds the quantizer: the same seed gives the same targets

    def __post_init__(self) -> None:
        if self.model not in ("tiny", "default", "large"):
            raise ValueError(f"model must be 'tiny', 'default' or 'large', got {self.model!r}")
        if self.init not in ("random", "pretrained"):
            raise ValueError(f"init must be 'random' or 'pretrained', got {self.init!r}")
        if self.init == "pretrained" and self.model == "tiny":
            raise ValueError("init: pretrained continues Whisper's own weights: use it with model: default or large")
        if not self.train_manifests:
            raise ValueError("train_manifests is empty: list at least one JSONL manifest")
        for name in ("steps", "batch_size", "grad_accum", "log_every", "save_every", "codebook_dim", "mask_span_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size must be ≥ 2, got {self.codebook_size}")
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"mask_prob must be between 0 and 1, got {self.mask_prob}")
        if self.noise_std < 0 or self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError("noise_std, warmup_steps and num_workers must be ≥ 0")
        if not 0 < self.max_duration_s <= CHUNK_SECONDS:
            raise ValueError(f"max_duration_s must be in (0, {CHUNK_SECONDS}], got {self.max_duration_s}")

    def encoder_config(self) -> EncoderConfig:
        if self.model == "tiny":
            return tiny_config().encoder
        if self.init == "pretrained":
            return (large_config() if self.model == "large" else default_config()).encoder
        return EncoderConfig(source="random", random_dims=WHISPER_LARGE_V3 if self.model == "large" else WHISPER_TINY_EN)


# ------------------------------------------------------------------------------------- targets
class RandomProjectionQuantizer(nn.Module):
    """Frozen random projection + frozen random codebook; both are buffers, never parameters."""

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int, seed: int):
        super().__init__()
        # Its own generator: the same seed gives the same quantizer whatever else drew random numbers.
        generator = torch.Generator().manual_seed(seed)
        xavier_std = math.sqrt(2.0 / (input_dim + codebook_dim))  # Xavier-normal, as in the paper
        projection = torch.randn(input_dim, codebook_dim, generator=generator) * xavier_std
        codebook = nn.functional.normalize(torch.randn(codebook_size, codebook_dim, generator=generator), dim=-1)
        self.register_buffer("projection", projection)  # (D_in, d)
        self.register_buffer("codebook", codebook)  # (K, d), unit rows

    @property
    def codebook_size(self) -> int:
        return self.codebook.shape[0]

    @torch.no_grad()
    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        """Codebook index (B, T) of each stacked frame (B, T, D_in)."""
        projected = nn.functional.normalize(stacked.float() @ self.projection, dim=-1)  # (B, T, d)
        # Between unit vectors the nearest (l2) entry is the one with the largest dot product.
        return (projected @ self.codebook.T).argmax(dim=-1)  # (B, T)


def normalise_frames(mel: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit variance per utterance and mel bin over its real frames; padding becomes 0.

    Per utterance, so no pass over the data set is needed; BEST-RQ needs normalised inputs, or the
    random projection maps most frames to a few codes.
    """
    real = (torch.arange(mel.shape[-1]) < mel_lengths[:, None]).to(mel.dtype)[:, None, :]  # (B, 1, F)
    count = mel_lengths.to(mel.dtype)[:, None, None]  # (B, 1, 1)
    mean = (mel * real).sum(dim=-1, keepdim=True) / count  # (B, M, 1)
    var = (((mel - mean) * real) ** 2).sum(dim=-1, keepdim=True) / count
    return (mel - mean) / torch.sqrt(var + 1e-5) * real  # (B, M, F)


def stack_frames(mel: torch.Tensor, stack: int = ENCODER_STRIDE) -> torch.Tensor:
    """(B, M, F) log-mels at 100 Hz -> (B, F // stack, stack·M): frames side by side at the encoder's rate."""
    batch, n_mels, frames = mel.shape
    return mel.transpose(1, 2).reshape(batch, frames // stack, stack * n_mels)


def span_mask(
    mel_lengths: torch.Tensor, n_frames: int, start_prob: float, span_frames: int, generator: torch.Generator
) -> torch.Tensor:
    """(B, n_frames) bool: each real frame starts a span of ``span_frames`` with probability ``start_prob``.

    Spans may overlap (they merge) and stop at the utterance's end; padding is never masked.
    """
    real = torch.arange(n_frames)[None, :] < mel_lengths[:, None]  # (B, F)
    starts = (torch.rand(real.shape, generator=generator) < start_prob) & real  # (B, F)
    # Frame t is masked when a span started in (t - span_frames, t]: a difference of running counts.
    counts = torch.cumsum(starts.int(), dim=1)  # (B, F)
    earlier = nn.functional.pad(counts, (span_frames, 0))[:, :n_frames]  # counts[t - span_frames], 0 before the start
    return (counts > earlier) & real


def encoder_lengths(mel_lengths: torch.Tensor) -> torch.Tensor:
    """Encoder output frames (50 Hz) of each input, as engine/model/encoder.py trims them."""
    return torch.clamp((mel_lengths + ENCODER_STRIDE - 1) // ENCODER_STRIDE, min=1, max=N_MEL_FRAMES // ENCODER_STRIDE)


@dataclass(frozen=True)
class SSLBatch:
    mel: torch.Tensor  # (B, M, 3000) encoder input: log-mels with the masked frames replaced by noise
    mel_lengths: torch.Tensor  # (B,) real frames
    frame_mask: torch.Tensor  # (B, 3000) bool: masked input frames
    targets: torch.Tensor  # (B, T) codebook index per 50 Hz output position (T: the longest utterance)
    scored: torch.Tensor  # (B, T) bool: masked output positions inside their utterance

    def to(self, device) -> SSLBatch:
        return SSLBatch(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def make_batch(
    quantizer: RandomProjectionQuantizer, features: Features, config: SSLConfig, generator: torch.Generator
) -> SSLBatch:
    """Targets from the clean log-mels, then span masking with noise on the encoder's input."""
    mel, mel_lengths = features.mel.float(), features.mel_lengths  # (B, M, 3000), (B,)
    out_lengths = encoder_lengths(mel_lengths)  # (B,)
    frames = int(out_lengths.max())
    targets = quantizer(stack_frames(normalise_frames(mel, mel_lengths)))[:, :frames]  # (B, T)
    frame_mask = span_mask(mel_lengths, mel.shape[-1], config.mask_prob, config.mask_span_frames, generator)  # (B, 3000)
    noise = torch.randn(mel.shape, generator=generator) * config.noise_std
    masked_mel = torch.where(frame_mask[:, None, :], noise, mel)
    # An output position sees two input frames; it is scored if either of them was masked.
    out_mask = frame_mask.view(mel.shape[0], -1, ENCODER_STRIDE).any(dim=-1)[:, :frames]  # (B, T)
    inside = torch.arange(frames)[None, :] < out_lengths[:, None]
    return SSLBatch(masked_mel, mel_lengths, frame_mask, targets, out_mask & inside)


class MaskedBatches(torch.utils.data.Dataset):
    """Micro-batch ``step·grad_accum + micro``: its utterances, masks and noise follow from (seed, index)
    alone, so a resumed run continues identically and workers may build batches ahead.

    One global batch of ``batch_size × processes`` is drawn and each process takes every N-th
    utterance of it, as in SFT.
    """

    def __init__(
        self,
        utterances: list[Utterance],
        quantizer: RandomProjectionQuantizer,
        n_mels: int,
        config: SSLConfig,
        process: int = 0,
        processes: int = 1,
    ):
        self.utterances = utterances
        self.quantizer = copy.deepcopy(quantizer).cpu()  # a CPU copy: the model's moves to the accelerator
        self.frontend = LogMelFrontend(n_mels)
        self.config = config
        self.process, self.processes = process, processes

    def __len__(self) -> int:
        return self.config.steps * self.config.grad_accum

    def __getitem__(self, index: int) -> SSLBatch:
        config = self.config
        step, micro = divmod(index, config.grad_accum)
        rng = random.Random(f"{config.seed}/{step}/{micro}")
        chosen = rng.sample(self.utterances, min(config.batch_size * self.processes, len(self.utterances)))
        chosen = chosen[self.process :: self.processes]
        generator = torch.Generator().manual_seed(
            random.Random(f"{config.seed}/{step}/{micro}/{self.process}/mask").getrandbits(63)
        )
        return make_batch(self.quantizer, self.frontend([load_audio(u.audio) for u in chosen]), config, generator)


# ------------------------------------------------------------------------------------- model and loss
class BestRQ(nn.Module):
    """A WhisperEncoder, a linear softmax head over the codebook, and the frozen quantizer."""

    def __init__(self, whisper: nn.Module, quantizer: RandomProjectionQuantizer):
        super().__init__()
        self.whisper = whisper
        self.quantizer = quantizer
        self.head = nn.Linear(whisper.config.d_model, quantizer.codebook_size)

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
        """Codebook logits (B, T, K) for 30 s log-mel windows (B, M, 3000), trimmed to the longest input."""
        hidden = self.whisper(mel.to(self.whisper.conv1.weight.dtype)).last_hidden_state  # (B, 1500, C)
        return self.head(hidden[:, : int(encoder_lengths(mel_lengths).max())])  # (B, T, K)


@dataclass(frozen=True)
class MaskedPrediction:
    loss: torch.Tensor  # () cross-entropy averaged over the scored positions
    targets: torch.Tensor  # (N,) codebook indices at the scored positions
    predictions: torch.Tensor  # (N,) argmax of the head there


def masked_prediction_loss(logits: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor) -> MaskedPrediction:
    """Cross-entropy of logits (B, T, K) against targets (B, T) where ``scored`` (B, T) holds."""
    picked = logits[scored].float()  # (N, K)
    wanted = targets[scored]  # (N,)
    if wanted.numel() == 0:  # nothing masked in this batch: a zero loss that still reaches every parameter
        return MaskedPrediction(logits.sum() * 0.0, wanted, wanted)
    return MaskedPrediction(nn.functional.cross_entropy(picked, wanted), wanted, picked.argmax(dim=-1).detach())


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of a histogram: how many codebook entries are in effective use."""
    p = counts.double() / counts.sum().clamp(min=1)
    return float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))


# ------------------------------------------------------------------------------------- recipe
@dataclass
class SSLState:
    config: SSLConfig
    accelerator: object
    model: BestRQ
    wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    batches: MaskedBatches
    step: int = 0


def setup(config: SSLConfig) -> SSLState:
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="bf16" if config.bf16 else "no")
    torch.manual_seed(config.seed)
    whisper = build_whisper_encoder(config.encoder_config()).train()
    if whisper.config.max_source_positions != N_MEL_FRAMES // ENCODER_STRIDE:
        raise ValueError(f"the encoder has {whisper.config.max_source_positions} positions; the engine builds 30 s ones only")
    quantizer = RandomProjectionQuantizer(
        ENCODER_STRIDE * whisper.config.num_mel_bins, config.codebook_size, config.codebook_dim, config.seed
    )
    model = BestRQ(whisper, quantizer)
    train = [
        u for m in config.train_manifests for u in read_manifest(m, require_text=False) if u.duration_s <= config.max_duration_s
    ]
    if len(train) < accelerator.num_processes:
        raise ValueError(
            f"{len(train)} training utterances (≤ max_duration_s) for {accelerator.num_processes} processes: add data"
        )
    n_mels = whisper.config.num_mel_bins
    batches = MaskedBatches(train, quantizer, n_mels, config, accelerator.process_index, accelerator.num_processes)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(config.steps, config.warmup_steps, config.min_lr_ratio))
    wrapped, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    state = SSLState(config, accelerator, model, wrapped, optimizer, scheduler, batches)
    resume_if_saved(state)
    return state


def train(state: SSLState) -> SSLState:
    from tqdm import tqdm

    config, acc = state.config, state.accelerator
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = [p for p in state.model.parameters() if p.requires_grad]
    loader = torch.utils.data.DataLoader(
        state.batches,
        batch_size=None,  # each item is a whole micro-batch
        sampler=range(state.step * config.grad_accum, config.steps * config.grad_accum),
        num_workers=config.num_workers,
    )
    batches = iter(loader)
    bar = tqdm(total=config.steps, initial=state.step, desc="ssl", disable=not acc.is_main_process, dynamic_ncols=True)
    window = _Window(config.codebook_size)
    bar_loss = math.nan
    start_time = time.perf_counter()
    state.wrapped.train()
    while state.step < config.steps:
        for _ in range(config.grad_accum):
            batch = next(batches).to(acc.device)
            with acc.autocast():
                logits = state.wrapped(batch.mel, batch.mel_lengths)  # (B, T, K)
            result = masked_prediction_loss(logits, batch.targets, batch.scored)
            acc.backward(result.loss / config.grad_accum)
            window.add(result, batch)
            if result.targets.numel():
                bar_loss = result.loss.item()
        acc.clip_grad_norm_(params, config.max_grad_norm)
        state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{bar_loss:.3f}")
        finished = state.step == config.steps
        if state.step % config.log_every == 0 or finished:
            record = window.record() | {
                "step": state.step,
                "lr": state.scheduler.get_last_lr()[0],
                "elapsed_s": round(time.perf_counter() - start_time, 1),
            }
            window = _Window(config.codebook_size)
            if acc.is_main_process:
                with open(out / "metrics.jsonl", "a") as handle:
                    handle.write(json.dumps(record) + "\n")
        if state.step % config.save_every == 0 or finished:
            save(state, out / "last")
            if acc.is_main_process and (out / "metrics.jsonl").is_file():
                plot_metrics(out / "metrics.jsonl", out / "loss.png")
    bar.close()
    return state


class _Window:
    """Metrics summed over the steps between two log lines."""

    def __init__(self, codebook_size: int):
        self.loss_sum, self.correct, self.scored, self.real = 0.0, 0, 0, 0  # loss summed over scored positions
        self.code_counts = torch.zeros(codebook_size, dtype=torch.long)
        self.prediction_counts = torch.zeros(codebook_size, dtype=torch.long)

    def add(self, result: MaskedPrediction, batch: SSLBatch) -> None:
        scored = result.targets.numel()
        if scored:
            self.loss_sum += result.loss.item() * scored
        self.correct += int((result.predictions == result.targets).sum())
        self.scored += scored
        self.real += int(encoder_lengths(batch.mel_lengths).sum())
        size = self.code_counts.numel()
        self.code_counts += torch.bincount(result.targets.cpu(), minlength=size)
        self.prediction_counts += torch.bincount(result.predictions.cpu(), minlength=size)

    def record(self) -> dict:
        record = {"masked_fraction": self.scored / max(1, self.real)}  # of the real 50 Hz output positions
        if self.scored:  # a window of short clips may have nothing masked: no loss to report then
            record.update(
                loss=self.loss_sum / self.scored,  # per masked position
                accuracy=self.correct / self.scored,
                code_perplexity=perplexity(self.code_counts),  # codebook usage of the targets
                prediction_perplexity=perplexity(self.prediction_counts),
            )
        return record


def save(state: SSLState, directory: Path) -> None:
    """Write ``last/`` (weights with the quantizer, config, optimizer state) and the run's encoder, atomically."""
    from safetensors.torch import save_file

    acc = state.accelerator
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(_contiguous(state.model.state_dict()), partial / WEIGHTS_FILE)
    (partial / "config.json").write_text(json.dumps(dataclasses.asdict(state.config), indent=2) + "\n")
    torch.save(
        {"step": state.step, "optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict()},
        partial / STATE_FILE,
    )
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    write_encoder(state, directory.parent)


def write_encoder(state: SSLState, run_dir: Path) -> Path:
    """``encoder.safetensors`` (WhisperEncoder state dict; its dims in the metadata) and ``encoder.json``."""
    from safetensors.torch import save_file

    whisper = state.model.whisper
    dims = dims_of(whisper)
    path = run_dir / ENCODER_FILE
    partial = path.with_name(path.name + ".partial")
    save_file(_contiguous(whisper.state_dict()), partial, metadata={"random_dims": json.dumps(dataclasses.asdict(dims))})
    os.replace(partial, path)
    info = {
        "random_dims": dataclasses.asdict(dims),
        "started_from": state.config.encoder_config().source if state.config.init == "pretrained" else "random",
        "steps": state.step,
        "codebook": {"size": state.config.codebook_size, "dim": state.config.codebook_dim, "seed": state.config.seed},
        "use": f"SFT: encoder_init: {path}",
    }
    (run_dir / ENCODER_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return path


def dims_of(whisper: nn.Module) -> WhisperDims:
    c = whisper.config
    return WhisperDims(
        d_model=c.d_model,
        layers=c.encoder_layers,
        heads=c.encoder_attention_heads,
        ffn_dim=c.encoder_ffn_dim,
        n_mels=c.num_mel_bins,
    )


def encoder_dims(path: str | os.PathLike) -> WhisperDims:
    """The architecture of an SSL run's ``encoder.safetensors``, read from its metadata."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: pass the {ENCODER_FILE} that `python -m training ssl` wrote in its out_dir"
        )
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "random_dims" not in metadata:
        raise ValueError(f"{path} does not say its encoder dims: pass an {ENCODER_FILE} written by `python -m training ssl`")
    return dataclass_from_dict(WhisperDims, json.loads(metadata["random_dims"]), str(path))


def resume_if_saved(state: SSLState) -> None:
    from safetensors.torch import load_file

    last = Path(state.config.out_dir) / "last"
    if not (last / STATE_FILE).is_file():
        return
    weights = load_file(last / WEIGHTS_FILE)
    quantizer = state.model.quantizer
    for name in ("projection", "codebook"):
        saved = weights.get(f"quantizer.{name}")
        if saved is None or not torch.equal(saved, getattr(quantizer, name).cpu()):
            raise ValueError(
                f"{last} was trained with another quantizer (seed, codebook_size or codebook_dim): keep them, or set a new out_dir"
            )
    try:
        state.model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{last} does not fit this config's encoder (model or init changed?): {err}") from err
    # Our own file, written by save(); weights_only refuses anything but tensors and plain data.
    saved_state = torch.load(last / STATE_FILE, weights_only=True)
    state.optimizer.load_state_dict(saved_state["optimizer"])
    state.scheduler.load_state_dict(saved_state["scheduler"])
    state.step = int(saved_state["step"])
    if state.accelerator.is_main_process:
        print(f"ssl: resumed from {last} at step {state.step}")


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state.items()}


def plot_metrics(metrics: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r]
    steps = [r["step"] for r in rows]
    fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(steps, [r["loss"] for r in rows])
    loss_ax.set_xlabel("step")
    loss_ax.set_title("masked-prediction loss")
    accuracy_ax.plot(steps, [100 * r["accuracy"] for r in rows], label="masked accuracy %")
    accuracy_ax.plot(steps, [r["code_perplexity"] for r in rows], label="codebook perplexity")
    accuracy_ax.set_xlabel("step")
    accuracy_ax.legend()
    accuracy_ax.set_title("accuracy and codebook usage")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
