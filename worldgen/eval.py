"""Judge a world model against the real game driven by the same actions.

The reference is real play on level seeds the model never trained on. Every method predicts
from the same real context and actions:
- teacher-forced: each next frame from K real frames (how good one step is);
- open loop: the model feeds its own frames back for H steps (how fast it drifts);
- object fidelity: the game's own sprite detector on generated and real frames, because
  PSNR rewards a blurred average and barely moves when an object fades or vanishes.
The real game, its policy and its detector are passed in: this module knows no game.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from worldgen.frames import psnr, to_model
from worldgen.rollout import predict_next
from worldgen.scm import SIGMA_D

Detector = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass
class Reference:
    """One real episode: frames (T + 1, H, W, 3) uint8, actions (T,), the player's true screen
    position per frame (T + 1, 2) where the game reports it, and the level seed."""

    frames: np.ndarray
    actions: np.ndarray
    player: np.ndarray | None
    seed: int


def record_references(make_env: Callable[[], Any], policy: Any, seeds: list[int], steps: int) -> list[Reference]:
    """Play each level seed with `policy` for up to `steps` steps (an episode may end sooner)."""
    refs = []
    for seed in seeds:
        env = make_env()
        obs, info = env.reset(seed=seed)
        frames, actions, player = [obs], [], [info.get("player_screen", (np.nan, np.nan))]
        start = True
        for _ in range(steps):
            action = int(policy.act(obs[None], [info], np.array([start]))[0])
            start = False
            obs, _, terminated, truncated, info = env.step(action)
            frames.append(obs)
            actions.append(action)
            player.append(info.get("player_screen", (np.nan, np.nan)))
            if terminated or truncated:
                break
        env.close()
        refs.append(Reference(np.stack(frames), np.array(actions), np.array(player, dtype=np.float64), seed))
    return refs


@dataclass
class Method:
    """A way to draw the next latent: a network and a sampler, or the repeat-last baseline (net None)."""

    name: str
    net: torch.nn.Module | None
    sampler: str = "consistency"
    steps: int = 2


class LatentCodec:
    """Frames <-> latents in sigma_d units, through an autoencoder."""

    def __init__(self, ae: torch.nn.Module, device: torch.device) -> None:
        self.ae, self.device = ae, device

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> torch.Tensor:
        x = to_model(torch.from_numpy(np.ascontiguousarray(frames)), self.device)
        return torch.cat([self.ae.encode(c) for c in x.split(256)]) * SIGMA_D

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        from worldgen.frames import to_uint8

        return torch.cat([to_uint8(self.ae.decode(c / SIGMA_D)) for c in latents.split(256)]).numpy()


def _windows(ref: Reference, k: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices t-K..t-1 (first frame repeated before the start) and their actions (NOOP before)."""
    idx = np.arange(t - k, t)
    acts = np.where(idx < 0, 0, ref.actions[np.maximum(idx, 0)])
    return np.maximum(idx, 0), acts


def teacher_forced(methods: list[Method], refs: list[Reference], codec: LatentCodec, k: int, context_noise: float,
                   every: int = 4, seed: int = 0) -> dict[str, float]:
    """Mean next-frame PSNR (dB) per method, predicting every `every`-th frame from real context."""
    latents = [codec.encode(r.frames) for r in refs]
    ctx, acts, real, last = [], [], [], []
    for ref, z in zip(refs, latents):
        for t in range(1, len(ref.frames), every):
            idx, a = _windows(ref, k, t)
            ctx.append(z[idx])
            acts.append(torch.from_numpy(a))
            real.append(ref.frames[t])
            last.append(ref.frames[t - 1])
    context = torch.stack(ctx)
    actions = torch.stack(acts).to(codec.device)
    real_frames = np.stack(real)
    out = {}
    for m in methods:
        if m.net is None:  # the baseline repeats the real frame itself, not its reconstruction
            out[m.name] = float(psnr(np.stack(last), real_frames).mean())
            continue
        g = torch.Generator(codec.device).manual_seed(seed)
        pred = torch.cat([
            predict_next(m.net, c, a, m.sampler, m.steps, context_noise, g)
            for c, a in zip(context.split(256), actions.split(256))
        ])
        out[m.name] = float(psnr(codec.decode(pred), real_frames).mean())
    return out


@dataclass
class RolloutResult:
    psnr: np.ndarray
    """(H,) mean PSNR at each horizon 1..H."""
    player_error: float
    """Mean distance (px) between the detected and the true player over the H steps; a frame
    where the generated player cannot be found counts as `miss_penalty`."""
    player_found: float
    coins_kept: float
    enemies_kept: float
    """Share of the coins / enemies the detector finds in the real frame at the last horizon
    that it also finds, within `match_px`, in the generated frame."""
    invented: float
    """Coins and enemies per generated frame (last horizon) with no real counterpart."""


def open_loop(method: Method, refs: list[Reference], codec: LatentCodec, k: int, horizon: int, context_noise: float,
              detect: Detector | None, starts: int = 2, seed: int = 0, match_px: float = 3.0, miss_penalty: float = 16.0) -> RolloutResult:
    """Roll each reference out from `starts` start points, with the true actions, for `horizon` steps."""
    ctx, acts, real, player, last = [], [], [], [], []
    for ref in refs:
        last_start = len(ref.frames) - horizon
        if last_start < k:
            continue
        z = codec.encode(ref.frames)
        for s in np.linspace(k, last_start, starts).astype(int):
            idx, _ = _windows(ref, k, s)
            ctx.append(z[idx])
            acts.append(ref.actions[s - k : s + horizon - 1])
            real.append(ref.frames[s : s + horizon])
            last.append(ref.frames[s - 1])
            player.append(ref.player[s : s + horizon] if ref.player is not None else np.full((horizon, 2), np.nan))
    if not ctx:
        raise ValueError(f"no reference episode is longer than K + horizon = {k + horizon} frames")
    context = torch.stack(ctx)  # (R, K, C, h, w)
    actions = torch.from_numpy(np.stack(acts)).to(codec.device)  # (R, K + H - 1)
    g = torch.Generator(codec.device).manual_seed(seed)
    if method.net is None:  # the baseline repeats the real last frame
        gen = np.repeat(np.stack(last)[:, None], horizon, axis=1)
    else:
        frames = []
        for i in range(horizon):
            nxt = predict_next(method.net, context, actions[:, i : i + k], method.sampler, method.steps, context_noise, g)
            frames.append(codec.decode(nxt))
            context = torch.cat([context[:, 1:], nxt[:, None]], dim=1)
        gen = np.stack(frames, axis=1)  # (R, H, H_px, W_px, 3)
    real_frames = np.stack(real)
    scores = psnr(gen, real_frames).numpy()  # (R, H)
    result = RolloutResult(psnr=scores.mean(0), player_error=float("nan"), player_found=float("nan"),
                           coins_kept=float("nan"), enemies_kept=float("nan"), invented=float("nan"))
    if detect is not None:
        _object_fidelity(result, gen, real_frames, np.stack(player), detect, match_px, miss_penalty)
    return result


def match_objects(real: np.ndarray, generated: np.ndarray, match_px: float) -> tuple[int, int]:
    """(real objects with a generated one within match_px, generated objects with no real one near)."""
    if not len(real) or not len(generated):
        return 0, len(generated)
    d = np.linalg.norm(real[:, None] - generated[None], axis=2)  # (n_real, n_generated)
    return int((d.min(axis=1) <= match_px).sum()), int((d.min(axis=0) > match_px).sum())


def _object_fidelity(result: RolloutResult, gen: np.ndarray, real: np.ndarray, player: np.ndarray, detect: Detector,
                     match_px: float, miss_penalty: float) -> None:
    errors, found = [], []
    for r in range(gen.shape[0]):
        for h in range(gen.shape[1]):
            truth = player[r, h]
            if not np.isfinite(truth).all() or not (0 <= truth[1] < real.shape[2]):
                continue
            seen = detect(gen[r, h])["player"]
            found.append(len(seen) > 0)
            errors.append(min(float(np.linalg.norm(seen[0] - truth)), miss_penalty) if len(seen) else miss_penalty)
    kept = {"coins": [0, 0], "enemies": [0, 0]}
    invented = 0
    for r in range(gen.shape[0]):
        real_objects, gen_objects = detect(real[r, -1]), detect(gen[r, -1])
        for kind in kept:
            matched, extra = match_objects(real_objects[kind], gen_objects[kind], match_px)
            kept[kind][0] += matched
            kept[kind][1] += len(real_objects[kind])
            invented += extra
    result.player_error = float(np.mean(errors)) if errors else float("nan")
    result.player_found = float(np.mean(found)) if found else float("nan")
    result.coins_kept = kept["coins"][0] / kept["coins"][1] if kept["coins"][1] else float("nan")
    result.enemies_kept = kept["enemies"][0] / kept["enemies"][1] if kept["enemies"][1] else float("nan")
    result.invented = invented / gen.shape[0]


def held_out_seeds(n: int, used: set[int], start: int = 1_000_000) -> list[int]:
    """The first n level seeds from `start` that no training episode played."""
    seeds, s = [], start
    while len(seeds) < n:
        if s not in used:
            seeds.append(s)
        s += 1
    return seeds


def compare(methods: list[Method], refs: list[Reference], codec: LatentCodec, k: int, horizon: int, context_noise: float,
            detect: Detector | None, seed: int = 0) -> list[dict[str, Any]]:
    """One row per method: teacher-forced PSNR, open-loop PSNR at the horizon and object fidelity."""
    forced = teacher_forced(methods, refs, codec, k, context_noise, seed=seed)
    rows = []
    for m in methods:
        r = open_loop(m, refs, codec, k, horizon, context_noise, detect, seed=seed)
        rows.append({
            "method": m.name,
            "next_psnr": forced[m.name],
            f"rollout_psnr_h{horizon}": float(r.psnr[-1]),
            "rollout_psnr_curve": r.psnr.tolist(),
            "player_error_px": r.player_error,
            "player_found": r.player_found,
            "coins_kept": r.coins_kept,
            "enemies_kept": r.enemies_kept,
            "invented_per_frame": r.invented,
        })
    return rows


def format_table(rows: list[dict[str, Any]], horizon: int) -> str:
    head = f"| method | next-frame PSNR | rollout PSNR h{horizon} | player error px (found) | coins kept | enemies kept | invented/frame |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['next_psnr']:.2f} | {r[f'rollout_psnr_h{horizon}']:.2f} | "
            f"{r['player_error_px']:.2f} ({100 * r['player_found']:.0f}%) | {100 * r['coins_kept']:.0f}% | "
            f"{100 * r['enemies_kept']:.0f}% | {r['invented_per_frame']:.2f} |"
        )
    return "\n".join(lines)
