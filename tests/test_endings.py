"""The endings table: real episodes' last moments, replayed in a world, judged step by step."""

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from test_content import K, Identity, MarkerHead, Scripted
from worldgen.codec import LatentCodec
from worldgen.endings import Ending, endings_report, format_endings, record_endings, write_endings
from worldgen.eval import Method
from worldgen.rollout import Sampler


class Countdown(gym.Env):
    """Frames that show their step; level seed s ends at step s (terminated, paying s % 3 - 1),
    or, for s >= 100, is cut by a time limit at step 30."""

    observation_space = spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = spaces.Discrete(6)

    def reset(self, *, seed=None, options=None):
        self.length, self.t = seed, 0
        return self._obs(), {}

    def _obs(self):
        return np.full((8, 8, 3), self.t, np.uint8)

    def step(self, action):
        self.t += 1
        if self.length >= 100:
            return self._obs(), 0.0, False, self.t == 30, {}
        ended = self.t == self.length
        return self._obs(), float(self.length % 3 - 1) if ended else 0.0, ended, False, {}


class StepClock:
    """A policy that presses (step % 6): the recorded actions show where they were taken."""

    def act(self, observations, infos, starts):
        return np.array([int(observations[0, 0, 0, 0]) % 6])


def test_endings_keep_the_last_moments_of_episodes_that_ended():
    lead = 5
    endings = record_endings(Countdown, StepClock(), [40, 8, 9, 150, 61], K, lead, max_steps=50)
    # 8 steps are too few for K + lead; 150 was cut by its time limit, 61 still going after 50 steps.
    assert [e.paid for e in endings] == [0.0, -1.0]
    for e, length in zip(endings, (40, 9)):
        assert e.frames[:, 0, 0, 0].tolist() == list(range(length - K - lead, length + 1))
        assert e.actions.tolist() == [t % 6 for t in range(length - K - lead, length)]


def test_a_world_is_credited_for_an_ending_in_time_and_paid_as_the_game_paid(tmp_path):
    lead, tolerance = 6, 2
    steps = lead + 1 + tolerance
    marks = {"in time": lead, "late, within the tolerance": lead + 2, "too late": lead + 3, "never": None, "unpaid": lead}
    paid = {"unpaid": 10.0}
    endings, drawn = [], []
    for name, mark in marks.items():
        endings.append(Ending(np.full((K + lead + 1, 64, 64, 3), 100, np.uint8), np.zeros(K + lead, np.int64), paid.get(name, 1.0)))
        world = np.full((steps, 64, 64, 3), 100, np.uint8)
        if mark is not None:
            world[mark:, 0, 0, 0] = 255  # the head ends the episode on the first marked frame, paying 1
        drawn.append(world)
    method = Method("world", Scripted(np.stack(drawn)), Sampler("consistency", 1, 0.0))
    report = endings_report([method, Method("repeat last frame", None)], endings, LatentCodec(Identity(), torch.device("cpu")),
                            K, MarkerHead(), lead, tolerance)
    assert report["methods"] == {"world": {"+1": {"n": 4, "ended": 2, "paid": 2}, "+10": {"n": 1, "ended": 1, "paid": 0}}}
    table = format_endings(report)
    assert "| world | +1 | 4 | 2 (50%) | 2 (50%) |" in table and "| world | +10 | 1 | 1 (100%) | 0 (0%) |" in table
    columns, rows = report["_strip"]
    assert columns[-1] == "the ending step" and [name for name, _ in rows] == ["+1, real game", "world", "+1, real game", "world",
                                                                                 "+10, real game", "world"]
    assert np.array_equal(rows[1][1][:, -64:], drawn[0][lead])  # the world's frame at the ending step
    write_endings(report, tmp_path)
    assert (tmp_path / "endings_strip.png").exists() and "_strip" not in report
