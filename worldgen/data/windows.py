"""Training windows: K context frames, the actions after them, and the next frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from worldgen.data.dataset import EpisodeDataset
from worldgen.data.latents import LatentStore
from worldgen.data.storage import FrameCache


class WindowDataset(Dataset):
    """Every transition of a dataset split as a window for next-frame training.

    Window for target frame t of an episode (1 <= t <= T):
    - `context`: frames t-K .. t-1, (K, H, W, 3) uint8; before the episode's first frame
      the first frame is repeated, as when a world is started from fewer than K frames;
    - `actions`: actions t-K .. t-1, (K,) int64, action i leading from context frame i to
      the next (the last one to the target); NOOP (0) where the context is padded;
    - `target`: frame t, (H, W, 3) uint8; `reward`, `terminated`: of the step into frame t.

    A window never spans two episodes. Frames are read lazily from the compressed shards,
    through a bounded cache of decompressed chunks, so datasets larger than RAM train.
    With `latents` (a LatentStore of the same dataset), `context` and `target` are the
    frames' latents instead, (K, C, h, w) and (C, h, w) float32, read from the memory map.
    """

    def __init__(
        self,
        root: Path,
        context: int = 4,
        split: str = "train",
        val_fraction: float = 0.1,
        cache_chunks: int = 256,
        latents: LatentStore | None = None,
    ) -> None:
        if context < 0:
            raise ValueError(f"context must be 0 or more frames, got {context}")
        self.episodes = EpisodeDataset(root, split=split, val_fraction=val_fraction)
        if len(self.episodes) == 0:
            raise ValueError(f"{root}: the {split!r} split has no episodes (collect more episodes or change val_fraction)")
        self.context = context
        self.latents = latents
        if latents is not None:
            stale = [f for f, s in zip(self.episodes.files, self.episodes.shards) if latents.counts.get(f) != s.num_frames]
            if stale:
                raise ValueError(f"the latent store {latents.folder} does not match {root} ({stale[0]} differs); re-encode")
        steps = np.array([s.num_steps for s in self.episodes.shards])
        self._ends = np.cumsum(steps)
        self._cache = FrameCache(cache_chunks)
        shards = self.episodes.shards
        # Every episode's actions, rewards and terminations end to end, for batches gathered at once.
        self._step_starts = self._ends - steps
        self._actions = np.concatenate([s.actions for s in shards]).astype(np.int64)
        self._rewards = np.concatenate([s.rewards for s in shards]).astype(np.float32)
        self._terminated = np.concatenate([s.terminated for s in shards]).astype(bool)
        self._first_latent = np.array([latents.offsets[f] for f in self.episodes.files]) if latents is not None else None

    def __len__(self) -> int:
        return int(self._ends[-1])

    def episode_of(self, indices: np.ndarray) -> np.ndarray:
        """The episode of each window in `indices`."""
        return np.searchsorted(self._ends, indices, side="right")

    def ending_windows(self, frames: int) -> np.ndarray:
        """The windows whose target is among the last `frames` frames of an episode that
        terminated (a death, a win), not one cut by a time limit."""
        ended = np.flatnonzero(self._terminated[self._ends - 1])
        spans = [np.arange(max(self._step_starts[e], self._ends[e] - frames), self._ends[e]) for e in ended]
        return np.concatenate(spans).astype(np.int64) if spans else np.zeros(0, dtype=np.int64)

    def live_windows(self) -> np.ndarray:
        """The windows whose target step did not end its episode: states to play on from."""
        return np.flatnonzero(~self._terminated).astype(np.int64)

    def locate(self, index: int) -> tuple[int, int]:
        """(episode, target frame) of window `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        episode = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[episode - 1]) if episode else 0
        return episode, index - start + 1

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Windows `indices`, stacked: what `__getitem__` gives one by one, read in a few numpy
        gathers when the frames are latents (a batch of 256 on a GPU no longer waits on Python)."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.latents is None:
            items = [self[int(i)] for i in indices]
            return {k: torch.stack([it[k] for it in items]) for k in items[0]}
        if len(indices) and not (0 <= indices.min() and indices.max() < len(self)):
            raise IndexError(f"windows {indices.min()}..{indices.max()} out of range for {len(self)} windows")
        episode = self.episode_of(indices)
        t = indices - self._step_starts[episode] + 1  # target frame in its episode
        steps = t[:, None] + np.arange(-self.context, 0)  # (B, K)
        padded = steps < 0
        clipped = np.maximum(steps, 0)
        frames = self.latents.array[self._first_latent[episode][:, None] + np.concatenate([clipped, t[:, None]], axis=1)]  # (B, K+1, C, h, w)
        frames = torch.from_numpy(frames.astype(np.float32))
        first_step = self._step_starts[episode]
        return {
            "context": frames[:, :-1],
            "actions": torch.from_numpy(np.where(padded, 0, self._actions[first_step[:, None] + clipped])),
            "target": frames[:, -1],
            "reward": torch.from_numpy(self._rewards[first_step + t - 1]),
            "terminated": torch.from_numpy(self._terminated[first_step + t - 1]),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        episode, t = self.locate(int(index))
        shard = self.episodes.shards[episode]
        steps = np.arange(t - self.context, t)  # (K,) context frame = action indices
        padded = steps < 0
        indices = np.append(np.maximum(steps, 0), t)
        if self.latents is not None:
            frames = self.latents.frames(self.episodes.files[episode], indices)  # (K+1, C, h, w)
        else:
            frames = self._cache.frames(episode, shard, indices)  # (K+1, H, W, 3)
        actions = np.where(padded, 0, shard.actions[np.maximum(steps, 0)])
        return {
            "context": torch.from_numpy(frames[:-1]),
            "actions": torch.from_numpy(actions.astype(np.int64)),
            "target": torch.from_numpy(frames[-1]),
            "reward": torch.tensor(float(shard.rewards[t - 1])),
            "terminated": torch.tensor(bool(shard.terminated[t - 1])),
        }
