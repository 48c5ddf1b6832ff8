import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import envs  # noqa: E402,F401  (registers the built-in games)

import dataclasses  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from worldgen.world import WorldSpec  # noqa: E402

TINY_SPEC = WorldSpec(
    name="tiny", source_env="envs:worldgen/Platformer-v0",
    action_meanings=["NOOP", "LEFT", "RIGHT", "JUMP", "LEFT_JUMP", "RIGHT_JUMP"],
    context=4, frame_size=64, sampler="consistency", default_steps=2, context_noise=0.05,
)

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
def trained_tiny_world(tiny_world_runs, tiny_dataset):
    """A packed world folder from the tiny runs: autoencoder, a 2-step sCD model, a reward head."""
    from worldgen.cli import main
    from worldgen.world import pack_world

    common = ["--data", str(tiny_dataset), "--set", "run.val_fraction=0.3", "--set", "run.image_every=0"]
    assert main(["train", "scm", "--mode", "scd", "--out", str(tiny_world_runs / "world_scd"), "--steps", "2",
                 "--teacher", str(tiny_world_runs / "teacher" / "export"), "--set", f"ae={tiny_world_runs / 'ae' / 'export'}", *common]) == 0
    assert main(["train", "reward", "--out", str(tiny_world_runs / "world_reward"), "--steps", "3", "--preset", "tiny",
                 "--set", f"ae={tiny_world_runs / 'ae' / 'export'}", *common]) == 0
    return pack_world(tiny_world_runs / "tiny_world", TINY_SPEC, tiny_world_runs / "ae" / "export",
                      tiny_world_runs / "world_scd" / "export", tiny_world_runs / "world_reward" / "export")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A world folder of tiny networks with random weights (and a teacher): for the tests of the
    runtime, the envs, the viewer, clips and eval, where what a world draws is not the point."""
    from models.autoencoder import AUTOENCODER_PRESETS, Autoencoder
    from models.dynamics import DYNAMICS_PRESETS, DynamicsNet
    from models.reward import REWARD_PRESETS, RewardHead
    from worldgen.checkpoint import save_weights
    from worldgen.world import pack_world

    root = tmp_path_factory.mktemp("random_world")
    torch.manual_seed(0)
    ae_cfg = AUTOENCODER_PRESETS["tiny"]
    dyn_cfg = dataclasses.replace(DYNAMICS_PRESETS["tiny"], latent_channels=ae_cfg.latent_channels)
    reward_cfg = dataclasses.replace(REWARD_PRESETS["tiny"], latent_channels=ae_cfg.latent_channels)
    noise = {"play_context_noise": 0.05, "context_noise_max": 0.5}
    parts = {
        "ae": (Autoencoder(ae_cfg), {"kind": "autoencoder", "model": dataclasses.asdict(ae_cfg), "frame_size": 64}),
        "dynamics": (DynamicsNet(dyn_cfg), {"kind": "scd", "sampler": "consistency", "model": dataclasses.asdict(dyn_cfg), **noise}),
        "teacher": (DynamicsNet(dyn_cfg), {"kind": "teacher", "sampler": "ode", "model": dataclasses.asdict(dyn_cfg), **noise}),
        "reward": (RewardHead(reward_cfg), {"kind": "reward", "model": dataclasses.asdict(reward_cfg)}),
    }
    for name, (module, config) in parts.items():
        for param in module.parameters():  # every layer random, the zero-initialised ones too
            param.data.normal_(0, 0.05)
        save_weights(root / name, module.state_dict(), config)
    return pack_world(root / "world", TINY_SPEC, root / "ae", root / "dynamics", root / "reward", teacher=root / "teacher")
