"""Real game (top) vs generated world (bottom), driven by the same actions, as one PNG.

    python demos/compare_strip.py --world runs/platformer/world --out docs/real_vs_generated.png [--level 1000001]

The world starts from the real game's first 4 frames of a level, then both run RIGHT with a
jump; every 3rd frame of the next 21 is shown.
"""

import argparse

import gymnasium as gym
import numpy as np
from PIL import Image

import envs  # noqa: F401
from worldgen.world import World

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--level", type=int, default=1_000_001, help="a level seed the world never trained on")
    args = parser.parse_args()
    world = World(args.world)
    env = gym.make("worldgen/Platformer-v0")
    actions = [2] * 10 + [5] + [2] * 13  # RIGHT, one RIGHT_JUMP, RIGHT
    real = [env.reset(seed=args.level)[0]] + [env.step(a)[0] for a in actions]
    k = world.spec.context
    world.reset(np.stack(real[:k]), actions=actions[: k - 1], seed=0)
    generated = [world.step([a]).frames[0] for a in actions[k - 1 :]]
    rows = [np.concatenate(real[k::3][:7], axis=1), np.concatenate(generated[::3][:7], axis=1)]
    image = np.concatenate(rows, axis=0)
    Image.fromarray(image).resize((image.shape[1] * 3, image.shape[0] * 3), Image.NEAREST).save(args.out)
    print(f"wrote {args.out}")
