"""Stage `reward`: the reward and termination head, trained on real next latents and, with
`judged.share > 0`, on the world's own frames labelled by the game's rules."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.reward import (REPEATS_FOR_PAY_ONCE, REWARD_PRESETS, RewardConfig, RewardHead, pay_once_along, repeated_events,
                           reward_values)
from worldgen.checkpoint import save_weights
from worldgen.codec import LatentCodec
from worldgen.data.windows import WindowDataset
from worldgen.rollout import noise_context, predict_reward, symlog
from worldgen.scm import SIGMA_D
from worldgen.train.config import OptimConfig, RunConfig, preset
from worldgen.train.judged_rollouts import JudgedPool, JudgedRolloutConfig
from worldgen.train.latent_data import LatentData
from worldgen.train.loop import Context, Logs, run_device


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
    near_event_fraction: float = 0.0
    """Share of each batch drawn from the steps right before and after an event that are not
    events themselves. On the world's frames an event looks much like its neighbours, and a
    head seldom shown them learns to pay a crossing on two adjacent steps."""
    event_reweight: float = 0.5
    """Exponent a of the importance weights that undo `event_fraction`'s oversampling: each
    step's loss is weighted by (its chance in the data / its chance of being drawn) ** a. At 0
    the head learns from the batches as drawn, where events are a quarter of all steps, and on
    the world's ambiguous frames it pays far too often (Platformer, own rollouts: precision
    0.30, recall 0.75); at 1 it learns the game's own rate, and rare events then mostly fall
    under the decision line (precision 0.92, recall 0.20). Between, the operating point."""
    latent_noise: float = 0.1
    """Noise on the input latents (units of sigma_d): generated latents are never exact."""
    val_windows: int = 2048
    judged: JudgedRolloutConfig = field(default_factory=JudgedRolloutConfig)
    """The world's own rollouts, labelled by the game's rules (off by default: `judged.share=0`)."""


def event_windows(windows: WindowDataset) -> np.ndarray:
    """Indices of windows whose step earned a reward or ended the episode."""
    flags = [(s.rewards != 0) | s.terminated for s in windows.episodes.shards]
    return np.flatnonzero(np.concatenate(flags))


class RewardStage:
    name = "reward"

    def __init__(self, cfg: RewardTrainConfig, data: Path, ae_folder: Path, pool_cache: Path | None = None) -> None:
        if not 0.0 <= cfg.event_reweight <= 1.0:
            raise ValueError(f"event_reweight must be in [0, 1] (0: batches as drawn, 1: the data's own event rate), got {cfg.event_reweight}")
        if min(cfg.event_fraction, cfg.near_event_fraction) < 0 or cfg.event_fraction + cfg.near_event_fraction >= 1:
            raise ValueError("event_fraction and near_event_fraction must be >= 0 and leave some of each batch to all steps "
                             f"(sum < 1), got {cfg.event_fraction} and {cfg.near_event_fraction}")
        self.cfg = cfg
        self.pool_cache = pool_cache
        self.data = LatentData(data, ae_folder, cfg.model.context, cfg.run.val_fraction, 0, device=run_device(cfg.run))
        if self.data.train.episodes.manifest.get("rewards") == "unknown":
            raise ValueError(f"{data} has no rewards (labelled from video); label it with a game's rules "
                             "(`worldgen data label --rules ENV_ID`) or pack the world without a reward head (`worldgen pack --reward ''`)")
        cfg.model.num_actions = len(self.data.train.episodes.action_meanings)
        cfg.model.latent_channels = self.data.train.latents.latent_shape[0]
        rewards = [s.rewards for part in (self.data.train, self.data.val) for s in part.episodes.shards]
        cfg.model.values = reward_values(np.concatenate(rewards))
        cfg.model.pay_once = repeated_events(rewards) < REPEATS_FOR_PAY_ONCE
        self.head = RewardHead(cfg.model)
        self.draws = EventDraws(event_windows(self.data.train), self.data.train.episode_of(np.arange(len(self.data.train))),
                                cfg.event_fraction, cfg.near_event_fraction)
        val_events = event_windows(self.data.val)
        g = torch.Generator().manual_seed(0)
        rest = torch.randint(len(self.data.val), (cfg.val_windows,), generator=g)
        self.val_index = torch.cat([torch.from_numpy(val_events), rest])
        cfg.judged.validate()
        self.rules = None
        if cfg.judged.share > 0:
            from worldgen.kit import kit_for

            env_id = self.data.train.episodes.env_id
            self.rules = kit_for(env_id).events
            if self.rules is None:
                raise ValueError(f"judged.share > 0 labels the world's frames by the game's rules, and {env_id} has none "
                                 "(its kit gives no `events`); train on real frames only (judged.share=0)")
        self.pool: JudgedPool | None = None
        self.pool_draws: EventDraws | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"head": self.head}

    def to(self, device: torch.device) -> None:
        self.data.to(device)
        if self.rules is not None and self.pool is None:
            self.pool = JudgedPool(self.cfg.judged, self.data.train, LatentCodec(self.data.ae, device), self.rules, device,
                                   self.pool_cache)
            self.pool_draws = EventDraws(self.pool.train_events.numpy(), self.pool.train_index.numpy() // self.pool.frames,
                                         self.cfg.event_fraction, self.cfg.near_event_fraction)

    def batch(self, generator: torch.Generator, batch_size: int, ctx: Context) -> dict[str, torch.Tensor]:
        own = int(round(batch_size * self.cfg.judged.share)) if self.pool is not None else 0
        index, weight = self.draws.draw(batch_size - own, generator)
        real = self.data.batch(self.data.train, index)
        real["weight"] = weight.to(ctx.device) ** self.cfg.event_reweight
        if not own:
            return real
        index, weight = self.pool_draws.draw(own, generator)
        judged = self.pool.batch(index, ctx.device)
        judged["weight"] = weight.to(ctx.device) ** self.cfg.event_reweight
        return {key: torch.cat([real[key], judged[key]]) for key in real}

    def loss(self, train: dict[str, nn.Module], batch: dict[str, torch.Tensor], ctx: Context) -> tuple[torch.Tensor, Logs]:
        b = batch["target"].shape[0]
        level = torch.full((b,), self.cfg.latent_noise, device=ctx.device)
        context = noise_context(batch["context"], level, ctx.noise)
        target = batch["target"] + self.cfg.latent_noise * SIGMA_D * torch.randn(batch["target"].shape, generator=ctx.noise, device=ctx.device)
        with ctx.autocast():
            reward, terminal = train["head"](context, batch["actions"], target)
        weight = batch["weight"]
        reward_loss = (weight * (reward.float() - symlog(batch["reward"])) ** 2).mean()
        end_loss = (weight * F.binary_cross_entropy_with_logits(terminal.float(), batch["terminated"].float(), reduction="none")).mean()
        return reward_loss + end_loss, {"reward_mse": reward_loss.detach(), "termination_bce": end_loss.detach()}

    def export(self, ema: dict[str, nn.Module], folder: Path) -> None:
        save_weights(folder, ema["head"].state_dict(), {"kind": "reward", "model": dataclasses.asdict(self.cfg.model)})

    def evaluate(self, ema: dict[str, nn.Module], ctx: Context, writer: Any) -> dict[str, float]:
        """Event precision and recall on held-out real windows and, with a pool, on its held-out
        rollouts (`own_` scores: the rules read from the world's frames are the truth, and the
        head pays as the world does, once per run of steps it reads as one event)."""
        scores = _scores(ema["head"], [self.data.batch(self.data.val, c) for c in self.val_index.split(256)])
        if self.pool is not None:
            own = _scores(ema["head"], [self.pool.batch(c, ctx.device) for c in self.pool.val_index.split(256)], self.pool.frames)
            scores.update({f"own_{key}": value for key, value in own.items()})
        return scores


class EventDraws:
    """Step indices 0 .. len(segment) - 1 drawn for the reward head: `event_fraction` of each
    batch from the rare event steps, `near_fraction` from the non-event steps right before and
    after one (in the same episode or rollout: `segment` holds each step's), the rest from all
    steps. Each draw comes with its importance weight, its chance among all steps over its
    chance of being drawn, so that the weighted draws are the data again; the weights average 1."""

    def __init__(self, events: np.ndarray, segment: np.ndarray, event_fraction: float, near_fraction: float) -> None:
        n = len(segment)
        is_event = np.zeros(n, dtype=bool)
        is_event[events] = True
        near = np.zeros(n, dtype=bool)
        for step in (-1, 1):
            p = np.flatnonzero(is_event) + step
            p = p[(p >= 0) & (p < n)]
            near[p[segment[p] == segment[p - step]]] = True
        near &= ~is_event
        self.groups = [(torch.from_numpy(np.flatnonzero(mask)), fraction)
                       for mask, fraction in ((is_event, event_fraction), (near, near_fraction)) if mask.any() and fraction > 0]
        density = np.full(n, 1.0 - sum(fraction for _, fraction in self.groups))  # chance of being drawn, times n
        for members, fraction in self.groups:
            density[members.numpy()] += fraction * n / len(members)
        self.n = n
        self.weight = torch.from_numpy(1.0 / density).float()

    def draw(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` step indices and their importance weights."""
        picks = [members[torch.randint(len(members), (int(count * fraction),), generator=generator)]
                 for members, fraction in self.groups]
        picks.append(torch.randint(self.n, (count - sum(len(p) for p in picks),), generator=generator))
        index = torch.cat(picks)
        return index, self.weight[index]


def _scores(head: nn.Module, batches: list[dict[str, torch.Tensor]], stream: int | None = None) -> dict[str, float]:
    """Event precision and recall of the head on `batches`; where they are whole streams of
    `stream` steps in order (the pool's rollouts), paid as the world pays them (`pay_once`)."""
    from worldgen.metrics import event_scores

    preds = [predict_reward(head, b["context"], b["actions"], b["target"]) for b in batches]
    reward, ended = (torch.cat([p[i] for p in preds]) for i in (0, 1))
    if stream is not None and head.cfg.pay_once:
        reward, ended = (x.flatten() for x in pay_once_along(reward.view(-1, stream), ended.view(-1, stream)))
    cat = lambda xs: torch.cat(xs).cpu().numpy()  # noqa: E731
    return event_scores(reward.cpu().numpy(), cat([b["reward"] for b in batches]),
                        ended.cpu().numpy(), cat([b["terminated"] for b in batches]))


def apply_preset(cfg: RewardTrainConfig) -> None:
    cfg.model = preset(REWARD_PRESETS, cfg.preset, "reward")
