"""Training on the world's own rollouts: the context of part of each batch is what the world
itself drew, open loop, from a few real frames, while the target stays the real next frame.

A world trained only on real contexts learns to continue real frames. In play it continues
its own, which are a little off; the error compounds until new content fades (the exposure
gap of autoregressive models). Giving the network its own drifted frames as context and the
real frame as the answer teaches it to pull back toward the data, in the spirit of DIAMOND's
and Self-Forcing's training on generated context. The rollout carries no gradient: it only
makes the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.export import load_export
from worldgen import scm
from worldgen.rollout import Sampler, rollout
from worldgen.train.loop import Logs


@dataclass
class OwnRolloutConfig:
    share: float = 0.0
    """Share of each batch whose context is the world's own rollout (0: off, all contexts real)."""
    unroll: int = 8
    """Frames the world draws open loop, from K real ones, before the target (the curriculum's end)."""
    unroll_start: int = 1
    """Unroll length at step 0; it grows linearly to `unroll` over `curriculum_steps`."""
    curriculum_steps: int = 0
    """Steps over which the unroll length grows (0: `unroll` from the start)."""
    generator: str = "self"
    """Who draws the rollout: `self` (the network being trained, its current weights) or the
    export folder of a dynamics network (e.g. the consistency model: 2 steps cost a quarter of
    the teacher's 8)."""
    sampler_steps: int = 2
    """Sampling steps of the rollout: ODE steps for a teacher, 1 or 2 for a consistency model."""
    context_noise: float = 0.05
    """Context noise while rolling out, as at play time."""
    mid_time: float = scm.T_MID
    """A consistency sampler's second-step time while rolling out: the world's play-time
    `mid_time`, so the contexts trained on drift as the played world's do."""
    anywhere: bool = False
    """Own contexts on a random `share` of all rows, the oversampled ends of episodes
    (`endings.share`) among them. Off, they go on the first rows, which are never ending rows:
    the network then learns to follow an enemy into the player only from real frames, and in
    play its frames are its own."""

    def validate(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"own.share must be in [0, 1], got {self.share}")
        if self.share and not 1 <= self.unroll_start <= self.unroll:
            raise ValueError(f"own rollouts need 1 <= own.unroll_start <= own.unroll, got {self.unroll_start} and {self.unroll}")
        scm.check_mid_time(self.mid_time)

    @property
    def frames(self) -> int:
        """Extra context frames each training window needs (0 when off)."""
        return self.unroll if self.share > 0 else 0

    def length(self, step: int) -> int:
        """Unroll length at a training step (the curriculum)."""
        if self.curriculum_steps <= 0:
            return self.unroll
        grown = self.unroll_start + (self.unroll - self.unroll_start) * step / self.curriculum_steps
        return min(self.unroll, int(grown))


class OwnRollouts:
    """Replaces the context of the first rows of a batch by the world's own rollout.

    Batches come with `context` (B, K + U, C, h, w) and `actions` (B, K + U) over the U frames
    before the usual K (U = `cfg.frames`); `apply` returns a batch of the usual K.
    """

    def __init__(self, cfg: OwnRolloutConfig, k: int, own_sampler: str) -> None:
        cfg.validate()
        self.cfg, self.k = cfg, k
        self.generator: nn.Module | None = None
        self.sampler = own_sampler
        if cfg.share > 0 and cfg.generator != "self":
            net, config = load_export(Path(cfg.generator), "dynamics")
            if net.cfg.context != k:
                raise ValueError(f"own.generator {cfg.generator} has a context of {net.cfg.context} frames, the trained network {k}")
            self.generator, self.sampler = net.requires_grad_(False), config["sampler"]

    def to(self, device: torch.device) -> None:
        if self.generator is not None:
            self.generator.to(device)

    def apply(self, batch: dict[str, torch.Tensor], own_net: nn.Module, step: int, noise: torch.Generator) -> tuple[dict[str, torch.Tensor], Logs]:
        k, extra = self.k, self.cfg.frames
        if extra == 0:
            return batch, {}
        if self.cfg.anywhere:
            order = torch.randperm(batch["context"].shape[0], generator=noise, device=noise.device).to(batch["context"].device)
            batch = {key: value[order] for key, value in batch.items()}
        context, actions = batch["context"], batch["actions"]  # (B, K + U, C, h, w), (B, K + U)
        b = context.shape[0]
        n = int(round(b * self.cfg.share))
        u = self.cfg.length(step)
        out = dict(batch, context=context[:, -k:], actions=actions[:, -k:])
        if n == 0:
            return out, {"own_unroll": float(u)}
        # Window frame i is frame t - (K + U) + i of the episode. The rollout starts from the K
        # real frames t-K-u .. t-u-1 and draws t-u .. t-1.
        start = context[:n, extra - u : extra - u + k]  # (n, K, C, h, w)
        acts = actions[:n, extra - u : extra + k - 1]  # (n, K + u - 1): the last leads to frame t-1
        net = self.generator if self.generator is not None else own_net
        generated = rollout(net, start, acts, Sampler(self.sampler, self.cfg.sampler_steps, self.cfg.context_noise, self.cfg.mid_time), noise)  # (n, u, C, h, w)
        own = torch.cat([start, generated], dim=1)[:, -k:]
        # How far the world wandered from the real frames, RMS in units of sigma_d.
        drift = (own - out["context"][:n]).pow(2).mean().sqrt() / scm.SIGMA_D
        out["context"] = torch.cat([own, out["context"][n:]])
        return out, {"own_unroll": float(u), "own_drift": drift}
