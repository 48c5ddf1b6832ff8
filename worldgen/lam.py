"""Latent actions in use: codes for every step of a dataset, and how well they name real moves.

A latent action model (`models.lam`, trained by `worldgen train lam`) gives each step of a
video a code. Here the codes are inferred for whole episodes (the first steps see the first
frame repeated, as training windows do), compared with true actions where a judge has them
(a confusion matrix, the accuracy of the best code -> action map), and written into a labelled
copy of a dataset that the world's stages then train on as if the codes were the game's keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from models.export import load_export
from worldgen.data.dataset import EpisodeDataset
from worldgen.codec import LatentCodec
from worldgen.data.latents import encode_dataset
from worldgen.scm import SIGMA_D


@dataclass
class LatentActions:
    """A trained latent action model, the autoencoder whose latents it reads, and its code names."""

    lam: torch.nn.Module
    ae: torch.nn.Module
    ae_folder: Path
    names: list[str]
    """One per code: `code N`, or the game action a label map gave it."""

    @classmethod
    def load(cls, folder: Path, device: torch.device | str = "cpu") -> "LatentActions":
        lam, config = load_export(folder, "lam", device)
        ae_folder = Path(config["ae"])
        if not ae_folder.is_absolute():
            ae_folder = Path(folder) / ae_folder
        ae = load_export(ae_folder, "autoencoder", device)[0]
        return cls(lam, ae, ae_folder, list(config.get("code_names") or code_names(lam.cfg.codes)))

    @property
    def codes(self) -> int:
        return self.lam.cfg.codes

    def episode_codes(self, data: Path, progress: bool = False) -> dict[str, np.ndarray]:
        """{shard file: the code of every step (T,)} for each episode of a dataset."""
        store = encode_dataset(self.ae, self.ae_folder, data, progress=progress)
        return {f: infer_codes(self.lam, store.frames(f, np.arange(store.counts[f]))) for f in EpisodeDataset(data).files}

    def frame_codes(self, frames: np.ndarray) -> np.ndarray:
        """The code of every step of a run of real frames (T + 1, H, W, 3) uint8 -> (T,): what
        the model reads each step to have done. A latent-action world is judged on these."""
        codec = LatentCodec(self.ae, next(self.ae.parameters()).device)
        return infer_codes(self.lam, (codec.encode(frames) / SIGMA_D).cpu().numpy())  # the unit-variance latents it trained on


def world_relabeller(folder: Path, world: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Real frames -> the codes a world on latent actions is given when it is judged on the real
    game (Genie's way): those its latent action model reads off the frames."""
    lam = LatentActions.load(folder, world.device)
    if lam.codes != len(world.action_meanings):
        raise ValueError(f"--lam {folder} has {lam.codes} codes, the world takes {len(world.action_meanings)} actions; "
                         "give the latent action model whose codes labelled the world's data")
    return lam.frame_codes


def code_names(codes: int) -> list[str]:
    return [f"code {i}" for i in range(codes)]


def step_windows(steps: int, k: int) -> np.ndarray:
    """Frame indices of the window of every step of an episode, (T, K + 1): frames t-K+1 .. t+1
    for step t, the first frame repeated before the episode began."""
    return np.maximum(np.arange(steps)[:, None] + np.arange(-k + 1, 2)[None], 0)


@torch.no_grad()
def infer_codes(lam: torch.nn.Module, latents: np.ndarray, batch: int = 512) -> np.ndarray:
    """The code of every step of one episode from its frames' latents (T + 1, C, h, w): (T,) int64."""
    device = next(lam.parameters()).device
    windows = step_windows(len(latents) - 1, lam.cfg.context)
    out = [lam.infer(torch.from_numpy(np.asarray(latents[windows[i : i + batch]], np.float32)).to(device)).cpu().numpy()
           for i in range(0, len(windows), batch)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def confusion_matrix(codes: np.ndarray, actions: np.ndarray, num_codes: int, num_actions: int) -> np.ndarray:
    """(codes, actions) counts of steps given each code while each true action was taken."""
    out = np.zeros((num_codes, num_actions), np.int64)
    np.add.at(out, (np.asarray(codes), np.asarray(actions)), 1)
    return out


def best_map(confusion: np.ndarray) -> tuple[np.ndarray, float]:
    """The best code -> action map (each code to the action it most often stands for; several
    codes may name one action) and the share of steps it gets right."""
    mapping = confusion.argmax(axis=1)
    total = confusion.sum()
    return mapping, float(confusion.max(axis=1).sum() / total) if total else float("nan")


def code_usage(codes: np.ndarray, num_codes: int) -> dict[str, Any]:
    """Share of steps per code, the codebook's perplexity (exp of the entropy of those shares:
    `num_codes` when all are used equally, 1 when one code does everything), and the dead codes."""
    share = np.bincount(np.asarray(codes), minlength=num_codes) / max(len(codes), 1)
    nonzero = share[share > 0]
    return {"share": share.tolist(), "perplexity": float(np.exp(-(nonzero * np.log(nonzero)).sum())),
            "dead": [int(i) for i in np.flatnonzero(share < DEAD_SHARE)]}


DEAD_SHARE = 0.001
"""A code given to fewer than this share of held-out steps is dead."""


def map_codes_to_actions(folder: Path, labels: Path, progress: bool = True) -> dict[str, Any]:
    """Name each code of the latent action model in `folder` after the game action it most
    often stands for in the labelled dataset `labels` (a few episodes with true actions, as
    `worldgen collect` records them), and write the names into its export: worlds made on it
    then show the game's action names, and the arrow keys play them. Returns the map's report."""
    from models.export import CONFIG
    from worldgen.atomic import write_json

    actions = LatentActions.load(folder)
    data = EpisodeDataset(labels)
    if not data.actions_known:
        raise ValueError(f"--labels {labels}: this dataset has no actions (made from video); record labelled episodes with `worldgen collect`")
    codes = actions.episode_codes(labels, progress)
    true = np.concatenate([s.actions for s in data.shards])
    confusion = confusion_matrix(np.concatenate([codes[f] for f in data.files]), true, actions.codes, len(data.action_meanings))
    mapping, accuracy = best_map(confusion)
    names = [data.action_meanings[a] if confusion[c].sum() else f"code {c}" for c, a in enumerate(mapping)]
    report = {"labels": str(labels), "episodes": len(data), "steps": int(confusion.sum()), "accuracy": accuracy,
              "action_meanings": data.action_meanings, "confusion": confusion.tolist()}
    config = json.loads((Path(folder) / CONFIG).read_text())
    config.update(code_names=names, label_map=report)
    write_json(Path(folder) / CONFIG, config)
    return {**report, "code_names": names}


def action_outcomes(env_id: str, seed: int, actions: np.ndarray, size: int = 64) -> np.ndarray:
    """(T, A) int: replaying the real game from level `seed`, for each step and each action the
    class of the next frame that action would have drawn from the same state; actions with the
    same class drew the same frame. A step shows its action when it has more than one class;
    the true action and any of its class are all a video could ever tell (mid-air, JUMP draws
    what NOOP draws; a first step of RIGHT moves the player less than a pixel)."""
    from worldgen.data.sources import make_source_env

    env = make_source_env(env_id, size)
    env.reset(seed=seed)
    n = env.action_space.n
    classes = np.zeros((len(actions), n), np.int64)
    for t, action in enumerate(actions):
        frames = _next_frames(env, n)
        for a in range(n):
            classes[t, a] = next(b for b in range(a + 1) if np.array_equal(frames[a], frames[b]))
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            classes = classes[: t + 1]
            break
    env.close()
    return classes


def _next_frames(env: Any, n: int) -> list[np.ndarray]:
    """The frame each of the `n` actions leads to from the env's current state, which is kept.
    An Atari game saves and restores its emulator's state (a copied emulator costs 0.2 s, 18
    actions a step); any other env is copied whole. The wrappers `make_source_env` adds hold no
    state of their own."""
    base = env.unwrapped
    if not (hasattr(base, "clone_state") and hasattr(base, "restore_state")):
        import copy

        return [copy.deepcopy(env).step(a)[0] for a in range(n)]
    state = base.clone_state(include_rng=True)
    frames = []
    for a in range(n):
        frames.append(env.step(a)[0])
        base.restore_state(state)
    return frames


def best_map_by_outcome(codes: np.ndarray, actions: np.ndarray, classes: np.ndarray, num_codes: int) -> tuple[np.ndarray, float]:
    """The best code -> action map when an action counts as right if the game draws with it the
    same next frame as with the true action (`action_outcomes`), and the share of steps it gets
    right. With every action drawing its own frame this is `best_map`."""
    same = classes == classes[np.arange(len(actions)), actions][:, None]  # (T, A): drew what the true action drew
    score = np.zeros((num_codes, classes.shape[1]))
    np.add.at(score, np.asarray(codes), same)
    return score.argmax(axis=1), float(score.max(axis=1).sum() / len(codes)) if len(codes) else float("nan")


def judge_on_clips(folder: Path, clips: Path, work: Path, progress: bool = True) -> dict[str, Any]:
    """How well the codes of the latent action model in `folder` name the true actions of
    real-game clips (`worldgen record --env` writes each clip's actions beside it)."""
    return judge_codes_on_clips(LatentActions.load(folder), clips, work, progress)


def judge_codes_on_clips(model: Any, clips: Path, work: Path, progress: bool = True) -> dict[str, Any]:
    """`judge_on_clips` for any `model` with `codes` and `episode_codes(data, progress)` (a
    benchmark judges a supervised probe of the same frames this way). The clips go through the
    same video path as training data (`work` keeps that dataset); the true actions are read
    only here, to judge. Scored on the steps that show their action (`action_outcomes`)."""
    from worldgen.data.storage import Shard
    from worldgen.data.video import dataset_from_videos, find_videos
    from worldgen.record import GAME_CLIP_FORMAT

    videos = [v for v in find_videos([clips]) if v.with_suffix(".json").exists()]
    sidecars = {str(v.resolve()): json.loads(v.with_suffix(".json").read_text()) for v in videos}
    if not videos or any(s.get("format") != GAME_CLIP_FORMAT for s in sidecars.values()):
        raise ValueError(f"{clips}: needs real-game clips with their actions beside them (`worldgen record --env ... --clips N`)")
    data = Path(work) / "data"
    dataset_from_videos(videos, data, progress=progress)
    codes = model.episode_codes(data, progress)
    meanings = next(iter(sidecars.values()))["action_meanings"]
    all_codes, all_actions, outcomes = [], [], []
    for file in EpisodeDataset(data).files:
        side = sidecars.get(Shard(data / file).meta["source"])
        if side is None:
            continue
        if len(side["actions"]) != len(codes[file]):
            raise ValueError(f"{file}: {len(codes[file])} steps in the video but {len(side['actions'])} actions beside it; "
                             "was the clip re-encoded at another frame rate?")
        actions = np.array(side["actions"])
        classes = action_outcomes(side["env"], side["seed"], actions)
        if len(classes) != len(actions):
            raise ValueError(f"{side['env']} level {side['seed']} ended after {len(classes)} of the clip's {len(actions)} steps; "
                             "not a clip of this game")
        all_codes.append(codes[file])
        all_actions.append(actions)
        outcomes.append(classes)
    c, a, k = np.concatenate(all_codes), np.concatenate(all_actions), np.concatenate(outcomes)
    shown = k.max(axis=1) > 0
    report: dict[str, Any] = {"clips": len(all_codes), "steps": len(c), "shown_steps": int(shown.sum()), "action_meanings": meanings,
                              "usage": code_usage(c, model.codes)}
    mapping, accuracy = best_map_by_outcome(c[shown], a[shown], k[shown], model.codes)
    report["shown"] = {"confusion": confusion_matrix(c[shown], a[shown], model.codes, len(meanings)).tolist(),
                       "map": [meanings[m] for m in mapping], "accuracy": accuracy,
                       "strict_accuracy": best_map(confusion_matrix(c[shown], a[shown], model.codes, len(meanings)))[1]}
    return report


def format_confusion(confusion: list[list[int]], meanings: list[str]) -> str:
    """Rows: codes; columns: true actions; each row's share of its steps per action, in %."""
    conf = np.array(confusion)
    lines = ["| code | steps | " + " | ".join(meanings) + " |", "|---|---|" + "---|" * len(meanings)]
    for i, row in enumerate(conf):
        total = row.sum()
        cells = [f"**{100 * v / total:.0f}**" if total and v == row.max() else (f"{100 * v / total:.0f}" if total else "-") for v in row]
        lines.append(f"| {i} | {total} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def label_dataset(data: Path, out: Path, lam: Path | None = None, rules_of: str | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """A copy of the dataset `data` with actions: the codes of the latent action model `lam`,
    which the world's stages then train on as on any game's recording (the model's code names
    as `action_meanings`); or, with `lam` None, the true actions and rewards that `worldgen
    record --env` wrote beside each source clip (the labelled reference a latent-action world
    is measured against). Video has no rewards: with `rules_of` (a game whose kit reads its
    rules from pictures), each step's reward and ending are read off the frames instead.
    Written into `out` one episode at a time, each atomically, the manifest last."""
    from tqdm import tqdm

    from worldgen.data.storage import (
        DatasetError, Episode, Shard, add_to_manifest, dataset_lock, new_manifest, shard_entry, write_manifest, write_shard,
    )
    from worldgen.kit import kit_for

    source = EpisodeDataset(data)
    rules = kit_for(rules_of).events if rules_of else None
    if rules_of and rules is None:
        raise ValueError(f"--rules {rules_of}: that game's kit reads no rules from pictures; leave --rules out (no reward head then)")
    if Path(out).resolve() == Path(data).resolve():
        raise ValueError(f"{out} is the dataset being labelled; write the labelled copy elsewhere")
    if lam is not None:
        model = LatentActions.load(lam)
        labels = {f: (c, None, None) for f, c in model.episode_codes(data, progress).items()}
        env_id, meanings = rules_of or source.env_id, model.names
        about = {"actions": "latent", "lam": str(Path(lam).resolve())}
    else:
        labels, env_id, meanings = clip_labels(data)
        about = {"actions": "from the clips"}
    with dataset_lock(out):
        if (Path(out) / "manifest.json").exists():
            raise DatasetError(f"{out} already holds a dataset; label into a new folder")
        manifest = new_manifest(env_id, meanings, source.frame_shape)
        if source.manifest.get("fps"):
            manifest["fps"] = source.manifest["fps"]  # the clips' pace is the world's
        manifest.update(about, labelled_from=str(Path(data).resolve()),
                        rewards="rules read from the frames" if rules else ("from the clips" if lam is None else "unknown"))
        for file in tqdm(source.files, desc="label", unit="ep", disable=not progress):
            shard = Shard(Path(data) / file)
            frames = shard.frames()
            actions, clip_rewards, clip_ended = labels[file]
            if rules:
                rewards, ended = rules(frames)
            elif clip_rewards is not None:
                rewards, ended = clip_rewards, clip_ended
            else:
                rewards, ended = np.zeros(shard.num_steps, np.float32), np.zeros(shard.num_steps, bool)
            keep = {k: v for k, v in shard.meta.items() if k not in ("format", "version", "env_id", "num_frames", "frame_shape", "chunk")}
            episode = Episode(frames, actions, np.asarray(rewards, np.float32), np.asarray(ended, bool), shard.truncated,
                              {**keep, "actions": about["actions"]})
            write_shard(Path(out) / file, episode, manifest["env_id"])
            add_to_manifest(manifest, shard_entry(file, episode))
            shard.close()
        write_manifest(out, manifest)
    steps = np.concatenate([a for a, _, _ in labels.values()])
    return {"episodes": len(source), "steps": len(steps), "action_share": code_usage(steps, len(meanings))["share"],
            "action_meanings": meanings}


def clip_labels(data: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], str, list[str]]:
    """Each episode's (actions, rewards, ended) from the JSON `worldgen record --env` wrote beside
    its source clip (the last step ends the episode when the clip says the game ended), the game's
    id and its action names."""
    from worldgen.data.storage import Shard
    from worldgen.record import GAME_CLIP_FORMAT

    labels, games = {}, set()
    meanings: list[str] = []
    for file in EpisodeDataset(data).files:
        shard = Shard(Path(data) / file)
        clip = Path(shard.meta.get("source", ""))
        steps = shard.num_steps
        shard.close()
        side_path = clip.with_suffix(".json")
        side = json.loads(side_path.read_text()) if side_path.is_file() else {}
        if side.get("format") != GAME_CLIP_FORMAT:
            raise ValueError(f"{file}: its clip {clip} has no actions beside it ({side_path}); only clips recorded with "
                             "`worldgen record --env ENV_ID` carry them")
        if len(side["actions"]) != steps:
            raise ValueError(f"{file}: {steps} steps in the video but {len(side['actions'])} actions in {side_path}; "
                             "was the clip re-encoded at another frame rate?")
        ended = np.zeros(steps, bool)
        ended[-1:] = bool(side.get("ended"))
        labels[file] = (np.asarray(side["actions"], np.int64), np.asarray(side["rewards"], np.float32), ended)
        games.add(side["env"])
        meanings = side["action_meanings"]
    if len(games) > 1:
        raise ValueError(f"{data}: clips of several games ({', '.join(sorted(games))}); label one game at a time")
    return labels, games.pop(), meanings
