"""The Platformer, worldgen's built-in source game."""

from envs.platformer.detect import detect_objects
from envs.platformer.env import ACTION_MEANINGS, PlatformerEnv, visible_objects
from envs.platformer.explorer import ExplorerPolicy
from envs.platformer.level import Level, generate_level

__all__ = ["ACTION_MEANINGS", "ExplorerPolicy", "Level", "PlatformerEnv", "detect_objects", "generate_level", "visible_objects"]
