"""Train a PPO agent inside a generated world, then score it in the real game it imitates.

    python demos/train_agent_in_world.py [--world platformer] [--timesteps 20000] [--num-envs 16]

The agent never sees the real Platformer while learning: it plays the world model through
`worldgen/World-v0` (N worlds batched in one model call), with rewards from the world's
reward head. Needs the rl extra: pip install 'worldgen[rl]'.
"""

import argparse

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv
from tqdm import tqdm

import envs  # noqa: F401


class SB3Adapter(VecEnv):
    """A same-step-autoreset Gymnasium VectorEnv as a stable-baselines3 VecEnv."""

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.venv = venv
        self._actions = None

    def reset(self):
        obs, _ = self.venv.reset(seed=0)
        return obs

    def step_async(self, actions):
        self._actions = actions

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        done = terminated | truncated
        infos = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            infos[i] = {"terminal_observation": info["final_obs"][i], "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
        return obs, rewards.astype(np.float32), done, infos

    def close(self):
        self.venv.close()

    def get_attr(self, name, indices=None):
        return [getattr(self.venv, name)] * self.num_envs

    def set_attr(self, name, value, indices=None):
        setattr(self.venv, name, value)

    def env_method(self, name, *args, indices=None, **kwargs):
        return [getattr(self.venv, name)(*args, **kwargs)] * self.num_envs

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


class Progress(BaseCallback):
    """A tqdm bar over the training steps (the run takes minutes on a CPU)."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.bar = tqdm(total=total, desc="PPO in the world", unit="step")

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def score_in_real_game(model, episodes: int = 5) -> float:
    env = gym.make("worldgen/Platformer-v0")
    returns = []
    for seed in range(episodes):
        obs, _ = env.reset(seed=10_000 + seed)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="platformer")
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--n-steps", type=int, default=128, help="PPO rollout length per env")
    parser.add_argument("--eval-episodes", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    venv = gym.make_vec("worldgen/World-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                        world=args.world, max_episode_steps=300, autoreset_mode="same_step")
    model = PPO("CnnPolicy", SB3Adapter(venv), n_steps=args.n_steps, batch_size=min(256, args.n_steps * args.num_envs), verbose=0)
    before = score_in_real_game(model, args.eval_episodes)
    model.learn(total_timesteps=args.timesteps, callback=Progress(args.timesteps))
    after = score_in_real_game(model, args.eval_episodes)
    print(f"real-game return of the agent: {before:.2f} before, {after:.2f} after {args.timesteps} steps in the world")
