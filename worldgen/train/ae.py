"""Stage `ae`: the frame autoencoder, with its latents scaled to unit variance at export."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.autoencoder import AUTOENCODER_PRESETS, Autoencoder, AutoencoderConfig
from models.export import load_export
from worldgen.checkpoint import save_weights
from worldgen.data.windows import WindowDataset
from worldgen.frames import colour_recall, frequent_colours, grid, mse, psnr_from_mse, to_model, to_uint8
from worldgen.train.config import OptimConfig, RunConfig, preset
from worldgen.train.loop import Context, Logs


@dataclass
class AETrainConfig:
    preset: str = "small"
    """Model size: tiny, small or base; `model.*` keys override single fields."""
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=200, ema_decay=0.998))
    run: RunConfig = field(default_factory=lambda: RunConfig(steps=2500, batch_size=32, image_every=500))
    latent_noise: float = 0.1
    """Noise added to latents before decoding, relative to their std: the decoder must also
    draw clean frames from the slightly-off latents a world model generates."""
    val_frames: int = 512
    """Held-out frames the validation PSNR is measured on."""
    colour_weight: float = 0.0
    """Weight each pixel's loss by the rarity of its colour in the batch, (mean count / count)
    ** colour_weight, clipped at `colour_weight_max` and normalised to mean 1 (0: plain loss).
    A 1-pixel texture is a sliver of the squared error; unweighted, the autoencoder smooths
    it away and keeps a clean PSNR."""
    colour_weight_max: float = 20.0
    init: str = ""
    """An autoencoder export to start from (fine-tuning); its model config replaces the preset."""
    train_encoder: bool = True
    """False: only the decoder learns. The latents stay exactly as they were, so every dynamics
    network and reward head trained on them stays valid."""


class AEStage:
    name = "ae"

    def __init__(self, cfg: AETrainConfig, data: Path) -> None:
        self.cfg = cfg
        if cfg.init:
            self.ae = load_export(Path(cfg.init), "autoencoder")[0]
            cfg.model = self.ae.cfg
            self.ae.train()
        else:
            self.ae = Autoencoder(cfg.model)
        self.ae.encoder.requires_grad_(cfg.train_encoder)
        self.train_set = WindowDataset(data, context=0, split="train", val_fraction=cfg.run.val_fraction)
        self.val_set = WindowDataset(data, context=0, split="val", val_fraction=cfg.run.val_fraction)
        g = torch.Generator().manual_seed(0)
        self.val_index = torch.randint(len(self.val_set), (min(cfg.val_frames, len(self.val_set)),), generator=g)
        self.device = torch.device("cpu")

    def modules(self) -> dict[str, nn.Module]:
        return {"ae": self.ae}

    def to(self, device: torch.device) -> None:
        self.device = device

    def batch(self, generator: torch.Generator, batch_size: int, ctx: Context) -> dict[str, torch.Tensor]:
        index = torch.randint(len(self.train_set), (batch_size,), generator=generator)
        frames = torch.stack([self.train_set[int(i)]["target"] for i in index])  # (B, H, W, 3) uint8
        return {"x": to_model(frames, self.device), "frames": frames.to(self.device)}

    def loss(self, train: dict[str, nn.Module], batch: dict[str, torch.Tensor], ctx: Context) -> tuple[torch.Tensor, Logs]:
        x = batch["x"]  # (B, 3, 64, 64)
        c = self.cfg.model.latent_channels
        noise = torch.randn((x.shape[0], c, x.shape[2] // 4, x.shape[3] // 4), generator=ctx.noise, device=x.device)
        level = torch.rand(x.shape[0], 1, 1, 1, generator=ctx.noise, device=x.device) * self.cfg.latent_noise
        with ctx.autocast():
            recon, _ = train["ae"](x, level * noise)
        error = recon.float() - x  # (B, 3, H, W)
        weight = colour_rarity(batch["frames"], self.cfg.colour_weight, self.cfg.colour_weight_max)[:, None]  # (B, 1, H, W)
        squared = error.pow(2).mean()
        loss = (weight * (error.pow(2) + 0.1 * error.abs())).mean()
        return loss, {"mse": squared.detach(), "psnr_train": 10 * torch.log10(4.0 / squared.detach())}

    @torch.no_grad()
    def latent_std(self, ae: Autoencoder, n: int = 1024) -> float:
        g = torch.Generator().manual_seed(1)
        index = torch.randint(len(self.train_set), (n,), generator=g)
        frames = torch.stack([self.train_set[int(i)]["target"] for i in index])
        z = torch.cat([ae.encoder(to_model(chunk, next(ae.parameters()).device)) for chunk in frames.split(128)])
        return float(z.std())

    def export(self, ema: dict[str, nn.Module], folder: Path) -> None:
        ae = ema["ae"]
        if self.cfg.train_encoder:  # a frozen encoder keeps its scale: the latents must not move
            ae.latent_scale.fill_(1.0 / self.latent_std(ae))
        frame_size = int(self.train_set[0]["target"].shape[0])  # worlds check their frame_size against it
        save_weights(folder, ae.state_dict(), {"kind": "autoencoder", "model": dataclasses.asdict(self.cfg.model), "frame_size": frame_size})

    def evaluate(self, ema: dict[str, nn.Module], ctx: Context, writer: Any) -> dict[str, float]:
        ae = ema["ae"]
        frames = torch.stack([self.val_set[int(i)]["target"] for i in self.val_index])  # (N, H, W, 3)
        recon = torch.cat([to_uint8(ae.decoder(ae.encoder(to_model(c, ctx.device)))) for c in frames.split(128)])
        score = float(psnr_from_mse(mse(recon, frames).mean()))
        if writer is not None:
            writer.add_image("ae/real_vs_reconstruction", grid([frames[:8], recon[:8]]), ctx.step + 1)
        recall = colour_recall(frames.numpy(), recon.numpy(), frequent_colours(frames.numpy()))
        shown = [v for v in recall.values() if v == v]
        return {"psnr": score, "colour_recall_min": min(shown), **{f"colour_recall/{k}": v for k, v in recall.items()}}


def colour_rarity(frames: torch.Tensor, power: float, clip: float) -> torch.Tensor:
    """Per-pixel loss weights (B, H, W) from how rare each exact colour is in the batch of
    uint8 frames (B, H, W, 3); all ones when `power` is 0."""
    if power == 0:
        return torch.ones(frames.shape[:3], device=frames.device)
    rgb = frames.long()
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # (B, H, W)
    _, inverse, counts = torch.unique(codes, return_inverse=True, return_counts=True)
    per_colour = (counts.float().mean() / counts.float()).pow(power).clamp(1.0, clip)
    weight = per_colour[inverse]
    return weight / weight.mean()


def apply_preset(cfg: AETrainConfig) -> None:
    cfg.model = preset(AUTOENCODER_PRESETS, cfg.preset, "autoencoder")
