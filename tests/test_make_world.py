"""`worldgen make-world`: a game nobody here wrote (MountainCar, drawn by its renderer) goes from
its Gymnasium id to a packed, judged, timed world, and a rerun does nothing again."""

from __future__ import annotations

import json

import pytest

from worldgen.cli import main
from worldgen.make_world import PRESETS, make_plan


def test_a_classic_control_game_becomes_a_playable_judged_world(tmp_path, capsys):
    out = tmp_path / "mountaincar"
    assert main(["make-world", "--env", "MountainCar-v0", "--out", str(out), "--preset", "tiny", "--episodes", "3"]) == 0
    printed = capsys.readouterr().out
    assert "[1/10] collect: 3 more episodes" in printed and "[10/10] bench: finished" in printed
    spec = json.loads((out / "world" / "world.json").read_text())
    assert spec["source_env"] == "MountainCar-v0" and spec["action_meanings"] and spec["sampler"] == "consistency"
    report = json.loads((out / "eval" / "report.json").read_text())
    assert {"repeat last frame", "world 2-step", "world 1-step"} <= set(report["methods"])
    assert any(kind.startswith("colour ") for kind in report["content"]["real"])  # no kit: judged by its colours
    assert json.loads((out / "bench.json").read_text())["runs"]

    from worldgen.world import World

    world = World(out / "world")
    world.reset(world.source_frame(1_000_000)[None])
    assert world.step([0]).frames.shape == (1, 64, 64, 3)

    # Everything is done: a rerun skips every stage and trains nothing.
    before = sorted(p.name for p in (out / "runs" / "teacher" / "checkpoints").iterdir())
    assert main(["make-world", "--env", "MountainCar-v0", "--out", str(out), "--preset", "tiny", "--episodes", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": done") == 10
    assert sorted(p.name for p in (out / "runs" / "teacher" / "checkpoints").iterdir()) == before


def test_the_plan_sizes_every_stage_and_says_how_long(capsys, tmp_path):
    assert main(["make-world", "--env", "worldgen/Platformer-v0", "--out", str(tmp_path / "p"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "explore play" in printed and "estimated total" in printed and not (tmp_path / "p").exists()
    small = make_plan("worldgen/Platformer-v0", tmp_path, "small")
    assert 1.5 * 3600 < small.seconds < 3 * 3600  # the budget: three hours of CPU on this machine
    assert [name for name, _, _ in small.steps] == ["collect", "ae", "teacher", "scd", "teacher_own", "scd_own", "reward",
                                                    "pack", "eval", "bench"]
    assert make_plan("MountainCar-v0", tmp_path, "tiny").policy == "random"
    assert set(PRESETS) == {"tiny", "small", "base"}


def test_bad_requests_say_what_was_wrong(tmp_path):
    with pytest.raises(ValueError, match="unknown make-world preset 'huge'"):
        make_plan("MountainCar-v0", tmp_path, "huge")
    with pytest.raises(ValueError, match="no scripted player"):
        make_plan("MountainCar-v0", tmp_path, "tiny", policy="explore")
    with pytest.raises(ValueError, match="at least 2"):
        make_plan("MountainCar-v0", tmp_path, "tiny", episodes=1)
