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


def event_scores(reward: np.ndarray, true_reward: np.ndarray, ended: np.ndarray, true_ended: np.ndarray) -> dict[str, float]:
    """Precision and recall of reward events (|r| >= 0.5, sign right) and of terminations, and
    how many real ones there were; NaN where a share has nothing to divide by."""

    def pr(pred: np.ndarray, truth: np.ndarray, hit: np.ndarray) -> tuple[float, float]:
        tp = float((pred & truth & hit).sum())
        return (tp / pred.sum() if pred.sum() else float("nan")), (tp / truth.sum() if truth.sum() else float("nan"))

    rp, rr = pr(np.abs(reward) >= 0.5, true_reward != 0, np.sign(reward) == np.sign(true_reward))
    tp, tr = pr(ended, true_ended, np.ones_like(ended))
    return {"reward_precision": rp, "reward_recall": rr, "termination_precision": tp, "termination_recall": tr,
            "reward_events": int((true_reward != 0).sum()), "terminations": int(true_ended.sum())}
