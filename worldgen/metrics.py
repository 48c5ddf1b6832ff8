"""Scores of generated play against real play, on plain arrays: no models, no files, so that
training (validation) and evaluation share them."""

from __future__ import annotations

import numpy as np


def match_objects(real: np.ndarray, generated: np.ndarray, match_px: float) -> tuple[int, int]:
    """(real objects with a generated one within match_px, generated objects with no real one near)."""
    if not len(real) or not len(generated):
        return 0, len(generated)
    d = np.linalg.norm(real[:, None] - generated[None], axis=2)  # (n_real, n_generated)
    return int((d.min(axis=1) <= match_px).sum()), int((d.min(axis=0) > match_px).sum())


def _events(reward: np.ndarray, true_reward: np.ndarray, ended: np.ndarray, true_ended: np.ndarray,
            tolerance: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For rewards and for terminations: (events, matched events) of the prediction and of the
    truth, as masks shaped like the inputs (steps along the last axis)."""

    def match(pred: list[np.ndarray], truth: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """pred, truth: one mask per kind of event (a sign); an event matches one of its kind."""
        pairs = [_paired(p, t, tolerance) for p, t in zip(pred, truth)]
        return (np.any(pred, axis=0), np.any([hit for hit, _ in pairs], axis=0),
                np.any(truth, axis=0), np.any([hit for _, hit in pairs], axis=0))

    reward, true_reward = np.asarray(reward, float), np.asarray(true_reward, float)
    big = np.abs(reward) >= 0.5
    rp, rp_hit, rt, rt_hit = match([big & (reward > 0), big & (reward < 0)], [true_reward > 0, true_reward < 0])
    tp, tp_hit, tt, tt_hit = match([np.asarray(ended, bool)], [np.asarray(true_ended, bool)])
    return {"reward": (rp, rp_hit, rt, rt_hit), "termination": (tp, tp_hit, tt, tt_hit)}


def _paired(pred: np.ndarray, truth: np.ndarray, tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    """(predicted events matched, true events matched): each true event takes the nearest free
    prediction up to `tolerance` steps away in its row, so one event matches one prediction. A
    head that pays a crossing on two steps in a row is paid twice by the world, and the second
    payment must count against its precision, not match the same crossing again."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    pred_hit, truth_hit = np.zeros_like(pred), np.zeros_like(truth)
    for row in np.ndindex(pred.shape[:-1]):
        free = list(np.flatnonzero(pred[row]))
        for t in np.flatnonzero(truth[row]):
            near = [q for q in free if abs(q - t) <= tolerance]
            if near:
                q = min(near, key=lambda q: (abs(q - t), q))
                free.remove(q)
                pred_hit[row + (q,)] = truth_hit[row + (t,)] = True
    return pred_hit, truth_hit


def _shares(masks: dict[str, tuple[np.ndarray, ...]], where: tuple[slice, ...] = (...,)) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, (pred, pred_hit, truth, truth_hit) in masks.items():
        p, ph, t, th = (float(m[where].sum()) for m in (pred, pred_hit, truth, truth_hit))
        out[f"{kind}_precision"] = ph / p if p else float("nan")
        out[f"{kind}_recall"] = th / t if t else float("nan")
    out["reward_events"] = int(masks["reward"][2][where].sum())
    out["terminations"] = int(masks["termination"][2][where].sum())
    out["predicted_reward_events"] = int(masks["reward"][0][where].sum())
    return out


def event_scores(reward: np.ndarray, true_reward: np.ndarray, ended: np.ndarray, true_ended: np.ndarray,
                 tolerance: int = 0) -> dict[str, float]:
    """Precision and recall of reward events (|r| >= 0.5, sign right) and of terminations, and
    how many real ones there were; NaN where a share has nothing to divide by.

    Steps run along the last axis (rows: streams). With `tolerance` t > 0, an event matches one
    of the same sign up to t steps earlier or later in its row, one to one: a judge that reads
    rewards off pictures may see a fall a frame before the game ends the episode."""
    return _shares(_events(reward, true_reward, ended, true_ended, tolerance))


def event_scores_by_bin(reward: np.ndarray, true_reward: np.ndarray, ended: np.ndarray, true_ended: np.ndarray,
                        bins: list[tuple[int, int]], tolerance: int = 0) -> list[dict[str, float]]:
    """`event_scores` of (R, H) streams per horizon bin (lo, hi), inclusive, horizon h at
    index h - 1; events match across a bin's edge, and count in the bin where they lie."""
    masks = _events(reward, true_reward, ended, true_ended, tolerance)
    return [_shares(masks, (..., slice(lo - 1, hi))) for lo, hi in bins]


HISTOGRAM_LEVELS = 8
"""Levels per colour channel of `colour_histogram` (8 x 8 x 8 bins of 32 values): coarse enough
that a decoder's few levels of error rarely move a pixel to another bin."""


def colour_histogram(frames: np.ndarray, levels: int = HISTOGRAM_LEVELS) -> np.ndarray:
    """The share of pixels in each of levels**3 RGB bins, over all of `frames` (..., H, W, 3) uint8."""
    q = (np.asarray(frames).reshape(-1, 3).astype(np.int64) * levels) // 256
    counts = np.bincount((q[:, 0] * levels + q[:, 1]) * levels + q[:, 2], minlength=levels**3)
    return counts / max(counts.sum(), 1)


def histogram_intersection(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of the bin-wise minimum of two normalised histograms: 1 for the same colours in the
    same amounts, 0 for no colour in common. Needs no pairing of pixels or frames."""
    return float(np.minimum(a, b).sum())
