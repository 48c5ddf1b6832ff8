"""Choosing where a world's 2-step sampler starts its second step, by what a player sees.

The second step's time decides whether a world keeps inventing its level or averages it away
(`scm.sample_consistency`): too early and the new content fades, too late and it is drawn from
noise with too little of the first step's guess. The best time depends on the game and on the
networks, so it is measured, not assumed: each candidate plays long streams of unseen levels
(levels apart from those `worldgen eval` reports on), and the one whose content rates stay
nearest the real game's past the first 32 frames wins.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from worldgen.eval import Method
from worldgen.reference import held_out_seeds
from worldgen.report import long_play_report
from worldgen.world import World

VALIDATION_START = 2_000_000
"""First level seed of the levels the choice is made on; `worldgen eval` reports from 1,000,000."""
TRACKING = 32
"""Frames after the prompt in which a world still follows the real level; content is judged after them."""
FLOOR = 0.01
"""A rate ratio below this counts as this: a vanished kind costs a lot, not infinitely much."""


def content_deviation(ratios: dict[str, list[float]], bins: list[tuple[int, int]]) -> float:
    """Mean |log(world rate / real rate)| over content kinds and the bins after `TRACKING`
    (all bins if none lies after it): 0 is the real game's mix, and drawing twice too much costs
    as much as drawing half. Kinds the real game never showed in a bin are left out."""
    late = [i for i, (lo, _) in enumerate(bins) if lo > TRACKING] or list(range(len(bins)))
    cells = [abs(math.log(max(r[i], FLOOR))) for r in ratios.values() for i in late if np.isfinite(r[i])]
    if not cells:
        raise ValueError("no content to judge: the real game showed none of the measured kinds in these bins")
    return float(np.mean(cells))


def judged_ratios(report: dict[str, Any], method: str) -> dict[str, list[float]]:
    """A method's content ratios per bin (`long_play_report`), with each share kind (the player
    drawn, the player held up by nothing) judged too, as the ratio of its rates with both floored
    at `FLOOR`: a time that loses the player is as far off as one that loses the coins, and a
    share the real game never shows (0) still counts when the world shows it. Rare kinds
    (`ContentKit.rare`) are left out."""
    m = report["methods"][method]
    shares = {kind: [max(w, FLOOR) / max(r, FLOOR) if np.isfinite(w) and np.isfinite(r) else float("nan")
                     for w, r in zip(m["rate"][kind], report["real"][kind])] for kind in report["shares"]}
    rare = set(report.get("rare", ()))
    return {kind: r for kind, r in {**m["ratio"], **shares}.items() if kind not in rare}


def tune_mid_time(world: World, candidates: list[float], streams: int, frames: int, used_seeds: set[int] = frozenset(),
                  relabel: Callable[[np.ndarray], np.ndarray] | None = None,
                  log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Play each candidate second-step time on the same `streams` x `frames` frames of unseen
    levels and return the choice ("mid_time") with every candidate's deviation and content ratios."""
    if not candidates:
        raise ValueError("no second-step times to choose from")
    seeds = held_out_seeds(streams * 8, set(used_seeds), start=VALIDATION_START)
    methods = [Method(f"t={t:g}", world.net, world.spec.play_sampler(2, t)) for t in candidates]
    report = long_play_report(world, methods, seeds, streams, frames, log=log, relabel=relabel, judge_rewards=False)
    ratios = [judged_ratios(report, m.name) for m in methods]
    rows = [{"mid_time": t, "deviation": content_deviation(r, report["bins"]), "ratio": r} for t, r in zip(candidates, ratios)]
    best = min(rows, key=lambda row: row["deviation"])
    return {"mid_time": best["mid_time"], "candidates": rows, "bins": report["bins"], "streams": streams,
            "frames": frames, "first_seed": seeds[0]}


def format_tuning(result: dict[str, Any]) -> str:
    """The candidates as a table: deviation, then each kind's lowest-highest ratio after frame 32."""
    bins = result["bins"]
    late = [i for i, (lo, _) in enumerate(bins) if lo > TRACKING] or list(range(len(bins)))
    kinds = list(result["candidates"][0]["ratio"])
    lines = ["| second step at t | deviation | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    for row in result["candidates"]:
        cells = []
        for kind in kinds:
            v = [row["ratio"][kind][i] for i in late if np.isfinite(row["ratio"][kind][i])]
            cells.append(f"{min(v):.2f}-{max(v):.2f}" if v else "-")
        mark = " (chosen)" if row["mid_time"] == result["mid_time"] else ""
        lines.append(f"| {row['mid_time']:g}{mark} | {row['deviation']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
