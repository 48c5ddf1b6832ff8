import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import envs  # noqa: E402,F401  (registers the built-in games)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tests are small; one thread avoids oversubscribing 2-core CI machines


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A few explorer episodes of the Platformer, shared by the training tests."""
    from envs.platformer import ExplorerPolicy
    from worldgen.data.collect import collect

    out = tmp_path_factory.mktemp("tiny") / "data"
    collect("worldgen/Platformer-v0", out, 6, ExplorerPolicy(seed=0), "explore", seed=11, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_world_runs(tiny_dataset, tmp_path_factory):
    """A tiny autoencoder and teacher trained for a few steps: real exports to build on."""
    from worldgen.cli import main

    root = tmp_path_factory.mktemp("runs")
    common = ["--data", str(tiny_dataset), "--preset", "tiny", "--set", "run.val_fraction=0.3", "--set", "run.log_every=5",
              "--set", "optim.warmup_steps=5"]
    assert main(["train", "ae", "--out", str(root / "ae"), "--steps", "30", *common]) == 0
    assert main(["train", "teacher", "--out", str(root / "teacher"), "--steps", "60", *common]) == 0
    return root
