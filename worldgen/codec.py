"""Frames <-> the latents the dynamics work in: the autoencoder's latents in sigma_d units.

Every place that turns frames into model latents or back goes through here, so the scaling
(latent * sigma_d) and the uint8 conversion are written once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from worldgen.frames import to_model, to_uint8
from worldgen.scm import SIGMA_D


class LatentCodec:
    """An autoencoder as a codec: (N, H, W, 3) uint8 frames <-> (N, C, h, w) latents in sigma_d units."""

    def __init__(self, ae: nn.Module, device: torch.device | str, chunk: int = 256) -> None:
        self.ae, self.device, self.chunk = ae, torch.device(device), chunk

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> torch.Tensor:
        x = to_model(torch.from_numpy(np.ascontiguousarray(frames)), self.device)
        return torch.cat([self.ae.encode(c) for c in x.split(self.chunk)]) * SIGMA_D

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents (..., C, h, w), any leading dims -> frames (..., H, W, 3) uint8."""
        flat = latents.reshape(-1, *latents.shape[-3:]).float()
        frames = torch.cat([to_uint8(self.ae.decode(c / SIGMA_D)) for c in flat.split(self.chunk)]).cpu().numpy()
        return frames.reshape(*latents.shape[:-3], *frames.shape[1:])
