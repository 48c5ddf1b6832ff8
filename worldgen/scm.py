"""TrigFlow and continuous-time consistency models (sCM): the maths, apart from any network.

Lu & Song, "Simplifying, Stabilizing and Scaling Continuous-Time Consistency Models"
(arXiv 2410.11081). Symbols follow the paper: data x0 with std sigma_d, noise z ~ N(0, sigma_d^2 I),
x_t = cos(t) x0 + sin(t) z for t in [0, pi/2], the network output F, and the consistency
function f(x_t, t) = cos(t) x_t - sin(t) sigma_d F(x_t / sigma_d, t).

`Denoiser` is any callable F(x_scaled, t) -> tensor shaped like x, with the conditioning
(context, actions, context-noise level) already bound, so the same code serves every network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
from torch import nn

from models.layers import PositionalEmbedding

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Generators = Union[torch.Generator, Sequence[torch.Generator], None]
"""One generator for a whole batch, or one per sample (so a sample's noise does not depend on
what else is in the batch, as EDM seeds each image)."""

SIGMA_D = 0.5
T_MAX = math.atan(80.0 / SIGMA_D)  # about 1.5645: sigma = sigma_d tan(t) = 80
T_MID = 1.1
"""Intermediate time of the 2-step sampler (sCM, Sec. 5); a world may play with its own
(`WorldSpec.mid_time`)."""


def randn(shape: tuple[int, ...], generator: Generators = None, device=None) -> torch.Tensor:
    """Standard normal noise of `shape`, from one generator or one per sample along dim 0."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=device)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
    return torch.stack([torch.randn(shape[1:], generator=g, device=device) for g in generator])


def _bc(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) times broadcast against a (B, ...) tensor."""
    return t.reshape(-1, *([1] * (x.ndim - 1)))


def noisy(x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = cos(t) x0 + sin(t) z (sCM, Eq. 3)."""
    return torch.cos(_bc(t, x0)) * x0 + torch.sin(_bc(t, x0)) * z


def velocity(x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx_t/dt = cos(t) z - sin(t) x0: the flow-matching target and sCT's one-sample tangent."""
    return torch.cos(_bc(t, x0)) * z - torch.sin(_bc(t, x0)) * x0


def consistency(F_x: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, sigma_d: float = SIGMA_D) -> torch.Tensor:
    """f(x_t, t) = cos(t) x_t - sin(t) sigma_d F (sCM, Eq. 9); f(x, 0) = x by construction."""
    return torch.cos(_bc(t, x_t)) * x_t - torch.sin(_bc(t, x_t)) * sigma_d * F_x


def f_theta(F: Denoiser, x_t: torch.Tensor, t: torch.Tensor, sigma_d: float = SIGMA_D) -> torch.Tensor:
    """The consistency function of a denoiser: the clean sample it maps x_t to."""
    return consistency(F(x_t / sigma_d, t), x_t, t, sigma_d)


# --- time proposal ----------------------------------------------------------------------


def sample_t(n: int, p_mean: float, p_std: float, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """tan(t) = exp(tau) / sigma_d with tau ~ N(P_mean, P_std^2): log-normal in sigma = sigma_d tan(t)
    (sCM, Sec. 4.2); clamped into (0, T_MAX]."""
    tau = torch.randn(n, generator=generator, device=device) * p_std + p_mean
    return torch.atan(torch.exp(tau) / SIGMA_D).clamp(1e-4, T_MAX)


# --- teacher: flow matching in TrigFlow form -----------------------------------------------


def flow_matching_loss(F: Denoiser, x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor, sigma_d: float = SIGMA_D) -> torch.Tensor:
    """Per-sample E||sigma_d F(x_t / sigma_d, t) - dx_t/dt||^2 / sigma_d^2, a diffusion model in
    TrigFlow form (sCM, Eq. 5). Returns (B,)."""
    x_t = noisy(x0, z, t)
    err = sigma_d * F(x_t / sigma_d, t) - velocity(x0, z, t)
    return err.pow(2).flatten(1).mean(1) / sigma_d**2


def ode_times(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """steps + 1 times from T_MAX down to 0, spaced as EDM's rho-schedule in sigma = sigma_d tan(t)."""
    if steps < 1:
        raise ValueError(f"need at least 1 sampling step, got {steps}")
    i = torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
    sigma = (sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    t = torch.atan(sigma / SIGMA_D)
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)]).float()


@torch.no_grad()
def sample_ode(
    F: Denoiser, shape: tuple[int, ...], steps: int, generator: Generators = None, device=None, sigma_d: float = SIGMA_D
) -> torch.Tensor:
    """Integrate the probability-flow ODE dx/dt = sigma_d F from T_MAX to 0 in `steps` steps.

    Each step is exact for a constant clean-sample prediction (DDIM in TrigFlow form): from
    x_t, x0_hat = f(x_t, t) and z_hat = sin(t) x_t + cos(t) sigma_d F, then
    x_s = cos(s) x0_hat + sin(s) z_hat. One step from T_MAX returns the teacher's conditional
    mean, what a regression model would predict.
    """
    times = ode_times(steps).to(device)
    x = randn(shape, generator, device) * sigma_d
    for t_cur, t_next in zip(times[:-1], times[1:]):
        t = t_cur.expand(shape[0])
        F_x = F(x / sigma_d, t)
        x0_hat = consistency(F_x, x, t, sigma_d)
        z_hat = torch.sin(t_cur) * x + torch.cos(t_cur) * sigma_d * F_x
        x = torch.cos(t_next) * x0_hat + torch.sin(t_next) * z_hat
    return x


# --- consistency training and distillation ----------------------------------------------


@dataclass
class TangentTerms:
    F_minus: torch.Tensor
    """F of the current weights, detached (not the EMA): F_theta^-."""
    g: torch.Tensor
    """The normalised tangent: the regression target is F_minus + g."""
    g_norm: torch.Tensor
    """(B,) norm of the tangent before normalisation, for logging."""


def tangent(
    F: Denoiser,
    x_t: torch.Tensor,
    t: torch.Tensor,
    dxdt: torch.Tensor,
    warmup: float,
    norm: str = "l2",
    c: float = 0.1,
    sigma_d: float = SIGMA_D,
) -> TangentTerms:
    """The sCM tangent (sCM, Algorithm 1):
    g = -cos^2(t) (sigma_d F^- - dx_t/dt) - r cos(t) sin(t) (x_t + sigma_d dF^-/dt).

    dF^-/dt is the total derivative along the trajectory, by forward-mode AD of F at
    (x_t / sigma_d, t) with tangents (cos(t) sin(t) dx_t/dt / sigma_d, cos(t) sin(t)): the JVP
    then returns cos(t) sin(t) dF/dt directly, with cos*sin folded into the tangents exactly
    once, so no division by cos*sin ever happens. `dxdt` is sCT's cos(t) z - sin(t) x0 or sCD's
    sigma_d F_teacher. `warmup` is r in [0, 1]. The tangent is normalised per sample,
    g / (||g|| + c), with ||.|| the L2 norm ("l2", as the paper) or the RMS ("rms").
    """
    if norm not in ("l2", "rms"):
        raise ValueError(f"tangent norm must be 'l2' or 'rms', got {norm!r}")
    cs = torch.cos(t) * torch.sin(t)  # (B,)
    with torch.no_grad():
        F_minus, cs_dFdt = torch.func.jvp(F, (x_t / sigma_d, t), (_bc(cs, x_t) * dxdt / sigma_d, cs))
        cos = torch.cos(_bc(t, x_t))
        g = -cos**2 * (sigma_d * F_minus - dxdt) - warmup * (_bc(cs, x_t) * x_t + sigma_d * cs_dFdt)
        flat = g.flatten(1)
        g_norm = flat.norm(dim=1) if norm == "l2" else flat.pow(2).mean(1).sqrt()
        g = g / _bc(g_norm + c, g)
    return TangentTerms(F_minus=F_minus.detach(), g=g.detach(), g_norm=g_norm.detach())


def scm_loss(F_theta: torch.Tensor, terms: TangentTerms, logvar: torch.Tensor) -> torch.Tensor:
    """Adaptive-weighted sCM loss (sCM, Eq. 8): exp(-w(t)) / D ||F_theta - F^- - g||^2 + w(t),
    with w(t) = `logvar` (B,). Returns (B,)."""
    sq = (F_theta - terms.F_minus - terms.g).pow(2).flatten(1).mean(1)  # ||.||^2 / D
    return torch.exp(-logvar) * sq + logvar


class AdaptiveWeight(nn.Module):
    """w_phi(t): a learned log-variance per time, from a positional embedding of t (sCM, Eq. 8).

    Starts flat at `init`: its optimum is log E||F - F^- - g||^2 / D, which for an L2-normalised
    tangent is about -log(D). Starting there matters on short runs, where a small learning rate
    would take tens of thousands of steps to walk w there from 0."""

    def __init__(self, dim: int = 64, init: float = 0.0) -> None:
        super().__init__()
        self.embed = PositionalEmbedding(dim)
        self.linear = nn.Linear(dim, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, init)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.linear(self.embed(t)).squeeze(1)  # (B,)


# --- consistency samplers ---------------------------------------------------------------


def check_mid_time(mid: float) -> None:
    """A second step must start strictly between the data (0) and the first step (T_MAX)."""
    if not 0.0 < mid < T_MAX:
        raise ValueError(f"the second step's time must lie in (0, {T_MAX:.4f}), got {mid!r}")


def consistency_times(steps: int, mid: float = T_MID) -> list[float]:
    """T_MAX, then `mid` for the second step; more steps split (mid, 0) evenly in t."""
    if steps < 1:
        raise ValueError(f"need at least 1 sampling step, got {steps}")
    check_mid_time(mid)
    if steps == 1:
        return [T_MAX]
    return [T_MAX, *(mid * (1.0 - i / (steps - 1)) for i in range(steps - 1))]


@torch.no_grad()
def sample_consistency(
    F: Denoiser, shape: tuple[int, ...], steps: int, generator: Generators = None, device=None, sigma_d: float = SIGMA_D,
    mid: float = T_MID,
) -> torch.Tensor:
    """1 step: x0 = f(sigma_d z, T_MAX). 2 steps: re-noise to `mid`, x' = cos x0 + sin z', apply f again.
    The later the second step starts (nearer T_MAX), the more of the frame it draws anew instead
    of sharpening the first step's average."""
    x = randn(shape, generator, device) * sigma_d
    x0 = x
    for i, t_value in enumerate(consistency_times(steps, mid)):
        if i:
            z = randn(shape, generator, device) * sigma_d
            x = math.cos(t_value) * x0 + math.sin(t_value) * z
        t = torch.full((shape[0],), t_value, device=device)
        x0 = f_theta(F, x, t, sigma_d)
    return x0
