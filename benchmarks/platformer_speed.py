"""How fast the Platformer runs and records, and how much disk its data takes.

    python benchmarks/platformer_speed.py [--steps 20000] [--episodes 30] [--json out.json]

Prints env steps/s (each step renders the frame, which is the observation), collection
frames/s with the explorer policy at 1 and 2 workers, and bytes on disk per 10k frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import envs  # noqa: F401
from envs.platformer import ExplorerPolicy
from worldgen.data.collect import collect
from worldgen.data.dataset import EpisodeDataset


def env_steps_per_second(size: int, steps: int) -> float:
    env = gym.make("worldgen/Platformer-v0", size=size)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(6, size=steps)
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - start)


def collect_speed(num_envs: int, episodes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "d"
        result = collect(
            "worldgen/Platformer-v0", out, episodes, ExplorerPolicy(seed=0), "explore", num_envs=num_envs, seed=0, progress=False
        )
        info = EpisodeDataset(out).info()
    return {
        "frames": result.frames,
        "frames_per_s": result.frames_per_second,
        "bytes_per_10k_frames": info.bytes_on_disk / info.frames * 10_000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "env_steps_per_s": {size: env_steps_per_second(size, args.steps) for size in (64, 128)},
        "collect": {n: collect_speed(n, args.episodes) for n in (1, 2)},
    }
    print(f"machine: {report['machine']}")
    for size, sps in report["env_steps_per_s"].items():
        print(f"Platformer {size}x{size}: {sps:,.0f} steps/s (random actions, frame rendered every step)")
    for n, c in report["collect"].items():
        print(
            f"collect, explorer, {n} worker(s): {c['frames_per_s']:,.0f} frames/s over {c['frames']} frames; "
            f"{c['bytes_per_10k_frames'] / 2**20:.2f} MiB per 10k frames"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
