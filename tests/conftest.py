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


@pytest.fixture(scope="session")
def tiny_world(tiny_world_runs, tiny_dataset):
    """A packed world folder from the tiny runs: autoencoder, a 2-step sCD model, a reward head."""
    from worldgen.cli import main
    from worldgen.world import WorldSpec, pack_world

    common = ["--data", str(tiny_dataset), "--set", "run.val_fraction=0.3", "--set", "run.image_every=0"]
    assert main(["train", "scm", "--mode", "scd", "--out", str(tiny_world_runs / "world_scd"), "--steps", "2",
                 "--teacher", str(tiny_world_runs / "teacher" / "export"), "--set", f"ae={tiny_world_runs / 'ae' / 'export'}", *common]) == 0
    assert main(["train", "reward", "--out", str(tiny_world_runs / "world_reward"), "--steps", "3", "--preset", "tiny",
                 "--set", f"ae={tiny_world_runs / 'ae' / 'export'}", *common]) == 0
    spec = WorldSpec(
        name="tiny", source_env="envs:worldgen/Platformer-v0",
        action_meanings=["NOOP", "LEFT", "RIGHT", "JUMP", "LEFT_JUMP", "RIGHT_JUMP"],
        context=4, frame_size=64, sampler="consistency", default_steps=2, context_noise=0.05,
    )
    return pack_world(tiny_world_runs / "tiny_world", spec, tiny_world_runs / "ae" / "export",
                      tiny_world_runs / "world_scd" / "export", tiny_world_runs / "world_reward" / "export")
