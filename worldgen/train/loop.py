"""The training loop every stage shares: optimisation, EMA, logging, checkpoints, resume,
DistributedDataParallel, and stopping on a non-finite loss."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from worldgen.checkpoint import (
    CheckpointError,
    list_states,
    load_state,
    optimizer_from_flat,
    optimizer_to_flat,
    save_state,
)
from worldgen.train.ema import EMA
from worldgen.train.config import OptimConfig, RunConfig


Logs = dict[str, float | torch.Tensor]
"""A step's scalars to log; tensors stay on the device and are read only on logging steps, so a
GPU step never waits for the host."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without overwriting good checkpoints."""


@dataclass
class Context:
    """What a stage sees of the run."""

    device: torch.device
    rank: int
    world_size: int
    step: int
    noise: torch.Generator
    """Every random draw of a training step (noise, times, augmentation) comes from here.
    It is reseeded from (seed, rank, step) each step, as edm2 does, so a resumed run draws
    exactly what the uninterrupted run would have."""
    autocast: Any

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class Stage(Protocol):
    name: str

    def modules(self) -> dict[str, nn.Module]:
        """The trained modules, by name (checkpointed, EMA-tracked, DDP-wrapped)."""

    def to(self, device: torch.device) -> None:
        """Move frozen helpers (autoencoder, teacher) to the device."""

    def batch(self, generator: torch.Generator, batch_size: int, ctx: Context) -> dict[str, torch.Tensor]: ...

    def loss(self, train: dict[str, nn.Module], batch: dict[str, torch.Tensor], ctx: Context) -> tuple[torch.Tensor, Logs]:
        """Mean loss of a batch (with grad) and scalars to log. `train` holds the modules, DDP-wrapped
        when distributed; `.module` of a wrapper (see `unwrap`) is the bare module. Logged
        tensors are detached scalars."""

    def export(self, ema: dict[str, nn.Module], folder: Path) -> None:
        """Write inference weights (the EMA) and their config into `folder`."""

    def evaluate(self, ema: dict[str, nn.Module], ctx: Context, writer: Any) -> dict[str, float]:
        """Validation scalars, and image grids to `writer` (a SummaryWriter, or None)."""


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def run_device(run: RunConfig) -> torch.device:
    """The device this process trains on: its local rank's GPU when CUDA is used, else the CPU."""
    from worldgen.world import resolve_device

    try:
        device = resolve_device(run.device)
    except ValueError as e:
        raise ValueError(f"run.device: {e}") from e
    return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}") if device.type == "cuda" else device


def _setup_distributed(run: RunConfig) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = run_device(run)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def _lr(optim: OptimConfig, step: int) -> float:
    return optim.lr * min(1.0, (step + 1) / max(optim.warmup_steps, 1))


def train(stage: Stage, run: RunConfig, optim: OptimConfig, out: Path, resume: bool, config: dict[str, Any]) -> Path:
    """Run `stage` for `run.steps` steps into the folder `out`; returns the exported weights folder."""
    out = Path(out)
    if run.threads:
        torch.set_num_threads(run.threads)
    rank, world, device = _setup_distributed(run)
    states = list_states(out)
    if states and not resume:
        raise ValueError(f"{out} already holds a run (checkpoints up to {states[-1].name}); pass --resume to continue it or choose another --out")
    if resume and not states:
        raise ValueError(f"--resume: {out} has no checkpoint to resume from")

    modules = stage.modules()
    for m in modules.values():
        m.to(device)
    stage.to(device)
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay)
    ema = {name: EMA(m, optim.ema_decay) for name, m in modules.items()}
    data_gen = torch.Generator()
    noise_gen = torch.Generator(device)
    start = 0
    if resume:
        start, resumed = _resume(states, modules, ema, opt, device)
        states = states[: states.index(resumed) + 1]
    train_modules = {
        name: DistributedDataParallel(m) if world > 1 and any(p.requires_grad for p in m.parameters()) else m
        for name, m in modules.items()
    }
    use_bf16 = run.bf16 and device.type == "cuda"
    ctx = Context(device, rank, world, start, noise_gen, lambda: torch.autocast("cuda", torch.bfloat16) if use_bf16 else nullcontext())

    writer = None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(config, indent=1))
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    metrics = (out / "metrics.jsonl").open("a") if rank == 0 else None
    bar = tqdm(total=run.steps, initial=start, disable=rank != 0, desc=f"train {stage.name}", dynamic_ncols=True)
    last_good = states[-1] if states else None
    t_last, n_last = time.perf_counter(), start
    # The first non-finite loss and its step, kept on the device and read before anything is
    # logged or checkpointed: a bad step never reaches a checkpoint, and good steps never sync.
    bad_step = torch.full((), -1, dtype=torch.long, device=device)
    bad_loss = torch.zeros((), device=device)
    deadline = time.monotonic() + 60 * run.minutes if run.minutes > 0 else math.inf
    try:
        for step in range(start, run.steps):
            ctx.step = step
            seed = (run.seed * 1_000_003 + step) * 1009 + rank
            data_gen.manual_seed(seed)
            noise_gen.manual_seed(seed + 1)
            for group in opt.param_groups:
                group["lr"] = _lr(optim, step)
            batch = stage.batch(data_gen, run.batch_size, ctx)
            loss, logs = stage.loss(train_modules, batch, ctx)
            loss_value = loss.detach().clone()
            if world > 1:
                dist.all_reduce(loss_value)
                loss_value /= world
            first = (bad_step < 0) & ~torch.isfinite(loss_value)
            bad_step.masked_fill_(first, step)
            bad_loss = torch.where(first, loss_value.float(), bad_loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, optim.grad_clip if optim.grad_clip > 0 else float("inf"))
            opt.step()
            for name, m in modules.items():
                ema[name].update(m)
            bar.update(1)
            log_now = (step + 1) % run.log_every == 0 or step + 1 == run.steps
            done = step + 1 == run.steps or _past(deadline, world, device)
            ckpt_now = (step + 1) % run.ckpt_every == 0 or done
            if (log_now or ckpt_now) and int(bad_step) >= 0:
                where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
                raise TrainingDiverged(f"{stage.name}: loss became {float(bad_loss)} at step {int(bad_step)}; stopped, {where}")
            if log_now:
                now = time.perf_counter()
                rate = (step + 1 - n_last) / max(now - t_last, 1e-9)
                t_last, n_last = now, step + 1
                record = {"step": step + 1, "loss": float(loss_value), "grad_norm": float(grad_norm), "lr": _lr(optim, step),
                          "it_per_s": rate, "samples": (step + 1) * run.batch_size * world, **{k: float(v) for k, v in logs.items()}}
                bar.set_postfix(loss=f"{record['loss']:.4f}", it_s=f"{rate:.2f}")
                if writer is not None:
                    for k, v in record.items():
                        if k != "step":
                            writer.add_scalar(f"{stage.name}/{k}", v, step + 1)
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
            if (run.image_every and (step + 1) % run.image_every == 0) or done:
                scalars = _evaluate(stage, modules, ema, ctx, writer)
                if writer is not None and scalars:
                    for k, v in scalars.items():
                        writer.add_scalar(f"{stage.name}/val/{k}", v, step + 1)
                    metrics.write(json.dumps({"step": step + 1, **{f"val/{k}": v for k, v in scalars.items()}}) + "\n")
                    metrics.flush()
            if ckpt_now:
                in_sync = _ranks_in_sync(modules, world)
                if rank == 0:
                    last_good = _checkpoint(stage, modules, ema, opt, out, step + 1, run, world, in_sync)
            if done:
                break
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if metrics is not None:
            metrics.close()
    if start >= run.steps and rank == 0:  # resumed at its end: export that checkpoint (e.g. an earlier one kept)
        _export(stage, modules, ema, out)
    if world > 1:
        dist.barrier()
    return out / "export"


def _past(deadline: float, world: int, device: torch.device) -> bool:
    """Whether the time budget is spent; every rank follows rank 0's clock, so all stop at one step."""
    if deadline == math.inf:
        return False
    if world == 1:
        return time.monotonic() >= deadline
    late = torch.tensor(float(time.monotonic() >= deadline), device=device)
    dist.broadcast(late, 0)
    return bool(late.item())


def _resume(states: list[Path], modules: dict[str, nn.Module], ema: dict[str, EMA], opt: torch.optim.Optimizer,
            device: torch.device) -> tuple[int, Path]:
    """Load the newest training state that reads back whole. A damaged newer one (a disk fault, a
    copy cut short) is reported and passed over; the run writes that step afresh when it gets there."""
    problems = []
    for path in reversed(states):
        try:
            tensors, state = load_state(path)
            for name, m in modules.items():
                m.load_state_dict(_prefixed(tensors, f"model.{name}."))
                ema[name].shadow = {k: v.to(device) for k, v in _prefixed(tensors, f"ema.{name}.").items()}
            optimizer_from_flat(opt, _prefixed(tensors, "optim."), state["optim"])
            step = int(state["step"])
        except (CheckpointError, KeyError, TypeError, ValueError, RuntimeError) as e:
            problems.append(f"{path.name}: {e}")
            print(f"warning: cannot resume from {path} ({e}); trying an older checkpoint", file=sys.stderr)
            continue
        return step, path
    raise CheckpointError("--resume: no checkpoint reads back whole: " + "; ".join(problems))


def _evaluate(stage: Stage, modules: dict[str, nn.Module], ema: dict[str, EMA], ctx: Context, writer: Any) -> dict[str, float]:
    """Validation on the EMA weights, in copies, so training modules are untouched."""
    if not ctx.is_main:
        return {}
    import copy

    shadows = {}
    for name, m in modules.items():
        shadow = copy.deepcopy(m)
        ema[name].copy_to(shadow)
        shadow.eval()
        shadows[name] = shadow
    with torch.no_grad():
        return stage.evaluate(shadows, ctx, writer)


def _ranks_in_sync(modules: dict[str, nn.Module], world: int) -> bool:
    """DDP keeps every rank's weights identical; check it rather than assume it."""
    if world == 1:
        return True
    flat = torch.cat([p.detach().float().flatten() for m in modules.values() for p in m.parameters()])
    checks = torch.stack([flat.sum(), flat.pow(2).sum()]).cpu()
    gathered = [torch.zeros_like(checks) for _ in range(world)]
    dist.all_gather(gathered, checks)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def _checkpoint(stage, modules, ema, opt, out: Path, step: int, run: RunConfig, world: int, in_sync: bool) -> Path:
    if not in_sync:
        raise TrainingDiverged(f"{stage.name}: the {world} ranks' weights differ at step {step}; refusing to checkpoint")
    tensors: dict[str, torch.Tensor] = {}
    for name, m in modules.items():
        tensors.update({f"model.{name}.{k}": v for k, v in m.state_dict().items()})
        tensors.update({f"ema.{name}.{k}": v for k, v in ema[name].shadow.items()})
    opt_tensors, opt_rest = optimizer_to_flat(opt)
    tensors.update({f"optim.{k}": v for k, v in opt_tensors.items()})
    path = save_state(out, step, tensors, {"optim": opt_rest, "world_size": world, "ranks_in_sync": in_sync}, run.keep_checkpoints)
    _export(stage, modules, ema, out)
    return path


def _export(stage: Stage, modules: dict[str, nn.Module], ema: dict[str, EMA], out: Path) -> None:
    """The EMA weights, as the stage's inference export in `out/export`."""
    import copy

    shadows = {}
    for name, m in modules.items():
        shadow = copy.deepcopy(m)
        ema[name].copy_to(shadow)
        shadows[name] = shadow.to("cpu")
    stage.export(shadows, out / "export")


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
