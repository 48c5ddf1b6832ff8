"""Judge a world model against the real game driven by the same actions.

The reference is real play on level seeds the model never trained on. Every method predicts
from the same real context and actions:
- teacher-forced: each next frame from K real frames (how good one step is);
- open loop: the model feeds its own frames back (how fast it drifts), at several horizons;
- controllability (Genie's Delta-PSNR): open loop with the true actions vs random actions;
- object fidelity: the game's own sprite detector on generated and real frames, because
  PSNR rewards a blurred average and barely moves when an object fades or vanishes;
- reward and termination: the world's head on generated next frames vs the game's events.
The real game, its policy and its detector are passed in: this module knows no game.

PSNR over a set of frames is computed from their mean squared error (10 log10(255^2 / MSE)):
averaging per-frame PSNR would let the repeat-last baseline's identical frames (infinite
PSNR while the player stands still) dominate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from worldgen.codec import LatentCodec
from worldgen.frames import colour_recall, frequent_colours, mse, psnr_from_mse, ssim
from worldgen.kit import Detector, Objects
from worldgen.metrics import event_scores, match_objects
from worldgen.reference import Reference
from worldgen.rollout import Payments, Sampler, predict_next, predict_reward, rollout_steps

OBJECT_WINDOW = 8
"""Coins and enemies are counted on this many open-loop steps up to the object horizon."""


@dataclass
class Method:
    """A way to draw the next latent: a network and a sampler, or the repeat-last baseline (net None)."""

    name: str
    net: torch.nn.Module | None
    sampler: Sampler = Sampler()


def _context(ref: Reference, k: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices t-K..t-1 (the first frame repeated before the start) and the K actions
    that follow them, the last leading to frame t (NOOP where padded)."""
    idx = np.arange(t - k, t)
    return np.maximum(idx, 0), np.where(idx < 0, 0, ref.actions[np.maximum(idx, 0)])


@dataclass
class Windows:
    """Teacher-forced windows gathered from references: real context, actions, target."""

    context: torch.Tensor  # (N, K, C, h, w)
    actions: torch.Tensor  # (N, K)
    last: np.ndarray  # (N, H, W, 3) the real frame before the target
    target: np.ndarray  # (N, H, W, 3)
    reward: np.ndarray  # (N,)
    terminated: np.ndarray  # (N,)
    regular: np.ndarray  # (N,) bool: the evenly spaced windows (image measures use only these)


def teacher_forced_windows(refs: list[Reference], codec: LatentCodec, k: int, every: int = 4) -> Windows:
    """Every `every`-th transition, plus every one with a reward or a termination (rare events,
    for the reward head's precision and recall)."""
    ctx, acts, last, target, reward, ended, regular = [], [], [], [], [], [], []
    for ref in refs:
        z = codec.encode(ref.frames)
        for t in range(1, len(ref.frames)):
            if t % every and not (ref.rewards[t - 1] or ref.terminated[t - 1]):
                continue
            idx, a = _context(ref, k, t)
            ctx.append(z[idx])
            acts.append(torch.from_numpy(a))
            last.append(ref.frames[t - 1])
            target.append(ref.frames[t])
            reward.append(ref.rewards[t - 1])
            ended.append(ref.terminated[t - 1])
            regular.append(t % every == 0)
    return Windows(torch.stack(ctx), torch.stack(acts).to(codec.device), np.stack(last), np.stack(target),
                   np.array(reward), np.array(ended), np.array(regular))


def predict_windows(method: Method, w: Windows, codec: LatentCodec, seed: int = 0) -> torch.Tensor | None:
    """Next latents for every window (None for the repeat-last baseline, which has none)."""
    if method.net is None:
        return None
    g = torch.Generator(codec.device).manual_seed(seed)
    return torch.cat([
        predict_next(method.net, c, a, method.sampler, g)
        for c, a in zip(w.context.split(256), w.actions.split(256))
    ])


@dataclass
class Rollouts:
    """Open-loop rollouts from R start points: generated and real frames (R, H, ...)."""

    generated: np.ndarray
    real: np.ndarray
    player: np.ndarray  # (R, H, 2) true player positions
    objects: list[list[Objects]] | None = None
    """Per rollout, per step: the objects on the real screen (the game's ground truth)."""
    prompt_ids: list[dict[str, set[int]]] | None = None
    """Per rollout: the ids of the objects its prompt (the K context frames) showed."""


def open_loop(method: Method, refs: list[Reference], codec: LatentCodec, k: int, horizon: int,
              starts: int = 2, seed: int = 0, random_actions: bool = False, num_actions: int = 0,
              key_pool: list[int] | None = None) -> Rollouts:
    """Roll each reference out from `starts` start points for `horizon` steps, with its true
    actions, or (for controllability) with uniform random ones: drawn from `key_pool` where
    given (a key listed twice is drawn twice as often), else from all `num_actions`."""
    ctx, acts, real, player, last, objects, prompt_ids = [], [], [], [], [], [], []
    rng = np.random.default_rng(seed)
    pool = np.arange(num_actions) if key_pool is None else np.asarray(key_pool)
    for ref in refs:
        last_start = len(ref.frames) - horizon
        if last_start < k:
            continue
        z = codec.encode(ref.frames)
        for s in np.linspace(k, last_start, starts).astype(int):
            idx, a = _context(ref, k, s)
            future = ref.actions[s : s + horizon - 1]
            if random_actions:
                future = pool[rng.integers(len(pool), size=len(future))]
            ctx.append(z[idx])
            acts.append(np.concatenate([a, future]))
            real.append(ref.frames[s : s + horizon])
            last.append(ref.frames[s - 1])
            player.append(ref.player[s : s + horizon])
            if ref.objects is not None:
                objects.append(ref.objects[s : s + horizon])
                prompt_ids.append({kind: {i for j in idx for i in ref.objects[j][kind]} for kind in ref.objects[s]})
    if not ctx:
        raise ValueError(f"no reference episode is longer than K + horizon = {k + horizon} frames; record longer ones")
    real_frames = np.stack(real)
    truth = (objects, prompt_ids) if len(objects) == len(ctx) else (None, None)
    if method.net is None:  # the baseline repeats the real last frame
        return Rollouts(np.repeat(np.stack(last)[:, None], horizon, axis=1), real_frames, np.stack(player), *truth)
    actions = torch.from_numpy(np.stack(acts)).to(codec.device)  # (R, K + H - 1)
    generated = generate(method, torch.stack(ctx), actions, codec, seed)
    return Rollouts(generated, real_frames, np.stack(player), *truth)


def generate(method: Method, context: torch.Tensor, actions: torch.Tensor, codec: LatentCodec, seed: int = 0,
             reward_head: torch.nn.Module | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open-loop frames of a method: context (R, K, C, h, w) latents and actions (R, K + H - 1)
    -> (R, H, H_px, W_px, 3) uint8, decoded step by step (long rollouts never hold all latents).
    With a reward head, also what it says of each step, as at play time: rewards (R, H) and
    terminations (R, H) bool."""
    g = torch.Generator(codec.device).manual_seed(seed)
    steps = rollout_steps(method.net, context, actions, method.sampler, g)
    k, total = context.shape[1], actions.shape[1] - context.shape[1] + 1
    frames, rewards, ended = [], [], []
    pays = None if reward_head is None else Payments(reward_head, len(context), context.device)
    for i, nxt in enumerate(tqdm(steps, desc=method.name, unit="frame", total=total, leave=False)):
        frames.append(codec.decode(nxt))
        if pays is not None:
            reward, end = pays(context, actions[:, i : i + k], nxt)
            rewards.append(reward.cpu().numpy())
            ended.append(end.cpu().numpy())
        context = torch.cat([context[:, 1:], nxt[:, None]], dim=1)
    frames = np.stack(frames, axis=1)
    if reward_head is None:
        return frames
    return frames, np.stack(rewards, axis=1), np.stack(ended, axis=1)


def object_fidelity(r: Rollouts, detect: Detector, horizon: int, match_px: float = 3.0, miss_penalty: float = 16.0,
                    window: int = OBJECT_WINDOW) -> dict[str, float]:
    """How well the generated frames keep the game's objects.

    Player (where the game's ground truth places one): position error (px) over the first
    `horizon` open-loop steps (a frame where the generated player cannot be found counts
    `miss_penalty`), and how often it is found. Every other kind the detector finds (coins,
    enemies; a boxer), counted on the last `window` steps up to `horizon` (25-32 at 32; one
    step alone holds too few objects for a steady share): the share of the real frame's
    objects that the generated frame shows within `match_px` (`*_kept`), the same share for
    the objects the prompt already showed (`*_kept_prompt`: a world cannot know what scrolls
    into view later, only keep what it was shown; needs the game's ground truth), how many
    such objects were counted, and the generated objects with no real one near, per frame.
    """
    errors, found = [], []
    height = r.real.shape[2]
    for i in range(r.generated.shape[0]):
        for h in range(min(horizon, r.generated.shape[1])):
            truth = r.player[i, h]
            if not np.isfinite(truth).all() or not 0 <= truth[1] < height:
                continue
            seen = detect(r.generated[i, h])["player"]
            found.append(len(seen) > 0)
            errors.append(min(float(np.linalg.norm(seen[0] - truth)), miss_penalty) if len(seen) else miss_penalty)
    kinds = object_kinds(detect, r.real[0, 0])
    kept = {kind: [0, 0] for kind in kinds}
    kept_prompt = {kind: [0, 0] for kind in kinds}
    invented, frames = 0, 0
    for i in range(r.generated.shape[0]):
        for h in range(max(horizon - window, 0), min(horizon, r.generated.shape[1])):
            real_objects, gen_objects = detect(r.real[i, h]), detect(r.generated[i, h])
            frames += 1
            for kind in kinds:
                matched, extra = match_objects(real_objects[kind], gen_objects[kind], match_px)
                kept[kind][0] += matched
                kept[kind][1] += len(real_objects[kind])
                invented += extra
                if r.objects is None or kind not in r.prompt_ids[i]:  # the game's ground truth does not track it
                    continue
                known = np.array([xy for j, xy in r.objects[i][h][kind].items() if j in r.prompt_ids[i][kind]]).reshape(-1, 2)
                shown = real_objects[kind]  # objects drawn whole enough for the detector
                if len(known) and len(shown):
                    shown = shown[np.linalg.norm(shown[:, None] - known[None], axis=2).min(axis=1) <= 2.0]
                    kept_prompt[kind][0] += match_objects(shown, gen_objects[kind], match_px)[0]
                    kept_prompt[kind][1] += len(shown)
    nan = float("nan")
    out = {
        "player_error_px": float(np.mean(errors)) if errors else nan,
        "player_found": float(np.mean(found)) if found else nan,
        "invented_per_frame": invented / max(frames, 1),
    }
    for kind in kinds:
        out[f"{kind}_kept"] = kept[kind][0] / kept[kind][1] if kept[kind][1] else nan
        out[f"{kind}_counted"] = kept[kind][1]
        if r.objects is not None and kind in r.prompt_ids[0]:
            out[f"{kind}_kept_prompt"] = kept_prompt[kind][0] / kept_prompt[kind][1] if kept_prompt[kind][1] else nan
            out[f"{kind}_counted_prompt"] = kept_prompt[kind][1]
    return out


def object_kinds(detect: Detector, frame: np.ndarray) -> list[str]:
    """The kinds of objects a game's detector reports, but the player (judged on its own)."""
    return [kind for kind in detect(frame) if kind != "player"]


def check_key_draws(key_draws: int, key_pool: list[int] | None, num_actions: int) -> None:
    """Refuse dPSNR settings that cannot be drawn, before any rollout is paid for."""
    if key_draws < 1:
        raise ValueError(f"key_draws must be at least 1, got {key_draws}")
    if key_pool is not None and (not key_pool or not all(0 <= a < num_actions for a in key_pool)):
        raise ValueError(f"key_pool must list actions 0..{num_actions - 1}, got {key_pool}")


def evaluate(
    methods: list[Method],
    refs: list[Reference],
    codec: LatentCodec,
    k: int,
    horizons: list[int],
    detect: Detector | None = None,
    num_actions: int = 0,
    controllability_at: tuple[int, ...] = (4, 16),
    object_horizon: int = 32,
    reward_head: torch.nn.Module | None = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda line: None,
    key_draws: int = 1,
    key_pool: list[int] | None = None,
) -> dict[str, Any]:
    """Every measure for every method, plus the rollouts of the first method for pictures.

    dPSNR (Genie's controllability) compares rollouts on the true actions with rollouts on
    uniform random ones; one draw of random keys per rollout is noisy at short horizons, so
    `key_draws` draws (each with its own keys and sampling noise) are pooled. `key_pool`: the
    keys random actions are drawn from (default: each action once)."""
    check_key_draws(key_draws, key_pool, num_actions)
    windows = teacher_forced_windows(refs, codec, k)
    report: dict[str, Any] = {"horizons": horizons, "windows": len(windows.target), "key_draws": key_draws,
                              "key_pool": key_pool, "methods": {}}
    object_h = min(object_horizon, max(horizons))
    if detect is not None:
        report["object_steps"] = [max(object_h - OBJECT_WINDOW, 0) + 1, object_h]
        report["object_kinds"] = object_kinds(detect, refs[0].frames[0])
    pictures = {}
    for i, m in enumerate(methods):
        log(f"eval: {m.name} ({i + 1}/{len(methods)})")
        pred = predict_windows(m, windows, codec, seed)
        frames = (windows.last if pred is None else codec.decode(pred))[windows.regular]
        target = windows.target[windows.regular]
        row: dict[str, Any] = {
            "next_psnr": float(psnr_from_mse(mse(frames, target).mean())),
            "next_ssim": float(ssim(frames, target).mean()),
        }
        if pred is not None and reward_head is not None:
            reward, ended = predict_reward(reward_head, windows.context, windows.actions, pred)
            row.update(event_scores(reward.cpu().numpy(), windows.reward, ended.cpu().numpy(), windows.terminated))
        longest = open_loop(m, refs, codec, k, max(horizons), seed=seed)
        curve = psnr_from_mse(mse(longest.generated, longest.real).mean(0)).numpy()  # (H,)
        scores_s = ssim(longest.generated, longest.real).numpy()  # (R, H)
        row["open_loop_psnr"] = {h: float(curve[h - 1]) for h in horizons}
        row["open_loop_ssim"] = {h: float(scores_s[:, h - 1].mean()) for h in horizons}
        row["psnr_curve"] = curve.tolist()
        if detect is not None:
            row.update(object_fidelity(longest, detect, object_h))
        if m.net is not None and num_actions:
            t_max = max(controllability_at)
            errors: dict[bool, list[torch.Tensor]] = {False: [], True: []}
            for draw in range(seed, seed + key_draws):
                for random_keys in errors:
                    r = open_loop(m, refs, codec, k, t_max, seed=draw, random_actions=random_keys,
                                  num_actions=num_actions, key_pool=key_pool)
                    errors[random_keys].append(mse(r.generated, r.real))
            true_p, rand_p = (psnr_from_mse(torch.cat(errors[keys]).mean(0)).numpy() for keys in (False, True))
            row["delta_psnr"] = {t: float(true_p[t - 1] - rand_p[t - 1]) for t in controllability_at}
        report["methods"][m.name] = row
        pictures[m.name] = longest
    report["_pictures"] = pictures
    return report


def autoencoder_report(codec: LatentCodec, refs: list[Reference], detect: Detector | None,
                       palette: dict[str, tuple[int, int, int]] | None = None) -> dict[str, Any]:
    """Reconstruction PSNR on the reference frames, per-colour pixel recall (the game's palette
    or the frames' frequent colours) and, with a detector, how many sprites survive."""
    frames = np.concatenate([r.frames for r in refs])
    recon = codec.decode(codec.encode(frames))
    out: dict[str, Any] = {"psnr": float(psnr_from_mse(mse(recon, frames).mean())), "ssim": float(ssim(recon, frames).mean())}
    out["colour_recall"] = colour_recall(frames, recon, palette or frequent_colours(frames))
    if detect is not None:
        kept = {kind: [0, 0] for kind in object_kinds(detect, frames[0])}
        for real, rec in zip(frames[::2], recon[::2]):
            a, b = detect(real), detect(rec)
            for kind in kept:
                kept[kind][0] += match_objects(a[kind], b[kind], 2.0)[0]
                kept[kind][1] += len(a[kind])
        out.update({f"{kind}_kept": n / total if total else float("nan") for kind, (n, total) in kept.items()})
    return out
