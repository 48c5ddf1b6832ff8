"""Stage `teacher`: the TrigFlow diffusion model of the next latent (flow matching), the
quality reference and the starting point of both sCD and sCT."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.dynamics import DYNAMICS_PRESETS, DynamicsConfig, DynamicsNet
from models.export import load_export
from worldgen import scm
from worldgen.checkpoint import save_weights
from worldgen.rollout import Sampler, bind, noise_context, predict_next
from worldgen.train.config import OptimConfig, RunConfig, preset
from worldgen.train.latent_data import EndingsConfig, LatentData
from worldgen.train.loop import Context, Logs, run_device, unwrap
from worldgen.train.own_rollout import OwnRolloutConfig, OwnRollouts


@dataclass
class DynamicsTrainConfig:
    """What the two dynamics stages (the diffusion teacher, and sCD/sCT from it) share."""

    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    ae: str = ""
    """Autoencoder export folder (default: the `ae/export` beside --out)."""
    p_mean: float = -0.8
    p_std: float = 1.6
    """Log-normal proposal of sigma = sigma_d tan(t) (sCM, Table 3)."""
    context_noise_max: float | None = 0.5
    """Context latents are noised at a level drawn uniformly in [0, max] (in units of
    sigma_d) and the network is told the level: it learns to trust a noisy past, which keeps
    long rollouts stable."""
    play_context_noise: float = 0.05
    """The fixed context-noise level used when generating (evaluation and play)."""
    val_windows: int = 64
    own: OwnRolloutConfig = field(default_factory=OwnRolloutConfig)
    """Training on the world's own rollouts (off by default: `own.share=0`)."""
    endings: EndingsConfig = field(default_factory=EndingsConfig)
    """Oversampling the ends of episodes (off by default: `endings.share=0`)."""


@dataclass
class TeacherTrainConfig(DynamicsTrainConfig):
    preset: str = "small"
    """Network size: tiny, small or base; `model.*` keys override single fields."""
    model: DynamicsConfig = field(default_factory=DynamicsConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, warmup_steps=500, ema_decay=0.999))
    run: RunConfig = field(default_factory=lambda: RunConfig(steps=20_000, batch_size=32, image_every=2000))
    eval_steps: int = 8
    """ODE steps of the teacher in validation."""
    init: str = ""
    """A teacher export to start from (fine-tuning); its network config replaces the preset."""
    own: OwnRolloutConfig = field(default_factory=lambda: OwnRolloutConfig(sampler_steps=8))


class TeacherStage:
    name = "teacher"

    def __init__(self, cfg: TeacherTrainConfig, data: Path, ae_folder: Path) -> None:
        self.cfg = cfg
        if cfg.init:
            self.net, config = load_export(Path(cfg.init), "dynamics")
            if config["kind"] != "teacher":
                raise ValueError(f"init: {cfg.init} is a {config['kind']!r} export; a teacher starts from a teacher")
            cfg.model = self.net.cfg
            self.net.train()
        self.data = LatentData(data, ae_folder, cfg.model.context, cfg.run.val_fraction, cfg.val_windows, cfg.own.frames,
                               device=run_device(cfg.run), endings=cfg.endings)
        actions, channels = len(self.data.train.episodes.action_meanings), self.data.train.latents.latent_shape[0]
        if cfg.init and (cfg.model.num_actions, cfg.model.latent_channels) != (actions, channels):
            raise ValueError(f"init: {cfg.init} takes {cfg.model.num_actions} actions and {cfg.model.latent_channels} latent channels, "
                             f"the data has {actions} and {channels}")
        cfg.model.num_actions, cfg.model.latent_channels = actions, channels
        if not cfg.init:
            self.net = DynamicsNet(cfg.model)
        self.own = OwnRollouts(cfg.own, cfg.model.context, "ode")

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def to(self, device: torch.device) -> None:
        self.data.to(device)
        self.own.to(device)

    def batch(self, generator: torch.Generator, batch_size: int, ctx: Context) -> dict[str, torch.Tensor]:
        return self.data.sample(generator, batch_size)

    def conditioned(self, net: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> scm.Denoiser:
        """F(x, t) with the batch's context noised at a random level (and the level given)."""
        b = batch["target"].shape[0]
        level = torch.rand(b, generator=ctx.noise, device=ctx.device) * self.cfg.context_noise_max
        return bind(net, noise_context(batch["context"], level, ctx.noise), batch["actions"], level)

    def loss(self, train: dict[str, nn.Module], batch: dict[str, torch.Tensor], ctx: Context) -> tuple[torch.Tensor, Logs]:
        batch, logs = self.own.apply(batch, unwrap(train["net"]), ctx.step, ctx.noise)
        x0 = batch["target"]
        z = torch.randn(x0.shape, generator=ctx.noise, device=ctx.device) * scm.SIGMA_D
        t = scm.sample_t(x0.shape[0], self.cfg.p_mean, self.cfg.p_std, ctx.noise, ctx.device)
        with ctx.autocast():
            loss = scm.flow_matching_loss(self.conditioned(train["net"], batch, ctx), x0, z, t).mean()
        return loss, logs

    def export(self, ema: dict[str, nn.Module], folder: Path) -> None:
        save_dynamics(folder, ema["net"], "teacher", self.cfg)

    def evaluate(self, ema: dict[str, nn.Module], ctx: Context, writer: Any) -> dict[str, float]:
        batch = self.data.batch(self.data.val, self.data.val_index)
        g = torch.Generator(ctx.device).manual_seed(0)
        c = self.cfg.play_context_noise
        preds = {
            f"teacher_{self.cfg.eval_steps}": predict_next(ema["net"], batch["context"], batch["actions"], Sampler("ode", self.cfg.eval_steps, c), g),
            "teacher_mean": predict_next(ema["net"], batch["context"], batch["actions"], Sampler("ode", 1, c), g),
        }
        scores = self.data.next_frame_report(preds, writer, ctx.step + 1, self.name)
        return {**scores, **self.data.rollout_report(ema["net"], Sampler("ode", self.cfg.eval_steps, c), writer, ctx.step + 1, self.name)}


def save_dynamics(folder: Path, net: nn.Module, kind: str, cfg: Any) -> None:
    """Export a dynamics network with what generating from it needs to know."""
    save_weights(
        folder,
        net.state_dict(),
        {
            "kind": kind,
            "sampler": "ode" if kind == "teacher" else "consistency",
            "model": dataclasses.asdict(net.cfg),
            "play_context_noise": cfg.play_context_noise,
            "context_noise_max": cfg.context_noise_max,
        },
    )


def apply_preset(cfg: TeacherTrainConfig) -> None:
    cfg.model = preset(DYNAMICS_PRESETS, cfg.preset, "dynamics")
