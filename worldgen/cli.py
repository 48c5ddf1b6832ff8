"""The `worldgen` command: parses arguments and calls library functions (the composition root)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """examples:
  worldgen collect --env worldgen/Platformer-v0 --episodes 200 --out data/platformer --policy explore --num-envs 2
  worldgen collect --env ALE/Breakout-v5 --episodes 20 --out data/breakout      (needs the atari extra)
  worldgen data info data/platformer
  worldgen train ae --data data/platformer --out runs/platformer/ae
  worldgen train teacher --data data/platformer --out runs/platformer/teacher
  worldgen train scm --mode scd --data data/platformer --out runs/platformer/scd
  worldgen train reward --data data/platformer --out runs/platformer/reward
  worldgen make-world --env ALE/Boxing-v5 --out worlds/boxing --dry-run
  worldgen agent train --world platformer --steps 20000 --out agent.zip
  worldgen agent eval --agent agent.zip --trust-agent --episodes 50 --in-world
"""


def _positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _keys(text: str) -> list[int]:
    """argparse type: action indices separated by commas, e.g. "0,2,2,1"."""
    try:
        keys = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected action numbers separated by commas, e.g. 0,2,2,1; got {text!r}") from None
    if not keys:
        raise argparse.ArgumentTypeError("expected at least one action number, e.g. 0,2,2,1")
    return keys


def _outputs_free(outputs: list[Path], inputs: list[Path], force: bool) -> None:
    """Refuse to write over an input, ever, or over an existing file without --force; make the
    outputs' folders."""
    taken = {p.resolve() for p in inputs if p.exists()}
    for out in outputs:
        if out.resolve() in taken:
            raise ValueError(f"{out} is also an input of this command; write the output elsewhere")
        if out.exists() and not force:
            raise ValueError(f"{out} exists; pass --force to replace it, or choose another output")
    for out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)


def _collect(args: argparse.Namespace) -> int:
    import envs  # noqa: F401  (registers the built-in games)
    from worldgen.data.collect import collect
    from worldgen.data.policies import RandomRepeatPolicy
    from worldgen.data.sources import make_source_env, probe_action_meanings
    from worldgen.kit import kit_for

    if args.policy == "explore":
        scripted = kit_for(args.env).policy
        if scripted is None:
            raise SystemExit(f"error: {args.env} has no scripted player for --policy explore; use --policy random")
        policy = scripted(args.seed)
    else:
        keys = len(probe_action_meanings(lambda: make_source_env(args.env, args.size)))
        policy = RandomRepeatPolicy(keys, max_repeat=args.max_repeat, seed=args.seed)
    result = collect(
        args.env, args.out, args.episodes, policy, args.policy, size=args.size, num_envs=args.num_envs, seed=args.seed
    )
    print(
        f"recorded {result.episodes} episodes, {result.frames} frames in {result.seconds:.1f} s "
        f"({result.frames_per_second:.0f} frames/s) into {args.out} (env seed {result.seed})"
    )
    return 0


def _make_world(args: argparse.Namespace) -> int:
    import envs  # noqa: F401  (the built-in games and their kits)
    from worldgen.make_world import make_plan, run_plan

    plan = make_plan(args.env, args.out, args.preset, args.episodes, args.policy, args.seed, args.video, args.codes, args.labels)
    print(plan.describe(), flush=True)
    if args.dry_run:
        return 0
    world = run_plan(plan, log=lambda line: print(line, flush=True))
    judged = f"eval: {args.out / 'eval'}, " if plan.playable else ""
    print(f"world ready: worldgen play --world {world}   ({judged}bench: {args.out / 'bench.json'})")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from worldgen.data.dataset import EpisodeDataset

    dataset = EpisodeDataset(args.dir)
    if not args.quick:
        dataset.verify()
    print(dataset.info().summary() + ("" if args.quick else "\nverified:    every shard reads back intact"))
    return 0


def _data_from_video(args: argparse.Namespace) -> int:
    from worldgen.data.video import dataset_from_videos

    result = dataset_from_videos(args.paths, args.out, args.size, args.fps, args.crop)
    print(f"added {result.episodes} clips ({result.frames} frames at {result.fps:g} fps) to {args.out}; actions unknown"
          + (f"; {len(result.skipped)} already there" if result.skipped else ""))
    return 0


def _lam_eval(args: argparse.Namespace) -> int:
    import envs  # noqa: F401  (the real games the clips came from)
    from worldgen.atomic import write_json
    from worldgen.lam import format_confusion, judge_on_clips

    report = judge_on_clips(args.lam, args.clips, args.out)
    usage = report["usage"]
    print(f"{report['clips']} clips, {report['steps']} steps; {report['shown_steps']} show their action "
          "(the real game, from the same state, draws another next frame for some other action)")
    print(f"codebook: perplexity {usage['perplexity']:.2f} of {len(usage['share'])}, dead codes: {usage['dead'] or 'none'}")
    part = report["shown"]
    print(f"best code -> action map: accuracy {part['accuracy']:.3f} (right: the game draws with the mapped action what it drew "
          f"with the true one), {part['strict_accuracy']:.3f} counting only the true action itself\n"
          f"map: {', '.join(f'{i}={m}' for i, m in enumerate(part['map']))}\n"
          "codes (rows) against true actions on those steps, % of each code's steps:\n" + format_confusion(part["confusion"], report["action_meanings"]))
    write_json(args.out / "lam_report.json", report)
    print(f"wrote {args.out / 'lam_report.json'}")
    return 0


def _data_label(args: argparse.Namespace) -> int:
    import envs  # noqa: F401  (the games' kits, for --rules)
    from worldgen.lam import label_dataset

    if (args.lam is None) == (not args.from_clips):
        raise SystemExit("error: label with a latent action model (--lam) or with the clips' own actions (--from-clips), one of the two")
    report = label_dataset(args.dir, args.out, args.lam, args.rules)
    shares = ", ".join(f"{name}: {100 * v:.0f}%" for name, v in zip(report["action_meanings"], report["action_share"]))
    print(f"labelled {report['episodes']} episodes ({report['steps']} steps) into {args.out}; actions used: {shares}")
    return 0


def _train(args: argparse.Namespace) -> int:
    import envs  # noqa: F401  (the games' kits: the rules that label the reward head's judged rollouts)
    from worldgen.train.stages import describe, resolve_config, run_stage

    sets = list(args.set)
    if args.stage == "scm":
        sets += [f"mode={args.mode or 'scd'}"] + ([f"teacher={args.teacher}"] if args.teacher else [])
    elif args.mode or args.teacher:
        raise SystemExit("error: --mode and --teacher belong to `worldgen train scm`")
    if args.stage == "lam":
        sets += ([f"model.codes={args.codes}"] if args.codes is not None else []) + ([f"labels={args.labels}"] if args.labels else [])
    elif args.codes is not None or args.labels is not None:
        raise SystemExit("error: --codes and --labels belong to `worldgen train lam`")
    cfg = resolve_config(args.stage, args.preset, args.config, sets)
    if args.steps is not None:
        cfg.run.steps = args.steps
    if args.batch_size is not None:
        cfg.run.batch_size = args.batch_size
    if args.dry_run:
        print(describe(cfg))
        return 0
    export = run_stage(args.stage, cfg, args.data, args.out, args.resume)
    print(f"trained {args.stage}: weights in {export}")
    if args.stage == "lam" and cfg.labels:
        from worldgen.lam import map_codes_to_actions

        report = map_codes_to_actions(export, Path(cfg.labels))
        print(f"codes named from {report['episodes']} labelled episodes ({report['steps']} steps, best-map accuracy "
              f"{report['accuracy']:.2f}): " + ", ".join(f"{i}={n}" for i, n in enumerate(report["code_names"])))
    return 0


def _play(args: argparse.Namespace) -> int:
    import envs  # noqa: F401  (the source games, for prompts and --compare)
    from worldgen.viewer import NoDisplay, Viewer, has_display
    from worldgen.world import World

    if not has_display():
        print("error: no display to open a window on; record headless instead: worldgen record --world "
              f"{args.world} --frames 300 -o clip.mp4", file=sys.stderr)
        return 2
    world = World(args.world, sampling_steps=args.steps, compile=args.compile, trusted_modules=args.trust_module)
    compare = None
    if args.compare:
        compare = world.make_source
    agent = None
    if args.agent:
        from worldgen.agent import load_agent

        agent = load_agent(args.agent, args.trust_agent)
    viewer = Viewer(world, prompt=args.prompt, scale=args.scale, compare_env=compare, clip_dir=args.clips, seed=args.seed,
                    agent=agent)
    try:
        stats = viewer.run()
    except NoDisplay as e:
        print(f"error: cannot open a window ({e}); record headless instead: worldgen record -o clip.mp4", file=sys.stderr)
        return 2
    print(f"played {stats.frames} frames at {stats.fps:.1f} fps ({sum(stats.model_ms) / max(len(stats.model_ms), 1):.1f} ms per frame)"
          + (f", {stats.agent_frames} driven by the agent" if args.agent else ""))
    for clip in stats.clips:
        print(f"recorded {clip}")
    return 0


def _record(args: argparse.Namespace) -> int:
    import envs  # noqa: F401
    from worldgen.record import Clip, make_policy, record_clip, write_video
    from worldgen.world import World

    if args.env:
        return _record_game(args)
    sidecar = args.output.with_suffix(".json")
    inputs = [Path(args.policy)] + ([Path(args.prompt)] if args.prompt is not None else [])
    _outputs_free([args.output, sidecar], inputs, args.force)
    world = World(args.world, sampling_steps=args.steps, trusted_modules=args.trust_module)
    prompt = args.prompt if args.prompt is not None else args.seed
    clip = Clip(world=str(args.world), seed=args.seed, sampling_steps=world.sampling_steps, prompt=prompt, fps=world.spec.fps)
    policy = make_policy(args.policy, len(world.action_meanings), args.seed, trust_agent=args.trust_agent)
    frames = record_clip(world, clip, args.frames, policy)
    write_video(args.output, frames, clip.fps, args.scale)
    clip.save(sidecar)
    print(f"wrote {args.output} ({len(frames)} frames) and {sidecar}")
    return 0


def _record_game(args: argparse.Namespace) -> int:
    from worldgen.atomic import write_json
    from worldgen.record import record_game_clip, write_video

    if args.prompt is not None or args.steps is not None:
        raise ValueError("--prompt and --sampling-steps belong to a world; the real game starts from level --seed")
    outputs = [args.output] if args.clips == 1 else [args.output.with_name(f"{args.output.stem}-{i:03d}{args.output.suffix}")
                                                     for i in range(args.clips)]
    _outputs_free(outputs + [o.with_suffix(".json") for o in outputs], [], args.force)
    for i, out in enumerate(outputs):
        frames, sidecar = record_game_clip(args.env, args.seed + i, args.frames, args.policy, trust_agent=args.trust_agent)
        sidecar["fps"] = args.fps
        write_video(out, frames, args.fps, args.scale)
        write_json(out.with_suffix(".json"), sidecar, indent=None)
        print(f"wrote {out} ({len(frames)} frames of {args.env}, level {args.seed + i}) and {out.with_suffix('.json')}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    import envs  # noqa: F401
    from worldgen.record import Clip, replay_clip, write_video
    from worldgen.world import World

    clip = Clip.load(args.clip)
    out = args.output or args.clip.with_suffix(".replay.mp4")
    _outputs_free([out], [args.clip], args.force)
    frames = replay_clip(World(clip.world, trusted_modules=args.trust_module), clip)
    write_video(out, frames, clip.fps, args.scale)
    print(f"wrote {out} ({len(frames)} frames)")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import torch

    import envs  # noqa: F401  (registers worldgen/World-v0)
    from worldgen.bench import bench_vector_env, bench_world, format_report, save_report
    from worldgen.world import resolve_world, teacher_of

    if args.threads:
        torch.set_num_threads(args.threads)
    world = resolve_world(args.world)
    teacher = args.teacher or teacher_of(world)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    reports = []
    for device in devices:
        report = bench_world(world, tuple(args.batches), device, teacher, args.seconds, compile=args.compile)
        report["vector_env"] = bench_vector_env(world, tuple(args.num_envs), device, args.seconds)
        print(format_report(report) + "\n")
        reports.append(report)
    if args.json:
        save_report({"runs": reports}, args.json)
    return 0


def _pack(args: argparse.Namespace) -> int:
    from worldgen.data.sources import qualified_env_id
    from worldgen.data.storage import read_manifest
    from worldgen.world import pack_world, spec_for

    runs = args.runs
    dynamics = runs / args.dynamics / "export"
    manifest = read_manifest(args.data)
    source = qualified_env_id(args.source_env or manifest["env_id"])
    spec = spec_for(dynamics, manifest, source, args.name or runs.name)
    card = args.card.read_text() if args.card else None
    teacher = runs / args.teacher / "export" if args.teacher else None
    reward = runs / args.reward / "export" if args.reward else None
    out = pack_world(args.out, spec, runs / args.ae / "export", dynamics, reward, card, teacher)
    print(f"packed {spec.name} ({args.dynamics}, {spec.sampler} sampler) into {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    import envs  # noqa: F401
    from models.export import load_export
    from worldgen.content import format_content, format_events
    from worldgen.endings import ENDING_LEAD, ENDING_TOLERANCE, format_endings
    from worldgen.data.dataset import EpisodeDataset
    from worldgen.eval import Method
    from worldgen.lam import world_relabeller
    from worldgen.reference import held_out_seeds
    from worldgen.report import evaluate_world, format_table
    from worldgen.rollout import Sampler, for_inference
    from worldgen.world import World, teacher_of

    if args.threads:
        torch.set_num_threads(args.threads)
    world = World(args.world, trusted_modules=args.trust_module)
    spec = world.spec
    noise, mid = spec.context_noise, spec.mid_time if args.mid_time is None else args.mid_time
    methods = [Method("repeat last frame", None)]
    steps_tried = (2, 1) if spec.sampler == "consistency" else (spec.default_steps,)
    methods += [Method(f"world {n}-step", world.net, spec.play_sampler(n, mid)) for n in steps_tried]
    teacher_path = None if args.no_teacher else args.teacher or teacher_of(world.folder)
    if teacher_path:
        teacher = for_inference(load_export(teacher_path, "dynamics", world.device)[0])
        methods += [Method("teacher 1-step mean", teacher, Sampler("ode", 1, noise)),
                    Method(f"teacher {args.teacher_steps} steps", teacher, Sampler("ode", args.teacher_steps, noise))]
    for item in args.method:
        name, _, rest = item.partition("=")
        rest, _, method_mid = rest.partition("~")
        rest, _, play_noise = rest.partition("@")
        path, _, steps = rest.partition(":")
        try:
            method_steps, method_noise, method_mid = int(steps or 0), float(play_noise or noise), float(method_mid or mid)
        except ValueError:
            raise ValueError(f"--method {item!r}: expected NAME=EXPORT[:STEPS][@NOISE][~MID] with numbers after : @ ~") from None
        net, config = load_export(Path(path), "dynamics", world.device)
        kind = config["sampler"]
        sampler = Sampler(kind, method_steps or (2 if kind == "consistency" else 32), method_noise, method_mid)
        methods.append(Method(name, for_inference(net), sampler))
    relabel = world_relabeller(args.lam, world) if args.lam else None
    used = set(spec.training_seeds) | (EpisodeDataset(args.data).level_seeds() if args.data else set())
    report = evaluate_world(world, methods, args.out, args.seed_list or held_out_seeds(args.seeds, used),
                            [int(h) for h in args.horizons.split(",")], used, args.extra_steps, args.content_frames,
                            args.content_streams, args.content_only, log=lambda line: print(line, flush=True), relabel=relabel,
                            key_draws=args.key_draws, key_pool=args.random_keys)
    if not args.content_only:
        print(format_table(report))
    ae = report["autoencoder"]
    kept = {key[: -len("_kept")]: v for key, v in ae.items() if key.endswith("_kept")}
    print(f"\nautoencoder on these frames: PSNR {ae['psnr']:.2f} dB"
          + "".join(f", {kind} kept " + ("n/a (none in these frames)" if v != v else f"{100 * v:.1f}%") for kind, v in kept.items()))
    print("per-colour pixel recall: " + ", ".join(f"{name} {100 * v:.1f}%" for name, v in ae["colour_recall"].items()))
    if "content" in report:
        print("\ncontent over long play (world's rate / real game's):\n" + format_content(report["content"]))
        events = format_events(report["content"])
        if events:
            print("\nreward head on the world's own frames, precision / recall (truth: the game's rules read from "
                  "those frames; last column: the real game on the same actions):\n" + events)
    if report.get("endings", {}).get("methods"):
        print(f"\nepisode endings of real play on unseen levels, replayed in the world (from the real frames {ENDING_LEAD} "
              f"steps before, the recorded actions; in time: within {ENDING_TOLERANCE} steps):\n" + format_endings(report["endings"]))
    print(f"wrote {args.out}/report.json" + ("" if args.content_only else ", psnr_vs_horizon.png, real_vs_generated.png")
          + (", content_vs_horizon.png, content_strip.png" if "content" in report else "")
          + (", endings_strip.png" if report.get("endings", {}).get("methods") else ""))
    return 0


def _tune(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    import envs  # noqa: F401
    from worldgen.atomic import write_json
    from worldgen.data.dataset import EpisodeDataset
    from worldgen.lam import world_relabeller
    from worldgen.tune import format_tuning, tune_mid_time
    from worldgen.world import World, write_spec

    if args.threads:
        torch.set_num_threads(args.threads)
    times = _times(args.times)
    world = World(args.world, trusted_modules=args.trust_module)
    if world.spec.sampler != "consistency":
        raise ValueError(f"{args.world} samples with its {world.spec.sampler!r} sampler; only a consistency world has a second-step time")
    used = set(world.spec.training_seeds) | (EpisodeDataset(args.data).level_seeds() if args.data else set())
    result = tune_mid_time(world, times, args.streams, args.frames, used, world_relabeller(args.lam, world) if args.lam else None,
                           log=lambda line: print(line, flush=True))
    print(format_tuning(result))
    if args.json:
        write_json(args.json, result)
    if args.write:
        write_spec(world.folder, dataclasses.replace(world.spec, mid_time=result["mid_time"]))
        print(f"wrote mid_time {result['mid_time']:g} into {world.folder}/world.json (was {world.spec.mid_time:g})")
    else:
        print(f"best second-step time {result['mid_time']:g} (the world has {world.spec.mid_time:g}; --write stores it)")
    return 0


def _times(text: str) -> list[float]:
    """--times: second-step times, each checked, e.g. "1.1,1.3,1.5"."""
    from worldgen.scm import check_mid_time

    try:
        times = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--times {text!r}: expected numbers separated by commas, e.g. 1.1,1.3,1.5") from None
    if not times:
        raise ValueError("--times names no second-step time; e.g. 1.1,1.3,1.5")
    for t in times:
        check_mid_time(t)
    return times


def _agent_train(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import torch

    import envs  # noqa: F401  (registers worldgen/World-v0 and the real games)
    from worldgen.agent import real_vec_env, train_agent, world_vec_env
    from worldgen.clone import CloneConfig
    from worldgen.data.sources import make_source_env
    from worldgen.world import World, read_spec, resolve_device, resolve_world

    torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    if not args.resume:
        _outputs_free([args.out], [], args.force)
    if args.real_env and args.starts:
        raise ValueError("--starts sets where episodes in a world begin; the real game starts its own levels (drop --starts or --real-env)")
    if args.clone_beta is not None and not args.clone:
        raise ValueError("--clone-beta weights the cloning of recorded play: pass --clone DATA too")
    clone = CloneConfig(args.clone, epochs=args.clone_epochs, advantage_beta=args.clone_beta) if args.clone else None
    if clone is not None:
        clone.validate()  # before any env is built
    if args.real_env:
        size = read_spec(resolve_world(args.world)).frame_size  # the frames an agent of this world sees
        vec_env = real_vec_env(lambda: gym.wrappers.TimeLimit(make_source_env(args.real_env, size), args.max_episode_steps), args.num_envs)
        where = args.real_env
    else:
        World(args.world, device=device, trusted_modules=args.trust_module)  # a bad world fails here, before any env
        vec_env = world_vec_env(gym.make_vec("worldgen/World-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                                             world=str(args.world), max_episode_steps=args.max_episode_steps, device=device,
                                             autoreset_mode="same_step", starts=args.starts))
        where = f"world {args.world}" + (f", episodes started from {args.starts}" if args.starts else "")
    out = train_agent(vec_env, args.out, args.steps, args.algo, args.seed, args.n_steps, args.ent_coef, args.tensorboard,
                      frame_stack=args.frame_stack, gamma=args.gamma, checkpoint_every=args.checkpoint_every,
                      resume=args.resume, device=device, clone=clone, prior_kl=args.prior_kl,
                      action_meanings=read_spec(resolve_world(args.world)).action_meanings, log=print)
    print(f"trained {args.algo} for {args.steps} steps in all in {where}: {out}")
    return 0


def _agent_eval(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import torch

    import envs  # noqa: F401
    from worldgen.agent import Score, baselines, episode_returns, format_scores, load_agent
    from worldgen.data.sources import make_source_env, probe_action_meanings
    from worldgen.kit import kit_for
    from worldgen.reference import held_out_seeds
    from worldgen.world import read_spec, resolve_world

    if args.threads:
        torch.set_num_threads(args.threads)
    agents = {Path(path).stem: load_agent(Path(path), args.trust_agent, args.sample, args.seed)
              for path in args.agent}  # refused before any play
    spec = read_spec(resolve_world(args.world))
    make = lambda: make_source_env(args.env, spec.frame_size)  # noqa: E731  (the frames the world draws, as agents saw them)
    meanings = probe_action_meanings(make)
    num_actions = len(meanings)
    seeds = held_out_seeds(args.episodes, set(spec.training_seeds), start=args.first_seed)
    scores = [] if args.no_baselines else baselines(make, num_actions, seeds, progress=True)
    make_world = lambda: gym.make("worldgen/World-v0", world=str(args.world), max_episode_steps=args.world_steps)  # noqa: E731
    rules = kit_for(args.env).events
    for name, act in agents.items():
        score = Score(name, episode_returns(make, act, seeds, True, name))
        if args.in_world:
            imagined = episode_returns(make_world, act, seeds, True, f"{name} in the world", prompt=True, rules=rules)
            score.imagined, score.imagined_by_rules = (imagined, None) if rules is None else (imagined[:, 0], imagined[:, 1])
        scores.append(score)
    print(f"{args.env}, {len(seeds)} levels from seed {seeds[0]}:\n" + format_scores(scores, meanings))
    return 0


def _trust_module_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-module", action="append", default=[], metavar="MODULE",
                   help="a Python module the world's source_env may name (worldgen never imports a module a world names "
                        "unless you list it here: it would run that module's code)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="worldgen",
        description="Playable generated worlds from recorded gameplay.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="record gameplay of a Gymnasium env into episode shards")
    p.add_argument("--env", required=True, help="env id: worldgen/Platformer-v0, ALE/Breakout-v5, ...")
    p.add_argument("--episodes", type=int, required=True, help="episodes to record")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (created, or added to)")
    p.add_argument("--policy", choices=["random", "explore"], default="random",
                   help="random: random actions held for random durations; explore: the game's scripted player (the Platformer's explorer)")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    p.add_argument("--num-envs", type=int, default=1, help="parallel envs, one process each when > 1")
    p.add_argument("--seed", type=int, default=None, help="seed of the envs and the policy (default: random)")
    p.add_argument("--max-repeat", type=int, default=10, help="random policy: longest action hold, in steps")
    p.set_defaults(run=_collect)

    p = sub.add_parser("make-world", help="one command from a Gymnasium id, or from gameplay clips, to a packed, judged, "
                                          "timed world (resumable)")
    p.add_argument("--env", default=None, help="env id: worldgen/Platformer-v0, ALE/Boxing-v5, MountainCar-v0, ...; with "
                                                "--video, the game the clips show (its rules pay rewards; the world is judged on it)")
    p.add_argument("--video", type=Path, nargs="+", default=None, metavar="FILES_OR_DIR",
                   help="learn the world from these clips (mp4, webm, gif) with latent actions instead of collecting play")
    p.add_argument("--codes", type=_positive, default=8, help="with --video: how many latent actions (Genie uses 8)")
    p.add_argument("--labels", type=Path, default=None, help="with --video: a few episodes with true actions (`worldgen "
                   "collect`) that steer the codes toward the keys and name them, so the arrow keys play the world")
    p.add_argument("--out", type=Path, required=True, help="folder for data/, runs/, world/, eval/ and bench.json")
    p.add_argument("--preset", choices=["tiny", "small", "base"], default="small",
                   help="tiny: a smoke test; small: the 2-core CPU, about 3 hours; base: a GPU")
    p.add_argument("--episodes", type=_positive, default=None, help="episodes to collect (default: the preset's)")
    p.add_argument("--policy", choices=["explore", "random"], default=None,
                   help="who plays while collecting (default: the game's scripted player if its kit has one, else random)")
    p.add_argument("--seed", type=int, default=0, help="seed of collection and every training stage's data order")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its estimated time, and stop")
    p.set_defaults(run=_make_world)

    p = sub.add_parser("train", help="train a world's models: ae, then teacher, scm and reward")
    p.add_argument("stage", choices=["ae", "teacher", "scm", "reward", "lam"],
                   help="ae: frame autoencoder; teacher: diffusion model of the next latent; "
                        "scm: consistency model from the teacher; reward: reward and termination head; "
                        "lam: latent action model (actions learnt from video alone)")
    p.add_argument("--data", type=Path, required=True, help="dataset folder from `worldgen collect` or `worldgen data from-video`")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoints/, export/, tb/, metrics.jsonl")
    p.add_argument("--config", type=Path, default=None, help="TOML file overriding config fields")
    p.add_argument("--preset", default=None, help="model size: tiny, small (CPU) or base (GPU)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one field, e.g. optim.lr=1e-4")
    p.add_argument("--steps", type=int, default=None, help="shortcut for --set run.steps=N")
    p.add_argument("--batch-size", type=int, default=None, help="shortcut for --set run.batch_size=N")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--mode", choices=["sct", "scd"], default=None, help="scm: sCD (teacher tangents, default) or sCT (data tangents)")
    p.add_argument("--teacher", type=Path, default=None, help="scm: teacher export (default: ../teacher/export beside --out)")
    p.add_argument("--codes", type=_positive, default=None, help="lam: how many latent actions (Genie uses 8)")
    p.add_argument("--labels", type=Path, default=None,
                   help="lam: a few episodes with true actions (`worldgen collect`): they steer the codes toward the keys "
                        "(`--set label_weight=0`: they only name them) and name each code after the action it stands for")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(run=_train)

    p = sub.add_parser("lam-eval", help="judge a latent action model's codes against the true actions of real-game clips")
    p.add_argument("--lam", type=Path, required=True, help="the model's export folder (`worldgen train lam`)")
    p.add_argument("--clips", type=Path, required=True, help="held-out clips with their actions (`worldgen record --env ... --clips N`)")
    p.add_argument("--out", type=Path, required=True, help="folder for the clips' dataset and lam_report.json")
    p.set_defaults(run=_lam_eval)

    p = sub.add_parser("play", help="play a generated world with the keyboard (pygame window)")
    p.add_argument("--world", default="platformer", help="pretrained name or world folder (default: platformer)")
    p.add_argument("--prompt", default=None, help="an image file to start from (default: a level of the source game)")
    p.add_argument("--sampling-steps", "--steps", dest="steps", type=int, choices=[1, 2], default=None,
                   help="sampling steps per frame (TAB switches while playing; --steps: the old name, kept for a release)")
    p.add_argument("--scale", type=int, default=8, help="window pixels per frame pixel")
    p.add_argument("--compare", action="store_true", help="show the real source game beside, with a drift meter")
    p.add_argument("--seed", type=int, default=0, help="level seed of the source game and noise seed")
    p.add_argument("--clips", type=Path, default=Path("clips"), help="where F5 writes clips")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks: faster frames after a minute's compile")
    p.add_argument("--agent", type=Path, default=None, metavar="AGENT.zip",
                   help="an agent drives the world; M hands control to the keyboard and back (needs --trust-agent)")
    p.add_argument("--trust-agent", action="store_true", help="allow loading the agent zip (it holds pickled Python objects)")
    _trust_module_arg(p)
    p.set_defaults(run=_play)

    p = sub.add_parser("record", help="record a clip of a generated world, or of a real game, headless (mp4 or gif + actions JSON)")
    p.add_argument("--world", default="platformer")
    p.add_argument("--env", default=None, help="record this real game (a Gymnasium id) instead of a world")
    p.add_argument("--clips", type=_positive, default=1, help="with --env: clips of levels --seed, --seed + 1, ... (OUT-000.mp4, ...)")
    p.add_argument("--fps", type=_positive, default=15, help="with --env: the clip's frame rate (ALE at frame skip 4 runs 15 steps a second)")
    p.add_argument("--policy", default="random",
                   help="random, ACTIONS.json (a list or a clip) or a stable-baselines3 agent .zip (with --trust-agent); "
                        "with --env also kit (the game kit's scripted player, where it has one)")
    p.add_argument("--trust-agent", action="store_true",
                   help="allow an agent .zip: stable-baselines3 zips hold pickled Python objects, which run code when "
                        "loaded, so load only agents you trust")
    p.add_argument("--frames", type=_positive, default=300)
    p.add_argument("--prompt", default=None, help="an image file to start from (default: level --seed of the source game)")
    p.add_argument("--sampling-steps", "--steps", dest="steps", type=int, choices=[1, 2], default=None,
                   help="sampling steps per frame (--steps: the old name, kept for a release)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=_positive, default=4, help="video pixels per frame pixel")
    p.add_argument("-o", "--output", type=Path, required=True, help="clip.mp4 or clip.gif (the actions go to clip.json)")
    p.add_argument("--force", action="store_true", help="replace an existing output (never an input)")
    _trust_module_arg(p)
    p.set_defaults(run=_record)

    p = sub.add_parser("replay", help="redraw a recorded clip frame for frame from its JSON")
    p.add_argument("clip", type=Path, help="the clip's JSON")
    p.add_argument("-o", "--output", type=Path, default=None, help="video to write (default: CLIP.replay.mp4)")
    p.add_argument("--scale", type=_positive, default=4)
    p.add_argument("--force", action="store_true", help="replace an existing output (never the clip)")
    _trust_module_arg(p)
    p.set_defaults(run=_replay)

    p = sub.add_parser("bench", help="how fast a world runs: frames/s, throughput, ms per model call (CPU, and CUDA when present)")
    p.add_argument("--world", default="platformer")
    p.add_argument("--teacher", type=Path, default=None, help="also time this teacher export at 8 and 32 ODE steps (default: the world's own)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 16, 64], help="vector-env sizes to time")
    p.add_argument("--seconds", type=float, default=2.0, help="minimum timing per figure")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--cpu-only", action="store_true")
    p.add_argument("--compile", action="store_true", help="time the world's networks through torch.compile")
    p.add_argument("--json", type=Path, default=None)
    p.set_defaults(run=_bench)

    p = sub.add_parser("pack", help="assemble a world folder from a run's ae, dynamics and reward exports")
    p.add_argument("--runs", type=Path, required=True, help="folder with ae/, reward/ and the dynamics run")
    p.add_argument("--dynamics", default="scd", help="which run is the world's dynamics: scd, sct or teacher")
    p.add_argument("--reward", default="reward", help="which run is the world's reward head ('' for none: the world pays nothing)")
    p.add_argument("--ae", default="ae", help="which run is the world's autoencoder")
    p.add_argument("--data", type=Path, required=True, help="the training dataset (action names, frame size, source game)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--source-env", default=None, help="Gymnasium id of the source game (default: the dataset's)")
    p.add_argument("--card", type=Path, default=None, help="a model card (markdown) to include as README.md")
    p.add_argument("--teacher", default="teacher", help="the teacher run to include, for eval and bench ('' for none)")
    p.set_defaults(run=_pack)

    p = sub.add_parser("eval", help="judge a world against its real source game on unseen levels")
    p.add_argument("--world", default="platformer")
    p.add_argument("--teacher", type=Path, default=None, help="a teacher export: adds its 1-step mean and 32 steps (default: the world's own)")
    p.add_argument("--no-teacher", action="store_true", help="leave the teacher out (its 32 steps cost the most)")
    p.add_argument("--teacher-steps", type=int, default=32, help="the teacher's ODE steps (besides its 1-step mean)")
    p.add_argument("--method", action="append", default=[], metavar="NAME=EXPORT[:STEPS][@NOISE][~MID]",
                   help="another dynamics export to compare, at STEPS sampling steps, context noise NOISE at play and "
                        "second-step time MID (default: the world's)")
    p.add_argument("--data", type=Path, default=None, help="the training dataset, whose level seeds are left out (besides those world.json lists)")
    p.add_argument("--mid-time", type=float, default=None,
                   help="the 2-step sampler's second-step time for every consistency method (default: the world's mid_time)")
    p.add_argument("--seeds", type=int, default=16, help="how many unseen level seeds")
    p.add_argument("--seed-list", type=int, nargs="+", default=None)
    p.add_argument("--horizons", default="1,8,32,128")
    p.add_argument("--extra-steps", type=int, default=60, help="real steps recorded beyond the longest horizon")
    p.add_argument("--content-frames", type=int, default=1000,
                   help="length of the long-play content rollouts (0: skip the content section)")
    p.add_argument("--content-streams", type=int, default=16, help="how many long-play rollouts, each from its own unseen level")
    p.add_argument("--content-only", action="store_true",
                   help="only the content section and the autoencoder's report (with the same --seeds, the same streams)")
    p.add_argument("--lam", type=Path, default=None, metavar="LAM_EXPORT",
                   help="a world trained on latent actions: the real game plays its own keys, the world gets the codes "
                        "this latent action model reads off the real frames")
    p.add_argument("--key-draws", type=_positive, default=1,
                   help="draws of uniform random keys pooled into dPSNR (one per rollout is noisy at t4)")
    p.add_argument("--random-keys", type=_keys, default=None, metavar="A,B,...",
                   help="draw dPSNR's random keys from this list (a key listed twice comes twice as often; "
                        "default: every action once)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    _trust_module_arg(p)
    p.set_defaults(run=_eval)

    p = sub.add_parser("tune", help="choose a world's second sampling step by the content it keeps over long play on validation levels")
    p.add_argument("--world", default="platformer")
    p.add_argument("--times", default="1.1,1.2,1.3,1.4,1.5", help="the second-step times to try (TrigFlow t, comma-separated)")
    p.add_argument("--streams", type=_positive, default=8, help="long-play rollouts per time, each from its own validation level")
    p.add_argument("--frames", type=_positive, default=1000, help="frames of each rollout")
    p.add_argument("--data", type=Path, default=None, help="the training dataset, whose level seeds are left out (besides those world.json lists)")
    p.add_argument("--lam", type=Path, default=None, metavar="LAM_EXPORT", help="a world on latent actions: as for eval")
    p.add_argument("--json", type=Path, default=None, help="write every candidate's scores here")
    p.add_argument("--write", action="store_true", help="store the best time in the world's world.json")
    p.add_argument("--threads", type=int, default=0)
    _trust_module_arg(p)
    p.set_defaults(run=_tune)

    agent = sub.add_parser("agent", help="RL agents: train one in a world (or the real game), score agents in the real game")
    agents = agent.add_subparsers(dest="agent_command", required=True)
    p = agents.add_parser("train", help="train a Stable-Baselines3 agent on worldgen/World-v0 (batched) and save it")
    p.add_argument("--world", default="platformer", help="pretrained name or world folder to train in")
    p.add_argument("--real-env", default=None, metavar="ENV_ID", help="train in this real game instead (the upper reference)")
    p.add_argument("--algo", choices=["ppo", "a2c"], default="ppo")
    p.add_argument("--steps", type=int, required=True, help="environment steps in all (0 with --clone: the cloned agent alone)")
    p.add_argument("--num-envs", type=_positive, default=16, help="worlds stepped in one batched model call")
    p.add_argument("--n-steps", type=_positive, default=128, help="rollout length per env between updates")
    p.add_argument("--max-episode-steps", type=_positive, default=1000, help="training episodes (in the world or the real game) are cut after this many steps")
    p.add_argument("--starts", type=Path, default=None, metavar="DATA",
                   help="start each episode in the world from a random state of this recorded play of the source game "
                        "(the world's own training data), not from a level's first frame")
    p.add_argument("--clone", type=Path, default=None, metavar="DATA",
                   help="before RL, fit the policy to the actions of this recorded play of the source game (the world's own "
                        "training data) and its value to their returns, as Dreamer 4 starts its agents")
    p.add_argument("--clone-epochs", type=_positive, default=2, help="passes over --clone's training episodes")
    p.add_argument("--clone-beta", type=float, default=None, metavar="BETA",
                   help="advantage-weighted cloning: from the second pass on, weight each recorded step by "
                        "exp((return - value) / BETA), so the steps that did better than the recorder's usual play count more "
                        "(default: plain cloning)")
    p.add_argument("--prior-kl", type=float, default=None, metavar="NATS",
                   help="after each RL update, pull the policy back toward its clone until KL(clone || policy) on the states "
                        "just played is at most this (default: off; the clone is kept as AGENT.clone.zip)")
    p.add_argument("--ent-coef", type=float, default=0.01, help="entropy bonus (keeps exploring until sparse rewards are found)")
    p.add_argument("--frame-stack", type=_positive, default=1,
                   help="frames the policy sees at once (motion, not only places; 4 learnt less than 1 in 200k Platformer steps)")
    p.add_argument("--gamma", type=float, default=0.99, help="discount (0.998 did not help on the Platformer: README, Agents)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive, default=2, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="where the policy learns and the worlds run: auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--tensorboard", type=Path, default=None, help="TensorBoard log folder")
    p.add_argument("--out", type=Path, required=True, help="the agent, AGENT.zip")
    p.add_argument("--force", action="store_true", help="replace an existing agent file")
    p.add_argument("--checkpoint-every", type=_positive, default=20_000, metavar="STEPS",
                   help="save the agent to --out this often during training")
    p.add_argument("--resume", action="store_true",
                   help="go on training the agent at --out (a checkpoint or a finished agent) until --steps in all")
    _trust_module_arg(p)
    p.set_defaults(run=_agent_train)
    p = agents.add_parser("eval", help="score agents in the real game on held-out levels, beside random and the best constant action")
    p.add_argument("--agent", action="append", default=[], metavar="AGENT.zip", help="an agent to score (repeatable)")
    p.add_argument("--trust-agent", action="store_true", help="allow loading agent zips (they hold pickled Python objects)")
    p.add_argument("--env", default="worldgen/Platformer-v0", help="the real game")
    p.add_argument("--episodes", type=_positive, default=50, help="held-out levels, one episode each")
    p.add_argument("--first-seed", type=int, default=1_000_000, help="the first level seed tried")
    p.add_argument("--world", default="platformer", help="a world whose training levels are left out")
    p.add_argument("--in-world", action="store_true",
                   help="also play each agent in --world from the same levels' first frames: return in the world, and the gap")
    p.add_argument("--world-steps", type=_positive, default=1000, help="episode cut in the world (the real game's is 1000)")
    p.add_argument("--no-baselines", action="store_true", help="leave out random and the constant actions")
    p.add_argument("--sample", action="store_true",
                   help="agents draw their actions from their policy (as in training) instead of taking the most likely one")
    p.add_argument("--seed", type=int, default=0, help="with --sample: seed of the agents' draws")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default; 1 beside other jobs: an idle thread spins while another process has the core)")
    p.set_defaults(run=_agent_eval)

    data = sub.add_parser("data", help="inspect datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("info", help="episodes, frames, action histogram and size of a dataset; checks every shard")
    p.add_argument("dir", type=Path)
    p.add_argument("--quick", action="store_true", help="skip reading every frame back (the CRC check)")
    p.set_defaults(run=_data_info)
    p = data.add_parser("from-video", help="a dataset with no actions from mp4, webm or gif clips (for `worldgen train lam`)")
    p.add_argument("paths", type=Path, nargs="+", metavar="FILES_OR_DIR", help="clips, or folders of clips")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (created, or added to)")
    p.add_argument("--size", type=_positive, default=64, help="square frame size")
    p.add_argument("--fps", type=float, default=None, help="the dataset's frame rate (default: the lowest of the clips)")
    p.add_argument("--crop", action="store_true", help="centre-crop frames to a square instead of stretching them")
    p.set_defaults(run=_data_from_video)
    p = data.add_parser("label", help="a copy of a dataset whose actions are a latent action model's codes (`worldgen train lam`)")
    p.add_argument("dir", type=Path, help="the dataset to label (from video, or any)")
    p.add_argument("--lam", type=Path, default=None, help="the latent action model's export folder")
    p.add_argument("--from-clips", action="store_true",
                   help="instead, the true actions and rewards `worldgen record --env` wrote beside each source clip")
    p.add_argument("--out", type=Path, required=True, help="a new dataset folder for the labelled copy")
    p.add_argument("--rules", default=None, metavar="ENV_ID",
                   help="read each step's reward and ending off the frames with this game's rules (its kit), for a reward head")
    p.set_defaults(run=_data_label)
    return parser


def main(argv: list[str] | None = None) -> int:
    from worldgen.checkpoint import CheckpointError
    from worldgen.data.sources import SourceEnvError
    from worldgen.data.storage import DatasetError, ShardError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (SourceEnvError, DatasetError, ShardError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every finished episode and checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
