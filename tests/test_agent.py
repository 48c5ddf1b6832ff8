"""`worldgen agent train` and `eval`: a saved, seeded agent, scored in the real game beside baselines."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from worldgen.agent import Score, baselines, episode_returns, load_agent, new_episode
from worldgen.cli import main

PLATFORMER = "worldgen/Platformer-v0"


def short_real():
    return gym.make(PLATFORMER, max_episode_steps=40)


def test_a_world_trained_agent_is_saved_and_scored_in_the_real_game(tiny_world, tmp_path, capsys):
    agent = tmp_path / "agent.zip"
    args = ["agent", "train", "--world", str(tiny_world), "--steps", "64", "--num-envs", "2", "--n-steps", "16",
            "--max-episode-steps", "20", "--threads", "1", "--out", str(agent)]
    assert main(args) == 0
    assert agent.stat().st_size > 0 and not list(tmp_path.glob(".*"))
    again = tmp_path / "again.zip"
    assert main([*args[:-1], str(again), "--tensorboard", str(tmp_path / "tb")]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = (tmp_path / "tb").iterdir()
    assert "rollout/ep_rew_mean" in EventAccumulator(str(run)).Reload().Tags()["scalars"]  # the return, not only losses
    act_a, act_b = load_agent(agent, trusted=True), load_agent(again, trusted=True)
    frames = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    assert [act_a(f) for f in frames] == [act_b(f) for f in frames], "the same seed trains the same agent"
    assert main(args) == 2 and "exists; pass --force" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["agent", "eval", "--agent", str(agent), "--episodes", "2"]) == 2
    assert "--trust-agent" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "greedy.zip"), "--ent-coef", "-1"]) == 2
    assert "--ent-coef must be a finite number >= 0" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "far.zip"), "--gamma", "1.5"]) == 2
    assert "--gamma must be in (0, 1]" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "where.zip"), "--device", "gpu"]) == 2
    assert "device must be auto, cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*args[:-1], str(tmp_path / "where.zip"), "--device", "cuda"]) == 2
        assert "this machine has no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "where.zip").exists()


def test_an_agent_trains_in_a_world_from_recorded_states(tiny_world, tiny_dataset, tmp_path, capsys):
    agent = tmp_path / "agent.zip"
    args = ["agent", "train", "--world", str(tiny_world), "--steps", "32", "--num-envs", "2", "--n-steps", "16",
            "--max-episode-steps", "8", "--threads", "1", "--starts", str(tiny_dataset), "--out", str(agent)]
    assert main(args) == 0 and agent.stat().st_size > 0
    assert "episodes started from" in capsys.readouterr().out
    assert main([*args[:-1], str(tmp_path / "real.zip"), "--real-env", PLATFORMER]) == 2
    assert "the real game starts its own levels" in capsys.readouterr().err
    assert main([*args[:-3], str(tmp_path), "--out", str(tmp_path / "none.zip")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_a_stopped_training_leaves_a_checkpoint_that_resume_trains_on_to_the_steps_asked(tiny_world, tmp_path, monkeypatch,
                                                                                         capsys):
    import worldgen.agent
    from stable_baselines3 import PPO

    agent = tmp_path / "agent.zip"
    args = ["agent", "train", "--world", str(tiny_world), "--steps", "64", "--num-envs", "2", "--n-steps", "8",
            "--max-episode-steps", "20", "--threads", "1", "--checkpoint-every", "8", "--out", str(agent)]

    class Stopped(worldgen.agent.tqdm):
        def update(self, n=1):
            if self.n >= 20:  # the user presses Ctrl-C after 20 steps
                raise KeyboardInterrupt
            super().update(n)

    monkeypatch.setattr(worldgen.agent, "tqdm", Stopped)
    assert main(args) == 130 and "checkpoint is kept" in capsys.readouterr().err
    monkeypatch.undo()
    assert PPO.load(agent, device="cpu").num_timesteps == 16 and not list(tmp_path.glob(".*"))
    assert main([*args, "--resume"]) == 0
    assert PPO.load(agent, device="cpu").num_timesteps == 64
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2 and "already trained 64 steps" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "none.zip"), "--resume"]) == 2
    assert "no agent to resume" in capsys.readouterr().err
    assert main([*args, "--steps", "128", "--frame-stack", "2", "--resume"]) == 2
    assert "cannot go on training here" in capsys.readouterr().err
    assert PPO.load(agent, device="cpu").num_timesteps == 64  # a refused resume leaves the agent as it was


def test_an_agent_on_stacked_frames_sees_its_last_frames_and_forgets_them_at_an_episode_start(tiny_world, tmp_path):
    common = ["agent", "train", "--world", str(tiny_world), "--steps", "32", "--num-envs", "2", "--n-steps", "16",
              "--max-episode-steps", "20", "--threads", "1"]
    assert main([*common, "--frame-stack", "3", "--out", str(tmp_path / "stacked.zip")]) == 0
    assert main([*common, "--frame-stack", "1", "--out", str(tmp_path / "single.zip")]) == 0
    act = load_agent(tmp_path / "stacked.zip", trusted=True)
    assert act.stack == 3 and load_agent(tmp_path / "single.zip", trusted=True).stack == 1
    frames = np.random.default_rng(1).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    zero = np.zeros_like(frames[0])
    seen, predict = [], act.model.predict
    act.model.predict = lambda obs, deterministic: seen.append(obs) or predict(obs, deterministic=deterministic)
    played = [act(f) for f in frames]
    assert np.array_equal(seen[0], np.concatenate([zero, zero, frames[0]], axis=-1))
    assert np.array_equal(seen[4], np.concatenate(frames[2:5], axis=-1))
    new_episode(act)
    assert [act(f) for f in frames] == played  # a new episode starts from zeros again, not from the last frames
    assert np.array_equal(seen[6], seen[0])


def test_a_sampling_agent_draws_from_its_policy_and_its_seed_repeats_the_draws(tiny_world, tmp_path):
    import torch

    path = tmp_path / "agent.zip"
    assert main(["agent", "train", "--world", str(tiny_world), "--steps", "32", "--num-envs", "2", "--n-steps", "16",
                 "--max-episode-steps", "20", "--threads", "1", "--frame-stack", "2", "--out", str(path)]) == 0
    frame = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    act = load_agent(path, trusted=True, sample=True, seed=3)
    draws = [act(frame) for _ in range(3000)]  # the stack fills with this frame after the first call
    model = act.model
    obs = model.policy.obs_to_tensor(np.concatenate([frame, frame], axis=-1))[0]
    with torch.no_grad():
        probs = model.policy.get_distribution(obs).distribution.probs[0].numpy()
    assert np.abs(np.bincount(draws[1:], minlength=len(probs)) / len(draws[1:]) - probs).max() < 0.04
    again = load_agent(path, trusted=True, sample=True, seed=3)
    assert [again(frame) for _ in range(50)] == draws[:50]
    greedy = load_agent(path, trusted=True)
    assert {greedy(frame) for _ in range(20)} == {int(np.argmax(probs))}


def test_eval_prints_every_policy_with_its_interval(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gym, "make", lambda env_id, **kw: gym.wrappers.TimeLimit(gym.envs.registration.make(env_id), 40)
                        if env_id == PLATFORMER else gym.envs.registration.make(env_id, **kw))
    assert main(["agent", "eval", "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "| random |" in out and "| best constant action (" in out and "3 levels from seed 1000000" in out


def test_baselines_and_intervals():
    seeds = [1_000_000, 1_000_001, 1_000_002]
    scores = baselines(short_real, 6, seeds)
    assert [s.name.split(" (")[0] for s in scores] == ["random", "best constant action"]
    best = scores[1]
    for a in range(6):  # the best constant is the best of the six on the same levels
        assert episode_returns(short_real, lambda frame, a=a: a, seeds).mean() <= best.mean + 1e-9
    assert Score("x", np.array([1.0, 3.0])).ci95 == pytest.approx(1.96 * np.std([1.0, 3.0], ddof=1) / np.sqrt(2))
    assert Score("x", np.array([2.0])).ci95 == 0.0
    json.dumps([s.mean for s in scores])


def test_the_imagination_table_sets_world_return_beside_real(tiny_world, tmp_path, capsys):
    agent = tmp_path / "agent.zip"
    assert main(["agent", "train", "--world", str(tiny_world), "--steps", "32", "--num-envs", "2", "--n-steps", "16",
                 "--threads", "1", "--out", str(agent)]) == 0
    assert main(["agent", "eval", "--agent", str(agent), "--trust-agent", "--episodes", "2", "--no-baselines", "--in-world",
                 "--world", str(tiny_world), "--world-steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "| return in the world | the rules on the world's frames | gap (world - real) |" in out and "| agent |" in out


class Counting(gym.Env):
    """Frames 0, 1, 2, ... (the step count in every pixel); pays 1 a step; ends after 5 steps."""

    observation_space = gym.spaces.Box(0, 255, (2, 2, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.t = 0
        return np.zeros((2, 2, 3), np.uint8), {}

    def step(self, action):
        self.t += 1
        return np.full((2, 2, 3), self.t, np.uint8), 1.0, self.t == 5, False, {}


def test_in_world_returns_split_what_the_head_paid_from_what_the_rules_read():
    def rules(frames):  # pays 2 a step and sees an ending at the step into frame 3
        steps = frames[1:, 0, 0, 0]
        return np.full(len(steps), 2.0), steps == 3

    rows = episode_returns(Counting, lambda frame: 0, [1, 2], rules=rules)
    assert rows.tolist() == [[5.0, 6.0], [5.0, 6.0]]  # the head paid 5; the rules 2 x 3 steps, up to their ending
    assert episode_returns(Counting, lambda frame: 0, [1]).tolist() == [5.0]


def test_an_agent_cloned_from_recorded_play_takes_the_recorded_actions(tiny_world, tiny_dataset, tmp_path, capsys):
    from worldgen.clone import _observations, discounted_returns
    from worldgen.data.dataset import EpisodeDataset

    assert np.allclose(discounted_returns(np.array([0.0, 1.0, 0.0, 10.0]), 0.5), [1.75, 3.5, 5.0, 10.0])
    frames = np.arange(1, 5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    stacked = _observations(frames, 3)  # oldest first, zeros before the first frame, as VecFrameStack shows them
    assert stacked.shape == (4, 2, 2, 9) and stacked[0, 0, 0, ::3].tolist() == [0, 0, 1] and stacked[3, 0, 0, ::3].tolist() == [2, 3, 4]
    common = ["agent", "train", "--world", str(tiny_world), "--num-envs", "2", "--n-steps", "16", "--max-episode-steps", "20",
              "--threads", "1"]
    cloned = tmp_path / "cloned.zip"
    assert main([*common, "--steps", "0", "--clone", str(tiny_dataset), "--clone-epochs", "3", "--out", str(cloned)]) == 0
    printed = capsys.readouterr().out
    assert "most likely action = the recorded one on" in printed and "held-out" in printed
    assert main([*common, "--steps", "0", "--out", str(tmp_path / "fresh.zip")]) == 2
    assert "0 only with --clone" in capsys.readouterr().err
    assert main([*common, "--steps", "32", "--out", str(tmp_path / "fresh.zip")]) == 0
    shard = EpisodeDataset(tiny_dataset).shards[0]
    frames, recorded = shard.frames()[:-1], shard.actions

    def agreement(agent):
        act = load_agent(agent, trusted=True)
        return np.mean([act(f) == a for f, a in zip(frames, recorded)])

    # The explorer runs right most of the time: a fitted policy says so, an untrained one guesses.
    assert agreement(cloned) > 0.5 and agreement(cloned) > agreement(tmp_path / "fresh.zip") + 0.2
    assert main([*common, "--steps", "32", "--clone", str(tiny_dataset), "--out", str(tmp_path / "rl.zip")]) == 0
    assert agreement(tmp_path / "rl.zip") > 0.5  # RL goes on from the clone
    capsys.readouterr()
    assert main([*common, "--steps", "64", "--clone", str(tiny_dataset), "--out", str(tmp_path / "rl.zip"), "--resume"]) == 2
    assert "drop --clone" in capsys.readouterr().err
    assert main([*common, "--steps", "0", "--clone", str(tmp_path), "--out", str(tmp_path / "none.zip")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert main([*common, "--steps", "0", "--frame-stack", "2", "--clone", str(tiny_dataset), "--out", str(tmp_path / "stack.zip")]) == 0


def test_cloning_refuses_recordings_the_agent_cannot_learn_from(tiny_dataset, tmp_path):
    from types import SimpleNamespace

    from gymnasium import spaces

    from worldgen.clone import CloneConfig, clone_policy

    def agent(shape, n):
        return SimpleNamespace(policy=SimpleNamespace(observation_space=spaces.Box(0, 255, shape, np.uint8), action_space=spaces.Discrete(n)))

    with pytest.raises(ValueError, match="frames 64x64, but the agent sees 32x32"):
        clone_policy(agent((3, 32, 32), 6), CloneConfig(tiny_dataset), 0.99)
    with pytest.raises(ValueError, match="records the actions NOOP, LEFT, RIGHT, JUMP, LEFT_JUMP, RIGHT_JUMP; the agent plays 4 actions"):
        clone_policy(agent((3, 64, 64), 4), CloneConfig(tiny_dataset), 0.99)
    with pytest.raises(ValueError, match="the agent plays UP, DOWN, LEFT, RIGHT, FIRE, NOOP"):
        clone_policy(agent((3, 64, 64), 6), CloneConfig(tiny_dataset), 0.99, action_meanings=["UP", "DOWN", "LEFT", "RIGHT", "FIRE", "NOOP"])
    with pytest.raises(ValueError, match="--clone-epochs must be at least 1"):
        clone_policy(agent((3, 64, 64), 6), CloneConfig(tiny_dataset, epochs=0), 0.99)


def test_advantage_weighted_cloning_follows_the_recorded_steps_that_did_better(tmp_path, capsys):
    from stable_baselines3 import PPO

    from worldgen.clone import clone_loss

    # One state, recorded twice as often with RIGHT and LEFT: RIGHT took a coin (+1 to come), LEFT died (-1).
    env = gym.make(PLATFORMER)
    frame = env.reset(seed=0)[0]
    obs = np.repeat(frame[None], 64, axis=0)
    actions = np.array([2, 1] * 32)
    returns = np.where(actions == 2, 1.0, -1.0).astype(np.float32)

    def trained(beta):
        torch.manual_seed(0)
        policy = PPO("CnnPolicy", env, seed=0, device="cpu").policy
        optimiser = torch.optim.Adam(policy.parameters(), lr=1e-3)
        for _ in range(60):
            loss, share = clone_loss(policy, obs, actions, returns, 0.5, beta)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            probs = policy.get_distribution(policy.obs_to_tensor(frame)[0]).distribution.probs[0]
        return float(probs[2]), float(probs[1]), share

    policy = PPO("CnnPolicy", env, seed=0, device="cpu").policy
    for far in (-1e4, 1e4):  # every step far below or above the value: weights stay finite
        loss, share = clone_loss(policy, obs, actions, np.full(64, far, np.float32), 0.0, 0.01)
        assert torch.isfinite(loss) and share == pytest.approx(1.0)
    right, left, share = trained(None)
    assert abs(right - left) < 0.1 and share == pytest.approx(1.0)  # plain cloning copies the mixture
    right, left, share = trained(0.5)
    assert right > 0.8 and left < 0.1 and share < 0.6  # weighted, it follows the steps that did better: half the batch
    assert main(["agent", "train", "--world", "platformer", "--steps", "0", "--clone-beta", "1", "--out", str(tmp_path / "x.zip")]) == 2
    assert "pass --clone DATA too" in capsys.readouterr().err
    assert main(["agent", "train", "--world", "platformer", "--steps", "0", "--clone", "data", "--clone-beta", "0", "--out", str(tmp_path / "x.zip")]) == 2
    assert "--clone-beta must be a finite number of reward units > 0, got 0.0" in capsys.readouterr().err
    assert main(["agent", "train", "--world", "platformer", "--steps", "0", "--clone", "data", "--clone-beta", "1", "--clone-epochs", "1",
                 "--out", str(tmp_path / "x.zip")]) == 2
    assert "--clone-epochs must be at least 2, got 1" in capsys.readouterr().err


def test_a_prior_keeps_rl_near_the_clone_and_a_resumed_run_finds_it_again(tiny_world, tiny_dataset, tmp_path, capsys):
    from stable_baselines3 import PPO

    from worldgen.clone import clone_path
    from worldgen.data.dataset import EpisodeDataset

    common = ["agent", "train", "--world", str(tiny_world), "--num-envs", "2", "--n-steps", "16", "--max-episode-steps", "20",
              "--threads", "1", "--clone", str(tiny_dataset), "--clone-epochs", "1", "--ent-coef", "0.5"]
    assert main([*common, "--steps", "96", "--out", str(tmp_path / "free.zip")]) == 0
    assert main([*common, "--steps", "96", "--prior-kl", "0.01", "--out", str(tmp_path / "held.zip")]) == 0
    clone = PPO.load(clone_path(tmp_path / "held.zip"), device="cpu")
    assert clone.num_timesteps == 0 and clone_path(tmp_path / "free.zip").is_file()
    obs = clone.policy.obs_to_tensor(EpisodeDataset(tiny_dataset).shards[1].frames()[::8])[0]  # states an agent meets

    def kl_from_clone(agent):
        with torch.no_grad():
            p = clone.policy.get_distribution(obs).distribution.probs
            q = PPO.load(agent, device="cpu").policy.get_distribution(obs).distribution.probs
        return float((p * (p.log() - q.log())).sum(-1).mean())

    # A large entropy bonus drags the free agent toward uniform actions; the prior holds the other near its clone.
    assert kl_from_clone(tmp_path / "held.zip") < 0.5 * kl_from_clone(tmp_path / "free.zip")
    resume = [*common[:-6], "--prior-kl", "0.01", "--resume"]
    assert main([*resume, "--steps", "128", "--out", str(tmp_path / "held.zip")]) == 0
    assert PPO.load(tmp_path / "held.zip", device="cpu").num_timesteps == 128
    capsys.readouterr()
    assert main([*common[:-6], "--steps", "32", "--prior-kl", "0.1", "--out", str(tmp_path / "alone.zip")]) == 2
    assert "pass --clone DATA" in capsys.readouterr().err
    assert main([*common, "--steps", "32", "--prior-kl", "-1", "--out", str(tmp_path / "alone.zip")]) == 2
    assert "--prior-kl must be a finite number of nats >= 0" in capsys.readouterr().err
