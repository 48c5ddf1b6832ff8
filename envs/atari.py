"""Kits for Atari games (through ale-py): the colours each game draws, by name, so that the
autoencoder's per-colour recall and the long-play content section speak of the game's own
things ("white boxer", "ring rope") instead of the most frequent colours of a few frames.

Colours were read from the games' frames (ALE v5, RGB observations); sprites that share a
colour with the scoreboard count together.
"""

from __future__ import annotations

from worldgen.kit import GameKit, colour_content, register_kit

PALETTES: dict[str, dict[str, tuple[int, int, int]]] = {
    "ALE/Boxing-v5": {
        "ring": (110, 156, 66),
        "rope": (195, 144, 61),
        "black boxer and score": (0, 0, 0),
        "white boxer and score": (214, 214, 214),
        "clock": (20, 60, 0),
    },
}

for env_id, palette in PALETTES.items():
    register_kit(env_id, GameKit(content=colour_content(palette), palette=palette))
