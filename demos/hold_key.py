"""Does the player survive a held key? A player's test of a world whose game has a sprite
detector (its kit's): from real prompts, hold one key in the world and in the real game, and
count the frames that draw each kind of sprite and how far a lone sprite (the player) moved:
from the prompt's last frame to the last held one, where both frames draw it once.

    python demos/hold_key.py --world worlds/freeway/world --key UP --key NOOP [--seeds 8] [--steps 16]

Averages over random actions can hide it: Freeway's first CPU world kept the traffic in long
play, yet held UP made its chicken fade within three steps. Each prompt is the last 4 frames
of the game's own play (its kit's scripted player, else random held actions) at frames
`--starts`; the real game replays the same actions to that frame, then holds the key too.
"""

import argparse

import numpy as np
import torch

import envs  # noqa: F401  (source games and their kits)
from worldgen.data.policies import RandomRepeatPolicy
from worldgen.kit import kit_for
from worldgen.world import World


def play(world: World, seed: int, actions: list[int]) -> np.ndarray:
    """The real game's frames (len(actions) + 1) from level `seed` on these actions."""
    env = world.make_source()
    frame, _ = env.reset(seed=seed)
    frames = [frame] + [env.step(a)[0] for a in actions]
    env.close()
    return np.stack(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", required=True)
    parser.add_argument("--key", action="append", required=True, help="an action name to hold (repeatable)")
    parser.add_argument("--seeds", type=int, default=8, help="levels 1,000,000 on (unseen in training)")
    parser.add_argument("--starts", default="8,24,40", help="frames of play before each prompt")
    parser.add_argument("--steps", type=int, default=16, help="steps the key is held")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = World(args.world)
    kit = kit_for(world.spec.source_env)
    if kit.detect is None:
        raise SystemExit(f"{world.spec.source_env} has no sprite detector in its kit; this test counts sprites")
    unknown = [k for k in args.key if k not in world.action_meanings]
    if unknown:
        raise SystemExit(f"unknown key {unknown}; this world's actions are {', '.join(world.action_meanings)}")
    starts = [int(s) for s in args.starts.split(",")]
    if min(starts) < world.spec.context - 1:
        raise SystemExit(f"--starts must be at least {world.spec.context - 1}: a prompt is {world.spec.context} frames")
    drawn: dict[tuple[str, str, str], list[float]] = {}
    moved: dict[tuple[str, str, str], list[np.ndarray]] = {}
    for seed in range(1_000_000, 1_000_000 + args.seeds):
        policy = kit.policy(seed) if kit.policy is not None else RandomRepeatPolicy(len(world.action_meanings), seed=seed)
        env = world.make_source()
        frame, info = env.reset(seed=seed)
        lead = []
        for t in range(max(starts)):
            lead.append(int(policy.act(frame[None], [info], np.array([t == 0]))[0]))
            frame, _, _, _, info = env.step(lead[-1])
        env.close()
        for start in starts:
            for key in args.key:
                held = [world.action_meanings.index(key)] * args.steps
                real = play(world, seed, lead[:start] + held)
                world.reset(real[start - world.spec.context + 1 : start + 1], actions=lead[start - world.spec.context + 1 : start],
                            seed=seed)
                generated = np.stack([world.step([a]).frames[0] for a in held])
                before = kit.detect(real[start])
                for name, frames in (("world", generated), ("real", real[start + 1 :])):
                    found = [kit.detect(f) for f in frames]  # each frame once, every kind from it
                    for kind in found[0]:
                        drawn.setdefault((key, kind, name), []).append(float(np.mean([len(f[kind]) > 0 for f in found])))
                        if len(before[kind]) == 1 and len(found[-1][kind]) == 1:  # a lone sprite: how far the key took it
                            moved.setdefault((key, kind, name), []).append(found[-1][kind][0] - before[kind][0])

    def shift(key: str, kind: str, name: str) -> str:
        shifts = moved.get((key, kind, name))
        return "-" if not shifts else "{:+.1f}, {:+.1f} ({})".format(*np.mean(shifts, axis=0), len(shifts))

    print(f"| key held {args.steps} steps | sprite | drawn in the world | drawn in the real game "
          "| moved in the world (dx, dy px; prompts) | moved in the real game |")
    print("|---|---|---|---|---|---|")
    for key in args.key:
        for kind in sorted({k for (h, k, _) in drawn if h == key}):
            print(f"| {key} | {kind} | {np.mean(drawn[key, kind, 'world']):.0%} | {np.mean(drawn[key, kind, 'real']):.0%} "
                  f"| {shift(key, kind, 'world')} | {shift(key, kind, 'real')} |")


if __name__ == "__main__":
    main()
