"""Policies that drive a source game while its gameplay is recorded."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Policy(Protocol):
    """Chooses one action per env of a batch.

    `starts[i]` is True when env i has just begun an episode, so per-episode state (an action
    being repeated, a scripted plan) must be dropped for it.
    """

    def act(self, observations: np.ndarray, infos: list[dict[str, Any]], starts: np.ndarray) -> np.ndarray: ...


class RandomRepeatPolicy:
    """Uniform random actions, each held for a random number of steps.

    Uniform per-step play jitters in place and shows a world model little of what an action
    does over time; holding each action for 1..max_repeat steps gives runs, jumps and turns.
    """

    def __init__(self, num_actions: int, max_repeat: int = 10, seed: int | None = None) -> None:
        if num_actions < 1 or max_repeat < 1:
            raise ValueError(f"need num_actions >= 1 and max_repeat >= 1, got {num_actions} and {max_repeat}")
        self.num_actions = num_actions
        self.max_repeat = max_repeat
        self.rng = np.random.default_rng(seed)
        self._action = np.zeros(0, dtype=np.int64)
        self._left = np.zeros(0, dtype=np.int64)

    def act(self, observations: np.ndarray, infos: list[dict[str, Any]], starts: np.ndarray) -> np.ndarray:
        n = len(starts)
        if len(self._left) != n:
            self._action, self._left = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        renew = (self._left <= 0) | np.asarray(starts, dtype=bool)
        k = int(renew.sum())
        self._action[renew] = self.rng.integers(self.num_actions, size=k)
        self._left[renew] = self.rng.integers(1, self.max_repeat + 1, size=k)
        self._left -= 1
        return self._action.copy()
