"""What a player earns in the real Platformer on the held-out levels `worldgen agent eval` scores
agents on, and how its episodes end: in a gap, on an enemy, at the flag, or cut at 1,000 steps.

The return alone does not say what an agent still lacks. An agent that dies in a gap in most
levels needs a world that plays falls out; one that stands until the cut needs one that moves
it on. The scripted explorer that recorded the training data (the default) reads the game's
state, which an agent on pixels must see for itself: its row is the ceiling a cloned agent
(`agent train --clone`) could reach.

    python benchmarks/platformer_endings.py [--episodes 50] [--seed 0]
    python benchmarks/platformer_endings.py --agent AGENT.zip [--sample] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the Platformer)
from envs.platformer import ExplorerPolicy
from envs.platformer import palette as P
from worldgen.agent import Score, format_scores, load_agent, new_episode
from worldgen.reference import held_out_seeds
from worldgen.world import read_spec, resolve_world

ENDINGS = ("gap", "enemy", "flag", "time-out")


def ending(reward: float, terminated: bool, info: dict) -> str:
    """How a finished episode ended: the flag pays +10; a death below the view is a fall."""
    if not terminated:
        return "time-out"
    if reward >= 10:
        return "flag"
    return "gap" if float(info["player_level"][1]) > P.VIEW else "enemy"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--agent", type=Path, default=None, help="a saved agent (trusted: the zip is unpickled); default: the explorer")
    p.add_argument("--sample", action="store_true", help="the agent draws its actions from its policy")
    p.add_argument("--seed", type=int, default=0, help="the explorer's random bursts, or the agent's draws")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.agent is None:
        explorer, name = ExplorerPolicy(seed=args.seed), f"explorer (seed {args.seed})"

        def choose(obs: np.ndarray, info: dict, start: bool) -> int:
            return int(explorer.act(obs[None], [info], np.array([start]))[0])
    else:
        act, name = load_agent(args.agent, trusted=True, sample=args.sample, seed=args.seed), args.agent.stem

        def choose(obs: np.ndarray, info: dict, start: bool) -> int:
            if start:
                new_episode(act)
            return act(obs)
    env = gym.make("worldgen/Platformer-v0", max_episode_steps=1000)
    returns, ends, coins = [], Counter(), 0
    for level in held_out_seeds(args.episodes, set(read_spec(resolve_world("platformer")).training_seeds)):
        obs, info = env.reset(seed=level)
        total, start, done = 0.0, True, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(choose(obs, info, start))
            total, start, done = total + float(reward), False, terminated or truncated
        ends[ending(float(reward), terminated, info)] += 1
        coins += int(info["coins_collected"])
        returns.append(total)
    env.close()
    print(format_scores([Score(name, np.array(returns))]))
    print(", ".join(f"{ends[k]} {k}" for k in ENDINGS) + f" in {len(returns)} levels; {coins} coins")


if __name__ == "__main__":
    main()
