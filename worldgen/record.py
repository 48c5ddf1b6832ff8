"""Gameplay clips of generated worlds: video (mp4 or gif) plus the JSON that regenerates it.

The sidecar `clip.json` holds the world, the prompt, the noise seed, the sampling steps and
every action, so `worldgen replay clip.json` draws the same clip frame for frame.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from worldgen.atomic import atomic_path, write_json
from worldgen.world import World

CLIP_FORMAT = "worldgen-clip"


@dataclass
class Clip:
    world: str
    seed: int
    """Noise seed of the world's reset."""
    sampling_steps: int | list[int]
    """Sampling steps for every action (one number, or one per action when they changed)."""
    prompt: int | str
    """A level seed of the source game, or the path of a prompt image."""
    actions: list[int] = field(default_factory=list)
    """Every action since the reset."""
    start: int = 0
    """The first frame of the video: a clip recorded mid-play still replays from the reset."""
    fps: int = 30
    threads: int = field(default_factory=torch.get_num_threads)
    """Torch CPU threads of the recording: CPU kernels sum in an order that depends on it, so a
    replay is bit-exact only with the same count (replay sets it)."""
    format: str = CLIP_FORMAT

    def save(self, path: Path) -> None:
        write_json(Path(path), asdict(self))

    @classmethod
    def load(cls, path: Path) -> "Clip":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable clip file ({e})") from None
        if not isinstance(data, dict) or data.get("format") != CLIP_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path}: not a worldgen clip (format {found!r}); record one with `worldgen record`")
        known = {f.name for f in fields(cls)}
        missing = [f.name for f in fields(cls) if f.name not in data and f.default is MISSING and f.default_factory is MISSING]
        if missing or set(data) - known:
            raise ValueError(f"{path}: " + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                                     + ([f"unknown fields {', '.join(sorted(set(data) - known))}"] if set(data) - known else [])))
        clip = cls(**data)
        problems = clip._problems()
        if problems:
            raise ValueError(f"{path}: " + "; ".join(problems))
        return clip

    def _problems(self) -> list[str]:
        def is_int(v: Any, low: int = 0) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= low

        problems = []
        if not isinstance(self.world, str):
            problems.append(f"world must be a world folder or name, got {self.world!r}")
        if not is_int(self.seed):
            problems.append(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.actions, list) or not all(is_int(a) for a in self.actions):
            problems.append("actions must be a list of non-negative integers")
        steps = self.sampling_steps if isinstance(self.sampling_steps, list) else [self.sampling_steps]
        if not all(is_int(n, 1) for n in steps):
            problems.append(f"sampling_steps must be a positive integer or a list of them, got {self.sampling_steps!r}")
        if not (is_int(self.prompt) or isinstance(self.prompt, str)):
            problems.append(f"prompt must be a level seed or an image path, got {self.prompt!r}")
        if not is_int(self.start) or (isinstance(self.actions, list) and self.start > len(self.actions)):
            problems.append(f"start must be a frame index in [0, len(actions)], got {self.start!r}")
        if not is_int(self.fps, 1) or not is_int(self.threads, 1):
            problems.append(f"fps and threads must be positive integers, got {self.fps!r} and {self.threads!r}")
        return problems


def write_video(path: Path, frames: np.ndarray, fps: int, scale: int = 4) -> None:
    """mp4 (imageio-ffmpeg) or gif (Pillow) of (T, H, W, 3) uint8 frames, enlarged `scale` times
    with nearest-neighbour pixels; written to a temporary file and renamed."""
    path = Path(path)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"a video's scale must be a positive integer, got {scale!r}")
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to write")
    frames = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
    suffix = path.suffix.lower()
    if suffix == ".mp4":
        import imageio.v2 as imageio

        with atomic_path(path, ".mp4") as tmp:
            imageio.mimwrite(tmp, list(frames), fps=fps, macro_block_size=1)
    elif suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        with atomic_path(path, ".gif") as tmp:
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    else:
        raise ValueError(f"{path}: clips are written as .mp4 or .gif, not {suffix or 'no extension'!r}")


Policy = Callable[[np.ndarray, int], int]
"""(frame, step) -> action."""


def record_clip(world: World, clip: Clip, frames: int, policy: Policy, progress: bool = True) -> np.ndarray:
    """Run a world from the clip's prompt and seed for `frames` steps of `policy`, logging the
    actions into the clip. Returns the frames (frames + 1, H, W, 3)."""
    world.sampling_steps = clip.sampling_steps if isinstance(clip.sampling_steps, int) else clip.sampling_steps[0]
    frame = world.reset(clip.prompt, seed=clip.seed)[0]
    out, clip.actions = [frame], []
    clip.threads = torch.get_num_threads()
    for t in tqdm(range(frames), desc="record", unit="frame", disable=not progress):
        action = int(policy(frame, t))
        clip.actions.append(action)
        frame = world.step([action]).frames[0]
        out.append(frame)
    return np.stack(out)


GAME_CLIP_FORMAT = "worldgen-game-clip"


def record_game_clip(env_id: str, seed: int, frames: int, policy: str = "kit", size: int = 64,
                     trust_agent: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Play the real game `env_id` from level `seed` for up to `frames` steps (an episode's end
    ends the clip) with `policy` (`kit`: the game kit's player where it has one, else held
    random actions; or what `make_policy` takes). Returns the frames (T + 1, size, size, 3) and
    the sidecar: every action and reward, to judge what is learnt from the video alone."""
    from worldgen.data.sources import action_meanings, make_source_env
    from worldgen.kit import kit_for

    env = make_source_env(env_id, size)
    meanings = action_meanings(env)
    scripted = kit_for(env_id).policy
    if policy == "kit" and scripted:
        player = scripted(seed)
        act = lambda obs, info, t: int(player.act(obs[None], [info], np.array([t == 0]))[0])  # noqa: E731
    else:
        chosen = make_policy("random" if policy == "kit" else policy, len(meanings), seed, trust_agent)
        act = lambda obs, info, t: chosen(obs, t)  # noqa: E731
    obs, info = env.reset(seed=seed)
    out, actions, rewards = [obs], [], []
    for t in range(frames):
        action = act(obs, info, t)
        obs, reward, terminated, truncated, info = env.step(action)
        out.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        if terminated or truncated:
            break
    env.close()
    sidecar = {"format": GAME_CLIP_FORMAT, "env": env_id, "seed": seed, "policy": policy, "action_meanings": meanings,
               "actions": actions, "rewards": rewards, "ended": bool(len(actions) < frames)}
    return np.stack(out), sidecar


def replay_clip(world: World, clip: Clip, progress: bool = True) -> np.ndarray:
    """The clip's frames, drawn again from its prompt, seed, sampling steps and actions:
    (len(actions) + 1 - start, H, W, 3). Runs on the clip's torch thread count, which the
    frames depend on bit for bit."""
    steps = clip.sampling_steps if isinstance(clip.sampling_steps, list) else [clip.sampling_steps] * len(clip.actions)
    if len(steps) != len(clip.actions):
        raise ValueError(f"the clip has {len(clip.actions)} actions but {len(steps)} sampling-step entries")
    torch.set_num_threads(clip.threads)
    out = [world.reset(clip.prompt, seed=clip.seed)[0]]
    for action, n in tqdm(list(zip(clip.actions, steps)), desc="replay", unit="frame", disable=not progress):
        world.sampling_steps = n
        out.append(world.step([int(action)]).frames[0])
    return np.stack(out[clip.start :])


def make_policy(spec: str, num_actions: int, seed: int, trust_agent: bool = False) -> Policy:
    """`random` (held random actions), a JSON file of actions (a list, or a clip), or a
    stable-baselines3 agent saved as .zip; a zip holds pickled objects that run code when
    loaded, so it is refused unless `trust_agent`."""
    if spec == "random":
        from worldgen.data.policies import RandomRepeatPolicy

        random_policy = RandomRepeatPolicy(num_actions, seed=seed)
        return lambda frame, t: int(random_policy.act(frame[None], [{}], np.array([t == 0]))[0])
    path = Path(spec)
    if path.suffix == ".json":
        try:
            data: Any = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable actions file ({e})") from None
        actions = data.get("actions") if isinstance(data, dict) else data
        if not isinstance(actions, list) or not actions or not all(
                isinstance(a, int) and not isinstance(a, bool) and 0 <= a < num_actions for a in actions):
            raise ValueError(f"{path}: expected a non-empty list of actions (integers in [0, {num_actions})), or a clip holding one")
        return lambda frame, t: actions[t % len(actions)]
    if path.suffix == ".zip":
        from worldgen.agent import load_agent, new_episode

        act = load_agent(path, trust_agent)

        def agent(frame: np.ndarray, t: int) -> int:
            if t == 0:
                new_episode(act)
            return act(frame)

        return agent
    raise ValueError(f"--policy takes random, ACTIONS.json or an agent .zip, got {spec!r}")
