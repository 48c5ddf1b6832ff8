"""Datasets from video alone (`worldgen data from-video`), and real-game clips to make them from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldgen.cli import main
from worldgen.data.dataset import EpisodeDataset
from worldgen.data.video import UNKNOWN_ACTION, VideoError, dataset_from_videos, read_clip, resample
from worldgen.record import write_video


def _moving_square(frames: int, h: int = 64, w: int = 64, colour=(200, 40, 40)) -> np.ndarray:
    out = np.full((frames, h, w, 3), 30, np.uint8)
    for t in range(frames):
        x = 4 + (2 * t) % (w - 12)
        out[t, h // 2 - 4 : h // 2 + 4, x : x + 8] = colour
    return out


def test_clips_become_episodes_with_unknown_actions(tmp_path):
    frames = _moving_square(40)
    write_video(tmp_path / "clips" / "a.mp4", frames, fps=15, scale=4)
    result = dataset_from_videos([tmp_path / "clips"], tmp_path / "data", progress=False)
    assert (result.episodes, result.frames, result.fps) == (1, 40, 15.0)
    data = EpisodeDataset(tmp_path / "data")
    assert not data.actions_known and data.action_meanings == []
    shard = data.shards[0]
    assert (shard.actions == UNKNOWN_ACTION).all() and shard.num_frames == 40
    assert np.abs(shard.frames().astype(int) - frames).mean() < 2  # whole-pixel enlargement comes back nearly exactly
    assert "unknown" in data.info().summary()
    again = dataset_from_videos([tmp_path / "clips" / "a.mp4"], tmp_path / "data", progress=False)
    assert again.episodes == 0 and len(again.skipped) == 1 and len(EpisodeDataset(tmp_path / "data")) == 1


def test_mixed_frame_rates_and_sizes_meet_at_the_slowest_rate(tmp_path):
    write_video(tmp_path / "fast.mp4", _moving_square(60), fps=30, scale=2)  # 128 x 128
    write_video(tmp_path / "wide.gif", _moving_square(20, 48, 80), fps=10, scale=1)  # not square, 100 ms frames
    result = dataset_from_videos([tmp_path / "fast.mp4", tmp_path / "wide.gif"], tmp_path / "data", size=32, progress=False)
    assert result.fps == 10.0
    data = EpisodeDataset(tmp_path / "data")
    assert data.frame_shape == (32, 32, 3)
    assert [s.num_frames for s in data.shards] == [20, 20]  # 60 frames at 30 fps last as long as 20 at 10 fps
    with pytest.raises(VideoError, match="invented frames"):
        dataset_from_videos([tmp_path / "fast.mp4"], tmp_path / "other", fps=60, progress=False)
    write_video(tmp_path / "more.mp4", _moving_square(30), fps=30)
    with pytest.raises(ValueError, match="holds clips at 10 fps; cannot add them at 15 fps"):
        dataset_from_videos([tmp_path / "more.mp4"], tmp_path / "data", size=32, fps=15, progress=False)


def test_resample_keeps_the_frame_on_screen_and_never_invents_one():
    frames = np.arange(10)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    assert resample(frames, 30, 15)[:, 0, 0, 0].tolist() == [0, 2, 4, 6, 8]
    assert resample(frames, 15, 14.93) is frames  # a gif's 67 ms frames are still 15 fps
    with pytest.raises(ValueError, match="inventing"):
        resample(frames, 15, 30)


def test_bad_clips_are_named_and_nothing_is_written(tmp_path, capsys):
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "good.mp4", _moving_square(10), fps=15)
    (tmp_path / "clips" / "broken.mp4").write_bytes(b"not a video at all")
    assert main(["data", "from-video", str(tmp_path / "clips"), "--out", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4: not a readable video" in err
    assert not list((tmp_path / "data").glob("ep-*.npz"))  # every clip is read before any episode is written
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(VideoError, match="expected one of"):
        dataset_from_videos([tmp_path / "notes.txt"], tmp_path / "data", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no clips in this folder"):
        dataset_from_videos([tmp_path / "empty"], tmp_path / "data", progress=False)
    write_video(tmp_path / "one.gif", _moving_square(1), fps=15)
    with pytest.raises(VideoError, match="at least 2"):
        read_clip(tmp_path / "one.gif")


def test_a_video_dataset_is_refused_by_the_stages_that_need_actions(tmp_path):
    from worldgen.train.latent_data import LatentData

    write_video(tmp_path / "a.mp4", _moving_square(20), fps=15)
    dataset_from_videos([tmp_path / "a.mp4"], tmp_path / "data", progress=False)
    with pytest.raises(ValueError, match="no actions .made from video.: learn them first with `worldgen train lam"):
        LatentData(tmp_path / "data", tmp_path / "no-ae", 4, 0.1, 8)


def test_record_a_real_game_to_clips_with_their_actions(tmp_path, capsys):
    out = tmp_path / "clips" / "plat.mp4"
    assert main(["record", "--env", "worldgen/Platformer-v0", "--policy", "kit", "--clips", "2", "--frames", "30",
                 "-o", str(out)]) == 0
    for i in range(2):
        video, sidecar = out.with_name(f"plat-{i:03d}.mp4"), json.loads(out.with_name(f"plat-{i:03d}.json").read_text())
        assert sidecar["format"] == "worldgen-game-clip" and sidecar["seed"] == i and sidecar["fps"] == 15
        assert len(read_clip(video).frames) == len(sidecar["actions"]) + 1 == 31
    assert main(["record", "--env", "worldgen/Platformer-v0", "--frames", "5", "-o", str(out.with_name("plat-000.mp4"))]) == 2
    assert "exists" in capsys.readouterr().err
