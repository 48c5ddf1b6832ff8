"""How much of the key the frames a latent action model reads can tell: a supervised probe.

    python benchmarks/lam_ceiling.py --data data/platformer_video_true --ae models/pretrained/platformer/ae \
        --clips data/platformer_clips_heldout --work runs/lam_ceiling [--steps 3000] [--threads 2]

The latent action model's encoder is trained here *with* the true keys (cross-entropy on the
key of each window's last step), then judged exactly as `worldgen lam-eval` judges the codes
of a label-free model: on held-out real-game clips, on the steps where the keys draw different
frames, an answer right when the game draws with it what it drew with the true key. Whatever
the probe cannot tell apart, no label-free code of the same frames can either, so its score
bounds from below what the 0.9 target asks of the frames, and the gap to `lam-eval`'s score
is what the label-free objective loses. A diagnostic only: `--data` must carry true keys
(`worldgen data label --from-clips`), which no world from video ever reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import envs  # noqa: F401  (the built-in games the clips replay in)
from models.export import load_export
from models.lam import LAM_PRESETS, LatentActionModel
from worldgen.atomic import write_json
from worldgen.data.dataset import EpisodeDataset
from worldgen.data.latents import encode_dataset
from worldgen.data.windows import WindowDataset
from worldgen.lam import format_confusion, judge_codes_on_clips, step_windows


class KeyProbe(nn.Module):
    """The latent action model's encoder, with a linear read-out of the key instead of a codebook."""

    def __init__(self, preset: str, latent_shape: tuple[int, ...], num_actions: int) -> None:
        super().__init__()
        cfg = dataclasses.replace(LAM_PRESETS[preset], latent_channels=latent_shape[0], latent_size=latent_shape[1])
        self.lam = LatentActionModel(cfg)
        self.read = nn.Linear(cfg.code_dim, num_actions)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """window (B, K + 1, C, h, w) -> key logits (B, A)."""
        return self.read(self.lam.encode(window))


class ProbeCodes:
    """The probe as `judge_codes_on_clips` wants a model: its predicted key is the code."""

    def __init__(self, probe: KeyProbe, ae: nn.Module, ae_folder: Path) -> None:
        self.probe, self.ae, self.ae_folder = probe, ae, ae_folder
        self.codes = probe.read.out_features

    @torch.no_grad()
    def episode_codes(self, data: Path, progress: bool = False) -> dict[str, np.ndarray]:
        store = encode_dataset(self.ae, self.ae_folder, data, progress=progress)
        k = self.probe.lam.cfg.context
        out = {}
        for f in EpisodeDataset(data).files:
            latents = store.frames(f, np.arange(store.counts[f]))
            windows = torch.from_numpy(latents[step_windows(len(latents) - 1, k)])
            out[f] = torch.cat([self.probe(w).argmax(dim=1) for w in windows.split(512)]).numpy()
        return out


def train_probe(data: Path, ae_folder: Path, preset: str, steps: int, batch: int, seed: int) -> tuple[KeyProbe, nn.Module, dict]:
    if not EpisodeDataset(data).actions_known:
        raise ValueError(f"{data} has no true keys; label a copy with them (`worldgen data label --from-clips`)")
    ae = load_export(ae_folder, "autoencoder")[0]
    store = encode_dataset(ae, ae_folder, data)
    k = LAM_PRESETS[preset].context
    train, val = (WindowDataset(data, k, split, 0.1, latents=store) for split in ("train", "val"))
    torch.manual_seed(seed)
    probe = KeyProbe(preset, store.latent_shape, len(train.episodes.action_meanings))
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)

    def windows(dataset: WindowDataset, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = dataset.batch(index.numpy())
        return torch.cat([b["context"], b["target"][:, None]], dim=1), b["actions"][:, -1]

    start = time.perf_counter()
    for _ in tqdm(range(steps), desc="probe", unit="step"):
        x, y = windows(train, torch.randint(len(train), (batch,), generator=g))
        loss = F.cross_entropy(probe(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    probe.eval()
    with torch.no_grad():
        x, y = windows(val, torch.randint(len(val), (4096,), generator=g))
        val_accuracy = float((probe(x).argmax(dim=1) == y).float().mean())
    return probe, ae, {"steps": steps, "train_seconds": time.perf_counter() - start, "val_key_accuracy": val_accuracy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="frames with their true keys (the clips' own, labelled)")
    ap.add_argument("--ae", type=Path, required=True, help="the autoencoder export the latent action model reads through")
    ap.add_argument("--clips", type=Path, required=True, help="held-out real-game clips with their actions beside them")
    ap.add_argument("--work", type=Path, required=True, help="folder for the clips' dataset and the report")
    ap.add_argument("--preset", default="small", choices=sorted(LAM_PRESETS))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    probe, ae, trained = train_probe(args.data, args.ae, args.preset, args.steps, args.batch, args.seed)
    report = judge_codes_on_clips(ProbeCodes(probe, ae, args.ae), args.clips, args.work)
    report["probe"] = trained
    shown = report["shown"]
    print(format_confusion(shown["confusion"], report["action_meanings"]))
    print(f"supervised probe: {report['shown_steps']} of {report['steps']} held-out steps show their key; "
          f"accuracy {shown['accuracy']:.3f} (true key only {shown['strict_accuracy']:.3f}); "
          f"key accuracy on the training data's held-out windows {trained['val_key_accuracy']:.3f}")
    write_json(args.work / "probe_report.json", report)


if __name__ == "__main__":
    main()
