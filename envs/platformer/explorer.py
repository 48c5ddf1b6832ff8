"""A scripted Platformer player that makes progress and still shows every action everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.platformer import palette as P
from envs.platformer.env import ACTION_DIRECTION, ACTION_JUMPS, ACTION_MEANINGS
from envs.platformer.level import Level, generate_level
from envs.platformer.physics import move_player

_A = {name: i for i, name in enumerate(ACTION_MEANINGS)}


@dataclass
class _Plan:
    mode: str = "forward"
    """forward: run right, jumping gaps, walls and enemies; back: the same, leftwards;
    random: uniform random actions."""
    steps_left: int = 0
    action: int = 0
    best_x: float = 0.0
    stalled: int = 0


class ExplorerPolicy:
    """Runs through levels with look-ahead jumps, mixing in random bursts and short retreats.

    A world model learns only the control it has seen: pure forward play never shows LEFT
    next to a gap, nor a jump under a platform; pure random play never leaves the first screen.
    The plan reads the ground-truth `info` of the Platformer (player state, enemies, level seed),
    so it works on any batch of envs, local or in worker processes.
    """

    def __init__(
        self, p_random: float = 0.08, p_back: float = 0.015, p_idle_jump: float = 0.04, seed: int | None = None
    ) -> None:
        self.p_random, self.p_back, self.p_idle_jump = p_random, p_back, p_idle_jump
        self.rng = np.random.default_rng(seed)
        self._plans: list[_Plan] = []

    def act(self, observations: np.ndarray, infos: list[dict[str, Any]], starts: np.ndarray) -> np.ndarray:
        if len(self._plans) != len(infos):
            self._plans = [_Plan() for _ in infos]
        actions = np.zeros(len(infos), dtype=np.int64)
        for i, (info, start) in enumerate(zip(infos, starts)):
            if start:
                self._plans[i] = _Plan()
            actions[i] = self._act_one(self._plans[i], info)
        return actions

    def _act_one(self, plan: _Plan, info: dict[str, Any]) -> int:
        x = float(info["player_level"][0])
        if x > plan.best_x + 4:
            plan.best_x, plan.stalled = x, 0
        else:
            plan.stalled += 1
        if plan.steps_left <= 0:
            plan.mode = "forward"
            u = self.rng.random()
            if plan.stalled > 40 or u < self.p_random:
                plan.mode, plan.steps_left, plan.stalled = "random", int(self.rng.integers(2, 10)), 0
                plan.action = int(self.rng.integers(len(ACTION_MEANINGS)))
            elif u < self.p_random + self.p_back:
                plan.mode, plan.steps_left = "back", int(self.rng.integers(4, 20))
        plan.steps_left -= 1
        if plan.mode == "random":
            if self.rng.random() < 0.3:
                plan.action = int(self.rng.integers(len(ACTION_MEANINGS)))
            return self._safe(info, plan.action)
        direction = 1 if plan.mode == "forward" else -1
        move = {1: ("RIGHT", "RIGHT_JUMP"), -1: ("LEFT", "LEFT_JUMP")}[direction]
        decision = self._decide(info, direction)
        if decision == "back_up":  # too close to clear what is ahead: take a run-up
            plan.mode, plan.steps_left = ("back" if direction > 0 else "forward"), 8
            return _A[{1: "LEFT", -1: "RIGHT"}[direction]]
        if decision == "jump":
            return _A[move[1]]
        return self._safe(info, _A[move[0]])

    def _safe(self, info: dict[str, Any], action: int) -> int:
        """`action`, or the nearest action that keeps the player out of gaps: steering in
        the air, stopping at an edge on the ground."""
        level, pos, vel, enemies = _state(info)
        direction, jump = int(ACTION_DIRECTION[action]), bool(ACTION_JUMPS[action])
        if _lands(level, pos, vel, bool(info["on_ground"]), direction, jump, enemies):
            return action
        for other in (0, -direction, 1, -1):
            if _lands(level, pos, vel, bool(info["on_ground"]), other, False, enemies):
                return _A[{0: "NOOP", 1: "RIGHT", -1: "LEFT"}[other]]
        return action

    def _decide(self, info: dict[str, Any], direction: int) -> str:
        """"jump", "run", "stop" or "back_up", by simulating the game's own physics a jump ahead."""
        if not info["on_ground"]:
            return "run"
        level, pos, vel, enemies = _state(info)
        threat = _threat_ahead(level, pos, vel, direction, enemies[:, :2])
        if threat is None:
            idle = self.rng.random() < self.p_idle_jump
            return "jump" if idle and _lands(level, pos, vel, True, direction, True, enemies) else "run"
        if _lands(level, pos, vel, True, direction, True, enemies):
            return "jump"
        if threat < 8.0:
            return "back_up" if abs(vel[0]) < 0.5 else "stop"
        return "run"


def _state(info: dict[str, Any]) -> tuple[Level, np.ndarray, np.ndarray, np.ndarray]:
    """Level, player top-left and velocity, and enemies as rows (x, y, vx), from `info`."""
    level = generate_level(int(info["level_seed"]))
    pos = np.asarray(info["player_level"], dtype=np.float64) - np.array([P.PLAYER_W, P.PLAYER_H]) / 2
    vel = np.asarray(info["player_velocity"], dtype=np.float64)
    enemies = np.column_stack(
        [np.asarray(info["enemies_level"], dtype=np.float64).reshape(-1, 2), np.asarray(info["enemies_velocity"])]
    )
    return level, pos, vel, enemies


def _threat_ahead(
    level: Level, pos: np.ndarray, vel: np.ndarray, direction: int, enemies: np.ndarray
) -> float | None:
    """Distance to the nearest gap, step up, wall or enemy within jumping reach, if any."""
    feet = pos[1] + P.PLAYER_H
    front = pos[0] + (P.PLAYER_W if direction > 0 else 0.0)
    reach = 6.0 + 4.0 * abs(vel[0])
    for ahead in np.arange(1.0, reach + 1.0, 2.0):
        col = int((front + direction * ahead) // P.TILE)
        if not 0 <= col < level.solid.shape[1]:
            continue
        body = level.solid[max(int(pos[1] // P.TILE), 0) : int((feet - 0.5) // P.TILE) + 1, col]
        if level.ground_row(col) * P.TILE >= P.VIEW or body.any():
            return float(ahead)
    centre = pos + np.array([P.PLAYER_W, P.PLAYER_H]) / 2
    for ex, ey in enemies:
        gap = (ex - centre[0]) * direction
        if -2 < gap < 14 + 4 * abs(vel[0]) and abs(ey - centre[1]) < 10:
            return float(max(gap, 0.0))
    return None


def _lands(
    level: Level, pos: np.ndarray, vel: np.ndarray, on_ground: bool, direction: int, jump: bool, enemies: np.ndarray
) -> bool:
    """Whether holding `direction` (jumping on the first step if `jump`) stays alive until the
    player next stands on solid ground, or for 8 steps of walking.

    enemies: (M, 3) rows (x, y, vx). They walk on, turning at the ends of their ground, which
    the 2-unit margin stands in for.
    """
    half_w, half_h = P.PLAYER_W / 2, P.PLAYER_H / 2
    reach_x, reach_y = (P.PLAYER_W + P.ENEMY_W) / 2 + 2.0, (P.PLAYER_H + P.ENEMY_H) / 2
    nearby = [tuple(e) for e in enemies if abs(e[0] - pos[0]) < 80]
    state = (float(pos[0]), float(pos[1]), float(vel[0]), float(vel[1]), on_ground)
    airborne = jump or not on_ground
    for t in range(60):
        state = move_player(level, state, direction, jump=jump and t == 0)
        x, y, _, _, on_ground = state
        if y > P.VIEW:
            return False
        for ex, ey, evx in nearby:
            if abs(ex + evx * (t + 1) - x - half_w) < reach_x and abs(ey - y - half_h) < reach_y:
                return False
        if on_ground and (airborne or t >= 8):
            return True
        airborne = airborne or not on_ground
    return False
