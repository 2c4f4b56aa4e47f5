"""``eccv16`` and ``eccv16-small``: Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016).

At ``width=1`` the ``state_dict`` has exactly the names and shapes of the published PyTorch checkpoint,
so those weights load with ``strict=True``. ``forward`` returns the 313 gamut-bin logits at H/4 x W/4;
``self.decoder`` turns them into ab (annealed mean at T = 0.38 by default, the mode or top-k).

Training loss (implemented by the trainer): cross-entropy against the soft-encoded ground truth
(5 nearest bins, Gaussian sigma 5) weighted per pixel by the class-rebalancing weight of the
ground truth's nearest bin (lambda = 0.5), see :mod:`colorcore.quantize`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorcore.models.base import AB_SCALE, ColorModel, normalize_l
from colorcore.models.blocks import check_width, scaled, zhang_block
from colorcore.quantize import ABDecoder, gamut_centers
from colorcore.registry import register_model
from colorcore.weights import WeightsEntry

NUM_BINS = 313


@dataclass(frozen=True)
class ECCV16Config:
    width: float = 1.0  # channel multiplier (min 8 channels per layer); 1.0 matches the published network
    dilations: tuple[int, ...] = (1, 2, 2, 1)  # one 512-channel block (model4, model5, ...) per entry


def zhang_trunk(width: float, dilations: tuple[int, ...], out_channels: int) -> list[tuple[str, nn.Module]]:
    """Named blocks model1 .. model8 of the ECCV16 network (1-channel input, output at H/4, stride 8).

    ``dilations`` gives one 512-channel block (``model4`` onwards) per entry; ``model8`` upsamples x2
    and ends in a 1x1 conv to ``out_channels``.
    """
    check_width(width)
    if not 1 <= len(dilations) <= 4 or any(d < 1 for d in dilations):
        raise ValueError(f"dilations must hold 1 to 4 positive entries (model4..model7), got {dilations}")
    c1, c2, c3, c4, c8 = (scaled(c, width) for c in (64, 128, 256, 512, 256))
    blocks: list[tuple[str, nn.Module]] = [
        ("model1", zhang_block(1, c1, 2, stride=2)),
        ("model2", zhang_block(c1, c2, 2, stride=2)),
        ("model3", zhang_block(c2, c3, 3, stride=2)),
    ]
    c_in = c3
    for i, d in enumerate(dilations):
        blocks.append((f"model{4 + i}", zhang_block(c_in, c4, 3, dilation=d)))
        c_in = c4
    blocks.append(("model8", nn.Sequential(
        nn.ConvTranspose2d(c4, c8, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c8, c8, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c8, c8, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c8, out_channels, 1),
    )))
    return blocks


@register_model(
    "eccv16", config=ECCV16Config(), task="classification",
    description="Zhang et al. ECCV16: 313-bin gamut classification, annealed-mean decoding (T=0.38)",
    published=(WeightsEntry(
        name="eccv16-published", model="eccv16", config={}, sha256="9b330a0b", input_size=256,
        colors="gamut313",
        url="https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth"),),
)
class ECCV16(ColorModel):
    """The ECCV16 network; ``forward`` returns 313 logits ``(B, 313, H/4, W/4)``.

    ``model_out`` (1x1 conv 313 -> 2, no bias, frozen) holds the bin centres / 110 as in the published
    checkpoint; the decoder's centres are re-read from it after every ``load_state_dict``.
    """

    task = "classification"
    stride = 8
    default_size = 256

    def __init__(self, config: ECCV16Config) -> None:
        super().__init__(config)
        self._names: list[str] = []
        for name, block in zhang_trunk(config.width, config.dilations, NUM_BINS):
            self.add_module(name, block)
            self._names.append(name)
        centers = gamut_centers()
        self.softmax = nn.Softmax(dim=1)
        self.model_out = nn.Conv2d(NUM_BINS, 2, 1, bias=False)
        with torch.no_grad():
            self.model_out.weight.copy_((centers / AB_SCALE).t().reshape(2, NUM_BINS, 1, 1))
        self.model_out.weight.requires_grad_(False)  # a fixed lookup table, not a trainable layer
        self.decoder = ABDecoder(centers)
        # The gamut travels in model_out.weight (published layout), so the decoder's copy stays out of
        # the state dict and is refreshed from model_out whenever weights are loaded.
        self.decoder.register_buffer("centers", self.decoder.centers, persistent=False)
        self.register_load_state_dict_post_hook(_sync_decoder)

    def forward(self, l: Tensor) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] -> 313 gamut logits ``(B, 313, H/4, W/4)``."""
        x = normalize_l(l)
        for name in self._names:
            x = getattr(self, name)(x)
        return x

    def published_forward(self, l: Tensor) -> Tensor:
        """The published port's output: 110 * model_out(softmax(logits)) upsampled x4, ab ``(B, 2, H, W)``.

        This is the plain mean of the predicted distribution (decoding at T = 1).
        """
        probs = self.softmax(self(l))
        ab = AB_SCALE * self.model_out(probs)
        return F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)


def _sync_decoder(module: nn.Module, incompatible_keys: object) -> None:
    with torch.no_grad():
        weight = module.model_out.weight.detach().reshape(2, -1).t()
        module.decoder.centers.copy_(weight.to(module.decoder.centers.dtype) * AB_SCALE)


@register_model("eccv16-small", config=ECCV16Config(width=0.5, dilations=(1, 2)), task="classification",
                description="Scaled-down ECCV16 for 128x128: half the channels, two fewer 512 blocks")
class ECCV16Small(ECCV16):
    """Seed 003's scaled-down ECCV16: half the channels, model4 + one dilated block; 32x32 logits at 128."""

    default_size = 128
