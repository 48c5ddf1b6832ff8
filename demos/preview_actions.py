"""Save the viewer's key-binding preview (the V key of `worldgen play`) as a picture: for each
action, what it does from the same moment. For a world on latent actions, this is how a
player finds which digit key is "jump" before playing.

    python demos/preview_actions.py --world worlds/boxing_video/world --out preview.png [--seed 0] [--warmup 8]

The world starts from level `--seed` (a world from clips: clip `--seed`'s opening frames) and
runs `--warmup` frames of random actions first, so the preview starts from a moment of play.
"""

import argparse

import numpy as np
from PIL import Image

import envs  # noqa: F401  (source games, for worlds that name one)
from worldgen.viewer import action_previews, preview_picture
from worldgen.world import World

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="platformer")
    parser.add_argument("--out", required=True, help="a .png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=8, help="random-action frames before the preview")
    args = parser.parse_args()
    world = World(args.world)
    frame = world.reset(seed=args.seed)[0]
    rng = np.random.default_rng(args.seed)
    for _ in range(args.warmup):
        frame = world.step([int(rng.integers(len(world.action_meanings)))]).frames[0]
    Image.fromarray(preview_picture(world, action_previews(world), frame)).save(args.out)
    print(f"wrote {args.out}: {len(world.action_meanings)} actions from level {args.seed}, after {args.warmup} frames")
