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
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from worldgen.atomic import atomic_path
from worldgen.codec import LatentCodec
from worldgen.eval import Method, generate
from worldgen.frames import labelled_grid

ENDING_LEAD = 20
"""Steps before each recorded ending that the world starts from."""
ENDING_TOLERANCE = 4
"""Steps a replayed ending may come early or late: the world's player may run a little faster or
slower than the game's and still reach the flag or the enemy."""
STRIP_ENDINGS = 2
"""Endings of each kind (what the game paid) shown in the strip."""
ENDING_LEVELS = 48
"""Unseen levels played to their end for the table (the Platformer's explorer: 35 episodes
ended, 10 at the flag and 25 in a death)."""


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
    that step's action held.

    The report's `_strip` holds, for the first STRIP_ENDINGS endings of each kind, the real frames
    and each method's at a few steps up to the ending (`write_endings` draws it)."""
    report: dict[str, Any] = {"lead": lead, "tolerance": tolerance, "methods": {}}
    if not endings:
        return report
    kinds: dict[float, list[int]] = {}
    for i, e in enumerate(endings):
        kinds.setdefault(e.paid, []).append(i)
    shown = [i for paid in sorted(kinds) for i in kinds[paid][:STRIP_ENDINGS]]
    steps = [0, lead // 2, lead - 2, lead]  # world steps; step `lead` is the ending's
    strip = {i: [(f"{endings[i].paid:+g}, real game", np.concatenate([endings[i].frames[k + s] for s in steps], axis=1))]
             for i in shown}
    context = torch.stack([codec.encode(e.frames[:k]) for e in endings])  # (N, K, C, h, w)
    held = [np.concatenate([e.actions, np.full(tolerance, e.actions[-1])]) for e in endings]
    actions = torch.from_numpy(np.stack(held)).to(codec.device)  # (N, K - 1 + lead + 1 + tolerance)
    for m in methods:
        if m.net is None:
            continue
        generated, rewards, ended = generate(m, context, actions, codec, seed, reward_head)
        for i in shown:
            strip[i].append((m.name, np.concatenate([generated[i, s] for s in steps], axis=1)))
        groups: dict[str, dict[str, int]] = {}
        for row, e in enumerate(endings):
            group = groups.setdefault(f"{e.paid:+g}", {"n": 0, "ended": 0, "paid": 0})
            group["n"] += 1
            first = int(np.argmax(ended[row])) if ended[row].any() else -1
            if first >= 0 and abs(first - lead) <= tolerance:
                group["ended"] += 1
                group["paid"] += int(abs(float(rewards[row, first]) - e.paid) < 0.5)
        report["methods"][m.name] = dict(sorted(groups.items(), key=lambda kv: float(kv[0])))
    report["_strip"] = ([f"{lead - s} steps before" if s < lead else "the ending step" for s in steps],
                        [row for i in shown for row in strip[i]])
    return report


def write_endings(report: dict[str, Any], out: Path, scale: int = 3) -> None:
    """endings_strip.png in `out`: for a few endings of each kind, the real frames and each
    method's up to the ending; drops the strip from the report, which then is plain JSON."""
    columns, rows = report.pop("_strip", ([], []))
    if not rows:
        return
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "endings_strip.png", ".png") as tmp:
        Image.fromarray(labelled_grid(rows, columns, scale)).save(tmp, format="PNG")


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
