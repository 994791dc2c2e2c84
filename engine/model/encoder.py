"""Speech encoder: log-mel features -> Whisper encoder -> frames, plus a CTC head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
HOP_SAMPLES = 160  # 10 ms mel hop
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # 480000 samples in a 30 s window
N_MEL_FRAMES = N_SAMPLES // HOP_SAMPLES  # 3000 mel frames in 30 s
ENCODER_STRIDE = 2  # Whisper's second conv halves the frame rate: 100 Hz -> 50 Hz


def mel_frames_for(n_samples: int) -> int:
    return min(N_MEL_FRAMES, -(-n_samples // HOP_SAMPLES))


def encoder_frames_for(n_mel_frames: int) -> int:
    return -(-n_mel_frames // ENCODER_STRIDE)


TRIM_STEP_FRAMES = 100  # a trimmed window is a whole number of seconds: few distinct shapes


def trimmed_mel_frames(n_mel_frames: int, limit: int = N_MEL_FRAMES) -> int:
    """Mel frames a trimmed encoder window spans for ``n_mel_frames`` of audio."""
    return min(limit, max(TRIM_STEP_FRAMES, -(-n_mel_frames // TRIM_STEP_FRAMES) * TRIM_STEP_FRAMES))


@dataclass(frozen=True)
class Features:
    """A padded batch of log-mel features for ≤ 30 s chunks."""

    mel: torch.Tensor  # (B, n_mels, 3000); with LogMelFrontend(trimmed=True), the trimmed window's frames and a few more
    mel_lengths: torch.Tensor  # (B,) frames that hold real audio

    @property
    def duration_s(self) -> torch.Tensor:  # (B,)
        return self.mel_lengths.float() * HOP_SAMPLES / SAMPLE_RATE


class LogMelFrontend:
    """Whisper's log-mel front end, applied the same way in training and inference.

    Whisper was trained on 30 s windows, so every chunk is zero-padded to 30 s
    before the features are computed (a shorter window shifts the log-mel
    normalisation and gives worse encoder features); the real length is kept so
    the encoder output can be trimmed afterwards.

    ``trimmed`` (for an encoder with trimmed windows, which reads only the first
    trimmed_mel_frames) pads to that window plus N_FFT samples instead of 30 s. The
    features it returns are the 30 s window's first frames exactly: each STFT frame
    reads the same samples (zeros beyond the audio either way), and the
    normalisation's maximum never lies in the zero padding, whose log-mel is the floor.
    For a batch of 6 s chunks that is a fifth of the STFT work and memory.
    """

    N_FFT = 400  # Whisper's STFT window, 25 ms: the margin that keeps the last kept frame's samples the same

    def __init__(self, n_mels: int = 80, trimmed: bool = False):
        from transformers import WhisperFeatureExtractor

        self.extractor = WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=SAMPLE_RATE)
        self.trimmed = trimmed

    def __call__(self, chunks: list[np.ndarray]) -> Features:
        for chunk in chunks:
            if chunk.ndim != 1:
                raise ValueError(f"audio chunks must be mono 1-D arrays, got shape {chunk.shape}")
            if len(chunk) > N_SAMPLES:
                raise ValueError(f"audio chunks must be at most {CHUNK_SECONDS} s, got {len(chunk) / SAMPLE_RATE:.1f} s")
        lengths = torch.tensor([max(1, mel_frames_for(len(c))) for c in chunks], dtype=torch.long)
        padded_samples = N_SAMPLES
        if self.trimmed:
            padded_samples = min(N_SAMPLES, trimmed_mel_frames(int(lengths.max())) * HOP_SAMPLES + self.N_FFT)
        mel = self.extractor(
            [np.asarray(c, dtype=np.float32) for c in chunks],
            sampling_rate=SAMPLE_RATE,
            padding="max_length",
            max_length=padded_samples,
            return_tensors="pt",
        ).input_features  # (B, n_mels, 3000), or (B, n_mels, F ≥ the trimmed window)
        return Features(mel=mel, mel_lengths=lengths)


class SpeechEncoder(nn.Module):
    """Whisper encoder with a character CTC head on its output frames.

    ``trimmed`` runs the encoder on the batch's longest real audio only (rounded up to whole
    seconds) instead of the whole 30 s window; see ``EncoderConfig.window``.
    """

    def __init__(self, whisper: nn.Module, ctc_vocab_size: int, trimmed: bool = False, head_layers: int = 0, head_hidden: int = 384):
        super().__init__()
        self.whisper = whisper
        d_model = whisper.config.d_model
        # A linear head keeps the parameter names checkpoints saved before the convolutional head existed.
        self.ctc_head = ConvCTCHead(d_model, ctc_vocab_size, head_layers, head_hidden) if head_layers else nn.Linear(d_model, ctc_vocab_size)
        self.trimmed = trimmed

    @property
    def dim(self) -> int:
        return self.whisper.config.d_model

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return encoder frames (B, T, C) trimmed to the longest real input, and their lengths (B,)."""
        mel = mel.to(self.whisper.conv1.weight.dtype)
        if self.trimmed:
            hidden = self._run_trimmed(mel[..., : trimmed_mel_frames(int(mel_lengths.max()), mel.shape[-1])])
        else:
            hidden = self.whisper(mel).last_hidden_state  # (B, 1500, C)
        lengths = torch.clamp((mel_lengths + ENCODER_STRIDE - 1) // ENCODER_STRIDE, min=1, max=hidden.shape[1])
        return hidden[:, : int(lengths.max())], lengths

    def _run_trimmed(self, mel: torch.Tensor) -> torch.Tensor:
        """The Whisper encoder's layers on a window shorter than 30 s, with the first positions'
        embeddings (``WhisperEncoder.forward`` insists on the full 3000 mel frames)."""
        whisper = self.whisper
        hidden = nn.functional.gelu(whisper.conv1(mel))
        hidden = nn.functional.gelu(whisper.conv2(hidden)).permute(0, 2, 1)  # (B, T, C)
        hidden = hidden + whisper.embed_positions.weight[: hidden.shape[1]]
        hidden = nn.functional.dropout(hidden, p=whisper.config.dropout, training=self.training)
        for layer in whisper.layers:
            out = layer(hidden, None)
            hidden = out[0] if isinstance(out, tuple) else out  # transformers 4.x returns a tuple
        return whisper.layer_norm(hidden)

    def ctc_log_probs(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Character log-probabilities (B, T, V) of frames (B, T, C) whose first ``lengths`` (B,) are real."""
        if isinstance(self.ctc_head, ConvCTCHead):
            logits = self.ctc_head(hidden, lengths)
        else:
            logits = self.ctc_head(hidden)
        return torch.log_softmax(logits.float(), dim=-1)


class ConvCTCHead(nn.Module):
    """Residual convolution blocks under a linear layer: character logits from encoder frames.

    Each block is LayerNorm → Conv1d (kernel 5, ``hidden`` channels) → GELU → Conv1d (kernel 1) added
    back to its input; each frame sees two neighbours a side more per block. Frames past a row's length
    are zeroed before every convolution, as the convolution's own padding is, so a chunk gets the
    same logits alone or padded in a batch.
    """

    KERNEL = 5

    def __init__(self, dim: int, vocab_size: int, layers: int, hidden: int):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.expand = nn.ModuleList(nn.Conv1d(dim, hidden, self.KERNEL, padding=self.KERNEL // 2) for _ in range(layers))
        self.project = nn.ModuleList(nn.Conv1d(hidden, dim, 1) for _ in range(layers))
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden = hidden.to(self.out.weight.dtype)
        real = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths.to(hidden.device)[:, None])[..., None]
        for norm, expand, project in zip(self.norms, self.expand, self.project, strict=True):
            x = (norm(hidden) * real).transpose(1, 2)  # (B, C, T)
            hidden = hidden + project(nn.functional.gelu(expand(x))).transpose(1, 2)
        return self.out(hidden)  # (B, T, V)
