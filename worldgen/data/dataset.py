"""A dataset folder opened for reading: its episodes, split by episode, and summary statistics."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldgen.data.storage import Shard, list_shards, read_manifest

SPLITS = ("train", "val", "all")


def split_of(shard_file: str, val_fraction: float) -> str:
    """"val" or "train" for an episode, decided by a hash of its file name alone: the split is
    stable as a dataset grows, and no episode is ever on both sides."""
    return "val" if zlib.crc32(shard_file.encode()) % 10_000 < val_fraction * 10_000 else "train"


@dataclass
class DatasetInfo:
    env_id: str
    action_meanings: list[str]
    episodes: int
    frames: int
    steps: int
    action_counts: np.ndarray
    bytes_on_disk: int
    mean_return: float
    frame_shape: tuple[int, ...]

    def summary(self) -> str:
        total = max(int(self.action_counts.sum()), 1)
        lines = [
            f"env:         {self.env_id}",
            f"frames:      {self.frames} ({self.frame_shape[0]}x{self.frame_shape[1]})",
            f"episodes:    {self.episodes} (mean length {self.steps / max(self.episodes, 1):.0f} steps, "
            f"mean return {self.mean_return:.2f})",
            f"size:        {self.bytes_on_disk / 2**20:.2f} MiB "
            f"({self.bytes_on_disk / max(self.frames, 1) * 10_000 / 2**20:.2f} MiB per 10k frames)",
        ]
        if not self.action_meanings:
            return "\n".join(lines + ["actions:     unknown (made from video; `worldgen train lam` learns them)"])
        lines.append("actions:")
        width = max(len(m) for m in self.action_meanings)
        for i, (name, n) in enumerate(zip(self.action_meanings, self.action_counts)):
            bar = "#" * int(round(40 * n / total))
            lines.append(f"  {i:2d} {name:<{width}} {n:9d} {100 * n / total:5.1f}% {bar}")
        return "\n".join(lines)


class EpisodeDataset:
    """The episodes of one dataset folder, optionally one split of them, opened lazily."""

    def __init__(self, root: Path, split: str = "all", val_fraction: float = 0.1) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        files = list_shards(self.root, self.manifest)
        if split != "all":
            files = [f for f in files if split_of(f, val_fraction) == split]
        self.files = files
        self.shards = [Shard(self.root / f) for f in files]
        shape = tuple(self.manifest["frame_shape"])
        for shard in self.shards:
            if tuple(shard.meta["frame_shape"]) != shape:
                raise ValueError(f"{shard.path}: frames {shard.meta['frame_shape']} but the dataset's are {list(shape)}")

    @property
    def env_id(self) -> str:
        return self.manifest["env_id"]

    @property
    def action_meanings(self) -> list[str]:
        return list(self.manifest["action_meanings"])

    @property
    def actions_known(self) -> bool:
        """False for a dataset made from video: every action is UNKNOWN_ACTION (-1)."""
        return self.manifest.get("actions") != "unknown"

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return tuple(self.manifest["frame_shape"])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.shards)

    def info(self) -> DatasetInfo:
        counts = np.zeros(self.manifest["num_actions"], dtype=np.int64)
        returns = []
        for shard in self.shards:
            if self.actions_known:
                counts += np.bincount(shard.actions, minlength=len(counts))[: len(counts)]
            returns.append(float(shard.rewards.sum()))
        frames = sum(s.num_frames for s in self.shards)
        return DatasetInfo(
            env_id=self.env_id,
            action_meanings=self.action_meanings,
            episodes=len(self.shards),
            frames=frames,
            steps=frames - len(self.shards),
            action_counts=counts,
            bytes_on_disk=sum(s.path.stat().st_size for s in self.shards),
            mean_return=float(np.mean(returns)) if returns else 0.0,
            frame_shape=self.frame_shape,
        )

    def verify(self, progress: bool = True) -> None:
        """Check every shard's every byte (CRCs, frame counts); raises ShardError naming the first bad file."""
        from tqdm import tqdm

        for shard in tqdm(self.shards, desc="verify", unit="ep", disable=not progress):
            shard.verify()

    def level_seeds(self) -> set[Any]:
        """Level seeds of the episodes, where the source game reports them."""
        return {s.meta["level_seed"] for s in self.shards if "level_seed" in s.meta}
