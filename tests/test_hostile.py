"""Hostile and broken inputs: every one gives a clear error naming the input and what was
expected, runs no code it was handed, and changes nothing already on disk."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file

from envs.platformer import ExplorerPolicy
from worldgen.checkpoint import CheckpointError, list_states
from worldgen.cli import main
from worldgen.data.collect import collect
from worldgen.data.dataset import EpisodeDataset
from worldgen.data.sources import SourceEnvError
from worldgen.data.storage import DatasetError, Shard, ShardError
from worldgen.record import Clip, make_policy, record_clip, replay_clip, write_video
from worldgen.world import World, load_image, read_spec

ROOT = Path(__file__).resolve().parents[1]
PLATFORMER = "worldgen/Platformer-v0"
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under a folder and a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def cli_error(capsys, argv: list[str], *fragments: str) -> str:
    """Run the CLI, expect the one-line `error:` exit (status 2), return the message."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]  # after any progress bar
    assert line.startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in line, err
    return line


@pytest.fixture
def world_copy(tiny_world, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_world, tmp_path / "world"))


def edit_json(path: Path, **fields) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


# --- code execution ----------------------------------------------------------------------


def test_a_world_naming_its_own_module_runs_no_code(world_copy, tmp_path, monkeypatch):
    marker = tmp_path / "payload-ran"
    (world_copy / "payload.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    edit_json(world_copy / "world.json", source_env="payload:worldgen/Platformer-v0")
    monkeypatch.syspath_prepend(str(world_copy))  # the folder is on the import path, as with `python -m` run inside it
    before = snapshot(world_copy)
    world = World(world_copy)
    with pytest.raises(SourceEnvError, match=r"names the Python module 'payload'.*--trust-module payload"):
        world.reset(seed=0)
    # The command line from inside the world folder, the case the issue reports.
    result = subprocess.run([sys.executable, "-m", "worldgen.cli", "record", "--world", ".", "--frames", "2",
                             "-o", str(tmp_path / "c.gif")], cwd=world_copy, env=ONE_THREAD, capture_output=True, text=True)
    assert result.returncode == 2 and "--trust-module payload" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists() and "payload" not in sys.modules
    assert snapshot(world_copy) == before
    # Trusted explicitly, it is the user's choice.
    World(world_copy, trusted_modules=["payload"]).reset(seed=0)
    assert marker.exists()
    sys.modules.pop("payload", None)


def test_unknown_source_env_is_a_clear_error(world_copy, capsys, tmp_path):
    edit_json(world_copy / "world.json", source_env="envs:worldgen/Nope-v3")
    cli_error(capsys, ["record", "--world", str(world_copy), "--frames", "2", "-o", str(tmp_path / "c.gif")],
              "'worldgen/Nope-v3' is not a registered Gymnasium id", "worldgen/Platformer-v0")
    assert not (tmp_path / "c.gif").exists()


def test_an_agent_zip_is_not_unpickled_without_trust(tiny_world, tmp_path, capsys):
    agent = tmp_path / "agent.zip"
    with zipfile.ZipFile(agent, "w") as z:
        z.writestr("data", "{}")
    with pytest.raises(ValueError, match="--trust-agent"):
        make_policy(str(agent), 6, 0)
    cli_error(capsys, ["record", "--world", str(tiny_world), "--policy", str(agent), "--frames", "2", "-o", str(tmp_path / "c.gif")],
              "pickled", "--trust-agent")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.zip"]


# --- nothing the user made is lost ---------------------------------------------------------


def _wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _collect_process(out: Path, episodes: int, seed: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "worldgen.cli", "collect", "--env", PLATFORMER, "--episodes", str(episodes),
                             "--out", str(out), "--policy", "explore", "--seed", str(seed)],
                            env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _holds_lock(out: Path, proc: subprocess.Popen) -> bool:
    lock = out / ".lock"
    return lock.exists() and lock.read_text().strip() == str(proc.pid)


def test_two_writers_to_one_dataset_lose_nothing(tmp_path):
    out = tmp_path / "d"
    first = _collect_process(out, 6, seed=0)
    _wait_for(lambda: _holds_lock(out, first))
    with pytest.raises(DatasetError, match=rf"being written by another process \(pid {first.pid}\)"):
        collect(PLATFORMER, out, 2, ExplorerPolicy(seed=1), "explore", seed=100, progress=False)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    data = EpisodeDataset(out)
    assert data.manifest["episodes"] == len(data) == len(list(out.glob("ep-*.npz"))) == 6
    data.verify(progress=False)


def test_the_same_seed_twice_is_refused_and_a_new_one_adds(tmp_path, capsys):
    out = tmp_path / "d"
    args = ["collect", "--env", PLATFORMER, "--episodes", "1", "--out", str(out), "--policy", "explore", "--num-envs", "1"]
    assert main([*args, "--seed", "4"]) == 0
    capsys.readouterr()
    before = snapshot(out)
    cli_error(capsys, [*args, "--seed", "4"], "env seeds [4]", "--seed 5")
    assert snapshot(out) == before
    assert main(args) == 0  # no seed: a fresh one is drawn, never a used one
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["env_seeds"]) == 2 and 4 in manifest["env_seeds"] and manifest["episodes"] == 2


def test_a_killed_collect_leaves_nothing_behind_once_run_again(tmp_path):
    out = tmp_path / "d"
    proc = _collect_process(out, 200, seed=0)
    _wait_for(lambda: len(list(out.glob("ep-*.npz"))) >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (out / ".ep-000777.npz.x1y2.tmp").write_bytes(b"half a shard")  # what a kill mid-write leaves
    on_disk = sorted(p.name for p in out.glob("ep-*.npz"))
    collect(PLATFORMER, out, 1, ExplorerPolicy(seed=1), "explore", seed=1, progress=False)
    assert not list(out.glob(".*.tmp"))
    data = EpisodeDataset(out)
    listed = [s["file"] for s in data.manifest["shards"]]
    assert set(on_disk) < set(listed) and len(listed) == len(on_disk) + 1 == data.manifest["episodes"]
    data.verify(progress=False)


def _damage_chunks(shard: Path, members: list[str] | None = None) -> None:
    """Flip bytes inside the compressed data of frame chunks, as a disk fault would."""
    raw = bytearray(shard.read_bytes())
    with zipfile.ZipFile(shard) as z:
        infos = [z.getinfo(m) for m in members] if members else [i for i in z.infolist() if i.filename.startswith("frames_")]
    for info in infos:
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for i in range(start + 40, start + min(60, info.compress_size)):
            raw[i] ^= 0xFF
    shard.write_bytes(bytes(raw))


def test_a_damaged_frame_chunk_is_found_by_data_info_and_named_in_training(tmp_path, tiny_dataset, capsys):
    data = Path(shutil.copytree(tiny_dataset, tmp_path / "d"))
    shard = sorted(data.glob("ep-*.npz"))[0]
    _damage_chunks(shard, ["frames_00001.npy"])
    cli_error(capsys, ["data", "info", str(data)], shard.name, "frames_00001")
    assert main(["data", "info", "--quick", str(data)]) == 0
    capsys.readouterr()
    with pytest.raises(ShardError, match=rf"{shard.name}: cannot read frame chunk 1"):
        Shard(shard).chunk_frames(1)
    for other in sorted(data.glob("ep-*.npz")):  # every chunk of every shard, so training meets one at its first read
        _damage_chunks(other)
    cli_error(capsys, ["train", "ae", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny", "--steps", "5",
                       "--set", "run.val_fraction=0.3"], ".npz: cannot read frame chunk")


def test_record_never_overwrites_an_input_or_an_output_unasked(tiny_world, tmp_path, capsys):
    actions = tmp_path / "run1.json"
    actions.write_text("[2, 2, 5]")
    before = snapshot(tmp_path)
    base = ["record", "--world", str(tiny_world), "--frames", "3"]
    cli_error(capsys, [*base, "--policy", str(actions), "-o", str(tmp_path / "run1.mp4")], "run1.json is also an input")
    assert snapshot(tmp_path) == before
    out = tmp_path / "new" / "folder" / "clip.gif"  # a missing output folder is made
    assert main([*base, "-o", str(out)]) == 0
    made = snapshot(tmp_path)
    cli_error(capsys, [*base, "-o", str(out)], "clip.gif exists", "--force")
    assert snapshot(tmp_path) == made
    assert main([*base, "--seed", "3", "--force", "-o", str(out)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["seed"] == 3
    cli_error(capsys, ["replay", str(out.with_suffix(".json")), "-o", str(out.with_suffix(".json")), "--force"], "also an input")


def test_outputs_into_a_missing_folder_are_written_there(tiny_world, tmp_path, capsys):
    from worldgen.bench import save_report

    save_report({"runs": []}, tmp_path / "new" / "bench.json")
    assert json.loads((tmp_path / "new" / "bench.json").read_text()) == {"runs": []}
    clip = tmp_path / "c.json"
    Clip(world=str(tiny_world), seed=0, sampling_steps=2, prompt=1, actions=[2, 2]).save(clip)
    assert main(["replay", str(clip), "-o", str(tmp_path / "deep" / "er" / "r.gif")]) == 0
    assert (tmp_path / "deep" / "er" / "r.gif").stat().st_size > 0


def _train_tiny(data: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "worldgen.cli", "train", "ae", "--data", str(data), "--out", str(out), "--preset", "tiny",
            "--steps", str(steps), "--set", "run.val_fraction=0.3", "--set", "run.ckpt_every=2", "--set", "run.image_every=0",
            "--set", "run.keep_checkpoints=3", "--set", "run.threads=1", *extra]


def test_a_killed_training_run_resumes_to_the_same_weights(tiny_dataset, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_train_tiny(tiny_dataset, straight, 12), check=True, env=ONE_THREAD, capture_output=True)
    proc = subprocess.Popen(_train_tiny(tiny_dataset, killed, 12), env=ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: len(list_states(killed)) >= 2 or proc.poll() is not None)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(_train_tiny(tiny_dataset, killed, 12, "--resume"), check=True, env=ONE_THREAD, capture_output=True)
    a, b = load_file(straight / "export/model.safetensors"), load_file(killed / "export/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_falls_back_past_a_damaged_checkpoint(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    subprocess.run(_train_tiny(tiny_dataset, run, 6), check=True, env=ONE_THREAD, capture_output=True)
    newest = list_states(run)[-1]
    (newest / "state.safetensors").write_bytes(b"\0" * 100)
    assert main(["train", "ae", "--data", str(tiny_dataset), "--out", str(run), "--preset", "tiny", "--steps", "8", "--resume",
                 "--set", "run.val_fraction=0.3", "--set", "run.ckpt_every=2", "--set", "run.image_every=0"]) == 0
    err = capsys.readouterr().err
    assert f"cannot resume from {newest}" in err and "trying an older checkpoint" in err
    assert list_states(run)[-1].name == "step-00000008"


# --- weights and world descriptions that would draw garbage ---------------------------------


@pytest.mark.parametrize("damage, message", [
    ("nan", "holds NaN or infinite values"),
    ("int", "holds torch.int64 values, expected floating point"),
    ("shape", "has shape"),
    ("missing", "missing "),
])
def test_broken_weights_are_refused_before_they_run(world_copy, damage, message):
    path = world_copy / "dynamics" / "model.safetensors"
    tensors = load_file(path)
    key = next(k for k, v in tensors.items() if v.ndim == 4)
    if damage == "nan":
        tensors[key][0, 0, 0, 0] = float("nan")
    elif damage == "int":
        tensors[key] = tensors[key].long()
    elif damage == "shape":
        tensors[key] = tensors[key][:1]
    else:
        del tensors[key]
    save_file(tensors, str(path))
    before = snapshot(world_copy)
    with pytest.raises(CheckpointError, match=rf"dynamics.*{message}"):
        World(world_copy)
    assert snapshot(world_copy) == before


@pytest.mark.parametrize("model", [{"channels": [100000]}, {"channels": [16.5, 32]}, {"blocks": -1}, {"context": "four"}])
def test_absurd_model_configs_fail_before_allocating(world_copy, model, capsys, tmp_path):
    path = world_copy / "dynamics" / "config.json"
    config = json.loads(path.read_text())
    config["model"].update(model)
    path.write_text(json.dumps(config))
    cli_error(capsys, ["record", "--world", str(world_copy), "--frames", "2", "-o", str(tmp_path / "c.gif")], "dynamics")


@pytest.mark.parametrize("field, value, message", [
    ("context_noise", float("nan"), "context_noise must be a number in [0, 1]"),
    ("frame_size", 32, "trained on 64x64 frames"),
    ("frame_size", 10**9, "frame_size must be"),
    ("context", 3, "the dynamics network takes 4 frames"),
    ("action_meanings", ["NOOP", "RIGHT"], "names 2 actions"),
    ("sampler", "magic", "sampler must be one of"),
    ("default_steps", 7, "default_steps must be"),
    ("mid_time", 1.6, "mid_time must be a number in (0, 1.5645)"),
])
def test_world_descriptions_that_do_not_fit_the_networks(world_copy, field, value, message):
    edit_json(world_copy / "world.json", **{field: value})
    with pytest.raises(CheckpointError, match=rf"world.json: .*{__import__('re').escape(message)}"):
        World(world_copy)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=6)


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(["name", "source_env", "action_meanings", "context", "frame_size", "sampler",
                                                "default_steps", "context_noise", "fps", "training_seeds", "extra"]),
                               JSON_VALUES, min_size=1, max_size=3))
def test_any_world_json_reads_as_a_valid_spec_or_a_clear_error(tiny_world, tmp_path_factory, changes):
    folder = tmp_path_factory.mktemp("spec")
    data = json.loads((tiny_world / "world.json").read_text())
    data.update(changes)
    (folder / "world.json").write_text(json.dumps(data))
    try:
        spec = read_spec(folder)
    except CheckpointError as e:
        assert "world.json" in str(e)
        return
    assert 1 <= spec.context <= 64 and spec.frame_size % 4 == 0 and 0 <= spec.context_noise <= 1
    assert spec.sampler in ("consistency", "ode") and all(isinstance(a, str) for a in spec.action_meanings)


# --- prompts and actions ----------------------------------------------------------------------


def test_a_16_bit_prompt_is_scaled_not_saturated(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    Image.fromarray((ramp // 257).astype(np.uint8)).save(tmp_path / "flat.png")
    deep, flat = load_image(tmp_path / "deep.png", 64), load_image(tmp_path / "flat.png", 64)
    assert np.abs(deep.astype(int) - flat.astype(int)).max() <= 1
    assert 120 < deep.mean() < 135  # not white


def test_huge_and_bomb_images_are_refused_before_decoding(tmp_path):
    Image.new("1", (5000, 5000)).save(tmp_path / "big.png")  # 25 megapixels in a few kB
    with pytest.raises(ValueError, match="big.png: a 5000x5000 image is larger than a prompt may be"):
        load_image(tmp_path / "big.png", 64)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    with pytest.raises(ValueError, match="junk.png: not an image file"):
        load_image(tmp_path / "junk.png", 64)


@pytest.mark.parametrize("prompt, message", [
    (np.zeros((1, 0, 64, 3), np.uint8), "N, H, W > 0"),
    (np.zeros((0, 64, 64, 3), np.uint8), "N, H, W > 0"),
    (np.zeros((1, 64, 64, 3), np.float32), "must be uint8"),
    (-3, "level-seed prompt must be an integer in"),
    (True, "a prompt is frames"),
])
def test_bad_prompts_are_clear_errors(tiny_world, prompt, message):
    with pytest.raises(ValueError, match=message):
        World(tiny_world).reset(prompt)


def test_env_options_are_checked(tiny_world):
    env = gym.make("worldgen/World-v0", world=str(tiny_world))
    with pytest.raises(ValueError, match="level-seed prompt"):
        env.reset(options={"prompt": -3})


@pytest.fixture(scope="module")
def stepped(tiny_world):
    """A world and a vector env of two, reset once; stepping them is what the fuzz tests try."""
    world = World(tiny_world)
    world.reset(seed=0)
    venv = gym.make_vec("worldgen/World-v0", num_envs=2, vectorization_mode="vector_entry_point", world=str(tiny_world))
    venv.reset(seed=0)
    return world, venv


@FUZZ
@given(action=st.one_of(st.floats(allow_nan=True), st.integers(-10, 10), st.booleans(), st.text(max_size=2)))
def test_a_world_steps_whole_valid_actions_and_refuses_the_rest(stepped, action):
    world, _ = stepped
    if isinstance(action, int) and not isinstance(action, bool) and 0 <= action < 6:
        assert world.step([action]).frames.shape == (1, 64, 64, 3)
    else:
        with pytest.raises(ValueError, match=r"integers in \[0, 6\)"):
            world.step([action])


@FUZZ
@given(actions=st.lists(st.one_of(st.integers(-3, 8), st.floats(-1, 7)), min_size=1, max_size=3))
def test_the_vector_env_takes_the_same_actions_as_the_world(stepped, actions):
    _, venv = stepped
    a = np.asarray(actions)
    if len(actions) == 2 and np.issubdtype(a.dtype, np.integer) and ((a >= 0) & (a < 6)).all():
        assert venv.step(a)[0].shape == (2, 64, 64, 3)
    else:
        with pytest.raises(ValueError, match=r"integers in \[0, 6\)|one action per env"):
            venv.step(a)


def test_a_float_action_is_not_truncated(tiny_world):
    world = World(tiny_world)
    world.reset(seed=0)
    with pytest.raises(ValueError, match=r"integers in \[0, 6\).*got \[2.9\]"):
        world.step(2.9)
    single = gym.make("worldgen/World-v0", world=str(tiny_world))
    single.reset(seed=0)
    venv = gym.make_vec("worldgen/World-v0", num_envs=2, vectorization_mode="vector_entry_point", world=str(tiny_world))
    venv.reset(seed=0)
    for step in (lambda: single.step(2.0), lambda: venv.step(np.array([2.0, 1.0]))):
        with pytest.raises(ValueError, match=r"integers in \[0, 6\)"):
            step()


def test_eval_refuses_random_keys_the_world_lacks_before_it_plays(tiny_world, tmp_path, capsys):
    out = tmp_path / "eval"
    cli_error(capsys, ["eval", "--world", str(tiny_world), "--no-teacher", "--random-keys", "0,6", "--out", str(out)],
              "key_pool must list actions 0..5, got [0, 6]")
    with pytest.raises(SystemExit):
        main(["eval", "--world", str(tiny_world), "--no-teacher", "--random-keys", "0,right", "--out", str(out)])
    assert "expected action numbers separated by commas" in capsys.readouterr().err
    assert not out.exists()


# --- clips ----------------------------------------------------------------------------------------


def test_scale_zero_writes_nothing(tiny_world, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["record", "--world", str(tiny_world), "--frames", "2", "--scale", "0", "-o", str(tmp_path / "c.mp4")])
    assert "expected a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        write_video(tmp_path / "c.mp4", np.zeros((2, 8, 8, 3), np.uint8), 30, scale=0)
    assert not list(tmp_path.iterdir())


def test_replay_runs_on_the_clips_thread_count(tiny_world):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        clip = Clip(world=str(tiny_world), seed=1, sampling_steps=2, prompt=5)
        frames = record_clip(World(tiny_world), clip, 6, make_policy("random", 6, seed=0), progress=False)
        assert clip.threads == 1
        torch.set_num_threads(2)
        assert np.array_equal(replay_clip(World(tiny_world), clip, progress=False), frames)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_a_clip_missing_a_key_names_it(tmp_path, capsys):
    clip = tmp_path / "c.json"
    clip.write_text(json.dumps({"format": "worldgen-clip", "world": "platformer", "seed": 0, "prompt": 0}))
    cli_error(capsys, ["replay", str(clip)], "c.json: missing sampling_steps")


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(["world", "seed", "sampling_steps", "prompt", "actions", "start", "fps",
                                                "threads", "format", "junk"]), JSON_VALUES, min_size=1, max_size=3))
def test_any_clip_file_loads_valid_or_names_the_problem(tmp_path_factory, changes):
    path = tmp_path_factory.mktemp("clip") / "c.json"
    data = {"format": "worldgen-clip", "world": "platformer", "seed": 0, "sampling_steps": 2, "prompt": 0, "actions": [1, 2]}
    data.update(changes)
    path.write_text(json.dumps(data))
    try:
        clip = Clip.load(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    assert isinstance(clip.actions, list) and all(isinstance(a, int) and a >= 0 for a in clip.actions)
    assert clip.threads >= 1 and clip.fps >= 1 and isinstance(clip.seed, int) and clip.seed >= 0
