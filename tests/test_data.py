import importlib.util
import json
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from envs.platformer import ExplorerPolicy
from worldgen.cli import main
from worldgen.data.collect import collect
from worldgen.data.dataset import EpisodeDataset, split_of
from worldgen.data.policies import RandomRepeatPolicy
from worldgen.data.sources import SourceEnvError, make_source_env, probe_action_meanings
from worldgen.data.storage import DatasetError, Episode, Shard, ShardError, write_shard
from worldgen.data.windows import WindowDataset

PLATFORMER = "worldgen/Platformer-v0"


@pytest.fixture(scope="module")
def platformer_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "platformer"
    collect(PLATFORMER, out, 4, ExplorerPolicy(seed=0), "explore", num_envs=2, seed=0, progress=False)
    return out


def test_collect_writes_shards_and_manifest(platformer_data):
    manifest = json.loads((platformer_data / "manifest.json").read_text())
    assert manifest["env_id"] == PLATFORMER
    assert manifest["action_meanings"][:3] == ["NOOP", "LEFT", "RIGHT"]
    assert manifest["frame_shape"] == [64, 64, 3]
    assert manifest["episodes"] == 4 == len(list(platformer_data.glob("ep-*.npz")))
    assert manifest["frames"] == sum(s["frames"] for s in manifest["shards"])
    assert [p.name for p in platformer_data.glob(".*")] == [".lock"], "no temporary files left"


def test_recorded_episodes_replay_exactly_in_the_real_game(platformer_data):
    """Frames, actions and rewards on disk are what the game does with those actions."""
    data = EpisodeDataset(platformer_data)
    for shard in data.shards[:2]:
        env = gym.make(PLATFORMER, render_mode="rgb_array")
        obs, _ = env.reset(seed=shard.meta["level_seed"])
        frames = shard.frames()
        assert np.array_equal(obs, frames[0])
        for t, action in enumerate(shard.actions):
            obs, reward, term, trunc, _ = env.step(action)
            assert np.array_equal(obs, frames[t + 1]), f"frame {t + 1}"
            assert reward == shard.rewards[t] and term == shard.terminated[t] and trunc == shard.truncated[t]
        assert shard.terminated[-1] or shard.truncated[-1]


def test_rerunning_adds_to_the_dataset(tmp_path):
    out = tmp_path / "d"
    collect(PLATFORMER, out, 1, RandomRepeatPolicy(6, seed=0), "random", seed=1, progress=False)
    collect(PLATFORMER, out, 2, RandomRepeatPolicy(6, seed=0), "random", seed=2, progress=False)
    data = EpisodeDataset(out)
    assert len(data) == 3 and data.files == ["ep-000000.npz", "ep-000001.npz", "ep-000002.npz"]
    with pytest.raises(DatasetError, match="cannot add"):
        collect(PLATFORMER, out, 1, RandomRepeatPolicy(6), "random", size=32, progress=False)


def test_interrupted_collect_keeps_finished_episodes_and_no_partial_file(tmp_path):
    class Interrupt(RandomRepeatPolicy):
        calls = 0

        def act(self, observations, infos, starts):
            Interrupt.calls += 1
            if Interrupt.calls > 1500:
                raise KeyboardInterrupt
            return super().act(observations, infos, starts)

    out = tmp_path / "d"
    with pytest.raises(KeyboardInterrupt):
        collect(PLATFORMER, out, 1000, Interrupt(6, seed=0), "random", seed=0, progress=False)
    data = EpisodeDataset(out)
    assert len(data) >= 1
    assert sorted(p.name for p in out.iterdir()) == sorted([".lock", "manifest.json", *data.files])
    for shard in data.shards:
        assert len(shard.frames()) == shard.num_frames


def test_a_failed_write_leaves_no_partial_shard(tmp_path, monkeypatch):
    episode = _episode(5)

    def explode(file, **arrays):
        file.write(b"half a shard")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", explode)
    with pytest.raises(OSError, match="disk full"):
        write_shard(tmp_path / "ep-000000.npz", episode, "x")
    assert list(tmp_path.iterdir()) == []


def test_random_policy_holds_actions():
    policy = RandomRepeatPolicy(6, max_repeat=10, seed=0)
    actions = [policy.act(None, [{}], np.array([t == 0]))[0] for t in range(2000)]
    runs = np.diff(np.flatnonzero(np.diff(actions) != 0))
    assert 3 < runs.mean() < 8, "actions held for several steps on average"
    assert set(actions) == set(range(6))


def test_any_rgb_gym_env_records(tmp_path):
    collect("CartPole-v1", tmp_path / "cp", 2, RandomRepeatPolicy(2, seed=0), "random", size=32, seed=0, progress=False)
    shard = EpisodeDataset(tmp_path / "cp").shards[0]
    assert shard.frames().shape[1:] == (32, 32, 3)


def test_probing_an_env_for_its_actions_names_them_and_closes_it():
    closed = []

    class Closing(gym.Wrapper):
        def close(self):
            closed.append(True)
            super().close()

    assert probe_action_meanings(lambda: Closing(make_source_env("CartPole-v1", 32))) == ["ACTION_0", "ACTION_1"]
    assert closed == [True]
    assert probe_action_meanings(lambda: make_source_env("worldgen/Platformer-v0"))[:3] == ["NOOP", "LEFT", "RIGHT"]


def test_atari_records_with_the_atari_extra(tmp_path):
    pytest.importorskip("ale_py")
    collect("ALE/Breakout-v5", tmp_path / "br", 1, RandomRepeatPolicy(4, seed=0), "random", num_envs=2, seed=0, progress=False)
    data = EpisodeDataset(tmp_path / "br")
    assert data.action_meanings == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    frames = data.shards[0].frames()
    assert frames.shape[1:] == (64, 64, 3) and frames.std() > 5


def test_a_world_names_its_atari_game_so_a_fresh_process_can_make_it():
    pytest.importorskip("ale_py")
    import subprocess
    import sys

    from worldgen.data.sources import qualified_env_id

    assert qualified_env_id("ALE/Boxing-v5") == "ale_py:ALE/Boxing-v5"
    assert qualified_env_id("worldgen/Platformer-v0") == "envs:worldgen/Platformer-v0" and qualified_env_id("CartPole-v1") == "CartPole-v1"
    code = ("from worldgen.data.sources import trusted_env_id, make_source_env; "
            "env = make_source_env(trusted_env_id('ale_py:ALE/Boxing-v5')); print(env.reset(seed=0)[0].shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "(64, 64, 3)" in out.stdout, out.stderr  # nothing registered ALE ids beforehand


def test_a_world_plays_at_its_games_pace():
    from worldgen.data.sources import steps_per_second

    assert steps_per_second("envs:worldgen/Platformer-v0") == 30
    if importlib.util.find_spec("ale_py") is not None:
        assert steps_per_second("ale_py:ALE/Boxing-v5") == 15  # 60 emulator frames a second, 4 per step
        assert steps_per_second("ALE/Boxing-v5") == 15


class _NoRGB(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, render_mode=None):
        self.observation_space = gym.spaces.Discrete(2)
        self.action_space = gym.spaces.Discrete(2)


gym.register("test/NoRGB-v0", entry_point=_NoRGB)


def test_bad_env_ids_are_clear_errors():
    with pytest.raises(SourceEnvError, match="unknown environment id 'Nope-v9'.*worldgen/Platformer-v0"):
        make_source_env("Nope-v9")
    with pytest.raises(SourceEnvError, match="renders no RGB frames"):
        make_source_env("test/NoRGB-v0")


def test_corrupted_and_foreign_shards_name_the_file(platformer_data, tmp_path):
    bad = tmp_path / "ep-000000.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ShardError, match=r"ep-000000\.npz.*corrupted"):
        Shard(bad)
    foreign = tmp_path / "ep-000001.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(ShardError, match=r"ep-000001\.npz.*not a worldgen episode shard"):
        Shard(foreign)
    truncated = tmp_path / "ep-000002.npz"
    good = (platformer_data / "ep-000000.npz").read_bytes()
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ShardError, match=r"ep-000002\.npz"):
        Shard(truncated).frames()
    assert zipfile.is_zipfile(platformer_data / "ep-000000.npz")


def test_data_info_prints_counts_and_histogram(platformer_data, capsys):
    assert main(["data", "info", str(platformer_data)]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((platformer_data / "manifest.json").read_text())
    assert f"frames:      {manifest['frames']}" in out
    assert "episodes:    4" in out and "RIGHT_JUMP" in out and "MiB per 10k frames" in out


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["collect", "--env", "Nope-v9", "--episodes", "1", "--out", str(tmp_path / "x")]) == 2
    assert "unknown environment id" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["data", "info", str(tmp_path)]) == 2
    assert "not a worldgen dataset" in capsys.readouterr().err


def test_cli_collect_runs(tmp_path):
    out = tmp_path / "d"
    args = ["collect", "--env", PLATFORMER, "--episodes", "2", "--out", str(out), "--policy", "explore", "--seed", "3"]
    assert main(args) == 0
    assert EpisodeDataset(out).info().episodes == 2


# --- training windows -------------------------------------------------------------------


def _episode(steps: int, tag: int = 0) -> Episode:
    """Frames that encode (tag, frame index), so a window shows where its frames came from."""
    frames = np.zeros((steps + 1, 8, 8, 3), dtype=np.uint8)
    frames[..., 0] = tag
    frames[..., 1] = np.arange(steps + 1)[:, None, None]
    return Episode(
        frames=frames,
        actions=(np.arange(steps) % 5 + 1).astype(np.int64),
        rewards=np.arange(steps, dtype=np.float32),
        terminated=np.arange(steps) == steps - 1,
        truncated=np.zeros(steps, dtype=bool),
    )


@pytest.fixture
def tagged_data(tmp_path) -> Path:
    from worldgen.data.storage import add_to_manifest, new_manifest, shard_entry, shard_name, write_manifest

    manifest = new_manifest("test/Tagged-v0", [f"A{i}" for i in range(6)], (8, 8, 3))
    for tag, steps in enumerate([3, 70, 1, 40, 100, 5, 33, 64]):
        episode = _episode(steps, tag)
        write_shard(tmp_path / shard_name(tag), episode, "test/Tagged-v0")
        add_to_manifest(manifest, shard_entry(shard_name(tag), episode))
    write_manifest(tmp_path, manifest)
    return tmp_path


def test_windows_never_mix_episodes_and_follow_the_actions(tagged_data):
    k = 4
    windows = WindowDataset(tagged_data, context=k, split="all")
    assert len(windows) == 3 + 70 + 1 + 40 + 100 + 5 + 33 + 64
    for i in range(len(windows)):
        w = windows[i]
        tag = int(w["target"][0, 0, 0])
        t = int(w["target"][0, 0, 1])
        assert (w["context"][..., 0] == tag).all(), "context from the target's episode"
        expected = np.maximum(np.arange(t - k, t), 0)
        assert w["context"][:, 0, 0, 1].tolist() == expected.tolist(), "consecutive frames, first frame repeated as padding"
        acts = [0 if s < 0 else s % 5 + 1 for s in range(t - k, t)]
        assert w["actions"].tolist() == acts
        assert float(w["reward"]) == t - 1
    assert windows[0]["context"].shape == (k, 8, 8, 3) and windows[0]["context"].dtype.is_floating_point is False


def test_ending_windows_are_the_last_frames_of_episodes_that_terminated(tmp_path):
    from worldgen.data.storage import add_to_manifest, new_manifest, shard_entry, shard_name, write_manifest

    manifest = new_manifest("test/Tagged-v0", [f"A{i}" for i in range(6)], (8, 8, 3))
    lengths = [30, 3, 50, 40]
    for tag, steps in enumerate(lengths):
        episode = _episode(steps, tag)
        if tag == 3:  # cut by a time limit: no ending
            episode.terminated[:], episode.truncated[-1] = False, True
        write_shard(tmp_path / shard_name(tag), episode, "test/Tagged-v0")
        add_to_manifest(manifest, shard_entry(shard_name(tag), episode))
    write_manifest(tmp_path, manifest)
    windows = WindowDataset(tmp_path, context=2, split="all")
    ending = windows.ending_windows(10)
    seen = sorted((int(windows[int(i)]["target"][0, 0, 0]), int(windows[int(i)]["target"][0, 0, 1])) for i in ending)
    assert seen == [(0, t) for t in range(21, 31)] + [(1, t) for t in range(1, 4)] + [(2, t) for t in range(41, 51)]
    live = set(windows.live_windows().tolist())  # every window but the three that ended an episode
    assert len(live) == sum(lengths) - 3 and not live & {29, 32, 82}


def test_a_batch_gathered_at_once_equals_its_windows_one_by_one(tagged_data):
    import torch

    from worldgen.data.latents import LatentStore

    files = EpisodeDataset(tagged_data).files
    counts = [EpisodeDataset(tagged_data).shards[i].num_frames for i in range(len(files))]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    latents = np.zeros((sum(counts), 2, 1, 1), dtype=np.float16)  # latent of a frame: (tag, index)
    for tag, (o, n) in enumerate(zip(offsets, counts)):
        latents[o : o + n, 0] = int(files[tag][3:9])
        latents[o : o + n, 1, 0, 0] = np.arange(n)
    store = tagged_data / "latents" / "test"
    store.mkdir(parents=True)
    np.save(store / "latents.npy", latents)
    (store / "index.json").write_text(json.dumps({"shards": [[f, int(o), n] for f, o, n in zip(files, offsets, counts)]}))
    for latent_store in (None, LatentStore(store)):
        windows = WindowDataset(tagged_data, context=4, split="all", latents=latent_store)
        picks = np.random.default_rng(0).permutation(len(windows))[:100]
        picks[:3] = [0, 1, len(windows) - 1]  # padded windows and the very last one
        batch = windows.batch(picks)
        one_by_one = [windows[int(i)] for i in picks]
        for key, value in batch.items():
            expected = torch.stack([w[key] for w in one_by_one])
            assert value.dtype == expected.dtype and torch.equal(value, expected), key
    with pytest.raises(IndexError, match="out of range"):
        windows.batch(np.array([len(windows)]))


def test_train_and_val_split_by_episode(tagged_data):
    train = WindowDataset(tagged_data, split="train", val_fraction=0.4)
    val = WindowDataset(tagged_data, split="val", val_fraction=0.4)
    assert set(train.episodes.files).isdisjoint(val.episodes.files)
    assert len(train) + len(val) == len(WindowDataset(tagged_data, split="all"))
    assert all(split_of(f, 0.4) == "val" for f in val.episodes.files)


def test_windows_read_lazily_through_a_bounded_cache(tagged_data):
    windows = WindowDataset(tagged_data, context=4, split="all", cache_chunks=2)
    for i in range(len(windows)):
        windows[i]
    assert len(windows._cache._chunks) <= 2


def test_windows_work_in_dataloader_workers(tagged_data):
    import torch

    windows = WindowDataset(tagged_data, context=2, split="all")
    loader = torch.utils.data.DataLoader(windows, batch_size=16, shuffle=True, num_workers=2)
    batch = next(iter(loader))
    assert batch["context"].shape == (16, 2, 8, 8, 3) and batch["actions"].shape == (16, 2)


def test_the_latent_cache_is_keyed_by_the_encoder_alone(tiny_world_runs, tmp_path):
    """A decoder fine-tuned on its own makes the same latents; the cache must not be rebuilt."""
    import shutil

    from safetensors.torch import save_file

    from models.export import WEIGHTS, read_tensors
    from worldgen.data.latents import autoencoder_key

    source = tiny_world_runs / "ae" / "export"
    tensors = read_tensors(source / WEIGHTS)
    decoder = next(k for k in tensors if k.startswith("decoder."))
    encoder = next(k for k in tensors if k.startswith("encoder."))
    for name, same in ((decoder, True), (encoder, False)):
        changed = shutil.copytree(source, tmp_path / name)
        save_file({**tensors, name: tensors[name] + 0.01}, str(changed / WEIGHTS))
        assert (autoencoder_key(changed) == autoencoder_key(source)) is same, name


def test_an_interrupted_latent_cache_goes_on_from_the_first_episode_not_encoded(tiny_world_runs, tiny_dataset, tmp_path):
    import shutil

    from models.export import load_export
    from worldgen.data.latents import encode_dataset

    data = shutil.copytree(tiny_dataset, tmp_path / "data", ignore=shutil.ignore_patterns("latents"))
    folder = tiny_world_runs / "ae" / "export"
    ae = load_export(folder, "autoencoder")[0]
    whole = encode_dataset(ae, folder, tiny_dataset, batch_size=100_000, progress=False)
    encode, calls, stop_at = ae.encode, [], [4]  # a probe frame, then one batch per episode: stopped in the third

    def stopped_at_the_third(x):
        calls.append(len(x))
        if len(calls) in stop_at:
            raise RuntimeError("stopped")
        return encode(x)

    ae.encode = stopped_at_the_third
    with pytest.raises(RuntimeError, match="stopped"):
        encode_dataset(ae, folder, data, batch_size=100_000, progress=False)
    assert not list((data / "latents").glob("*/index.json"))  # no half-built cache is ever read
    calls.clear()
    stop_at.clear()
    store = encode_dataset(ae, folder, data, batch_size=100_000, progress=False)
    assert len(calls) == 1 + 4  # the probe, then episodes 3-6 only
    assert np.array_equal(store.array, whole.array) and store.offsets == whole.offsets
    assert [p.name for p in (data / "latents").iterdir() if not p.name.endswith(".lock")] == [store.folder.name]


def test_random_play_leans_by_its_odds_and_refuses_odds_that_are_not():
    starts = np.zeros(4000, dtype=bool)
    actions = RandomRepeatPolicy(3, max_repeat=1, seed=0, weights=(1, 3, 0)).act(np.zeros((4000, 1)), [{}] * 4000, starts)
    assert np.bincount(actions, minlength=3)[2] == 0 and 0.72 < np.mean(actions == 1) < 0.78
    for bad in ((1, 2), (1, -1, 1), (0, 0, 0)):
        with pytest.raises(ValueError, match="weights must be 3 non-negative odds"):
            RandomRepeatPolicy(3, weights=bad)
