"""Real game vs generated world, driven by the same actions: a PNG strip and an animated GIF.

    python demos/compare_strip.py --world runs/platformer/world --out docs/real_vs_generated.png \
        [--gif docs/play.gif --frames 150] [--level 1000001] [--policy kit|random|AGENT.zip --trust-agent]

The world starts from the real game's first 4 frames of a level it never trained on; then a
policy plays the real game (the game kit's player, e.g. the Platformer's explorer; random held
actions; or a trained agent) and every action it takes is given to the world too. The PNG
shows every 3rd of the next 21 frames (real on top); the GIF shows real (left) and generated
(right) side by side, frame by frame, never re-grounded from the real game.
"""

import argparse

import numpy as np
from PIL import Image

import envs  # noqa: F401
from worldgen.kit import kit_for
from worldgen.record import make_policy, write_video
from worldgen.world import World


def play_both(world: World, level: int, frames: int, policy: str = "kit", seed: int = 0,
              trust_agent: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(real, generated) frames (frames, H, W, 3) after the K-frame prompt."""
    env = world.make_source()
    if policy == "kit":
        player = kit_for(world.spec.source_env).policy
        if player is None:
            raise SystemExit(f"{world.spec.source_env} has no scripted player in its kit; use --policy random or an agent")
        kit_policy = player(seed)
        act = lambda frame, info, t: int(kit_policy.act(frame[None], [info], np.array([t == 0]))[0])  # noqa: E731
    else:
        chosen = make_policy(policy, int(env.action_space.n), seed, trust_agent)
        act = lambda frame, info, t: chosen(frame, t)  # noqa: E731
    obs, info = env.reset(seed=level)
    real, actions = [obs], []
    for t in range(frames + world.spec.context - 1):
        action = act(obs, info, t)
        obs, _, terminated, truncated, info = env.step(action)
        real.append(obs)
        actions.append(action)
        if terminated or truncated:
            break
    env.close()
    k = world.spec.context
    world.reset(np.stack(real[:k]), actions=actions[: k - 1], seed=seed)
    generated = [world.step([a]).frames[0] for a in actions[k - 1 :]]
    return np.stack(real[k:]), np.stack(generated)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="platformer")
    parser.add_argument("--out", required=True, help="PNG strip")
    parser.add_argument("--gif", default=None, help="also an animated GIF, real | generated")
    parser.add_argument("--frames", type=int, default=150, help="GIF length")
    parser.add_argument("--level", type=int, default=1_000_001, help="a level seed the world never trained on")
    parser.add_argument("--policy", default="kit", help="kit (the game kit's player), random, ACTIONS.json or an agent .zip")
    parser.add_argument("--trust-agent", action="store_true", help="allow an agent .zip (it holds pickled Python objects)")
    args = parser.parse_args()
    world = World(args.world)
    real, generated = play_both(world, args.level, max(args.frames if args.gif else 0, 21), args.policy,
                                trust_agent=args.trust_agent)
    rows = [np.concatenate(list(real[:21:3]), axis=1), np.concatenate(list(generated[:21:3]), axis=1)]
    image = np.concatenate(rows, axis=0)
    Image.fromarray(image).resize((image.shape[1] * 3, image.shape[0] * 3), Image.NEAREST).save(args.out)
    print(f"wrote {args.out}")
    if args.gif:
        gap = np.full((len(real), real.shape[1], 2, 3), 255, dtype=np.uint8)
        write_video(args.gif, np.concatenate([real, gap, generated], axis=2)[: args.frames], fps=world.spec.fps, scale=3)
        print(f"wrote {args.gif}")
