"""Kits for Atari games (through ale-py): the colours each game draws, by name, so that the
autoencoder's per-colour recall and the long-play content section speak of the game's own
things ("white boxer", "ring rope") instead of the most frequent colours of a few frames;
and, where the game's sprites each have a colour of their own, a detector that finds them.

Colours were read from the games' frames (ALE v5, RGB observations, 64x64; the score and
the clock are blends at that size, drawn in no colour of their own); sprites that share a
colour with something else are looked for only inside the play area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldgen.kit import ContentKit, Detector, GameKit, colour_content, nearest_colours, register_kit

MAX_COLOUR_DISTANCE = 60.0
"""A pixel further than this (RGB) from every palette colour is a blend and belongs to no sprite."""


@dataclass(frozen=True)
class AtariGame:
    palette: dict[str, tuple[int, int, int]]
    sprites: dict[str, str]
    """Sprite kind -> the palette colour only that sprite draws inside `area`."""
    area: tuple[int, int, int, int]
    """(top, bottom, left, right) of the play area in a 64x64 frame, bottom and right exclusive."""
    min_pixels: int = 8
    """Fewest pixels of its colour for a sprite to count as drawn (a boxer covers 19-43)."""


GAMES: dict[str, AtariGame] = {
    "ALE/Boxing-v5": AtariGame(
        palette={
            "ring": (110, 156, 66),
            "rope": (195, 144, 61),
            "black boxer and left border": (0, 0, 0),
            "white boxer": (214, 214, 214),
        },
        sprites={"white boxer": "white boxer", "black boxer": "black boxer and left border"},
        area=(8, 57, 3, 64),
    ),
}


def sprite_detector(game: AtariGame) -> Detector:
    """frame (H, W, 3) -> {sprite kind: (0 or 1, 2) centre (x, y) in pixels of a 64x64 frame}:
    each pixel takes its nearest palette colour (none past MAX_COLOUR_DISTANCE); a sprite is
    the pixels of its colour inside the play area, found when there are enough of them."""
    names = list(game.palette)
    colours = np.array([game.palette[n] for n in names], dtype=np.float32)
    top, bottom, left, right = game.area

    def detect(frame: np.ndarray) -> dict[str, np.ndarray]:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"the sprite detector expects an (H, W, 3) RGB frame, got shape {frame.shape}")
        scale = frame.shape[0] / 64
        crop = frame[round(top * scale) : round(bottom * scale), round(left * scale) : round(right * scale)]
        labels = nearest_colours(crop, colours, MAX_COLOUR_DISTANCE)
        found = {}
        for kind, colour in game.sprites.items():
            ys, xs = np.nonzero(labels == names.index(colour))
            if len(ys) < game.min_pixels * scale**2:
                found[kind] = np.zeros((0, 2))
            else:
                found[kind] = (np.array([[xs.mean() + left * scale, ys.mean() + top * scale]]) + 0.5) / scale
        return found

    return detect


def sprite_content(game: AtariGame) -> ContentKit:
    """The palette's pixel shares, and for each sprite the share of frames that draw it."""
    colours, detect = colour_content(game.palette), sprite_detector(game)

    def measure(frames: np.ndarray) -> dict[str, np.ndarray]:
        out = colours.measure(frames)
        seen = [detect(f) for f in frames]
        out.update({f"{kind} drawn": np.array([len(s[kind]) > 0 for s in seen], dtype=np.float64) for kind in game.sprites})
        return out

    return ContentKit(measure=measure, shares=tuple(f"{kind} drawn" for kind in game.sprites))


for env_id, game in GAMES.items():
    register_kit(env_id, GameKit(detect=sprite_detector(game), content=sprite_content(game), palette=game.palette))
