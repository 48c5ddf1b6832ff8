"""Game kits: what worldgen knows of a source game beyond its Gymnasium API.

A game registers its kit under its env id (this project's games and the Atari games do so in
`envs`, which `kit_for` imports when first asked for one of them);
collection, evaluation and the CLI ask `kit_for(env_id)` and name no game. A game without a
kit still works everywhere, with random play and the generic measures.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

Detector = Callable[[np.ndarray], dict[str, np.ndarray]]
"""A frame (H, W, 3) -> {sprite kind: (N, 2) centres (x, y) in pixels}."""
Objects = dict[str, dict[int, tuple[float, float]]]
"""The objects a frame shows, from the game's ground truth: {kind: {object id: (x, y) centre}}."""
EventRules = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Frames (T + 1, H, W, 3) uint8 of one continuous stream -> (rewards (T,), terminated (T,) bool):
what the game's rules pay for each step, read from the pictures alone. The ground truth for a
world's reward head on frames the real game never drew."""
ContentMeasure = Callable[[np.ndarray], dict[str, np.ndarray]]
"""Frames (T, H, W, 3) uint8 of one continuous stream -> {kind: (T,) float per frame}, NaN
where a kind is undefined in a frame. A stream, not single frames: some measures (is the
player falling?) need the frame before."""


@dataclass(frozen=True)
class ContentKit:
    """A game's own content measures for long play (`worldgen eval`'s content section)."""

    measure: ContentMeasure
    shares: tuple[str, ...] = ()
    """Kinds that are 0 or 1 per frame (the player held up by nothing): compared as two rates
    side by side, not as a ratio."""
    rare: tuple[str, ...] = ()
    """Kinds a level shows only now and then (the Platformer's flag, at a level's end): reported,
    but left out of `tune`'s choice, where the few frames of a bin that show one would outweigh
    every other kind."""


@dataclass(frozen=True)
class GameKit:
    policy: Callable[[int | None], Any] | None = None
    """seed -> a scripted player (a `worldgen.data.policies.Policy`) for collection and eval."""
    detect: Detector | None = None
    objects_of: Callable[[dict], Objects] | None = None
    """A step's `info` -> the objects on screen (ground truth), to tell which objects a prompt showed."""
    content: ContentKit | None = None
    events: EventRules | None = None
    palette: dict[str, tuple[int, int, int]] | None = None
    """Every colour the game draws, by name, for the autoencoder's per-colour recall (default:
    the most frequent colours of the frames)."""


_KITS: dict[str, GameKit] = {}


def nearest_colours(frames: np.ndarray, colours: np.ndarray, max_distance: float) -> np.ndarray:
    """Index into `colours` (n, 3) of each pixel's nearest colour, -1 where a pixel is further
    than `max_distance` (RGB) from all of them: how a game's detector tells its sprites from the
    blends at blurred edges. frames (..., 3) -> (...) int64."""
    pixels = np.asarray(frames).reshape(-1, 3).astype(np.float32)
    colours = np.asarray(colours, dtype=np.float32)
    # Squared distances as |p|^2 - 2 p.c + |c|^2: one matrix product, not an (N, n, 3) array.
    d2 = (pixels**2).sum(axis=1, keepdims=True) - 2 * pixels @ colours.T + (colours**2).sum(axis=1)[None]  # (N, n)
    nearest = d2.argmin(axis=1)
    nearest[d2[np.arange(len(d2)), nearest] > max_distance**2] = -1
    return nearest.reshape(np.shape(frames)[:-1])


def colour_content(palette: dict[str, tuple[int, int, int]], tolerance: int = 8) -> ContentKit:
    """Content measures for a game whose kit gives none: each palette colour's share of the
    pixels, per frame (a colour histogram), so that the long-play section still shows what
    fades. `tolerance`: per-channel distance still counted as the colour (the decoder's error)."""
    colours = {name: np.array(rgb, dtype=np.int16) for name, rgb in palette.items()}

    def measure(frames: np.ndarray) -> dict[str, np.ndarray]:
        flat = frames.reshape(len(frames), -1, 1, 3).astype(np.int16)
        return {f"colour {name}": (np.abs(flat[:, :, 0] - rgb).max(-1) <= tolerance).mean(1) for name, rgb in colours.items()}

    return ContentKit(measure=measure)


def register_kit(env_id: str, kit: GameKit) -> None:
    _KITS[env_id] = kit


BUILT_IN_KITS = "envs"
"""The package whose import registers the kits of this project's games and of the Atari games
(`worldgen/...`, `ALE/...`)."""


def kit_for(env_id: str) -> GameKit:
    """The kit of a game (an empty one if it has none). Ids may carry the module that registers
    the game, as world.json's `envs:worldgen/Platformer-v0` does. The built-in kits are loaded on
    first use: a script that asked for the Platformer's kit before anything had imported them got
    an empty one, and judged a world on random play where the scripted player was meant."""
    game = env_id.rpartition(":")[2]
    if game not in _KITS and game.startswith(("worldgen/", "ALE/")):
        importlib.import_module(BUILT_IN_KITS)
    return _KITS.get(game, GameKit())
