"""Train a PPO agent inside a generated world, then score it in the real game it imitates.

    python demos/train_agent_in_world.py [--world platformer] [--timesteps 20000] [--num-envs 16] [--seed 0]

The agent never sees the real Platformer while learning: it plays the world model through
`worldgen/World-v0` (N worlds batched in one model call), with rewards from the world's
reward head. It is then scored on held-out real levels beside uniform random actions. The
command-line version, with saved agents and more baselines: `worldgen agent train` / `eval`.
Needs the rl extra: pip install 'worldgen[rl]'.
"""

import argparse
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers worldgen/World-v0 and the Platformer)
from worldgen.agent import Score, episode_returns, format_scores, load_agent, train_agent, world_vec_env

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="platformer")
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--n-steps", type=int, default=128, help="PPO rollout length per env")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    venv = gym.make_vec("worldgen/World-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                        world=args.world, max_episode_steps=1000, autoreset_mode="same_step")  # the flag is 425+ steps away
    levels = list(range(10_000, 10_000 + args.eval_episodes))
    make_real = lambda: gym.make("worldgen/Platformer-v0")  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        agent = train_agent(world_vec_env(venv), Path(tmp) / "agent.zip", args.timesteps, seed=args.seed, n_steps=args.n_steps)
        act = load_agent(agent, trusted=True)  # our own agent, just written
        rng = np.random.default_rng(args.seed)
        scores = [Score("random", episode_returns(make_real, lambda frame: int(rng.integers(6)), levels)),
                  Score(f"PPO, {args.timesteps} steps in the world", episode_returns(make_real, act, levels))]
    print(format_scores(scores))
    print(f"real-game return of the agent: {scores[1].mean:.2f} (random: {scores[0].mean:.2f})")
