"""Behaviour cloning from recorded play: an agent's policy fitted to the actions of the recordings
a world was trained on, and its value to the returns that followed them, before any RL.

PPO from pixels on the Platformer learns to avoid dying long before it finds the flag, 400-600
steps of running right away (README, *Agents*), in the real game as in a world. The play a
world is trained on already runs there, so an agent can start from it, as Dreamer 4 starts its
agents from the offline dataset's actions before it trains them in imagination. The recordings
are offline data; the agent still never steps the real game.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from worldgen.data.dataset import EpisodeDataset


@dataclass
class CloneConfig:
    data: Path
    """A dataset of the source game with its actions (`worldgen collect`), e.g. the world's own."""
    epochs: int = 2
    """Passes over the training split of `data`."""
    batch_size: int = 256
    lr: float = 3e-4
    value_coef: float = 0.5
    """Weight of the value's squared error beside the actions' cross-entropy: a value fitted to
    the recorded returns gives PPO's first advantages meaning, so its first updates keep the
    cloned actions instead of undoing them."""
    episodes_per_group: int = 32
    """Episodes decompressed at once and shuffled together (memory: about this many x 700 frames)."""
    advantage_beta: float | None = None
    """Advantage-weighted cloning (AWR, Peng et al. 2019): from the second pass on, each recorded
    step counts exp((return - value) / beta) times, at most `max_weight`, with the value the
    policy's own fit to the recorded returns so far. The recorder's play is a mixture: a
    look-ahead runner with random bursts mixed in. Plain cloning copies the mixture; weighting
    copies the steps that did better than its usual play from the same state (a coin taken, a
    gap cleared) and lets the bursts that died fade. None: plain cloning. In reward units: a
    smaller beta follows the best steps more closely and learns from fewer of them."""
    max_weight: float = 20.0
    """The most one step may weigh (a step that did as well as the value expects weighs 1): a few
    lucky steps, a flag reached, must not be all a batch learns."""

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"--clone-epochs must be at least 1, got {self.epochs}")
        if self.advantage_beta is not None and not (math.isfinite(self.advantage_beta) and self.advantage_beta > 0):
            raise ValueError(f"--clone-beta must be a finite number of reward units > 0, got {self.advantage_beta}")
        if self.advantage_beta is not None and self.epochs < 2:
            raise ValueError(f"--clone-beta weights the passes after the first, which fits the value the weights need: "
                             f"--clone-epochs must be at least 2, got {self.epochs}")
        if not self.max_weight >= 1:
            raise ValueError(f"cloning's max_weight must be at least 1, got {self.max_weight}")
        if self.batch_size < 1 or self.lr <= 0 or self.value_coef < 0 or self.episodes_per_group < 1:
            raise ValueError("cloning needs batch_size >= 1, lr > 0, value_coef >= 0 and episodes_per_group >= 1")


def _observations(frames: np.ndarray, stack: int) -> np.ndarray:
    """(T, H, W, 3 * stack): for each step, its last `stack` frames, oldest first and zeros before
    the episode's first, as Stable-Baselines3's VecFrameStack (channels last) shows them."""
    if stack == 1:
        return frames
    padded = np.concatenate([np.zeros((stack - 1, *frames.shape[1:]), frames.dtype), frames])
    return np.concatenate([padded[i : i + len(frames)] for i in range(stack)], axis=-1)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """The return from each step to the episode's end, discounted by `gamma` (nothing after it)."""
    out = np.zeros(len(rewards), dtype=np.float32)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def _groups(episodes: EpisodeDataset, order: np.ndarray, size: int, stack: int,
            gamma: float) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(observations, actions, returns) of `size` episodes at a time, in `order`."""
    for g in range(0, len(order), size):
        shards = [episodes.shards[int(i)] for i in order[g : g + size]]
        yield (np.concatenate([_observations(s.frames()[:-1], stack) for s in shards]),
               np.concatenate([s.actions for s in shards]).astype(np.int64),
               np.concatenate([discounted_returns(s.rewards, gamma) for s in shards]))


def _policy_input(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    """Channels first, as VecTransposeImage hands frames to a CNN policy (it scales them itself)."""
    return torch.from_numpy(obs).permute(0, 3, 1, 2).to(device)


def _check_data(episodes: EpisodeDataset, policy: Any, action_meanings: list[str] | None) -> int:
    """The frames per observation the policy sees; refuses recordings it cannot learn from."""
    data = episodes.root
    if not episodes.actions_known:
        raise ValueError(f"{data} was made from video and holds no actions to clone; record play with its actions (worldgen collect)")
    channels, height, width = policy.observation_space.shape
    shape = episodes.frame_shape
    if tuple(shape[:2]) != (height, width):
        raise ValueError(f"{data}: frames {shape[0]}x{shape[1]}, but the agent sees {height}x{width}; "
                         "clone from recordings of the game its world draws")
    n = int(policy.action_space.n)
    names = list(episodes.action_meanings)
    if len(names) != n or (action_meanings is not None and names != list(action_meanings)):
        expected = ", ".join(action_meanings) if action_meanings is not None else f"{n} actions"
        raise ValueError(f"{data} records the actions {', '.join(names)}; the agent plays {expected}")
    return channels // 3


def clone_policy(model: Any, cfg: CloneConfig, gamma: float, seed: int = 0, action_meanings: list[str] | None = None,
                 progress: bool = True) -> dict[str, float]:
    """Fit `model`'s policy (a Stable-Baselines3 actor-critic on frames) to the recorded actions of
    `cfg.data`'s training split and its value to their `gamma`-discounted returns. Returns the
    accuracy of its most likely action on the training and held-out episodes."""
    cfg.validate()
    train = EpisodeDataset(Path(cfg.data), split="train")
    held_out = EpisodeDataset(Path(cfg.data), split="val")
    if len(train) == 0:
        raise ValueError(f"{cfg.data}: no episodes in the training split to clone")
    policy = model.policy
    stack = _check_data(train, policy, action_meanings)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    policy.set_training_mode(True)
    steps = sum(s.num_steps for s in train.shards)
    bar = tqdm(total=steps * cfg.epochs, desc="cloning recorded play", unit="step", disable=not progress)
    share = 1.0
    for epoch in range(cfg.epochs):
        correct = seen = 0
        beta = cfg.advantage_beta if epoch > 0 else None  # the first pass fits the value the weights need
        shares = []
        for obs, actions, returns in _groups(train, rng.permutation(len(train.shards)), cfg.episodes_per_group, stack, gamma):
            for rows in np.array_split(rng.permutation(len(actions)), max(1, len(actions) // cfg.batch_size)):
                loss, batch_share = clone_loss(policy, obs[rows], actions[rows], returns[rows], cfg.value_coef, beta, cfg.max_weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                shares.append(batch_share)
                bar.update(len(rows))
            correct += int((_greedy(policy, obs) == actions).sum())
            seen += len(actions)
            bar.set_postfix(accuracy=f"{correct / seen:.3f}", refresh=False)
        share = float(np.mean(shares))
    bar.close()
    policy.set_training_mode(False)
    out = {"accuracy": correct / max(seen, 1)}
    if cfg.advantage_beta is not None:
        out["effective_share"] = share
    if len(held_out):
        hits = total = 0
        for obs, actions, _ in _groups(held_out, np.arange(len(held_out.shards)), cfg.episodes_per_group, stack, gamma):
            hits, total = hits + int((_greedy(policy, obs) == actions).sum()), total + len(actions)
        out["held_out_accuracy"] = hits / max(total, 1)
    return out


def clone_loss(policy: Any, obs: np.ndarray, actions: np.ndarray, returns: np.ndarray, value_coef: float,
               beta: float | None = None, max_weight: float = 20.0) -> tuple[torch.Tensor, float]:
    """The cloning loss on one batch of recorded steps, and the share of the batch its weights
    effectively keep ((sum w)^2 / (n sum w^2): 1 for plain cloning, small when a few steps
    dominate). With `beta`, each step's log-likelihood is weighted by exp((return - value) / beta),
    clipped at `max_weight`, and normalised over the batch so the step size does not change."""
    a = torch.from_numpy(actions).to(policy.device)
    target = torch.from_numpy(returns).to(policy.device)
    values, log_prob, _ = policy.evaluate_actions(_policy_input(obs, policy.device), a)
    values = values.flatten()
    if beta is None:
        weights = torch.full_like(log_prob, 1.0 / len(log_prob))
    else:  # exp, clipped and normalised in log space: no overflow, and no 0 / 0 when every step did worse
        weights = torch.softmax(((target - values.detach()) / beta).clamp(max=math.log(max_weight)), dim=0)
    loss = -(weights * log_prob).sum() + value_coef * F.mse_loss(values, target)
    return loss, float(1.0 / (len(weights) * (weights**2).sum()))


@torch.no_grad()
def _greedy(policy: Any, obs: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """The policy's most likely action on each observation."""
    was_training = policy.training
    policy.set_training_mode(False)
    out = [policy.get_distribution(_policy_input(obs[i : i + chunk], policy.device)).distribution.probs.argmax(-1).cpu().numpy()
           for i in range(0, len(obs), chunk)]
    policy.set_training_mode(was_training)
    return np.concatenate(out)


def clone_path(agent: Path) -> Path:
    """Where the cloned agent is kept beside the agent RL goes on to train (AGENT.clone.zip): the
    clone alone, and the prior a resumed run pulls toward."""
    agent = Path(agent)
    return agent.with_name(f"{agent.stem}.clone.zip")


def with_prior(cls: type) -> type:
    """`cls` (a Stable-Baselines3 on-policy algorithm) with a behavioural prior, as Dreamer 4
    keeps its imagination-trained policy near the cloned one: after each of RL's updates, the
    policy is pulled back toward the prior on the states just played until KL(prior || policy)
    there is at most `prior_kl` nats, in the way Phasic Policy Gradient's auxiliary phase holds
    its policy. A bound rather than a penalty: the pull is its own phase, and Adam's steps do not
    scale with a loss weight. Without it, PPO in the Platformer world unlearnt most of what the
    clone played well (README, *Agents*). The prior is not saved in the agent; a resumed run
    reloads it from `clone_path`."""

    class WithPrior(cls):  # type: ignore[misc, valid-type]
        prior: Any = None
        prior_kl: float = float("inf")

        def train(self) -> None:
            super().train()
            if self.prior is not None:
                before, after = _pull_to_prior(self.policy, self.prior, self.rollout_buffer, self.prior_kl, self.max_grad_norm)
                self.logger.record("train/prior_kl_before", before)
                self.logger.record("train/prior_kl", after)

        def _excluded_save_params(self) -> list[str]:
            return [*super()._excluded_save_params(), "prior", "prior_kl"]

    WithPrior.__name__ = WithPrior.__qualname__ = cls.__name__
    return WithPrior


def _kl(prior: Any, policy: Any, observations: torch.Tensor) -> torch.Tensor:
    """Mean KL(prior || policy) over the states."""
    with torch.no_grad():
        target = prior.get_distribution(observations).distribution.probs
    log_q = policy.get_distribution(observations).distribution.logits  # normalised log-probabilities
    return (target * (target.clamp_min(1e-8).log() - log_q)).sum(-1).mean()


def _pull_to_prior(policy: Any, prior: Any, buffer: Any, bound: float, max_grad_norm: float, max_passes: int = 10,
                   batch_size: int = 256) -> tuple[float, float]:
    """Passes of KL(prior || policy) descent over the buffer's states until its mean is at most
    `bound` (or `max_passes` are done): the mean KL before and after."""
    policy.set_training_mode(True)

    def mean_kl() -> float:
        with torch.no_grad():
            kls = [(float(_kl(prior, policy, b.observations)), len(b.observations)) for b in buffer.get(batch_size)]
        return sum(k * n for k, n in kls) / max(sum(n for _, n in kls), 1)

    before = after = mean_kl()
    for _ in range(max_passes):
        if after <= bound:
            break
        for batch in buffer.get(batch_size):
            policy.optimizer.zero_grad()
            _kl(prior, policy, batch.observations).backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            policy.optimizer.step()
        after = mean_kl()
    policy.set_training_mode(False)
    return before, after
