"""The world's own frames, labelled by the game's rules, for training the reward head.

A head trained only on real frames pays for whatever in a drifted, generated frame looks a
little like a coin being taken or a flag being reached, and agents trained in the world find
and farm exactly those frames (`worldgen agent eval --in-world` showed a return of 8 in the
world for 0.5 in the real game). So the head also learns from the frames agents will see:
long open-loop rollouts of the world itself, each step labelled by the game's rules read
from the generated pictures (the kit's `events`). The pool is drawn once, before training,
from a fixed seed, so a resumed run trains on the same pool; with a `cache` file it is drawn
only once (the Platformer's pool is 20 minutes of CPU) and read back while its recipe holds;
when only the rules have changed since, its frames are judged again (a few minutes), not drawn.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import safe_open, save_file
from tqdm import tqdm

from models.export import WEIGHTS, load_export
from worldgen.atomic import atomic_path
from worldgen.codec import LatentCodec
from worldgen.data.policies import RandomRepeatPolicy
from worldgen.data.windows import WindowDataset
from worldgen.kit import EventRules
from worldgen.rollout import Sampler, rollout_steps
from worldgen.scm import SIGMA_D, T_MID, check_mid_time


@dataclass
class JudgedRolloutConfig:
    share: float = 0.0
    """Share of each batch from the world's own frames (0: off, real frames only)."""
    world: str = ""
    """Export folder of the dynamics network that draws them: the one agents will play."""
    rollouts: int = 256
    frames: int = 256
    """Open-loop length of each rollout, from K real frames; past the recorded episode, actions
    are random and held for a few steps."""
    sampler_steps: int = 2
    context_noise: float = 0.05
    mid_time: float = T_MID
    """The second step's time: the world's (`world.json`'s `mid_time`), so the head learns from
    the frames agents will see."""
    chunk: int = 64
    """Rollouts drawn at once."""
    val_fraction: float = 0.125
    """Share of the rollouts kept out of training, to judge the head on."""
    seed: int = 0

    def validate(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"judged.share must be in [0, 1], got {self.share}")
        if self.share and not self.world:
            raise ValueError("judged.share > 0 needs judged.world: the export folder of the dynamics network that draws the frames")
        if self.share and (self.rollouts < 2 or self.frames < 1):
            raise ValueError(f"judged rollouts need judged.rollouts >= 2 and judged.frames >= 1, got {self.rollouts} and {self.frames}")
        check_mid_time(self.mid_time)


class JudgedPool:
    """Steps of the world's own rollouts as reward-head windows: context (K latents), actions
    (K), target (the generated next latent), and the rules' reward and termination for it."""

    def __init__(self, cfg: JudgedRolloutConfig, windows: WindowDataset, codec: LatentCodec, rules: EventRules,
                 device: torch.device, cache: Path | None = None) -> None:
        cfg.validate()
        self.k, self.frames = windows.context, cfg.frames
        recipe, rules_id = _recipe(cfg, windows), _rules_id(rules)
        stored, labelled_by = _read_cache(cache, recipe) if cache is not None else (None, None)
        if stored is None:
            stored = self._draw(cfg, windows, codec, device)
        if labelled_by != rules_id:  # drawn now, or drawn before the rules changed: label it (again)
            stored.update(self._label(stored["latents"], codec, rules, device))
            if cache is not None:
                with atomic_path(cache) as tmp:
                    save_file(stored, str(tmp), metadata={"recipe": recipe, "rules": rules_id})
        self.latents, self.actions = stored["latents"], stored["actions"]  # (N, K + H, ...), (N, K + H - 1)
        self.rewards, self.ended = stored["rewards"], stored["ended"]  # (N, H)
        n_val = max(1, int(round(cfg.rollouts * cfg.val_fraction)))
        steps = torch.arange(cfg.rollouts * cfg.frames)
        self.train_index, self.val_index = steps[: -n_val * cfg.frames], steps[-n_val * cfg.frames :]
        flags = (self.rewards != 0) | self.ended
        self.train_events = self.train_index[flags.flatten()[self.train_index]]

    def _draw(self, cfg: JudgedRolloutConfig, windows: WindowDataset, codec: LatentCodec,
              device: torch.device) -> dict[str, torch.Tensor]:
        net, config = load_export(Path(cfg.world), "dynamics", device)
        net.requires_grad_(False)
        k = self.k
        if net.cfg.context != k:
            raise ValueError(f"judged.world {cfg.world} has a context of {net.cfg.context} frames, the reward head {k}")
        sampler = Sampler(config["sampler"], cfg.sampler_steps, cfg.context_noise, cfg.mid_time)
        rng = np.random.default_rng(cfg.seed)
        starts = rng.integers(len(windows), size=cfg.rollouts)
        padding = RandomRepeatPolicy(net.cfg.num_actions, seed=cfg.seed)
        latents, actions = [], []
        g = torch.Generator(device).manual_seed(cfg.seed)
        for lo in tqdm(range(0, cfg.rollouts, cfg.chunk), desc="judged rollouts", unit="chunk", leave=False):
            chunk = starts[lo : lo + cfg.chunk]
            items = [windows[int(i)] for i in chunk]
            context = torch.stack([it["context"] for it in items]).to(device) * SIGMA_D  # (n, K, C, h, w)
            acts = np.stack([self._actions(windows, int(i), it["actions"].numpy(), cfg.frames, padding) for i, it in zip(chunk, items)])
            generated = torch.stack(list(rollout_steps(net, context, torch.from_numpy(acts).to(device),
                                                       sampler, g)), dim=1)  # (n, H, C, h, w)
            latents.append(torch.cat([context, generated], dim=1).half().cpu())  # (n, K + H, C, h, w)
            actions.append(torch.from_numpy(acts))
        return {"latents": torch.cat(latents), "actions": torch.cat(actions)}

    def _label(self, latents: torch.Tensor, codec: LatentCodec, rules: EventRules, device: torch.device) -> dict[str, torch.Tensor]:
        """The rules' rewards and endings (N, H) for rollouts of latents (N, K + H, ...), read
        from their decoded frames: the last real frame's latent, then the world's."""
        rewards, ended = [], []
        for seq in tqdm(latents, desc="judging rollouts by the rules", unit="rollout", leave=False):
            judged = rules(codec.decode(seq[self.k - 1 :].float().to(device)))
            rewards.append(torch.from_numpy(judged[0]))
            ended.append(torch.from_numpy(judged[1]))
        return {"rewards": torch.stack(rewards), "ended": torch.stack(ended)}

    @staticmethod
    def _actions(windows: WindowDataset, index: int, context_actions: np.ndarray, frames: int,
                 padding: RandomRepeatPolicy) -> np.ndarray:
        """The K window actions, then the episode's own actions for the next frames - 1 steps,
        then held random ones where the episode ended sooner: (K + frames - 1,)."""
        episode, t = windows.locate(index)
        recorded = windows.episodes.shards[episode].actions[t : t + frames - 1]
        extra = [int(padding.act(np.zeros(1), [{}], np.array([False]))[0]) for _ in range(frames - 1 - len(recorded))]
        return np.concatenate([context_actions, recorded, np.array(extra, dtype=np.int64)]).astype(np.int64)

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """Windows `index` (rollout * frames + step) as a batch like `LatentData.batch`'s."""
        r, i = index // self.frames, index % self.frames
        span = torch.arange(self.k)
        context = self.latents[r[:, None], i[:, None] + span]  # (B, K, C, h, w)
        return {
            "context": context.float().to(device),
            "actions": self.actions[r[:, None], i[:, None] + span].to(device),
            "target": self.latents[r, i + self.k].float().to(device),
            "reward": self.rewards[r, i].to(device),
            "terminated": self.ended[r, i].to(device),
        }


def _recipe(cfg: JudgedRolloutConfig, windows: WindowDataset) -> str:
    """Everything a pool is drawn from, as text: the settings, the episodes, their latents (a
    store per autoencoder) and the world's weights file by size and time, so a retrained world
    or autoencoder is never read from an old pool."""
    weights = Path(cfg.world) / WEIGHTS
    stat = weights.stat()
    store = windows.latents.folder.resolve() if windows.latents is not None else None
    drawn = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("share", "val_fraction")}  # not how it is drawn
    return json.dumps({"judged": drawn, "data": str(windows.episodes.root.resolve()),
                       "episodes": [str(f) for f in windows.episodes.files], "context": windows.context,
                       "latents": str(store), "world": [str(weights.resolve()), stat.st_size, stat.st_mtime_ns]},
                      sort_keys=True)


def _rules_id(rules: EventRules) -> str:
    """The rules by name and by the source of their module, so that a pool labelled before the
    rules were mended is labelled again rather than read back with the old labels."""
    module = sys.modules.get(rules.__module__)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):  # no source to read (built in, or defined where it is gone)
        source = ""
    return f"{rules.__module__}.{getattr(rules, '__qualname__', type(rules).__name__)}:{hashlib.sha256(source.encode()).hexdigest()[:16]}"


def _read_cache(cache: Path, recipe: str) -> tuple[dict[str, torch.Tensor] | None, str | None]:
    """The pool stored in `cache` if it was drawn from `recipe` (else None: it is drawn again),
    and the rules its labels came from."""
    if not Path(cache).exists():
        return None, None
    with safe_open(str(cache), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("recipe") != recipe:
            return None, None
        return {key: f.get_tensor(key) for key in f.keys()}, meta.get("rules")
