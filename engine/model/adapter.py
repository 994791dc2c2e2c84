"""Adapter: stack k encoder frames and project them into the LLM's embedding space (SLAM-ASR).

The adapter can also be read as a CTC model over the LLM's own vocabulary:
each output position is scored against every token embedding by cosine
similarity (plus a learned blank vector). Training that token CTC first pulls
the audio embeddings onto the embeddings of the words being said, in order,
before the (much slower) LLM cross-entropy stage starts; LegoSLM (Ma et al.,
2025, arXiv 2505.11352) builds on the same idea of CTC posteriors over the
LLM vocabulary. From a random adapter the LLM stage alone sat for hundreds of
CPU steps on the plateau where the LLM writes fluent text that ignores the
audio.
"""

from __future__ import annotations

import math

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
        self.blank = nn.Parameter(torch.randn(llm_dim) * 0.02)  # the token CTC's blank "embedding"
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))  # cosine logits · exp(log_scale)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C) frames -> (B, ceil(T/k), D) embeddings and their lengths (B,)."""
        batch, n_frames, dim = frames.shape
        pad = (-n_frames) % self.stack
        if pad:
            frames = torch.nn.functional.pad(frames, (0, 0, 0, pad))  # zero frames at the end
        stacked = frames.reshape(batch, (n_frames + pad) // self.stack, dim * self.stack)  # (B, T/k, k·C)
        out_lengths = (lengths + self.stack - 1) // self.stack
        return self.proj(stacked.to(self.proj[0].weight.dtype)), out_lengths

    def token_log_probs(self, embeds: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Token-CTC log-probabilities (B, N, 1+V): index 0 is blank, 1+i is row i of table (V, D)."""
        queries, keys = self.token_logit_parts(embeds, table)
        return (queries @ keys.T).log_softmax(dim=-1)  # (B, N, 1+V)

    def token_logit_parts(self, embeds: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The token CTC's logits as a product: scaled unit embeddings (…, N, D) @ unit label rows (1+V, D).T."""
        candidates = torch.cat([self.blank[None].to(table.dtype), table])  # (1+V, D)
        keys = nn.functional.normalize(candidates.float(), dim=-1)
        return self.log_scale.exp() * nn.functional.normalize(embeds.float(), dim=-1), keys
