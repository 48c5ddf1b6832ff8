"""PPO in the real Platformer under other settings: a longer discount, each action held for
several frames (action repeat, as Atari agents play), and how the agent is scored (its most
likely action, or actions drawn from its policy).

    python benchmarks/ppo_settings.py --gamma 0.998 --repeat 1 --frames 200000 --out runs/ppo/g998_r1.zip
    python benchmarks/ppo_settings.py --gamma 0.99 --repeat 4 --frames 200000 --out runs/ppo/g99_r4.zip

Trains (16 games, `worldgen agent train`'s PPO settings; skipped when --out exists), then plays
the agent greedily and sampling on the same held-out levels as `worldgen agent eval`, and prints
the mean return +- 95% interval and the mean episode length (the real game cuts an episode at
1,000 frames: an agent that stands still for good reaches the cut). A question for the agent
targets of the agents issue, not a shipped setting: `agent train` has `--gamma` but no repeat.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the Platformer)
from worldgen.agent import Act, Score, episode_returns, format_scores, load_agent, new_episode, real_vec_env, train_agent
from worldgen.data.sources import make_source_env
from worldgen.reference import held_out_seeds
from worldgen.world import read_spec, resolve_world

GAME = "worldgen/Platformer-v0"


class Repeat(gym.Wrapper):
    """Each action held for `k` frames; the rewards of those frames summed."""

    def __init__(self, env: gym.Env, k: int) -> None:
        super().__init__(env)
        self.k = k

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        total = 0.0
        for _ in range(self.k):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class Held:
    """A policy that decides every `k` frames and holds its action in between (an agent trained
    with action repeat, played frame by frame); counts the frames of its episodes."""

    def __init__(self, act: Act, k: int) -> None:
        self.act, self.k, self.frame, self.action, self.lengths = act, k, 0, 0, []

    def reset(self) -> None:
        if self.frame:
            self.lengths.append(self.frame)
        self.frame = 0
        new_episode(self.act)

    def __call__(self, obs: np.ndarray) -> int:
        if self.frame % self.k == 0:
            self.action = self.act(obs)
        self.frame += 1
        return self.action


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--repeat", type=int, default=1, help="frames each action is held")
    p.add_argument("--frames", type=int, default=200_000, help="game frames of training (agent steps x repeat)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="the agent .zip (trained unless it exists)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec = read_spec(resolve_world("platformer"))  # its frame size, and its training levels left out of the scoring
    size = spec.frame_size
    if not args.out.exists():
        make = lambda: Repeat(gym.wrappers.TimeLimit(make_source_env(GAME, size), 1000), args.repeat)  # noqa: E731
        start = time.time()
        train_agent(real_vec_env(make, 16), args.out, args.frames // args.repeat, gamma=args.gamma)
        print(f"trained {args.frames // args.repeat} agent steps ({args.frames} frames) in {time.time() - start:.0f} s")
    seeds = held_out_seeds(args.episodes, set(spec.training_seeds))
    scores = []
    for sample in (False, True):
        held = Held(load_agent(args.out, trusted=True, sample=sample), args.repeat)
        name = f"{args.out.stem} {'sampled' if sample else 'greedy'}"
        scores.append(Score(name, episode_returns(lambda: make_source_env(GAME, size), held, seeds, True, name)))
        held.reset()
        print(f"{name}: mean episode length {np.mean(held.lengths):.0f} frames")
    print(format_scores(scores))


if __name__ == "__main__":
    main()
