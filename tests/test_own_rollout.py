"""Training on the world's own rollouts: the right frames start the rollout, real rows stay
real, the curriculum grows, and both dynamics stages train and resume with it."""

import pytest
import torch
from torch import nn

from models.export import load_weights
from worldgen import scm
from worldgen.cli import main
from worldgen.train.own_rollout import OwnRolloutConfig, OwnRollouts


class Echo(nn.Module):
    """A 'dynamics network' whose every sample is the last action it was given, as a constant
    latent: the rollout's frames then tell which actions conditioned them."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.cfg = type("Cfg", (), {"context": k})()
        self.seen: list[torch.Tensor] = []
        self.times: list[float] = []

    def forward(self, x, t, context, actions, level):  # (B, C, h, w), (B,), (B, K, C, h, w), (B, K), (B,)
        self.seen.append(context.clone())
        self.times.append(round(float(t[0]), 4))
        target = actions[:, -1].float().reshape(-1, 1, 1, 1).expand_as(x)
        # f(x, t) = cos t x - sin t sigma_d F(x / sigma_d) returns `target` exactly for this F.
        cos, sin = torch.cos(t).reshape(-1, 1, 1, 1), torch.sin(t).reshape(-1, 1, 1, 1)
        return (cos * x * 0.5 - target) / (sin * 0.5)


def window(b: int, k: int, u: int) -> dict[str, torch.Tensor]:
    """Context frame i holds the value 100 + i; action i is i (i = 0 .. K + U - 1)."""
    frames = torch.arange(k + u, dtype=torch.float32) + 100
    return {
        "context": frames.reshape(1, -1, 1, 1, 1).expand(b, k + u, 1, 2, 2).clone(),
        "actions": torch.arange(k + u).expand(b, k + u).clone(),
        "target": torch.zeros(b, 1, 2, 2),
    }


def test_own_rows_hold_the_worlds_rollout_from_the_right_real_frames():
    k, u, b = 4, 6, 4
    own = OwnRollouts(OwnRolloutConfig(share=0.5, unroll=u, unroll_start=2, curriculum_steps=8, context_noise=0.0), k,
                      "consistency")
    net = Echo(k)
    out, logs = own.apply(window(b, k, u), net, step=8, noise=torch.Generator().manual_seed(0))
    assert out["context"].shape == (b, k, 1, 2, 2) and out["actions"].tolist() == [[6, 7, 8, 9]] * b
    # Real rows: the last K real frames, untouched.
    assert out["context"][2:, :, 0, 0, 0].tolist() == [[106, 107, 108, 109]] * 2
    # Own rows: u = 6 frames drawn from real frames 0..3. Frame i (4..9) was drawn from the K
    # actions before it, the last being action i - 1, which Echo shows; the last K are 6..9.
    assert out["context"][:2, :, 0, 0, 0].tolist() == [[5.0, 6.0, 7.0, 8.0]] * 2
    assert net.seen[0][:, :, 0, 0, 0].tolist() == [[100, 101, 102, 103]] * 2
    assert logs["own_unroll"] == 6 and logs["own_drift"] > 0


def test_anywhere_puts_own_contexts_on_the_ending_rows_too():
    """Ending rows come last in a batch (`endings.share`); by default own contexts take the first rows."""
    k, u, b = 4, 2, 16
    batch = window(b, k, u)
    batch["target"] = torch.arange(b, dtype=torch.float32).reshape(b, 1, 1, 1).expand(b, 1, 2, 2).clone()  # row ids
    batch["actions"][:, -1] = torch.arange(b)  # the last action names its row too; the rollout ends on it
    for anywhere in (False, True):
        cfg = OwnRolloutConfig(share=0.5, unroll=u, context_noise=0.0, anywhere=anywhere)
        out, _ = OwnRollouts(cfg, k, "consistency").apply({key: v.clone() for key, v in batch.items()}, Echo(k), 0,
                                                           torch.Generator().manual_seed(1))
        rows = out["target"][:, 0, 0, 0].long()
        own = rows[out["context"][:, -1, 0, 0, 0] < 100]  # a drawn frame holds an action, not 100 + i
        # Every row keeps its own actions and target, own or real.
        assert out["actions"][:, -1].tolist() == rows.tolist() and sorted(rows.tolist()) == list(range(b))
        assert len(own) == b // 2
        if anywhere:
            assert (own >= b // 2).any() and (own < b // 2).any()
        else:
            assert own.tolist() == list(range(b // 2))


def test_curriculum_shortens_the_unroll_and_starts_nearer_the_target():
    k, u = 4, 6
    cfg = OwnRolloutConfig(share=1.0, unroll=u, unroll_start=2, curriculum_steps=8, context_noise=0.0)
    assert [cfg.length(s) for s in (0, 4, 8, 100)] == [2, 4, 6, 6]
    net = Echo(k)
    out, logs = OwnRollouts(cfg, k, "consistency").apply(window(2, k, u), net, 0, torch.Generator())
    # u = 2: the rollout starts from real frames 4..7 and draws frames 8 and 9.
    assert net.seen[0][0, :, 0, 0, 0].tolist() == [104, 105, 106, 107]
    assert out["context"][0, :, 0, 0, 0].tolist() == [106, 107, 7, 8] and logs["own_unroll"] == 2


def test_rollout_draws_with_the_play_time_second_step():
    """Contexts drift as the played world's do only if they are drawn as it draws them."""
    for mid in (1.1, 1.35):
        net = Echo(4)
        cfg = OwnRolloutConfig(share=1.0, unroll=1, sampler_steps=2, context_noise=0.0, mid_time=mid)
        OwnRollouts(cfg, 4, "consistency").apply(window(2, 4, 1), net, 0, torch.Generator())
        assert net.times == [round(scm.T_MAX, 4), mid]


def test_off_by_default_and_bad_settings_are_refused():
    batch = window(2, 4, 0)
    out, logs = OwnRollouts(OwnRolloutConfig(), 4, "ode").apply(batch, Echo(4), 0, torch.Generator())
    assert out["context"] is batch["context"] and logs == {}
    with pytest.raises(ValueError, match="own.share must be in"):
        OwnRolloutConfig(share=1.5).validate()
    with pytest.raises(ValueError, match="unroll_start"):
        OwnRolloutConfig(share=0.5, unroll=2, unroll_start=3).validate()
    with pytest.raises(ValueError, match="second step's time must lie in"):
        OwnRolloutConfig(share=0.5, mid_time=1.6).validate()


def test_teacher_fine_tunes_on_own_rollouts_and_resumes(tiny_world_runs, tiny_dataset):
    teacher = tiny_world_runs / "teacher" / "export"
    out = tiny_world_runs / "teacher_own"
    common = ["train", "teacher", "--data", str(tiny_dataset), "--out", str(out), "--set", f"ae={tiny_world_runs / 'ae' / 'export'}",
              "--set", f"init={teacher}", "--set", "own.share=0.5", "--set", "own.unroll=3", "--set", "own.sampler_steps=1",
              "--set", "run.val_fraction=0.3", "--set", "run.image_every=0", "--set", "run.log_every=1", "--set", "run.ckpt_every=2"]
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "3", "--resume"]) == 0
    _, config = load_weights(out / "export")
    assert config["kind"] == "teacher" and config["model"] == load_weights(teacher)[1]["model"]
    import json

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["own_unroll"] == 3 and r["own_drift"] > 0 for r in rows)


def test_scd_trains_on_its_own_rollouts(tiny_world_runs, tiny_dataset):
    out = tiny_world_runs / "scd_own"
    assert main(["train", "scm", "--mode", "scd", "--data", str(tiny_dataset), "--out", str(out), "--steps", "2",
                 "--set", "own.share=0.25", "--set", "own.unroll=2", "--set", "run.val_fraction=0.3",
                 "--set", "run.image_every=0", "--set", "run.log_every=1"]) == 0
    assert load_weights(out / "export")[1]["kind"] == "scd"


def test_init_must_be_a_teacher(trained_tiny_world, tiny_world_runs, tiny_dataset, capsys):
    assert main(["train", "teacher", "--data", str(tiny_dataset), "--out", str(tiny_world_runs / "bad"), "--steps", "1",
                 "--set", f"init={tiny_world_runs / 'world_scd' / 'export'}"]) == 2
    assert "is a 'scd' export; a teacher starts from a teacher" in capsys.readouterr().err
