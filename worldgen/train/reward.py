"""Stage `reward`: the reward and termination head, trained on real next latents."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.reward import REWARD_PRESETS, RewardConfig, RewardHead
from worldgen.checkpoint import save_weights
from worldgen.data.windows import WindowDataset
from worldgen.rollout import noise_context, predict_reward, symlog
from worldgen.scm import SIGMA_D
from worldgen.train.config import OptimConfig, RunConfig, preset
from worldgen.train.latent_data import LatentData
from worldgen.train.loop import Context


@dataclass
class RewardTrainConfig:
    preset: str = "small"
    model: RewardConfig = field(default_factory=RewardConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, warmup_steps=200, ema_decay=0.998))
    run: RunConfig = field(default_factory=lambda: RunConfig(steps=4000, batch_size=64, image_every=1000))
    ae: str = ""
    """Autoencoder export folder (default: the `ae/export` beside --out)."""
    event_fraction: float = 0.25
    """Share of each batch drawn from steps with a reward or a termination, which are rare."""
    latent_noise: float = 0.1
    """Noise on the input latents (units of sigma_d): generated latents are never exact."""
    val_windows: int = 2048


def event_windows(windows: WindowDataset) -> np.ndarray:
    """Indices of windows whose step earned a reward or ended the episode."""
    flags = [(s.rewards != 0) | s.terminated for s in windows.episodes.shards]
    return np.flatnonzero(np.concatenate(flags))


class RewardStage:
    name = "reward"

    def __init__(self, cfg: RewardTrainConfig, data: Path, ae_folder: Path) -> None:
        self.cfg = cfg
        self.data = LatentData(data, ae_folder, cfg.model.context, cfg.run.val_fraction, 0)
        cfg.model.num_actions = len(self.data.train.episodes.action_meanings)
        cfg.model.latent_channels = self.data.train.latents.latent_shape[0]
        self.head = RewardHead(cfg.model)
        self.events = torch.from_numpy(event_windows(self.data.train))
        val_events = event_windows(self.data.val)
        g = torch.Generator().manual_seed(0)
        rest = torch.randint(len(self.data.val), (cfg.val_windows,), generator=g)
        self.val_index = torch.cat([torch.from_numpy(val_events), rest])

    def modules(self) -> dict[str, nn.Module]:
        return {"head": self.head}

    def to(self, device: torch.device) -> None:
        self.data.to(device)

    def batch(self, generator: torch.Generator, batch_size: int, ctx: Context) -> dict[str, torch.Tensor]:
        n_events = int(batch_size * self.cfg.event_fraction) if len(self.events) else 0
        index = torch.cat([
            self.events[torch.randint(len(self.events), (n_events,), generator=generator)],
            torch.randint(len(self.data.train), (batch_size - n_events,), generator=generator),
        ])
        return self.data.batch(self.data.train, index)

    def loss(self, train: dict[str, nn.Module], batch: dict[str, torch.Tensor], ctx: Context) -> tuple[torch.Tensor, dict[str, float]]:
        b = batch["target"].shape[0]
        level = torch.full((b,), self.cfg.latent_noise, device=ctx.device)
        context = noise_context(batch["context"], level, ctx.noise)
        target = batch["target"] + self.cfg.latent_noise * SIGMA_D * torch.randn(batch["target"].shape, generator=ctx.noise, device=ctx.device)
        with ctx.autocast():
            reward, terminal = train["head"](context, batch["actions"], target)
        reward_loss = F.mse_loss(reward.float(), symlog(batch["reward"]))
        end_loss = F.binary_cross_entropy_with_logits(terminal.float(), batch["terminated"].float())
        return reward_loss + end_loss, {"reward_mse": reward_loss.item(), "termination_bce": end_loss.item()}

    def export(self, ema: dict[str, nn.Module], folder: Path) -> None:
        save_weights(folder, ema["head"].state_dict(), {"kind": "reward", "model": dataclasses.asdict(self.cfg.model)})

    def evaluate(self, ema: dict[str, nn.Module], ctx: Context, writer: Any) -> dict[str, float]:
        preds, truth_r, truth_t = [], [], []
        for chunk in self.val_index.split(256):
            batch = self.data.batch(self.data.val, chunk)
            preds.append(predict_reward(ema["head"], batch["context"], batch["actions"], batch["target"]))
            truth_r.append(batch["reward"])
            truth_t.append(batch["terminated"])
        from worldgen.metrics import event_scores

        reward = torch.cat([p[0] for p in preds]).cpu().numpy()
        ended = torch.cat([p[1] for p in preds]).cpu().numpy()
        return event_scores(reward, torch.cat(truth_r).cpu().numpy(), ended, torch.cat(truth_t).cpu().numpy())


def apply_preset(cfg: RewardTrainConfig) -> None:
    cfg.model = preset(REWARD_PRESETS, cfg.preset, "reward")
