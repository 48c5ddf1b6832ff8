"""A generated world you can step: the context of K latents, the actions, and the models.

A world folder (a checkpoint, or a name under `models/pretrained/`) holds `world.json` and
the exports of its autoencoder (`ae/`), dynamics network (`dynamics/`) and reward head
(`reward/`), each `model.safetensors` + `config.json`; optionally the diffusion teacher the
dynamics were distilled from (`teacher/`), which `worldgen eval` and `worldgen bench` compare
against.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import models
from worldgen.checkpoint import CheckpointError
from worldgen.data.storage import atomic_folder
from worldgen.frames import to_model, to_uint8
from worldgen.rollout import for_inference, predict_next, predict_reward
from worldgen.scm import SIGMA_D

WORLD_FILE = "world.json"
PRETRAINED = Path(models.__file__).resolve().parent / "pretrained"


@dataclass
class WorldSpec:
    """What a world is, as stored in `world.json`."""

    name: str
    source_env: str
    """Gymnasium id of the game the world was trained on, as `module:id` so it can be made
    without importing the module first (e.g. `envs:worldgen/Platformer-v0`)."""
    action_meanings: list[str]
    context: int
    frame_size: int
    sampler: str
    """"consistency" (1 or 2 steps) or "ode" (a diffusion teacher, any number of steps)."""
    default_steps: int
    context_noise: float
    fps: int = 30
    training_seeds: list[int] = field(default_factory=list)
    """Level seeds of the training episodes: `worldgen eval` judges a world on others."""


def resolve_world(world: str | Path) -> Path:
    """A world folder from a path or a pretrained name."""
    path = Path(world)
    if (path / WORLD_FILE).exists():
        return path
    named = PRETRAINED / str(world)
    if (named / WORLD_FILE).exists():
        return named
    names = sorted(p.name for p in PRETRAINED.iterdir() if (p / WORLD_FILE).exists()) if PRETRAINED.exists() else []
    raise CheckpointError(
        f"no world at {world!r}: expected a folder with {WORLD_FILE} or a pretrained name "
        f"({', '.join(names) or 'none installed'})"
    )


def pack_world(out: Path, spec: WorldSpec, ae: Path, dynamics: Path, reward: Path, card: str | None = None,
               teacher: Path | None = None) -> Path:
    """Assemble a world folder from stage exports (copied), atomically."""
    parts = [("ae", ae), ("dynamics", dynamics), ("reward", reward)] + ([("teacher", teacher)] if teacher else [])
    with atomic_folder(Path(out)) as tmp:
        for name, src in parts:
            shutil.copytree(src, tmp / name)
        (tmp / WORLD_FILE).write_text(json.dumps(asdict(spec), indent=1))
        if card is not None:
            (tmp / "README.md").write_text(card)
    return Path(out)


def spec_for(dynamics: Path, manifest: dict[str, Any], source_env: str, name: str) -> WorldSpec:
    """The world description of a dynamics export trained on a dataset (its manifest)."""
    config = json.loads((Path(dynamics) / "config.json").read_text())
    consistency = config["sampler"] == "consistency"
    return WorldSpec(
        name=name,
        source_env=source_env,
        action_meanings=list(manifest["action_meanings"]),
        context=int(config["model"]["context"]),
        frame_size=int(manifest["frame_shape"][0]),
        sampler=config["sampler"],
        default_steps=2 if consistency else 32,
        context_noise=float(config["play_context_noise"]),
        training_seeds=sorted({int(shard["level_seed"]) for shard in manifest["shards"] if "level_seed" in shard}),
    )


def teacher_of(folder: Path) -> Path | None:
    """The world's teacher export, if it was packed with one."""
    path = Path(folder) / "teacher"
    return path if (path / "config.json").exists() else None


def read_spec(folder: Path) -> WorldSpec:
    try:
        return WorldSpec(**json.loads((Path(folder) / WORLD_FILE).read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as e:
        raise CheckpointError(f"{folder / WORLD_FILE}: unreadable world description ({e})") from e


@dataclass
class StepResult:
    frames: np.ndarray
    """(B, H, W, 3) uint8."""
    rewards: np.ndarray
    """(B,) float32, from the reward head."""
    terminated: np.ndarray
    """(B,) bool, from the termination head."""


@dataclass
class WorldState:
    """Everything that decides what a world does next: a snapshot to rewind to or branch from."""

    context: torch.Tensor
    """(B, K, C, h, w) latents, sigma_d units."""
    actions: torch.Tensor
    """(B, K - 1) the actions between the context frames."""
    rng: list[torch.Tensor]
    """Each world's noise-generator state."""
    steps: np.ndarray
    """(B,) steps since each world's reset."""


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Any image file as an RGB frame of size x size (Genie-style image prompt)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: not an image file Pillow can read (PNG, JPG, ...): {e}") from None


class World:
    """A batch of B generated worlds, stepped together in one model call per sampling step.

    >>> world = World("platformer")                # or a world folder
    >>> frames = world.reset(seed=0)               # a level of the source game as the prompt
    >>> result = world.step([2])                   # RIGHT
    """

    def __init__(
        self,
        world: str | Path = "platformer",
        sampling_steps: int | None = None,
        device: str | torch.device = "auto",
        batch_size: int = 1,
        compile: bool = False,
    ) -> None:
        """`compile`: run the networks through torch.compile (see `rollout.for_inference`)."""
        from worldgen.train.ae import load_autoencoder
        from worldgen.train.reward import load_reward
        from worldgen.train.teacher import load_dynamics

        self.folder = resolve_world(world)
        self.spec = read_spec(self.folder)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.ae = load_autoencoder(self.folder / "ae", self.device)
        self.net, _ = load_dynamics(self.folder / "dynamics", self.device)
        self.reward_head = load_reward(self.folder / "reward", self.device)
        self.ae.decoder, self.net, self.reward_head = (
            for_inference(m, compile) for m in (self.ae.decoder, self.net, self.reward_head))
        self.batch_size = batch_size
        self.sampling_steps = sampling_steps or self.spec.default_steps
        self.generators = [torch.Generator(self.device) for _ in range(batch_size)]
        """One per world: a world's noise never depends on the rest of the batch."""
        self.context: torch.Tensor | None = None
        """(B, K, C, h, w) latents in sigma_d units."""
        self.actions = torch.zeros(batch_size, self.spec.context - 1, dtype=torch.long, device=self.device)
        """(B, K - 1): the actions between the context frames."""
        self.steps = np.zeros(batch_size, dtype=np.int64)

    @property
    def action_meanings(self) -> list[str]:
        return list(self.spec.action_meanings)

    @property
    def sampling_steps(self) -> int:
        return self._steps

    @sampling_steps.setter
    def sampling_steps(self, steps: int) -> None:
        if self.spec.sampler == "consistency" and steps not in (1, 2):
            raise ValueError(f"a consistency world samples in 1 or 2 steps, got {steps}")
        if steps < 1:
            raise ValueError(f"sampling steps must be at least 1, got {steps}")
        self._steps = int(steps)

    # --- prompts ----------------------------------------------------------------------------

    @torch.inference_mode()
    def reset(
        self,
        prompt: np.ndarray | str | Path | int | None = None,
        actions: Sequence[int] | np.ndarray | None = None,
        seed: int | None = None,
        worlds: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Start worlds from a prompt, and return the prompt's last frame for each (n, H, W, 3).

        prompt: real frames (N, H, W, 3) uint8 (the last K are used; fewer are padded by
        repeating the first), or an image file (any size, resized), or an int: a level seed of
        the source game, whose first frame is the prompt (None: seed 0). `actions` are those
        between the prompt frames (N - 1 of them, or N with the one before the first frame);
        NOOP where absent. `seed` drives the sampling noise: world j of the reset gets seed + j.
        `worlds`: which worlds of the batch to reset (default: all).
        """
        index = list(range(self.batch_size)) if worlds is None else [int(w) for w in worlds]
        frames = self._prompt_frames(prompt)
        k = self.spec.context
        n = len(frames)
        between = np.zeros(n - 1, dtype=np.int64)
        if actions is not None:
            actions = np.asarray(actions, dtype=np.int64).reshape(-1)
            if len(actions) not in (n - 1, n):
                raise ValueError(f"a prompt of {n} frames takes {n - 1} actions (or {n}), got {len(actions)}")
            between = actions[-(n - 1):] if n > 1 else np.zeros(0, dtype=np.int64)
            self._check_actions(between)
        frames = frames[-k:]
        between = between[-(k - 1):] if k > 1 else between[:0]
        pad = k - len(frames)
        frames = np.concatenate([np.repeat(frames[:1], pad, axis=0), frames])
        between = np.concatenate([np.zeros(k - 1 - len(between), dtype=np.int64), between])
        z = self.ae.encode(to_model(torch.from_numpy(np.ascontiguousarray(frames)), self.device)) * SIGMA_D  # (K, C, h, w)
        if self.context is None:
            self.context = z[None].repeat(self.batch_size, 1, 1, 1, 1)
        self.context[index] = z
        self.actions[index] = torch.from_numpy(between).to(self.device)
        self.steps[index] = 0
        for j, w in enumerate(index):
            self.generators[w].manual_seed((0 if seed is None else int(seed)) + j)
        return np.repeat(frames[-1:], len(index), axis=0)

    def _prompt_frames(self, prompt: Any) -> np.ndarray:
        size = self.spec.frame_size
        if prompt is None or isinstance(prompt, (int, np.integer)):
            return self.source_frame(0 if prompt is None else int(prompt))[None]
        if isinstance(prompt, (str, Path)):
            return load_image(prompt, size)[None]
        frames = np.asarray(prompt)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise ValueError(f"prompt frames must be (N, H, W, 3) RGB, got shape {frames.shape}")
        if frames.dtype != np.uint8:
            raise ValueError(f"prompt frames must be uint8, got {frames.dtype}")
        if frames.shape[1:3] != (size, size):
            from PIL import Image

            frames = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])
        return frames

    def source_frame(self, seed: int) -> np.ndarray:
        """The first frame of the source game at a level seed."""
        import gymnasium as gym

        env = gym.make(self.spec.source_env, render_mode="rgb_array")
        try:
            frame, _ = env.reset(seed=seed)
        finally:
            env.close()
        return self._prompt_frames(np.asarray(frame))[0]

    # --- stepping ---------------------------------------------------------------------------

    def _check_actions(self, actions: np.ndarray) -> None:
        n = len(self.spec.action_meanings)
        if ((actions < 0) | (actions >= n)).any():
            raise ValueError(f"actions must be integers in [0, {n}) ({', '.join(self.spec.action_meanings)}), got {actions.tolist()}")

    @torch.inference_mode()
    def step(self, actions: Sequence[int] | np.ndarray | int) -> StepResult:
        """Advance every world one frame with its action: (B,) ints."""
        if self.context is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions, dtype=np.int64).reshape(-1)
        if len(a) != self.batch_size:
            raise ValueError(f"step takes one action per world ({self.batch_size}), got {len(a)}")
        self._check_actions(a)
        acts = torch.cat([self.actions, torch.from_numpy(a).to(self.device)[:, None]], dim=1)  # (B, K)
        nxt = predict_next(self.net, self.context, acts, self.spec.sampler, self._steps, self.spec.context_noise, self.generators)
        reward, ended = predict_reward(self.reward_head, self.context, acts, nxt)
        frames = to_uint8(self.ae.decode(nxt / SIGMA_D)).numpy()
        self.context = torch.cat([self.context[:, 1:], nxt[:, None]], dim=1)
        self.actions = acts[:, 1:]
        self.steps += 1
        return StepResult(frames, reward.cpu().numpy().astype(np.float32), ended.cpu().numpy())

    # --- snapshots --------------------------------------------------------------------------

    def get_state(self) -> WorldState:
        """A snapshot of the batch (tensors are copied; the world goes on unaffected)."""
        if self.context is None:
            raise RuntimeError("call reset() before get_state()")
        return WorldState(self.context.clone(), self.actions.clone(), [g.get_state() for g in self.generators], self.steps.copy())

    def set_state(self, state: WorldState) -> None:
        """Return to a snapshot; stepping on from it repeats exactly what followed it."""
        if state.context.shape[0] != self.batch_size:
            raise ValueError(f"the snapshot holds {state.context.shape[0]} worlds, this world steps {self.batch_size}")
        self.context = state.context.to(self.device).clone()
        self.actions = state.actions.to(self.device).clone()
        for g, rng in zip(self.generators, state.rng):
            g.set_state(rng)
        self.steps = state.steps.copy()
