"""Real play to judge a world against: the source game on level seeds the world never trained on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from worldgen.kit import Objects


@dataclass
class Reference:
    """One real episode: frames (T + 1, H, W, 3) uint8, actions, rewards and terminations (T,),
    the player's true screen position per frame (T + 1, 2) where the game reports it (NaN
    elsewhere), the level seed, and, where the game tells, the objects on screen per frame
    ({kind: {object id: (x, y)}}, T + 1 of them)."""

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    player: np.ndarray
    seed: int
    objects: list[Objects] | None = None


def record_references(make_env: Callable[[], Any], policy: Any, seeds: list[int], steps: int,
                      objects_of: Callable[[dict], Objects] | None = None) -> list[Reference]:
    """Play each level seed with `policy` for up to `steps` steps (an episode may end sooner).
    `objects_of(info)`: the game's ground truth of which objects are on screen."""
    refs = []
    for seed in seeds:
        env = make_env()
        obs, info = env.reset(seed=seed)
        frames, actions, rewards, ended = [obs], [], [], []
        objects = [objects_of(info)] if objects_of is not None else []
        player = [info.get("player_screen", (np.nan, np.nan))]
        start = True
        for _ in range(steps):
            action = int(policy.act(obs[None], [info], np.array([start]))[0])
            start = False
            obs, reward, terminated, truncated, info = env.step(action)
            frames.append(obs)
            actions.append(action)
            rewards.append(reward)
            ended.append(terminated)
            player.append(info.get("player_screen", (np.nan, np.nan)))
            if objects_of is not None:
                objects.append(objects_of(info))
            if terminated or truncated:
                break
        env.close()
        refs.append(Reference(np.stack(frames), np.array(actions), np.array(rewards, dtype=np.float32),
                              np.array(ended), np.array(player, dtype=np.float64), seed,
                              objects if objects_of is not None else None))
    return refs


def held_out_seeds(n: int, used: set[int], start: int = 1_000_000) -> list[int]:
    """The first n level seeds from `start` that no training episode played."""
    seeds, s = [], start
    while len(seeds) < n:
        if s not in used:
            seeds.append(s)
        s += 1
    return seeds
