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
