"""Play the real Platformer (the source game worlds are trained on) with the keyboard.

    python demos/play_platformer.py [--seed 0] [--zoom 8]

Arrows or A/D run, Space or W/Up jumps, Esc quits.
"""

import argparse

import gymnasium as gym
import pygame
from gymnasium.utils.play import play

import envs  # noqa: F401

KEYS = {
    (): 0,
    (pygame.K_LEFT,): 1,
    (pygame.K_RIGHT,): 2,
    (pygame.K_SPACE,): 3,
    (pygame.K_LEFT, pygame.K_SPACE): 4,
    (pygame.K_RIGHT, pygame.K_SPACE): 5,
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zoom", type=float, default=8.0)
    args = parser.parse_args()
    env = gym.make("worldgen/Platformer-v0", render_mode="rgb_array")
    play(env, keys_to_action=KEYS, noop=0, zoom=args.zoom, seed=args.seed, fps=30)
