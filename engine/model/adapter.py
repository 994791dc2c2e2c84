"""Adapter: stack k encoder frames and project them into the LLM's embedding space (SLAM-ASR)."""

from __future__ import annotations

import torch
from torch import nn


class FrameStackProjector(nn.Module):
    def __init__(self, encoder_dim: int, llm_dim: int, stack: int, hidden: int):
        super().__init__()
        self.stack = stack
        self.proj = nn.Sequential(
            nn.Linear(encoder_dim * stack, hidden),
            nn.ReLU(),
            nn.Linear(hidden, llm_dim),
        )

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C) frames -> (B, ceil(T/k), D) embeddings and their lengths (B,)."""
        batch, n_frames, dim = frames.shape
        pad = (-n_frames) % self.stack
        if pad:
            frames = torch.nn.functional.pad(frames, (0, 0, 0, pad))  # zero frames at the end
        stacked = frames.reshape(batch, (n_frames + pad) // self.stack, dim * self.stack)  # (B, T/k, k·C)
        out_lengths = (lengths + self.stack - 1) // self.stack
        return self.proj(stacked.to(self.proj[0].weight.dtype)), out_lengths
