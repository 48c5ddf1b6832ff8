"""Kits for Atari games (through ale-py): the colours each game draws, by name, so that the
autoencoder's per-colour recall and the long-play content section speak of the game's own
things ("white boxer", "ring rope") instead of the most frequent colours of a few frames;
and, where the game's sprites each have a colour of their own, a detector that finds them.

Colours were read from the games' frames (ALE v5, RGB observations, 64x64; the score and
the clock are blends at that size, drawn in no colour of their own); sprites that share a
colour with something else are looked for only inside their own area.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Callable

import numpy as np

from worldgen.data.policies import RandomRepeatPolicy
from worldgen.kit import ContentKit, Detector, EventRules, GameKit, colour_content, nearest_colours, register_kit

MAX_COLOUR_DISTANCE = 60.0
"""A pixel further than this (RGB) from every palette colour is a blend and belongs to no sprite."""

Area = tuple[int, int, int, int]
"""(top, bottom, left, right) in a 64x64 frame, bottom and right exclusive."""


@dataclass(frozen=True)
class AtariGame:
    palette: dict[str, tuple[int, int, int]]
    sprites: dict[str, tuple[tuple[str, Area], ...]]
    """Sprite kind -> where its objects are drawn: one (palette colour, area) per object, the
    colour being one that only this object draws inside its area (Boxing: one boxer per kind
    in the ring; Freeway: one car per lane, each lane's car in a colour of its own)."""
    min_pixels: int = 8
    """Fewest pixels of its colour for an object to count as drawn (a boxer covers 19-43)."""
    background: dict[str, tuple[str, ...]] | None = None
    """Sprite kind -> the colours its objects' own colours are told apart from inside their
    areas (default: the whole palette). Freeway's lanes hold one car each, so a red car's
    edges, blended with the road, must not be claimed by the crimson car two lanes away."""
    explore_odds: tuple[float, ...] | None = None
    """The scripted player's odds of each action, held 1-10 steps (`--policy explore`); None:
    the game has none, and make-world plays uniformly at random."""
    histogram: tuple[str, ...] | None = None
    """Palette colours whose share of the pixels is a content measure (default: all). Small
    sprites are blends at 64x64 and draw no pixel in their exact colour; they are counted as
    objects instead."""


BOXING_RING: Area = (8, 57, 3, 64)

FREEWAY_CARS: dict[str, tuple[tuple[int, int, int], tuple[int, int]]] = {
    # Each lane's car: its colour, and its rows in the 64x64 frame (the native 210-row frame
    # draws lane k's car, k = 1..10, on rows 12 + 16 k .. 19 + 16 k; scaled by 64 / 210 and
    # widened to the pixels they blend into).
    "car 1 (red)": ((167, 26, 26), (8, 11)),
    "car 2 (light green)": ((180, 231, 117), (13, 16)),
    "car 3 (olive)": ((105, 105, 15), (18, 21)),
    "car 4 (pink)": ((228, 111, 111), (23, 26)),
    "car 5 (dark blue)": ((24, 26, 167), (28, 31)),
    "car 6 (brown)": ((162, 98, 33), (32, 36)),
    "car 7 (blue)": ((84, 92, 214), (37, 41)),
    "car 8 (crimson)": ((184, 50, 50), (42, 46)),
    "car 9 (green)": ((135, 183, 84), (47, 50)),
    "car 10 (yellow)": ((210, 210, 64), (52, 55)),
}
FREEWAY_LANES: dict[str, Area] = {name: (top, bottom, 0, 64) for name, (_, (top, bottom)) in FREEWAY_CARS.items()}

GAMES: dict[str, AtariGame] = {
    "ALE/Boxing-v5": AtariGame(
        palette={
            "ring": (110, 156, 66),
            "rope": (195, 144, 61),
            "black boxer and left border": (0, 0, 0),
            "white boxer": (214, 214, 214),
        },
        sprites={"white boxer": (("white boxer", BOXING_RING),), "black boxer": (("black boxer and left border", BOXING_RING),)},
    ),
    "ALE/Freeway-v5": AtariGame(
        palette={
            "road": (142, 142, 142),
            "lane marks": (170, 170, 170),
            "kerb": (214, 214, 214),
            "border": (0, 0, 0),
            "chicken": (206, 206, 108),  # (252, 252, 84) natively; 2 px wide at 64x64, always blended with the road
            "median line": (187, 187, 118),
            **{name: colour for name, (colour, _) in FREEWAY_CARS.items()},
        },
        # The player's chicken walks up column 18 (the other chicken, column 44, is not the
        # player's); a car is 2-3 rows tall at 64x64, with up to 15 pixels near its colour.
        sprites={"car": tuple(FREEWAY_LANES.items()), "chicken": (("chicken", (3, 61, 15, 22)),)},
        min_pixels=1,
        background={"car": ("road", "lane marks", "kerb", "border"), "chicken": ("road", "lane marks", "kerb", "border", "median line")},
        histogram=("road", "lane marks", "border"),
        # NOOP, UP, DOWN. Uniform play leaves the chicken in the lower half of the road in 92% of
        # frames and crosses about once an episode, so a world learns little of the upper lanes
        # and of the reward; leaning UP crosses often while still stopping and stepping back.
        explore_odds=(0.25, 0.6, 0.15),
    ),
}


def sprite_detector(game: AtariGame) -> Detector:
    """frame (H, W, 3) -> {sprite kind: (N, 2) centres (x, y) in pixels of a 64x64 frame}:
    inside an object's area each pixel takes its nearest colour among the object's own and the
    background (none past MAX_COLOUR_DISTANCE); the object is the pixels of its own colour,
    found when there are enough of them."""
    def told_from(kind: str, colour: str) -> np.ndarray:
        others = game.background[kind] if game.background is not None else game.palette
        return np.array([game.palette[colour], *(game.palette[n] for n in others if n != colour)], dtype=np.float32)

    places = {kind: [(told_from(kind, colour), area) for colour, area in where] for kind, where in game.sprites.items()}

    def detect(frame: np.ndarray) -> dict[str, np.ndarray]:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"the sprite detector expects an (H, W, 3) RGB frame, got shape {frame.shape}")
        scale = frame.shape[0] / 64
        found = {}
        for kind, where in places.items():
            centres = []
            for colours, area in where:
                top, bottom, left, right = (round(v * scale) for v in area)
                ys, xs = np.nonzero(nearest_colours(frame[top:bottom, left:right], colours, MAX_COLOUR_DISTANCE) == 0)
                if len(ys) >= game.min_pixels * scale**2:
                    centres.append(((xs.mean() + left + 0.5) / scale, (ys.mean() + top + 0.5) / scale))
            found[kind] = np.array(centres, dtype=np.float64).reshape(-1, 2)
        return found

    return detect


def sprite_content(game: AtariGame) -> ContentKit:
    """The palette's pixel shares; for a kind with one object the share of frames that draw it,
    and for a kind with several (Freeway's cars) how many each frame draws."""
    measured = game.histogram if game.histogram is not None else tuple(game.palette)
    colours, detect = colour_content({name: game.palette[name] for name in measured}), sprite_detector(game)
    single = [kind for kind, places in game.sprites.items() if len(places) == 1]

    def measure(frames: np.ndarray) -> dict[str, np.ndarray]:
        out = colours.measure(frames)
        seen = [detect(f) for f in frames]
        for kind in game.sprites:
            counts = np.array([len(s[kind]) for s in seen], dtype=np.float64)
            out.update({f"{kind} drawn": (counts > 0).astype(np.float64)} if kind in single else {f"{kind}s drawn": counts})
        return out

    return ContentKit(measure=measure, shares=tuple(f"{kind} drawn" for kind in single))


FREEWAY_TOP_ROW, FREEWAY_START_ROW = 16.0, 40.0
"""A crossing: the chicken last seen above the top row (it is at 6-10 the step before the
game pays), then drawn below the start row: the game puts it back at row 58, and a car knocks
it back one lane, about 5 rows."""


def freeway_events() -> EventRules:
    """Freeway's rules read from frames: +1 a crossing, and no termination (an episode ends on
    the clock, a truncation). On the explorer's 100 collected episodes they find every paid
    crossing (1,004) at its own step, and no other."""
    game = GAMES["ALE/Freeway-v5"]
    detect = sprite_detector(replace(game, sprites={"chicken": game.sprites["chicken"]}))

    def events(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 2:
            raise ValueError(f"Freeway's event rules expect frames (T + 1, H, W, 3) with T >= 1, got shape {frames.shape}")
        scale = frames.shape[1] / 64
        rows = np.array([c[0, 1] / scale if len(c := detect(f)["chicken"]) else np.nan for f in frames])
        # each frame's chicken, or the one drawn last before it (NaN before the first)
        at = np.maximum.accumulate(np.where(~np.isnan(rows), np.arange(len(rows)), -1))
        last_seen = np.where(at >= 0, rows[np.maximum(at, 0)], np.nan)
        crossed = (last_seen[:-1] < FREEWAY_TOP_ROW) & (rows[1:] > FREEWAY_START_ROW)
        return crossed.astype(np.float32), np.zeros(len(frames) - 1, dtype=bool)

    return events


EVENTS: dict[str, Callable[[], EventRules]] = {"ALE/Freeway-v5": freeway_events}
"""Games whose rewards can be read from their frames (for the reward head on a world's own frames)."""


def _explorer(odds: tuple[float, ...], seed: int | None) -> RandomRepeatPolicy:
    return RandomRepeatPolicy(len(odds), seed=seed, weights=odds)


for env_id, game in GAMES.items():
    explorer = None if game.explore_odds is None else partial(_explorer, game.explore_odds)
    events = EVENTS[env_id]() if env_id in EVENTS else None
    register_kit(env_id, GameKit(policy=explorer, detect=sprite_detector(game), content=sprite_content(game), events=events,
                                 palette=game.palette))
