"""Next-latent prediction with any sampler, and open-loop rollouts: shared by training
evaluation, the world runtime and `worldgen eval`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from models.reward import pay_once
from worldgen import scm
from worldgen.scm import SIGMA_D


def for_inference(module: nn.Module, compile: bool = False) -> nn.Module:
    """Ready a network for sampling. On a CPU, eager: channels-last (NHWC) weights, which
    oneDNN's convolutions run about 1.1x faster at batch 1. `compile`: torch.compile with
    frozen weights (Inductor fuses the norms and activations into the convolutions), about
    1.2-1.4x faster again at batch 1, after a compilation of 20 to 50 s, cached on disk."""
    module.eval()
    if compile:
        from torch._inductor import config as inductor_config

        inductor_config.freezing = True  # process-wide; passing it in `options` is not honoured
        return torch.compile(module)
    if next(module.parameters()).device.type == "cpu":
        module.to(memory_format=torch.channels_last)
    return module


def noise_context(context: torch.Tensor, level: torch.Tensor, generator: scm.Generators) -> torch.Tensor:
    """Context-noise augmentation: ctx + level * sigma_d * eps, per sample (B,) level.
    Context latents are in sigma_d units (B, K, C, h, w)."""
    eps = scm.randn(tuple(context.shape), generator, context.device)
    return context + level.reshape(-1, 1, 1, 1, 1) * SIGMA_D * eps


def bind(net: nn.Module, context: torch.Tensor, actions: torch.Tensor, level: torch.Tensor) -> scm.Denoiser:
    """The denoiser F(x, t) of a dynamics network with its conditioning fixed."""
    return lambda x, t: net(x, t, context, actions, level)


SAMPLERS = ("ode", "consistency")


@dataclass(frozen=True)
class Sampler:
    """How a dynamics network draws the next latent: `kind` "ode" (a diffusion teacher, any
    number of ODE steps) or "consistency" (a consistency model, 1 or 2 steps), from a context
    noised to `context_noise` (sigma_d units; the network is told the level)."""

    kind: str = "consistency"
    steps: int = 2
    context_noise: float = 0.05
    mid_time: float = scm.T_MID
    """The consistency sampler's second step starts at this time (TrigFlow t)."""

    def __post_init__(self) -> None:
        if self.kind not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.kind!r}")
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1 or (
                self.kind == "consistency" and self.steps > 2):
            raise ValueError(f"a {self.kind} sampler takes {'1 or 2' if self.kind == 'consistency' else 'at least 1'} steps, got {self.steps!r}")
        if not 0 <= self.context_noise < float("inf"):
            raise ValueError(f"context noise must be a finite level >= 0, got {self.context_noise!r}")
        scm.check_mid_time(self.mid_time)


@torch.no_grad()
def predict_next(net: nn.Module, context: torch.Tensor, actions: torch.Tensor, sampler: Sampler,
                 generator: scm.Generators = None) -> torch.Tensor:
    """Draw the next latent (B, C, h, w), in sigma_d units, given context (B, K, C, h, w) in
    sigma_d units and actions (B, K)."""
    b = context.shape[0]
    level = torch.full((b,), sampler.context_noise, device=context.device)
    ctx = noise_context(context, level, generator) if sampler.context_noise > 0 else context
    F = bind(net, ctx, actions, level)
    shape = (b, *context.shape[2:])
    if sampler.kind == "ode":
        return scm.sample_ode(F, shape, sampler.steps, generator=generator, device=context.device)
    return scm.sample_consistency(F, shape, sampler.steps, generator=generator, device=context.device, mid=sampler.mid_time)


@torch.no_grad()
def rollout_steps(net: nn.Module, context: torch.Tensor, actions: torch.Tensor, sampler: Sampler,
                  generator: scm.Generators = None) -> Iterator[torch.Tensor]:
    """Open-loop rollout, one latent at a time: context (B, K, C, h, w) and actions (B, K + H - 1)
    -> H latents (B, C, h, w), where actions[:, i : i + K] condition latent i and each latent is
    fed back as context. One at a time, so that a long rollout need not hold them all."""
    k = context.shape[1]
    for i in range(actions.shape[1] - k + 1):
        nxt = predict_next(net, context, actions[:, i : i + k], sampler, generator)
        yield nxt
        context = torch.cat([context[:, 1:], nxt[:, None]], dim=1)


def rollout(net: nn.Module, context: torch.Tensor, actions: torch.Tensor, sampler: Sampler,
            generator: scm.Generators = None) -> torch.Tensor:
    """`rollout_steps`, stacked: (B, H, C, h, w)."""
    return torch.stack(list(rollout_steps(net, context, actions, sampler, generator)), dim=1)


def symlog(x: torch.Tensor) -> torch.Tensor:
    """Compresses large rewards so +10 and +1 train alike (DreamerV3); the reward head predicts this."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


@torch.no_grad()
def predict_reward(head: nn.Module, context: torch.Tensor, actions: torch.Tensor, next_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reward (B,), one the game pays (`RewardConfig.values`), and termination (B,) bool of a
    step, from latents in sigma_d units."""
    reward, logit = head(context, actions, next_latent)
    return head.pay(symexp(reward.float())), logit.float() > 0


class Payments:
    """What a reward head pays along B streams, one step after another: `predict_reward`, and
    where the head's config says `pay_once`, a run of steps read as one event paid once. Keeps
    each stream's last step; `reset` clears streams that start again."""

    def __init__(self, head: nn.Module, batch: int, device: torch.device | str) -> None:
        self.head, self.once = head, head.cfg.pay_once
        self.last = torch.zeros(batch, 2, device=device)
        """(B, 2) the previous step's event sign and ending, as the head read them."""

    def __call__(self, context: torch.Tensor, actions: torch.Tensor, next_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reward, ended = predict_reward(self.head, context, actions, next_latent)
        if not self.once:
            return reward, ended
        reward, ended, self.last = pay_once(reward, ended, self.last)
        return reward, ended

    def reset(self, index: list[int] | slice = slice(None)) -> None:
        self.last[index] = 0
