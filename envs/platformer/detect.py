"""Find the Platformer's own sprites in any frame, real or generated, by their colours."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from envs.platformer import palette as P
from worldgen.kit import nearest_colours

MAX_COLOUR_DISTANCE = 60.0
"""A pixel further than this (RGB, 0-255) from every scene colour belongs to no sprite:
blends at blurred edges fall here instead of passing for a third colour."""

MIN_AREA = {"player": 6.0, "coins": 2.5, "enemies": 5.0, "flag": 4.0}
"""Smallest sprite core, in pixels of a 64x64 frame, that survives noise and a 3x3 blur."""


def colour_labels(frames: np.ndarray) -> np.ndarray:
    """Index into `palette.SCENE_COLOURS` of each pixel's nearest game colour, -1 where a pixel
    is far from all of them. frames (..., H, W, 3) -> (..., H, W) int64."""
    return nearest_colours(frames, P.SCENE_COLOURS, MAX_COLOUR_DISTANCE)


def detect_objects(frame: np.ndarray) -> dict[str, np.ndarray]:
    """Screen positions of the player, coins, enemies and flag in one frame.

    Each pixel takes the nearest of the game's colours (or none, if it is far from all of
    them); each connected region of a sprite colour at least a sprite's core in size is one
    object. Works at any square frame size.

    frame: (H, W, 3) uint8 or float in [0, 255]. Returns, per kind, an (N, 2) float array of
    (x, y) centres in pixels; "player" holds at most one (the largest region).
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"detect_objects expects an (H, W, 3) RGB frame, got shape {frame.shape}")
    return objects_in(colour_labels(frame))


def objects_in(labels: np.ndarray) -> dict[str, np.ndarray]:
    """`detect_objects` on a frame's `colour_labels` (H, W)."""
    scale = labels.shape[0] / P.VIEW
    first_sprite = len(P.SCENE_COLOURS) - len(P.OBJECT_COLOURS)
    found: dict[str, np.ndarray] = {}
    for i, kind in enumerate(P.OBJECT_COLOURS):
        regions, n = ndimage.label(labels == first_sprite + i)
        if n == 0:
            found[kind] = np.zeros((0, 2))
            continue
        index = np.arange(1, n + 1)
        areas = ndimage.sum_labels(np.ones_like(regions), regions, index)
        keep = index[areas >= MIN_AREA[kind] * scale**2]
        if kind == "player" and keep.size:
            keep = keep[[np.argmax(areas[keep - 1])]]
        centres = np.array(ndimage.center_of_mass(np.ones_like(regions), regions, keep)).reshape(-1, 2)
        # centre_of_mass gives (row, col) of pixel indices; pixel i covers [i, i + 1).
        found[kind] = centres[:, ::-1] + 0.5
    return found
