"""Stage `lam`: the latent action model, from frames alone.

Batches hold latent windows and nothing else: the stage never reads a dataset's actions, so a
world made from video cannot learn from the game's true keys by accident. Validation says
whether the codes carry the move: the decoder's error with each step's own code against its
error with another step's code (`code_gain_db`; 0 when the decoder ignores the code), the
codebook's perplexity, and its dead codes. Codes that go unused during training are restarted
on the encoder's outputs of the current batch (the usual cure for codebook collapse).

With `labels` (a few episodes whose true keys are known, `worldgen collect`), each batch also
holds `label_batch` of their windows, and a linear read-out of the key from the encoder's
vector is trained beside the reconstruction: LAOM (Nikulin et al. 2025) finds that a few
percent of labelled steps steer a latent action model from what moves the picture most to
what the controls do. Those keys are the only ones read; the dataset's own stay unread.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from models.export import load_export
from models.lam import LAM_PRESETS, LAMConfig, LatentActionModel
from worldgen.checkpoint import save_weights
from worldgen.data.dataset import EpisodeDataset
from worldgen.data.latents import encode_dataset
from worldgen.data.windows import WindowDataset
from worldgen.lam import code_usage
from worldgen.train.config import OptimConfig, RunConfig, preset
from worldgen.train.loop import Context, Logs, run_device, unwrap


@dataclass
class LAMTrainConfig:
    preset: str = "small"
    model: LAMConfig = field(default_factory=LAMConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=100, ema_decay=0.99))
    run: RunConfig = field(default_factory=lambda: RunConfig(steps=3000, batch_size=64, image_every=500))
    ae: str = ""
    """Autoencoder export folder (default: the `ae/export` beside --out)."""
    restart_every: int = 100
    """Steps between restarts of unused codes (0: never)."""
    restart_until: float = 0.8
    """Share of training after which codes are no longer restarted, so the final codebook settles."""
    usage_decay: float = 0.99
    val_windows: int = 4096
    labels: str = ""
    """A dataset with true keys that supervises the codes (`label_weight`) and names them ("": none)."""
    label_weight: float = 1.0
    """Weight of the labelled windows' key cross-entropy (0: the labels only name the codes after training)."""
    label_batch: int = 16
    """Labelled windows added to each batch."""


def apply_preset(cfg: LAMTrainConfig) -> None:
    cfg.model = preset(LAM_PRESETS, cfg.preset, "lam")


class LAMStage:
    name = "lam"

    def __init__(self, cfg: LAMTrainConfig, data: Path, ae_folder: Path) -> None:
        self.cfg = cfg
        self.ae_folder = Path(ae_folder).resolve()
        ae = load_export(ae_folder, "autoencoder")[0].to(run_device(cfg.run))
        store = encode_dataset(ae, ae_folder, data)
        k = cfg.model.context
        # Windows of K past frames and the next; WindowDataset's actions are never taken out of them.
        self.train = WindowDataset(data, k, "train", cfg.run.val_fraction, latents=store)
        self.val = WindowDataset(data, k, "val", cfg.run.val_fraction, latents=store)
        cfg.model.latent_channels, cfg.model.latent_size = store.latent_shape[0], store.latent_shape[1]
        self.lam = LatentActionModel(cfg.model)
        self.labelled: WindowDataset | None = None
        self.key_head: nn.Linear | None = None
        if cfg.labels and cfg.label_weight > 0:
            labels = Path(cfg.labels)
            if not EpisodeDataset(labels).actions_known:
                raise ValueError(f"labels {labels}: this dataset has no actions (made from video); record labelled "
                                 "episodes with `worldgen collect`")
            self.labelled = WindowDataset(labels, k, "all", latents=encode_dataset(ae, ae_folder, labels))
            self.key_head = nn.Linear(cfg.model.code_dim, len(self.labelled.episodes.action_meanings))
        g = torch.Generator().manual_seed(0)
        self.val_index = torch.randint(len(self.val), (min(cfg.val_windows, len(self.val)),), generator=g)
        self.device = torch.device("cpu")

    def modules(self) -> dict[str, nn.Module]:
        return {"lam": self.lam} | ({"key_head": self.key_head} if self.key_head is not None else {})

    def to(self, device: torch.device) -> None:
        self.device = device

    def windows(self, dataset: WindowDataset, index: torch.Tensor) -> torch.Tensor:
        """(B, K + 1, C, h, w) latents: the context frames, then the next frame."""
        return _frames(dataset.batch(index.numpy())).to(self.device)

    def batch(self, generator: torch.Generator, batch_size: int, ctx: Context) -> dict[str, torch.Tensor]:
        out = {"window": self.windows(self.train, torch.randint(len(self.train), (batch_size,), generator=generator))}
        if self.labelled is not None:
            index = torch.randint(len(self.labelled), (self.cfg.label_batch,), generator=generator)
            b = self.labelled.batch(index.numpy())
            out["window"] = torch.cat([out["window"], _frames(b).to(self.device)])
            out["keys"] = b["actions"][:, -1].to(self.device)  # the key of each labelled window's last step
        return out

    def loss(self, train: dict[str, nn.Module], batch: dict[str, torch.Tensor], ctx: Context) -> tuple[torch.Tensor, Logs]:
        window = batch["window"]
        with ctx.autocast():  # through the (DDP-wrapped) module, so gradients are averaged over ranks
            pred, codes, vq_loss, z = train["lam"](window)
        rec = F.mse_loss(pred.float(), window[:, -1])
        lam = unwrap(train["lam"])
        self._track(lam, z.detach().float(), codes.detach(), ctx)
        logs: Logs = {"reconstruction_mse": rec.detach(), "vq": vq_loss.detach(),
                      "perplexity": torch.exp(-(lam.usage * lam.usage.clamp_min(1e-12).log()).sum())}
        loss = rec + vq_loss
        if "keys" in batch:
            keys = batch["keys"]
            key_ce = F.cross_entropy(train["key_head"](z[-len(keys) :].float()), keys)
            loss = loss + self.cfg.label_weight * key_ce
            logs["key_ce"] = key_ce.detach()
        return loss, logs

    def _track(self, lam: LatentActionModel, z: torch.Tensor, codes: torch.Tensor, ctx: Context) -> None:
        """Running code usage (over all ranks); every `restart_every` steps until
        `restart_until`, unused codes restart on this batch's encoder outputs (rank 0's)."""
        if ctx.world_size > 1:
            gathered = [torch.empty_like(codes) for _ in range(ctx.world_size)]
            dist.all_gather(gathered, codes)
            codes = torch.cat(gathered)
        lam.track_usage(codes, self.cfg.usage_decay)
        every = self.cfg.restart_every
        if every and (ctx.step + 1) % every == 0 and ctx.step < self.cfg.restart_until * self.cfg.run.steps:
            if lam.restart_dead_codes(z, ctx.noise) and ctx.world_size > 1:
                dist.broadcast(lam.codebook.data, 0)

    def export(self, ema: dict[str, nn.Module], folder: Path) -> None:
        save_weights(folder, ema["lam"].state_dict(), {"kind": "lam", "model": dataclasses.asdict(self.cfg.model), "ae": str(self.ae_folder)})

    @torch.no_grad()
    def evaluate(self, ema: dict[str, nn.Module], ctx: Context, writer: Any) -> dict[str, float]:
        lam = ema["lam"]
        own, other, codes = [], [], []
        g = torch.Generator().manual_seed(1)
        for chunk in self.val_index.split(512):
            window = self.windows(self.val, chunk)
            c = lam.infer(window)
            shuffled = c[torch.randperm(len(c), generator=g).to(c.device)]
            target = window[:, -1]
            own.append(((lam.decode(window[:, :-1], lam.code_vectors(c)) - target) ** 2).mean(dim=(1, 2, 3)))
            other.append(((lam.decode(window[:, :-1], lam.code_vectors(shuffled)) - target) ** 2).mean(dim=(1, 2, 3)))
            codes.append(c.cpu())
        own_mse, other_mse = torch.cat(own).mean().item(), torch.cat(other).mean().item()
        usage = code_usage(torch.cat(codes).numpy(), lam.cfg.codes)
        return {"reconstruction_mse": own_mse, "mse_other_code": other_mse,
                "code_gain_db": float(10 * np.log10(other_mse / max(own_mse, 1e-12))),
                "perplexity": usage["perplexity"], "dead_codes": float(len(usage["dead"]))}


def _frames(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A window batch's latents in order: the context frames, then the next frame."""
    return torch.cat([batch["context"], batch["target"][:, None]], dim=1)
