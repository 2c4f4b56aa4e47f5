"""``unet-palette``: U-Net classifying each pixel into one of 16, 24 or 32 k-means palette colours (seed 000).

Train with cross-entropy on the index of each pixel's nearest palette colour; decode with the
probability-weighted mean of the top-k colours (k = 3 by default), the mode or the annealed mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from colorcore import quantize
from colorcore.errors import ConfigError
from colorcore.models.base import ColorModel, normalize_l
from colorcore.models.blocks import conv_bn_act
from colorcore.quantize import ABDecoder
from colorcore.registry import register_model

PALETTE_SIZES = (16, 24, 32)


@dataclass(frozen=True)
class UNetPaletteConfig:
    bins: int = 16  # palette size: 16, 24 or 32
    width: int = 32  # channels of the first level; level i has width * 2**i
    depth: int = 4  # number of 2x downsamplings (the model's stride is 2**depth)
    # (a, b) centres; None -> quantize.load_palette(bins)
    palette: tuple[tuple[float, float], ...] | None = None
    top_k: int = 3  # default decoding: weighted mean of the top-k colours (0 -> annealed mean)


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_act(c_in, c_out, act="leaky"), conv_bn_act(c_out, c_out, act="leaky"))


class _Up(nn.Module):
    """Transposed conv x2, concatenation with the skip, then two conv-BN-LeakyReLU layers."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.conv = _double_conv(2 * c_out, c_out)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat((self.up(x), skip), dim=1))


@register_model("unet-palette", config=UNetPaletteConfig(), task="classification",
                description="U-Net classifying pixels into a 16/24/32-colour k-means palette, top-3 decoding")
class UNetPalette(ColorModel):
    """U-Net (skips, BatchNorm, LeakyReLU); ``forward`` returns palette logits ``(B, bins, H, W)``."""

    task = "classification"
    stride = 16  # 2**depth for the default depth; instances set their own
    default_size = 128

    def __init__(self, config: UNetPaletteConfig) -> None:
        super().__init__(config)
        if config.bins not in PALETTE_SIZES:
            raise ConfigError(f"unet-palette supports bins in {PALETTE_SIZES}, got {config.bins}")
        if not 1 <= config.depth <= 6 or config.width < 1:
            raise ValueError(f"need depth in 1..6 and width >= 1, got {config.depth=}, {config.width=}")
        if not 0 <= config.top_k <= config.bins:
            raise ValueError(f"top_k must be in 0..{config.bins}, got {config.top_k}")
        raw = quantize.load_palette(config.bins) if config.palette is None else config.palette
        centers = torch.as_tensor(raw, dtype=torch.float32)
        if centers.shape != (config.bins, 2):
            raise ConfigError(f"palette must hold {config.bins} (a, b) pairs, got {tuple(centers.shape)}")
        self.stride = 2 ** config.depth
        chans = [config.width * 2**i for i in range(config.depth + 1)]
        self.inc = _double_conv(1, chans[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _double_conv(chans[i], chans[i + 1])) for i in range(config.depth)
        )
        self.ups = nn.ModuleList(_Up(chans[i + 1], chans[i]) for i in reversed(range(config.depth)))
        self.head = nn.Conv2d(chans[0], config.bins, 1)
        self.decoder = ABDecoder(centers, default_top_k=config.top_k)

    def forward(self, l: Tensor) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] -> palette logits ``(B, bins, H, W)``."""
        x = self.inc(normalize_l(l))
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck itself is not a skip
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)
