"""The exponential moving average of a network's weights: training keeps it, worlds ship it."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Exponential moving average of a module's parameters and buffers; the weights sCM evaluates and ships."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, module: nn.Module) -> None:
        module.load_state_dict(self.shadow)
