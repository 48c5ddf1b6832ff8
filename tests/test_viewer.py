import json

import numpy as np
import pygame
import pytest
import torch

from worldgen import viewer as viewer_module
from worldgen.record import Clip, replay_clip
from worldgen.viewer import Viewer, action_for_keys, key_help
from worldgen.world import World

MEANINGS = ["NOOP", "LEFT", "RIGHT", "JUMP", "LEFT_JUMP", "RIGHT_JUMP"]


def test_keys_map_to_actions_by_name():
    assert action_for_keys(MEANINGS, set()) == 0
    assert action_for_keys(MEANINGS, {"K_RIGHT"}) == 2
    assert action_for_keys(MEANINGS, {"K_d", "K_SPACE"}) == 5
    assert action_for_keys(MEANINGS, {"K_LEFT", "K_w"}) == 4
    atari = ["NOOP", "FIRE", "RIGHT", "LEFT"]
    assert action_for_keys(atari, {"K_SPACE"}) == 1 and action_for_keys(atari, {"K_a"}) == 3
    boxing = ["NOOP", "FIRE", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "DOWNRIGHT", "DOWNLEFT", "UPFIRE",
              "RIGHTFIRE", "LEFTFIRE", "DOWNFIRE", "UPRIGHTFIRE", "UPLEFTFIRE", "DOWNRIGHTFIRE", "DOWNLEFTFIRE"]
    assert action_for_keys(boxing, {"K_UP", "K_RIGHT"}) == 6 and action_for_keys(boxing, {"K_s", "K_a", "K_SPACE"}) == 17
    assert action_for_keys(boxing, {"K_DOWN"}) == 5 and action_for_keys(boxing, {"K_UP"}) == 2
    assert any(line.startswith("UPRIGHTFIRE") and "UP/W + RIGHT/D + SPACE" in line for line in key_help(boxing))
    assert any("RIGHT_JUMP" in line and "SPACE" in line for line in key_help(MEANINGS))


def test_digits_choose_actions_by_number_for_worlds_on_latent_actions():
    codes = [f"code {i}" for i in range(8)]
    assert action_for_keys(codes, {"K_3"}) == 2 and action_for_keys(codes, {"K_8", "K_RIGHT"}) == 7
    assert action_for_keys(codes, {"K_9"}) == 0  # no ninth code: nothing chosen
    assert action_for_keys(MEANINGS, {"K_2", "K_RIGHT"}) == 1  # a digit wins over the arrows
    assert [line.split()[-1] for line in key_help(codes)[:8]] == [str(i) for i in range(1, 9)]


def test_preview_shows_each_action_from_the_current_frame_and_leaves_the_world_as_it_was(tiny_world):
    from worldgen.viewer import PREVIEW_SHOWN, PREVIEW_STEPS, action_previews, preview_picture, shown_steps

    world = World(tiny_world)
    frame = world.reset(3, seed=1)[0]
    world.step([2])
    before = world.get_state()
    strips = action_previews(world, steps=3)
    assert strips.shape == (6, 3, 64, 64, 3)
    after = world.get_state()
    assert torch.equal(before.context, after.context) and np.array_equal(before.steps, after.steps)
    nxt = world.step([4]).frames[0]
    assert np.array_equal(nxt, strips[4, 0])  # the preview of action 4 is what action 4 then draws
    picture = preview_picture(world, strips, frame)
    assert picture.shape[0] > 6 * 64 * 2 and picture.shape[1] > 5 * 64 * 2  # a labelled row per action: now, 3 frames, its own effect
    # A long strip is shown by PREVIEW_SHOWN of its frames, evenly spaced, ending on its last.
    assert shown_steps(18, 6).tolist() == [2, 5, 8, 11, 14, 17] and shown_steps(3, 6).tolist() == [0, 1, 2]
    assert shown_steps(7, 6).tolist() == [0, 1, 3, 4, 5, 6]
    long = np.zeros((6, PREVIEW_STEPS, 64, 64, 3), np.uint8)
    assert preview_picture(world, long, frame).shape == preview_picture(world, long[:, :PREVIEW_SHOWN], frame).shape


def test_the_preview_marks_what_only_one_key_draws():
    from worldgen.viewer import own_effect

    strips = np.full((4, 3, 16, 16, 3), 100, np.uint8)
    strips[2, -1, 5:7, 9:11] = 200  # only action 2 moves something, by a few pixels
    strips[:, -1, 0, 0] = 0  # all actions agree on this change: nobody's own
    marks = (own_effect(strips) == (255, 0, 255)).all(axis=-1)
    assert marks[2].sum() == 4 and marks[2, 5:7, 9:11].all()
    assert not marks[[0, 1, 3]].any()


def test_v_opens_the_preview_and_holds_the_world_still(tiny_world, monkeypatch):
    monkeypatch.setattr(viewer_module, "held_keys", lambda pg: {"K_RIGHT"})
    shown = []
    real_draw = Viewer._draw

    def draw(self, *args):
        shown.append(args[-1] is not None)
        real_draw(self, *args)

    monkeypatch.setattr(Viewer, "_draw", draw)
    script = lambda frame: [key(pygame.K_v)] if frame in (3, 6) else []  # noqa: E731
    stats = Viewer(World(tiny_world), seed=3, fps=30).run(max_frames=9, script=script)
    assert shown == [False] * 3 + [True] * 3 + [False] * 3
    assert len(stats.model_ms) == 6  # no step while the preview is open


@pytest.fixture
def drawn(monkeypatch):
    """Every text the viewer renders, in order."""
    texts = []
    real_render = pygame.font.Font.render

    class Font(pygame.font.Font):
        def render(self, text, *args):
            texts.append(text)
            return real_render(self, text, *args)

    monkeypatch.setattr(pygame.font, "Font", Font)
    return texts


def key(k, down=True):
    return pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=k)


def test_viewer_plays_scripted_keys_and_records_a_replayable_clip(tiny_world, tmp_path, monkeypatch):
    written = {}
    real_write = viewer_module.write_video

    def capture(path, frames, fps, *args):
        written[path] = frames
        real_write(path, frames, fps, *args)

    monkeypatch.setattr(viewer_module, "write_video", capture)
    held = set()
    monkeypatch.setattr(viewer_module, "held_keys", lambda pg: set(held))

    def script(frame):
        if frame == 2:
            held.add("K_RIGHT")
            return [key(pygame.K_F5)]
        if frame == 5:
            return [key(pygame.K_TAB), key(pygame.K_F1)]
        if frame == 9:
            held.add("K_SPACE")
        if frame == 12:
            return [key(pygame.K_BACKSPACE)]
        if frame == 16:
            return [key(pygame.K_F5)]
        return []

    world = World(tiny_world)
    stats = Viewer(world, seed=3, clip_dir=tmp_path, fps=5).run(max_frames=20, script=script)  # Backspace: 5 frames
    assert stats.frames == 20 and len(stats.model_ms) > 0
    (path,) = stats.clips
    assert path.exists() and path.with_suffix(".json").exists()
    clip = Clip.load(path.with_suffix(".json"))
    assert isinstance(clip.sampling_steps, list) and set(clip.sampling_steps) == {1, 2}, "TAB switched steps mid-clip"
    assert 2 in clip.actions and 5 in clip.actions
    replayed = replay_clip(World(tiny_world), clip)
    assert np.array_equal(replayed, written[path]), "replay redraws the viewer's clip frame for frame"
    assert json.loads(path.with_suffix(".json").read_text())["format"] == "worldgen-clip"


def test_without_a_display_play_says_so_in_one_line(monkeypatch, capsys):
    from worldgen.cli import main

    for var in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    assert main(["play"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no display" in err[0] and "worldgen record" in err[0]


def test_viewer_compares_with_the_real_game(tiny_world):
    import gymnasium as gym

    world = World(tiny_world)
    v = Viewer(world, seed=1, compare_env=lambda: gym.make("worldgen/Platformer-v0"), fps=60)
    stats = v.run(max_frames=6, script=lambda f: [key(pygame.K_g)] if f == 4 else [])
    assert stats.frames == 6


def test_the_real_pane_says_when_its_episode_ends(tiny_world, drawn):
    import gymnasium as gym

    world = World(tiny_world)
    short = lambda: gym.make("worldgen/Platformer-v0", max_episode_steps=3)  # noqa: E731
    Viewer(world, seed=1, compare_env=short, fps=60).run(max_frames=2)
    assert "real game: episode over" not in drawn
    Viewer(world, seed=1, compare_env=short, fps=60).run(max_frames=6)
    assert "real game: episode over" in drawn and any("real game ended, R restarts" in t for t in drawn)


def test_an_agent_drives_until_m_hands_control_to_the_keyboard(tiny_world, drawn, monkeypatch):
    seen = []
    world = World(tiny_world)
    real_step = world.step
    monkeypatch.setattr(world, "step", lambda actions: seen.append(int(actions[0])) or real_step(actions))
    script = lambda f: [key(pygame.K_m)] if f in (3, 6) else []  # noqa: E731
    stats = Viewer(world, seed=1, fps=60, agent=lambda frame: 5).run(max_frames=9, script=script)
    assert seen == [5, 5, 5, 0, 0, 0, 5, 5, 5], "the agent, then the keyboard (nothing held: NOOP), then the agent"
    assert stats.agent_frames == 6
    assert "control: AGENT (M: take over)" in drawn and "control: YOU (M: hand to the agent)" in drawn


def test_play_refuses_an_agent_without_trust(capsys, tmp_path):
    from worldgen.cli import main

    agent = tmp_path / "a.zip"
    agent.write_bytes(b"PK")
    assert main(["play", "--agent", str(agent)]) == 2
    assert "--trust-agent" in capsys.readouterr().err
