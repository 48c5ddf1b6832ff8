"""Episode shards and the dataset manifest: how recorded gameplay lives on disk.

A dataset is a folder with `manifest.json` and one compressed shard per episode,
`ep-NNNNNN.npz`. A shard is a zip of .npy members (no pickle):

| member            | dtype   | shape         | meaning                                  |
|-------------------|---------|---------------|------------------------------------------|
| `meta`            | str     | ()            | JSON: format, version, env id, counts    |
| `frames_00000`... | uint8   | (<=C, H, W, 3)| frames in chunks of C, frame 0 = reset   |
| `actions`         | int64   | (T,)          | action t leads from frame t to frame t+1 |
| `rewards`         | float32 | (T,)          |                                          |
| `terminated`      | bool    | (T,)          |                                          |
| `truncated`       | bool    | (T,)          |                                          |

Frames are stored in chunks so a training window decompresses a few dozen frames, not a
whole episode: datasets larger than RAM train from disk. Every file is written to a temporary
name and renamed (`worldgen.atomic`), so an interrupted write never leaves a partial shard or
manifest.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldgen.atomic import write_atomic, write_json

SHARD_FORMAT = "worldgen-episode"
DATASET_FORMAT = "worldgen-dataset"
FORMAT_VERSION = 1
CHUNK = 32
"""Frames per compressed chunk inside a shard."""
MANIFEST = "manifest.json"
LOCK = ".lock"
"""Held (flock) by the one process that may write a dataset folder."""
_SHARD_NAME = re.compile(r"^ep-(\d{6,})\.npz$")


class ShardError(ValueError):
    """A file that should be an episode shard is corrupted, foreign or inconsistent."""


class DatasetError(ValueError):
    """A folder that should be a dataset is missing, foreign or inconsistent."""


@dataclass
class Episode:
    """One recorded episode in memory, as collected."""

    frames: np.ndarray
    """(T + 1, H, W, 3) uint8; frame 0 is the reset observation."""
    actions: np.ndarray
    """(T,) int64; action t leads from frame t to frame t + 1."""
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form facts kept with the shard (level seed, policy, ...)."""

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def __post_init__(self) -> None:
        t = len(self.actions)
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T + 1, H, W, 3) uint8, got {self.frames.shape} {self.frames.dtype}")
        if len(self.frames) != t + 1:
            raise ValueError(f"an episode of {t} actions needs {t + 1} frames, got {len(self.frames)}")
        for name in ("rewards", "terminated", "truncated"):
            if len(getattr(self, name)) != t:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {t} actions")


@contextmanager
def dataset_lock(root: Path) -> Iterator[None]:
    """Hold a dataset folder for writing: a second writer gets a clear error instead of two runs
    numbering the same shards and each rewriting the manifest without the other's episodes.

    Under the lock, temporary files that a killed writer left behind are removed.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise DatasetError(f"{root} is being written by another process (pid {holder}); wait for it to finish "
                               "or write into another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        for stale in root.glob(".*.tmp"):  # a writer killed mid-file; only a lock holder writes here
            stale.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_shard(path: Path, episode: Episode, env_id: str) -> None:
    """Write one episode as a compressed shard, atomically."""
    meta = {
        "format": SHARD_FORMAT,
        "version": FORMAT_VERSION,
        "env_id": env_id,
        "num_frames": len(episode.frames),
        "frame_shape": list(episode.frames.shape[1:]),
        "chunk": CHUNK,
        **episode.meta,
    }
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps(meta)),
        "actions": episode.actions.astype(np.int64),
        "rewards": episode.rewards.astype(np.float32),
        "terminated": episode.terminated.astype(bool),
        "truncated": episode.truncated.astype(bool),
    }
    for i in range(0, len(episode.frames), CHUNK):
        arrays[f"frames_{i // CHUNK:05d}"] = episode.frames[i : i + CHUNK]
    write_atomic(path, lambda f: np.savez_compressed(f, **arrays))


MAX_OPEN_SHARDS = 64
"""Zip handles kept open across all shards; a dataset may have far more episodes than a
process may have open files."""
_open_shards: OrderedDict[int, "Shard"] = OrderedDict()


class Shard:
    """Lazy reader of one episode shard: metadata and per-step arrays on open, frames on demand.

    At most MAX_OPEN_SHARDS zip handles stay open (least recently used closed first). Safe
    across fork (DataLoader workers): the zip handle is reopened in each process.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._pid: int | None = None
        self._zip: Any = None
        z = self._open()
        try:
            self.meta = json.loads(str(z["meta"]))
            if self.meta.get("format") != SHARD_FORMAT:
                raise ShardError(f"{self.path}: not a worldgen episode shard (format {self.meta.get('format')!r})")
            if self.meta.get("version", 0) > FORMAT_VERSION:
                raise ShardError(
                    f"{self.path}: shard format version {self.meta['version']} is newer than this worldgen "
                    f"reads ({FORMAT_VERSION}); upgrade worldgen"
                )
            self.actions = z["actions"]
            self.rewards = z["rewards"]
            self.terminated = z["terminated"]
            self.truncated = z["truncated"]
        except ShardError:
            raise
        except (KeyError, ValueError, zipfile.BadZipFile, OSError, EOFError, zlib.error, json.JSONDecodeError) as e:
            raise ShardError(f"{self.path}: corrupted or not a worldgen episode shard ({type(e).__name__}: {e})") from e
        self.num_frames = int(self.meta["num_frames"])
        self.chunk = int(self.meta["chunk"])
        if len(self.actions) != self.num_frames - 1:
            raise ShardError(f"{self.path}: {len(self.actions)} actions for {self.num_frames} frames")
        self.close()

    @property
    def num_steps(self) -> int:
        return self.num_frames - 1

    def _open(self) -> Any:
        if self._pid != os.getpid() or self._zip is None:
            try:
                self._zip = np.load(self.path, allow_pickle=False)
            except (ValueError, zipfile.BadZipFile, OSError, EOFError) as e:
                raise ShardError(f"{self.path}: corrupted or not a worldgen episode shard ({type(e).__name__}: {e})") from e
            self._pid = os.getpid()
        _open_shards[id(self)] = self
        _open_shards.move_to_end(id(self))
        while len(_open_shards) > MAX_OPEN_SHARDS:
            _open_shards.popitem(last=False)[1].close()
        return self._zip

    def chunk_frames(self, index: int) -> np.ndarray:
        """Decompress frame chunk `index`: (<= chunk, H, W, 3) uint8."""
        try:
            return self._open()[f"frames_{index:05d}"]
        except (KeyError, ValueError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise ShardError(f"{self.path}: cannot read frame chunk {index} ({type(e).__name__}: {e})") from e

    def frames(self) -> np.ndarray:
        """All frames of the episode: (T + 1, H, W, 3) uint8."""
        n_chunks = -(-self.num_frames // self.chunk)
        return np.concatenate([self.chunk_frames(i) for i in range(n_chunks)])

    def verify(self) -> None:
        """Read every member and check its CRC: a shard damaged after writing fails here, naming
        the file, instead of deep inside a training run."""
        try:
            with zipfile.ZipFile(self.path) as z:
                for name in z.namelist():
                    try:
                        with z.open(name) as member:
                            while member.read(1 << 20):
                                pass
                    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
                        raise ShardError(f"{self.path}: member {name} is damaged ({type(e).__name__}: {e}); "
                                         "delete this shard or record the episode again") from e
        except (zipfile.BadZipFile, OSError) as e:
            raise ShardError(f"{self.path}: corrupted ({type(e).__name__}: {e})") from e
        n_chunks = -(-self.num_frames // self.chunk)
        shapes = [self.chunk_frames(i).shape for i in range(n_chunks)]
        if sum(s[0] for s in shapes) != self.num_frames:
            raise ShardError(f"{self.path}: holds {sum(s[0] for s in shapes)} frames, its metadata says {self.num_frames}")

    def close(self) -> None:
        if self._zip is not None and self._pid == os.getpid():
            self._zip.close()
        self._zip, self._pid = None, None
        _open_shards.pop(id(self), None)


class FrameCache:
    """Least-recently-used cache of decompressed frame chunks, bounded in count."""

    def __init__(self, max_chunks: int = 256) -> None:
        self.max_chunks = max_chunks
        self._chunks: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def frames(self, shard_id: int, shard: Shard, indices: np.ndarray) -> np.ndarray:
        """Frames `indices` of a shard: (len(indices), H, W, 3) uint8."""
        out = []
        for i in indices:
            key = (shard_id, int(i) // shard.chunk)
            chunk = self._chunks.get(key)
            if chunk is None:
                chunk = shard.chunk_frames(key[1])
                self._chunks[key] = chunk
                if len(self._chunks) > self.max_chunks:
                    self._chunks.popitem(last=False)
            else:
                self._chunks.move_to_end(key)
            out.append(chunk[int(i) % shard.chunk])
        return np.stack(out)


# --- manifest and dataset folders ------------------------------------------------------


def read_manifest(root: Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise DatasetError(f"{root}: not a worldgen dataset (no {MANIFEST}); record one with `worldgen collect`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: corrupted manifest ({e})") from e
    if manifest.get("format") != DATASET_FORMAT:
        raise DatasetError(f"{path}: not a worldgen dataset manifest (format {manifest.get('format')!r})")
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    write_json(Path(root) / MANIFEST, manifest)


def new_manifest(env_id: str, action_meanings: list[str], frame_shape: tuple[int, ...]) -> dict[str, Any]:
    return {
        "format": DATASET_FORMAT,
        "version": FORMAT_VERSION,
        "env_id": env_id,
        "action_meanings": list(action_meanings),
        "num_actions": len(action_meanings),
        "frame_shape": list(frame_shape),
        "episodes": 0,
        "frames": 0,
        "steps": 0,
        "shards": [],
    }


def shard_entry(name: str, episode: "Episode | Shard") -> dict[str, Any]:
    """The manifest's line for one shard (from the episode in memory, or the shard on disk)."""
    return {
        "file": name,
        "frames": episode.num_frames,
        "return": float(episode.rewards.sum()),
        "terminated": bool(episode.terminated[-1]) if len(episode.terminated) else False,
        **{k: episode.meta[k] for k in ("level_seed",) if k in episode.meta},
    }


def add_to_manifest(manifest: dict[str, Any], entry: dict[str, Any]) -> None:
    manifest["shards"].append(entry)
    manifest["episodes"] = len(manifest["shards"])
    manifest["frames"] = sum(s["frames"] for s in manifest["shards"])
    manifest["steps"] = manifest["frames"] - manifest["episodes"]


def next_shard_index(root: Path) -> int:
    """One past the highest shard number in a folder (shards are never renumbered)."""
    numbers = [int(m.group(1)) for p in Path(root).glob("ep-*.npz") if (m := _SHARD_NAME.match(p.name))]
    return max(numbers, default=-1) + 1


def shard_name(index: int) -> str:
    return f"ep-{index:06d}.npz"


def list_shards(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Shard files of a dataset: those in the manifest, checked to exist, plus any finished
    shard on disk that an interrupted run wrote but did not yet enter in the manifest."""
    root = Path(root)
    listed = [s["file"] for s in manifest["shards"]]
    missing = [name for name in listed if not (root / name).exists()]
    if missing:
        raise DatasetError(f"{root}: the manifest lists shards that are missing: {', '.join(missing[:5])}")
    extra = sorted(p.name for p in root.glob("ep-*.npz") if _SHARD_NAME.match(p.name) and p.name not in set(listed))
    return listed + extra
