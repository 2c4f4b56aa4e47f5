"""``autoencoder`` (seed 001) and ``autoencoder-13`` (seed 002): plain conv encoder-decoders regressing ab.

Every layer is conv3x3 + BatchNorm + ReLU except the last, a conv3x3 to 2 channels with
ab = 110 * tanh. The encoder downsamples with stride-2 convs, the decoder upsamples (nearest x2)
before the layers listed in ``upsample_before``. Train with MSE on ab.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from colorcore.models.base import AB_SCALE, ColorModel, normalize_l
from colorcore.models.blocks import conv_bn_act
from colorcore.registry import register_model


@dataclass(frozen=True)
class AutoencoderConfig:
    encoder: tuple[int, ...] = (32, 64, 128)  # output channels of each encoder conv
    encoder_strides: tuple[int, ...] = (2, 2, 2)  # 1 or 2 per encoder conv
    decoder: tuple[int, ...] = (64, 32)  # hidden decoder convs; a final conv to 2 (tanh) is appended
    upsample_before: tuple[int, ...] = (0, 1, 2)  # decoder layer indices (len(decoder) = the final conv)


AUTOENCODER_13 = AutoencoderConfig(
    encoder=(64, 128, 128, 256, 256, 512),
    encoder_strides=(2, 1, 2, 1, 2, 1),
    decoder=(512, 256, 128, 64, 32, 16),
    upsample_before=(2, 3, 4),
)


@register_model("autoencoder-13", config=AUTOENCODER_13, task="regression",
                description="13-layer conv autoencoder (6 encoder + 7 decoder convs, ~6M params), MSE")
@register_model("autoencoder", config=AutoencoderConfig(), task="regression",
                description="Basic conv autoencoder (3 down, 3 up), tanh ab regression with MSE")
class Autoencoder(ColorModel):
    """Conv encoder-decoder; ``forward`` returns ab ``(B, 2, H, W)`` in [-110, 110]."""

    stride = 8  # 2**(number of stride-2 encoder convs) for both registered configs; instances set their own
    default_size = 128

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__(config)
        if not config.encoder or len(config.encoder) != len(config.encoder_strides):
            raise ValueError("encoder and encoder_strides must be non-empty and of equal length")
        channels = config.encoder + config.decoder
        if any(s not in (1, 2) for s in config.encoder_strides) or any(c < 1 for c in channels):
            raise ValueError("encoder strides must be 1 or 2 and every channel count positive")
        downs = config.encoder_strides.count(2)
        ups = sorted(set(config.upsample_before))
        if len(ups) != downs or len(ups) != len(config.upsample_before) or not all(
            0 <= i <= len(config.decoder) for i in ups
        ):
            raise ValueError(
                f"upsample_before must list {downs} distinct decoder layers in 0..{len(config.decoder)} "
                f"(one per stride-2 encoder conv), got {config.upsample_before}"
            )
        self.stride = 2**downs
        layers: list[nn.Module] = []
        c_in = 1
        for c_out, s in zip(config.encoder, config.encoder_strides, strict=True):
            layers.append(conv_bn_act(c_in, c_out, stride=s))
            c_in = c_out
        self.encoder = nn.Sequential(*layers)
        layers = []
        for i, c_out in enumerate((*config.decoder, 2)):
            if i in ups:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            last = i == len(config.decoder)
            layers.append(nn.Conv2d(c_in, 2, 3, padding=1) if last else conv_bn_act(c_in, c_out))
            c_in = c_out
        self.decoder_net = nn.Sequential(*layers)

    def forward(self, l: Tensor) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] -> ab ``(B, 2, H, W)`` in [-110, 110]."""
        return AB_SCALE * torch.tanh(self.decoder_net(self.encoder(normalize_l(l))))

