"""Stage `scm`: a consistency model distilled from the teacher (sCD) or trained from data
(sCT), both starting from the teacher's weights (sCM, Algorithm 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.export import load_export
from worldgen import scm
from worldgen.rollout import Sampler, bind, noise_context, predict_next
from worldgen.train.config import OptimConfig, RunConfig
from worldgen.train.latent_data import LatentData
from worldgen.train.loop import Context, Logs, run_device, unwrap
from worldgen.train.own_rollout import OwnRollouts
from worldgen.train.teacher import DynamicsTrainConfig, save_dynamics


@dataclass
class ConsistencyTrainConfig(DynamicsTrainConfig):
    """The network is the teacher's, and its weights are the start: no preset, no model fields."""

    mode: str = "scd"
    """scd: tangents from the teacher's velocity; sct: from the data (cos t z - sin t x0)."""
    teacher: str = ""
    """Teacher export folder (default: the `teacher/export` beside --out)."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-5, warmup_steps=100, ema_decay=0.999, grad_clip=10.0))
    """A small lr: at small batch the unit-norm tangent is mostly noise, and the paper's lr
    (for batch 2048) walks the student away from its teacher (research notes, section 6)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(steps=4000, batch_size=32, image_every=1000))
    p_mean: float = -1.0
    p_std: float = 1.4
    """Log-normal proposal of sigma = sigma_d tan(t) for the consistency stage (sCM, Table 3)."""
    tangent_warmup: int = 1000
    """Steps over which r ramps from 0 to 1."""
    tangent_norm: str = "l2"
    """Per-sample tangent normalisation g / (||g|| + c): l2 (as the paper) or rms."""
    tangent_c: float = 0.1
    context_noise_max: float | None = None
    """Context-noise augmentation as in the teacher (None: the teacher's own setting). With sCD
    and own rollouts, the teacher's tangent is taken on the same context."""


class ConsistencyStage:
    name = "scm"

    def __init__(self, cfg: ConsistencyTrainConfig, data: Path, ae_folder: Path, teacher_folder: Path) -> None:
        if cfg.mode not in ("scd", "sct"):
            raise ValueError(f"mode must be scd or sct, got {cfg.mode!r}")
        self.cfg = cfg
        self.net, teacher_config = load_export(teacher_folder, "dynamics")
        if teacher_config["kind"] != "teacher":
            raise ValueError(f"{teacher_folder}: sCD and sCT start from a teacher export, this is {teacher_config['kind']!r}")
        self.net.train()
        if cfg.context_noise_max is None:
            cfg.context_noise_max = teacher_config["context_noise_max"]
        self.teacher = load_export(teacher_folder, "dynamics")[0] if cfg.mode == "scd" else None
        if self.teacher is not None:
            self.teacher.requires_grad_(False)
        k = self.net.cfg.context
        self.data = LatentData(data, ae_folder, k, cfg.run.val_fraction, cfg.val_windows, cfg.own.frames,
                               device=run_device(cfg.run), endings=cfg.endings)
        self.own = OwnRollouts(cfg.own, k, "consistency")
        dims = math.prod(self.data.train.latents.latent_shape)
        self.weight = scm.AdaptiveWeight(init=-math.log(dims) if cfg.tangent_norm == "l2" else 0.0)
        self.name = cfg.mode

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net, "weight": self.weight}

    def to(self, device: torch.device) -> None:
        self.data.to(device)
        self.own.to(device)
        if self.teacher is not None:
            self.teacher.to(device)

    def batch(self, generator: torch.Generator, batch_size: int, ctx: Context) -> dict[str, torch.Tensor]:
        return self.data.sample(generator, batch_size)

    def loss(self, train: dict[str, nn.Module], batch: dict[str, torch.Tensor], ctx: Context) -> tuple[torch.Tensor, Logs]:
        cfg = self.cfg
        batch, own_logs = self.own.apply(batch, unwrap(train["net"]), ctx.step, ctx.noise)
        x0 = batch["target"]
        b = x0.shape[0]
        z = torch.randn(x0.shape, generator=ctx.noise, device=ctx.device) * scm.SIGMA_D
        t = scm.sample_t(b, cfg.p_mean, cfg.p_std, ctx.noise, ctx.device)
        level = torch.rand(b, generator=ctx.noise, device=ctx.device) * cfg.context_noise_max
        context = noise_context(batch["context"], level, ctx.noise)
        x_t = scm.noisy(x0, z, t)
        if self.teacher is not None:
            with torch.no_grad():
                dxdt = scm.SIGMA_D * self.teacher(x_t / scm.SIGMA_D, t, context, batch["actions"], level)
        else:
            dxdt = scm.velocity(x0, z, t)
        r = min(1.0, (ctx.step + 1) / max(cfg.tangent_warmup, 1))
        # The JVP runs on the bare module, in fp32: torch.func.jvp does not go through DDP.
        terms = scm.tangent(bind(unwrap(train["net"]), context, batch["actions"], level), x_t, t, dxdt, r, cfg.tangent_norm, cfg.tangent_c)
        with ctx.autocast():
            F_theta = train["net"](x_t / scm.SIGMA_D, t, context, batch["actions"], level)
        logvar = train["weight"](t)
        loss = scm.scm_loss(F_theta.float(), terms, logvar).mean()
        return loss, {"tangent_norm": terms.g_norm.mean().detach(), "warmup_r": r, "logvar": logvar.detach().mean(), **own_logs}

    def export(self, ema: dict[str, nn.Module], folder: Path) -> None:
        save_dynamics(folder, ema["net"], self.cfg.mode, self.cfg)

    def evaluate(self, ema: dict[str, nn.Module], ctx: Context, writer: Any) -> dict[str, float]:
        batch = self.data.batch(self.data.val, self.data.val_index)
        g = torch.Generator(ctx.device).manual_seed(0)
        c = self.cfg.play_context_noise
        preds = {
            f"{self.cfg.mode}_{n}step": predict_next(ema["net"], batch["context"], batch["actions"], Sampler("consistency", n, c), g)
            for n in (1, 2)
        }
        scores = self.data.next_frame_report(preds, writer, ctx.step + 1, self.name)
        return {**scores, **self.data.rollout_report(ema["net"], Sampler("consistency", 2, c), writer, ctx.step + 1, self.name)}
