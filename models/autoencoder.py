"""Frame autoencoder: 64x64x3 frames <-> 16x16xC latents, where the world model works."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.layers import ResBlock, group_norm


@dataclass
class AutoencoderConfig:
    latent_channels: int = 8
    """C of the 16x16xC latent."""
    encoder_channels: tuple[int, int, int] = (32, 64, 64)
    """Encoder widths at 64, 32 and 16 pixels."""
    decoder_channels: tuple[int, int, int] = (64, 32, 16)
    """Decoder widths at 16, 32 and 64 pixels: narrow at full size, where a conv costs most,
    because the decoder runs on every generated frame."""
    decoder_blocks: tuple[int, int, int] = (2, 1, 0)
    """Decoder residual blocks at 16, 32 and 64 pixels."""


AUTOENCODER_PRESETS: dict[str, AutoencoderConfig] = {
    "tiny": AutoencoderConfig(4, (8, 16, 16), (16, 8, 8), (1, 0, 0)),
    "small": AutoencoderConfig(8, (32, 64, 64), (64, 32, 16), (2, 1, 0)),
    "base": AutoencoderConfig(8, (64, 128, 128), (128, 64, 32), (3, 2, 1)),
}


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        c = cfg.encoder_channels
        self.body = nn.Sequential(
            nn.Conv2d(3, c[0], 3, padding=1),
            ResBlock(c[0], c[0]),
            nn.Conv2d(c[0], c[1], 3, stride=2, padding=1),
            ResBlock(c[1], c[1]),
            nn.Conv2d(c[1], c[2], 3, stride=2, padding=1),
            ResBlock(c[2], c[2]),
            ResBlock(c[2], c[2]),
            group_norm(c[2]),
            nn.SiLU(),
            nn.Conv2d(c[2], cfg.latent_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, 3, 64, 64) -> (B, C, 16, 16)


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        c, n = cfg.decoder_channels, cfg.decoder_blocks
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, c[0], 3, padding=1)]
        for i in range(3):
            layers += [ResBlock(c[i], c[i]) for _ in range(n[i])]
            if i < 2:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c[i], c[i + 1], 3, padding=1)]
        layers += [group_norm(c[2]), nn.SiLU(), nn.Conv2d(c[2], 3, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)  # (B, C, 16, 16) -> (B, 3, 64, 64)


class Autoencoder(nn.Module):
    """Frames in [-1, 1] (B, 3, 64, 64) <-> latents (B, C, 16, 16).

    `latent_scale` (a buffer, saved with the weights) maps raw encoder output to unit
    variance; `encode`/`decode` work in that normalised space.
    """

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.register_buffer("latent_scale", torch.ones(()))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(frames) * self.latent_scale  # (B, C, 16, 16), unit variance

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents / self.latent_scale)  # (B, 3, 64, 64) in about [-1, 1]

    def forward(self, frames: torch.Tensor, latent_noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct frames; with `latent_noise` (B, C, h, w), that noise, in units of the
        latents' batch std, is added before decoding. Returns (reconstruction, raw latents)."""
        z = self.encoder(frames)  # (B, C, 16, 16), raw
        z_in = z if latent_noise is None else z + latent_noise * z.detach().std()
        return self.decoder(z_in), z
