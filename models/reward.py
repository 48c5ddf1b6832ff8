"""Reward and termination head: what a step earned, and whether the episode ended."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.layers import ResBlock, group_norm


@dataclass
class RewardConfig:
    latent_channels: int = 8
    context: int = 4
    num_actions: int = 6
    channels: int = 64
    blocks: int = 2
    values: tuple[float, ...] = ()
    """The rewards the game paid in the training data. The world pays the one nearest the head's
    regressed output, so it never pays what the game does not: a regression alone pays small
    rewards between them, which agents learn to chase or flee. Empty: a game with too many
    distinct rewards (`MAX_REWARD_VALUES`), paid as regressed."""
    pay_once: bool = False
    """A run of steps read as the same event pays once, at its first step (`pay_once`). On a
    world's own frames a coin often fades over two frames, and the head, which cannot tell on
    which one the game would have counted it, pays both. Set where the game itself almost never
    pays events of one sign on two steps in a row (`REPEATS_FOR_PAY_ONCE`)."""


MAX_REWARD_VALUES = 32
"""Above this many distinct rewards in the data, a game's rewards are taken as continuous."""


def reward_values(rewards: np.ndarray) -> tuple[float, ...]:
    """The distinct rewards in `rewards`, ascending, or () if there are more than `MAX_REWARD_VALUES`."""
    values = np.unique(np.asarray(rewards, dtype=np.float32))
    return tuple(float(v) for v in values) if len(values) <= MAX_REWARD_VALUES else ()


EVENT_REWARD = 0.5
"""A step whose reward is at least this far from 0 is an event (a coin, a hit, a crossing)."""
REPEATS_FOR_PAY_ONCE = 0.05
"""`pay_once` is set where fewer than this share of the data's events follow an event of the
same sign on the step before (the Platformer: 2.7% of its coins)."""


def repeated_events(rewards: list[np.ndarray]) -> float:
    """The share of reward events (one array per episode) that follow an event of the same sign
    on the step before; 0 where there are none."""
    events = repeats = 0
    for r in rewards:
        sign = np.where(np.abs(r) >= EVENT_REWARD, np.sign(r), 0)
        events += int((sign != 0).sum())
        repeats += int(((sign[1:] != 0) & (sign[1:] == sign[:-1])).sum())
    return repeats / events if events else 0.0


def pay_once(reward: torch.Tensor, ended: torch.Tensor, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rewards (B,) and endings (B,) of one step of B streams, with the steps that repeat the
    previous step's event (a reward of the same sign, an ending) paid nothing. `last` (B, 2) is
    the previous step's (event sign, ended) as the head read it, zeros at a stream's start; the
    third output is this step's, for the next call."""
    sign = torch.where(reward.abs() >= EVENT_REWARD, torch.sign(reward), torch.zeros_like(reward))
    repeat = (sign != 0) & (sign == last[:, 0])
    now = torch.stack([sign, ended.to(sign.dtype)], dim=1)
    return torch.where(repeat, torch.zeros_like(reward), reward), ended & (last[:, 1] == 0), now


def pay_once_along(reward: torch.Tensor, ended: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`pay_once` along the steps of (R, H) streams, each read from its start."""
    last = torch.zeros(len(reward), 2, dtype=reward.dtype, device=reward.device)
    paid, stop = [], []
    for t in range(reward.shape[1]):
        r, e, last = pay_once(reward[:, t], ended[:, t], last)
        paid.append(r)
        stop.append(e)
    return torch.stack(paid, dim=1), torch.stack(stop, dim=1)


def snap_rewards(reward: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Each reward replaced by the nearest of `values` (1-D; empty: unchanged)."""
    if not len(values):
        return reward
    return values.to(reward.dtype)[(reward.unsqueeze(-1) - values).abs().argmin(-1)]


REWARD_PRESETS: dict[str, RewardConfig] = {
    "tiny": RewardConfig(channels=16, blocks=1),
    "small": RewardConfig(channels=64, blocks=2),
    "base": RewardConfig(channels=128, blocks=3),
}


class RewardHead(nn.Module):
    """(context latents, actions, next latent) -> (reward, termination logit).

    The next latent is the generated one at play time, so the head judges what the world
    drew, e.g. the player touching an enemy; the actions condition every block (FiLM)."""

    def __init__(self, cfg: RewardConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.action_embed = nn.Embedding(cfg.num_actions, c)
        self.action_proj = nn.Linear(cfg.context * c, c)
        self.stem = nn.Conv2d((cfg.context + 1) * cfg.latent_channels, c, 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(c, c, c) for _ in range(cfg.blocks)])
        self.down = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.norm = group_norm(c)
        self.head = nn.Sequential(nn.Linear(2 * c, c), nn.SiLU(), nn.Linear(c, 2))
        # built once, not per step; not in the weights, since the config holds it
        self.register_buffer("values", torch.tensor(cfg.values, dtype=torch.float32), persistent=False)

    def forward(self, context: torch.Tensor, actions: torch.Tensor, next_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """context (B, K, C, h, w), actions (B, K), next_latent (B, C, h, w) -> reward (B,), termination logit (B,)."""
        a = self.action_proj(self.action_embed(actions).flatten(1))  # (B, c)
        h = self.stem(torch.cat([next_latent, rearrange(context, "b k c h w -> b (k c) h w")], dim=1))  # (B, c, h, w)
        for block in self.blocks:
            h = block(h, a)
        h = F.silu(self.norm(self.down(h)))  # (B, c, h/2, w/2)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)  # (B, 2c)
        reward, terminal = self.head(pooled).unbind(1)
        return reward, terminal

    def pay(self, regressed: torch.Tensor) -> torch.Tensor:
        """The rewards the game would pay for regressed ones: the nearest of `cfg.values`."""
        return snap_rewards(regressed, self.values)
