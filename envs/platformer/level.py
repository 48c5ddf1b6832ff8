"""Procedural Platformer levels: one seed, one level, the same on every machine."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from envs.platformer.palette import ENEMY_H, ENEMY_W, ROWS, TILE

START_TILES = 6
"""Flat, safe ground at the start, where the player spawns."""
END_TILES = 8
"""Flat ground at the end, where the flag stands."""


@dataclass(frozen=True)
class EnemySpawn:
    x: float
    """Left edge at reset, level units."""
    y: float
    """Top edge (enemies walk on the ground, so it never changes)."""
    x_min: float
    x_max: float
    """Patrol bounds for the left edge."""
    speed: float
    direction: int
    """+1 walks right first, -1 left."""


@dataclass(frozen=True)
class Level:
    seed: int
    solid: np.ndarray
    """(ROWS, W) bool: tiles the player collides with (ground and platforms)."""
    platform: np.ndarray
    """(ROWS, W) bool: the floating-platform subset of `solid` (drawn as bricks)."""
    coins: np.ndarray
    """(N, 2) float: coin centres (x, y), level units."""
    enemies: tuple[EnemySpawn, ...]
    flag_x: float
    """Left edge of the flag pole; touching it ends the level."""
    clouds: np.ndarray
    """(M, 3) float: decorative clouds (x, y, width)."""

    @property
    def width(self) -> float:
        """Level width in level units."""
        return float(self.solid.shape[1] * TILE)

    def ground_row(self, col: int) -> int:
        """Top solid ground row of a column, counted from the top; ROWS for a gap."""
        ground = self.solid[:, col] & ~self.platform[:, col]
        rows = np.flatnonzero(ground)
        return int(rows[0]) if rows.size else ROWS


@lru_cache(maxsize=64)
def generate_level(seed: int) -> Level:
    """Build the level of a seed: ground segments with gaps and steps, floating platforms,
    coins, patrolling enemies and a flag at the far end. Every gap is jumpable and every
    step is at most two tiles, so each level can be finished."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(80, 121))
    solid = np.zeros((ROWS, width), dtype=bool)
    platform = np.zeros((ROWS, width), dtype=bool)
    coins: list[tuple[float, float]] = []
    enemies: list[EnemySpawn] = []

    height = 2  # ground thickness in tiles
    col = 0
    segments: list[tuple[int, int, int]] = []  # (first column, end column, top row)
    while col < width:
        if col == 0:
            length = START_TILES
        elif col >= width - END_TILES - 4:
            length = width - col
        else:
            if rng.random() < 0.35:
                gap = int(rng.integers(2, 4))
                if rng.random() < 0.5:  # a platform over the gap helps, and varies the scene
                    _place_platform(rng, solid, platform, coins, col - 1, gap + 2, ROWS - height - 3)
                col += gap
            height = int(np.clip(height + rng.integers(-1, 2), 1, 3))
            length = int(rng.integers(4, 12))
        end = min(col + length, width)
        top = ROWS - height
        solid[top:, col:end] = True
        segments.append((col, end, top))
        col = end

    for first, end, top in segments[1:]:
        if end - first >= 5 and first < width - END_TILES and rng.random() < 0.5:
            p_width = int(rng.integers(2, 5))
            p_col = int(rng.integers(first, end - p_width + 1))
            _place_platform(rng, solid, platform, coins, p_col, p_width, top - int(rng.integers(2, 4)))
        if rng.random() < 0.5:
            n = int(rng.integers(1, 4))
            c0 = int(rng.integers(first, max(first + 1, end - n)))
            for c in range(c0, min(c0 + n, end)):
                if not solid[top - 1, c]:
                    coins.append(((c + 0.5) * TILE, (top - 0.5) * TILE))
        if end - first >= 5 and first >= START_TILES + 2 and end <= width - END_TILES and rng.random() < 0.45:
            enemies.append(_enemy_on(rng, first, end, top))

    if not enemies:  # every level has at least one enemy: pick the longest mid-level segment
        middle = [s for s in segments[1:] if s[1] <= width - END_TILES] or segments[1:]
        first, end, top = max(middle, key=lambda s: s[1] - s[0])
        enemies.append(_enemy_on(rng, first, end, top))

    n_clouds = width // 10
    clouds = np.stack(
        [rng.uniform(0, width * TILE, n_clouds), rng.uniform(3, 2 * TILE, n_clouds), rng.uniform(8, 16, n_clouds)],
        axis=1,
    )
    coin_array = np.array(coins, dtype=np.float64).reshape(-1, 2)
    return Level(
        seed=seed,
        solid=solid,
        platform=platform,
        coins=coin_array,
        enemies=tuple(enemies),
        flag_x=float((width - 3) * TILE),
        clouds=clouds,
    )


def _place_platform(
    rng: np.random.Generator,
    solid: np.ndarray,
    platform: np.ndarray,
    coins: list[tuple[float, float]],
    col: int,
    width: int,
    row: int,
) -> None:
    """A floating platform of `width` tiles at `row`, with coins on it half the time."""
    row = int(np.clip(row, 2, ROWS - 3))
    cols = slice(max(col, 0), min(col + width, solid.shape[1]))
    if solid[row - 1 : row + 2, cols].any():  # keep head room and never merge into the ground
        return
    solid[row, cols] = True
    platform[row, cols] = True
    if rng.random() < 0.5:
        for c in range(cols.start, cols.stop):
            coins.append(((c + 0.5) * TILE, (row - 0.5) * TILE))


def _enemy_on(rng: np.random.Generator, first: int, end: int, top: int) -> EnemySpawn:
    x_min, x_max = first * TILE + 1.0, end * TILE - ENEMY_W - 1.0
    return EnemySpawn(
        x=float(rng.uniform(x_min, x_max)),
        y=top * TILE - ENEMY_H,
        x_min=x_min,
        x_max=x_max,
        speed=float(rng.uniform(0.35, 0.6)),
        direction=int(rng.choice([-1, 1])),
    )


