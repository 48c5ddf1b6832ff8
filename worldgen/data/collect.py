"""Record gameplay from parallel envs into episode shards."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from worldgen.data.policies import Policy
from worldgen.data.sources import action_meanings, make_source_env
from worldgen.data.storage import (
    MANIFEST,
    DatasetError,
    Episode,
    Shard,
    add_to_manifest,
    dataset_lock,
    list_shards,
    new_manifest,
    next_shard_index,
    read_manifest,
    shard_entry,
    shard_name,
    write_manifest,
    write_shard,
)


@dataclass
class CollectResult:
    episodes: int
    frames: int
    seconds: float
    seed: int
    """Env seed of the run (env i got seed + i): the one given, or the one drawn."""

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


class EpisodeRecorder:
    """One episode as it is played, step by step; `episode()` gives the `Episode` a shard holds.
    Collection and evaluation's real play record through it."""

    def __init__(self, first_frame: np.ndarray, level_seed: Any) -> None:
        self.frames = [first_frame]
        self.actions: list[int] = []
        self.rewards: list[float] = []
        self.terminated: list[bool] = []
        self.truncated: list[bool] = []
        self.level_seed = level_seed

    def add(self, action: int, frame: np.ndarray, reward: float, terminated: bool, truncated: bool) -> None:
        self.actions.append(int(action))
        self.frames.append(frame)
        self.rewards.append(float(reward))
        self.terminated.append(bool(terminated))
        self.truncated.append(bool(truncated))

    def episode(self, policy_name: str) -> Episode:
        meta: dict[str, Any] = {"policy": policy_name}
        if self.level_seed is not None:
            meta["level_seed"] = int(self.level_seed)
        return Episode(
            frames=np.stack(self.frames),
            actions=np.array(self.actions, dtype=np.int64),
            rewards=np.array(self.rewards, dtype=np.float32),
            terminated=np.array(self.terminated),
            truncated=np.array(self.truncated),
            meta=meta,
        )


def collect(
    env_id: str,
    out: Path,
    episodes: int,
    policy: Policy,
    policy_name: str,
    size: int = 64,
    num_envs: int = 1,
    seed: int | None = None,
    progress: bool = True,
) -> CollectResult:
    """Play `episodes` episodes of `env_id` with `policy` in `num_envs` parallel envs and add
    them to the dataset folder `out` (created if needed).

    Each finished episode is written as its own shard right away (in a writer thread, since
    compression releases the GIL), so an interrupted run keeps every episode it finished.
    """
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"need episodes >= 1 and num_envs >= 1, got {episodes} and {num_envs}")
    make = partial(make_source_env, env_id, size)
    probe = make()  # fail fast, in this process, on an unusable env id
    meanings = action_meanings(probe)
    probe.close()
    out = Path(out)
    with dataset_lock(out):
        manifest = _open_or_create(out, env_id, meanings, (size, size, 3))
        seed = _unused_seed(out, manifest, seed, num_envs)
        return _collect_locked(out, manifest, env_id, make, episodes, policy, policy_name, num_envs, seed, progress)


def _unused_seed(out: Path, manifest: dict[str, Any], seed: int | None, num_envs: int) -> int:
    """The run's env seed (S gives env i the seed S + i), refused if an earlier run into this
    dataset used any of them: it would record the same levels again, byte for byte, and the
    copies could land in both the training and the validation split."""
    used = set(manifest.get("env_seeds", []))
    if seed is None:
        rng = np.random.default_rng()
        seed = int(rng.integers(2**31 - num_envs))
        while used & set(range(seed, seed + num_envs)):
            seed = int(rng.integers(2**31 - num_envs))
        return seed
    clash = sorted(used & set(range(seed, seed + num_envs)))
    if clash:
        free = max(used) + 1
        raise DatasetError(
            f"{out} already holds episodes recorded with env seeds {clash[:5]} (--seed {seed} with {num_envs} envs uses "
            f"{seed}..{seed + num_envs - 1}): they would be the same episodes again. Pass --seed {free} (the next unused) "
            "or leave --seed out"
        )
    return seed


def _collect_locked(out: Path, manifest: dict[str, Any], env_id: str, make: Any, episodes: int, policy: Policy,
                    policy_name: str, num_envs: int, seed: int, progress: bool) -> CollectResult:
    manifest["env_seeds"] = sorted(set(manifest.get("env_seeds", [])) | set(range(seed, seed + num_envs)))
    write_manifest(out, manifest)
    envs: gym.vector.VectorEnv
    if num_envs == 1:
        envs = gym.vector.SyncVectorEnv([make])
    else:
        envs = gym.vector.AsyncVectorEnv([make] * num_envs)
    next_index = next_shard_index(out)
    writer = ThreadPoolExecutor(max_workers=1)
    pending: list[Future] = []

    def save(episode: Episode) -> None:
        nonlocal next_index
        name = shard_name(next_index)
        next_index += 1
        pending.append(writer.submit(_write_and_register, out, name, episode, env_id, manifest))

    start = time.perf_counter()
    frames = finished = 0
    bar = tqdm(total=episodes, unit="ep", disable=not progress, desc=f"collect {env_id}")
    try:
        obs, infos = envs.reset(seed=seed)
        per_env = _unbatch(infos, num_envs)
        buffers: list[EpisodeRecorder | None] = [
            EpisodeRecorder(obs[i], per_env[i].get("level_seed")) for i in range(num_envs)
        ]
        while finished < episodes:
            starts = np.array([b is None or not b.actions for b in buffers])
            actions = policy.act(obs, per_env, starts)
            obs, rewards, terminated, truncated, infos = envs.step(actions)
            per_env = _unbatch(infos, num_envs)
            for i in range(num_envs):
                buffer = buffers[i]
                if buffer is None:  # next-step autoreset: this step reset env i and ignored its action
                    buffers[i] = EpisodeRecorder(obs[i], per_env[i].get("level_seed"))
                    continue
                buffer.add(actions[i], obs[i], rewards[i], terminated[i], truncated[i])
                if terminated[i] or truncated[i]:
                    buffers[i] = None
                    if finished < episodes:
                        save(buffer.episode(policy_name))
                        finished += 1
                        frames += len(buffer.frames)
                        bar.update(1)
                        bar.set_postfix(frames_per_s=f"{frames / (time.perf_counter() - start):.0f}")
    finally:
        bar.close()
        envs.close()
        writer.shutdown(wait=True)
    for f in pending:
        f.result()  # surface a failed write
    return CollectResult(episodes=finished, frames=frames, seconds=time.perf_counter() - start, seed=seed)


def _open_or_create(out: Path, env_id: str, meanings: list[str], frame_shape: tuple[int, ...]) -> dict[str, Any]:
    if not (out / MANIFEST).exists():
        manifest = new_manifest(env_id, meanings, frame_shape)
        write_manifest(out, manifest)
        return manifest
    manifest = read_manifest(out)
    if manifest["env_id"] != env_id or list(manifest["frame_shape"]) != list(frame_shape):
        raise DatasetError(
            f"{out} holds {manifest['env_id']} at {manifest['frame_shape']}; cannot add {env_id} at "
            f"{list(frame_shape)}: collect into another folder"
        )
    listed = {s["file"] for s in manifest["shards"]}
    orphans = [name for name in list_shards(out, manifest) if name not in listed]
    for name in orphans:  # finished by a run killed before it updated the manifest
        add_to_manifest(manifest, shard_entry(name, Shard(out / name)))
    if orphans:
        write_manifest(out, manifest)
    return manifest


def _write_and_register(out: Path, name: str, episode: Episode, env_id: str, manifest: dict[str, Any]) -> None:
    write_shard(out / name, episode, env_id)
    add_to_manifest(manifest, shard_entry(name, episode))
    write_manifest(out, manifest)


def _unbatch(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Split a vector env's info dict (arrays with `_key` masks) into one dict per env."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(n, dtype=bool))
        for i in range(n):
            if mask[i]:
                out[i][key] = _unbatch(value, n)[i] if isinstance(value, dict) else value[i]
    return out
