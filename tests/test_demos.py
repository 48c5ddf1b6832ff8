import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_platformer_strip_demo_writes_a_picture(tmp_path):
    out = tmp_path / "strip.png"
    subprocess.run(
        [sys.executable, str(ROOT / "demos/platformer_strip.py"), "--out", str(out), "--frames", "3", "--every", "4", "--size", "64"],
        check=True,
        cwd=ROOT,
    )
    strip = np.asarray(Image.open(out))
    assert strip.shape == (64, 3 * 64 + 2 * 2, 3)


def test_world_from_image_demo(tiny_world, tmp_path):
    out = tmp_path / "w.gif"
    subprocess.run(
        [sys.executable, str(ROOT / "demos/world_from_image.py"), "--image", str(ROOT / "docs/platformer.png"),
         "--out", str(out), "--world", str(tiny_world), "--frames", "4"],
        check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.stat().st_size > 0


def test_train_agent_in_world_demo(tiny_world):
    result = subprocess.run(
        [sys.executable, str(ROOT / "demos/train_agent_in_world.py"), "--world", str(tiny_world), "--timesteps", "64",
         "--num-envs", "2", "--n-steps", "32", "--eval-episodes", "1"],
        check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
    )
    assert "real-game return of the agent" in result.stdout


def test_compare_strip_demo(tiny_world, tmp_path):
    out, gif = tmp_path / "cmp.png", tmp_path / "cmp.gif"
    subprocess.run(
        [sys.executable, str(ROOT / "demos/compare_strip.py"), "--world", str(tiny_world), "--out", str(out),
         "--gif", str(gif), "--frames", "25"],
        check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert np.asarray(Image.open(out)).shape == (2 * 64 * 3, 7 * 64 * 3, 3)
    with Image.open(gif) as animation:
        assert animation.n_frames == 25
        assert animation.size == ((2 * 64 + 2) * 3, 64 * 3)
    random_play = subprocess.run(
        [sys.executable, str(ROOT / "demos/compare_strip.py"), "--world", str(tiny_world), "--out", str(tmp_path / "r.png"),
         "--policy", "random"],  # the same level: only the player differs
        check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
    )
    assert "wrote" in random_play.stdout and not np.array_equal(np.asarray(Image.open(tmp_path / "r.png")), np.asarray(Image.open(out)))


def test_play_platformer_demo_starts_and_plays(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "demos/play_platformer.py"), "--frames", "5", "--seed", "2"],
        check=True, cwd=ROOT, env={**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"},
        capture_output=True, text=True,
    )
    assert "played 5 frames" in result.stdout


def test_preview_actions_demo_draws_a_row_per_action(tiny_world, tmp_path):
    out = tmp_path / "preview.png"
    subprocess.run(
        [sys.executable, str(ROOT / "demos/preview_actions.py"), "--world", str(tiny_world), "--out", str(out), "--warmup", "2"],
        check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    from worldgen.viewer import PREVIEW_SHOWN
    from worldgen.world import read_spec

    height, width, _ = np.asarray(Image.open(out)).shape
    actions = len(read_spec(tiny_world).action_meanings)
    assert height > actions * 64 * 2 and width > (PREVIEW_SHOWN + 2) * 64 * 2  # every action: now, the frames shown, its own effect


def test_hold_key_demo_counts_sprites_in_the_world_and_the_real_game(tiny_world):
    from worldgen.world import World

    key = World(tiny_world).action_meanings[1]
    command = [sys.executable, str(ROOT / "demos/hold_key.py"), "--world", str(tiny_world), "--seeds", "1", "--steps", "3",
               "--starts", "3,6"]
    result = subprocess.run([*command, "--key", key], check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True)
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith(f"| {key} |")]
    player = [row for row in rows if row[1].strip() == "player"]
    assert player and player[0][3].strip() == "100%", result.stdout
    assert player[0][5].strip().endswith("(2)"), result.stdout  # the real player, drawn once at both prompts, moved
    wrong = subprocess.run([*command, "--key", "FLY"], cwd=ROOT, capture_output=True, text=True)
    assert wrong.returncode != 0 and "unknown key ['FLY']; this world's actions are" in wrong.stderr
