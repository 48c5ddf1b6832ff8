import gymnasium as gym
import numpy as np
import pytest
from scipy import ndimage

from envs.platformer import ExplorerPolicy, detect_objects
from envs.platformer import palette as P


def rollout_frames(size: int, seeds=range(4), steps=250):
    """(frame, info) pairs from explorer play, skipping frames where sprites overlap."""
    env = gym.make("worldgen/Platformer-v0", render_mode="rgb_array", size=size)
    policy = ExplorerPolicy(seed=0)
    out = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        start = True
        for t in range(steps):
            action = policy.act(obs[None], [info], np.array([start]))[0]
            start = False
            obs, _, term, trunc, info = env.step(action)
            if term or trunc:
                break
            if t % 5 == 0:
                out.append((obs, info))
    return out


def fully_visible(points, half, size, occluders):
    """Sprites wholly inside the frame and not partly hidden behind the player or an enemy."""
    s = size / P.VIEW
    inside = [p for p in points if half * s <= p[0] <= size - half * s and half * s <= p[1] <= size - half * s]
    return [p for p in inside if all(np.hypot(p[0] - o[0], p[1] - o[1]) > 7 * s for o in occluders if tuple(o) != tuple(p))]


def nearest_distances(found: np.ndarray, truth) -> np.ndarray:
    truth = np.asarray(truth, dtype=float).reshape(-1, 2)
    if not len(truth):
        return np.zeros(0)
    if not len(found):
        return np.full(len(truth), np.inf)
    return np.linalg.norm(truth[:, None] - found[None], axis=2).min(axis=1)


def degrade(frame: np.ndarray, rng: np.random.Generator, noise: float, blur: int) -> np.ndarray:
    out = frame.astype(np.float32)
    if blur > 1:
        out = ndimage.uniform_filter(out, size=(blur, blur, 1))
    out += rng.normal(0, noise, out.shape)
    return np.clip(out, 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize(
    "size,noise,blur,tol",
    [(64, 0.0, 1, 0.75), (64, 8.0, 1, 1.0), (64, 8.0, 3, 1.5), (128, 8.0, 5, 2.5)],
    ids=["clean64", "noisy64", "noisy_blurred64", "noisy_blurred128"],
)
def test_finds_every_sprite_where_the_game_put_it(size, noise, blur, tol):
    rng = np.random.default_rng(0)
    frames = rollout_frames(size)
    assert len(frames) > 50
    misses = extras = total = 0
    player_errors = []
    for frame, info in frames:
        found = detect_objects(degrade(frame, rng, noise, blur))
        px, py = info["player_screen"]
        if 0 <= py - P.PLAYER_H / 2 * size / 64 and py + P.PLAYER_H / 2 * size / 64 <= size:
            assert len(found["player"]) == 1
            player_errors.append(np.linalg.norm(found["player"][0] - [px, py]))
        for kind, key, half in (("coins", "coins_screen", P.COIN_SIZE / 2), ("enemies", "enemies_screen", P.ENEMY_W / 2)):
            truth = fully_visible(info[key], half, size, [info["player_screen"], *info["enemies_screen"]])
            d = nearest_distances(found[kind], truth)
            total += len(truth)
            misses += int((d > tol).sum())
            # Every detection is a real sprite (possibly one cut by the frame's edge).
            extras += int((nearest_distances(np.asarray(info[key]).reshape(-1, 2), found[kind]) > 4 * size / 64).sum())
    assert total > 100
    assert np.max(player_errors) < tol, f"player error {np.max(player_errors):.2f} px"
    assert misses <= 0.01 * total, f"{misses} of {total} coins and enemies missed"
    assert extras == 0, f"{extras} invented objects"


def test_finds_the_flag():
    env = gym.make("worldgen/Platformer-v0", render_mode="rgb_array")
    env.reset(seed=0)
    u = env.unwrapped
    u.pos[0] = u.level.flag_x - 30
    u.enemy_pos[:, 0] = 0
    frame, *_ = env.step(0)
    flags = detect_objects(frame)["flag"]
    assert len(flags) == 1
    cloth_x = u.level.flag_x + 1 + P.FLAG_W / 2 - u.camera_x
    assert abs(flags[0][0] - cloth_x) < 1


def test_empty_sky_has_no_objects_and_bad_shapes_are_rejected():
    sky = np.broadcast_to(np.array(P.SKY, dtype=np.uint8), (64, 64, 3))
    assert all(len(v) == 0 for v in detect_objects(sky).values())
    with pytest.raises(ValueError, match="RGB frame"):
        detect_objects(np.zeros((64, 64)))
