"""The dynamics network: F(noisy next latent, t | context latents, actions, context-noise level)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.layers import PositionalEmbedding, ResBlock, SelfAttention, group_norm


@dataclass
class DynamicsConfig:
    latent_channels: int = 8
    context: int = 4
    """K: context frames (latents) the next frame is predicted from."""
    num_actions: int = 6
    channels: tuple[int, ...] = (64, 128)
    """U-Net widths, one per resolution (16x16, then halved)."""
    blocks: int = 2
    """Residual blocks per resolution, on each side of the U."""
    attention: tuple[bool, ...] = (False, True)
    """Self-attention after the blocks of each resolution."""
    cond_dim: int = 256
    """Width of the conditioning vector (time, actions, context-noise level)."""


DYNAMICS_PRESETS: dict[str, DynamicsConfig] = {
    "tiny": DynamicsConfig(channels=(16, 32), blocks=1, attention=(False, False), cond_dim=32),
    "small": DynamicsConfig(channels=(64, 96), blocks=2, attention=(False, True), cond_dim=128),
    "base": DynamicsConfig(channels=(128, 256, 256), blocks=2, attention=(False, True, True), cond_dim=512),
}


class ActionEncoder(nn.Module):
    """K actions -> one vector, keeping their order (the last action matters most)."""

    def __init__(self, num_actions: int, context: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_actions, dim)
        self.proj = nn.Linear(context * dim, dim)

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embed(actions).flatten(1))  # (B, K) -> (B, K*dim) -> (B, dim)


class DynamicsNet(nn.Module):
    """U-Net over 16x16 latents. The noisy next latent and the K context latents are stacked on
    channels; time t, the actions and the context-noise level enter every block through FiLM.
    Knows nothing about noise schedules: worldgen.scm wraps it."""

    def __init__(self, cfg: DynamicsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, d = cfg.channels, cfg.cond_dim
        self.time_embed = PositionalEmbedding(d)
        self.noise_embed = PositionalEmbedding(d)
        self.actions = ActionEncoder(cfg.num_actions, cfg.context, d)
        self.cond = nn.Sequential(nn.Linear(3 * d, d), nn.SiLU(), nn.Linear(d, d))
        self.stem = nn.Conv2d((cfg.context + 1) * cfg.latent_channels, c[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        skips = []
        ch = c[0]
        for i, width in enumerate(c):
            level = nn.ModuleList()
            for _ in range(cfg.blocks):
                level.append(ResBlock(ch, width, d))
                ch = width
                skips.append(ch)
            if cfg.attention[i]:
                level.append(SelfAttention(ch))
            if i < len(c) - 1:
                level.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            self.down.append(level)
        middle = [ResBlock(ch, ch, d), SelfAttention(ch), ResBlock(ch, ch, d)] if cfg.attention[-1] else [ResBlock(ch, ch, d)]
        self.mid = nn.ModuleList(middle)
        for i, width in reversed(list(enumerate(c))):
            level = nn.ModuleList()
            for _ in range(cfg.blocks):
                level.append(ResBlock(ch + skips.pop(), width, d))
                ch = width
            if cfg.attention[i]:
                level.append(SelfAttention(ch))
            if i > 0:
                level.append(nn.Upsample(scale_factor=2, mode="nearest"))
            self.up.append(level)
        self.out_norm = group_norm(ch)
        self.out = nn.Conv2d(ch, cfg.latent_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, actions: torch.Tensor, noise_level: torch.Tensor
    ) -> torch.Tensor:
        """x: (B, C, H, W) noisy next latent (already divided by sigma_d); t: (B,) TrigFlow time;
        context: (B, K, C, H, W) latents; actions: (B, K) int64; noise_level: (B,). -> F (B, C, H, W)."""
        cond = torch.cat([self.time_embed(t), self.actions(actions), self.noise_embed(noise_level)], dim=1)
        cond = self.cond(cond)  # (B, d)
        h = self.stem(torch.cat([x, rearrange(context, "b k c h w -> b (k c) h w")], dim=1))  # (B, c0, H, W)
        skips = []
        for level in self.down:
            for layer in level:
                h = _apply(layer, h, cond)
                if isinstance(layer, ResBlock):
                    skips.append(h)
        for layer in self.mid:
            h = _apply(layer, h, cond)
        for level in self.up:
            for layer in level:
                if isinstance(layer, ResBlock):
                    h = torch.cat([h, skips.pop()], dim=1)
                h = _apply(layer, h, cond)
        return self.out(F.silu(self.out_norm(h)))  # (B, C, H, W)


def _apply(layer: nn.Module, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    return layer(h, cond) if isinstance(layer, ResBlock) else layer(h)
