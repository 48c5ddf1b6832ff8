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


def mse(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-image mean squared error of uint8 frames (..., H, W, 3): one value per leading index."""
    return (torch.as_tensor(a).double() - torch.as_tensor(b).double()).pow(2).flatten(-3).mean(-1)


def psnr_from_mse(m: torch.Tensor | float) -> torch.Tensor:
    return 10 * torch.log10(255.0**2 / torch.as_tensor(m, dtype=torch.float64).clamp_min(1e-10))


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-image PSNR in dB of uint8 frames (..., H, W, 3): one value per leading index.
    Identical frames give about 148 dB; to summarise many frames, prefer `psnr_from_mse` of
    the mean error, which such frames cannot dominate."""
    return psnr_from_mse(mse(a, b))


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


def ssim(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) of uint8 frames (..., H, W, 3): a Gaussian window of
    11 px and sigma 1.5, the standard constants, computed per channel and averaged."""
    x = torch.as_tensor(np.asarray(a)).double().movedim(-1, -3)  # (..., 3, H, W)
    y = torch.as_tensor(np.asarray(b)).double().movedim(-1, -3)
    lead = x.shape[:-3]
    x, y = x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])
    coords = torch.arange(window, dtype=torch.float64) - window // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(3, 1, window, window)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(z, kernel, groups=3)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(-3, -2, -1)).reshape(lead)


def frequent_colours(frames: np.ndarray, most: int = 16, min_share: float = 1e-4) -> dict[str, tuple[int, int, int]]:
    """The most frequent exact colours of some frames (each on at least `min_share` of the
    pixels), named by their hex code: the palette of a game that gives none."""
    colours, counts = np.unique(frames.reshape(-1, 3), axis=0, return_counts=True)
    order = np.argsort(-counts)[:most]
    keep = order[counts[order] >= min_share * counts.sum()]
    return {"#%02x%02x%02x" % tuple(int(v) for v in colours[i]): tuple(int(v) for v in colours[i]) for i in keep}


def colour_recall(real: np.ndarray, recon: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> dict[str, float]:
    """Per colour of the palette: of the real pixels of exactly that colour, the share whose
    reconstruction is nearer that colour than any other of the palette. Mean PSNR hides a lost
    1-pixel texture; this does not. NaN for a colour the frames do not show."""
    names, colours = list(palette), np.array(list(palette.values()), dtype=np.float32)  # (N, 3)
    truth = np.full(real.shape[:-1], -1)
    for i, c in enumerate(colours):
        truth[(real == c.astype(real.dtype)).all(axis=-1)] = i
    nearest = np.linalg.norm(recon.reshape(-1, 1, 3).astype(np.float32) - colours[None], axis=2).argmin(axis=1).reshape(truth.shape)
    out = {}
    for i, name in enumerate(names):
        drawn = truth == i
        out[name] = float((nearest[drawn] == i).mean()) if drawn.any() else float("nan")
    return out


def labelled_grid(rows: list[tuple[str, np.ndarray]], columns: list[str], scale: int = 3) -> np.ndarray:
    """Rows of frames (each (H, n W, 3) uint8, n frames side by side), enlarged `scale` times with
    nearest-neighbour pixels, each row's name on its left and each column's above: a picture that
    says what it shows. Returns the image (H', W', 3) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11 * max(scale, 1) // 2 + 6)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 12 + max((measure.textlength(name, font=font) for name, _ in rows), default=0)
    top = 8 + font.size
    height, width = rows[0][1].shape[0] * scale, rows[0][1].shape[1] * scale
    canvas = Image.new("RGB", (int(left) + width, top + height * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    tile = width / max(len(columns), 1)
    for j, label in enumerate(columns):
        draw.text((left + tile * (j + 0.5), top / 2), label, fill=(0, 0, 0), font=font, anchor="mm")
    for i, (name, row) in enumerate(rows):
        canvas.paste(Image.fromarray(row).resize((width, height), Image.NEAREST), (int(left), top + i * height))
        draw.text((left - 6, top + (i + 0.5) * height), name, fill=(0, 0, 0), font=font, anchor="rm")
    return np.asarray(canvas)
