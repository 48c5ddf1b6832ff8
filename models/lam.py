"""Latent action model (Genie, Sec. 2.2): a few discrete actions, learnt from frames alone.

The encoder sees the latents of frames t-K+1 .. t+1 and names the step with one of `codes`
vector-quantised codes; the decoder sees only frames t-K+1 .. t and that code, and must draw
frame t+1. The code is all the decoder learns of t+1 beyond the past, so a code that carries
nothing leaves the decoder blind to the move; and a code of 3 bits cannot smuggle a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import ResBlock, group_norm


@dataclass
class LAMConfig:
    latent_channels: int = 8
    latent_size: int = 16
    context: int = 4
    """Past frames both halves see (K)."""
    codes: int = 8
    code_dim: int = 32
    channels: int = 64
    blocks: int = 3
    """Residual blocks of the decoder, each conditioned on the code."""
    commitment: float = 0.02


LAM_PRESETS: dict[str, LAMConfig] = {
    "tiny": LAMConfig(code_dim=16, channels=16, blocks=1),
    "small": LAMConfig(channels=64, blocks=3),
    "base": LAMConfig(channels=128, blocks=4),
}


class LatentActionModel(nn.Module):
    def __init__(self, cfg: LAMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, lc = cfg.channels, cfg.latent_channels
        # Encoder: every frame of the window, and the last change, which is where the move shows.
        self.enc = nn.Sequential(
            nn.Conv2d((cfg.context + 2) * lc, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), group_norm(c), nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), group_norm(2 * c), nn.SiLU(),
        )
        side = -(-cfg.latent_size // 4)
        self.enc_out = nn.Linear(2 * c * side * side, cfg.code_dim)  # flattened: where a change happened matters
        self.codebook = nn.Parameter(F.normalize(torch.randn(cfg.codes, cfg.code_dim), dim=1))
        self.register_buffer("usage", torch.full((cfg.codes,), 1.0 / cfg.codes))
        """Running share of steps given each code (training): a code that no step picks is dead."""
        # Decoder: the past, and the code in every block.
        self.stem = nn.Conv2d(cfg.context * lc + c, c, 3, padding=1)
        self.code_embed = nn.Sequential(nn.Linear(cfg.code_dim, c), nn.SiLU(), nn.Linear(c, c))
        self.blocks = nn.ModuleList([ResBlock(c, c, c) for _ in range(cfg.blocks)])
        self.out = nn.Sequential(group_norm(c), nn.SiLU(), nn.Conv2d(c, lc, 3, padding=1))

    def encode(self, window: torch.Tensor) -> torch.Tensor:
        """window (B, K + 1, C, h, w) -> unit-length pre-quantisation vectors (B, code_dim)."""
        change = window[:, -1] - window[:, -2]
        h = self.enc(torch.cat([window.flatten(1, 2), change], dim=1))
        return F.normalize(self.enc_out(h.flatten(1)), dim=1)

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, D) -> (codes (B,), quantised vectors with straight-through gradient (B, D), VQ loss)."""
        book = F.normalize(self.codebook, dim=1)
        codes = (z @ book.T).argmax(dim=1)  # nearest on the sphere
        q = book[codes]
        loss = F.mse_loss(q, z.detach()) + self.cfg.commitment * F.mse_loss(z, q.detach())
        return codes, z + (q - z).detach(), loss

    @torch.no_grad()
    def track_usage(self, codes: torch.Tensor, decay: float) -> None:
        """Fold a batch's codes into the running usage (training)."""
        share = torch.bincount(codes, minlength=self.cfg.codes).float() / len(codes)
        self.usage.mul_(decay).add_(share, alpha=1 - decay)

    @torch.no_grad()
    def restart_dead_codes(self, z: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Move every code that (almost) no step picks onto the encoder output of a random step
        of the batch `z` (B, D): the usual cure for codebook collapse, where one code takes
        every step and the decoder learns to do without. Returns how many moved."""
        dead = torch.nonzero(self.usage < 0.1 / self.cfg.codes).flatten()
        if len(dead):
            pick = torch.randint(len(z), (len(dead),), generator=generator, device=z.device)
            noise = torch.randn(z[pick].shape, generator=generator, device=z.device)
            self.codebook.data[dead] = F.normalize(z[pick] + 0.05 * noise, dim=1)
            self.usage[dead] = 1.0 / self.cfg.codes
        return len(dead)

    def decode(self, past: torch.Tensor, code_vectors: torch.Tensor) -> torch.Tensor:
        """past (B, K, C, h, w), code vectors (B, D) -> frame t+1's latent (B, C, h, w), as a change from frame t."""
        cond = self.code_embed(code_vectors)  # (B, c)
        # The code enters twice: as input channels, which the decoder cannot help but read from
        # the first step, and as FiLM in every block (zero at first, as ResBlock starts).
        spread = cond[:, :, None, None].expand(-1, -1, *past.shape[-2:])
        h = self.stem(torch.cat([past.flatten(1, 2), spread], dim=1))
        for block in self.blocks:
            h = block(h, cond)
        return past[:, -1] + self.out(h)

    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.codebook, dim=1)[codes]

    @torch.no_grad()
    def infer(self, window: torch.Tensor) -> torch.Tensor:
        """window (B, K + 1, C, h, w) -> the code of the step from frame K to frame K + 1 (B,)."""
        return self.quantise(self.encode(window))[0]

    def forward(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """window (B, K + 1, C, h, w) -> (prediction of the last latent, codes, VQ loss, the
        encoder's vectors before quantisation, for restarting dead codes)."""
        z = self.encode(window)
        codes, q, vq_loss = self.quantise(z)
        return self.decode(window[:, :-1], q), codes, vq_loss, z
