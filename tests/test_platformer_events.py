"""The Platformer's rules read from pictures agree with the game itself on real play."""

from __future__ import annotations

import numpy as np
import pytest

from envs.platformer import ExplorerPolicy, PlatformerEnv, frame_events
from worldgen.metrics import event_scores


def _episode(seed: int, explorer: bool, steps: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One episode's frames (T + 1), rewards and terminations; random play holds each action."""
    env = PlatformerEnv()
    obs, info = env.reset(seed=seed)
    policy, rng = ExplorerPolicy(seed=seed), np.random.default_rng(seed)
    frames, rewards, ended, action = [obs], [], [], 0
    for t in range(steps):
        if explorer:
            action = int(policy.act(obs[None], [info], np.array([t == 0]))[0])
        elif rng.random() < 0.25:
            action = int(rng.integers(6))
        obs, reward, terminated, truncated, info = env.step(action)
        frames.append(obs)
        rewards.append(reward)
        ended.append(terminated)
        if terminated or truncated:
            break
    return np.stack(frames), np.array(rewards), np.array(ended)


def test_rules_read_from_frames_agree_with_the_game():
    """Scripted and random play (which dies more), 24 episodes; a fall may be seen a frame early."""
    episodes = [_episode(3_000_000 + i, explorer=i % 2 == 0, steps=800) for i in range(24)]
    judged = [frame_events(f) for f, _, _ in episodes]
    scores = event_scores(np.concatenate([j[0] for j in judged]), np.concatenate([e[1] for e in episodes]),
                          np.concatenate([j[1] for j in judged]), np.concatenate([e[2] for e in episodes]), tolerance=1)
    assert scores["reward_events"] >= 20 and scores["terminations"] >= 8
    for key in ("reward_precision", "reward_recall", "termination_precision", "termination_recall"):
        assert scores[key] >= 0.85, (key, scores)


def test_an_ending_counts_once_while_the_world_keeps_drawing():
    frames, rewards, ended = _episode(3_000_100, explorer=False, steps=2000)
    assert ended[-1], "the random player dies or wins within 2,000 steps"
    # A world keeps drawing the frame after the ending: the same picture, again and again.
    still = np.concatenate([frames, np.repeat(frames[-1:], 20, axis=0)])
    r, e = frame_events(still)
    assert e.sum() == frame_events(frames)[1].sum() == 1
    assert not r[len(frames) :].any()


def test_rejects_what_is_not_a_stream():
    with pytest.raises(ValueError, match=r"\(T \+ 1, H, W, 3\)"):
        frame_events(np.zeros((1, 64, 64, 3), np.uint8))
