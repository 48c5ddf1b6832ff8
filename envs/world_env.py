"""Generated worlds as Gymnasium environments: one world, or N worlds stepped in one batched model call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from envs.window import FrameEnv, HumanWindow
from worldgen.world import World

_LEVEL_SEEDS = 2**31 - 1


class RecordedStarts:
    """Episode starts drawn from recorded play: the K frames up to a random step of a dataset, and
    the actions between them. An agent that starts where the recordings went (far into a level,
    beside an enemy, before the flag) meets what a level's first frame would only show it after
    hundreds of steps, in a world that has not yet drifted: DIAMOND starts its imagined episodes
    from real frames the same way."""

    def __init__(self, data: str | Path, context: int, frame_size: int) -> None:
        from worldgen.data.windows import WindowDataset

        self.windows = WindowDataset(Path(data), context=context - 1, split="all")
        shape = self.windows.episodes.frame_shape
        if tuple(shape[:2]) != (frame_size, frame_size):
            raise ValueError(f"{data}: frames {shape[0]}x{shape[1]}, but the world draws {frame_size}x{frame_size}; "
                             "start from recordings of the world's own source game")
        if not self.windows.episodes.actions_known:
            raise ValueError(f"{data} was made from video and holds no actions; starts need the recorded actions")
        self.live = self.windows.live_windows()
        if len(self.live) == 0:
            raise ValueError(f"{data}: every recorded step ends its episode, so no state is left to start from; "
                             "starts need episodes that go on for at least one step")

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(frames (K, H, W, 3) uint8, the K - 1 actions between them), never an episode's last
        frame after a death or a win: a start is a state to play on from."""
        window = self.windows[int(self.live[rng.integers(len(self.live))])]
        frames = np.concatenate([window["context"].numpy(), window["target"].numpy()[None]])
        return frames, window["actions"].numpy()


def _prompt(options: dict[str, Any] | None, rng: np.random.Generator, starts: RecordedStarts | None = None) -> tuple[Any, Any, int]:
    """(prompt, prompt actions, noise seed) for a reset: the caller's prompt, else a random
    recorded state (`starts`) or a random level of the source game, drawn from the env's
    generator so `reset(seed=...)` decides everything."""
    options = options or {}
    unknown = set(options) - {"prompt", "prompt_actions"}
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; a world env takes prompt and prompt_actions")
    level = int(rng.integers(_LEVEL_SEEDS))
    noise = int(rng.integers(_LEVEL_SEEDS))
    if "prompt" in options:
        return options["prompt"], options.get("prompt_actions"), noise
    if starts is not None:
        frames, actions = starts.draw(rng)
        return frames, actions, noise
    return level, options.get("prompt_actions"), noise


class WorldEnv(FrameEnv):
    """A generated world as a Gymnasium environment.

    ## Description
    Each step draws the next frame with the world's dynamics model (1 or 2 consistency
    steps) from the last K frames and the action; reward and termination come from the
    world's reward head, not from any real game.

    ## Action Space
    `Discrete(n)`, named by `get_action_meanings()` as in the world's source game (for the
    Platformer world: NOOP, LEFT, RIGHT, JUMP, LEFT_JUMP, RIGHT_JUMP).

    ## Observation Space
    `Box(0, 255, (64, 64, 3), uint8)`: the generated frame.

    ## Starting State
    `reset(seed=s)` starts from a random level of the source game (drawn from the seed);
    `options={"prompt": frames or image path or level seed, "prompt_actions": [...]}` starts
    from your own frames (the last K are used) or any image. With `starts=DATA` (a dataset
    folder of the source game), a reset without a prompt starts from a random recorded state.

    ## Episode End
    Terminated when the reward head predicts the episode ends; truncated at
    `max_episode_steps` (1000 for `worldgen/World-v0`).

    ## Arguments
    | Argument         | Default        | Meaning                                  |
    |------------------|----------------|------------------------------------------|
    | `world`          | `"platformer"` | pretrained name or world folder          |
    | `sampling_steps` | world default  | 1 or 2 for a consistency world           |
    | `device`         | `"auto"`       | CUDA when present, else CPU              |
    | `render_mode`    | None           | `"rgb_array"` or `"human"`               |
    | `starts`         | None           | dataset folder: start from recorded play |

    ## Vectorized environment
    `gym.make_vec("worldgen/World-v0", num_envs=N, vectorization_mode="vector_entry_point")`
    gives `WorldVectorEnv`: N worlds in one batched model call, next-step autoreset.

    ## Version History
    - v0: first release.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}

    def __init__(
        self, world: str | Path = "platformer", sampling_steps: int | None = None, device: str = "auto",
        render_mode: str | None = None, starts: str | Path | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.world = World(world, sampling_steps=sampling_steps, device=device, batch_size=1)
        self.starts = None if starts is None else RecordedStarts(starts, self.world.spec.context, self.world.spec.frame_size)
        size = self.world.spec.frame_size
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = spaces.Discrete(len(self.world.action_meanings))
        self.metadata = {**self.metadata, "render_fps": self.world.spec.fps}
        self.render_mode = render_mode
        self._window = HumanWindow(f"worldgen: {self.world.spec.name}", self.world.spec.fps)

    def get_action_meanings(self) -> list[str]:
        return self.world.action_meanings

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        prompt, actions, noise = _prompt(options, self.np_random, self.starts)
        self._frame = self.world.reset(prompt, actions, seed=noise)[0]
        if self.render_mode == "human":
            self.render()
        return self._frame.copy(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._frame is None:
            raise RuntimeError("Call reset() before step().")
        if np.ndim(action) != 0:
            raise ValueError(f"a single env takes one action, got {action!r}")
        result = self.world.step(self.world.parse_actions(action))
        self._frame = result.frames[0]
        if self.render_mode == "human":
            self.render()
        return self._frame.copy(), float(result.rewards[0]), bool(result.terminated[0]), False, {}


class WorldVectorEnv(VectorEnv):
    """N generated worlds stepped in one batched model call.

    Autoreset: NEXT_STEP by default (Gymnasium's default: the step after an episode ends
    resets that world, ignores its action and returns reward 0), or SAME_STEP with
    `autoreset_mode="same_step"` (the ending step already returns the new episode's first
    frame, and the last frame in `info["final_obs"]`, as stable-baselines3 expects). `starts`,
    `max_episode_steps`: as `WorldEnv`'s starts, and the episode cut.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int,
        world: str | Path = "platformer",
        sampling_steps: int | None = None,
        device: str = "auto",
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        starts: str | Path | None = None,
    ) -> None:
        modes = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP}
        self.autoreset_mode = modes.get(autoreset_mode, autoreset_mode) if isinstance(autoreset_mode, str) else autoreset_mode
        if self.autoreset_mode not in modes.values():
            raise ValueError(f"autoreset_mode must be next_step or same_step (or the AutoresetMode), got {autoreset_mode!r}")
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.num_envs = num_envs
        self.world = World(world, sampling_steps=sampling_steps, device=device, batch_size=num_envs)
        self.starts = None if starts is None else RecordedStarts(starts, self.world.spec.context, self.world.spec.frame_size)
        size = self.world.spec.frame_size
        self.single_observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.single_action_space = spaces.Discrete(len(self.world.action_meanings))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._frames = np.zeros((num_envs, size, size, 3), dtype=np.uint8)

    def get_action_meanings(self) -> list[str]:
        return self.world.action_meanings

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        seeds = seed if isinstance(seed, (list, tuple)) else [None if seed is None else seed + i for i in range(self.num_envs)]
        for i, s in enumerate(seeds):
            if s is not None or not hasattr(self, "_seeded"):
                self._rngs[i] = seeding.np_random(s)[0]
        self._seeded = True
        for i in range(self.num_envs):
            self._reset_one(i, options)
        self._needs_reset[:] = False
        return self._frames.copy(), {}

    def _reset_one(self, i: int, options: dict[str, Any] | None) -> None:
        prompt, actions, noise = _prompt(options, self._rngs[i], self.starts)
        self._frames[i] = self.world.reset(prompt, actions, seed=noise, worlds=[i])[0]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = self.world.parse_actions(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"step takes one action per env ({self.num_envs}), got {len(actions)}")
        # Worlds that ended last step restart now; their action is ignored (any valid one stands in).
        result = self.world.step(np.where(self._needs_reset, 0, actions))
        rewards = result.rewards.astype(np.float64)
        terminated = result.terminated.copy()
        truncated = (
            self.world.steps >= self.max_episode_steps if self.max_episode_steps else np.zeros(self.num_envs, dtype=bool)
        )
        self._frames = result.frames.copy()
        infos: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            done = terminated | truncated
            if done.any():
                final = np.empty(self.num_envs, dtype=object)
                for i in np.flatnonzero(done):
                    final[i] = self._frames[i].copy()
                    self._reset_one(i, None)
                infos["final_obs"], infos["_final_obs"] = final, done.copy()
            return self._frames.copy(), rewards, terminated, truncated, infos
        for i in np.flatnonzero(self._needs_reset):
            self._reset_one(i, None)
            rewards[i], terminated[i], truncated[i] = 0.0, False, False
        self._needs_reset = terminated | truncated
        return self._frames.copy(), rewards, terminated, truncated, infos

    def render(self) -> np.ndarray | None:
        return self._frames.copy() if self.render_mode == "rgb_array" else None
