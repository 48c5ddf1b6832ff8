"""Content over long play: does a world stay a game for minutes, or fade into an empty field?

The real game and the world follow the same actions for about 1,000 frames; the real game
moves on to the next unseen level whenever an episode ends, the world just keeps drawing.
Frame for frame the two cannot agree (the world cannot know a level it never saw), so what is
compared is how much of each kind of content each shows, per horizon bin: the world's rate
over the real game's. 1.0 is right; a fading world falls toward 0, one that invents too much
climbs above 1. The kinds come from the game's kit (`ContentKit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from worldgen.atomic import atomic_path
from worldgen.codec import LatentCodec
from worldgen.eval import Method, generate
from worldgen.frames import labelled_grid
from worldgen.kit import ContentKit, EventRules
from worldgen.metrics import colour_histogram, event_scores_by_bin, histogram_intersection

BINS = ((1, 32), (33, 128), (129, 512), (513, 900), (901, 1000))
"""Horizon bins of the table (open-loop steps after the prompt, inclusive)."""
CURVE_EDGES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""Finer, doubling bins for the plot."""
EVENT_BINS = ((1, 32), (33, 128), (129, 1000))
"""Horizon bins of the reward head's table: while the world still tracks the real game, then past it."""
EVENT_TOLERANCE = 1
"""Steps an event may be early or late and still match: the rules read from pictures may see a
fall a frame before the game ends the episode."""
STRIP_STEPS = (0, 30, 60, 120, 250, 500, 1000)
"""Horizons shown in the strip of real and generated frames (0: the last prompt frame)."""


@dataclass
class Stream:
    """Continuous real play: frames (T + 1, H, W, 3) and the actions between them (T,),
    crossing from one level to the next where an episode ended."""

    frames: np.ndarray
    actions: np.ndarray
    levels: list[int]
    rewards: np.ndarray
    """(T,) what the real game paid for each step."""
    terminated: np.ndarray
    """(T,) bool: the step ended an episode (play went on from the next level's first frame)."""


def record_streams(make_env: Callable[[], Any], policy: Any, seeds: list[int], streams: int, steps: int) -> list[Stream]:
    """`streams` streams of `steps` steps. Stream i starts on level seeds[i]; whenever an
    episode ends, play goes on from the next level of seeds[streams:], in order."""
    if len(seeds) < streams:
        raise ValueError(f"need at least {streams} level seeds for {streams} streams, got {len(seeds)}")
    spare = iter(seeds[streams:])
    out = []
    for i in range(streams):
        env = make_env()
        levels = [seeds[i]]
        obs, info = env.reset(seed=levels[0])
        frames, actions, rewards, ended, start = [obs], [], [], [], True
        for _ in range(steps):
            action = int(policy.act(obs[None], [info], np.array([start]))[0])
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(reward)
            ended.append(terminated)
            start = terminated or truncated
            if start:
                try:
                    levels.append(next(spare))
                except StopIteration:
                    raise ValueError(f"ran out of level seeds after {len(seeds)}; pass more") from None
                obs, info = env.reset(seed=levels[-1])
            frames.append(obs)
            actions.append(action)
        env.close()
        out.append(Stream(np.stack(frames), np.array(actions), levels, np.array(rewards, dtype=np.float32), np.array(ended)))
    return out


def _rates(values: dict[str, np.ndarray], edges: list[tuple[int, int]]) -> dict[str, list[float]]:
    """Mean per frame over streams and the frames of each bin: values {kind: (R, H)} with
    horizon h at index h - 1; NaN where a bin lies beyond the rollout or holds no defined value."""
    out = {}
    for kind, v in values.items():
        rates = []
        for lo, hi in edges:
            part = v[:, lo - 1 : hi]
            rates.append(float(np.nanmean(part)) if part.size and np.isfinite(part).any() else float("nan"))
        out[kind] = rates
    return out


def _measure(kit: ContentKit, frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame content of (R, H, ...) frames -> {kind: (R, H)}."""
    per_stream = [kit.measure(f) for f in frames]
    return {kind: np.stack([m[kind] for m in per_stream]) for kind in per_stream[0]}


def _ratio(world: list[float], real: list[float]) -> list[float]:
    return [w / r if r > 0 else float("nan") for w, r in zip(world, real)]


def content_report(methods: list[Method], streams: list[Stream], codec: LatentCodec, k: int,
                   kit: ContentKit, frames: int = 1000, seed: int = 0, reward_head: torch.nn.Module | None = None,
                   rules: EventRules | None = None, log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Every method's content rates against the real game's, per horizon bin and per doubling
    bin (for the plot), and the frames of the strip. Methods without a network are skipped.

    With a reward head and the game's `rules`, also the head judged where agents use it: its
    reward and termination events on each method's own frames against the rules read from
    those frames, per `EVENT_BINS` bin, and in the first bin against the real game's events."""
    if any(len(s.actions) < k + frames - 1 for s in streams):
        raise ValueError(f"streams must hold K + frames - 1 = {k + frames - 1} actions")
    bins = [b for b in BINS if b[0] <= frames]
    bins = [(lo, min(hi, frames)) for lo, hi in bins]
    curve = [(lo, min(hi - 1, frames)) for lo, hi in zip(CURVE_EDGES, CURVE_EDGES[1:]) if lo <= frames]
    real = np.stack([s.frames[k : k + frames] for s in streams])  # (R, H, H_px, W_px, 3): horizon h at h - 1
    real_values = _measure(kit, real)
    report: dict[str, Any] = {
        "frames": frames, "streams": len(streams), "bins": bins, "curve_bins": curve, "shares": list(kit.shares),
        "rare": list(kit.rare),
        "real": _rates(real_values, bins), "real_curve": _rates(real_values, curve), "methods": {},
    }
    steps = [s for s in STRIP_STEPS if s <= frames]
    strip = {"real": _strip_frames(streams[0].frames[k - 1 : k + frames], steps)}
    context = torch.stack([codec.encode(s.frames[:k]) for s in streams])  # (R, K, C, h, w)
    actions = torch.from_numpy(np.stack([s.actions[: k + frames - 1] for s in streams])).to(codec.device)
    for i, m in enumerate(methods):
        if m.net is None:
            continue
        log(f"content: {m.name}, {len(streams)} x {frames} frames ({i + 1}/{len(methods)})")
        judged = reward_head is not None and rules is not None
        generated = generate(m, context, actions, codec, seed, reward_head if judged else None)  # (R, H, ...)
        if judged:
            generated, rewards, ended = generated
        values = _measure(kit, generated)
        rates, rates_curve = _rates(values, bins), _rates(values, curve)
        report["methods"][m.name] = {
            "colour_intersection": _colour_intersection(generated, real, bins),
            "rate": rates,
            "ratio": {kind: _ratio(rates[kind], report["real"][kind]) for kind in rates if kind not in kit.shares},
            "ratio_curve": {kind: _ratio(rates_curve[kind], report["real_curve"][kind]) for kind in rates if kind not in kit.shares},
            "rate_curve": rates_curve,
        }
        if judged:
            report["methods"][m.name]["events"] = _judge_events(streams, generated, rewards, ended, k, rules)
        strip[m.name] = _strip_frames(np.concatenate([streams[0].frames[k - 1 : k], generated[0]]), steps)
    report["_strip"] = (steps, strip)
    return report


def _colour_intersection(generated: np.ndarray, real: np.ndarray, bins: list[tuple[int, int]]) -> list[float]:
    """Per bin, the colour histogram of each generated stream's frames in that bin intersected
    with the real stream's over the same steps, averaged over streams: a world may draw another
    fight or level than the game did, but should draw it in the same colours and amounts."""
    return [float(np.mean([histogram_intersection(colour_histogram(g[lo - 1 : hi]), colour_histogram(r[lo - 1 : hi]))
                           for g, r in zip(generated, real)])) for lo, hi in bins]


def _judge_events(streams: list[Stream], generated: np.ndarray, rewards: np.ndarray, ended: np.ndarray, k: int,
                  rules: EventRules) -> dict[str, Any]:
    """The head's events on (R, H) generated steps against the rules read from the same frames
    (each stream from its last real prompt frame on), per EVENT_BINS bin, and against what the
    real game paid on the same actions, in the first bin."""
    h = generated.shape[1]
    truth = [rules(np.concatenate([s.frames[k - 1 : k], g])) for s, g in zip(streams, generated)]
    bins = [(lo, min(hi, h)) for lo, hi in EVENT_BINS if lo <= h]
    by_rules = event_scores_by_bin(rewards, np.stack([t[0] for t in truth]), ended, np.stack([t[1] for t in truth]),
                                   bins, EVENT_TOLERANCE)
    real_r = np.stack([s.rewards[k - 1 : k - 1 + h] for s in streams])  # horizon h was paid by step k + h - 2
    real_t = np.stack([s.terminated[k - 1 : k - 1 + h] for s in streams])
    by_game = event_scores_by_bin(rewards, real_r, ended, real_t, bins[:1], EVENT_TOLERANCE)[0]
    return {"bins": bins, "rules": by_rules, "real_game": by_game}


def format_events(report: dict[str, Any]) -> str:
    """The reward head on each method's own frames: precision / recall of reward events and of
    terminations per bin against the game's rules read from those frames, then in the first bin
    against the real game; each cell also says how many events the truth held."""
    rows = {name: row["events"] for name, row in report["methods"].items() if "events" in row}
    if not rows:
        return ""
    bins = next(iter(rows.values()))["bins"]
    head = ["method", "events", *[f"h{lo}-{hi} (rules)" for lo, hi in bins], f"h{bins[0][0]}-{bins[0][1]} (real game)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(s: dict[str, float], kind: str) -> str:
        count = s["reward_events" if kind == "reward" else "terminations"]
        return f"{s[f'{kind}_precision']:.2f} / {s[f'{kind}_recall']:.2f} (n={count})"

    for name, ev in rows.items():
        for kind in ("reward", "termination"):
            lines.append("| " + " | ".join([name, kind, *[cell(s, kind) for s in ev["rules"]], cell(ev["real_game"], kind)]) + " |")
    return "\n".join(lines)


def _strip_frames(frames: np.ndarray, steps: list[int]) -> np.ndarray:
    """frames[h] is horizon h (0: the last prompt frame) -> the strip's frames side by side."""
    return np.concatenate([frames[s] for s in steps], axis=1)


def format_content(report: dict[str, Any]) -> str:
    """One row per method and content kind: the world's rate over the real game's per bin; for
    share kinds, the world's and (in brackets) the real game's percentage of frames."""
    bins = report["bins"]
    head = ["method", "content", *[f"h{lo}-{hi}" for lo, hi in bins]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in report["methods"].items():
        lines.append("| " + " | ".join([name, "colour histogram, intersection with the real game's", *[f"{v:.2f}" for v in row["colour_intersection"]]]) + " |")
        for kind, ratios in row["ratio"].items():
            lines.append("| " + " | ".join([name, kind, *[f"{v:.2f}" for v in ratios]]) + " |")
        for kind in report["shares"]:
            cells = [f"{100 * w:.1f}% ({100 * r:.1f}%)" for w, r in zip(row["rate"][kind], report["real"][kind])]
            lines.append("| " + " | ".join([name, kind, *cells]) + " |")
    real = ", ".join(f"{kind} {v[0]:.2f}" for kind, v in report["real"].items())
    lines.append(f"\nreal game per frame, h{bins[0][0]}-{bins[0][1]}: {real}; {report['streams']} streams of {report['frames']} frames")
    return "\n".join(lines)


def write_content(report: dict[str, Any], out: Path, scale: int = 3) -> None:
    """content_vs_horizon.png (the ratios against horizon, one panel per kind) and
    content_strip.png (real, then each method, at STRIP_STEPS) into `out`; drops the strip
    frames from the report, which then is plain JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps, strip = report.pop("_strip")
    kinds = list(report["real"])
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3), dpi=110, squeeze=False)
    centres = [np.sqrt(lo * hi) for lo, hi in report["curve_bins"]]
    for ax, kind in zip(axes[0], kinds):
        share = kind in report["shares"]
        for name, row in report["methods"].items():
            values = np.array(row["rate_curve" if share else "ratio_curve"][kind]) * (100 if share else 1)
            ax.plot(centres, values, marker=".", label=name)
        if share:
            ax.plot(centres, np.array(report["real_curve"][kind]) * 100, "k--", label="real game")
            ax.set_ylabel("% of frames")
        else:
            ax.axhspan(0.8, 1.25, color="green", alpha=0.1)
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_ylabel("world / real")
        ax.set_xscale("log")
        ax.set_xlim(1, report["frames"])  # explicit: a kind the real game never showed has no finite point
        ax.set_xlabel("horizon (frames)")
        ax.set_title(kind, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "content_vs_horizon.png", ".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    picture = labelled_grid(list(strip.items()), [f"frame {s}" for s in steps], scale)
    with atomic_path(out / "content_strip.png", ".png") as tmp:
        Image.fromarray(picture).save(tmp)
    report["strip"] = {"steps": steps, "rows": list(strip)}
