"""Conversions between uint8 frames and model tensors, and image-quality measures."""

from __future__ import annotations

import numpy as np
import torch


def to_model(frames: torch.Tensor | np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    x = torch.as_tensor(frames, device=device)
    return x.movedim(-1, -3).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) float in [-1, 1] -> (..., H, W, 3) uint8 on the CPU."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu()


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-image PSNR in dB of uint8 frames (..., H, W, 3): one value per leading index."""
    a = torch.as_tensor(a).double()
    b = torch.as_tensor(b).double()
    mse = (a - b).pow(2).flatten(-3).mean(-1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


def grid(rows: list[torch.Tensor], pad: int = 1) -> torch.Tensor:
    """Rows of uint8 frames (N, H, W, 3) into one (3, H', W') uint8 image for TensorBoard."""
    lines = []
    for row in rows:
        h, w = row.shape[1:3]
        cells = []
        for frame in row:
            cells += [frame, torch.full((h, pad, 3), 255, dtype=torch.uint8)]
        lines += [torch.cat(cells[:-1], dim=1), torch.full((pad, cells[0].shape[1] * len(row) + pad * (len(row) - 1), 3), 255, dtype=torch.uint8)]
    return torch.cat(lines[:-1], dim=0).permute(2, 0, 1)
