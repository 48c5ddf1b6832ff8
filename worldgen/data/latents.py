"""A dataset's frames encoded once by an autoencoder, kept on disk as a memory-mapped array.

Dynamics training reads K + 1 latents per window; encoding them on every step would cost
more than the step itself on a CPU. The cache lives in the dataset folder, under
`latents/<autoencoder key>/`, and is rebuilt when the dataset or the autoencoder changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.export import WEIGHTS, read_tensors
from worldgen.atomic import write_json
from worldgen.data.dataset import EpisodeDataset
from worldgen.frames import to_model


class LatentStore:
    """Normalised (unit-variance) latents of every frame of a dataset, by shard file."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        index = json.loads((self.folder / "index.json").read_text())
        self.offsets: dict[str, int] = {f: o for f, o, _ in index["shards"]}
        self.counts: dict[str, int] = {f: n for f, _, n in index["shards"]}
        self.array = np.load(self.folder / "latents.npy", mmap_mode="r")  # (N, C, h, w) float16

    def frames(self, shard_file: str, indices: np.ndarray) -> np.ndarray:
        """Latents of frames `indices` of one episode: (len(indices), C, h, w) float32."""
        return np.asarray(self.array[self.offsets[shard_file] + indices], dtype=np.float32)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[1:])


def autoencoder_key(ae_folder: Path) -> str:
    """A digest of what makes the latents: the encoder and the latent scale, not the decoder, so
    an autoencoder whose decoder alone was fine-tuned (make-world's `ae_decoder`) shares the cache."""
    digest = hashlib.sha256()
    for name, tensor in sorted(read_tensors(Path(ae_folder) / WEIGHTS).items()):
        if not name.startswith("decoder."):
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_dataset(ae: torch.nn.Module, ae_folder: Path, data: Path, batch_size: int = 256, progress: bool = True) -> LatentStore:
    """The latent store of `data` under autoencoder `ae` (exported in `ae_folder`), built if
    missing or stale; built beside it and renamed into place, and an interrupted build goes on
    where it stopped."""
    episodes = EpisodeDataset(data)
    target = Path(data) / "latents" / autoencoder_key(ae_folder)
    wanted = [(f, s.num_frames) for f, s in zip(episodes.files, episodes.shards)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f".{target.name}.lock"):  # one encoder at a time (DDP ranks, two runs)
        if (target / "index.json").exists():
            index = json.loads((target / "index.json").read_text())
            if [(f, n) for f, _, n in index["shards"]] == wanted:
                return LatentStore(target)
        _encode(ae, ae_folder, episodes, wanted, target, batch_size, progress)
    return LatentStore(target)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _encode(ae: torch.nn.Module, ae_folder: Path, episodes: EpisodeDataset, wanted: list[tuple[str, int]], target: Path,
            batch_size: int, progress: bool) -> None:
    """Encode into `.<key>.partial` beside `target`, an episode at a time, noting each episode
    done; renamed into place at the end. An interrupted run (a make-world stopped during the
    20 minutes Freeway's cache takes) goes on from the first episode not done."""
    device = next(ae.parameters()).device
    sample = ae.encode(to_model(episodes.shards[0].frames()[:1], device))
    total = sum(n for _, n in wanted)
    shape = (total, *sample.shape[1:])
    partial = target.with_name(f".{target.name}.partial")
    layout = {"shards": [list(w) for w in wanted], "shape": list(shape)}
    done = 0
    if (partial / "layout.json").exists() and json.loads((partial / "layout.json").read_text()) == layout:
        done = json.loads((partial / "done.json").read_text())["episodes"] if (partial / "done.json").exists() else 0
        array = np.load(partial / "latents.npy", mmap_mode="r+")
    else:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        array = np.lib.format.open_memmap(partial / "latents.npy", mode="w+", dtype=np.float16, shape=shape)
        write_json(partial / "layout.json", layout)
    offsets = np.concatenate([[0], np.cumsum([n for _, n in wanted])])
    todo = list(zip(wanted, episodes.shards, offsets))[done:]
    for k, ((_, n), shard, offset) in enumerate(tqdm(todo, desc="encode latents", disable=not progress, initial=done,
                                                     total=len(wanted)), start=done):
        frames = shard.frames()
        for i in range(0, n, batch_size):
            z = ae.encode(to_model(frames[i : i + batch_size], device))
            array[offset + i : offset + i + len(z)] = z.cpu().numpy().astype(np.float16)
        array.flush()
        write_json(partial / "done.json", {"episodes": k + 1})
    del array
    write_json(partial / "index.json", {"shards": [(name, int(o), n) for (name, n), o in zip(wanted, offsets)],
                                        "autoencoder": str(ae_folder)})
    (partial / "done.json").unlink(missing_ok=True)
    (partial / "layout.json").unlink()
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
