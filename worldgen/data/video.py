"""Datasets from video clips alone (mp4, webm, gif): frames, and no actions.

Genie learns a world from video that no one labelled. A clip becomes an episode whose actions
are marked unknown (-1, and `"actions": "unknown"` in the manifest); a latent action model
(`worldgen train lam`) later gives every step a code. Clips may differ in size and frame rate:
every frame is resized to the dataset's square size, and every clip is resampled to one
frame rate (by default the lowest among the clips, so no frame is ever invented).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from worldgen.data.storage import (
    DatasetError, Episode, add_to_manifest, dataset_lock, new_manifest, next_shard_index, read_manifest, shard_entry,
    shard_name, write_manifest, write_shard,
)
from worldgen.data.sources import VIDEO_ENV, resize_frames

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".mkv", ".mov", ".avi")
UNKNOWN_ACTION = -1


class VideoError(ValueError):
    """A clip that cannot be read, or a folder with no clips, with the reason."""


@dataclass
class Clip:
    path: Path
    frames: np.ndarray
    """(T, H, W, 3) uint8, as decoded."""
    fps: float


def find_videos(paths: list[Path]) -> list[Path]:
    """The clips named, and the clips inside any folder named (sorted, not recursive)."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
            if not inside:
                raise VideoError(f"{p}: no clips in this folder (looked for {', '.join(VIDEO_SUFFIXES)})")
            found += inside
        elif not p.exists():
            raise VideoError(f"{p}: no such file or folder")
        elif p.suffix.lower() not in VIDEO_SUFFIXES:
            raise VideoError(f"{p}: not a clip this reads ({p.suffix or 'no extension'}); expected one of {', '.join(VIDEO_SUFFIXES)}")
        else:
            found.append(p)
    return found


def read_clip(path: Path, probe: bool = False) -> Clip:
    """Decode a whole clip: gifs with Pillow (their frames may each last a different time, so
    they are put on a regular clock at the shortest frame's rate), the rest with imageio-ffmpeg.
    `probe`: for videos, only the frame rate and the first two frames (a check that is cheap)."""
    path = Path(path)
    try:
        clip = _read_gif(path) if path.suffix.lower() == ".gif" else _read_ffmpeg(path, 2 if probe else None)
    except VideoError:
        raise
    except Exception as e:  # decoders raise many kinds: OSError, RuntimeError, PIL's own
        raise VideoError(f"{path}: not a readable video ({type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else e})") from e
    if len(clip.frames) < 2:
        raise VideoError(f"{path}: {len(clip.frames)} frame(s); a clip needs at least 2 to show a step")
    return clip


def _read_ffmpeg(path: Path, most: int | None = None) -> Clip:
    import itertools

    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(f, dtype=np.uint8).reshape(h, w, 3) for f in itertools.islice(reader, most)]
    finally:
        reader.close()
    if not meta.get("fps"):
        raise VideoError(f"{path}: the video does not say its frame rate")
    return Clip(path, np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8), float(meta["fps"]))


def _read_gif(path: Path) -> Clip:
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        frames, durations = [], []
        for frame in ImageSequence.Iterator(image):
            frames.append(np.asarray(frame.convert("RGB")))
            durations.append(max(int(frame.info.get("duration", 100)), 10))  # browsers play 0 ms as 100 ms; 10 ms is the floor
    step = min(durations)
    starts = np.cumsum([0] + durations[:-1])
    ticks = np.arange(0, starts[-1] + durations[-1], step)
    index = np.searchsorted(starts, ticks, side="right") - 1
    return Clip(path, np.stack(frames)[index], 1000.0 / step)


SAME_RATE = 0.02
"""Frame rates this close (relative) are one rate: a gif stores 15 fps as 67 ms frames, 14.93 fps."""


def resample(frames: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Frames of a clip at `fps` shown at `target_fps` (<= fps): each output frame is the
    source frame on screen at its time."""
    if abs(fps - target_fps) <= SAME_RATE * target_fps:
        return frames
    if target_fps > fps:
        raise ValueError(f"cannot raise a clip's frame rate from {fps:g} to {target_fps:g} fps without inventing frames")
    n = int(np.floor((len(frames) - 1) * target_fps / fps + 1e-6)) + 1
    return frames[np.floor(np.arange(n) * fps / target_fps + 1e-6).astype(np.int64)]


@dataclass
class VideoImport:
    episodes: int
    frames: int
    fps: float
    skipped: list[str]
    """Clips already in the dataset (by path), not added again."""


def dataset_from_videos(paths: list[Path], out: Path, size: int = 64, fps: float | None = None, crop: bool = False,
                        progress: bool = True) -> VideoImport:
    """Add every clip of `paths` to the dataset folder `out` as one episode with unknown
    actions. `fps`: the dataset's frame rate (default: the lowest of the clips, or the rate
    the dataset already has). `crop`: centre-crop each frame to a square first, instead of
    stretching it. Each episode is written atomically as it is done."""
    videos = find_videos(paths)
    out = Path(out)
    with dataset_lock(out):
        manifest = _open_video_dataset(out, size)
        known = {s.get("source") for s in manifest["shards"]}
        todo = [v for v in videos if str(v.resolve()) not in known]
        clips = [read_clip(v, probe=True) for v in todo]  # every file checked before any is written
        target = fps or manifest.get("fps") or min((c.fps for c in clips), default=None)
        if manifest.get("fps") and target != manifest["fps"]:
            raise DatasetError(f"{out} holds clips at {manifest['fps']:g} fps; cannot add them at {target:g} fps: use another folder")
        slow = [f"{c.path} ({c.fps:g} fps)" for c in clips if c.fps < (target or 0) * (1 - SAME_RATE)]
        if slow:
            raise VideoError(f"clips slower than {target:g} fps would need invented frames: {', '.join(slow[:3])}; pass --fps {min(c.fps for c in clips):g} or lower")
        manifest["fps"] = target
        frames = 0
        for path in tqdm(todo, desc="clips", unit="clip", disable=not progress):
            clip = read_clip(path)  # one at a time: a folder of clips can be far larger than memory
            picture = resize_frames(resample(clip.frames, clip.fps, target), size, crop)
            t = len(picture) - 1
            episode = Episode(
                frames=picture, actions=np.full(t, UNKNOWN_ACTION, np.int64), rewards=np.zeros(t, np.float32),
                terminated=np.zeros(t, bool), truncated=np.arange(t) == t - 1,
                meta={"source": str(clip.path.resolve()), "source_fps": clip.fps, "fps": target, "actions": "unknown"},
            )
            name = shard_name(next_shard_index(out))
            write_shard(out / name, episode, VIDEO_ENV)
            add_to_manifest(manifest, {**shard_entry(name, episode), "source": episode.meta["source"]})
            write_manifest(out, manifest)
            frames += len(picture)
    return VideoImport(len(clips), frames, float(target) if target else 0.0, [str(v) for v in videos if v not in todo])


def _open_video_dataset(out: Path, size: int) -> dict:
    if not (out / "manifest.json").exists():
        manifest = new_manifest(VIDEO_ENV, [], (size, size, 3))
        manifest["actions"] = "unknown"
        return manifest
    manifest = read_manifest(out)
    if manifest.get("actions") != "unknown":
        raise DatasetError(f"{out} holds gameplay with actions ({manifest['env_id']}); put clips in a folder of their own")
    if list(manifest["frame_shape"]) != [size, size, 3]:
        raise DatasetError(f"{out} holds {manifest['frame_shape'][0]}x{manifest['frame_shape'][1]} frames; cannot add {size}x{size}: pass --size {manifest['frame_shape'][0]}")
    return manifest
