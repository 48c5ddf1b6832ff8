"""Typed configs, overridable from a TOML file and from `key=value` pairs on the command line."""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.configs import coerce

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 500
    """Linear learning-rate warmup."""
    grad_clip: float = 1.0
    """Clip the global gradient norm (0 disables)."""
    ema_decay: float = 0.999
    """EMA of the weights; the EMA is what gets exported and evaluated."""


@dataclass
class RunConfig:
    steps: int = 20_000
    batch_size: int = 32
    seed: int = 0
    log_every: int = 50
    """Scalars to TensorBoard and metrics.jsonl every N steps."""
    image_every: int = 1000
    """Image grids to TensorBoard every N steps (0 disables)."""
    ckpt_every: int = 500
    """Write a resumable checkpoint and export the weights every N steps."""
    keep_checkpoints: int = 3
    val_fraction: float = 0.05
    """Share of episodes held out for validation (split by episode)."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""
    bf16: bool = True
    """bf16 autocast for forward passes on CUDA (ignored on CPU)."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    minutes: float = 0.0
    """Stop after this much training time (checkpoint, export and validation as at the last
    step; 0: no limit). For a budget (a lent GPU, a night): `--resume` later goes on to `steps`."""


def apply_overrides(cfg: Any, overrides: dict[str, Any], where: str = "override") -> Any:
    """Set dotted keys (`optim.lr`) on a (nested) dataclass, checking names and types."""
    for key, value in overrides.items():
        obj, parts = cfg, key.split(".")
        for part in parts[:-1]:
            if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
                raise ValueError(f"{where}: unknown config section {part!r} in {key!r}")
            obj = getattr(obj, part)
        name = parts[-1]
        fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
        if name not in fields:
            raise ValueError(f"{where}: unknown config key {key!r}; known: {', '.join(sorted(fields))}")
        hints = typing.get_type_hints(type(obj))
        try:
            setattr(obj, name, coerce(value, hints[name]))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: bad value {value!r} for {key!r} ({hints[name]}): {e}") from None
    return cfg


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load_toml(cfg: Any, path: Path) -> Any:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML ({e})") from None
    return apply_overrides(cfg, _flatten(data), where=str(path))


def parse_sets(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set takes key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def preset(presets: dict[str, Any], name: str, what: str) -> Any:
    """A copy of a named model preset, or a clear error listing the known ones."""
    if name not in presets:
        raise ValueError(f"unknown {what} preset {name!r}; choose from {', '.join(presets)}")
    return dataclasses.replace(presets[name])
