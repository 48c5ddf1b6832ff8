import json

import imageio.v3 as iio
import numpy as np
import pytest

from worldgen.cli import main
from worldgen.record import Clip, make_policy, record_clip, replay_clip, write_video
from worldgen.world import World


def test_record_and_replay_agree_frame_for_frame(tiny_world):
    world = World(tiny_world)
    clip = Clip(world=str(tiny_world), seed=4, sampling_steps=2, prompt=9)
    frames = record_clip(world, clip, 12, make_policy("random", 6, seed=0))
    assert frames.shape == (13, 64, 64, 3) and len(clip.actions) == 12
    assert np.array_equal(replay_clip(World(tiny_world), clip), frames)


def test_cli_record_writes_video_and_actions_and_replay_redraws_it(tiny_world, tmp_path):
    out = tmp_path / "clip.mp4"
    assert main(["record", "--world", str(tiny_world), "--frames", "8", "--seed", "2", "-o", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["world"] == str(tiny_world) and sidecar["seed"] == 2 and sidecar["sampling_steps"] == 2
    assert len(sidecar["actions"]) == 8
    assert iio.imread(out).shape == (9, 256, 256, 3)
    gif = tmp_path / "again.gif"
    assert main(["replay", str(out.with_suffix(".json")), "-o", str(gif)]) == 0
    assert iio.imread(gif).shape[0] == 9
    actions = tmp_path / "actions.json"
    actions.write_text(json.dumps([2, 2, 5]))
    assert main(["record", "--world", str(tiny_world), "--policy", str(actions), "--frames", "3", "-o", str(tmp_path / "b.gif")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["actions"] == [2, 2, 5]


def test_bad_clip_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="written as .mp4 or .gif"):
        write_video(tmp_path / "x.avi", np.zeros((2, 8, 8, 3), np.uint8), 30)
    (tmp_path / "c.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a worldgen clip"):
        Clip.load(tmp_path / "c.json")
    (tmp_path / "a.json").write_text("[1, 7]")
    with pytest.raises(ValueError, match=r"integers in \[0, 6\)"):
        make_policy(str(tmp_path / "a.json"), 6, 0)
