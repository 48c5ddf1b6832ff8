import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models.export import load_export, load_weights
from worldgen.checkpoint import CheckpointError, list_states, load_state
from worldgen.cli import main
from worldgen.train.ae import AETrainConfig
from worldgen.train.config import apply_overrides, load_toml
from worldgen.train.loop import TrainingDiverged
from worldgen.train.stages import resolve_config, run_stage

ROOT = Path(__file__).resolve().parents[1]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_config_from_preset_toml_and_command_line(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "tiny"\nlatent_noise = 0.2\n[optim]\nlr = 5e-4\nbetas = [0.8, 0.9]\n[run]\nsteps = 7\n')
    cfg = resolve_config("ae", None, toml, ["run.steps=9", "model.latent_channels=6"])
    assert cfg.preset == "tiny" and cfg.model.encoder_channels == (8, 16, 16)
    assert cfg.optim.lr == 5e-4 and cfg.optim.betas == (0.8, 0.9) and cfg.latent_noise == 0.2
    assert cfg.run.steps == 9 and cfg.model.latent_channels == 6
    with pytest.raises(ValueError, match="unknown config key 'run.stepz'"):
        apply_overrides(AETrainConfig(), {"run.stepz": "1"})
    with pytest.raises(ValueError, match="bad value 'many' for 'run.steps'"):
        apply_overrides(AETrainConfig(), {"run.steps": "many"})
    toml.write_text("[run\nsteps = 1")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_toml(AETrainConfig(), toml)
    with pytest.raises(ValueError, match="unknown autoencoder preset 'huge'"):
        resolve_config("ae", "huge", None, [])


def test_dry_run_prints_the_resolved_config(capsys, tiny_dataset, tmp_path):
    assert main(["train", "ae", "--data", str(tiny_dataset), "--out", str(tmp_path / "x"), "--preset", "tiny", "--steps", "3", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run"]["steps"] == 3 and printed["preset"] == "tiny"
    assert not (tmp_path / "x").exists()


def test_autoencoder_loss_falls_and_export_has_unit_variance_latents(tiny_world_runs, tiny_dataset):
    rows = [m for m in metrics(tiny_world_runs / "ae") if "loss" in m]
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"]
    from worldgen.data.windows import WindowDataset
    from worldgen.frames import to_model
    ae = load_export(tiny_world_runs / "ae" / "export")[0]
    frames = torch.stack([WindowDataset(tiny_dataset, 0, "all")[i]["target"] for i in range(0, 600, 3)])
    with torch.no_grad():
        z = ae.encode(to_model(frames))
    assert z.shape == (200, 4, 16, 16)
    assert 0.7 < float(z.std()) < 1.3


def test_teacher_loss_falls_and_validation_is_logged(tiny_world_runs):
    losses = [m["loss"] for m in metrics(tiny_world_runs / "teacher") if "loss" in m]
    assert sum(losses[-3:]) < sum(losses[:3])
    val = [m for m in metrics(tiny_world_runs / "teacher") if "val/next_psnr/repeat_last" in m]
    assert val and "val/next_psnr/teacher_8" in val[-1] and "val/rollout_psnr_h8" in val[-1] and "val/rollout_dpsnr_h8" in val[-1]
    assert (tiny_world_runs / "teacher" / "tb").is_dir()


class _KeyNet(torch.nn.Module):
    """Moves every latent by the last action (or by nothing, blind to the keys)."""

    cfg = SimpleNamespace(num_actions=6)

    def __init__(self, sighted: bool) -> None:
        super().__init__()
        self.sighted = sighted

    def forward(self, x, t, context, actions, level):
        return context[:, -1] + self.sighted * 0.3 * actions[:, -1].float().view(-1, 1, 1, 1)


def test_validation_rollouts_tell_a_network_that_ignores_the_keys(tiny_world_runs, tiny_dataset):
    from worldgen.rollout import Sampler
    from worldgen.train.latent_data import LatentData

    data = LatentData(tiny_dataset, tiny_world_runs / "ae" / "export", context=4, val_fraction=0.2, val_windows=8)
    sampler = Sampler("consistency", 2, 0.05)
    blind = data.rollout_report(_KeyNet(False), sampler, None, 0, "val")
    sighted = data.rollout_report(_KeyNet(True), sampler, None, 0, "val")
    assert blind["rollout_dpsnr_h8"] == 0.0  # the same noise, other keys: the same frames
    assert sighted["rollout_dpsnr_h8"] != 0.0


def test_batches_oversample_the_ends_of_episodes_when_asked(tiny_world_runs, tiny_dataset):
    from worldgen.train.latent_data import EndingsConfig, LatentData

    def drawn(endings):
        data = LatentData(tiny_dataset, tiny_world_runs / "ae" / "export", 4, 0.2, 8, endings=endings)
        data.batch = lambda dataset, index: index  # the windows drawn, not their latents
        return data, data.sample(torch.Generator().manual_seed(0), 32)

    data, index = drawn(EndingsConfig(share=0.25, frames=8))
    ending = set(data.train.ending_windows(8).tolist())
    assert ending and set(index[-8:].tolist()) <= ending  # a quarter of the batch from the endings
    assert sum(int(i) in ending for i in index[:-8]) <= 4  # the rest as drawn uniformly (8 of ~5,000 windows end)
    assert torch.equal(drawn(None)[1], torch.randint(len(data.train), (32,), generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"endings.share must be in \[0, 1\)"):
        drawn(EndingsConfig(share=1.0))


@pytest.mark.parametrize("mode", ["scd", "sct"])
def test_consistency_stages_start_from_the_teacher(tiny_world_runs, tiny_dataset, mode):
    out = tiny_world_runs / mode
    noise = ["--set", "context_noise_max=0.25"] if mode == "sct" else []  # a setting of the user's is kept
    assert main(["train", "scm", "--mode", mode, "--data", str(tiny_dataset), "--out", str(out), "--steps", "4",
                 "--set", "run.val_fraction=0.3", "--set", "run.log_every=2", *noise]) == 0
    _, config = load_weights(out / "export")
    assert config["kind"] == mode and config["sampler"] == "consistency"
    teacher_noise = load_weights(tiny_world_runs / "teacher" / "export")[1]["context_noise_max"]
    assert config["context_noise_max"] == (0.25 if noise else teacher_noise) and teacher_noise != 0.25
    tensors, _ = load_state(list_states(out)[-1])
    teacher, _ = load_weights(tiny_world_runs / "teacher" / "export")
    assert "model.weight.linear.weight" in tensors, "the adaptive weight w(t) is trained too"
    # The student began at the teacher's EMA weights: after 4 small steps it is still close.
    diff = max(float((tensors[f"model.net.{k}"] - v).abs().max()) for k, v in teacher.items())
    assert diff < 0.05


def test_reward_head_trains(tiny_world_runs, tiny_dataset):
    out = tiny_world_runs / "reward"
    assert main(["train", "reward", "--data", str(tiny_dataset), "--out", str(out), "--preset", "tiny", "--steps", "40",
                 "--set", "run.val_fraction=0.3", "--set", "run.log_every=5", "--set", "optim.warmup_steps=5"]) == 0
    losses = [m["loss"] for m in metrics(out) if "loss" in m]
    assert sum(losses[-3:]) < sum(losses[:3])
    val = [m for m in metrics(out) if "val/termination_recall" in m]
    assert val


def test_reward_head_trains_on_the_worlds_own_frames_judged_by_the_rules(capsys, monkeypatch, trained_tiny_world,
                                                                          tiny_world_runs, tiny_dataset):
    import dataclasses

    import numpy as np

    from envs.platformer import frame_events
    from worldgen.codec import LatentCodec
    from worldgen.data.latents import encode_dataset
    from worldgen.data.windows import WindowDataset
    from worldgen.train.judged_rollouts import JudgedPool, JudgedRolloutConfig

    ae_folder, scd = tiny_world_runs / "ae" / "export", tiny_world_runs / "world_scd" / "export"
    cfg = JudgedRolloutConfig(share=0.5, world=str(scd), rollouts=4, frames=12, chunk=3)
    ae = load_export(ae_folder, "autoencoder")[0]
    windows = WindowDataset(tiny_dataset, 4, "train", 0.3, latents=encode_dataset(ae, ae_folder, tiny_dataset))
    codec = LatentCodec(ae, torch.device("cpu"))
    pool = JudgedPool(cfg, windows, codec, frame_events, torch.device("cpu"))
    assert pool.latents.shape[:2] == (4, 4 + 12) and pool.actions.shape == (4, 4 + 11)
    assert len(pool.val_index) == 12 and len(pool.train_index) == 36
    # The labels are the rules read from the decoded rollout, from the last real frame on.
    frames = codec.decode(pool.latents[1, 3:].float())
    rewards, ended = frame_events(frames)
    assert np.array_equal(pool.rewards[1].numpy(), rewards) and np.array_equal(pool.ended[1].numpy(), ended)
    batch = pool.batch(torch.tensor([1 * 12 + 5]), torch.device("cpu"))  # rollout 1, step 5
    assert torch.equal(batch["target"][0], pool.latents[1, 4 + 5].float())
    assert torch.equal(batch["context"][0], pool.latents[1, 5:9].float())
    assert batch["reward"][0] == pool.rewards[1, 5]
    # The same seed draws the same pool: a resumed run trains on the same frames.
    cache = tiny_world_runs / "judged_pool.safetensors"
    again = JudgedPool(cfg, windows, codec, frame_events, torch.device("cpu"), cache)
    assert torch.equal(again.latents, pool.latents) and cache.exists()
    # Drawn once: while its recipe holds, the pool is read back, not drawn again.
    monkeypatch.setattr(JudgedPool, "_draw", lambda *a: pytest.fail("drew a pool the cache holds"))
    cached = JudgedPool(dataclasses.replace(cfg, share=0.25), windows, codec, frame_events, torch.device("cpu"), cache)
    assert torch.equal(cached.latents, pool.latents) and torch.equal(cached.rewards, pool.rewards)

    def coin_every_step(frames):  # mended rules: the stored frames are judged again, not drawn again
        return np.ones(len(frames) - 1, np.float32), np.zeros(len(frames) - 1, bool)

    mended = JudgedPool(cfg, windows, codec, coin_every_step, torch.device("cpu"), cache)
    assert torch.equal(mended.latents, pool.latents) and bool((mended.rewards == 1).all())
    assert torch.equal(JudgedPool(cfg, windows, codec, frame_events, torch.device("cpu"), cache).rewards, pool.rewards)
    monkeypatch.undo()
    longer = JudgedPool(dataclasses.replace(cfg, frames=13), windows, codec, frame_events, torch.device("cpu"), cache)
    assert longer.latents.shape[1] == 4 + 13

    out = tiny_world_runs / "reward_judged"
    assert main(["train", "reward", "--data", str(tiny_dataset), "--out", str(out), "--preset", "tiny", "--steps", "4",
                 "--set", f"ae={ae_folder}", "--set", "run.val_fraction=0.3", "--set", "run.image_every=0",
                 "--set", "judged.share=0.5", "--set", f"judged.world={scd}", "--set", "judged.rollouts=4",
                 "--set", "judged.frames=12", "--set", "judged.chunk=4"]) == 0
    assert any("val/own_reward_events" in m for m in metrics(out))
    assert (out / "judged_pool.safetensors").exists()  # a resumed run reads its pool back
    capsys.readouterr()
    assert main(["train", "reward", "--data", str(tiny_dataset), "--out", str(tiny_world_runs / "reward_no_world"),
                 "--preset", "tiny", "--steps", "1", "--set", f"ae={ae_folder}", "--set", "judged.share=0.5"]) == 2
    assert "judged.world" in capsys.readouterr().err
    assert main(["train", "reward", "--data", str(tiny_dataset), "--out", str(tiny_world_runs / "reward_bad_weights"),
                 "--preset", "tiny", "--steps", "1", "--set", f"ae={ae_folder}", "--set", "event_reweight=2"]) == 2
    assert "event_reweight must be in [0, 1]" in capsys.readouterr().err


def _ae_run(data: Path, out: Path, steps: int, resume: bool = False, every: int = 3):
    cfg = resolve_config("ae", "tiny", None, [f"run.steps={steps}", f"run.ckpt_every={every}", "run.image_every=0",
                                               "run.val_fraction=0.3", "run.log_every=1", "val_frames=16"])
    return run_stage("ae", cfg, data, out, resume)


def test_resume_continues_exactly(tiny_dataset, tmp_path):
    _ae_run(tiny_dataset, tmp_path / "straight", 6)
    _ae_run(tiny_dataset, tmp_path / "split", 3)
    _ae_run(tiny_dataset, tmp_path / "split", 6, resume=True)
    a, _ = load_state(list_states(tmp_path / "straight")[-1])
    b, _ = load_state(list_states(tmp_path / "split")[-1])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    losses = [m["loss"] for m in metrics(tmp_path / "split") if "loss" in m]
    assert losses == [m["loss"] for m in metrics(tmp_path / "straight") if "loss" in m]


def test_time_budget_stops_with_a_checkpoint_and_resume_goes_on(tiny_dataset, tmp_path, monkeypatch):
    from worldgen.train import loop

    clock = iter(range(0, 10_000, 25))  # each reading of the clock is 25 s later
    monkeypatch.setattr(loop.time, "monotonic", lambda: float(next(clock)))
    cfg = resolve_config("ae", "tiny", None, ["run.steps=50", "run.ckpt_every=100", "run.image_every=0", "run.minutes=1",
                                              "run.val_fraction=0.3", "val_frames=16"])
    run_stage("ae", cfg, tiny_dataset, tmp_path / "r", False)
    assert [p.name for p in list_states(tmp_path / "r")] == ["step-00000003"]  # deadline 60 s, read at 25, 50, 75 s
    assert (tmp_path / "r" / "export" / "config.json").exists()
    monkeypatch.setattr(loop.time, "monotonic", lambda: 0.0)
    cfg.run.steps = 4
    run_stage("ae", cfg, tiny_dataset, tmp_path / "r", True)
    assert list_states(tmp_path / "r")[-1].name == "step-00000004"


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="has no checkpoint to resume"):
        _ae_run(tiny_dataset, tmp_path / "r", 3, resume=True)
    _ae_run(tiny_dataset, tmp_path / "r", 3)
    with pytest.raises(ValueError, match="already holds a run"):
        _ae_run(tiny_dataset, tmp_path / "r", 3)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    from worldgen.train import ae

    real_loss = ae.AEStage.loss

    def poisoned(self, train, batch, ctx):
        loss, logs = real_loss(self, train, batch, ctx)
        return (loss * float("nan") if ctx.step == 4 else loss), logs

    monkeypatch.setattr(ae.AEStage, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 4.*step-00000003"):
        _ae_run(tiny_dataset, tmp_path / "n", 8)
    assert [p.name for p in list_states(tmp_path / "n")] == ["step-00000003"]
    load_state(list_states(tmp_path / "n")[-1])


def test_checkpoints_are_safetensors_and_json(tiny_world_runs, tmp_path):
    export = tiny_world_runs / "ae" / "export"
    assert sorted(p.name for p in export.iterdir()) == ["config.json", "model.safetensors"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    (bad / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupted or not a safetensors file"):
        load_weights(bad)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_weights(tmp_path)


def test_two_processes_train_with_ddp_and_agree(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "worldgen.cli", "train", "ae", "--data", str(tiny_dataset), "--out", str(out), "--preset", "tiny",
           "--steps", "4", "--set", "run.ckpt_every=2", "--set", "run.image_every=0", "--set", "run.val_fraction=0.3",
           "--set", "val_frames=16", "--set", "run.minutes=60"]  # the ranks agree each step on the (unspent) budget
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    _, state = load_state(list_states(out)[-1])
    assert state["world_size"] == 2 and state["ranks_in_sync"] is True
    last = [m for m in metrics(out) if "samples" in m][-1]
    assert last["samples"] == last["step"] * 2 * 32  # two ranks, each its own batch of 32


def test_resuming_a_finished_run_exports_its_newest_checkpoint(tiny_dataset, tmp_path):
    import shutil

    from safetensors.torch import load_file

    _ae_run(tiny_dataset, tmp_path / "r", 3)
    early = load_file(tmp_path / "r" / "export" / "model.safetensors")
    _ae_run(tiny_dataset, tmp_path / "r", 6, resume=True)
    assert not all(torch.equal(early[k], v) for k, v in load_file(tmp_path / "r" / "export" / "model.safetensors").items())
    shutil.rmtree(list_states(tmp_path / "r")[-1])  # keep the earlier checkpoint only
    _ae_run(tiny_dataset, tmp_path / "r", 3, resume=True)  # nothing to train: the export is step 3's again
    again = load_file(tmp_path / "r" / "export" / "model.safetensors")
    assert all(torch.equal(early[k], v) for k, v in again.items())


def test_colour_rarity_weighs_rare_colours_up():
    from worldgen.train.ae import colour_rarity

    frames = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    frames[0, 0, 0] = torch.tensor([115, 70, 35])  # one pixel of a rare colour
    w = colour_rarity(frames, 1.0, 20.0)
    assert w.shape == (2, 8, 8) and float(w.mean()) == pytest.approx(1.0)
    assert float(w[0, 0, 0]) == pytest.approx(20.0 * float(w[0, 0, 1]))  # clipped at 20x
    assert torch.equal(colour_rarity(frames, 0.0, 20.0), torch.ones(2, 8, 8))


def test_decoder_fine_tune_keeps_the_latents(tiny_world_runs, tiny_dataset):
    base = tiny_world_runs / "ae" / "export"
    out = tiny_world_runs / "ae_decoder"
    assert main(["train", "ae", "--data", str(tiny_dataset), "--out", str(out), "--steps", "3", "--set", f"init={base}",
                 "--set", "train_encoder=false", "--set", "colour_weight=0.5", "--set", "run.val_fraction=0.3",
                 "--set", "run.image_every=0"]) == 0
    before, after = load_weights(base)[0], load_weights(out / "export")[0]
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder.") or k == "latent_scale")
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert load_export(out / "export")[0].cfg == load_export(base)[0].cfg


def test_both_dynamics_stages_share_one_config_base_and_scm_has_no_preset(capsys, tiny_dataset, tmp_path):
    from worldgen.train.stages import resolve_config
    from worldgen.train.teacher import DynamicsTrainConfig

    assert main(["train", "scm", "--data", str(tiny_dataset), "--out", str(tmp_path / "s"), "--preset", "tiny", "--dry-run"]) == 2
    assert "--preset belongs to ae, teacher and reward" in capsys.readouterr().err
    scm_cfg = resolve_config("scm", None, None, ["context_noise_max=0.3", "own.share=0.5"])
    teacher_cfg = resolve_config("teacher", "tiny", None, [])
    assert isinstance(scm_cfg, DynamicsTrainConfig) and isinstance(teacher_cfg, DynamicsTrainConfig)
    assert scm_cfg.context_noise_max == 0.3 and scm_cfg.own.share == 0.5 and not hasattr(scm_cfg, "model")
    assert teacher_cfg.own.sampler_steps == 8 and scm_cfg.own.sampler_steps == 2


def test_event_draws_oversample_events_and_their_neighbours_and_the_weights_undo_it():
    from worldgen.train.reward import EventDraws

    is_event = np.zeros(1000, dtype=bool)
    is_event[::50] = True  # 2% of the steps are events
    is_event[51] = True  # two events side by side: 51 is no one's non-event neighbour
    segment = np.arange(1000) // 100  # ten episodes: step 100's neighbour 99 lies in another
    draws = EventDraws(np.flatnonzero(is_event), segment, 0.25, 0.25)
    near = np.zeros(1000, dtype=bool)
    near[[i + d for i in np.flatnonzero(is_event) for d in (-1, 1) if 0 <= i + d < 1000 and (i + d) // 100 == i // 100]] = True
    near &= ~is_event
    assert near[1] and near[49] and not near[99] and not near[51] and near[52]
    index, weight = draws.draw(400_000, torch.Generator().manual_seed(0))
    drawn_event, drawn_near = torch.from_numpy(is_event)[index], torch.from_numpy(near)[index]
    assert 0.25 < drawn_event.float().mean() < 0.27 and 0.25 < drawn_near.float().mean() < 0.27  # oversampled
    for population in (is_event, near):  # weighted, the draws are the data again
        assert abs((weight * torch.from_numpy(population)[index]).sum() / weight.sum() - population.mean()) < 0.002
    assert abs(weight.mean() - 1) < 0.02
    same = EventDraws(np.flatnonzero(is_event), segment, 0.25, 0.0).draw(1000, torch.Generator().manual_seed(0))[1]
    assert not torch.equal(same, torch.ones(1000))
    nothing = EventDraws(np.array([], dtype=np.int64), segment, 0.25, 0.25).draw(1000, torch.Generator().manual_seed(0))
    assert torch.equal(nothing[1], torch.ones(1000))  # nothing to oversample: all steps, unweighted

