"""``zhang-regression``: ECCV16 architecture regressing ab directly (no classification, no rebalancing).

Zhang et al.'s own regression baseline: the same trunk (strided convs to H/8, dilated blocks, one
transposed conv back to H/4), a 1x1 conv to 2 channels, ab = 110 * out, upsampled bilinearly x4.
The ``loss`` option ("mse" or "smooth_l1" on ab) is stored for the trainer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from colorcore.models.base import AB_SCALE, ColorModel, normalize_l
from colorcore.models.eccv16 import zhang_trunk
from colorcore.registry import register_model

# width preset -> channel multiplier of the full ECCV16 trunk (1.04M and 3.50M parameters)
WIDTH_PRESETS = {"small": 0.18, "large": 0.33}
LOSSES = ("mse", "smooth_l1")


@dataclass(frozen=True)
class ZhangRegressionConfig:
    width: str = "small"  # "small" (~1M params) or "large" (~3.5M)
    loss: str = "mse"  # "mse" or "smooth_l1"; read by the trainer


@register_model("zhang-regression", config=ZhangRegressionConfig(), task="regression",
                description="ECCV16-style CNN regressing ab (no classification, no rebalancing), ~1M params")
class ZhangRegression(ColorModel):
    """ECCV16-style CNN regressing ab ``(B, 2, H, W)`` (linear output, not clamped to [-110, 110])."""

    stride = 8
    default_size = 128

    def __init__(self, config: ZhangRegressionConfig) -> None:
        super().__init__(config)
        if config.width not in WIDTH_PRESETS:
            raise ValueError(f"width must be one of {', '.join(WIDTH_PRESETS)}, got {config.width!r}")
        if config.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {config.loss!r}")
        self.net = nn.Sequential(OrderedDict(zhang_trunk(WIDTH_PRESETS[config.width], (1, 2, 2, 1), 2)))

    def forward(self, l: Tensor) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] -> ab ``(B, 2, H, W)``."""
        ab = AB_SCALE * self.net(normalize_l(l))
        return F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)
