"""The Platformer, worldgen's built-in source game, and its kit (scripted player, sprite
detector, ground truth of what is on screen, content measures, palette)."""

from envs.platformer import palette
from envs.platformer.content import CONTENT_KINDS, platformer_content
from envs.platformer.detect import detect_objects
from envs.platformer.env import ACTION_MEANINGS, PlatformerEnv, visible_objects
from envs.platformer.events import frame_events
from envs.platformer.explorer import ExplorerPolicy
from envs.platformer.level import Level, generate_level
from worldgen.kit import ContentKit, GameKit, register_kit

KIT = GameKit(
    policy=lambda seed: ExplorerPolicy(seed=seed),
    detect=detect_objects,
    objects_of=visible_objects,
    content=ContentKit(platformer_content, shares=("unsupported",), rare=("flags",)),
    events=frame_events,
    palette=dict(zip(palette.SCENE_NAMES, map(tuple, palette.SCENE_COLOURS.astype(int).tolist()))),
)
register_kit("worldgen/Platformer-v0", KIT)

__all__ = ["ACTION_MEANINGS", "CONTENT_KINDS", "KIT", "ExplorerPolicy", "Level", "PlatformerEnv", "detect_objects",
           "frame_events", "generate_level", "platformer_content", "visible_objects"]
