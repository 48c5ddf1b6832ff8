"""The `worldgen train` stages: config resolution (preset, TOML, --set) and the run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from worldgen.train.config import apply_overrides, load_toml, parse_sets

STAGES = ("ae", "teacher", "scm", "reward", "lam")


def _config_class(stage: str) -> tuple[type, Any]:
    if stage == "ae":
        from worldgen.train.ae import AETrainConfig, apply_preset

        return AETrainConfig, apply_preset
    if stage == "teacher":
        from worldgen.train.teacher import TeacherTrainConfig, apply_preset

        return TeacherTrainConfig, apply_preset
    if stage == "scm":
        from worldgen.train.consistency import ConsistencyTrainConfig

        return ConsistencyTrainConfig, None
    if stage == "reward":
        from worldgen.train.reward import RewardTrainConfig, apply_preset

        return RewardTrainConfig, apply_preset
    if stage == "lam":
        from worldgen.train.lam import LAMTrainConfig, apply_preset

        return LAMTrainConfig, apply_preset
    raise ValueError(f"unknown training stage {stage!r}; choose from {', '.join(STAGES)}")


def resolve_config(stage: str, preset: str | None, config_file: Path | None, sets: list[str]) -> Any:
    """Defaults, then the preset, then the TOML file, then `--set key=value` pairs."""
    kind, apply_preset = _config_class(stage)
    overrides = parse_sets(sets)
    if not hasattr(kind, "preset"):
        if preset or "preset" in overrides:
            raise ValueError(f"`train {stage}` trains its teacher's network; --preset belongs to ae, teacher and reward")
        cfg = kind()
        if config_file is not None:
            load_toml(cfg, config_file)
        apply_overrides(cfg, overrides, where="--set")
        return cfg
    from_file = load_toml(kind(), config_file) if config_file is not None else None
    cfg = kind()
    cfg.preset = preset or overrides.get("preset") or (from_file.preset if from_file else cfg.preset)
    apply_preset(cfg)
    if config_file is not None:
        load_toml(cfg, config_file)
    cfg.preset = preset or overrides.get("preset") or cfg.preset
    apply_overrides(cfg, {k: v for k, v in overrides.items() if k != "preset"}, where="--set")
    return cfg


def _sibling_export(out: Path, stage: str) -> Path:
    return Path(out).parent / stage / "export"


def run_stage(stage: str, cfg: Any, data: Path, out: Path, resume: bool) -> Path:
    import torch

    from worldgen.train.loop import train

    torch.manual_seed(cfg.run.seed)  # the same config starts from the same weights
    if stage == "ae":
        from worldgen.train.ae import AEStage

        runner: Any = AEStage(cfg, data)
    else:
        cfg.ae = cfg.ae or str(_sibling_export(out, "ae"))
        if stage == "teacher":
            from worldgen.train.teacher import TeacherStage

            runner = TeacherStage(cfg, data, Path(cfg.ae))
        elif stage == "scm":
            from worldgen.train.consistency import ConsistencyStage

            cfg.teacher = cfg.teacher or str(_sibling_export(out, "teacher"))
            runner = ConsistencyStage(cfg, data, Path(cfg.ae), Path(cfg.teacher))
        elif stage == "lam":
            from worldgen.train.lam import LAMStage

            runner = LAMStage(cfg, data, Path(cfg.ae))
        else:
            from worldgen.train.reward import RewardStage

            runner = RewardStage(cfg, data, Path(cfg.ae), pool_cache=Path(out) / "judged_pool.safetensors")
    config = {"stage": stage, "data": str(data), **dataclasses.asdict(cfg)}
    return train(runner, cfg.run, cfg.optim, out, resume, config)


def describe(cfg: Any) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=1)
