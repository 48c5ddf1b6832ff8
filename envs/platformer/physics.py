"""Player physics of the Platformer, as a pure function so a planner can simulate it too."""

from __future__ import annotations

import math

import numpy as np

from envs.platformer import palette as P
from envs.platformer.level import Level

GRAVITY = 0.3
JUMP_SPEED = 4.0
"""Initial upward speed: a jump rises about 3.3 tiles and clears gaps of up to 5 tiles."""
RUN_ACCEL = 0.4
MAX_RUN = 1.6
FRICTION = 0.6
MAX_FALL = 4.0
"""Below one tile per step, so the player cannot fall through a tile."""


PlayerState = tuple[float, float, float, float, bool]
"""(x, y, vx, vy, on_ground): top-left corner and velocity in level units (per step)."""


def move_player(level: Level, state: PlayerState, direction: int, jump: bool) -> PlayerState:
    """One step of running, jumping, gravity and tile collisions.

    Motion is resolved one axis at a time, x first. Plain floats, not arrays: the explorer
    simulates thousands of these steps a second.
    """
    x, y, vx, vy, on_ground = state
    if direction:
        vx = min(max(vx + direction * RUN_ACCEL, -MAX_RUN), MAX_RUN)
    else:
        vx = 0.0 if abs(vx) < 0.1 else vx * FRICTION
    if jump and on_ground:
        vy = -JUMP_SPEED
    vy = min(vy + GRAVITY, MAX_FALL)

    x = min(max(x + vx, 0.0), level.width - P.PLAYER_W)
    hit = _first_solid_tile(level.solid, x, y, reverse=vx < 0)
    if hit is not None:
        x = hit[0] * P.TILE - P.PLAYER_W if vx > 0 else (hit[0] + 1) * P.TILE
        vx = 0.0

    y += vy
    on_ground = False
    hit = _first_solid_tile(level.solid, x, y, reverse=vy < 0)
    if hit is not None:
        if vy > 0:
            y, on_ground = hit[1] * P.TILE - P.PLAYER_H, True
        else:
            y = (hit[1] + 1) * P.TILE
        vy = 0.0
    return x, y, vx, vy, on_ground


def _first_solid_tile(solid: np.ndarray, x: float, y: float, reverse: bool) -> tuple[int, int] | None:
    """The solid tile (col, row) the player's box at (x, y) overlaps nearest the direction of motion."""
    eps = 1e-6
    c0, c1 = max(math.floor(x / P.TILE), 0), min(math.floor((x + P.PLAYER_W - eps) / P.TILE), solid.shape[1] - 1)
    r0, r1 = max(math.floor(y / P.TILE), 0), min(math.floor((y + P.PLAYER_H - eps) / P.TILE), P.ROWS - 1)
    tiles = [(c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1) if solid[r, c]]
    if not tiles:
        return None
    return tiles[-1] if reverse else tiles[0]
