"""Any Gymnasium env that draws RGB frames, as a source of gameplay at the model's frame size."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image


def resize_frames(frames: np.ndarray, size: int, crop: bool = False) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., size, size, 3): bilinear (antialiased when shrinking), as
    the source games' frames are made, or the mean of each block where the size divides evenly
    (a clip enlarged with whole pixels comes back exactly). `crop`: centre-crop to a square
    first instead of stretching."""
    frames = np.asarray(frames)
    h, w = frames.shape[-3:-1]
    if crop and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        frames = frames[..., top : top + side, left : left + side, :]
    if frames.shape[-3:-1] == (size, size):
        return frames.astype(np.uint8, copy=False)
    flat = frames.reshape(-1, *frames.shape[-3:]).astype(np.uint8, copy=False)
    h, w = flat.shape[1:3]
    blocks = h % size == 0 and w % size == 0
    out = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BOX if blocks else Image.BILINEAR)) for f in flat])
    return out.reshape(*frames.shape[:-3], size, size, 3)


class SourceEnvError(ValueError):
    """An env id that cannot be used as a gameplay source, with the reason."""


class RGBFrames(gym.ObservationWrapper):
    """Makes the observation the env's RGB frame, resized to size x size.

    The frame comes from the observation when that is already an RGB image (Atari, the
    built-in games) and from `render()` otherwise (classic control, box2d).
    """

    def __init__(self, env: gym.Env, size: int) -> None:
        super().__init__(env)
        self.size = size
        space = env.observation_space
        self._from_obs = (
            isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[2] == 3
        )
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        frame = observation if self._from_obs else self.env.render()
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise SourceEnvError(f"{self.env.spec.id if self.env.spec else self.env}: render() gave shape {frame.shape}, expected (H, W, 3) RGB")
        return resize_frames(frame, self.size)


def make_source_env(env_id: str, size: int = 64, **kwargs: Any) -> gym.Env:
    """Make `env_id` with RGB frames of size x size as observations.

    Built-in `worldgen/` games render natively at `size`; ALE ids need the `atari` extra and
    get sticky actions turned off, so every recorded action is the action executed.
    """
    if env_id.startswith("ALE/"):
        try:
            import ale_py
        except ImportError as e:
            raise SourceEnvError(f"{env_id}: Atari games need the atari extra: pip install 'worldgen[atari]'") from e
        gym.register_envs(ale_py)
        kwargs.setdefault("repeat_action_probability", 0.0)
    if env_id.startswith("worldgen/"):
        kwargs.setdefault("size", size)
    try:
        gym.spec(env_id)
    except gym.error.Error as e:
        known = sorted(k for k in gym.registry if k.startswith("worldgen/"))
        raise SourceEnvError(
            f"unknown environment id {env_id!r} ({e}). Built-in games: {', '.join(known)}; "
            f"any registered Gymnasium id that renders RGB works, e.g. ALE/Breakout-v5 with the atari extra"
        ) from None
    with warnings.catch_warnings():  # gymnasium only warns about an unsupported render mode
        warnings.simplefilter("ignore")
        try:
            env = gym.make(env_id, render_mode="rgb_array", **kwargs)
        except TypeError:  # a constructor without a render_mode argument renders nothing
            env = None
        except gym.error.DependencyNotInstalled as e:
            raise SourceEnvError(f"{env_id}: {e}") from None
    modes = list(env.metadata.get("render_modes", [])) if env is not None else []
    if "rgb_array" not in modes:
        if env is not None:
            env.close()
        raise SourceEnvError(
            f"{env_id}: this env renders no RGB frames (render modes: {modes or 'none'}); "
            "worldgen records gameplay as RGB frames and needs the 'rgb_array' render mode"
        )
    if not isinstance(env.action_space, gym.spaces.Discrete):
        env.close()
        raise SourceEnvError(f"{env_id}: action space {env.action_space} is not Discrete; worldgen worlds take discrete actions")
    return RGBFrames(env, size)


ATARI_FRAMES_PER_SECOND = 60


def steps_per_second(env_id: str) -> int:
    """The game's pace in real play, the speed its world plays at: an Atari emulator draws 60
    frames a second and one step spans `frameskip` of them (15 steps a second at v5's 4); the
    built-in games and most others step at 30."""
    env_id = env_id.rpartition(":")[2]
    if not env_id.startswith("ALE/"):
        return 30
    try:
        import ale_py

        gym.register_envs(ale_py)
        frameskip = gym.spec(env_id).kwargs.get("frameskip", 4)
    except (ImportError, gym.error.Error):
        frameskip = 4
    return round(ATARI_FRAMES_PER_SECOND / frameskip) if isinstance(frameskip, int) and frameskip > 0 else 30


VIDEO_ENV = "video"
"""The env id of gameplay that is only video (`worldgen data from-video`): no game to make."""

TRUSTED_ENV_MODULES = ("envs", "ale_py")
"""Modules a world's `source_env` may name without the user's say-so: this project's games
and the Atari emulator."""


def qualified_env_id(env_id: str) -> str:
    """`env_id` as a world's `source_env` names it: with the module that registers it, where that
    is one of TRUSTED_ENV_MODULES (`envs:worldgen/Platformer-v0`, `ale_py:ALE/Boxing-v5`), so a
    world can make its game in a process that imported neither."""
    if env_id.startswith("worldgen/"):
        return f"envs:{env_id}"
    if env_id.startswith("ALE/"):
        return f"ale_py:{env_id}"
    return env_id


def trusted_env_id(source_env: str, trusted_modules: Sequence[str] = ()) -> str:
    """The registered Gymnasium id in a world's `source_env` (`module:id` or `id`).

    Gymnasium imports the module before the `:`, and a world folder is downloaded data: a world
    that names its own `payload.py` would run it. So only TRUSTED_ENV_MODULES and the modules the
    user lists are imported here, and the id must then be registered.
    """
    if not isinstance(source_env, str) or not source_env:
        raise SourceEnvError(f"source_env must be a Gymnasium id such as envs:worldgen/Platformer-v0, got {source_env!r}")
    module, _, env_id = source_env.rpartition(":")
    if module:
        if module not in (*TRUSTED_ENV_MODULES, *trusted_modules):
            raise SourceEnvError(
                f"source_env {source_env!r} names the Python module {module!r}, which worldgen does not import from a "
                f"world's files (it would run that module's code). If you trust it, pass --trust-module {module} "
                f"(World(..., trusted_modules=[{module!r}]) in Python)"
            )
        try:
            imported = importlib.import_module(module)
        except ImportError as e:
            raise SourceEnvError(f"source_env {source_env!r}: cannot import {module!r} ({e})") from None
        if module == "ale_py":
            gym.register_envs(imported)
    try:
        gym.spec(env_id)
    except gym.error.Error:
        known = sorted(k for k in gym.registry if k.startswith("worldgen/"))
        raise SourceEnvError(
            f"source_env {source_env!r}: {env_id!r} is not a registered Gymnasium id (registered games of worldgen: "
            f"{', '.join(known) or 'none'})"
        ) from None
    return env_id


def action_meanings(env: gym.Env) -> list[str]:
    """The env's names for its actions, or ACTION_i where it has none."""
    try:
        return list(env.unwrapped.get_action_meanings())
    except AttributeError:
        return [f"ACTION_{i}" for i in range(env.action_space.n)]


def probe_action_meanings(make_env: Callable[[], gym.Env]) -> list[str]:
    """The action names of an env made only to read them: policies and baselines need the
    action count before any episode starts."""
    env = make_env()
    try:
        return action_meanings(env)
    finally:
        env.close()
