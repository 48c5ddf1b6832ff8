"""Latent training windows for the dynamics stages (teacher, scm, reward)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.export import load_export
from worldgen.codec import LatentCodec
from worldgen.data.dataset import EpisodeDataset
from worldgen.data.latents import encode_dataset
from worldgen.data.windows import WindowDataset
from worldgen.frames import grid, mse, psnr_from_mse
from worldgen.rollout import Sampler, rollout
from worldgen.scm import SIGMA_D


@dataclass
class EndingsConfig:
    """Training batches that oversample the last frames of episodes that end (deaths, wins).

    A level's end is rare in recorded play: on the Platformer the flag shows in about the last
    30 frames of the episodes that reach it, 2% of the frames, and there the camera stops and
    the player walks on to the flag. A world trained on uniform windows had not learnt that:
    started 20 frames before the flag with the recorded actions, it scrolled the flag away as
    if the level went on and paid the flag in 2 of 32 episodes, so agents in it never learnt
    that the flag pays 10. A teacher fine-tuned on real contexts with 30% of its batches from
    these ends played out 4 of 10 flags and 9 of 24 deaths (2 and 7 without them); on its own
    rollouts it played out almost none (README, *The moments that decide an episode*)."""

    share: float = 0.0
    """Share of each batch drawn from the ending windows (0: off, windows uniform)."""
    frames: int = 48
    """How many steps before a terminated episode's last step count as its ending."""

    def validate(self) -> None:
        if not 0.0 <= self.share < 1.0:
            raise ValueError(f"endings.share must be in [0, 1), got {self.share}")
        if self.frames < 1:
            raise ValueError(f"endings.frames must be at least 1, got {self.frames}")


class LatentData:
    """Train and validation windows over latents (scaled to std sigma_d), the autoencoder that
    made them, and the real frames of the validation windows to measure against.

    `lead`: training windows carry that many frames (and actions) before the usual K, for
    stages that first roll the world out from the earliest of them (`OwnRollouts`). A missing
    latent cache is encoded on `device` (the run's: a GPU encodes a dataset in seconds).
    `endings`: how training batches oversample the ends of episodes (`EndingsConfig`)."""

    def __init__(self, data: Path, ae_folder: Path, context: int, val_fraction: float, val_windows: int, lead: int = 0,
                 device: torch.device | str = "cpu", endings: EndingsConfig | None = None) -> None:
        if not EpisodeDataset(data).actions_known:
            raise ValueError(f"{data} has no actions (made from video): learn them first with `worldgen train lam --data {data}`, "
                             "then train on the labelled copy `worldgen data label` writes")
        self.ae = load_export(ae_folder, "autoencoder")[0].to(device)
        store = encode_dataset(self.ae, ae_folder, data)
        self.train = WindowDataset(data, context + lead, "train", val_fraction, latents=store)
        self.val = WindowDataset(data, context, "val", val_fraction, latents=store)
        self.val_frames = WindowDataset(data, context, "val", val_fraction)
        g = torch.Generator().manual_seed(0)
        self.val_index = torch.randint(len(self.val), (min(val_windows, len(self.val)),), generator=g)
        self.device = torch.device(device)
        self.endings = endings or EndingsConfig()
        self.endings.validate()
        self.ending_index = torch.from_numpy(self.train.ending_windows(self.endings.frames)) if self.endings.share else None
        if self.ending_index is not None and not len(self.ending_index):
            raise ValueError(f"endings.share is {self.endings.share}, but no training episode of {data} terminates "
                             "(every one was cut by a time limit); set endings.share=0")

    def to(self, device: torch.device) -> None:
        self.device = device
        self.ae.to(device)

    def batch(self, dataset: WindowDataset, index: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {k: v.to(self.device) for k, v in dataset.batch(index.numpy()).items()}
        out["context"] = out["context"] * SIGMA_D  # (B, K, C, h, w)
        out["target"] = out["target"] * SIGMA_D  # (B, C, h, w)
        return out

    def sample(self, generator: torch.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        ending = 0 if self.ending_index is None else round(self.endings.share * batch_size)
        index = torch.randint(len(self.train), (batch_size - ending,), generator=generator)
        if ending:
            index = torch.cat([index, self.ending_index[torch.randint(len(self.ending_index), (ending,), generator=generator)]])
        return self.batch(self.train, index)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents in sigma_d units (..., C, h, w) -> uint8 frames (..., H, W, 3)."""
        return torch.from_numpy(LatentCodec(self.ae, self.device).decode(latents))

    def real_targets(self) -> torch.Tensor:
        return torch.stack([self.val_frames[int(i)]["target"] for i in self.val_index])  # (N, H, W, 3)

    def rollout_report(self, net, sampler: Sampler, writer, step: int, tag: str,
                       horizon: int = 8, starts: int = 4) -> dict[str, float]:
        """Open-loop rollouts of `horizon` steps from the first K real frames of a few validation
        episodes; PSNR at the last step, and a grid of real and generated frames. Also Genie's
        dPSNR at that step: how much worse the same rollouts (same noise) do with each step's
        action swapped for another. Near 0, the network ignores the keys, which PSNR alone never
        shows: a Freeway teacher whose chicken barely answered UP and DOWN beat repeat-last by 8 dB."""
        k = self.val.context
        episodes = self.val.episodes
        long = [i for i, s in enumerate(episodes.shards) if s.num_steps >= k + horizon][:starts]
        if not long:
            return {}
        store = self.val.latents
        ctx = torch.stack([torch.from_numpy(store.frames(episodes.files[i], np.arange(k))) for i in long]) * SIGMA_D
        actions = torch.stack([torch.from_numpy(episodes.shards[i].actions[: k + horizon - 1]) for i in long])
        runs = {"true": actions}
        if (num_actions := net.cfg.num_actions) > 1:
            swapped = actions.clone()
            shift = torch.randint(1, num_actions, swapped[:, k - 1 :].shape, generator=torch.Generator().manual_seed(1))
            swapped[:, k - 1 :] = (swapped[:, k - 1 :] + shift) % num_actions  # the actions that drive the rollout
            runs["swapped"] = swapped
        real = torch.stack([torch.from_numpy(episodes.shards[i].frames()[k : k + horizon]) for i in long])
        psnr = {}
        for name, acts in runs.items():
            g = torch.Generator(self.device).manual_seed(0)
            frames = self.decode(rollout(net, ctx.to(self.device), acts.to(self.device), sampler, g))  # (R, H, H_px, W_px, 3)
            psnr[name] = float(psnr_from_mse(mse(frames[:, -1], real[:, -1]).mean()))
            if name == "true" and writer is not None:
                writer.add_image(f"{tag}/real_vs_generated_rollout", grid([real[0], frames[0]]), step)
        scores = {f"rollout_psnr_h{horizon}": psnr["true"]}
        if "swapped" in psnr:
            scores[f"rollout_dpsnr_h{horizon}"] = psnr["true"] - psnr["swapped"]
        return scores

    def next_frame_report(self, predictions: dict[str, torch.Tensor], writer, step: int, tag: str) -> dict[str, float]:
        """PSNR (of the mean error, as `worldgen eval`) of decoded next-frame predictions (name ->
        latents) against the real frames, with repeat-last-frame as the baseline; a grid of real
        and predicted frames to TensorBoard."""
        real = self.real_targets()
        last = torch.stack([self.val_frames[int(i)]["context"][-1] for i in self.val_index])
        scores = {"next_psnr/repeat_last": float(psnr_from_mse(mse(last, real).mean()))}
        rows = [real[:8]]
        for name, latents in predictions.items():
            frames = self.decode(latents)
            scores[f"next_psnr/{name}"] = float(psnr_from_mse(mse(frames, real).mean()))
            rows.append(frames[:8])
        if writer is not None:
            writer.add_image(f"{tag}/real_vs_generated_next", grid(rows), step)
        return scores
