"""RL agents and generated worlds: train with Stable-Baselines3 on a batched world env (or on the
real game, as the reference), and score any policy in the real game on held-out levels.

Needs the rl extra (stable-baselines3). An agent is saved as Stable-Baselines3 saves one (a zip
holding pickled objects), so loading one is for agents you trust.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from worldgen.atomic import atomic_path
from worldgen.clone import CloneConfig, clone_path, clone_policy, with_prior
from worldgen.kit import EventRules

ALGOS = ("ppo", "a2c")
Act = Callable[[np.ndarray], int]
"""A policy as the real game sees it: frame (H, W, 3) uint8 -> action. One with memory (an agent
on stacked frames) also has `reset()`, which `new_episode` calls at each episode's start."""


def new_episode(act: Act) -> None:
    """Tell a policy with memory that an episode starts (a stateless one has nothing to forget)."""
    reset = getattr(act, "reset", None)
    if reset is not None:
        reset()


class AgentPolicy:
    """A saved agent as a policy: its most likely action, or (with `sample_rng`) an action drawn from its
    distribution, as in training. A greedy policy in a deterministic game can stand in one
    place for good where the sampled one moves on (PPO agents on the Platformer: README,
    *Agents*). An agent trained on `stack` stacked frames sees them here too: it keeps its own
    last frames, zeros before an episode's first, as Stable-Baselines3's VecFrameStack gave
    them in training."""

    def __init__(self, model: Any, stack: int, sample_rng: np.random.Generator | None = None) -> None:
        self.model, self.stack, self.rng = model, stack, sample_rng
        self.frames: deque[np.ndarray] = deque(maxlen=stack)

    def reset(self) -> None:
        self.frames.clear()

    def __call__(self, frame: np.ndarray) -> int:
        frame = np.asarray(frame)
        if not self.frames:
            self.frames.extend([np.zeros_like(frame)] * (self.stack - 1))
        self.frames.append(frame)
        obs = np.concatenate(self.frames, axis=-1)
        if self.rng is None:
            return int(self.model.predict(obs, deterministic=True)[0])
        with torch.no_grad():
            probs = self.model.policy.get_distribution(self.model.policy.obs_to_tensor(obs)[0]).distribution.probs[0].double().numpy()
        return int(self.rng.choice(len(probs), p=probs / probs.sum()))


def _sb3() -> Any:
    try:
        import stable_baselines3
    except ImportError as e:
        raise ValueError("agents need the rl extra: pip install 'worldgen[rl]'") from e
    return stable_baselines3


def world_vec_env(venv: gym.vector.VectorEnv) -> Any:
    """A Gymnasium vector env with same-step autoreset (`worldgen/World-v0` made with
    `autoreset_mode="same_step"`) as a Stable-Baselines3 VecEnv: all worlds in one model call."""
    from stable_baselines3.common.vec_env import VecEnv

    class WorldVecEnv(VecEnv):
        def __init__(self) -> None:
            super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
            self._actions: np.ndarray | None = None
            self._seed: int | None = None

        def reset(self) -> np.ndarray:
            obs, _ = venv.reset(seed=self._seed)
            self._seed = None
            return obs

        def seed(self, seed: int | None = None) -> list[int | None]:
            self._seed = seed
            return [seed] * self.num_envs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = np.asarray(actions, dtype=np.int64)

        def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
            obs, rewards, terminated, truncated, info = venv.step(self._actions)
            done = terminated | truncated
            infos: list[dict] = [{} for _ in range(self.num_envs)]
            for i in np.flatnonzero(done):
                infos[i] = {"terminal_observation": info["final_obs"][i], "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
            return obs, rewards.astype(np.float32), done, infos

        def close(self) -> None:
            venv.close()

        def get_attr(self, name: str, indices: Any = None) -> list[Any]:
            return [getattr(venv, name)] * self.num_envs

        def set_attr(self, name: str, value: Any, indices: Any = None) -> None:
            setattr(venv, name, value)

        def env_method(self, name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
            return [getattr(venv, name)(*args, **kwargs)] * self.num_envs

        def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
            return [False] * self.num_envs

    return WorldVecEnv()


def real_vec_env(make_env: Callable[[], gym.Env], num_envs: int) -> Any:
    """The real game in `num_envs` copies as a Stable-Baselines3 VecEnv (the upper reference)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv([make_env] * num_envs)


def train_agent(vec_env: Any, out: Path, steps: int, algo: str = "ppo", seed: int = 0, n_steps: int = 128,
                ent_coef: float = 0.01, tensorboard: Path | None = None, progress: bool = True, frame_stack: int = 1,
                gamma: float = 0.99, checkpoint_every: int = 20_000, resume: bool = False, device: str = "auto",
                clone: CloneConfig | None = None, action_meanings: list[str] | None = None, prior_kl: float | None = None,
                log: Callable[[str], None] = lambda line: None) -> Path:
    """Train a CNN policy for `steps` environment steps on `vec_env` and save it to `out` (.zip),
    atomically: an interrupted run leaves no half-written agent. `ent_coef`: the entropy bonus
    (Stable-Baselines3's default, 0, lets the policy collapse onto one action long before a
    sparse reward such as a coin or the flag is found). `frame_stack`: the policy sees its last
    frames, as Atari agents do: one frame shows where things are, not how fast they move (on
    the Platformer, PPO with 4 learnt less in 200,000 steps than with 1: README, *Agents*).
    `gamma`: the discount (Stable-Baselines3's 0.99 makes a reward 500 steps away worth 0.7%
    of one now). The agent is also saved to `out` every `checkpoint_every` steps, so a long CPU
    run that is stopped loses at most that much: `resume` loads `out` and trains on until it
    has seen `steps` in all (the algorithm and its settings are the saved agent's). `device`: where
    the policy learns ("auto": CUDA when present); the saved agent plays on any device. `clone`:
    before any RL, fit the new agent to recorded play (`worldgen.clone`; with `steps` 0 the cloned
    agent is all that is saved; it is also kept at `clone_path(out)`), its actions checked against
    `action_meanings`. `prior_kl`: keep RL's policy within this many nats of that clone (`with_prior`)."""
    if algo not in ALGOS:
        raise ValueError(f"--algo must be one of {', '.join(ALGOS)}, got {algo!r}")
    if steps < (0 if clone is not None else 1):
        raise ValueError(f"--steps must be at least 1 (0 only with --clone: the cloned agent alone), got {steps}")
    if clone is not None and resume:
        raise ValueError("--clone starts a new agent from recorded play; a resumed agent goes on from where it stopped (drop --clone)")
    if prior_kl is not None and not 0.0 <= prior_kl < float("inf"):
        raise ValueError(f"--prior-kl must be a finite number of nats >= 0, got {prior_kl}")
    if prior_kl is not None and clone is None and not (resume and clone_path(out).is_file()):
        raise ValueError(f"--prior-kl keeps the agent near its clone: pass --clone DATA (or resume a run that cloned, "
                         f"which left {clone_path(out).name})")
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"{out}: an agent is saved as a .zip")
    sb3 = _sb3()
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecFrameStack, VecMonitor

    if checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be at least 1 step, got {checkpoint_every}")

    def save(model: Any, path: Path = out) -> None:
        with atomic_path(path, ".zip") as tmp:
            model.save(tmp)

    class Progress(BaseCallback):
        def __init__(self, done: int) -> None:
            super().__init__()
            self.bar = tqdm(total=steps, initial=done, desc=f"{algo} training", unit="step", disable=not progress)
            self.saved = done

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            if self.model.ep_info_buffer and self.n_calls % 64 == 0:  # the last 100 episodes, as TensorBoard's ep_rew_mean
                self.bar.set_postfix(ep_return=f"{np.mean([e['r'] for e in self.model.ep_info_buffer]):.2f}", refresh=False)
            if self.num_timesteps - self.saved >= checkpoint_every:
                save(self.model)
                self.saved = self.num_timesteps
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    cls = {"ppo": sb3.PPO, "a2c": sb3.A2C}[algo]
    if prior_kl is not None:
        cls = with_prior(cls)
    if not 0.0 <= ent_coef < float("inf"):
        raise ValueError(f"--ent-coef must be a finite number >= 0, got {ent_coef}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"--gamma must be in (0, 1], got {gamma}")
    if not isinstance(frame_stack, int) or frame_stack < 1:
        raise ValueError(f"--frame-stack must be an integer >= 1, got {frame_stack!r}")
    vec_env = VecMonitor(vec_env)  # episode returns for the progress bar and TensorBoard
    if frame_stack > 1:
        vec_env = VecFrameStack(vec_env, frame_stack, channels_order="last")
    vec_env.seed(seed)
    if resume:
        model = _resumed(cls, out, vec_env, tensorboard, device)
        if model.num_timesteps >= steps:
            raise ValueError(f"{out} has already trained {model.num_timesteps} steps; ask for more than that with --steps")
    else:
        kwargs: dict[str, Any] = {"n_steps": n_steps, "ent_coef": ent_coef, "gamma": gamma}
        if algo == "ppo":
            kwargs["batch_size"] = min(256, n_steps * vec_env.num_envs)
        model = cls("CnnPolicy", vec_env, seed=seed, verbose=0, device=device,
                    tensorboard_log=str(tensorboard) if tensorboard else None, **kwargs)
    if clone is not None:
        scores = clone_policy(model, clone, gamma, seed, action_meanings, progress)
        log(f"cloned {clone.data}: most likely action = the recorded one on {scores['accuracy']:.1%} of training steps"
            + (f", {scores['held_out_accuracy']:.1%} of held-out ones" if "held_out_accuracy" in scores else "")
            + (f"; advantage weights kept {scores['effective_share']:.0%} of each batch" if "effective_share" in scores else ""))
        save(model)
        save(model, clone_path(out))
        if steps == 0:
            return out
    if prior_kl is not None:
        model.prior = (copy.deepcopy(model.policy) if clone is not None else cls.load(clone_path(out), device=device).policy).requires_grad_(False)
        model.prior_kl = prior_kl
    done = model.num_timesteps
    model.learn(total_timesteps=steps - done, callback=Progress(done), tb_log_name=out.stem, reset_num_timesteps=not resume)
    save(model)
    return out


def _resumed(cls: Any, out: Path, vec_env: Any, tensorboard: Path | None, device: str) -> Any:
    """The saved agent at `out`, set to go on training on `vec_env`; refuses an agent of another
    algorithm or one that saw other frames or keys, which would otherwise fail deep inside
    Stable-Baselines3 or, worse, train on."""
    if not out.is_file():
        raise ValueError(f"{out}: no agent to resume; train one first (without --resume)")
    try:
        model = cls.load(out, env=vec_env, device=device, tensorboard_log=str(tensorboard) if tensorboard else None)
    except ValueError as e:
        raise ValueError(f"{out} cannot go on training here: {e}") from e
    except Exception as e:  # a zip of another algorithm, or not an agent at all
        raise ValueError(f"{out} is not a {cls.__name__} agent this command can resume ({type(e).__name__}: {e})") from e
    return model


def load_agent(path: Path, trusted: bool, sample: bool = False, seed: int = 0) -> Act:
    """A saved agent as a policy (its most likely actions, or with `sample` actions drawn from
    its distribution, seeded by `seed`). Loading unpickles, so an agent is refused unless the
    user said they trust it (`trusted`, the CLI's --trust-agent)."""
    path = Path(path)
    if not trusted:
        raise ValueError(f"{path}: an agent .zip holds pickled Python objects, which run code when loaded; "
                         "load only agents you trust, with --trust-agent")
    sb3 = _sb3()
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    for cls in (sb3.PPO, sb3.A2C, sb3.DQN):
        try:
            model = cls.load(str(path), device="cpu")
            break
        except (ValueError, KeyError, RuntimeError, TypeError):
            continue
    else:
        raise ValueError(f"{path}: not a stable-baselines3 PPO, A2C or DQN agent")
    shape = model.observation_space.shape  # (C, H, W) once Stable-Baselines3 has moved the channels first
    return AgentPolicy(model, min(shape[0], shape[-1]) // 3, np.random.default_rng(seed) if sample else None)


def episode_returns(make_env: Callable[[], gym.Env], act: Act, seeds: list[int], progress: bool = False,
                    name: str = "policy", prompt: bool = False, rules: EventRules | None = None) -> np.ndarray:
    """The return of one episode per level seed, playing `act` in the real game, or (`prompt`) in
    a world env started from that level's first frame: what the agent imagines it earns.

    With the game's `rules` (for play in a world), each row is (the return the world paid, the
    return the rules read from the world's own frames pay, up to the first ending they see):
    the first minus the second is the reward head's error, the second minus the real game's
    return the world's."""
    env = make_env()
    out = []
    for seed in tqdm(seeds, desc=name, unit="ep", disable=not progress):
        obs, _ = env.reset(seed=seed, options={"prompt": seed} if prompt else None)
        new_episode(act)
        total, done, frames = 0.0, False, [obs]
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
            if rules is not None:
                frames.append(obs)
        if rules is None:
            out.append(total)
            continue
        paid, ended = rules(np.stack(frames))
        stop = int(np.argmax(ended)) + 1 if ended.any() else len(paid)
        out.append((total, float(paid[:stop].sum())))
    env.close()
    return np.array(out)


@dataclass
class Score:
    name: str
    returns: np.ndarray
    """Real-game returns, one per level."""
    imagined: np.ndarray | None = None
    """The same policy's returns in the world, from the same levels' first frames."""
    imagined_by_rules: np.ndarray | None = None
    """What the game's rules, read from those world frames, would have paid."""

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def ci95(self) -> float:
        """Half-width of the normal 95% interval of the mean (0 for one episode)."""
        n = len(self.returns)
        return 1.96 * float(self.returns.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0


def baselines(make_env: Callable[[], gym.Env], num_actions: int, seeds: list[int], seed: int = 0,
              progress: bool = False) -> list[Score]:
    """Uniform random actions, and the best constant action (each tried on the same levels)."""
    rng = np.random.default_rng(seed)
    scores = [Score("random", episode_returns(make_env, lambda frame: int(rng.integers(num_actions)), seeds, progress, "random"))]
    constant = [Score(f"always action {a}", episode_returns(make_env, lambda frame, a=a: a, seeds, progress, f"always {a}"))
                for a in range(num_actions)]
    best = max(constant, key=lambda s: s.mean)
    scores.append(Score(f"best constant action ({best.name.removeprefix('always action ')})", best.returns))
    return scores


def format_scores(scores: list[Score], meanings: list[str] | None = None) -> str:
    """The table: real-game return +- 95% CI, and where measured the return in the world and the
    gap (world - real: what the agent imagines it earns and does not), and where the game has
    rules read from frames, what they pay on the world's frames."""
    imagined = any(s.imagined is not None for s in scores)
    by_rules = any(s.imagined_by_rules is not None for s in scores)
    head = "| policy | real-game return, mean +- 95% CI |"
    if imagined:
        head += " return in the world |" + (" the rules on the world's frames |" if by_rules else "") + " gap (world - real) |"
    head += " episodes |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in scores:
        name = s.name
        if meanings and name.startswith("best constant action ("):
            a = int(name[len("best constant action ("):-1])
            name = f"best constant action ({meanings[a]})"
        row = f"| {name} | {s.mean:.2f} +- {s.ci95:.2f} |"
        if imagined:
            rules = (f" {s.imagined_by_rules.mean():.2f} |" if s.imagined_by_rules is not None else " - |") if by_rules else ""
            row += (f" {s.imagined.mean():.2f} |{rules} {s.imagined.mean() - s.mean:+.2f} |" if s.imagined is not None
                    else " - |" + (" - |" if by_rules else "") + " - |")
        lines.append(row + f" {len(s.returns)} |")
    return "\n".join(lines)
