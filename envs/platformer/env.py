"""The Platformer: a Genie-style 2D side-scroller, the ground truth every generated world is judged against."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.platformer import palette as P
from envs.platformer.level import Level, generate_level
from envs.platformer.physics import move_player
from envs.platformer.render import Renderer
from envs.window import FrameEnv, HumanWindow

ACTION_MEANINGS = ("NOOP", "LEFT", "RIGHT", "JUMP", "LEFT_JUMP", "RIGHT_JUMP")
ACTION_DIRECTION = np.array([0, -1, 1, 0, -1, 1])
ACTION_JUMPS = np.array([False, False, False, True, True, True])

CAMERA_LEAD = 24.0
"""The camera keeps the player's centre this far from the left edge of the view."""

COIN_REWARD, DEATH_REWARD, FLAG_REWARD = 1.0, -1.0, 10.0


class PlatformerEnv(FrameEnv):
    """A side-scrolling platformer whose levels are generated from the reset seed.

    ## Description
    The player runs and jumps through a level of ground with gaps, steps and floating
    platforms, collecting coins and avoiding patrolling enemies, to reach a flag at the far
    end. The camera scrolls horizontally with the player.

    ## Action Space
    `Discrete(6)`:

    | Num | Action     |
    |-----|------------|
    | 0   | NOOP       |
    | 1   | LEFT       |
    | 2   | RIGHT      |
    | 3   | JUMP       |
    | 4   | LEFT_JUMP  |
    | 5   | RIGHT_JUMP |

    A jump starts only when the player stands on something.

    ## Observation Space
    `Box(0, 255, (size, size, 3), uint8)`: the RGB frame (64 x 64 by default).

    ## Rewards
    +1 per coin; -1 for falling into a gap or touching an enemy; +10 for reaching the flag.

    ## Starting State
    `reset(seed=s)` builds level `s`; without a seed the next level seed is drawn from the
    env's generator. `options={"level_seed": s}` picks a level without reseeding. The player
    starts on flat ground at the left end.

    ## Episode End
    Terminated by death or by reaching the flag. Truncated at `max_episode_steps`
    (1000 for `worldgen/Platformer-v0`).

    ## Info
    Ground-truth state: `player_screen` (centre, render pixels), `player_level` (centre, level
    units: one unit is one pixel of the 64x64 frame), `player_velocity`, `on_ground`,
    `camera_x` (level units), `coins_collected`, `level_seed`, and the visible objects'
    centres in render pixels, `coins_screen` and `enemies_screen` (every sprite drawn, even in
    part) (lists of (x, y)) with their indices in the level, `coins_id` and `enemies_id` (an
    object keeps its index while on screen and off), and every enemy's centre in level units,
    `enemies_level`, and horizontal speed, `enemies_velocity`.

    ## Arguments
    | Argument      | Default | Meaning                            |
    |---------------|---------|------------------------------------|
    | `render_mode` | None    | `"rgb_array"` or `"human"`         |
    | `size`        | 64      | side of the square frame in pixels |

    ## Version History
    - v0: first release.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, size: int = 64) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if not isinstance(size, (int, np.integer)) or size < 16:
            raise ValueError(f"size must be an integer of at least 16 pixels, got {size!r}")
        self.render_mode = render_mode
        self.size = int(size)
        self.observation_space = spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        self.action_space = spaces.Discrete(len(ACTION_MEANINGS))
        self.level: Level | None = None
        self._window = HumanWindow("worldgen Platformer", self.metadata["render_fps"])

    def get_action_meanings(self) -> list[str]:
        return list(ACTION_MEANINGS)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        options = options or {}
        if "level_seed" in options:
            level_seed = int(options["level_seed"])
        elif seed is not None:
            level_seed = int(seed)
        else:
            level_seed = int(self.np_random.integers(2**31 - 1))
        self.level = generate_level(level_seed)
        self._renderer = Renderer(self.level, self.size)
        top = self.level.ground_row(1) * P.TILE
        self.pos = np.array([1.5 * P.TILE, top - P.PLAYER_H])  # top-left corner
        self.vel = np.zeros(2)
        self.on_ground = True
        self.facing = 1
        self.coins = self.level.coins.copy()
        self.coin_ids = np.arange(len(self.coins))
        self.coins_collected = 0
        spawns = self.level.enemies
        self.enemy_pos = np.array([[e.x, e.y] for e in spawns], dtype=np.float64).reshape(-1, 2)
        self.enemy_dir = np.array([e.direction for e in spawns], dtype=np.int64)
        self._enemy_bounds = np.array([[e.x_min, e.x_max] for e in spawns]).reshape(-1, 2)
        self._enemy_speed = np.array([e.speed for e in spawns])
        self._done = False
        self._update_camera()
        self._frame = self._draw()
        if self.render_mode == "human":
            self.render()
        return self._frame.copy(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.level is None:
            raise RuntimeError("Call reset() before step().")
        if not self.action_space.contains(action):
            raise ValueError(
                f"Platformer action must be an integer in [0, {self.action_space.n}) "
                f"({', '.join(ACTION_MEANINGS)}), got {action!r}"
            )
        action = int(action)
        reward, terminated = 0.0, False
        direction = int(ACTION_DIRECTION[action])
        x, y, vx, vy, self.on_ground = move_player(
            self.level, (*self.pos, *self.vel, self.on_ground), direction, bool(ACTION_JUMPS[action])
        )
        self.pos, self.vel = np.array([x, y]), np.array([vx, vy])
        self.facing = direction or self.facing
        self._move_enemies()
        reward += COIN_REWARD * self._collect_coins()
        if self.pos[1] > P.VIEW:
            reward, terminated = reward + DEATH_REWARD, True
        elif self._touches_enemy():
            reward, terminated = reward + DEATH_REWARD, True
        elif self.pos[0] + P.PLAYER_W >= self.level.flag_x:
            reward, terminated = reward + FLAG_REWARD, True
        self._update_camera()
        self._frame = self._draw()
        if self.render_mode == "human":
            self.render()
        return self._frame.copy(), reward, terminated, False, self._info()

    # --- physics -------------------------------------------------------------------------

    def _move_enemies(self) -> None:
        if not len(self.enemy_pos):
            return
        x = self.enemy_pos[:, 0] + self.enemy_dir * self._enemy_speed
        lo, hi = self._enemy_bounds[:, 0], self._enemy_bounds[:, 1]
        turn = (x < lo) | (x > hi)
        self.enemy_dir = np.where(turn, -self.enemy_dir, self.enemy_dir)
        self.enemy_pos[:, 0] = np.clip(x, lo, hi)

    def _collect_coins(self) -> int:
        if not len(self.coins):
            return 0
        half = P.COIN_SIZE / 2
        hit = _overlaps(self.pos, (P.PLAYER_W, P.PLAYER_H), self.coins - half, (P.COIN_SIZE, P.COIN_SIZE))
        n = int(hit.sum())
        if n:
            self.coins, self.coin_ids = self.coins[~hit], self.coin_ids[~hit]
            self.coins_collected += n
        return n

    def _touches_enemy(self) -> bool:
        if not len(self.enemy_pos):
            return False
        margin = 0.5  # forgive a grazing touch
        hit = _overlaps(
            self.pos + margin, (P.PLAYER_W - 2 * margin, P.PLAYER_H - 2 * margin), self.enemy_pos, (P.ENEMY_W, P.ENEMY_H)
        )
        return bool(hit.any())

    def _update_camera(self) -> None:
        centre = self.pos[0] + P.PLAYER_W / 2
        self.camera_x = float(np.clip(centre - CAMERA_LEAD, 0.0, self.level.width - P.VIEW))
        # Snap to the pixel grid so the scene scrolls in whole pixels at this render size.
        scale = self.size / P.VIEW
        self.camera_x = round(self.camera_x * scale) / scale

    # --- output --------------------------------------------------------------------------

    def _draw(self) -> np.ndarray:
        visible = self._visible(self.coins[:, 0], P.COIN_SIZE / 2)
        on_screen = self._visible(self.enemy_pos[:, 0] + P.ENEMY_W / 2, P.ENEMY_W / 2)
        return self._renderer.frame(
            self.camera_x,
            self.coins[visible],
            self.enemy_pos[on_screen],
            self.enemy_dir[on_screen],
            (float(self.pos[0]), float(self.pos[1])),
            self.facing,
        )

    def _visible(self, x_centres: np.ndarray, half_width: float) -> np.ndarray:
        return (x_centres + half_width > self.camera_x) & (x_centres - half_width < self.camera_x + P.VIEW)

    def _info(self) -> dict[str, Any]:
        s = self.size / P.VIEW
        centre = self.pos + np.array([P.PLAYER_W, P.PLAYER_H]) / 2
        coins_seen = self._visible(self.coins[:, 0], P.COIN_SIZE / 2)
        enemy_centres = self.enemy_pos + np.array([P.ENEMY_W, P.ENEMY_H]) / 2
        enemies_seen = self._visible(enemy_centres[:, 0], P.ENEMY_W / 2)
        to_screen = lambda p: [((x - self.camera_x) * s, y * s) for x, y in p]  # noqa: E731
        return {
            "player_screen": (centre - [self.camera_x, 0.0]) * s,
            "player_level": centre.copy(),
            "player_velocity": self.vel.copy(),
            "on_ground": self.on_ground,
            "camera_x": self.camera_x,
            "coins_collected": self.coins_collected,
            "level_seed": self.level.seed,
            "coins_screen": to_screen(self.coins[coins_seen]),
            "coins_id": self.coin_ids[coins_seen].tolist(),
            "enemies_screen": to_screen(enemy_centres[enemies_seen]),
            "enemies_id": np.flatnonzero(enemies_seen).tolist(),
            "enemies_level": [(float(x), float(y)) for x, y in enemy_centres],
            "enemies_velocity": [float(v) for v in self.enemy_dir * self._enemy_speed],
        }


def _overlaps(pos: np.ndarray, size: tuple[float, float], others: np.ndarray, other_size: tuple[float, float]) -> np.ndarray:
    """Axis-aligned box overlap between one box and many: (N,) bool. Boxes are (x, y) top-left."""
    return (
        (others[:, 0] < pos[0] + size[0])
        & (pos[0] < others[:, 0] + other_size[0])
        & (others[:, 1] < pos[1] + size[1])
        & (pos[1] < others[:, 1] + other_size[1])
    )


def visible_objects(info: dict[str, Any]) -> dict[str, dict[int, tuple[float, float]]]:
    """The coins and enemies on screen in a step's `info`, by kind, as {index in the level:
    centre in render pixels}: which objects a frame shows, and which are the same object."""
    return {
        kind: {int(i): (float(x), float(y)) for i, (x, y) in zip(info[f"{kind}_id"], info[f"{kind}_screen"])}
        for kind in ("coins", "enemies")
    }
