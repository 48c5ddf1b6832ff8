"""DIAMOND's Atari world model beside a worldgen world, timed in the same run on the same machine.

Speed does not depend on the weights, so DIAMOND's networks are built from its public source
with random weights and its Atari settings (config/agent/default.yaml and config/trainer.yaml:
a 64-channel U-Net on 64x64 pixels, 4 frames and actions of context, 18 actions, 3 Euler
denoising steps). A DIAMOND world step is its sampler's `sample` (3 network calls); a worldgen
world step is `World.step` (2 network calls, the reward head and the decode). DIAMOND's own
reward/end model (a CNN + LSTM) is not timed: its module imports wandb, omegaconf and torcheval,
which this project does not install, so the figure flatters DIAMOND slightly. For the same
reason the two training types its denoiser module names at import get stand-ins in the child
process; every network and the sampler timed are DIAMOND's own code.

Both packages name their networks' package `models`, so DIAMOND runs in a child process.

    git clone https://github.com/eloialonso/diamond /tmp/diamond
    python benchmarks/diamond_speed.py --diamond /tmp/diamond [--world platformer] [--batches 1 16 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time, types, torch
sys.path.insert(0, sys.argv[1])
# DIAMOND's denoiser module names its training types (data.Batch, utils.LossAndLogs) at import;
# their modules pull in wandb and omegaconf. Sampling never touches them: stand-ins suffice.
sys.modules["data"] = types.SimpleNamespace(Batch=object)
sys.modules["utils"] = types.SimpleNamespace(LossAndLogs=tuple)
from models.diffusion import Denoiser, DenoiserConfig, InnerModelConfig, DiffusionSampler, DiffusionSamplerConfig
torch.set_num_threads(int(sys.argv[4]))
inner = InnerModelConfig(img_channels=3, num_steps_conditioning=4, cond_channels=256, depths=[2, 2, 2, 2],
                         channels=[64, 64, 64, 64], attn_depths=[0, 0, 0, 0], num_actions=18)
denoiser = Denoiser(DenoiserConfig(inner_model=inner, sigma_data=0.5, sigma_offset_noise=0.3)).eval()
sampler = DiffusionSampler(denoiser, DiffusionSamplerConfig(num_steps_denoising=3))
out = {"parameters_m": sum(p.numel() for p in denoiser.parameters()) / 1e6, "seconds_per_step": {}}
for b in map(int, sys.argv[2].split(",")):
    obs, act = torch.randn(b, 4, 3, 64, 64), torch.randint(18, (b, 4))
    sampler.sample(obs, act)
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < float(sys.argv[3]):
        sampler.sample(obs, act)
        n += 1
    out["seconds_per_step"][b] = (time.perf_counter() - start) / n
print(json.dumps(out))
"""


def time_diamond(diamond: Path, batches: list[int], seconds: float, threads: int) -> dict:
    src = Path(diamond) / "src"
    if not (src / "models" / "diffusion" / "denoiser.py").exists():
        raise SystemExit(f"error: {diamond} is not a DIAMOND checkout (no src/models/diffusion/denoiser.py); "
                         "git clone https://github.com/eloialonso/diamond")
    done = subprocess.run([sys.executable, "-c", CHILD, str(src), ",".join(map(str, batches)), str(seconds), str(threads)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: DIAMOND's networks did not build or run:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_worldgen(world: str, batches: list[int], seconds: float, threads: int) -> dict:
    import numpy as np
    import torch

    import envs  # noqa: F401
    from worldgen.world import World

    torch.set_num_threads(threads)
    out: dict = {"seconds_per_step": {}}
    for b in batches:
        w = World(world, batch_size=b)
        w.reset(seed=0)
        actions = np.zeros(b, dtype=np.int64)
        w.step(actions)
        n, start = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - start < seconds:
            w.step(actions)
            n += 1
        out["seconds_per_step"][b] = (time.perf_counter() - start) / n
        out["parameters_m"] = sum(p.numel() for p in w.net.parameters()) / 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--diamond", type=Path, required=True, help="a checkout of github.com/eloialonso/diamond")
    parser.add_argument("--world", default="platformer")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per figure")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    diamond = time_diamond(args.diamond, args.batches, args.seconds, args.threads)
    ours = time_worldgen(args.world, args.batches, args.seconds, args.threads)
    print(f"| batch | DIAMOND world step (3 denoising steps, {diamond['parameters_m']:.1f} M) | worldgen World.step "
          f"({ours['parameters_m']:.1f} M dynamics, 2 steps + reward + decode) | worldgen faster by |")
    print("|---|---|---|---|")
    for b in args.batches:
        d, w = diamond["seconds_per_step"][str(b)], ours["seconds_per_step"][b]
        print(f"| {b} | {b / d:.1f} frames/s ({1000 * d:.1f} ms) | {b / w:.1f} frames/s ({1000 * w:.1f} ms) | {d / w:.1f}x |")
    if args.json:
        args.json.write_text(json.dumps({"diamond": diamond, "worldgen": ours, "threads": args.threads}, indent=1))


if __name__ == "__main__":
    main()
