"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

Two kinds, kept apart (as EDM does): *weights* (`model.safetensors` + `config.json`, the EMA
weights a world runs on) and *training states* (`checkpoints/step-NNNNNNNN/`, everything a
run needs to continue exactly: weights, EMA, optimizer, step, RNG). Both are written to a
temporary name and renamed, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from worldgen.data.storage import atomic_folder, atomic_path, write_atomic

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
STATES = "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, corrupted or of the wrong kind."""


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupted or not a safetensors file ({e})") from e


def save_weights(folder: Path, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """Export inference weights and their config into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save_tensors(folder / WEIGHTS, tensors)
    data = json.dumps(config, indent=1).encode()
    write_atomic(folder / CONFIG, lambda f: f.write(data))


def load_weights(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    folder = Path(folder)
    if not (folder / CONFIG).exists():
        raise CheckpointError(f"{folder}: no {CONFIG}; expected a worldgen weights folder (model.safetensors + config.json)")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{folder / CONFIG}: corrupted ({e})") from e
    return _load_tensors(folder / WEIGHTS), config


def load_module(
    folder: Path, kinds: tuple[str, ...], build: Callable[[dict[str, Any]], torch.nn.Module], device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """An exported module in eval mode, and its config; `build` makes the bare module from the config.

    The module is first built on the meta device (no memory) and checked against the file, so a
    config of absurd sizes or weights of the wrong shape, type or value give an error, not an
    allocation of hundreds of GB or a world that draws garbage.
    """
    tensors, config = load_weights(folder)
    if not isinstance(config, dict) or config.get("kind") not in kinds:
        kind = config.get("kind") if isinstance(config, dict) else None
        raise CheckpointError(f"{folder}: expected a {' or '.join(kinds)} export, found kind {kind!r}")
    try:
        with torch.device("meta"):
            expected = build(config).state_dict()
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{Path(folder) / CONFIG}: invalid model config {config.get('model')!r} ({type(e).__name__}: {e})") from None
    problems = _weight_problems(expected, tensors)
    if problems:
        raise CheckpointError(f"{Path(folder) / WEIGHTS} does not fit {Path(folder) / CONFIG}: " + "; ".join(problems[:5])
                              + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""))
    module = build(config)
    module.load_state_dict(tensors)
    return module.to(device).eval(), config


def _weight_problems(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected, mis-shaped, mis-typed or non-finite weights."""
    problems = [f"missing {k}" for k in expected if k not in found] + [f"unexpected {k}" for k in found if k not in expected]
    for key, want in expected.items():
        have = found.get(key)
        if have is None:
            continue
        if have.shape != want.shape:
            problems.append(f"{key} has shape {tuple(have.shape)}, expected {tuple(want.shape)}")
        elif want.dtype.is_floating_point and not have.dtype.is_floating_point:
            problems.append(f"{key} holds {have.dtype} values, expected floating point")
        elif have.dtype.is_floating_point and not torch.isfinite(have).all():
            problems.append(f"{key} holds NaN or infinite values")
    return problems


def save_state(run: Path, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any], keep: int) -> Path:
    """Write a resumable training state for `step`, then drop all but the newest `keep`."""
    root = Path(run) / STATES
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    with atomic_folder(final) as tmp:
        _save_tensors(tmp / "state.safetensors", tensors)
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1))
    for old in list_states(run)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_states(run: Path) -> list[Path]:
    root = Path(run) / STATES
    return sorted(p for p in root.glob("step-*") if p.is_dir()) if root.exists() else []


def load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable training state ({e})") from e
    return _load_tensors(path / "state.safetensors"), state


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state dict as (tensors, JSON-able rest)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, per_param in sd["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *rest["scalars"].items()]:
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
