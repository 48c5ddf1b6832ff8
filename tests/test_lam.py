"""The latent action model: codes that carry the move, no dead codes, no peeking at true actions."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.export import load_export
from models.lam import LAM_PRESETS, LatentActionModel
from worldgen.cli import main
from worldgen.data.storage import Episode, Shard, write_shard
from worldgen.lam import action_outcomes, best_map, best_map_by_outcome, code_usage, confusion_matrix


def _toy_windows(n: int, k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent windows (n, K + 1, 4, 8, 8) of a bright dot that stays, steps left or steps right
    at the last step (the hidden action, 0 / 1 / 2); before that it drifts at random."""
    window = 0.05 * torch.randn(n, k + 1, 4, 8, 8, generator=generator)
    x = torch.randint(2, 6, (n,), generator=generator)
    y = torch.randint(0, 8, (n,), generator=generator)
    action = torch.randint(0, 3, (n,), generator=generator)
    for t in range(k + 1):
        step = torch.tensor([0, -1, 1])[action] if t == k else torch.zeros(n, dtype=torch.long)
        window[torch.arange(n), t, 0, y, x + step] += 3.0
    return window, action


def test_codes_learn_a_hidden_move_that_the_past_cannot_tell():
    torch.manual_seed(0)
    cfg = LAM_PRESETS["tiny"]
    cfg.latent_channels, cfg.latent_size, cfg.codes = 4, 8, 4
    lam = LatentActionModel(cfg)
    opt = torch.optim.Adam(lam.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(300):
        window, _ = _toy_windows(64, cfg.context, g)
        z = lam.encode(window)
        codes, q, vq = lam.quantise(z)
        loss = F.mse_loss(lam.decode(window[:, :-1], q), window[:, -1]) + vq
        opt.zero_grad()
        loss.backward()
        opt.step()
        lam.track_usage(codes, 0.9)
        if step % 20 == 19 and step < 240:
            lam.restart_dead_codes(z.detach(), g)
    window, action = _toy_windows(512, cfg.context, torch.Generator().manual_seed(1))
    codes = lam.infer(window)
    _, accuracy = best_map(confusion_matrix(codes.numpy(), action.numpy(), cfg.codes, 3))
    assert accuracy > 0.9
    with torch.no_grad():
        own = F.mse_loss(lam.decode(window[:, :-1], lam.code_vectors(codes)), window[:, -1])
        other = F.mse_loss(lam.decode(window[:, :-1], lam.code_vectors(codes.roll(1))), window[:, -1])
    assert other > 1.5 * own  # the decoder draws the move from the code, not from the past


def test_confusion_best_map_and_usage():
    codes = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    actions = np.array([0, 0, 1, 1, 0, 1, 1, 1])
    conf = confusion_matrix(codes, actions, 4, 2)
    assert conf.tolist() == [[2, 0], [1, 2], [0, 3], [0, 0]]
    mapping, accuracy = best_map(conf)
    assert mapping[:3].tolist() == [0, 1, 1] and accuracy == pytest.approx(7 / 8)  # two codes may name one action
    usage = code_usage(codes, 4)
    assert usage["dead"] == [3] and 2.9 < usage["perplexity"] < 3.0


def test_action_outcomes_group_keys_that_draw_the_same_frame():
    # Jump from rest, then keep pressing JUMP in the air, where it draws what NOOP draws.
    actions = np.array([0, 0, 3, 3, 3, 0, 2, 2])
    classes = action_outcomes("worldgen/Platformer-v0", 7, actions)
    noop, left, right, jump, left_jump, right_jump = range(6)
    assert classes.shape == (8, 6) and (classes.max(axis=1) > 0).all()  # some key always shows
    assert classes[2, jump] == classes[2, right_jump] != classes[2, noop]  # take-off; RIGHT's first 0.4 px shows nothing
    assert (classes[3:5, jump] == classes[3:5, noop]).all() and (classes[3:5, left] != classes[3:5, noop]).all()
    codes = np.zeros(8, np.int64)  # one code for everything: right wherever the key drew what NOOP drew
    mapping, accuracy = best_map_by_outcome(codes, actions, classes, 2)
    assert mapping[0] == noop and accuracy == pytest.approx(np.mean(classes[np.arange(8), actions] == classes[:, noop]))


def test_atari_outcomes_come_from_the_emulator_state_of_the_replay():
    # An Atari env copied with deepcopy does not carry its emulator's state; what each key draws
    # must be what a replay of the same actions, then that key, draws.
    pytest.importorskip("ale_py")
    from worldgen.data.sources import make_source_env

    actions = np.random.default_rng(0).integers(0, 18, 12)
    classes = action_outcomes("ALE/Boxing-v5", 3, actions)
    frames = []
    for key in range(18):
        env = make_source_env("ALE/Boxing-v5", 64)
        env.reset(seed=3)
        for a in actions[:-1]:
            env.step(int(a))
        frames.append(env.step(key)[0])
        env.close()
    same = np.array([[np.array_equal(frames[a], frames[b]) for b in range(18)] for a in range(18)])
    assert np.array_equal(same, classes[-1][:, None] == classes[-1][None, :]) and classes[-1].max() > 0


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy_with_scrambled_actions(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("latents", ".lock"))
    rng = np.random.default_rng(0)
    for path in sorted(dst.glob("ep-*.npz")):
        shard = Shard(path)
        episode = Episode(shard.frames(), rng.integers(0, 6, shard.num_steps), shard.rewards, shard.terminated, shard.truncated,
                          {k: v for k, v in shard.meta.items() if k not in ("format", "version", "env_id", "num_frames", "frame_shape", "chunk")})
        shard.close()
        write_shard(path, episode, shard.meta["env_id"])


def test_train_lam_never_reads_the_true_actions_and_reports_its_codebook(tiny_world_runs, tiny_dataset, tmp_path, capsys):
    scrambled = tmp_path / "scrambled"
    _copy_with_scrambled_actions(tiny_dataset, scrambled)
    common = ["--preset", "tiny", "--codes", "4", "--steps", "30", "--set", f"ae={tiny_world_runs / 'ae' / 'export'}",
              "--set", "run.val_fraction=0.3", "--set", "run.image_every=30", "--set", "restart_every=10"]
    labelled = ["--labels", str(tiny_dataset)]  # a few episodes with true keys, which do steer the codes
    assert main(["train", "lam", "--data", str(tiny_dataset), "--out", str(tmp_path / "a"), *common, *labelled]) == 0
    assert main(["train", "lam", "--data", str(scrambled), "--out", str(tmp_path / "b"), *common, *labelled]) == 0
    assert main(["train", "lam", "--data", str(tiny_dataset), "--out", str(tmp_path / "c"), *common, *labelled,
                 "--set", "label_weight=0"]) == 0
    a, _ = load_export(tmp_path / "a" / "export", "lam")
    b, config = load_export(tmp_path / "b" / "export", "lam")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name  # the same weights whatever the data's own actions say
    c, _ = load_export(tmp_path / "c" / "export", "lam")
    assert not torch.equal(a.enc_out.weight, c.enc_out.weight)  # the labels' keys steer the encoder
    assert any("key_ce" in line for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines())
    assert not any("key_ce" in line for line in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines())
    assert a.cfg.codes == 4 and len(config["code_names"]) == 4
    assert np.array(config["label_map"]["confusion"]).sum() == config["label_map"]["steps"]
    assert "best-map accuracy" in capsys.readouterr().out
    val = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines() if "val/code_gain_db" in line]
    assert {"val/perplexity", "val/dead_codes", "val/mse_other_code"} <= set(val[-1])


def test_lam_eval_judges_codes_on_real_clips(tiny_world_runs, tiny_dataset, tmp_path, capsys):
    assert main(["train", "lam", "--data", str(tiny_dataset), "--out", str(tmp_path / "lam"), "--preset", "tiny", "--steps", "5",
                 "--set", f"ae={tiny_world_runs / 'ae' / 'export'}", "--set", "run.val_fraction=0.3"]) == 0
    assert main(["record", "--env", "worldgen/Platformer-v0", "--policy", "kit", "--clips", "2", "--frames", "40",
                 "-o", str(tmp_path / "clips" / "c.mp4")]) == 0
    assert main(["lam-eval", "--lam", str(tmp_path / "lam" / "export"), "--clips", str(tmp_path / "clips"),
                 "--out", str(tmp_path / "judged")]) == 0
    report = json.loads((tmp_path / "judged" / "lam_report.json").read_text())
    assert report["clips"] == 2 and report["steps"] == 80 and 0 < report["shown_steps"] <= 80
    assert np.array(report["shown"]["confusion"]).sum() == report["shown_steps"]
    assert "| code | steps | NOOP | LEFT |" in capsys.readouterr().out
    # The supervised probe of benchmarks/lam_ceiling.py is judged the same way, on the same steps.
    ceiling = _benchmark("lam_ceiling")
    probe, ae, trained = ceiling.train_probe(tiny_dataset, tiny_world_runs / "ae" / "export", "tiny", 3, 8, 0)
    probed = ceiling.judge_codes_on_clips(ceiling.ProbeCodes(probe, ae, tiny_world_runs / "ae" / "export"),
                                          tmp_path / "clips", tmp_path / "judged")
    assert probed["steps"] == 80 and probed["shown_steps"] == report["shown_steps"] and len(probed["usage"]["share"]) == 6
    assert np.array(probed["shown"]["confusion"]).shape == (6, 6) and trained["steps"] == 3
    with pytest.raises(ValueError, match="no true keys"):
        ceiling.train_probe(tmp_path / "judged" / "data", tiny_world_runs / "ae" / "export", "tiny", 1, 8, 0)
    (tmp_path / "clips" / "c-000.json").write_text(json.dumps({"format": "something else"}))
    assert main(["lam-eval", "--lam", str(tmp_path / "lam" / "export"), "--clips", str(tmp_path / "clips"),
                 "--out", str(tmp_path / "judged2")]) == 2


def test_a_labelled_copy_trains_the_world_on_codes(tiny_world_runs, tiny_dataset, tmp_path, capsys):
    from worldgen.data.dataset import EpisodeDataset
    from worldgen.kit import kit_for
    from worldgen.lam import LatentActions

    ae = tiny_world_runs / "ae" / "export"
    assert main(["train", "lam", "--data", str(tiny_dataset), "--out", str(tmp_path / "lam"), "--preset", "tiny", "--steps", "5",
                 "--codes", "4", "--set", f"ae={ae}", "--set", "run.val_fraction=0.3"]) == 0
    lam = tmp_path / "lam" / "export"
    assert main(["data", "label", str(tiny_dataset), "--lam", str(lam), "--out", str(tmp_path / "plain")]) == 0
    assert main(["data", "label", str(tiny_dataset), "--lam", str(lam), "--out", str(tmp_path / "ruled"),
                 "--rules", "worldgen/Platformer-v0"]) == 0
    plain, ruled = EpisodeDataset(tmp_path / "plain"), EpisodeDataset(tmp_path / "ruled")
    codes = LatentActions.load(lam).episode_codes(tiny_dataset)
    assert plain.action_meanings == ["code 0", "code 1", "code 2", "code 3"]
    for file, shard in zip(plain.files, plain.shards):
        assert np.array_equal(shard.actions, codes[file]) and not shard.rewards.any()
    rules = kit_for("worldgen/Platformer-v0").events
    shard = ruled.shards[0]
    assert np.array_equal(shard.rewards, rules(shard.frames())[0])
    common = ["--preset", "tiny", "--steps", "2", "--set", f"ae={ae}", "--set", "run.val_fraction=0.3", "--set", "run.image_every=0"]
    assert main(["train", "teacher", "--data", str(tmp_path / "plain"), "--out", str(tmp_path / "teacher"), *common]) == 0
    assert json.loads((tmp_path / "teacher" / "export" / "config.json").read_text())["model"]["num_actions"] == 4
    assert main(["train", "reward", "--data", str(tmp_path / "plain"), "--out", str(tmp_path / "reward"), *common]) == 2
    assert "has no rewards" in capsys.readouterr().err
    assert main(["train", "reward", "--data", str(tmp_path / "ruled"), "--out", str(tmp_path / "reward"), *common]) == 0
    assert main(["data", "label", str(tiny_dataset), "--lam", str(lam), "--out", str(tmp_path / "plain")]) == 2


def test_clips_recorded_from_the_game_label_their_video_with_the_true_actions(tmp_path, capsys):
    from worldgen.data.dataset import EpisodeDataset

    clips = tmp_path / "clips"
    assert main(["record", "--env", "worldgen/Platformer-v0", "--policy", "kit", "--clips", "2", "--frames", "30",
                 "-o", str(clips / "c.mp4")]) == 0
    assert main(["data", "from-video", str(clips), "--out", str(tmp_path / "video")]) == 0
    assert main(["data", "label", str(tmp_path / "video"), "--from-clips", "--out", str(tmp_path / "true")]) == 0
    labelled = EpisodeDataset(tmp_path / "true")
    assert labelled.env_id == "worldgen/Platformer-v0" and labelled.action_meanings[:3] == ["NOOP", "LEFT", "RIGHT"]
    for file, shard in zip(labelled.files, labelled.shards):
        side = json.loads(Path(shard.meta["source"]).with_suffix(".json").read_text())
        assert shard.actions.tolist() == side["actions"] and shard.rewards.tolist() == side["rewards"]
        assert shard.terminated.tolist() == [False] * (len(side["actions"]) - 1) + [side["ended"]]
    with pytest.raises(SystemExit, match="--lam.*or.*--from-clips"):
        main(["data", "label", str(tmp_path / "video"), "--out", str(tmp_path / "neither")])
    (clips / "c-001.json").unlink()
    assert main(["data", "label", str(tmp_path / "video"), "--from-clips", "--out", str(tmp_path / "half")]) == 2
    assert "has no actions beside it" in capsys.readouterr().err and not (tmp_path / "half" / "manifest.json").exists()


def test_a_latent_action_world_is_judged_on_the_codes_read_off_the_real_frames(trained_tiny_world, tiny_world_runs, tiny_dataset,
                                                                              tmp_path, monkeypatch, capsys):
    from worldgen import report as report_module
    from worldgen.lam import LatentActions

    common = ["--preset", "tiny", "--steps", "3", "--set", f"ae={tiny_world_runs / 'ae' / 'export'}", "--set", "run.val_fraction=0.3"]
    assert main(["train", "lam", "--data", str(tiny_dataset), "--out", str(tmp_path / "lam6"), "--codes", "6", *common]) == 0
    assert main(["train", "lam", "--data", str(tiny_dataset), "--out", str(tmp_path / "lam4"), "--codes", "4", *common]) == 0
    seen = []
    real_evaluate = report_module.evaluate
    monkeypatch.setattr(report_module, "evaluate", lambda methods, refs, *a, **k: seen.extend(refs) or real_evaluate(methods, refs, *a, **k))
    args = ["eval", "--world", str(trained_tiny_world), "--no-teacher", "--seeds", "2", "--horizons", "1,4", "--extra-steps", "8",
            "--content-frames", "0"]
    assert main([*args, "--out", str(tmp_path / "game_keys")]) == 0
    game_keys = [r.actions.copy() for r in seen]
    seen.clear()
    assert main([*args, "--lam", str(tmp_path / "lam6" / "export"), "--out", str(tmp_path / "codes")]) == 0
    lam = LatentActions.load(tmp_path / "lam6" / "export")
    for ref, keys in zip(seen, game_keys):
        assert np.array_equal(ref.actions, lam.frame_codes(ref.frames)) and len(ref.actions) == len(keys)
    assert any(not np.array_equal(r.actions, k) for r, k in zip(seen, game_keys))
    assert main([*args, "--lam", str(tmp_path / "lam4" / "export"), "--out", str(tmp_path / "bad")]) == 2
    assert "has 4 codes, the world takes 6 actions" in capsys.readouterr().err
