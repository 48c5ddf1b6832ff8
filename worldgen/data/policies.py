"""Policies that drive a source game while its gameplay is recorded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class Policy(Protocol):
    """Chooses one action per env of a batch.

    `starts[i]` is True when env i has just begun an episode, so per-episode state (an action
    being repeated, a scripted plan) must be dropped for it.
    """

    def act(self, observations: np.ndarray, infos: list[dict[str, Any]], starts: np.ndarray) -> np.ndarray: ...


class RandomRepeatPolicy:
    """Random actions, each held for a random number of steps.

    Uniform per-step play jitters in place and shows a world model little of what an action
    does over time; holding each action for 1..max_repeat steps gives runs, jumps and turns.
    `weights` (default uniform) are the actions' odds: a game whose goal lies one way (Freeway's
    far kerb) is only seen whole when play leans that way.
    """

    def __init__(self, num_actions: int, max_repeat: int = 10, seed: int | None = None,
                 weights: Sequence[float] | None = None) -> None:
        if num_actions < 1 or max_repeat < 1:
            raise ValueError(f"need num_actions >= 1 and max_repeat >= 1, got {num_actions} and {max_repeat}")
        if weights is not None and (len(weights) != num_actions or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError(f"weights must be {num_actions} non-negative odds, one per action, not all zero; got {list(weights)}")
        self.num_actions = num_actions
        self.max_repeat = max_repeat
        self.odds = None if weights is None else np.asarray(weights, dtype=np.float64) / sum(weights)
        self.rng = np.random.default_rng(seed)
        self._action = np.zeros(0, dtype=np.int64)
        self._left = np.zeros(0, dtype=np.int64)

    def act(self, observations: np.ndarray, infos: list[dict[str, Any]], starts: np.ndarray) -> np.ndarray:
        n = len(starts)
        if len(self._left) != n:
            self._action, self._left = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        renew = (self._left <= 0) | np.asarray(starts, dtype=bool)
        k = int(renew.sum())
        if self.odds is None:  # uniform play draws as it always has, so recorded seeds replay the same
            self._action[renew] = self.rng.integers(self.num_actions, size=k)
        else:
            self._action[renew] = self.rng.choice(self.num_actions, size=k, p=self.odds)
        self._left[renew] = self.rng.integers(1, self.max_repeat + 1, size=k)
        self._left -= 1
        return self._action.copy()
