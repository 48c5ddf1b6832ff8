"""Gymnasium environments of worldgen, registered under the `worldgen/` namespace on import."""

from gymnasium.envs.registration import register, registry

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
