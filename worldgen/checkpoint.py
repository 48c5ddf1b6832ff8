"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

Two kinds, kept apart (as EDM does): *weights* (`model.safetensors` + `config.json`, the EMA
weights a world runs on; read by `models.export`, written here) and *training states* (`checkpoints/step-NNNNNNNN/`, everything a
run needs to continue exactly: weights, EMA, optimizer, step, RNG). Both are written to a
temporary name and renamed, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from models.export import CONFIG, WEIGHTS, CheckpointError, read_tensors
from worldgen.atomic import atomic_folder, atomic_path, write_json

STATES = "checkpoints"


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp))


def save_weights(folder: Path, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """Export inference weights and their config into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save_tensors(folder / WEIGHTS, tensors)
    write_json(folder / CONFIG, config)


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
    return read_tensors(path / "state.safetensors"), state


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
