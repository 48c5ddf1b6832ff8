"""Colours and sprite sizes of the Platformer, shared by its renderer and its object detector.

Every colour is far (> 80 in RGB distance) from every colour a detector must tell it apart
from, so sprites stay recognisable in noisy or blurred frames, real or generated.
All sizes are in level units: one unit is one pixel of the 64x64 frame.
"""

from __future__ import annotations

import numpy as np

TILE = 8
"""Side of a level tile."""
VIEW = 64
"""Side of the visible window; the frame is VIEW x VIEW level units at any render size."""
ROWS = VIEW // TILE

SKY = (120, 180, 255)
CLOUD = (250, 250, 250)
GRASS = (70, 180, 60)
DIRT = (150, 95, 50)
DIRT_DARK = (115, 70, 35)
PLATFORM = (225, 140, 60)
MORTAR = (170, 95, 35)
POLE = (90, 90, 90)
COIN = (255, 225, 0)
ENEMY = (220, 30, 30)
PLAYER = (140, 40, 210)
FLAG = (0, 220, 210)
EYE = (250, 250, 250)

PLAYER_W, PLAYER_H = 5.0, 7.0
ENEMY_W, ENEMY_H = 6.0, 5.0
COIN_SIZE = 4.0
FLAG_W, FLAG_H = 6.0, 4.0
POLE_H = 3 * TILE

OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "player": PLAYER,
    "coins": COIN,
    "enemies": ENEMY,
    "flag": FLAG,
}
"""The sprite kinds `detect_objects` reports, keyed as in its result."""

SCENE_COLOURS = np.array(
    [SKY, CLOUD, GRASS, DIRT, DIRT_DARK, PLATFORM, MORTAR, POLE, *OBJECT_COLOURS.values()],
    dtype=np.float32,
)
"""Every colour the renderer draws; the last len(OBJECT_COLOURS) rows are the sprites."""
SCENE_NAMES = ("sky", "cloud", "grass", "dirt", "dirt_dark", "platform", "mortar", "pole", *OBJECT_COLOURS)
"""The names of SCENE_COLOURS' rows (the eyes are drawn in the cloud's white)."""
