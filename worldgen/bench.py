"""How fast a world runs: end-to-end frames/s at batch 1, batched throughput, ms per model call."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from models.export import load_export
from worldgen.atomic import write_json
from worldgen.rollout import Sampler, for_inference, predict_next
from worldgen.scm import SIGMA_D
from worldgen.world import World


def _time(fn: Callable[[], Any], min_seconds: float = 1.0, min_calls: int = 3) -> float:
    """Seconds per call, after one warm-up call, over at least `min_calls` calls and `min_seconds`."""
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        fn()
        calls += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def machine() -> str:
    cpu = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA); {cpu}"
    return f"CPU {cpu}"


def bench_world(
    world_path: str | Path,
    batches: tuple[int, ...] = (1, 16, 64, 256),
    device: str = "auto",
    teacher: str | Path | None = None,
    min_seconds: float = 1.0,
    teacher_batches: tuple[int, ...] = (1, 16),
    compile: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Figures for one world on one device (see the module docstring). The teacher, 4 to 16
    times dearer per frame, is timed at `teacher_batches` only."""
    bar = tqdm(desc=f"bench on {device}", unit="figure", disable=not progress, leave=False)

    def timed(fn: Any, seconds: float, min_calls: int = 3) -> float:
        bar.update()
        return _time(fn, seconds, min_calls=min_calls)

    report: dict[str, Any] = {"machine": machine(), "world": str(world_path), "compiled": compile, "throughput": {}, "model_call_ms": {}}
    for steps in (1, 2):
        world = World(world_path, sampling_steps=steps, device=device, batch_size=1, compile=compile)
        world.reset(seed=0)
        per_frame = timed(lambda: world.step([0]), min_seconds)
        report[f"batch1_{steps}step_fps"] = 1 / per_frame
        report[f"batch1_{steps}step_ms"] = per_frame * 1e3
    for steps in (1, 2):
        name = "1 step" if steps == 1 else f"{steps} steps"
        report["throughput"][name] = {}
        for b in batches:
            world = World(world_path, sampling_steps=steps, device=device, batch_size=b, compile=compile)
            world.reset(seed=0)
            actions = np.zeros(b, dtype=np.int64)
            report["throughput"][name][b] = b / timed(lambda: world.step(actions), min_seconds)
    world = World(world_path, device=device, batch_size=1, compile=compile)
    world.reset(seed=0)
    ctx, acts = world.context, torch.cat([world.actions, torch.zeros(1, 1, dtype=torch.long, device=world.device)], dim=1)
    level = torch.zeros(1, device=world.device)
    x = ctx[:, -1] / SIGMA_D
    with torch.inference_mode():
        report["model_call_ms"]["network"] = timed(lambda: world.net(x, level, ctx, acts, level), min_seconds) * 1e3
        report["model_call_ms"]["decode"] = timed(lambda: world.ae.decode(ctx[:, -1] / SIGMA_D), min_seconds) * 1e3
        if world.reward_head is not None:
            report["model_call_ms"]["reward head"] = timed(lambda: world.reward_head(ctx, acts, x), min_seconds) * 1e3
        for steps in (1, 2):
            report["model_call_ms"][f"consistency_{steps}step"] = timed(
                lambda: predict_next(world.net, ctx, acts, world.spec.play_sampler(steps)), min_seconds) * 1e3
        if teacher is not None:
            net = for_inference(load_export(Path(teacher), "dynamics", world.device)[0])
            for steps in (8, 32):
                report["model_call_ms"][f"teacher_{steps}step"] = timed(
                    lambda: predict_next(net, ctx, acts, Sampler("ode", steps, world.spec.context_noise)), min_seconds) * 1e3
                report["throughput"][f"teacher {steps} steps"] = {}
                for b in teacher_batches:
                    bctx, bacts = ctx.expand(b, *ctx.shape[1:]), acts.expand(b, -1)

                    def frames() -> None:  # the world's step with the teacher's sampler: network calls, then decode
                        world.ae.decode(predict_next(net, bctx, bacts, Sampler("ode", steps, world.spec.context_noise)) / SIGMA_D)

                    report["throughput"][f"teacher {steps} steps"][b] = b / timed(frames, min_seconds, min_calls=1)
    bar.close()
    return report


def bench_vector_env(world_path: str | Path, num_envs: tuple[int, ...] = (1, 16, 64), device: str = "auto",
                     min_seconds: float = 1.0) -> dict[int, float]:
    """Environment steps per second of `worldgen/World-v0` as a Gymnasium vector env."""
    import gymnasium as gym

    out = {}
    for n in num_envs:
        venv = gym.make_vec("worldgen/World-v0", num_envs=n, vectorization_mode="vector_entry_point", world=str(world_path), device=device)
        venv.reset(seed=0)
        actions = np.zeros(n, dtype=np.int64)
        out[n] = n / _time(lambda: venv.step(actions), min_seconds)
        venv.close()
    return out


def format_report(report: dict[str, Any]) -> str:
    compiled = " (networks through torch.compile)" if report.get("compiled") else ""
    lines = [f"machine: {report['machine']}", f"world:   {report['world']}{compiled}", ""]
    lines.append("| measure | figure |")
    lines.append("|---|---|")
    for steps in (1, 2):
        lines.append(f"| end to end, batch 1, {steps} step(s) | {report[f'batch1_{steps}step_fps']:.1f} frames/s "
                     f"({report[f'batch1_{steps}step_ms']:.1f} ms) |")
    for sampler, by_batch in report["throughput"].items():
        for b, fps in by_batch.items():
            lines.append(f"| throughput, {sampler}, batch {b} | {fps:,.0f} frames/s |")
    for name, ms in report["model_call_ms"].items():
        lines.append(f"| {name.replace('_', ' ')}, batch 1 | {ms:.2f} ms |")
    for n, sps in report.get("vector_env", {}).items():
        lines.append(f"| worldgen/World-v0 vector env, {n} envs | {sps:,.0f} steps/s |")
    return "\n".join(lines)


def save_report(report: dict[str, Any], path: Path) -> None:
    write_json(Path(path), report)
