"""Building blocks shared by the networks. All are forward-mode-AD friendly (torch.func.jvp):
GroupNorm, no BatchNorm, no dropout, attention written out rather than a fused kernel."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4) or 1, channels)


class PositionalEmbedding(nn.Module):
    """Sinusoidal features of a scalar in a known range.

    Frequencies run geometrically from 1 to `max_freq` (radians per unit), so a scalar in
    [0, pi/2] gets a few full turns at most: a smooth embedding, whose derivative stays small.
    Large-scale Fourier features, or log(sigma), make dF/dt explode (sCM, Sec. 4.1).
    """

    def __init__(self, dim: int, max_freq: float = 32.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = x.to(self.freqs.dtype)[:, None] * self.freqs[None]  # (B, dim/2)
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, dim)


class ResBlock(nn.Module):
    """Pre-norm residual block; with `cond_dim`, the conditioning vector scales and shifts the
    second normalisation (FiLM / AdaGN), zero-initialised so the block starts as identity."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int | None = None) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.film = nn.Linear(cond_dim, 2 * out_ch) if cond_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        h = self.norm2(h)
        if self.film is not None:
            scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)  # (B, out, 1, 1) each
            h = h * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, in plain matmuls (fused SDPA
    kernels have no forward-mode AD); QK-normalised, which keeps logits and their tangents tame."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.heads = heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        qkv = rearrange(self.qkv(self.norm(x)), "b (three nh d) h w -> three b nh d (h w)", three=3, nh=self.heads)
        q, k, v = F.normalize(qkv[0], dim=2), F.normalize(qkv[1], dim=2), qkv[2]  # (B, nh, d, N) each
        logits = torch.einsum("bhdn,bhdm->bhnm", q, k) * self.scale.exp()  # (B, nh, N, N)
        y = torch.einsum("bhnm,bhdm->bhdn", logits.softmax(dim=-1), v)  # (B, nh, d, N)
        return x + self.out(rearrange(y, "b nh d (h w) -> b (nh d) h w", h=h, w=w))
