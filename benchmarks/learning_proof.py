"""Does the world model learn? Every trained stage against the real Platformer, on level seeds
never used in training, driven by the explorer's actions (issue: the latent sCM world model).

    python benchmarks/learning_proof.py --runs runs/platformer --data data/platformer [--seeds 16] [--horizon 32]

Reads the exports in RUNS/{ae,teacher,scd,sct}/export (missing consistency stages are
skipped) and prints a table: repeat-last-frame, the teacher's 1-step mean, the teacher at 32
steps, sCD at 1 and 2 steps, sCT at 2 steps. Writes RUNS/learning_proof.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import torch

import envs  # noqa: F401
from envs.platformer import ExplorerPolicy, detect_objects
from worldgen.data.dataset import EpisodeDataset
from worldgen.eval import LatentCodec, Method, compare, format_table, held_out_seeds, record_references
from worldgen.train.ae import load_autoencoder
from worldgen.train.teacher import load_dynamics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the training dataset (its level seeds are excluded)")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--horizon", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200, help="real steps recorded per level seed")
    parser.add_argument("--teacher-steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    codec = LatentCodec(load_autoencoder(args.runs / "ae" / "export", device), device)
    teacher, tcfg = load_dynamics(args.runs / "teacher" / "export", device)
    methods = [
        Method("repeat last frame", None),
        Method("teacher 1-step mean", teacher, "ode", 1),
        Method(f"teacher {args.teacher_steps} steps", teacher, "ode", args.teacher_steps),
    ]
    for mode, steps in (("scd", 1), ("scd", 2), ("sct", 2)):
        folder = args.runs / mode / "export"
        if folder.exists():
            methods.append(Method(f"{mode} {steps}-step", load_dynamics(folder, device)[0], "consistency", steps))
    used = EpisodeDataset(args.data).level_seeds()
    seeds = held_out_seeds(args.seeds, used)
    make_env = lambda: gym.make("worldgen/Platformer-v0")  # noqa: E731
    refs = record_references(make_env, ExplorerPolicy(seed=0), seeds, args.steps)
    start = time.perf_counter()
    rows = compare(methods, refs, codec, tcfg["model"]["context"], args.horizon, tcfg["play_context_noise"], detect_objects)
    print(format_table(rows, args.horizon))
    report = {"seeds": seeds, "horizon": args.horizon, "rows": rows, "seconds": time.perf_counter() - start}
    (args.runs / "learning_proof.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
