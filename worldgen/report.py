"""A world's whole evaluation as one library call (`evaluate_world`), and how it is presented:
report.json, the PSNR plot, the labelled picture of real and generated frames, the tables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from worldgen.atomic import atomic_path, write_json
from worldgen.content import content_report, record_streams, write_content
from worldgen.data.policies import RandomRepeatPolicy
from worldgen.data.sources import probe_action_meanings
from worldgen.endings import ENDING_LEVELS, endings_report, record_endings, write_endings
from worldgen.eval import Method, autoencoder_report, check_key_draws, evaluate
from worldgen.frames import frequent_colours, labelled_grid
from worldgen.kit import colour_content, kit_for
from worldgen.reference import held_out_seeds, record_references
from worldgen.world import World


def write_report(report: dict[str, Any], out: Path, grid_rows: int = 2, grid_steps: tuple[int, ...] = (1, 4, 8, 16, 32)) -> None:
    """report.json, psnr_vs_horizon.png and real_vs_generated.png into `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pictures = report.pop("_pictures", {})
    write_json(out / "report.json", report)
    if not report["methods"]:
        return
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, row in report["methods"].items():
        curve = row["psnr_curve"]
        ax.plot(range(1, len(curve) + 1), curve, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("open-loop horizon (frames)")
    ax.set_ylabel("PSNR vs the real game (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out / "psnr_vs_horizon.png", ".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    if pictures:
        first = next(iter(pictures.values()))
        steps = [s for s in grid_steps if s <= first.real.shape[1]]
        rows = []
        for i in range(min(grid_rows, first.real.shape[0])):
            rows.append((f"real game, level {i + 1}", np.concatenate([first.real[i, s - 1] for s in steps], axis=1)))
            for name, r in pictures.items():
                rows.append((name, np.concatenate([r.generated[i, s - 1] for s in steps], axis=1)))
        picture = labelled_grid(rows, [f"frame {s}" for s in steps])
        with atomic_path(out / "real_vs_generated.png", ".png") as tmp:
            Image.fromarray(picture).save(tmp)


def format_table(report: dict[str, Any]) -> str:
    horizons = report["horizons"]
    kinds = report.get("object_kinds", [])
    first = next(iter(report["methods"].values()), {})
    player = first.get("player_found", float("nan")) == first.get("player_found", float("nan"))
    head = ["method", "next PSNR", "next SSIM", *[f"PSNR h{h}" for h in horizons], "dPSNR t4/t16",
            *(["player err px (found)"] if player else []),
            *[f"{kind} kept" + (" (of prompt's)" if f"{kind}_kept_prompt" in first else "") for kind in kinds],
            *(["invented/frame"] if kinds else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    nan = float("nan")

    def pct(v: float) -> str:
        return "-" if v != v else f"{100 * v:.0f}%"

    def kept(r: dict[str, Any], kind: str) -> str:
        prompt = r.get(f"{kind}_kept_prompt")
        return pct(r.get(f"{kind}_kept", nan)) + ("" if prompt is None else f" ({pct(prompt)})")

    for name, r in report["methods"].items():
        delta = r.get("delta_psnr")
        cells = [name, f"{r['next_psnr']:.2f}", f"{r['next_ssim']:.3f}",
                 *[f"{r['open_loop_psnr'][h]:.2f}" for h in horizons],
                 "/".join(f"{v:.2f}" for v in delta.values()) if delta else "-",
                 *([f"{r.get('player_error_px', nan):.2f} ({pct(r.get('player_found', nan))})"] if player else []),
                 *[kept(r, kind) for kind in kinds], *([f"{r.get('invented_per_frame', nan):.2f}"] if kinds else [])]
        lines.append("| " + " | ".join(cells) + " |")
    if kinds:
        counts = ", ".join(f"{first[f'{k}_counted']} {k}" + (f" ({first[f'{k}_counted_prompt']} of the prompt's)" if f"{k}_counted_prompt" in first else "")
                           for k in kinds)
        lo, hi = report["object_steps"]
        lines.append(f"\nobjects counted on the real frames of the rollouts, steps {lo}-{hi}: {counts}")
    return "\n".join(lines)


def evaluate_world(world: World, methods: list[Method], out: Path, seeds: list[int], horizons: list[int],
                   used_seeds: set[int] = frozenset(), extra_steps: int = 60, content_frames: int = 1000,
                   content_streams: int = 16, content_only: bool = False,
                   log: Callable[[str], None] = lambda line: None,
                   relabel: Callable[[np.ndarray], np.ndarray] | None = None, key_draws: int = 1,
                   key_pool: list[int] | None = None) -> dict[str, Any]:
    """Judge `methods` (the world's own, and any other) against the world's real source game on
    `seeds`, write everything into `out`, and return the report.

    The quality table (unless `content_only`), the autoencoder's report, and, where the game's kit
    measures content (or, for a game without, each frequent colour's share of the pixels), the
    long-play section on `content_streams` further unseen levels (after
    `seeds`, never in `used_seeds`: the same seeds give the same streams).

    `relabel` (frames (T + 1, H, W, 3) -> actions (T,)) judges a world whose actions are latent
    codes: the real game is played with its own keys, and the world is given the codes its
    latent action model reads off those real frames, as Genie measures its worlds. `key_draws`
    and `key_pool`: how dPSNR draws its random keys (`eval.evaluate`).
    """
    spec = world.spec
    check_key_draws(key_draws, key_pool, len(spec.action_meanings))
    kit = kit_for(spec.source_env)
    longest = max(horizons + [16])  # 16: the longer controllability horizon
    refs = record_references(world.make_source, _player(world, relabel)(0), seeds, longest + spec.context + extra_steps, kit.objects_of)
    if relabel is not None:
        refs = [replace(r, episode=replace(r.episode, actions=relabel(r.frames))) for r in refs]
    if content_only:
        report: dict[str, Any] = {"horizons": [], "methods": {}}
    else:
        report = evaluate(methods, refs, world.codec, spec.context, horizons, kit.detect, len(spec.action_meanings),
                          reward_head=world.reward_head, log=log, key_draws=key_draws,
                          key_pool=key_pool)
    report["autoencoder"] = autoencoder_report(world.codec, refs, kit.detect, kit.palette)
    report["seeds"] = list(seeds)
    report["world"] = str(world.folder or spec.name)
    if content_frames > 0:
        stream_seeds = held_out_seeds(len(seeds) + content_streams * 8, set(used_seeds))[len(seeds):]
        report["content"] = long_play_report(world, methods, stream_seeds, content_streams, content_frames, log=log,
                                             relabel=relabel, palette_frames=np.concatenate([r.frames for r in refs]))
        write_content(report["content"], out)
        if world.reward_head is not None:
            first = len(seeds) + content_streams * 8
            report["endings"] = replayed_endings(world, methods, held_out_seeds(first + ENDING_LEVELS, set(used_seeds))[first:],
                                                 relabel, log)
            write_endings(report["endings"], out)
    write_report(report, out)
    return report


def replayed_endings(world: World, methods: list[Method], seeds: list[int],
                     relabel: Callable[[np.ndarray], np.ndarray] | None = None,
                     log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """The endings table (`worldgen.endings`) of `methods` on one episode of real play per level seed."""
    endings = record_endings(world.make_source, _player(world, relabel)(2), seeds, world.spec.context)
    if relabel is not None:
        endings = [replace(e, actions=relabel(e.frames)) for e in endings]
    log(f"endings: {len(endings)} of {len(seeds)} episodes ended, replayed in the world")
    return endings_report(methods, endings, world.codec, world.spec.context, world.reward_head)


def _player(world: World, relabel: Callable[[np.ndarray], np.ndarray] | None) -> Callable[[int], Any]:
    """seed -> who plays the real game: the kit's scripted player, else random held keys (the
    game's own keys, also for a world on latent actions)."""
    kit = kit_for(world.spec.source_env)
    keys = len(world.spec.action_meanings) if relabel is None else len(probe_action_meanings(world.make_source))
    return kit.policy or (lambda seed: RandomRepeatPolicy(keys, seed=seed))


def long_play_report(world: World, methods: list[Method], seeds: list[int], streams: int, frames: int,
                     log: Callable[[str], None] = lambda line: None,
                     relabel: Callable[[np.ndarray], np.ndarray] | None = None,
                     palette_frames: np.ndarray | None = None, judge_rewards: bool = True) -> dict[str, Any]:
    """The long-play content section (`content.content_report`) of `methods` on `streams` streams
    of real play from level `seeds`. A game whose kit measures no content is measured by its
    colours: the kit's palette, or the most frequent colours of `palette_frames` (default: the
    streams')."""
    kit = kit_for(world.spec.source_env)
    recorded = record_streams(world.make_source, _player(world, relabel)(1), seeds, streams, frames + world.spec.context)
    if relabel is not None:
        recorded = [replace(st, actions=relabel(st.frames)) for st in recorded]
    if palette_frames is None:
        palette_frames = np.concatenate([st.frames for st in recorded])
    measures = kit.content or colour_content(kit.palette or frequent_colours(palette_frames, most=8))
    return content_report(methods, recorded, world.codec, world.spec.context, measures, frames,
                          reward_head=world.reward_head if judge_rewards else None, rules=kit.events, log=log)
