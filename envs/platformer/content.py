"""What a player sees of a Platformer level, counted per frame from pixels alone, so that real
frames and a world's frames are measured alike over minutes of play.

A world that lets the level fade keeps its player and its sky: PSNR hardly moves while
platforms, gaps, coins and enemies disappear. These counts catch exactly that.
"""

from __future__ import annotations

import numpy as np

from envs.platformer import palette as P
from envs.platformer.detect import colour_labels, objects_in

_INDEX = {tuple(int(v) for v in c): i for i, c in enumerate(P.SCENE_COLOURS)}
PLATFORM_COLOURS = [_INDEX[P.PLATFORM], _INDEX[P.MORTAR]]
GROUND_COLOURS = [_INDEX[P.GRASS], _INDEX[P.DIRT], _INDEX[P.DIRT_DARK]]
SOLID_COLOURS = GROUND_COLOURS + PLATFORM_COLOURS
TEXTURE = _INDEX[P.DIRT_DARK]
STILL_PX = 0.5
"""Vertical motion (level units) below which an unsupported player counts as held up by nothing.
In the real game this happens only at the top of a jump, for a frame or two."""

CONTENT_KINDS = ("coins", "enemies", "flags", "platform_px", "gap_columns", "texture_px", "unsupported")


def platformer_content(frames: np.ndarray, chunk: int = 256) -> dict[str, np.ndarray]:
    """Per frame of a stream (T, H, W, 3):
    - coins, enemies: sprites found by the game's detector;
    - flags: the level's end in view (the flag's cloth, found by the detector): a world that
      scrolls on forever never draws it, so an agent in it never meets the flag's +10;
    - platform_px: pixels of floating platforms (bricks and mortar);
    - gap_columns: columns whose bottom pixel is not ground (a gap in the floor);
    - texture_px: the dark dots in the dirt (1-pixel detail);
    - unsupported: 1 where the player stands on nothing (no solid pixel under its feet) and
      has not moved vertically since the frame before, 0 where it is supported or moving,
      NaN where the player is not found in this frame or the one before.
    """
    t = len(frames)
    out = {kind: np.zeros(t) for kind in CONTENT_KINDS}
    player = np.full((t, 2), np.nan)
    for s in range(0, t, chunk):
        labels = colour_labels(frames[s : s + chunk])  # (n, H, W)
        out["platform_px"][s : s + chunk] = np.isin(labels, PLATFORM_COLOURS).sum(axis=(1, 2))
        out["gap_columns"][s : s + chunk] = (~np.isin(labels[:, -1], GROUND_COLOURS)).sum(axis=1)
        out["texture_px"][s : s + chunk] = (labels == TEXTURE).sum(axis=(1, 2))
        for i, frame_labels in enumerate(labels):
            found = objects_in(frame_labels)
            out["coins"][s + i], out["enemies"][s + i], out["flags"][s + i] = (len(found[k]) for k in ("coins", "enemies", "flag"))
            if len(found["player"]):
                player[s + i] = found["player"][0]
                out["unsupported"][s + i] = not _supported(frame_labels, found["player"][0])
    scale = frames.shape[1] / P.VIEW
    moved = np.abs(np.diff(player[:, 1], prepend=np.nan)) / scale  # (T,) NaN where either frame lacks the player
    out["unsupported"] = np.where(np.isfinite(moved), out["unsupported"] * (moved < STILL_PX), np.nan)
    return out


def _supported(labels: np.ndarray, centre: np.ndarray) -> bool:
    """Is any solid pixel in the row of level units just under the player's feet?"""
    scale = labels.shape[0] / P.VIEW
    feet = int(round(centre[1] + P.PLAYER_H / 2 * scale))
    c0 = max(int(round(centre[0] - P.PLAYER_W / 2 * scale)), 0)
    c1 = int(round(centre[0] + P.PLAYER_W / 2 * scale))
    below = labels[feet : feet + max(int(round(scale)), 1), c0:c1]
    return bool(np.isin(below, SOLID_COLOURS).any())
