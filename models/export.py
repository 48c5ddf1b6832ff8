"""Exported networks, loaded without pickle and without any training code.

An export is a folder: `model.safetensors` (the EMA weights a world runs on) and `config.json`
(`kind`, the model config, and facts such as the sampler or the frame size it was trained on).
Playing a world needs only this module and the architectures; `worldgen.checkpoint` writes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from models.autoencoder import Autoencoder, AutoencoderConfig
from models.configs import from_dict
from models.dynamics import DynamicsConfig, DynamicsNet
from models.lam import LAMConfig, LatentActionModel
from models.reward import RewardConfig, RewardHead

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {
    "autoencoder": (Autoencoder, AutoencoderConfig),
    "teacher": (DynamicsNet, DynamicsConfig),
    "sct": (DynamicsNet, DynamicsConfig),
    "scd": (DynamicsNet, DynamicsConfig),
    "reward": (RewardHead, RewardConfig),
    "lam": (LatentActionModel, LAMConfig),
}
"""An export's kind -> its network and config class (dynamics: a diffusion teacher, or a
consistency model from sCT or sCD)."""
FAMILIES = {"autoencoder": ("autoencoder",), "dynamics": ("teacher", "sct", "scd"), "reward": ("reward",), "lam": ("lam",)}


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, corrupted or of the wrong kind."""


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupted or not a safetensors file ({e})") from e


def load_weights(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    folder = Path(folder)
    if not (folder / CONFIG).exists():
        raise CheckpointError(f"{folder}: no {CONFIG}; expected a worldgen weights folder (model.safetensors + config.json)")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{folder / CONFIG}: corrupted ({e})") from e
    return read_tensors(folder / WEIGHTS), config


def load_export(folder: Path, family: str | None = None, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """An exported network in eval mode, and its config. `family` ("autoencoder", "dynamics",
    "reward" or "lam") names what the caller expects; the config's kind decides the architecture.

    The network is first built on the meta device (no memory) and checked against the file, so a
    config of absurd sizes or weights of the wrong shape, type or value give an error, not an
    allocation of hundreds of GB or a world that draws garbage.
    """
    tensors, config = load_weights(folder)
    kinds = FAMILIES[family] if family else tuple(ARCHITECTURES)
    kind = config.get("kind") if isinstance(config, dict) else None
    if kind not in kinds:
        raise CheckpointError(f"{folder}: expected a {' or '.join(kinds)} export, found kind {kind!r}")
    network, config_type = ARCHITECTURES[kind]
    build = lambda: network(from_dict(config_type, config["model"]))  # noqa: E731
    try:
        with torch.device("meta"):
            expected = build().state_dict()
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{Path(folder) / CONFIG}: invalid model config {config.get('model')!r} ({type(e).__name__}: {e})") from None
    problems = _weight_problems(expected, tensors)
    if problems:
        raise CheckpointError(f"{Path(folder) / WEIGHTS} does not fit {Path(folder) / CONFIG}: " + "; ".join(problems[:5])
                              + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""))
    module = build()
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
