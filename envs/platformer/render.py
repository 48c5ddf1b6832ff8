"""Numpy renderer for the Platformer: a pre-drawn level strip, a camera slice, then sprites."""

from __future__ import annotations

import numpy as np

from envs.platformer import palette as P
from envs.platformer.level import Level


class Renderer:
    """Draws frames of one level at `size` x `size` pixels.

    The static scene (sky, clouds, ground, platforms, flag) is drawn once per level into a
    strip as wide as the level, so a frame costs one slice copy plus a few sprite fills.
    """

    def __init__(self, level: Level, size: int) -> None:
        self.size = size
        self.scale = size / P.VIEW
        self.strip = self._draw_static(level)

    def frame(
        self,
        camera_x: float,
        coins: np.ndarray,
        enemies: np.ndarray,
        enemy_directions: np.ndarray,
        player: tuple[float, float],
        facing: int,
    ) -> np.ndarray:
        """Render one frame.

        coins: (N, 2) centres of coins still in play; enemies: (M, 2) top-left corners;
        player: top-left corner; all in level units. Returns (size, size, 3) uint8.
        """
        x0 = int(round(camera_x * self.scale))
        img = self.strip[:, x0 : x0 + self.size].copy()  # (S, S, 3)
        half = P.COIN_SIZE / 2
        for cx, cy in coins:
            self._fill(img, cx - half - camera_x, cy - half, cx + half - camera_x, cy + half, P.COIN)
        for (ex, ey), d in zip(enemies, enemy_directions):
            ex -= camera_x
            self._fill(img, ex, ey, ex + P.ENEMY_W, ey + P.ENEMY_H, P.ENEMY)
            eye = ex + (3.5 if d > 0 else 1.5)
            self._fill(img, eye - 0.5, ey + 1, eye + 0.5, ey + 2, P.EYE)
        px, py = player[0] - camera_x, player[1]
        self._fill(img, px, py, px + P.PLAYER_W, py + P.PLAYER_H, P.PLAYER)
        eye = px + (3.0 if facing > 0 else 1.0)
        self._fill(img, eye, py + 1.5, eye + 1, py + 2.5, P.EYE)
        return img

    def _fill(self, img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: tuple[int, int, int]) -> None:
        """Fill a rectangle given in level units relative to the image's left edge."""
        s = self.scale
        h, w = img.shape[:2]
        c0, c1 = max(int(round(x0 * s)), 0), min(int(round(x1 * s)), w)
        r0, r1 = max(int(round(y0 * s)), 0), min(int(round(y1 * s)), h)
        if c0 < c1 and r0 < r1:
            img[r0:r1, c0:c1] = colour

    def _draw_static(self, level: Level) -> np.ndarray:
        width_px = int(round(level.width * self.scale))
        strip = np.empty((self.size, width_px, 3), dtype=np.uint8)
        strip[:] = P.SKY
        for x, y, w in level.clouds:
            self._fill(strip, x, y + 2, x + w, y + 5, P.CLOUD)
            self._fill(strip, x + w * 0.25, y, x + w * 0.75, y + 2, P.CLOUD)
        t = P.TILE
        rows, cols = level.solid.shape
        for r in range(rows):
            for c in range(cols):
                if not level.solid[r, c]:
                    continue
                x, y = c * t, r * t
                if level.platform[r, c]:
                    self._fill(strip, x, y, x + t, y + t, P.PLATFORM)
                    self._fill(strip, x, y + 3.5, x + t, y + 4.5, P.MORTAR)
                    self._fill(strip, x, y + t - 1, x + t, y + t, P.MORTAR)
                    self._fill(strip, x + 3.5, y, x + 4.5, y + 3.5, P.MORTAR)
                    continue
                self._fill(strip, x, y, x + t, y + t, P.DIRT)
                if r == 0 or not level.solid[r - 1, c]:
                    self._fill(strip, x, y, x + t, y + 2, P.GRASS)
                dx = 2 if (r + c) % 2 else 5
                self._fill(strip, x + dx, y + 4, x + dx + 1, y + 5, P.DIRT_DARK)
                self._fill(strip, x + 7 - dx, y + 6, x + 8 - dx, y + 7, P.DIRT_DARK)
        ground_top = level.ground_row(int(level.flag_x // t)) * t
        self._fill(strip, level.flag_x, ground_top - P.POLE_H, level.flag_x + 1, ground_top, P.POLE)
        top = ground_top - P.POLE_H
        self._fill(strip, level.flag_x + 1, top, level.flag_x + 1 + P.FLAG_W, top + P.FLAG_H, P.FLAG)
        # A strip one view wider than the level keeps the camera slice full-size at the far end.
        pad = np.empty((self.size, self.size, 3), dtype=np.uint8)
        pad[:] = P.SKY
        return np.concatenate([strip, pad], axis=1)
