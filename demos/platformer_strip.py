"""Save a strip of Platformer frames from the explorer policy as a PNG (the README's picture).

    python demos/platformer_strip.py --out docs/platformer.png [--seed 3] [--frames 8] [--every 12]
"""

import argparse

import gymnasium as gym
import numpy as np
from PIL import Image

import envs  # noqa: F401
from envs.platformer import ExplorerPolicy

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--every", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    env = gym.make("worldgen/Platformer-v0", render_mode="rgb_array", size=args.size)
    policy = ExplorerPolicy(seed=args.seed)
    obs, info = env.reset(seed=args.seed)
    frames, start = [obs], True
    while len(frames) < args.frames:
        for _ in range(args.every):
            obs, _, term, trunc, info = env.step(policy.act(obs[None], [info], np.array([start]))[0])
            start = False
            if term or trunc:
                obs, info = env.reset()
                start = True
        frames.append(obs)
    gap = np.full((args.size, 2, 3), 255, dtype=np.uint8)
    strip = np.concatenate([x for f in frames for x in (f, gap)][:-1], axis=1)
    Image.fromarray(strip).save(args.out)
    print(f"wrote {args.out}: {len(frames)} frames, one every {args.every} steps")
