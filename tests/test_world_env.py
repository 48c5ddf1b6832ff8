import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

ID = "worldgen/World-v0"


def test_passes_both_env_checkers(tiny_world):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(ID, world=str(tiny_world), render_mode="rgb_array")
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.unwrapped.get_action_meanings()[5] == "RIGHT_JUMP"
    assert env.spec.max_episode_steps == 1000


def test_both_single_envs_render_their_last_frame(tiny_world):
    for env in (gym.make(ID, world=str(tiny_world), render_mode="rgb_array").unwrapped,
                gym.make("worldgen/Platformer-v0", render_mode="rgb_array").unwrapped):
        with pytest.raises(RuntimeError, match=r"Call reset\(\) before render\(\)"):
            env.render()
        env.reset(seed=0)
        obs = env.step(2)[0]
        assert np.array_equal(env.render(), obs)


def test_reset_takes_a_prompt(tiny_world):
    env = gym.make(ID, world=str(tiny_world))
    real = gym.make("worldgen/Platformer-v0").reset(seed=3)[0]
    obs, _ = env.reset(seed=0, options={"prompt": real[None], "prompt_actions": []})
    assert np.array_equal(obs, real)


def test_vector_env_matches_single_envs_with_the_same_seeds(tiny_world):
    n, steps = 3, 10
    venv = gym.make_vec(ID, num_envs=n, vectorization_mode="vector_entry_point", world=str(tiny_world))
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    actions = np.random.default_rng(0).integers(6, size=(steps, n))
    obs, _ = venv.reset(seed=10)
    batched = [obs]
    for a in actions:
        batched.append(venv.step(a)[0])
    batched = np.stack(batched)  # (T + 1, N, H, W, 3)
    for i in range(n):
        env = gym.make(ID, world=str(tiny_world))
        obs, _ = env.reset(seed=10 + i)
        single, done = [obs], False
        for a in actions[:, i]:
            if done:  # next-step autoreset, as the vector env does
                obs, _ = env.reset()
                done = False
            else:
                obs, _, terminated, truncated, _ = env.step(a)
                done = terminated or truncated
            single.append(obs)
        diff = np.abs(np.stack(single).astype(int) - batched[:, i])
        # Batched convolutions may round differently in the last bit: at most 1 level, rarely.
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_record_video_wrapper_works(tiny_world, tmp_path):
    videos = tmp_path / "videos"  # a folder the wrapper makes itself (it warns when one exists)
    env = gym.wrappers.RecordVideo(gym.make(ID, world=str(tiny_world), render_mode="rgb_array"), str(videos), disable_logger=True)
    env.reset(seed=0)
    for _ in range(5):
        env.step(env.action_space.sample())
    env.close()
    assert list(videos.glob("*.mp4"))


def test_same_step_autoreset_returns_the_new_episode_at_once(tiny_world):
    venv = gym.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point", world=str(tiny_world),
                        max_episode_steps=3, autoreset_mode="same_step")
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    venv.reset(seed=0)
    for _ in range(3):
        obs, rewards, terminated, truncated, info = venv.step(np.array([2, 2]))
        if (terminated | truncated).any():
            break
    done = terminated | truncated
    assert done.any()
    for i in np.flatnonzero(done):
        assert info["final_obs"][i].shape == (64, 64, 3)
        assert not np.array_equal(info["final_obs"][i], obs[i])


def test_starts_from_recorded_play_draw_recorded_states_seeded(tiny_world, tiny_dataset):
    from worldgen.data.dataset import EpisodeDataset

    episodes = EpisodeDataset(tiny_dataset)
    recorded = {f.tobytes() for shard in episodes.shards for f in shard.frames()}
    last_of_deaths = {shard.frames()[-1].tobytes() for shard in episodes.shards if shard.terminated[-1]}
    venv = gym.make_vec(ID, num_envs=8, vectorization_mode="vector_entry_point", world=str(tiny_world),
                        starts=str(tiny_dataset), autoreset_mode="same_step")
    first, _ = venv.reset(seed=0)
    assert all(f.tobytes() in recorded and f.tobytes() not in last_of_deaths for f in first)
    assert len({f.tobytes() for f in first}) > 1  # each world its own state
    assert np.array_equal(venv.reset(seed=0)[0], first)
    assert not np.array_equal(venv.reset(seed=1)[0], first)
    single = gym.make(ID, world=str(tiny_world), starts=str(tiny_dataset))
    assert single.reset(seed=0)[0].tobytes() in recorded
    real = gym.make("worldgen/Platformer-v0").reset(seed=3)[0]  # a caller's prompt still wins
    assert np.array_equal(single.reset(seed=0, options={"prompt": real[None]})[0], real)


def test_starts_refuse_recordings_a_world_cannot_start_from(tiny_world, tiny_dataset, tmp_path):
    from envs.world_env import RecordedStarts

    with pytest.raises(ValueError, match="frames 64x64, but the world draws 32x32"):
        RecordedStarts(tiny_dataset, context=4, frame_size=32)
    with pytest.raises(ValueError, match="manifest"):
        RecordedStarts(tmp_path, context=4, frame_size=64)
    from worldgen.data.storage import Episode, add_to_manifest, new_manifest, shard_entry, shard_name, write_manifest, write_shard

    deaths = tmp_path / "deaths"  # every episode ends on its first step: nothing to play on from
    deaths.mkdir()
    manifest = new_manifest("test/Deaths-v0", ["NOOP", "RIGHT"], (64, 64, 3))
    for i in range(3):
        episode = Episode(frames=np.full((2, 64, 64, 3), i, np.uint8), actions=np.ones(1, np.int64),
                          rewards=np.full(1, -1.0, np.float32), terminated=np.ones(1, bool), truncated=np.zeros(1, bool))
        write_shard(deaths / shard_name(i), episode, "test/Deaths-v0")
        add_to_manifest(manifest, shard_entry(shard_name(i), episode))
    write_manifest(deaths, manifest)
    with pytest.raises(ValueError, match="every recorded step ends its episode"):
        RecordedStarts(deaths, context=4, frame_size=64)
