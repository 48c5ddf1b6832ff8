"""What the scripted explorer that recorded the Platformer's training data earns in the real game,
on the held-out levels `worldgen agent eval` scores agents on: the ceiling an agent cloned from
that data (`agent train --clone`) could reach. The explorer reads the game's state (where the
gaps and enemies are), which an agent on pixels must see for itself.

    python benchmarks/explorer_return.py [--episodes 50] [--seed 0]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the Platformer)
from envs.platformer import ExplorerPolicy
from worldgen.agent import Score, format_scores
from worldgen.reference import held_out_seeds
from worldgen.world import read_spec, resolve_world


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="the explorer's own random bursts and retreats")
    args = p.parse_args()
    policy = ExplorerPolicy(seed=args.seed)
    returns, flags = [], 0
    env = gym.make("worldgen/Platformer-v0", max_episode_steps=1000)
    for level in held_out_seeds(args.episodes, set(read_spec(resolve_world("platformer")).training_seeds)):
        obs, info = env.reset(seed=level)
        total, start, done = 0.0, True, False
        while not done:
            action = int(policy.act(obs[None], [info], np.array([start]))[0])
            obs, reward, terminated, truncated, info = env.step(action)
            total, start, done = total + float(reward), False, terminated or truncated
        flags += bool(terminated and reward >= 10)  # the flag pays +10 and ends the level
        returns.append(total)
    env.close()
    print(format_scores([Score(f"explorer (seed {args.seed})", np.array(returns))]))
    print(f"flag reached in {flags} of {len(returns)} levels")


if __name__ == "__main__":
    main()
