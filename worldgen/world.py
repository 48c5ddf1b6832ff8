"""A generated world you can step: the context of K latents, the actions, and the models.

A world folder (a checkpoint, or a name under `models/pretrained/`) holds `world.json` and
the exports of its autoencoder (`ae/`), dynamics network (`dynamics/`) and reward head
(`reward/`; absent in a world learnt from video without rewards, which pays nothing), each `model.safetensors` + `config.json`; optionally the diffusion teacher the
dynamics were distilled from (`teacher/`), which `worldgen eval` and `worldgen bench` compare
against, and, for a world learnt from video alone (no game to start levels from), the clips'
opening frames (`prompts.npz`).
"""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from models.export import load_export
import models
from worldgen.atomic import atomic_folder, write_json
from worldgen.checkpoint import CheckpointError
from worldgen.codec import LatentCodec
from worldgen.rollout import SAMPLERS, Payments, Sampler, for_inference, predict_next
from worldgen.scm import T_MAX, T_MID

WORLD_FILE = "world.json"
PROMPTS_FILE = "prompts.npz"
PRETRAINED = Path(models.__file__).resolve().parent / "pretrained"
MAX_ACTIONS = 256
MAX_CONTEXT = 64
MAX_FRAME_SIZE = 1024
MAX_ODE_STEPS = 1000
MAX_PROMPT_PIXELS = 4096 * 4096
"""Prompt images are shrunk to the frame size; a larger one is refused before it is decoded."""


def resolve_device(device: str | torch.device) -> torch.device:
    """`device` as a torch device: "auto" is CUDA when present, else the CPU. A device this
    machine lacks is refused here, with the choices, rather than deep inside the first network call."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this machine has no CUDA GPU; use auto or cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return resolved


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
    mid_time: float = T_MID
    """Where the 2-step sampler's second step starts (TrigFlow t, below T_MAX): later, it draws
    more of each frame anew, and a world keeps inventing its level instead of averaging it away."""

    def play_sampler(self, steps: int, mid_time: float | None = None) -> Sampler:
        """How this world draws a frame in `steps` steps: its sampler, context noise and
        second-step time (`mid_time` overrides the last, to try another)."""
        return Sampler(self.sampler, steps, self.context_noise, self.mid_time if mid_time is None else mid_time)


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


def pack_world(out: Path, spec: WorldSpec, ae: Path, dynamics: Path, reward: Path | None, card: str | None = None,
               teacher: Path | None = None, prompts: np.ndarray | None = None) -> Path:
    """Assemble a world folder from stage exports (copied), atomically. `reward` None: a world
    learnt from video without rewards, which pays nothing. `prompts` (n, K, H, W, 3) uint8:
    opening frames that level seeds pick from, for a world with no game to make."""
    parts = [("ae", ae), ("dynamics", dynamics)] + [(n, p) for n, p in (("reward", reward), ("teacher", teacher)) if p]
    with atomic_folder(Path(out)) as tmp:
        for name, src in parts:
            shutil.copytree(src, tmp / name)
        write_spec(tmp, spec)
        if card is not None:
            (tmp / "README.md").write_text(card)
        if prompts is not None:
            np.savez_compressed(tmp / PROMPTS_FILE, frames=_checked_prompts(prompts, spec, "prompts"))
    return Path(out)


def write_spec(folder: Path, spec: WorldSpec) -> None:
    """`world.json`, replaced in one rename: a world is never left without its description."""
    write_json(Path(folder) / WORLD_FILE, asdict(spec))


def opening_frames(data: Path, k: int, most: int = 16) -> np.ndarray:
    """The first `k` frames of up to `most` episodes of a dataset, (n, k, H, W, 3) uint8: where a
    world learnt from video starts when no game can draw it a level."""
    from worldgen.data.dataset import EpisodeDataset

    dataset = EpisodeDataset(data)
    return np.stack([shard.frames()[:k] for shard in dataset.shards[:most] if shard.num_steps >= k - 1])


def _checked_prompts(prompts: Any, spec: WorldSpec, where: str) -> np.ndarray:
    prompts = np.asarray(prompts)
    size = spec.frame_size
    if prompts.dtype != np.uint8 or prompts.ndim != 5 or prompts.shape[2:] != (size, size, 3) or 0 in prompts.shape[:2]:
        raise CheckpointError(f"{where}: opening frames must be (n, K, {size}, {size}, 3) uint8 with n, K > 0, "
                              f"got {prompts.dtype} {prompts.shape}")
    return prompts


def spec_for(dynamics: Path, manifest: dict[str, Any], source_env: str, name: str) -> WorldSpec:
    """The world description of a dynamics export trained on a dataset (its manifest)."""
    from worldgen.data.sources import steps_per_second

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
        fps=round(manifest["fps"]) if manifest.get("fps") else steps_per_second(source_env),
    )


def teacher_of(folder: Path) -> Path | None:
    """The world's teacher export, if it was packed with one."""
    path = Path(folder) / "teacher"
    return path if (path / "config.json").exists() else None


def read_spec(folder: Path) -> WorldSpec:
    path = Path(folder) / WORLD_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable world description ({e})") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object of world fields, got {type(data).__name__}")
    names = {f.name for f in fields(WorldSpec)}
    unknown, missing = sorted(set(data) - names), sorted(f.name for f in fields(WorldSpec) if f.name not in data and f.default is MISSING
                                                          and f.default_factory is MISSING)
    if unknown or missing:
        raise CheckpointError(f"{path}: " + "; ".join(
            ([f"unknown fields {', '.join(unknown)}"] if unknown else []) + ([f"missing fields {', '.join(missing)}"] if missing else [])))
    spec = WorldSpec(**data)
    problems = _spec_problems(spec)
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(problems))
    return spec


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _spec_problems(spec: WorldSpec) -> list[str]:
    """What is wrong with a world description, checked before anything is allocated from it."""
    problems = []
    if not isinstance(spec.name, str):
        problems.append(f"name must be a string, got {spec.name!r}")
    if not isinstance(spec.source_env, str) or not spec.source_env:
        problems.append(f"source_env must be a Gymnasium id, got {spec.source_env!r}")
    if (not isinstance(spec.action_meanings, list) or not 1 <= len(spec.action_meanings) <= MAX_ACTIONS
            or not all(isinstance(a, str) for a in spec.action_meanings)):
        problems.append(f"action_meanings must be a list of 1 to {MAX_ACTIONS} names")
    if not _is_int(spec.context, 1, MAX_CONTEXT):
        problems.append(f"context must be an integer in [1, {MAX_CONTEXT}], got {spec.context!r}")
    if not _is_int(spec.frame_size, 8, MAX_FRAME_SIZE) or spec.frame_size % 4:
        problems.append(f"frame_size must be a multiple of 4 in [8, {MAX_FRAME_SIZE}], got {spec.frame_size!r}")
    if spec.sampler not in SAMPLERS:
        problems.append(f"sampler must be one of {', '.join(SAMPLERS)}, got {spec.sampler!r}")
    max_steps = 2 if spec.sampler == "consistency" else MAX_ODE_STEPS
    if not _is_int(spec.default_steps, 1, max_steps):
        problems.append(f"default_steps must be an integer in [1, {max_steps}] for a {spec.sampler} world, got {spec.default_steps!r}")
    if not isinstance(spec.context_noise, (int, float)) or isinstance(spec.context_noise, bool) or not 0 <= spec.context_noise <= 1:
        problems.append(f"context_noise must be a number in [0, 1], got {spec.context_noise!r}")
    if not isinstance(spec.mid_time, (int, float)) or isinstance(spec.mid_time, bool) or not 0 < spec.mid_time < T_MAX:
        problems.append(f"mid_time must be a number in (0, {T_MAX:.4f}), got {spec.mid_time!r}")
    if not _is_int(spec.fps, 1, 240):
        problems.append(f"fps must be an integer in [1, 240], got {spec.fps!r}")
    if not isinstance(spec.training_seeds, list) or not all(_is_int(s, 0, 2**63 - 1) for s in spec.training_seeds):
        problems.append("training_seeds must be a list of non-negative integers")
    return problems


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
    events: torch.Tensor | None = None
    """(B, 2) the reward head's reading of each world's last step (`Payments.last`); None
    without a head."""


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Any image file as an RGB frame of size x size (Genie-style image prompt)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PROMPT_PIXELS:
                    raise ValueError(f"{path}: a {img.width}x{img.height} image is larger than a prompt may be "
                                     f"({MAX_PROMPT_PIXELS // 10**6} megapixels); shrink it first")
                if min(img.size) < 1:
                    raise ValueError(f"{path}: an image of size {img.width}x{img.height} holds no pixels")
                return np.asarray(_rgb8(img).resize((size, size), Image.BILINEAR))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"{path}: refused, it decodes to more pixels than a prompt may have ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path}: not an image file Pillow can read (PNG, JPG, ...): {e}") from None


def _rgb8(img: Any) -> Any:
    """An 8-bit RGB copy of a Pillow image; 16-bit and float images are scaled, not clipped to white."""
    from PIL import Image

    if img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img).astype(np.float64)
        if img.mode == "F":
            top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        else:
            top = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(values / top * 255), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return img.convert("RGB")


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
        trusted_modules: Sequence[str] = (),
    ) -> None:
        """`compile`: run the networks through torch.compile (see `rollout.for_inference`).
        `trusted_modules`: Python modules the world's `source_env` may name besides worldgen's
        own (see `data.sources.trusted_env_id`); a world folder never runs code otherwise."""
        folder = resolve_world(world)
        spec = read_spec(folder)
        device = resolve_device(device)
        ae, ae_config = load_export(folder / "ae", "autoencoder", device)
        net = load_export(folder / "dynamics", "dynamics", device)[0]
        reward_head = load_export(folder / "reward", "reward", device)[0] if (folder / "reward").exists() else None
        self._setup(spec, ae, net, reward_head, folder, ae_config.get("frame_size"), sampling_steps, batch_size, compile,
                    trusted_modules)
        if (folder / PROMPTS_FILE).exists():
            with np.load(folder / PROMPTS_FILE, allow_pickle=False) as stored:
                self.prompts = _checked_prompts(stored["frames"], spec, str(folder / PROMPTS_FILE))

    @classmethod
    def from_modules(cls, spec: WorldSpec, ae: nn.Module, dynamics: nn.Module, reward_head: nn.Module | None,
                     sampling_steps: int | None = None, batch_size: int = 1, compile: bool = False,
                     trusted_modules: Sequence[str] = ()) -> "World":
        """A world from networks already in memory (on one device): a run being trained, or
        random weights in a test. Checked against `spec` as a folder's networks are."""
        problems = _spec_problems(spec)
        if problems:
            raise ValueError(f"world spec {spec.name!r}: " + "; ".join(problems))
        world = cls.__new__(cls)
        world._setup(spec, ae.eval(), dynamics.eval(), None if reward_head is None else reward_head.eval(), None, None, sampling_steps, batch_size, compile,
                     trusted_modules)
        return world

    def _setup(self, spec: WorldSpec, ae: nn.Module, net: nn.Module, reward_head: nn.Module | None, folder: Path | None,
               trained_size: int | None, sampling_steps: int | None, batch_size: int, compile: bool,
               trusted_modules: Sequence[str]) -> None:
        if not _is_int(batch_size, 1, 1 << 16):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.spec, self.trusted_modules = spec, tuple(trusted_modules)
        self.folder = folder  # where the world was loaded from; None for one built from modules
        self.prompts: np.ndarray | None = None  # opening frames of a world with no game to make
        self.ae, self.net, self.reward_head = ae, net, reward_head
        self.device = next(net.parameters()).device
        self.codec = LatentCodec(ae, self.device)
        self._check_parts(trained_size)
        self.ae.decoder, self.net = (for_inference(m, compile) for m in (self.ae.decoder, self.net))
        self.reward_head = None if reward_head is None else for_inference(reward_head, compile)  # None: it pays nothing
        self.batch_size = batch_size
        self.sampling_steps = sampling_steps or self.spec.default_steps
        self.generators = [torch.Generator(self.device) for _ in range(batch_size)]
        """One per world: a world's noise never depends on the rest of the batch."""
        self.context: torch.Tensor | None = None
        """(B, K, C, h, w) latents in sigma_d units."""
        self.actions = torch.zeros(batch_size, self.spec.context - 1, dtype=torch.long, device=self.device)
        """(B, K - 1): the actions between the context frames."""
        self.steps = np.zeros(batch_size, dtype=np.int64)
        self.payments = None if self.reward_head is None else Payments(self.reward_head, batch_size, self.device)

    @property
    def _where(self) -> str:
        return str(self.folder / WORLD_FILE) if self.folder else f"world {self.spec.name!r}"

    def _check_parts(self, trained_size: int | None) -> None:
        """The networks must be those the spec describes: a mismatch would run and draw garbage."""
        spec = self.spec
        problems = []
        if trained_size is not None and trained_size != spec.frame_size:
            problems.append(f"frame_size is {spec.frame_size} but the autoencoder was trained on {trained_size}x{trained_size} frames")
        net = self.net.cfg
        if net.context != spec.context:
            problems.append(f"context is {spec.context} but the dynamics network takes {net.context} frames")
        if net.num_actions != len(spec.action_meanings):
            problems.append(f"action_meanings names {len(spec.action_meanings)} actions but the dynamics network takes {net.num_actions}")
        head = self.reward_head.cfg if self.reward_head is not None else net
        if (head.context, head.num_actions) != (net.context, net.num_actions):
            problems.append(f"the reward head takes {head.context} frames and {head.num_actions} actions, the dynamics network "
                            f"{net.context} and {net.num_actions}")
        if net.latent_channels != self.ae.cfg.latent_channels:
            problems.append(f"the dynamics network takes {net.latent_channels} latent channels, the autoencoder makes {self.ae.cfg.latent_channels}")
        if problems:
            raise CheckpointError(f"{self._where}: " + "; ".join(problems))

    def make_source(self, **kwargs: Any) -> Any:
        """The real game the world was trained on, as it was recorded (RGB frames at the world's
        size, Atari without sticky actions), made without importing any module the world's files
        name unless the user trusted it."""
        from worldgen.data.sources import VIDEO_ENV, SourceEnvError, make_source_env, trusted_env_id

        if self.spec.source_env == VIDEO_ENV:
            raise SourceEnvError(f"{self._where} was learnt from video alone: there is no real game to make beside it "
                                 "(it starts from its clips' opening frames, or from an image prompt)")
        return make_source_env(trusted_env_id(self.spec.source_env, self.trusted_modules), self.spec.frame_size, **kwargs)

    @property
    def action_meanings(self) -> list[str]:
        return list(self.spec.action_meanings)

    @property
    def sampling_steps(self) -> int:
        return self.sampler.steps

    @sampling_steps.setter
    def sampling_steps(self, steps: int) -> None:
        self.sampler = self.spec.play_sampler(int(steps) if isinstance(steps, np.integer) else steps)

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
            actions = self.parse_actions(actions)
            if len(actions) not in (n - 1, n):
                raise ValueError(f"a prompt of {n} frames takes {n - 1} actions (or {n}), got {len(actions)}")
            between = actions[-(n - 1):] if n > 1 else np.zeros(0, dtype=np.int64)
        frames = frames[-k:]
        between = between[-(k - 1):] if k > 1 else between[:0]
        pad = k - len(frames)
        frames = np.concatenate([np.repeat(frames[:1], pad, axis=0), frames])
        between = np.concatenate([np.zeros(k - 1 - len(between), dtype=np.int64), between])
        z = self.codec.encode(frames)  # (K, C, h, w)
        if self.context is None:
            self.context = z[None].repeat(self.batch_size, 1, 1, 1, 1)
        self.context[index] = z
        self.actions[index] = torch.from_numpy(between).to(self.device)
        self.steps[index] = 0
        if self.payments is not None:
            self.payments.reset(index)
        for j, w in enumerate(index):
            self.generators[w].manual_seed((0 if seed is None else int(seed)) + j)
        return np.repeat(frames[-1:], len(index), axis=0)

    def _prompt_frames(self, prompt: Any) -> np.ndarray:
        size = self.spec.frame_size
        if isinstance(prompt, (bool, np.bool_)):
            raise ValueError(f"a prompt is frames (N, H, W, 3) uint8, an image path or a level seed, got {prompt!r}")
        if prompt is None or isinstance(prompt, (int, np.integer)):
            seed = 0 if prompt is None else int(prompt)
            if not 0 <= seed < 2**32:
                raise ValueError(f"a level-seed prompt must be an integer in [0, 2**32), got {seed}")
            if self.prompts is not None:
                return self.prompts[seed % len(self.prompts)]
            return self.source_frame(seed)[None]
        if isinstance(prompt, (str, Path)):
            return load_image(prompt, size)[None]
        frames = np.asarray(prompt)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
            raise ValueError(f"a prompt is frames (N, H, W, 3) RGB with N, H, W > 0, an image path or a level seed; "
                             f"got an array of shape {frames.shape}")
        if frames.dtype != np.uint8:
            raise ValueError(f"prompt frames must be uint8, got {frames.dtype}")
        if frames.shape[1:3] != (size, size):
            from PIL import Image

            frames = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])
        return frames

    def source_frame(self, seed: int) -> np.ndarray:
        """The first frame of the source game at a level seed (of the opening frames it picks,
        for a world learnt from video)."""
        if self.prompts is not None:
            return self.prompts[seed % len(self.prompts)][-1]
        env = self.make_source()
        try:
            frame, _ = env.reset(seed=seed)
        finally:
            env.close()
        return self._prompt_frames(np.asarray(frame))[0]

    # --- stepping ---------------------------------------------------------------------------

    def parse_actions(self, actions: Any) -> np.ndarray:
        """Actions as int64, refusing what is not a valid action (a float is never rounded)."""
        a = np.asarray(actions).reshape(-1)
        if a.size == 0:
            return np.zeros(0, dtype=np.int64)
        n = len(self.spec.action_meanings)
        if not np.issubdtype(a.dtype, np.integer) or ((a < 0) | (a >= n)).any():
            raise ValueError(f"actions must be integers in [0, {n}) ({', '.join(self.spec.action_meanings)}), "
                             f"got {a.tolist() if a.size < 20 else a.dtype}")
        return a.astype(np.int64)

    @torch.inference_mode()
    def step(self, actions: Sequence[int] | np.ndarray | int) -> StepResult:
        """Advance every world one frame with its action: (B,) ints."""
        if self.context is None:
            raise RuntimeError("call reset() before step()")
        a = self.parse_actions(actions)
        if len(a) != self.batch_size:
            raise ValueError(f"step takes one action per world ({self.batch_size}), got {len(a)}")
        acts = torch.cat([self.actions, torch.from_numpy(a).to(self.device)[:, None]], dim=1)  # (B, K)
        nxt = predict_next(self.net, self.context, acts, self.sampler, self.generators)
        if not torch.isfinite(nxt).all():
            raise CheckpointError(f"{self._where}: the world drew NaN or infinite values at step {int(self.steps.max()) + 1}; "
                                  "its networks are broken")
        if self.payments is not None:
            reward, ended = self.payments(self.context, acts, nxt)
        else:
            reward, ended = torch.zeros(self.batch_size), torch.zeros(self.batch_size, dtype=torch.bool)
        frames = self.codec.decode(nxt)
        self.context = torch.cat([self.context[:, 1:], nxt[:, None]], dim=1)
        self.actions = acts[:, 1:]
        self.steps += 1
        return StepResult(frames, reward.cpu().numpy().astype(np.float32), ended.cpu().numpy())

    # --- snapshots --------------------------------------------------------------------------

    def get_state(self) -> WorldState:
        """A snapshot of the batch (tensors are copied; the world goes on unaffected)."""
        if self.context is None:
            raise RuntimeError("call reset() before get_state()")
        return WorldState(self.context.clone(), self.actions.clone(), [g.get_state() for g in self.generators], self.steps.copy(),
                          None if self.payments is None else self.payments.last.clone())

    def branches(self, n: int, world: int = 0) -> "World":
        """`n` copies of world `world` as a batch of their own, sharing this world's networks
        (no second load or compile): each starts from its state, noise included, so the copies
        differ only by the actions they are given. They pay nothing; this world is unaffected."""
        if self.context is None:
            raise RuntimeError("call reset() before branches()")
        if not _is_int(n, 1, 1 << 16) or not _is_int(world, 0, self.batch_size - 1):
            raise ValueError(f"branches needs n >= 1 copies of a world 0..{self.batch_size - 1}, got n={n!r}, world={world!r}")
        state = self.get_state()
        twin = copy.copy(self)
        twin.batch_size, twin.payments = n, None
        twin.generators = [torch.Generator(self.device) for _ in range(n)]
        twin.set_state(WorldState(state.context[world : world + 1].repeat(n, 1, 1, 1, 1), state.actions[world : world + 1].repeat(n, 1),
                                  [state.rng[world]] * n, np.repeat(state.steps[world : world + 1], n)))
        return twin

    def set_state(self, state: WorldState) -> None:
        """Return to a snapshot; stepping on from it repeats exactly what followed it."""
        if state.context.shape[0] != self.batch_size:
            raise ValueError(f"the snapshot holds {state.context.shape[0]} worlds, this world steps {self.batch_size}")
        self.context = state.context.to(self.device).clone()
        self.actions = state.actions.to(self.device).clone()
        for g, rng in zip(self.generators, state.rng):
            g.set_state(rng)
        self.steps = state.steps.copy()
        if self.payments is not None and state.events is not None:
            self.payments.last = state.events.to(self.device).clone()
