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
import numpy as np
import torch

import envs  # noqa: F401
from envs.platformer import ExplorerPolicy, detect_objects
from worldgen.data.dataset import EpisodeDataset
from worldgen.frames import psnr
from worldgen.eval import LatentCodec, Method, match_objects, compare, format_table, held_out_seeds, record_references
from worldgen.train.ae import load_autoencoder
from worldgen.train.teacher import load_dynamics


def autoencoder_report(codec: LatentCodec, refs, net, k: int, device) -> dict[str, float]:
    """Reconstruction PSNR and sprite survival on the reference frames; decoder vs dynamics cost."""
    frames = np.concatenate([r.frames for r in refs])
    recon = codec.decode(codec.encode(frames))
    kept = {"coins": [0, 0], "enemies": [0, 0]}
    errors = []
    for real, rec in zip(frames[::2], recon[::2]):
        a, b = detect_objects(real), detect_objects(rec)
        for kind in kept:
            kept[kind][0] += match_objects(a[kind], b[kind], 2.0)[0]
            kept[kind][1] += len(a[kind])
        if len(a["player"]):
            errors.append(np.linalg.norm(a["player"][0] - b["player"][0]) if len(b["player"]) else 16.0)
    z = codec.encode(frames[:1])
    ctx = z[:, None].repeat(1, k, 1, 1, 1)
    actions = torch.zeros(1, k, dtype=torch.long, device=device)
    level = torch.zeros(1, device=device)
    timings = {}
    with torch.no_grad():
        for name, fn in (("decode_ms", lambda: codec.ae.decode(z)), ("dynamics_ms", lambda: net(z, level, ctx, actions, level))):
            fn()
            t0 = time.perf_counter()
            for _ in range(20):
                fn()
            timings[name] = (time.perf_counter() - t0) / 20 * 1e3
    return {
        "psnr": float(psnr(recon, frames).mean()),
        "coins_kept": kept["coins"][0] / max(kept["coins"][1], 1),
        "enemies_kept": kept["enemies"][0] / max(kept["enemies"][1], 1),
        "player_error_px": float(np.mean(errors)) if errors else float("nan"),
        **timings,
    }


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
    report_ae = autoencoder_report(codec, refs, teacher, tcfg["model"]["context"], device)
    print(
        f"autoencoder on held-out frames: PSNR {report_ae['psnr']:.2f} dB; sprites kept after reconstruction: "
        f"coins {100 * report_ae['coins_kept']:.1f}%, enemies {100 * report_ae['enemies_kept']:.1f}%, "
        f"player error {report_ae['player_error_px']:.2f} px; decode {report_ae['decode_ms']:.2f} ms vs one "
        f"dynamics call {report_ae['dynamics_ms']:.2f} ms (batch 1)"
    )
    start = time.perf_counter()
    rows = compare(methods, refs, codec, tcfg["model"]["context"], args.horizon, tcfg["play_context_noise"], detect_objects)
    print(format_table(rows, args.horizon))
    report = {"seeds": seeds, "horizon": args.horizon, "autoencoder": report_ae, "rows": rows,
              "seconds": time.perf_counter() - start}
    (args.runs / "learning_proof.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
