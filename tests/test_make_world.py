"""`worldgen make-world`: a game nobody here wrote (MountainCar, drawn by its renderer) goes from
its Gymnasium id to a packed, judged, timed world, and a rerun does nothing again."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from worldgen.cli import main
from worldgen.make_world import PRESETS, make_plan


def test_a_classic_control_game_becomes_a_playable_judged_world(tmp_path, capsys):
    out = tmp_path / "mountaincar"
    assert main(["make-world", "--env", "MountainCar-v0", "--out", str(out), "--preset", "tiny", "--episodes", "3"]) == 0
    printed = capsys.readouterr().out
    assert "[1/12] collect: 3 more episodes" in printed and "[12/12] bench: finished" in printed
    spec = json.loads((out / "world" / "world.json").read_text())
    assert spec["source_env"] == "MountainCar-v0" and spec["action_meanings"] and spec["sampler"] == "consistency"
    # The second step's time is the candidate that kept the content nearest the real game's.
    tuned = json.loads((out / "tune.json").read_text())
    assert [row["mid_time"] for row in tuned["candidates"]] == list(PRESETS["tiny"].mid_times)
    assert spec["mid_time"] == tuned["mid_time"] == min(tuned["candidates"], key=lambda row: row["deviation"])["mid_time"]
    assert "| second step at t | deviation |" in printed and tuned["first_seed"] >= 2_000_000
    report = json.loads((out / "eval" / "report.json").read_text())
    assert {"repeat last frame", "world 2-step", "world 1-step"} <= set(report["methods"])
    assert any(kind.startswith("colour ") for kind in report["content"]["real"])  # no kit: judged by its colours
    assert json.loads((out / "bench.json").read_text())["runs"]

    from worldgen.world import World

    # The world draws with the rare-colour decoder on the first autoencoder's encoder, so the
    # latents every later stage learnt on are the first encoder's.
    from safetensors.torch import load_file

    first = load_file(out / "runs" / "ae" / "export" / "model.safetensors")
    packed = load_file(out / "world" / "ae" / "model.safetensors")
    assert all(torch.equal(first[k], packed[k]) for k in first if k.startswith("encoder.") or k == "latent_scale")
    assert not all(torch.equal(first[k], packed[k]) for k in first if k.startswith("decoder."))
    assert json.loads((out / "runs" / "teacher" / "train_config.json").read_text())["ae"].endswith("ae_decoder/export")

    world = World(out / "world")
    world.reset(world.source_frame(1_000_000)[None])
    assert world.step([0]).frames.shape == (1, 64, 64, 3)

    # Everything is done: a rerun skips every stage and trains nothing.
    before = sorted(p.name for p in (out / "runs" / "teacher" / "checkpoints").iterdir())
    assert main(["make-world", "--env", "MountainCar-v0", "--out", str(out), "--preset", "tiny", "--episodes", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": done") == 12
    assert sorted(p.name for p in (out / "runs" / "teacher" / "checkpoints").iterdir()) == before


def test_a_collect_cut_short_is_topped_up_with_new_episodes(tmp_path):
    from worldgen.data.dataset import EpisodeDataset
    from worldgen.make_world import _collect

    plan = make_plan("MountainCar-v0", tmp_path, "tiny", episodes=3)
    data = tmp_path / "data"
    _collect(plan, data, 1)  # the first run, cut short after one episode
    _collect(plan, data, 2)  # the rerun's top-up
    shards = EpisodeDataset(data).shards
    assert len(shards) == 3
    firsts = [tuple(s.actions[:40]) for s in shards]
    assert len(set(firsts)) == 3  # three different episodes, none replayed


def test_the_plan_sizes_every_stage_and_says_how_long(capsys, tmp_path):
    assert main(["make-world", "--env", "worldgen/Platformer-v0", "--out", str(tmp_path / "p"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "explore play" in printed and "estimated total" in printed and not (tmp_path / "p").exists()
    small = make_plan("worldgen/Platformer-v0", tmp_path, "small")
    assert 1.5 * 3600 < small.seconds < 3 * 3600  # the budget: three hours of CPU on this machine
    assert [name for name, _, _ in small.steps] == ["collect", "ae", "ae_decoder", "teacher", "scd", "teacher_own", "scd_own",
                                                    "tune", "reward", "pack", "eval", "bench"]
    assert make_plan("MountainCar-v0", tmp_path, "tiny").policy == "random"
    assert set(PRESETS) == {"tiny", "small", "base"}


def test_bad_requests_say_what_was_wrong(tmp_path):
    with pytest.raises(ValueError, match="unknown make-world preset 'huge'"):
        make_plan("MountainCar-v0", tmp_path, "huge")
    with pytest.raises(ValueError, match="no scripted player"):
        make_plan("MountainCar-v0", tmp_path, "tiny", policy="explore")
    with pytest.raises(ValueError, match="at least 2"):
        make_plan("MountainCar-v0", tmp_path, "tiny", episodes=1)


def test_clips_become_a_world_on_latent_actions_judged_on_the_game_they_show(tmp_path, capsys):
    from worldgen.data.dataset import EpisodeDataset
    from worldgen.world import World

    clips = tmp_path / "clips"
    assert main(["record", "--env", "worldgen/Platformer-v0", "--policy", "kit", "--clips", "3", "--frames", "40",
                 "-o", str(clips / "c.mp4")]) == 0
    out = tmp_path / "from_video"
    args = ["make-world", "--video", str(clips), "--env", "worldgen/Platformer-v0", "--codes", "4", "--out", str(out),
            "--preset", "tiny"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "make-world clips of worldgen/Platformer-v0" in printed and "[14/14] bench: finished" in printed
    data = EpisodeDataset(out / "data")
    assert data.action_meanings == ["code 0", "code 1", "code 2", "code 3"] and data.env_id == "worldgen/Platformer-v0"
    report = json.loads((out / "eval" / "report.json").read_text())
    assert {"repeat last frame", "world 2-step"} <= set(report["methods"]) and "coins" in report["content"]["real"]
    # The reward head learnt from the world's own frames drawn at the tuned second-step time, the one it plays at.
    tuned = json.loads((out / "tune.json").read_text())["mid_time"]
    assert json.loads((out / "runs" / "reward" / "train_config.json").read_text())["judged"]["mid_time"] == tuned
    world = World(out / "world")
    assert world.action_meanings == data.action_meanings and world.spec.source_env == "envs:worldgen/Platformer-v0"
    assert main(args) == 0 and capsys.readouterr().out.count(": done") == 14


def test_clips_of_no_known_game_become_a_world_that_starts_from_their_opening_frames(tmp_path, capsys):
    from worldgen.data.sources import SourceEnvError
    from worldgen.world import World

    clips = tmp_path / "clips"
    assert main(["record", "--env", "worldgen/Platformer-v0", "--policy", "kit", "--clips", "3", "--frames", "30",
                 "-o", str(clips / "c.gif"), "--fps", "10"]) == 0
    labels = tmp_path / "labelled"  # a few episodes with true keys: they steer the codes and name them
    assert main(["collect", "--env", "worldgen/Platformer-v0", "--episodes", "2", "--out", str(labels), "--policy", "explore",
                 "--seed", "9"]) == 0
    out = tmp_path / "video_only"
    assert main(["make-world", "--video", str(clips), "--codes", "3", "--out", str(out), "--preset", "tiny",
                 "--labels", str(labels)]) == 0
    printed = capsys.readouterr().out
    assert "steered by the labelled episodes" in printed
    assert not re.search(r"^\s+\d+\. (eval|reward) ", printed, re.M) and "[11/11] bench: finished" in printed
    assert not (out / "eval").exists() and (out / "bench.json").exists()
    world = World(out / "world")
    assert world.spec.source_env == "video" and world.spec.fps == 10 and len(world.action_meanings) == 3
    lam = json.loads((out / "runs" / "lam" / "export" / "config.json").read_text())
    assert world.action_meanings == lam["code_names"] and set(world.action_meanings) <= {"NOOP", "LEFT", "RIGHT", "JUMP",
                                                                                         "LEFT_JUMP", "RIGHT_JUMP"}
    assert json.loads((out / "runs" / "lam" / "train_config.json").read_text())["labels"] == str(labels)
    assert world.reward_head is None and not (out / "world" / "reward").exists()
    first = world.reset(0)
    assert np.array_equal(first[0], world.prompts[0][-1]) and world.prompts.shape[1] == world.spec.context
    step = world.step([2])
    assert step.frames.shape == (1, 64, 64, 3) and step.rewards.tolist() == [0.0] and not step.terminated.any()
    with pytest.raises(SourceEnvError, match="learnt from video alone"):
        world.make_source()


def test_bad_video_requests_say_what_was_wrong(tmp_path):
    with pytest.raises(ValueError, match="nowhere: no such file or folder"):
        make_plan(None, tmp_path, "tiny", video=[tmp_path / "nowhere"])
    with pytest.raises(ValueError, match="no clips in this folder"):
        make_plan(None, tmp_path, "tiny", video=[tmp_path])
    (tmp_path / "a.gif").write_bytes(b"")
    with pytest.raises(ValueError, match="--episodes and --policy"):
        make_plan(None, tmp_path, "tiny", episodes=4, video=[tmp_path])
    with pytest.raises(ValueError, match="--labels steers and names the latent actions of a world from --video"):
        make_plan("MountainCar-v0", tmp_path, "tiny", labels=tmp_path)
    with pytest.raises(ValueError, match="--env .* or --video"):
        make_plan(None, tmp_path, "tiny")
    plan = make_plan(None, tmp_path, "small", video=[tmp_path])
    assert plan.steps[0][1].startswith("1 clip ->")
    assert [name for name, _, _ in plan.steps] == ["video", "ae", "ae_decoder", "lam", "label", "teacher", "scd", "teacher_own",
                                                   "scd_own", "pack", "bench"]
    ruled = make_plan("worldgen/Platformer-v0", tmp_path, "small", video=[tmp_path])
    assert [name for name, _, _ in ruled.steps][-5:] == ["tune", "reward", "pack", "eval", "bench"]
    unruled = make_plan("MountainCar-v0", tmp_path, "small", video=[tmp_path])  # judged on the game, no rewards read off frames
    assert [name for name, _, _ in unruled.steps][-5:] == ["scd_own", "tune", "pack", "eval", "bench"]


def test_a_stage_older_than_an_earlier_one_is_redone_and_its_output_kept(tmp_path):
    """A rerun after an earlier stage changed (a longer teacher, more episodes) must not pack the
    stages that learnt from the old one."""
    import os

    from worldgen.make_world import _newer_upstream, _set_aside

    plan = make_plan("MountainCar-v0", tmp_path, "tiny", episodes=3)
    names = [name for name, _, _ in plan.steps]
    for t, name in enumerate(names[: names.index("tune")]):  # every stage up to tune finished, in order
        mark = tmp_path / ("data/manifest.json" if name == "collect" else f"runs/{name}/export/config.json")
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text("{}")
        os.utime(mark, (1000.0 + t, 1000.0 + t))
    assert [_newer_upstream(plan, i) for i in range(len(names))] == [None] * len(names)

    os.utime(tmp_path / "runs" / "teacher" / "export" / "config.json", (2000.0, 2000.0))  # the teacher trained on
    stale = {names[i]: _newer_upstream(plan, i) for i in range(len(names))}
    assert stale == {n: "teacher" if n in ("scd", "teacher_own", "scd_own") else None for n in names}
    assert _set_aside(plan, "scd") == tmp_path / "runs" / "scd.previous"
    assert (tmp_path / "runs" / "scd.previous" / "export" / "config.json").exists() and not (tmp_path / "runs" / "scd").exists()
    assert _newer_upstream(plan, names.index("scd")) is None  # gone: trained afresh, not resumed


def test_the_world_plays_plain_scd_when_its_own_rollouts_cost_the_keys(tmp_path):
    from worldgen.make_world import chosen_dynamics

    def logged(run, *dpsnr):
        records = [{"step": 1, "loss": 0.1}] + [{"step": 2 + i, "val/rollout_dpsnr_h8": d} for i, d in enumerate(dpsnr)]
        (tmp_path / run).mkdir(exist_ok=True)
        (tmp_path / run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    assert chosen_dynamics(tmp_path) == ("scd_own", "teacher_own")  # nothing measured: the recipe as it stands
    logged("scd", 0.5, 1.97)
    logged("scd_own", 2.0, 0.31)  # the last validation counts: Freeway from the kit's play
    assert chosen_dynamics(tmp_path) == ("scd", "teacher")
    logged("scd_own", 0.2, 1.2)
    assert chosen_dynamics(tmp_path) == ("scd_own", "teacher_own")
