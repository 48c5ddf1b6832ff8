import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.platformer import ACTION_MEANINGS, ExplorerPolicy, PlatformerEnv, generate_level
from envs.platformer import palette as P

ENV_ID = "worldgen/Platformer-v0"


def make(**kwargs) -> gym.Env:
    return gym.make(ENV_ID, render_mode="rgb_array", **kwargs)


def test_passes_gymnasium_env_checker():
    check_env(make().unwrapped, skip_render_check=False)


def test_spaces_and_action_meanings():
    env = make()
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(6)
    assert env.unwrapped.get_action_meanings() == ["NOOP", "LEFT", "RIGHT", "JUMP", "LEFT_JUMP", "RIGHT_JUMP"]
    assert env.spec.max_episode_steps == 1000


def test_same_seed_and_actions_give_identical_frames():
    actions = np.random.default_rng(0).integers(6, size=300)
    runs = []
    for _ in range(2):
        env = make()
        frames = [env.reset(seed=7)[0]]
        for a in actions:
            obs, _, term, trunc, _ = env.step(a)
            frames.append(obs)
            if term or trunc:
                break
        runs.append(np.stack(frames))
    assert np.array_equal(runs[0], runs[1])
    other = make().reset(seed=8)[0]
    assert not np.array_equal(runs[0][0], other)


def test_levels_have_every_feature():
    for seed in range(30):
        level = generate_level(seed)
        ground = level.solid & ~level.platform
        assert (ground[-1] == 0).any(), "a gap"
        assert level.platform.any(), "a floating platform"
        assert len(level.coins) > 0 and len(level.enemies) >= 1
        assert level.flag_x > 600
        gaps = np.flatnonzero(~ground[-1])
        runs = np.split(gaps, np.flatnonzero(np.diff(gaps) > 1) + 1)
        assert max(len(r) for r in runs) <= 4, "every gap is jumpable"


def test_running_scrolls_the_camera_and_jumping_rises():
    env = make()
    _, info = env.reset(seed=3)
    assert info["on_ground"] and info["camera_x"] == 0
    y0 = info["player_level"][1]
    _, _, _, _, info = env.step(ACTION_MEANINGS.index("JUMP"))
    for _ in range(5):
        _, _, _, _, info = env.step(0)
    assert info["player_level"][1] < y0 - 10, "a jump lifts the player"
    for _ in range(40):
        _, _, _, _, info = env.step(0)
    assert info["on_ground"] and info["player_level"][1] == pytest.approx(y0), "gravity brings it back to the ground"
    x0 = info["player_level"][0]
    for _ in range(30):
        _, _, term, _, info = env.step(ACTION_MEANINGS.index("RIGHT"))
        if term:
            break
    assert info["player_level"][0] > x0 + 20 and info["camera_x"] > 0


def test_ground_and_walls_block_the_player():
    env = make()
    env.reset(seed=0)
    u = env.unwrapped
    level = u.level
    col = next(c for c in range(10, level.solid.shape[1] - 1) if level.ground_row(c + 1) < level.ground_row(c) < P.ROWS)
    # Stand just left of a step up and run into it: the wall stops the player.
    top = level.ground_row(col) * P.TILE
    u.pos = np.array([(col + 1) * P.TILE - P.PLAYER_W - 0.5, top - P.PLAYER_H])
    u.vel[:] = 0
    for _ in range(10):
        env.step(ACTION_MEANINGS.index("RIGHT"))
    assert u.pos[0] + P.PLAYER_W <= (col + 1) * P.TILE + 1e-9
    assert u.on_ground and u.pos[1] == pytest.approx(top - P.PLAYER_H)


def _place_player(env, x, y):
    u = env.unwrapped
    u.pos = np.array([x, y], dtype=float)
    u.vel[:] = 0
    u.enemy_pos[:, 0] = 1e6  # enemies out of the way unless a test puts one back


def test_coin_gives_plus_one():
    env = make()
    env.reset(seed=1)
    u = env.unwrapped
    _place_player(env, 8.0, 20.0)
    u.coins, u.coin_ids = np.array([[10.5, 24.5]]), np.array([0])
    _, reward, term, _, info = env.step(0)
    assert reward == 1.0 and not term and info["coins_collected"] == 1 and len(u.coins) == 0


def test_falling_into_a_gap_terminates_with_minus_one():
    env = make()
    env.reset(seed=0)
    u = env.unwrapped
    col = next(c for c in range(8, u.level.solid.shape[1]) if u.level.ground_row(c) == P.ROWS and u.level.ground_row(c + 1) == P.ROWS)
    _place_player(env, col * P.TILE + 1, 50.0)
    u.coins, u.coin_ids = np.zeros((0, 2)), np.zeros(0, dtype=int)
    for step in range(20):
        _, reward, term, _, _ = env.step(0)
        if term:
            break
    assert term and reward == -1.0


def test_touching_an_enemy_terminates_with_minus_one():
    env = make()
    env.reset(seed=2)
    u = env.unwrapped
    ex, ey = u.enemy_pos[0]
    u.pos = np.array([ex - P.PLAYER_W + 1.5, ey + P.ENEMY_H - P.PLAYER_H])
    u.coins, u.coin_ids = np.zeros((0, 2)), np.zeros(0, dtype=int)
    _, reward, term, _, _ = env.step(0)
    assert term and reward == -1.0


def test_reaching_the_flag_terminates_with_plus_ten():
    env = make()
    env.reset(seed=4)
    u = env.unwrapped
    top = u.level.ground_row(int(u.level.flag_x // P.TILE)) * P.TILE
    _place_player(env, u.level.flag_x - P.PLAYER_W - 0.2, top - P.PLAYER_H)
    u.coins, u.coin_ids = np.zeros((0, 2)), np.zeros(0, dtype=int)
    _, reward, term, _, _ = env.step(ACTION_MEANINGS.index("RIGHT"))
    assert term and reward == 10.0


def test_truncates_at_max_episode_steps():
    env = make(max_episode_steps=5)
    env.reset(seed=0)
    for _ in range(5):
        _, _, term, trunc, _ = env.step(0)
    assert trunc and not term


def test_info_reports_ground_truth_state():
    env = make()
    _, info = env.reset(seed=5)
    for key in ("player_screen", "player_level", "camera_x", "coins_collected", "level_seed", "coins_screen", "enemies_screen"):
        assert key in info
    assert info["level_seed"] == 5
    assert info["player_screen"][0] == pytest.approx(info["player_level"][0] - info["camera_x"])


@pytest.mark.parametrize("bad", [6, -1, 2.5, "RIGHT", None])
def test_out_of_range_action_is_a_clear_error(bad):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Platformer action must be an integer in \[0, 6\).*got"):
        env.step(bad)


def test_render_size_is_configurable():
    env = make(size=128)
    obs, info = env.reset(seed=0)
    assert obs.shape == (128, 128, 3) and env.render().shape == (128, 128, 3)
    small = make().reset(seed=0)[0]
    # The same scene, drawn at twice the resolution.
    assert np.array_equal(obs[::2, ::2], small) or np.mean(obs[::2, ::2] != small) < 0.05
    with pytest.raises(ValueError, match="size"):
        PlatformerEnv(size=4)


def test_frames_are_colourful_and_distinct():
    obs, _ = make().reset(seed=0)
    colours = {tuple(c) for c in obs.reshape(-1, 3)}
    for colour in (P.SKY, P.GRASS, P.DIRT, P.PLAYER):
        assert colour in colours


def test_human_render_mode_opens_a_window():
    env = gym.make(ENV_ID, render_mode="human")
    env.reset(seed=0)
    env.step(0)
    assert env.render() is None
    env.close()


def test_explorer_makes_progress_and_uses_every_action():
    env = make()
    policy = ExplorerPolicy(seed=0)
    progress, counts = [], np.zeros(6)
    for seed in range(3):
        obs, info = env.reset(seed=100 + seed)
        start = True
        for _ in range(400):
            action = policy.act(obs[None], [info], np.array([start]))[0]
            start = False
            counts[action] += 1
            obs, _, term, trunc, info = env.step(action)
            if term or trunc:
                break
        progress.append(info["player_level"][0])
    assert np.mean(progress) > 150, f"explorer should get well into a level, reached {progress}"
    assert (counts > 0).all(), f"every action is used: {counts}"
