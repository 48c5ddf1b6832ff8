"""Gymnasium environments of worldgen, registered under the `worldgen/` namespace on import,
with their game kits (`worldgen.kit`)."""

from gymnasium.envs.registration import register, registry

import envs.platformer  # noqa: F401  (registers the Platformer's kit: scripted player, detector, content measures)
import envs.atari  # noqa: F401  (registers the Atari games' kits: their colours by name)

if "worldgen/Platformer-v0" not in registry:
    register(
        id="worldgen/Platformer-v0",
        entry_point="envs.platformer.env:PlatformerEnv",
        max_episode_steps=1000,
    )

if "worldgen/World-v0" not in registry:
    register(
        id="worldgen/World-v0",
        entry_point="envs.world_env:WorldEnv",
        vector_entry_point="envs.world_env:WorldVectorEnv",
        max_episode_steps=1000,
    )
