"""Episode endings replayed in a world: does it end an episode, and pay, where the game does?

A level's end comes once per level and a death once per life, so the long-play tables barely see
them: a world that never draws the flag being reached looks no worse there. Agents do see it. In
a world that never pays the Platformer's flag (+10, most of what always jumping right earns in
the real game) an agent cannot learn to reach it. So each ending of real play on unseen levels
is replayed: the world starts from the K real frames `lead` steps before it and follows the
recorded actions; it should end the episode within `tolerance` steps of the game's ending and
pay what the game paid there.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from worldgen.codec import LatentCodec
from worldgen.eval import Method, generate

ENDING_LEAD = 20
"""Steps before each recorded ending that the world starts from."""
ENDING_TOLERANCE = 4
"""Steps a replayed ending may come early or late: the world's player may run a little faster or
slower than the game's and still reach the flag or the enemy."""
ENDING_LEVELS = 48
"""Unseen levels played to their end for the table (the Platformer's explorer: about 15 wins and
20 deaths)."""


@dataclass
class Ending:
    """The last moments of one episode of real play that ended (a death, a win)."""

    frames: np.ndarray
    """(K + lead + 1, H, W, 3): K prompt frames, the `lead` frames after them, and the frame the ending step drew."""
    actions: np.ndarray
    """(K + lead,): between those frames; the last one is the ending step's."""
    paid: float
    """What the game paid on the ending step."""


def record_endings(make_env: Callable[[], Any], policy: Any, seeds: list[int], k: int, lead: int = ENDING_LEAD,
                   max_steps: int = 1000) -> list[Ending]:
    """Play one episode on each level seed (`policy.act(obs, infos, starts)`, as in collection) and
    keep the last K + lead steps of each that terminated after at least that many steps (not those
    cut by a time limit, nor those still going after `max_steps`: an Atari game runs for minutes)."""
    env = make_env()
    out = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        frames, actions = deque([obs], maxlen=k + lead + 1), deque(maxlen=k + lead)
        start, done, steps = True, False, 0
        while not done and steps < max_steps:
            action = int(policy.act(obs[None], [info], np.array([start]))[0])
            obs, reward, terminated, truncated, info = env.step(action)
            frames.append(obs)
            actions.append(action)
            start, done, steps = False, terminated or truncated, steps + 1
        if done and terminated and len(actions) == k + lead:
            out.append(Ending(np.stack(frames), np.array(actions, dtype=np.int64), float(reward)))
    env.close()
    return out


def endings_report(methods: list[Method], endings: list[Ending], codec: LatentCodec, k: int, reward_head: torch.nn.Module,
                   lead: int = ENDING_LEAD, tolerance: int = ENDING_TOLERANCE, seed: int = 0) -> dict[str, Any]:
    """Per method (those with a network) and per reward the game paid at the end: how many
    endings the world ended in time (its first ending within `tolerance` steps of the game's), and
    of those how many it paid as the game did. After the game's ending the world goes on with
    that step's action held."""
    report: dict[str, Any] = {"lead": lead, "tolerance": tolerance, "methods": {}}
    if not endings:
        return report
    context = torch.stack([codec.encode(e.frames[:k]) for e in endings])  # (N, K, C, h, w)
    held = [np.concatenate([e.actions, np.full(tolerance, e.actions[-1])]) for e in endings]
    actions = torch.from_numpy(np.stack(held)).to(codec.device)  # (N, K - 1 + lead + 1 + tolerance)
    for m in methods:
        if m.net is None:
            continue
        _, rewards, ended = generate(m, context, actions, codec, seed, reward_head)
        groups: dict[str, dict[str, int]] = {}
        for row, e in enumerate(endings):
            group = groups.setdefault(f"{e.paid:+g}", {"n": 0, "ended": 0, "paid": 0})
            group["n"] += 1
            first = int(np.argmax(ended[row])) if ended[row].any() else -1
            if first >= 0 and abs(first - lead) <= tolerance:
                group["ended"] += 1
                group["paid"] += int(abs(float(rewards[row, first]) - e.paid) < 0.5)
        report["methods"][m.name] = dict(sorted(groups.items(), key=lambda kv: float(kv[0])))
    return report


def format_endings(report: dict[str, Any]) -> str:
    """One row per method and reward paid at the end: endings, ended in time, and paid the same."""
    if not report["methods"]:
        return ""
    lines = ["| method | the game paid at the end | endings | the world ended it in time | and paid the same |",
             "|---|---|---|---|---|"]
    for name, groups in report["methods"].items():
        for paid, g in groups.items():
            lines.append(f"| {name} | {paid} | {g['n']} | {g['ended']} ({g['ended'] / g['n']:.0%}) | {g['paid']} ({g['paid'] / g['n']:.0%}) |")
    return "\n".join(lines)
