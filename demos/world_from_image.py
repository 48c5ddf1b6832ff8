"""Start a generated world from any picture (Genie-style image prompt) and save what happens.

    python demos/world_from_image.py --image docs/platformer.png --out from_image.gif [--world platformer] [--frames 60]

The image is resized to the world's frame size; the world then runs with the RIGHT action
held, jumping now and then.
"""

import argparse

import numpy as np

import envs  # noqa: F401  (source games, for worlds that name one)
from worldgen.record import write_video
from worldgen.world import World

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True)
    parser.add_argument("--out", required=True, help="a .gif or .mp4")
    parser.add_argument("--world", default="platformer")
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    world = World(args.world)
    right, right_jump = world.action_meanings.index("RIGHT"), world.action_meanings.index("RIGHT_JUMP")
    frames = [world.reset(args.image, seed=0)[0]]
    for t in range(args.frames):
        frames.append(world.step([right_jump if t % 12 == 0 else right]).frames[0])
    write_video(args.out, np.stack(frames), world.spec.fps)
    print(f"wrote {args.out}: {len(frames)} frames from {args.image}")
