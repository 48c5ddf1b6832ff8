"""Play the real Platformer (the source game worlds are trained on) with the keyboard.

    python demos/play_platformer.py [--seed 0] [--zoom 8] [--frames N]

Arrows or A/D run, Space, W or Up jumps, Esc quits; a new level starts when one ends.
"""

import argparse

import gymnasium as gym
import numpy as np
import pygame

import envs  # noqa: F401  (registers worldgen/Platformer-v0)
from worldgen.viewer import action_for_keys, held_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="level seed of the first level")
    parser.add_argument("--zoom", type=int, default=8, help="window pixels per game pixel")
    parser.add_argument("--frames", type=int, default=None, help="stop after this many frames (default: play until Esc)")
    args = parser.parse_args()
    env = gym.make("worldgen/Platformer-v0", render_mode="rgb_array")
    meanings = env.unwrapped.get_action_meanings()
    frame, _ = env.reset(seed=args.seed)
    pygame.display.init()
    size = frame.shape[0] * args.zoom
    screen = pygame.display.set_mode((size, size))
    pygame.display.set_caption("Platformer (the real game)")
    clock = pygame.time.Clock()
    played, score = 0, 0.0
    while args.frames is None or played < args.frames:
        if any(e.type == pygame.QUIT or (e.type == pygame.KEYDOWN and e.key == pygame.K_ESCAPE) for e in pygame.event.get()):
            break
        frame, reward, terminated, truncated, _ = env.step(action_for_keys(meanings, held_keys(pygame)))
        score += float(reward)
        if terminated or truncated:
            print(f"level over: score {score:+.1f}")
            frame, _ = env.reset()
            score = 0.0
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        screen.blit(pygame.transform.scale(surface, (size, size)), (0, 0))
        pygame.display.flip()
        clock.tick(30)
        played += 1
    pygame.display.quit()
    env.close()
    print(f"played {played} frames")


if __name__ == "__main__":
    main()
