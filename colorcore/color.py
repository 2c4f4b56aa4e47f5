"""sRGB <-> CIE Lab (D65, 2° observer) on ``(*, 3, H, W)`` float tensors, differentiable.

Ranges: sRGB in [0, 1]; L in [0, 100]; a and b roughly in [-128, 127] (physical units).
Matches ``skimage.color.rgb2lab`` / ``lab2rgb``: same matrix, white point and piecewise constants
(including scikit-image's rounded 0.008856 / 7.787 and its clipping of negative ``f_z`` in ``lab2rgb``).

Output keeps the input's device and dtype; float16 / bfloat16 inputs are computed in float32 (the cube
roots and gamma powers lose several Lab units in half precision) and cast back.

Speed: the two 3 x 3 colour matrices run as one ``matmul`` over ``(*, 3, H*W)`` each (the Lab offsets
are folded in), and when no gradient is needed the piecewise curves work in place on a single buffer.
"""

from __future__ import annotations

import torch
from torch import Tensor

# sRGB (linear) -> XYZ, D65; identical to scikit-image's ``xyz_from_rgb``.
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
# scikit-image's rounded CIE constants (exact values: 216/24389 and 24389/27/116); kept for a 1e-6 match.
_LAB_EPS = 0.008856
_LAB_SLOPE = 7.787
_LAB_F_EPS = 0.2068966  # 6/29: where the inverse switches from cubing to linear
_LAB_OFFSET = 16.0 / 116.0
# sRGB transfer curve.
_SRGB_KNEE = 0.04045
_LIN_KNEE = 0.0031308
# Lab from f = (fx, fy, fz): L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz).
_F_TO_LAB = ((0.0, 116.0, 0.0), (500.0, -500.0, 0.0), (0.0, 200.0, -200.0))
_LAB_BIAS = (-16.0, 0.0, 0.0)


def _float64(rows: tuple[tuple[float, ...], ...]) -> Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# Fold the white point and the f -> Lab map into the matrices once, in float64.
_M_FWD = _float64(_RGB_TO_XYZ) / torch.tensor(_WHITE_D65, dtype=torch.float64)[:, None]  # lin -> xyz/white
_M_INV = torch.linalg.inv(_float64(_RGB_TO_XYZ)) * torch.tensor(_WHITE_D65, dtype=torch.float64)  # xyz/w -> lin
_M_LAB = _float64(_F_TO_LAB)
_M_F = torch.linalg.inv(_M_LAB)  # Lab - bias -> f
_BIAS_LAB = torch.tensor(_LAB_BIAS, dtype=torch.float64)
_BIAS_F = -(_M_F @ _BIAS_LAB)  # f = _M_F @ Lab + _BIAS_F


def _check(x: Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} expects a (*, 3, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects a float tensor, got {x.dtype}")


def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _needs_grad(x: Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def _affine(m: Tensor, x: Tensor, bias: Tensor | None = None) -> Tensor:
    """``m @ x + bias`` over the channel axis of ``(*, 3, H, W)``: one matmul on a ``(*, 3, H*W)`` view."""
    flat = x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])
    out = torch.matmul(m.to(dtype=x.dtype, device=x.device), flat)
    if bias is not None:
        # In place is autograd-safe here: matmul's backward needs its inputs, not its output.
        out.add_(bias.to(dtype=x.dtype, device=x.device)[:, None])
    return out.view(x.shape)


def srgb_to_linear(rgb: Tensor) -> Tensor:
    """Undo the sRGB transfer curve (any shape); input in [0, 1], output linear light in [0, 1]."""
    if not _needs_grad(rgb):
        return _srgb_to_linear_(rgb.clone())
    return torch.where(rgb > _SRGB_KNEE, ((rgb.clamp_min(_SRGB_KNEE) + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _srgb_to_linear_(x: Tensor) -> Tensor:
    """In-place :func:`srgb_to_linear` (no autograd)."""
    low = x <= _SRGB_KNEE
    lin_low = x[low] / 12.92  # the dark part is a small fraction of a photo: gather it, not a full buffer
    x.clamp_min_(_SRGB_KNEE).add_(0.055).div_(1.055).pow_(2.4)
    x[low] = lin_low
    return x


def linear_to_srgb(lin: Tensor) -> Tensor:
    """Apply the sRGB transfer curve (any shape); not clipped, so out-of-gamut values leave [0, 1]."""
    if not _needs_grad(lin):
        return _linear_to_srgb_(lin.clone())
    return torch.where(lin > _LIN_KNEE, 1.055 * lin.clamp_min(_LIN_KNEE) ** (1 / 2.4) - 0.055, lin * 12.92)


def _linear_to_srgb_(x: Tensor) -> Tensor:
    """In-place :func:`linear_to_srgb` (no autograd)."""
    low = x <= _LIN_KNEE
    srgb_low = x[low] * 12.92
    x.clamp_min_(_LIN_KNEE).pow_(1 / 2.4).mul_(1.055).sub_(0.055)
    x[low] = srgb_low
    return x


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """Convert sRGB to CIE Lab.

    Args:
        rgb: ``(*, 3, H, W)`` float tensor, sRGB in [0, 1].

    Returns:
        ``(*, 3, H, W)`` tensor of the same dtype and device: L in [0, 100], a and b in about [-128, 127].
    """
    _check(rgb, "rgb_to_lab")
    x = rgb.to(_work_dtype(rgb))
    if _needs_grad(rgb):
        lin = srgb_to_linear(x)
        xyz = _affine(_M_FWD, lin)  # already divided by the white point
        f = torch.where(xyz > _LAB_EPS, xyz.clamp_min(_LAB_EPS) ** (1 / 3), _LAB_SLOPE * xyz + _LAB_OFFSET)
    else:
        lin = _srgb_to_linear_(x.clone() if x is rgb else x)
        f = _affine(_M_FWD, lin)
        del lin
        low = f <= _LAB_EPS
        f_low = f[low] * _LAB_SLOPE + _LAB_OFFSET
        f.clamp_min_(_LAB_EPS).pow_(1 / 3)
        f[low] = f_low
    return _affine(_M_LAB, f, _BIAS_LAB).to(rgb.dtype)


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """Convert CIE Lab to sRGB.

    Args:
        lab: ``(*, 3, H, W)`` float tensor; L in [0, 100], a and b in physical units.
        clip: clamp the result to [0, 1] (out-of-gamut colours are clipped, as scikit-image does).
            With ``clip=False`` out-of-gamut colours come back outside [0, 1], which is how
            :func:`colorcore.quantize.gamut_centers` tests membership of the sRGB gamut.

    Returns:
        ``(*, 3, H, W)`` sRGB tensor of the same dtype and device.
    """
    _check(lab, "lab_to_rgb")
    x = lab.to(_work_dtype(lab))
    f = _affine(_M_F, x, _BIAS_F)
    if _needs_grad(lab):
        # scikit-image clips a negative f_z (very large b) to 0 before inverting the cube root.
        fx, fy, fz = f.unbind(-3)
        f = torch.stack((fx, fy, fz.clamp_min(0)), dim=-3)
        xyz = torch.where(f > _LAB_F_EPS, f**3, (f - _LAB_OFFSET) / _LAB_SLOPE)
        rgb = linear_to_srgb(_affine(_M_INV, xyz))
        rgb = rgb.clamp(0, 1) if clip else rgb
    else:
        f.select(-3, 2).clamp_min_(0)
        low = f <= _LAB_F_EPS
        xyz_low = (f[low] - _LAB_OFFSET) / _LAB_SLOPE
        xyz = f.pow_(3)
        xyz[low] = xyz_low
        rgb = _linear_to_srgb_(_affine(_M_INV, xyz))
        if clip:
            rgb.clamp_(0, 1)
    return rgb.to(lab.dtype)
