"""`worldgen make-world`: one command from a Gymnasium id, or from a folder of gameplay clips,
to a packed, judged, timed world.

Every stage writes into its own folder under `--out` and is skipped once done, so the command
resumes after an interruption: collection tops the dataset up to its episode count, training
stages continue from their newest checkpoint, pack / eval / bench run when their output is
missing. The stages are those the shipped Platformer world went through, sized by a preset:
autoencoder, diffusion teacher, sCD consistency model, both fine-tuned on the world's own
rollouts (the long-play fix), the reward head (on the world's own frames too, where the game's
kit reads its rules from pictures), pack, the second sampling step's time chosen by the
content it keeps over long play (`worldgen.tune`), eval, bench.

From video (`--video`), Genie's route: the clips become a dataset without actions, a latent
action model learns the controls from them, its codes label the frames, and the same stages
train on the codes. The game the clips show (`--env`) judges the world, and where its kit reads
rewards from pictures they train the reward head; without a game the world starts from the
clips' own opening frames and pays nothing.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from worldgen.data.sources import VIDEO_ENV
from worldgen.data.video import find_videos
from worldgen.kit import kit_for

if TYPE_CHECKING:
    from worldgen.world import WorldSpec


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: str
    """`worldgen train` stage: ae, teacher, scm or reward."""
    steps: int
    sets: tuple[str, ...] = ()
    """`--set` overrides; `{runs}` stands for the run folder."""
    seconds_per_step: float = 1.0
    """Measured on the 2-core CPU (tiny, small) or estimated for one GPU (base): the plan's estimate."""
    extra_seconds: float = 0.0
    """Work before the first step (the reward head's pool of judged rollouts)."""
    note: str = ""
    """What sets this stage apart from a plain one of its kind, for the plan."""


@dataclass(frozen=True)
class MakeWorldPreset:
    model: str
    """Network size preset of the ae, teacher and reward stages."""
    episodes: int
    stages: tuple[StageSpec, ...]
    eval_seeds: int
    horizons: tuple[int, ...]
    content_frames: int
    content_streams: int
    bench_batches: tuple[int, ...]
    threads: int
    """Torch threads of every training stage (0: torch's default, for a GPU machine)."""
    mid_times: tuple[float, ...]
    """Second-step times the tune stage tries (`worldgen.tune`), on `content_streams` x
    `content_frames` frames of validation levels."""
    lam_steps: int = 3000
    """The latent action model's steps (worlds from video)."""
    lam_seconds_per_step: float = 0.25
    collect_seconds_per_episode: float = 2.0
    eval_seconds: float = 60.0
    tune_seconds: float = 30.0


def _stages(ae: int, decoder: int, teacher: int, scd: int, own_teacher: int, own_scd: int, reward: int,
            judged: tuple[int, int], speed: dict[str, float]) -> tuple[StageSpec, ...]:
    """The stage list: the same recipe at every size; `judged`: (rollouts, frames) of the reward head's pool.

    `ae_decoder` fine-tunes the decoder alone with each pixel's loss weighted by its colour's
    rarity: a plain loss smooths away sprites a few pixels wide (Freeway's chicken: kept in 56% of
    decoded frames, 98% after), and a frozen encoder leaves the latents as they were. Every later
    stage encodes and decodes with it."""
    own = ("own.share=0.5", "own.unroll_start=2", f"own.curriculum_steps={max(1, own_teacher * 3 // 8)}")
    return (
        StageSpec("ae", "ae", ae, (), speed["ae"]),
        StageSpec("ae_decoder", "ae", decoder,
                  ("init={runs}/ae/export", "train_encoder=false", "colour_weight=1.0", "optim.lr=3e-4",
                   "optim.warmup_steps=50"), speed["ae_decoder"], note="the decoder alone, rare colours weighted up"),
        StageSpec("teacher", "teacher", teacher, (), speed["teacher"]),
        StageSpec("scd", "scm", scd, ("mode=scd", "teacher={runs}/teacher/export"), speed["scd"]),
        StageSpec("teacher_own", "teacher", own_teacher,
                  (*own, "own.unroll=12", "own.sampler_steps=2", "own.generator={runs}/scd/export",
                   "init={runs}/teacher/export", "optim.lr=3e-5", "optim.warmup_steps=50", "optim.ema_decay=0.995"),
                  speed["teacher_own"]),
        StageSpec("scd_own", "scm", own_scd,
                  (*own, "own.unroll=8", "own.generator=self", "own.sampler_steps=2", "mode=scd",
                   "teacher={runs}/teacher_own/export", f"tangent_warmup={own_scd}"), speed["scd_own"]),
        StageSpec("reward", "reward", reward,
                  ("judged.share=0.5", "judged.world={dynamics}", f"judged.rollouts={judged[0]}",
                   f"judged.frames={judged[1]}"), speed["reward"], judged[0] * judged[1] * speed["judged_frame"]),
    )


CPU_SMALL = {"ae": 0.8, "ae_decoder": 0.45, "teacher": 0.45, "scd": 1.0, "teacher_own": 1.6, "scd_own": 2.5, "reward": 0.3,
             "judged_frame": 0.03}
"""Seconds per step of the small preset on the 2-core CPU: the teacher's and the decoder's from
Freeway's run (4,000 teacher steps in 27 min), the rest from the Platformer's runs."""

PRESETS: dict[str, MakeWorldPreset] = {
    "tiny": MakeWorldPreset(
        "tiny", 6, _stages(30, 10, 60, 4, 6, 4, 10, (4, 12), {k: 0.1 for k in CPU_SMALL}), 2, (1, 4), 40, 2, (1,), 1, (1.1, 1.35),
        lam_steps=20, lam_seconds_per_step=0.1, collect_seconds_per_episode=1.0, eval_seconds=30.0),
    "small": MakeWorldPreset(
        "small", 100, _stages(1500, 1000, 9000, 600, 400, 300, 1000, (96, 256), CPU_SMALL), 8, (1, 8, 32), 1000, 8,
        (1, 16), 2, (1.1, 1.2, 1.3, 1.4, 1.5), tune_seconds=600.0, eval_seconds=1200.0),
    "base": MakeWorldPreset(
        "base", 400, _stages(5000, 2000, 60000, 4000, 4000, 2000, 4000, (512, 512),
                             {"ae": 0.1, "ae_decoder": 0.05, "teacher": 0.1, "scd": 0.2, "teacher_own": 0.3, "scd_own": 0.4,
                              "reward": 0.05, "judged_frame": 0.002}),
        16, (1, 8, 32, 128), 1000, 16, (1, 16, 64, 256), 0, (1.0, 1.1, 1.2, 1.3, 1.35, 1.4, 1.5), tune_seconds=600.0, lam_steps=10000, lam_seconds_per_step=0.05, eval_seconds=900.0),
}


@dataclass
class Plan:
    env_id: str
    """The game: played to collect, or, for a world from video, the game the clips show ("video"
    when none is named)."""
    out: Path
    preset: MakeWorldPreset
    episodes: int
    policy: str
    """`explore` (the game's scripted player), `random` (random actions, each held a few steps),
    or `none` (a world from video: nobody plays)."""
    seed: int = 0
    video: tuple[Path, ...] = ()
    """Clips: the world is learnt from them, with latent actions."""
    codes: int = 8
    """How many latent actions (worlds from video)."""
    labels: Path | None = None
    """A few episodes with true keys (worlds from video): they steer the codes toward the keys and
    name them, so the world's actions are the game's names and the arrow keys play it."""
    steps: list[tuple[str, str, float]] = field(default_factory=list)
    """(stage, what it does, estimated seconds)."""

    def __post_init__(self) -> None:
        p = self.preset
        if self.video:
            self.steps = [("video", f"{len(self.video)} clip{'s' * (len(self.video) != 1)} -> frames, actions unknown", 30.0 + 2.0 * len(self.video))]
        else:
            self.steps = [("collect", f"{self.episodes} episodes of {self.env_id}, {self.policy} play",
                           self.episodes * p.collect_seconds_per_episode)]
        judged = kit_for(self.env_id).events is not None  # the reward head's pool needs the game's rules
        for s in p.stages:
            if self.video and s.kind == "reward" and not judged:
                continue  # clips carry no rewards, and no rules read them off the frames: a world that pays nothing
            what = f"train {s.kind}, {s.steps} steps" + (f": {s.note}" if s.note else "")
            self.steps.append((s.name, what, s.steps * s.seconds_per_step + s.extra_seconds * judged))
            if self.video and s.name == "ae_decoder":
                steered = f", steered by the labelled episodes in {self.labels}" if self.labels else ""
                self.steps += [("lam", f"train lam, {self.codes} codes, {p.lam_steps} steps{steered}", p.lam_steps * p.lam_seconds_per_step),
                               ("label", "the clips' actions are the codes" + (", rewards by the rules" if judged else ""), 30.0)]
            if s.name == "scd_own" and self.playable:  # before the reward head, which learns from the world's frames
                self.steps.append(("tune", f"second sampling step: the best of t = {', '.join(map(str, p.mid_times))}",
                                   p.tune_seconds))
        self.steps.append(("pack", "the world folder", 1.0))
        if self.playable:
            self.steps.append(("eval", f"{p.eval_seeds} unseen levels, horizons {','.join(map(str, p.horizons))}; "
                                       f"{p.content_streams} x {p.content_frames} frames of long play", p.eval_seconds))
        self.steps.append(("bench", f"frames/s at batch {', '.join(map(str, p.bench_batches))}", 60.0))

    @property
    def playable(self) -> bool:
        """Is there a real game to judge the world against?"""
        return self.env_id != VIDEO_ENV

    @property
    def seconds(self) -> float:
        return sum(s for _, _, s in self.steps)

    def describe(self) -> str:
        source = f"clips of {self.env_id}" if self.video and self.playable else "clips" if self.video else self.env_id
        lines = [f"make-world {source} -> {self.out} (preset {self.preset.model}):"]
        for i, (name, what, seconds) in enumerate(self.steps):
            lines.append(f"  {i + 1:2d}. {name:<12} {what:<70} ~{_duration(seconds)}")
        lines.append(f"  estimated total ~{_duration(self.seconds)} (finished stages are skipped on a rerun)")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{max(1, round(minutes))} min"


def default_policy(env_id: str) -> str:
    """The game's scripted player where its kit has one, else random play with held actions."""
    return "explore" if kit_for(env_id).policy is not None else "random"


def make_plan(env_id: str | None, out: Path, preset: str = "small", episodes: int | None = None, policy: str | None = None,
              seed: int = 0, video: list[Path] | None = None, codes: int = 8, labels: Path | None = None) -> Plan:
    """`env_id`: the game to collect from; with `video`, the game the clips show (its kit's rules
    pay the reward head, and the world is judged on it), or None."""
    if preset not in PRESETS:
        raise ValueError(f"unknown make-world preset {preset!r}; choose from {', '.join(PRESETS)}")
    if labels is not None:
        from worldgen.data.dataset import EpisodeDataset

        if not video:
            raise ValueError("--labels steers and names the latent actions of a world from --video; a world from --env "
                             "plays the game's own actions")
        if not EpisodeDataset(labels).actions_known:
            raise ValueError(f"--labels {labels}: this dataset has no actions (made from video); record a few labelled "
                             "episodes with `worldgen collect`")
    if video:
        if episodes is not None or policy is not None:
            raise ValueError("--episodes and --policy choose how to collect play; a world from --video learns from the clips")
        if codes < 2:
            raise ValueError(f"--codes must be at least 2 (one code is no control), got {codes}")
        clips = tuple(find_videos(video))  # refuses a missing path, or a folder with no clips, by name
        return Plan(env_id or VIDEO_ENV, Path(out), PRESETS[preset], 0, "none", seed, clips, codes, labels)
    if env_id is None:
        raise ValueError("make-world needs --env (a game to collect from) or --video (clips to learn from)")
    if episodes is not None and episodes < 2:
        raise ValueError(f"--episodes must be at least 2 (one is held out for validation), got {episodes}")
    policy = policy or default_policy(env_id)
    if policy == "explore" and kit_for(env_id).policy is None:
        raise ValueError(f"{env_id} has no scripted player for --policy explore; use --policy random")
    if policy not in ("explore", "random"):
        raise ValueError(f"--policy must be explore or random, got {policy!r}")
    p = PRESETS[preset]
    return Plan(env_id, Path(out), p, episodes or p.episodes, policy, seed)


def run_plan(plan: Plan, log: Callable[[str], None] = print) -> Path:
    """Run every stage not yet done; returns the world folder."""
    from worldgen.data.dataset import EpisodeDataset

    out, p = plan.out, plan.preset
    data, runs, world = out / "data", out / "runs", out / "world"
    total = len(plan.steps)
    for i, (name, what, seconds) in enumerate(plan.steps):
        head = f"[{i + 1}/{total}] {name}"
        start = time.monotonic()
        newer = _newer_upstream(plan, i)
        if newer is not None:
            log(f"{head}: {newer} finished after it; redone (the old one kept as {_set_aside(plan, name).name})")
        if name in ONE_SHOT and _finished_at(plan, name) is not None:
            log(f"{head}: done")
            continue
        if name == "video":
            _import_video(plan, out / "video")
        elif name == "lam":
            if _train_done(runs / "lam", p.lam_steps):
                log(f"{head}: done ({p.lam_steps} steps)")
                continue
            log(f"{head}: {what} (~{_duration(seconds)})")
            _train_lam(plan, out / "video", runs)
        elif name == "label":
            _label(plan, out / "video", runs, data)
        elif name == "collect":
            have = len(EpisodeDataset(data)) if (data / "manifest.json").exists() else 0
            if have >= plan.episodes:
                log(f"{head}: done ({have} episodes)")
                continue
            log(f"{head}: {plan.episodes - have} more episodes (~{_duration(seconds * (plan.episodes - have) / plan.episodes)})")
            _collect(plan, data, plan.episodes - have)
        elif name in {s.name for s in p.stages}:
            spec = next(s for s in p.stages if s.name == name)
            if _train_done(runs / name, spec.steps):
                log(f"{head}: done ({spec.steps} steps)")
                continue
            log(f"{head}: {what} (~{_duration(seconds)})")
            _train(spec, plan, out / "video" if plan.video and spec.kind == "ae" else data, runs)
        elif name == "pack":
            _pack(plan, data, runs, world)
        elif name == "tune":
            log(f"{head}: {what} (~{_duration(seconds)})")
            _tune(plan, data, runs, out / "tune.json", log)
        elif name == "eval":
            log(f"{head}: {what} (~{_duration(seconds)})")
            _evaluate(plan, data, world, out / "eval", log, runs / "lam" / "export" if plan.video else None)
        elif name == "bench":
            _bench(p, world, out / "bench.json")
        log(f"{head}: finished in {_duration(time.monotonic() - start)}")
    return world


ONE_SHOT = frozenset({"video", "label", "tune", "pack", "eval", "bench"})
"""Stages done once their output's mark exists (`_finished_at`); the others resume or top up."""


def _output(plan: Plan, name: str) -> Path:
    """What a stage leaves behind, and what a redo of the stage sets aside."""
    out = plan.out
    named = {"video": out / "video", "collect": out / "data", "label": out / "data", "tune": out / "tune.json",
             "pack": out / "world", "eval": out / "eval", "bench": out / "bench.json"}
    return named.get(name, out / "runs" / name)


def _finished_at(plan: Plan, name: str) -> float | None:
    """When a stage last finished or saved progress (None: it never ran). A training run counts
    its newest checkpoint, so a half-run stage is judged too."""
    from worldgen.checkpoint import list_states

    output = _output(plan, name)
    marks = {"video": output / "manifest.json", "collect": output / "manifest.json", "label": output / "manifest.json",
             "pack": output / "world.json", "eval": output / "report.json"}
    if name in marks or output.suffix == ".json":
        mark = marks.get(name, output)
        return mark.stat().st_mtime if mark.exists() else None
    times = [p.stat().st_mtime for p in (*list_states(output)[-1:], output / "export" / "config.json") if p.exists()]
    return max(times) if times else None


def _newer_upstream(plan: Plan, index: int) -> str | None:
    """The earlier stage that finished after stage `index` did (more episodes, a longer teacher):
    the stage was made from what is gone and must be redone. None: it is up to date, or never ran."""
    own = _finished_at(plan, plan.steps[index][0])
    if own is None:
        return None
    earlier = [(t, name) for name, _, _ in plan.steps[:index] if (t := _finished_at(plan, name)) is not None]
    newest = max(earlier, default=None)
    return newest[1] if newest is not None and newest[0] > own else None


def _set_aside(plan: Plan, name: str) -> Path:
    """Move a stale stage's output to `<name>.previous` (replacing an older one), so that the
    stage starts afresh and the user can still compare with what it made before."""
    output = _output(plan, name)
    previous = output.with_name(f"{output.stem}.previous{output.suffix}")
    if previous.is_dir():
        shutil.rmtree(previous)
    os.replace(output, previous)
    return previous


def _collect(plan: Plan, data: Path, episodes: int) -> None:
    """Collect, or top up after an interruption: a top-up plays from the next seed no run into
    `data` has used yet, for the env and the policy alike, so it adds new episodes rather than
    replaying the interrupted run's (or being refused for it)."""
    from worldgen.data.collect import collect
    from worldgen.data.policies import RandomRepeatPolicy
    from worldgen.data.sources import make_source_env, probe_action_meanings
    from worldgen.data.storage import read_manifest

    used = read_manifest(data).get("env_seeds", []) if (data / "manifest.json").exists() else []
    seed = max(plan.seed, max(used) + 1) if used else plan.seed
    if plan.policy == "explore":
        policy = kit_for(plan.env_id).policy(seed)
    else:
        policy = RandomRepeatPolicy(len(probe_action_meanings(lambda: make_source_env(plan.env_id))), seed=seed)
    collect(plan.env_id, data, episodes, policy, plan.policy, seed=seed)


def _import_video(plan: Plan, video: Path) -> None:
    from worldgen.data.video import dataset_from_videos

    dataset_from_videos(list(plan.video), video)


def _train_lam(plan: Plan, video: Path, runs: Path) -> None:
    from worldgen.checkpoint import list_states
    from worldgen.train.stages import resolve_config, run_stage

    sets = [f"run.threads={plan.preset.threads}", f"run.steps={plan.preset.lam_steps}", f"model.codes={plan.codes}", f"ae={_autoencoder(runs)}"]
    sets += [f"labels={plan.labels}"] if plan.labels else []
    cfg = resolve_config("lam", plan.preset.model, None, sets)
    run_stage("lam", cfg, video, runs / "lam", resume=bool(list_states(runs / "lam")))


def _label(plan: Plan, video: Path, runs: Path, data: Path) -> None:
    """The clips with the codes as their actions; the frames' latents are the same, so the
    labelled copy shares the clips' latent cache (hard links) instead of encoding them again.
    The links come first: the labelled manifest, written last, marks the stage done."""
    from worldgen.lam import label_dataset, map_codes_to_actions

    if plan.labels:  # names first: the labelled copy takes its action names from the model's
        map_codes_to_actions(runs / "lam" / "export", plan.labels, progress=False)
    for src in (video / "latents").rglob("*"):
        dst = data / "latents" / src.relative_to(video / "latents")
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        elif not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
    rules = plan.env_id if kit_for(plan.env_id).events is not None else None  # a game whose kit reads rewards off frames
    label_dataset(video, data, runs / "lam" / "export", rules, progress=False)


def _autoencoder(runs: Path) -> Path:
    """The world's autoencoder: the first one's encoder with the rare-colour decoder."""
    return runs / "ae_decoder" / "export"


def _train_done(run: Path, steps: int) -> bool:
    from worldgen.checkpoint import list_states

    states = list_states(run)
    return bool(states) and int(states[-1].name.removeprefix("step-")) >= steps and (run / "export" / "config.json").exists()


def _train(spec: StageSpec, plan: Plan, data: Path, runs: Path) -> None:
    from worldgen.checkpoint import list_states
    from worldgen.train.stages import resolve_config, run_stage

    dynamics = runs / chosen_dynamics(runs)[0] / "export"
    sets = [f"run.threads={plan.preset.threads}", *(s.format(runs=runs, dynamics=dynamics) for s in spec.sets),
            f"run.steps={spec.steps}"]
    if spec.kind != "ae":
        sets.append(f"ae={_autoencoder(runs)}")
    if spec.kind == "reward" and kit_for(plan.env_id).events is None:  # no rules to label the world's frames with
        sets = [s for s in sets if not s.startswith("judged.")]
    elif spec.kind == "reward":
        sets.append(f"judged.mid_time={_mid_time(plan.out)}")  # the world's own frames, drawn as it will draw them
    cfg = resolve_config(spec.kind, None if spec.kind == "scm" else plan.preset.model, None, sets)
    run_stage(spec.kind, cfg, data, runs / spec.name, resume=bool(list_states(runs / spec.name)))


KEYS_KEPT = 0.5
"""The share of sCD's key response that sCD on its own rollouts must keep to be the world's
dynamics (`chosen_dynamics`)."""


def chosen_dynamics(runs: Path) -> tuple[str, str]:
    """The runs the world plays and ships as its teacher: sCD fine-tuned on its own rollouts,
    which keeps content over long play, unless that fine-tuning cost the keys, judged by each
    run's last validation dPSNR (`rollout_dpsnr_h8`). Rollouts that drift from the real ones
    train a model to steer back to the recorded frames whatever the key: on Freeway from the
    kit's play it fell from 1.97 dB (sCD) to 0.31, and held UP walked the chicken down."""
    own, plain = _key_response(runs / "scd_own"), _key_response(runs / "scd")
    if own is not None and plain is not None and plain > 0 and own < KEYS_KEPT * plain:
        return "scd", "teacher"
    return "scd_own", "teacher_own"


def _key_response(run: Path) -> float | None:
    """A run's last validation dPSNR at h8, if it logged one."""
    import json

    path = run / "metrics.jsonl"
    values = [json.loads(line).get("val/rollout_dpsnr_h8") for line in path.read_text().splitlines()] if path.exists() else []
    values = [v for v in values if v is not None]
    return values[-1] if values else None


def _spec(plan: Plan, data: Path, runs: Path) -> WorldSpec:
    """The world's description: its dynamics, dataset and game, and the tuned second-step time."""
    import dataclasses

    from worldgen.data.sources import qualified_env_id
    from worldgen.data.storage import read_manifest
    from worldgen.world import spec_for

    source = qualified_env_id(plan.env_id) if plan.playable else VIDEO_ENV
    spec = spec_for(runs / chosen_dynamics(runs)[0] / "export", read_manifest(data), source, plan.out.name)
    return dataclasses.replace(spec, mid_time=_mid_time(plan.out))


def _mid_time(out: Path) -> float:
    """The tune stage's choice; sCM's default for a world that has none (no game to judge by)."""
    import json

    from worldgen.scm import T_MID

    return json.loads((out / "tune.json").read_text())["mid_time"] if (out / "tune.json").exists() else T_MID


def _pack(plan: Plan, data: Path, runs: Path, world: Path) -> None:
    from worldgen.world import opening_frames, pack_world

    spec = _spec(plan, data, runs)
    prompts = None if plan.playable else opening_frames(data, spec.context)
    reward = runs / "reward" / "export" if any(name == "reward" for name, _, _ in plan.steps) else None
    dynamics, teacher = chosen_dynamics(runs)
    pack_world(world, spec, _autoencoder(runs), runs / dynamics / "export", reward, teacher=runs / teacher / "export",
               prompts=prompts)


def _tune(plan: Plan, data: Path, runs: Path, out: Path, log: Callable[[str], None]) -> None:
    """Choose the second-step time on validation levels, with the world's networks before they
    are packed; the choice (`out`) goes into the reward head's pool and the world's description."""
    from models.export import load_export
    from worldgen.atomic import write_json
    from worldgen.data.dataset import EpisodeDataset
    from worldgen.lam import world_relabeller
    from worldgen.tune import format_tuning, tune_mid_time
    from worldgen.world import World, resolve_device

    p = plan.preset
    device = resolve_device("auto")  # as World() picks for eval
    spec = _spec(plan, data, runs)
    dynamics = chosen_dynamics(runs)[0]
    if dynamics != "scd_own":
        log(f"the world plays {dynamics}: on its own rollouts it kept under {KEYS_KEPT:.0%} of its keys' effect "
            f"(validation dPSNR h8 {_key_response(runs / 'scd_own'):.2f} dB vs {_key_response(runs / dynamics):.2f})")
    world = World.from_modules(spec, load_export(_autoencoder(runs), "autoencoder", device)[0],
                               load_export(runs / dynamics / "export", "dynamics", device)[0], None)
    used = set(spec.training_seeds) | EpisodeDataset(data).level_seeds()
    relabel = world_relabeller(runs / "lam" / "export", world) if plan.video else None
    result = tune_mid_time(world, list(p.mid_times), p.content_streams, p.content_frames, used, relabel, log)
    log(format_tuning(result))
    write_json(out, result)


def _evaluate(plan: Plan, data: Path, world_folder: Path, out: Path, log: Callable[[str], None], lam: Path | None) -> None:
    from worldgen.data.dataset import EpisodeDataset
    from worldgen.eval import Method
    from worldgen.lam import world_relabeller
    from worldgen.reference import held_out_seeds
    from worldgen.report import evaluate_world
    from worldgen.world import World

    p = plan.preset
    world = World(world_folder)
    methods = [Method("repeat last frame", None)] + [Method(f"world {n}-step", world.net, world.spec.play_sampler(n)) for n in (2, 1)]
    used = set(world.spec.training_seeds) | EpisodeDataset(data).level_seeds()
    evaluate_world(world, methods, out, held_out_seeds(p.eval_seeds, used), list(p.horizons), used,
                   content_frames=p.content_frames, content_streams=p.content_streams, log=log,
                   relabel=world_relabeller(lam, world) if lam else None)


def _bench(p: MakeWorldPreset, world: Path, out: Path) -> None:
    from worldgen.bench import bench_world, save_report

    save_report({"runs": [bench_world(world, p.bench_batches, "cpu", None, 1.0)]}, out)
