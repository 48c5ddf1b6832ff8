import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs.platformer import ExplorerPolicy, detect_objects, visible_objects
from envs.platformer import palette as P
from worldgen.data.dataset import EpisodeDataset
from worldgen.eval import Method, Rollouts, evaluate, object_fidelity, open_loop
from worldgen.reference import held_out_seeds, record_references
from worldgen.report import format_table, write_report
from worldgen.frames import mse, psnr_from_mse, ssim
from worldgen.rollout import Sampler


def refs(n=2, steps=60):
    make = lambda: gym.make("worldgen/Platformer-v0")  # noqa: E731
    return record_references(make, ExplorerPolicy(seed=0), list(range(500, 500 + n)), steps, visible_objects)


def test_references_are_real_play_with_ground_truth():
    (ref,) = refs(1)
    assert ref.frames.shape[0] == len(ref.actions) + 1 == ref.player.shape[0] == len(ref.rewards) + 1
    env = gym.make("worldgen/Platformer-v0")
    obs, _ = env.reset(seed=ref.seed)
    assert np.array_equal(obs, ref.frames[0])
    for t, a in enumerate(ref.actions[:20]):
        obs, reward, *_ = env.step(a)
        assert np.array_equal(obs, ref.frames[t + 1]) and reward == ref.rewards[t]


def test_object_fidelity_is_perfect_on_the_real_frames_and_zero_on_empty_ones():
    refs_ = refs(2, 120)
    baseline = open_loop(Method("repeat", None), refs_, _CopyCodec(), 4, 32, starts=3)
    r = Rollouts(baseline.real, baseline.real, baseline.player, baseline.objects, baseline.prompt_ids)
    perfect = object_fidelity(r, detect_objects, 32)
    assert perfect["player_error_px"] < 1.0 and perfect["player_found"] == 1.0 and perfect["invented_per_frame"] == 0
    assert perfect["coins_counted"] > 0 and perfect["coins_kept"] == 1.0
    assert 0 < perfect["coins_counted_prompt"] < perfect["coins_counted"]  # some coins scrolled into view later
    assert perfect["coins_kept_prompt"] == 1.0
    sky = np.broadcast_to(np.array(P.SKY, dtype=np.uint8), r.real.shape).copy()
    empty = object_fidelity(Rollouts(sky, r.real, r.player, r.objects, r.prompt_ids), detect_objects, 32)
    assert empty["player_found"] == 0.0 and empty["player_error_px"] == 16.0
    assert empty["coins_kept"] == 0.0 and empty["coins_kept_prompt"] == 0.0
    stale = object_fidelity(baseline, detect_objects, 32)  # the prompt's last frame, 25-32 frames late
    assert stale["coins_kept_prompt"] < 1.0


def test_objects_are_tracked_by_their_level_index():
    (ref,) = refs(1, 120)
    for objects, frame in zip(ref.objects, ref.frames):
        coins = detect_objects(frame)["coins"]
        for x, y in coins:  # every coin the detector finds is one the game says is on screen
            assert min(np.hypot(x - cx, y - cy) for cx, cy in objects["coins"].values()) <= 2.0
    seen = [set(o["coins"]) for o in ref.objects]
    assert any(a & b for a, b in zip(seen, seen[1:]))  # the same coin keeps its id from frame to frame


class _CopyCodec:
    """Latents are the frames themselves, so a method's quality is the dynamics alone."""

    device = torch.device("cpu")

    def encode(self, frames):
        return torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2) / 255.0

    def decode(self, latents):
        return (latents.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class _ZeroNet(torch.nn.Module):
    """F = 0: the consistency sampler then returns cos(t_max) times the noise, a near-black frame."""

    def forward(self, x, t, context, actions, level):
        return torch.zeros_like(x)


class _ZeroHead(torch.nn.Module):
    def pay(self, regressed):
        return regressed  # as regressed: the tests read the head's own output

    def forward(self, context, actions, next_latent):
        return torch.zeros(len(context)), torch.full((len(context),), 5.0)  # always "terminated"


def test_evaluate_scores_every_method_against_the_same_reality(tmp_path):
    rs = refs(2, 60)
    methods = [Method("repeat", None), Method("zero", _ZeroNet(), Sampler("consistency", 1, 0.0))]
    report = evaluate(methods, rs, _CopyCodec(), k=4, horizons=[1, 8], detect=detect_objects,
                      num_actions=6, controllability_at=(2, 4), object_horizon=8, reward_head=_ZeroHead())
    rows = report["methods"]
    last = np.stack([r.frames[t - 1] for r in rs for t in range(4, len(r.frames), 4)])
    target = np.stack([r.frames[t] for r in rs for t in range(4, len(r.frames), 4)])
    assert abs(rows["repeat"]["next_psnr"] - float(psnr_from_mse(mse(last, target).mean()))) < 1e-9
    assert abs(rows["repeat"]["next_ssim"] - float(ssim(last, target).mean())) < 1e-9
    assert rows["repeat"]["next_psnr"] > rows["zero"]["next_psnr"] + 10
    assert len(rows["zero"]["psnr_curve"]) == 8 and set(rows["zero"]["open_loop_psnr"]) == {1, 8}
    assert rows["zero"]["player_found"] == 0.0
    assert rows["zero"]["delta_psnr"][4] == 0.0, "a model that ignores actions has no controllability"
    assert rows["zero"]["termination_recall"] == 1.0 or not any(r.terminated.any() for r in rs)
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["methods"]["zero"]["next_psnr"] < 20
    assert (tmp_path / "psnr_vs_horizon.png").stat().st_size > 0 and (tmp_path / "real_vs_generated.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["psnr_vs_horizon.png", "real_vs_generated.png", "report.json"], "no temp files left"
    assert "| zero |" in format_table(report)


def test_held_out_seeds_skip_training_levels():
    assert held_out_seeds(3, {1_000_000, 1_000_002}) == [1_000_001, 1_000_003, 1_000_004]


def test_ssim_of_flat_frames_matches_the_formula():
    a = np.full((1, 32, 32, 3), 100, np.uint8)
    b = np.full((1, 32, 32, 3), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)
    assert abs(float(ssim(a, b)[0]) - expected) < 1e-9 and float(ssim(a, a)[0]) == 1.0


def test_cli_pack_and_eval_write_a_report(trained_tiny_world, tiny_world_runs, tiny_dataset, tmp_path, capsys):
    from worldgen.cli import main
    from worldgen.world import read_spec

    world = tmp_path / "world"
    assert main(["pack", "--runs", str(tiny_world_runs), "--dynamics", "world_scd", "--reward", "world_reward",
                 "--data", str(tiny_dataset), "--out", str(world), "--name", "tiny"]) == 0
    spec = read_spec(world)
    assert spec.source_env == "envs:worldgen/Platformer-v0" and spec.sampler == "consistency" and spec.default_steps == 2
    assert set(spec.training_seeds) == EpisodeDataset(tiny_dataset).level_seeds() and (world / "teacher" / "config.json").exists()
    out = tmp_path / "eval"
    assert main(["eval", "--world", str(world), "--seeds", "1", "--horizons", "1,4", "--extra-steps", "8", "--out", str(out),
                 "--content-frames", "40", "--content-streams", "2", "--teacher-steps", "4"]) == 0
    report = json.loads((out / "report.json").read_text())
    names = {"world 2-step", "world 1-step", "teacher 1-step mean", "teacher 4 steps"}
    assert {"repeat last frame", *names} == set(report["methods"])
    assert report["seeds"][0] >= 1_000_000 and report["seeds"][0] not in spec.training_seeds and "psnr" in report["autoencoder"]
    assert set(report["autoencoder"]["colour_recall"]) >= {"sky", "dirt", "dirt_dark", "platform", "coins"}
    # The content section: every method with a network, the Platformer's kinds, bins up to 40 frames.
    content = report["content"]
    assert set(content["methods"]) == names and content["bins"] == [[1, 32], [33, 40]] and content["streams"] == 2
    assert set(content["methods"]["world 2-step"]["ratio"]) == {"coins", "enemies", "flags", "platform_px", "gap_columns", "texture_px"}
    assert (out / "content_strip.png").exists() and (out / "content_vs_horizon.png").exists()
    printed = capsys.readouterr().out
    assert "| world 2-step |" in printed and "| world 2-step | unsupported |" in printed and "dirt_dark" in printed
    # Real episodes' endings on further unseen levels, replayed by every method with a network.
    endings = report["endings"]["methods"]
    assert set(endings) == names and {"-1", "+10"} <= set(endings["world 2-step"])
    assert "episode endings of real play on unseen levels" in printed and (out / "endings_strip.png").exists()
    lean = tmp_path / "lean"
    assert main(["eval", "--world", str(world), "--no-teacher", "--seeds", "1", "--horizons", "1,4", "--extra-steps", "8", "--out", str(lean),
                 "--content-frames", "0"]) == 0
    report = json.loads((lean / "report.json").read_text())
    assert {"repeat last frame", "world 2-step", "world 1-step"} == set(report["methods"]) and "content" not in report
    only = tmp_path / "only"
    assert main(["eval", "--world", str(world), "--no-teacher", "--seeds", "1", "--out", str(only), "--content-only",
                 "--content-frames", "40", "--content-streams", "2"]) == 0
    again = json.loads((only / "report.json").read_text())
    assert again["methods"] == {} and set(again["content"]["methods"]) == {"world 2-step", "world 1-step"}
    assert not (only / "psnr_vs_horizon.png").exists()
    # The same --seeds give the same streams as the full run: the same real rates.
    assert again["content"]["real"] == content["real"]


def test_event_scores_count_hits_and_say_nan_when_there_is_nothing_to_score():
    from worldgen.metrics import event_scores

    truth_r = np.array([0.0, 1.0, -1.0, 0.0, 10.0])
    truth_t = np.array([False, False, True, False, True])
    perfect = event_scores(truth_r, truth_r, truth_t, truth_t)
    assert perfect["reward_precision"] == perfect["reward_recall"] == 1.0 and perfect["termination_recall"] == 1.0
    assert perfect["reward_events"] == 3 and perfect["terminations"] == 2
    wrong_sign = event_scores(-truth_r, truth_r, truth_t, truth_t)
    assert wrong_sign["reward_precision"] == wrong_sign["reward_recall"] == 0.0
    quiet = event_scores(np.zeros(5), np.zeros(5), np.zeros(5, bool), np.zeros(5, bool))
    assert all(np.isnan(quiet[k]) for k in ("reward_precision", "reward_recall", "termination_precision", "termination_recall"))


def test_events_match_within_the_tolerance_and_count_in_their_bin():
    from worldgen.metrics import event_scores, event_scores_by_bin

    truth = np.zeros((2, 10))
    truth[0, 3], truth[1, 7] = 1.0, -1.0
    late = np.roll(truth, 1, axis=1)  # every event a step late; the second crosses into bin 2
    none = np.zeros((2, 10), bool)
    assert event_scores(late, truth, none, none)["reward_recall"] == 0.0
    assert event_scores(late, truth, none, none, tolerance=1)["reward_recall"] == 1.0
    assert event_scores(-late, truth, none, none, tolerance=1)["reward_recall"] == 0.0  # the sign must agree
    first, second = event_scores_by_bin(late, truth, none, none, [(1, 8), (9, 10)], tolerance=1)
    assert (first["reward_events"], second["reward_events"]) == (2, 0)
    assert (first["predicted_reward_events"], second["predicted_reward_events"]) == (1, 1)
    assert first["reward_precision"] == first["reward_recall"] == second["reward_precision"] == 1.0
    assert np.isnan(second["reward_recall"])
    twice = truth + np.roll(truth, 1, axis=1)  # every event paid on two steps in a row
    doubled = event_scores(twice, truth, none, none, tolerance=1)
    assert doubled["reward_recall"] == 1.0 and doubled["reward_precision"] == 0.5, "one event matches one payment"


def test_labelled_grid_names_its_rows_and_columns():
    from worldgen.frames import labelled_grid

    row = np.full((8, 16, 3), 200, np.uint8)
    picture = labelled_grid([("real game", row), ("world 2-step", row)], ["frame 1", "frame 8"], scale=2)
    h, w = 2 * 8 * 2, 16 * 2
    assert picture.shape[0] > h and picture.shape[1] > w
    assert (picture[-h:, -w:] == 200).all(), "the frames, enlarged, fill the bottom right"
    assert (picture[:, :-w] < 100).any() and (picture[:-h] < 100).any(), "dark label text on the left and above"


def test_autoencoder_report_says_nan_for_a_kind_the_frames_never_show():
    from worldgen.codec import LatentCodec
    from worldgen.eval import autoencoder_report

    class Identity(torch.nn.Module):
        def encode(self, x):
            return x

        def decode(self, z):
            return z

    coins_only = lambda frame: {"coins": np.array([[10.0, 10.0]]), "enemies": np.zeros((0, 2))}  # noqa: E731
    report = autoencoder_report(LatentCodec(Identity(), torch.device("cpu")), refs(1, 8), coins_only)
    assert report["coins_kept"] == 1.0 and np.isnan(report["enemies_kept"])


def test_eval_methods_name_their_steps_noise_and_second_step_time(trained_tiny_world, tmp_path, monkeypatch, capsys):
    from worldgen import report as report_module
    from worldgen.cli import main

    used = {}
    monkeypatch.setattr(report_module, "evaluate_world", lambda world, methods, out, *a, **k: used.update(
        {m.name: m.sampler for m in methods}) or {"methods": {}, "horizons": [], "autoencoder": {"psnr": 0.0, "colour_recall": {}}})
    dynamics = trained_tiny_world / "dynamics"
    args = ["eval", "--world", str(trained_tiny_world), "--no-teacher", "--content-only", "--out", str(tmp_path / "e")]
    assert main([*args, "--mid-time", "1.3", "--method", f"later={dynamics}:1@0.2~1.45", "--method", f"plain={dynamics}"]) == 0
    assert used["later"] == Sampler("consistency", 1, 0.2, 1.45)
    assert used["plain"].mid_time == 1.3 == used["world 2-step"].mid_time and used["plain"].steps == 2
    assert main([*args, "--method", f"bad={dynamics}:2~soon"]) == 2
    assert "NAME=EXPORT[:STEPS][@NOISE][~MID]" in capsys.readouterr().err
    assert main([*args, "--mid-time", "1.6"]) == 2
    assert "second step's time must lie in" in capsys.readouterr().err


def test_tune_tries_each_second_step_time_on_validation_levels_and_writes_the_best(tiny_world, tmp_path, capsys):
    import shutil

    from worldgen.cli import main
    from worldgen.world import read_spec

    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)
    args = ["tune", "--world", str(world), "--times", "1.1,1.45", "--streams", "2", "--frames", "40", "--threads", "1"]
    assert main([*args, "--json", str(tmp_path / "tune.json")]) == 0
    result = json.loads((tmp_path / "tune.json").read_text())
    assert [row["mid_time"] for row in result["candidates"]] == [1.1, 1.45] and result["first_seed"] >= 2_000_000
    assert result["mid_time"] == min(result["candidates"], key=lambda row: row["deviation"])["mid_time"]
    assert "| second step at t | deviation |" in capsys.readouterr().out
    assert read_spec(world).mid_time == 1.1  # only --write changes the world
    assert main([*args, "--write"]) == 0
    assert read_spec(world).mid_time == result["mid_time"]  # the same validation levels, the same choice
    assert main([*args[:-6], "--times", "1.1,two"]) == 2
    assert "expected numbers separated by commas" in capsys.readouterr().err


class _KeyNet(torch.nn.Module):
    """F grows with the last key pressed, so a frame's brightness says which key drew it."""

    def forward(self, x, t, context, actions, level):
        return torch.zeros_like(x) - actions[:, -1].float().view(-1, 1, 1, 1) / 5


def test_controllability_pools_the_draws_of_random_keys_from_the_key_pool():
    rs, codec, k, horizon = refs(2, 40), _CopyCodec(), 4, 4
    method = Method("keys", _KeyNet(), Sampler("consistency", 1, 0.0))

    def delta(draws, pool=None):
        report = evaluate([method], rs, codec, k=k, horizons=[1], num_actions=6, controllability_at=(horizon,),
                          key_draws=draws, key_pool=pool)
        assert report["key_draws"] == draws and report["key_pool"] == pool
        return report["methods"]["keys"]["delta_psnr"][horizon]

    def pooled(draws):
        errors = [[mse(r.generated, r.real)[:, horizon - 1] for r in (
            open_loop(method, rs, codec, k, horizon, seed=d, random_actions=random_keys, num_actions=6) for d in range(draws))]
            for random_keys in (False, True)]
        true, rand = (psnr_from_mse(torch.cat(e).mean()) for e in errors)
        return float(true - rand)

    one, three = delta(1), delta(3)
    assert one > 0, "random keys draw other frames than the true ones"
    assert abs(one - pooled(1)) < 1e-5 and abs(three - pooled(3)) < 1e-5
    assert one != three, "each draw has its own keys and noise"
    with pytest.raises(ValueError, match="key_draws must be at least 1, got 0"):
        delta(0)
    assert delta(1, list(range(6))) == one, "a pool of every action once is the default draw"
    assert delta(1, [0]) != one, "random keys come from the pool"
    with pytest.raises(ValueError, match=r"key_pool must list actions 0..5, got \[6\]"):
        delta(1, [6])
