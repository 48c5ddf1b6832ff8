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

    def __len__(self) -> int:
        return int(self._ends[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(episode, target frame) of window `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        episode = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[episode - 1]) if episode else 0
        return episode, index - start + 1

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
