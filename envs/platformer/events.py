"""The Platformer's rules read from pictures: what the real game would pay for a pair of frames.

A world's reward head is trusted by the agents that train in it. Where the world has drifted
from the real game (past a few dozen frames of open-loop play), the real game's own rewards no
longer describe the world's frames, so the head is judged against these rules applied to the
frames the world drew: a coin vanishes where the player now stands (+1), the player touches an
enemy or falls out of the picture (-1, the episode ends), the player reaches the flag (+10, the
episode ends). On real frames they agree with the game (`tests/test_platformer_events.py`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from envs.platformer import palette as P
from envs.platformer.detect import MIN_AREA, colour_labels, objects_in
from envs.platformer.env import COIN_REWARD, DEATH_REWARD, FLAG_REWARD

REACH = 2.5
"""Slack (level units) on the player's box when it takes a coin or touches an enemy: the
player moves up to MAX_FALL per step and the detector's centres are off by a pixel or so."""
SCROLL = 3.5
"""How far (level units) a coin may move between frames and still be the same coin: the camera
follows a player running at up to 1.6 a step, and centres are off by a pixel."""
FALL_ROW = 52.0
"""A player last seen below this row (its centre, level units) and gone next frame fell out."""
_PLAYER, _ENEMY = (len(P.SCENE_COLOURS) - len(P.OBJECT_COLOURS) + list(P.OBJECT_COLOURS).index(k) for k in ("player", "enemies"))


def _find(frames: np.ndarray, chunk: int = 256) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Each frame's objects, and how its player meets an enemy (T,) (see `_contact`)."""
    found, touch = [], []
    for s in range(0, len(frames), chunk):
        labels = colour_labels(frames[s : s + chunk])
        found += [objects_in(lab) for lab in labels]
        touch += [_contact(lab == _PLAYER, lab == _ENEMY) for lab in labels]
    return found, np.array(touch)


def _contact(player: np.ndarray, enemy: np.ndarray) -> int:
    """How the player meets an enemy, from the masks of their pixels (H, W): 0 apart, 1 side by
    side, 2 overlapping.

    The player is drawn over the enemies, so an overlap shows as an enemy next to the player and
    cut short by it (narrower or lower than an enemy). Side by side is a sub-pixel question the
    picture cannot settle: the game forgives a graze of half a unit. A patch of enemy colour
    smaller than the detector's smallest enemy is not one: on a world's frames a pixel or two at
    the player's blurred edge take that colour, and read as an overlap they killed the player
    where no enemy was drawn (27 of the 60 deaths the rules read past frame 128 on the shipped
    world's 16 long-play streams)."""
    if not player.any() or not enemy.any():
        return 0
    scale = player.shape[0] / P.VIEW
    grown = ndimage.binary_dilation(player, structure=np.ones((3, 3), dtype=bool))
    regions, _ = ndimage.label(enemy)
    contact = 0
    for i, box in enumerate(ndimage.find_objects(regions), start=1):
        if (regions[box] == i).sum() < MIN_AREA["enemies"] * scale**2 or not (grown[box] & (regions[box] == i)).any():
            continue
        height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
        cut = width < (P.ENEMY_W - 0.5) * scale or height < (P.ENEMY_H - 0.5) * scale
        contact = max(contact, 2 if cut else 1)
    return contact


def _closing(player: np.ndarray, before: np.ndarray, after: np.ndarray) -> bool:
    """Whether the enemy nearest the player came nearer between the two frames: side by side
    and closing in, the two met in the game's own sub-pixel positions."""
    if not len(before) or not len(after):
        return False
    return bool(np.abs(after - player).sum(axis=1).min() < np.abs(before - player).sum(axis=1).min())


def frame_events(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T + 1, H, W, 3) of one continuous stream -> (rewards (T,), terminated (T,)): what
    the game's rules pay for each step t -> t + 1, read from the two frames alone.

    A stream may run on past an ending (a world keeps drawing after the player fell), so an
    ending counts once: the player must be seen again before it can end another episode.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 2:
        raise ValueError(f"frame_events expects frames (T + 1, H, W, 3) with T >= 1, got shape {frames.shape}")
    scale = frames.shape[1] / P.VIEW
    found, touch = _find(frames)
    found = [{k: v / scale for k, v in f.items()} for f in found]
    t = len(frames) - 1
    rewards, ended = np.zeros(t, dtype=np.float32), np.zeros(t, dtype=bool)
    last_seen: np.ndarray | None = None
    armed = True  # cleared by an ending; set again once the player shows up clear of every ending
    for i in range(t):
        before, after = found[i], found[i + 1]
        if len(before["player"]):
            last_seen = before["player"][0]
            armed = armed or (touch[i] == 0 and not _at_flag(last_seen, before["flag"]))
        player = after["player"][0] if len(after["player"]) else None
        if player is not None:
            rewards[i] += COIN_REWARD * _coins_taken(before["coins"], after["coins"], player)
        if not armed:
            continue
        if player is None:
            if last_seen is not None and last_seen[1] > FALL_ROW:
                rewards[i] += DEATH_REWARD
                ended[i], armed = True, False
        elif touch[i + 1] == 2 or (touch[i + 1] == 1 and _closing(player, before["enemies"], after["enemies"])):
            rewards[i] += DEATH_REWARD
            ended[i], armed = True, False
        elif _at_flag(player, after["flag"]):
            rewards[i] += FLAG_REWARD
            ended[i], armed = True, False
    return rewards, ended


def _at_flag(player: np.ndarray, flags: np.ndarray) -> bool:
    """Whether the player (centre) reaches the pole left of the flag's cloth (centres)."""
    return bool(len(flags)) and bool(player[0] + P.PLAYER_W / 2 >= flags[:, 0].min() - 1.5 - P.FLAG_W / 2)


def _touches(player: np.ndarray, others: np.ndarray, size: tuple[float, float], slack: float) -> np.ndarray:
    """Which of `others` (N, 2 centres) overlap the player's box, grown by `slack` on each side."""
    if not len(others):
        return np.zeros(0, dtype=bool)
    reach = np.array([(P.PLAYER_W + size[0]) / 2 + slack, (P.PLAYER_H + size[1]) / 2 + slack])
    return (np.abs(others - player) <= reach).all(axis=1)


def _coins_taken(before: np.ndarray, after: np.ndarray, player: np.ndarray) -> int:
    """Coins of the earlier frame within the player's reach that the later frame no longer shows."""
    near = before[_touches(player, before, (P.COIN_SIZE, P.COIN_SIZE), REACH)]
    if not len(near):
        return 0
    if not len(after):
        return len(near)
    gone = np.linalg.norm(near[:, None] - after[None], axis=2).min(axis=1) > SCROLL
    return int(gone.sum())
