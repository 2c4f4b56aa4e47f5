"""Building blocks shared by the model families: conv layers, width scaling and ImageNet backbones.

The ImageNet helpers never need the network: torchvision weights are taken from the torch hub cache
(``torch.hub.get_dir()/checkpoints``) or downloaded; when neither works the model warns and starts
from random initialisation instead of failing.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision import models as tvm

from colorcore.models.base import L_SCALE

# Grey input for ImageNet backbones: L/100 in [0, 1] normalised with the channel-averaged ImageNet statistics.
# With one shared mean/std, a grey image replicated to RGB gives every channel the same value z, so an RGB
# conv responds with sum_c(W_c) * z: summing conv1's RGB filters is then exact, not an approximation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_MEAN = sum(IMAGENET_MEAN) / 3
GRAY_STD = sum(IMAGENET_STD) / 3

_BACKBONES = {
    "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, 512),
    "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1, 2048),
}


def scaled(channels: int, width: float, minimum: int = 8) -> int:
    """``channels * width`` rounded, at least ``minimum`` (width multipliers for smaller variants)."""
    return max(minimum, int(round(channels * width)))


def check_width(width: float) -> None:
    if not 0 < width <= 4:
        raise ValueError(f"width multiplier must be in (0, 4], got {width}")


def conv_bn_act(
    c_in: int, c_out: int, *, stride: int = 1, dilation: int = 1, act: str = "relu"
) -> nn.Sequential:
    """3x3 conv (padding keeps the size at stride 1) + BatchNorm + ReLU or LeakyReLU(0.2)."""
    activation = nn.ReLU(inplace=True) if act == "relu" else nn.LeakyReLU(0.2, inplace=True)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        activation,
    )


def gray_imagenet_input(l: Tensor) -> Tensor:
    """L ``(B, 1, H, W)`` in [0, 100] -> one grey channel normalised for a 1-channel ImageNet backbone."""
    return (l / L_SCALE - GRAY_MEAN) / GRAY_STD


def rgb_imagenet_input(l: Tensor) -> Tensor:
    """L ``(B, 1, H, W)`` in [0, 100] -> grey replicated to RGB with per-channel ImageNet normalisation."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=l.dtype, device=l.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=l.dtype, device=l.device).view(1, 3, 1, 1)
    return ((l / L_SCALE).expand(-1, 3, -1, -1) - mean) / std


def sum_rgb_filters(state: dict[str, Tensor], key: str = "conv1.weight") -> dict[str, Tensor]:
    """Copy of ``state`` whose first conv takes 1 grey channel: its (O, 3, k, k) filters summed over RGB."""
    out = dict(state)
    out[key] = state[key].sum(dim=1, keepdim=True)
    return out


def imagenet_state_dict(arch: str, *, what: str) -> dict[str, Tensor] | None:
    """torchvision ImageNet weights of ``arch`` from the hub cache or the network, else ``None`` + a warning.

    ``what`` names the model in the warning so users know which part is untrained.
    """
    weights = _BACKBONES[arch][1]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    # Offline (URLError is an OSError), a corrupt cache file or a hash mismatch: degrade, never crash.
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        warnings.warn(
            f"{what}: ImageNet weights for {arch} are unavailable ({type(exc).__name__}: {exc}); "
            f"starting from random initialisation. To use them, place {weights.url} at {cached}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def resnet(arch: str, *, in_channels: int, weights: str | None, what: str) -> tuple[nn.Module, int]:
    """A torchvision ResNet (``arch`` in resnet18/resnet50) and its feature width.

    ``weights="imagenet"`` loads ImageNet weights when available (conv1 summed over RGB when
    ``in_channels == 1``); ``None`` is random initialisation.
    """
    if arch not in _BACKBONES:
        raise ValueError(f"unknown backbone {arch!r}; choose from {', '.join(_BACKBONES)}")
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet', got {weights!r}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    features = _BACKBONES[arch][2]
    net = _fresh_resnet(arch, in_channels)
    if weights == "imagenet":
        state = imagenet_state_dict(arch, what=what)
        if state is not None:
            try:
                net.load_state_dict(sum_rgb_filters(state) if in_channels == 1 else state)
            except (RuntimeError, KeyError) as exc:  # a foreign file under the expected cache name
                warnings.warn(
                    f"{what}: the cached ImageNet weights for {arch} do not fit torchvision's {arch} "
                    f"({str(exc).splitlines()[0]}); starting from random initialisation",
                    RuntimeWarning,
                    stacklevel=2,
                )
                net = _fresh_resnet(arch, in_channels)
    return net, features


def _fresh_resnet(arch: str, in_channels: int) -> nn.Module:
    net = _BACKBONES[arch][0](weights=None)
    if in_channels == 1:
        net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def zhang_block(c_in: int, c_out: int, convs: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """One block of Zhang et al.'s nets: ``convs`` x (conv3x3 + ReLU), the last conv strided, then BatchNorm.

    Layer indices match the published checkpoints: convs at 0, 2, ..., BatchNorm at ``2 * convs``.
    """
    layers: list[nn.Module] = []
    for i in range(convs):
        s = stride if i == convs - 1 else 1
        conv = nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride=s, padding=dilation, dilation=dilation)
        layers += [conv, nn.ReLU(inplace=True)]
    layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)
