"""Real play to judge a world against: the source game on level seeds the world never trained on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from worldgen.data.collect import EpisodeRecorder
from worldgen.data.storage import Episode
from worldgen.kit import Objects


@dataclass
class Reference:
    """One real episode (recorded as `collect` records one), the player's true screen position
    per frame (T + 1, 2) where the game reports it (NaN elsewhere), the level seed, and, where
    the game tells, the objects on screen per frame ({kind: {object id: (x, y)}}, T + 1 of them)."""

    episode: Episode
    player: np.ndarray
    seed: int
    objects: list[Objects] | None = None

    @property
    def frames(self) -> np.ndarray:
        return self.episode.frames

    @property
    def actions(self) -> np.ndarray:
        return self.episode.actions

    @property
    def rewards(self) -> np.ndarray:
        return self.episode.rewards

    @property
    def terminated(self) -> np.ndarray:
        return self.episode.terminated


def record_references(make_env: Callable[[], Any], policy: Any, seeds: list[int], steps: int,
                      objects_of: Callable[[dict], Objects] | None = None) -> list[Reference]:
    """Play each level seed with `policy` for up to `steps` steps (an episode may end sooner).
    `objects_of(info)`: the game's ground truth of which objects are on screen."""
    refs = []
    for seed in seeds:
        env = make_env()
        obs, info = env.reset(seed=seed)
        recorder = EpisodeRecorder(obs, seed)
        objects = [objects_of(info)] if objects_of is not None else None
        player = [info.get("player_screen", (np.nan, np.nan))]
        for t in range(steps):
            action = int(policy.act(obs[None], [info], np.array([t == 0]))[0])
            obs, reward, terminated, truncated, info = env.step(action)
            recorder.add(action, obs, reward, terminated, truncated)
            player.append(info.get("player_screen", (np.nan, np.nan)))
            if objects is not None:
                objects.append(objects_of(info))
            if terminated or truncated:
                break
        env.close()
        refs.append(Reference(recorder.episode("reference"), np.array(player, dtype=np.float64), seed, objects))
    return refs


def held_out_seeds(n: int, used: set[int], start: int = 1_000_000) -> list[int]:
    """The first n level seeds from `start` that no training episode played."""
    seeds, s = [], start
    while len(seeds) < n:
        if s not in used:
            seeds.append(s)
        s += 1
    return seeds
