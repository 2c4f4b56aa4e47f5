"""sRGB <-> CIE Lab (D65, 2° observer) on ``(*, 3, H, W)`` float tensors, differentiable.

Ranges: sRGB in [0, 1]; L in [0, 100]; a and b roughly in [-128, 127] (physical units).
Matches ``skimage.color.rgb2lab`` / ``lab2rgb``: same matrix, white point and piecewise constants
(including scikit-image's rounded 0.008856 / 7.787 and its clipping of a negative ``f_z`` in ``lab2rgb``).

Outputs keep the input's device and dtype; float16 / bfloat16 inputs are computed in float32 (cube roots
and gamma powers lose whole Lab units in half precision) and cast back.

Speed (see ``scripts/bench_color.py``): when autograd is not recording, the conversion runs block by
block over the pixels (about 128k per block, whole batch at once) with a few reused scratch buffers, so
every intermediate stays in cache and no image-sized temporary is ever allocated (on CPU, first-touching a
fresh 144 MB buffer costs more than a whole arithmetic pass). Powers use ``exp(k * log(x))``, which is
about twice as fast as ``pow`` with a fractional exponent. With autograd recording, a plain
``torch.where`` formulation is used, whose gradients are finite everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor

# sRGB (linear) -> XYZ, D65; identical to scikit-image's ``xyz_from_rgb``.
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
# scikit-image's rounded CIE constants (exact: 216/24389, 24389/27/116 and 6/29), kept for a tight match.
_LAB_EPS = 0.008856
_LAB_SLOPE = 7.787
_LAB_F_EPS = 0.2068966
_LAB_OFFSET = 16.0 / 116.0
# Knees of the sRGB transfer curve, on the encoded and on the linear side.
_SRGB_KNEE = 0.04045
_LIN_KNEE = 0.0031308
# Lab from f = (fx, fy, fz): L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz).
_F_TO_LAB = ((0.0, 116.0, 0.0), (500.0, -500.0, 0.0), (0.0, 200.0, -200.0))

_BLOCK_PIXELS = 1 << 17  # pixels per block on CPU: 1.5 MB per float32 scratch buffer


def _f64(values: object) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


# Fold the white point and the f <-> Lab maps into the matrices once, in float64.
_M_FWD = _f64(_RGB_TO_XYZ) / _f64(_WHITE_D65)[:, None]  # linear RGB -> XYZ / white
_M_INV = torch.linalg.inv(_f64(_RGB_TO_XYZ)) * _f64(_WHITE_D65)  # XYZ / white -> linear RGB
_M_LAB = _f64(_F_TO_LAB)  # f -> Lab + (16, 0, 0)
_BIAS_LAB = _f64((-16.0, 0.0, 0.0))
_M_F = torch.linalg.inv(_M_LAB)  # Lab -> f - bias
_BIAS_F = -(_M_F @ _BIAS_LAB)


def _check(x: Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} expects a (*, 3, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects a float tensor, got {x.dtype}")


def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _const(t: Tensor, like: Tensor) -> Tensor:
    return t.to(dtype=like.dtype, device=like.device)


@lru_cache(maxsize=16)
def _kernel_consts(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, ...]:
    """The folded matrices and biases in the work dtype, converted once per (dtype, device)."""
    return tuple(t.to(dtype=dtype, device=device) for t in (_M_FWD, _M_LAB, _BIAS_LAB[:, None],
                                                             _M_F, _BIAS_F[:, None], _M_INV))


def _affine(m: Tensor, x: Tensor, bias: Tensor | None = None) -> Tensor:
    """``m @ x + bias`` over the channel axis of ``(*, 3, H, W)``, as one matmul on ``(*, 3, H*W)``."""
    flat = x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])
    out = torch.matmul(_const(m, x), flat)
    if bias is not None:
        # In place is autograd-safe here: matmul's backward needs its inputs, not its output.
        out.add_(_const(bias, x)[:, None])
    return out.view(x.shape)


def srgb_to_linear(rgb: Tensor) -> Tensor:
    """Undo the sRGB transfer curve (any shape): encoded [0, 1] -> linear light [0, 1]. Differentiable."""
    return torch.where(rgb > _SRGB_KNEE, ((rgb.clamp_min(_SRGB_KNEE) + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def linear_to_srgb(lin: Tensor) -> Tensor:
    """Apply the sRGB transfer curve (any shape), unclipped: out-of-gamut values leave [0, 1]."""
    return torch.where(lin > _LIN_KNEE, 1.055 * lin.clamp_min(_LIN_KNEE) ** (1 / 2.4) - 0.055, lin * 12.92)


# ---------------------------------------------------------------------------------------------------------
# No-grad fast path: block kernels writing through reused scratch buffers.
# Each kernel gets the input block ``x`` (B, 3, n) in the work dtype, the output block ``out`` (a
# strided view into the result, caller's dtype) and three contiguous work-dtype scratch blocks
# ``a``, ``b``, ``mask``, all of shape (B, 3, n). The piecewise curves compute both branches and select with
# ``lerp(a, b, mask)`` on a 0/1 float mask: exact (PyTorch's lerp returns ``b`` itself for weight 1 and
# ``a`` for weight 0) and, on CPU, about four times faster than a bool mask with ``torch.where``.

_Kernel = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], None]


def _mm(m: Tensor, x: Tensor, out: Tensor) -> None:
    if x.shape[0] == 1:  # plain 2-D GEMM, no batch broadcast
        torch.mm(m, x[0], out=out[0])
    else:
        torch.matmul(m, x, out=out)


def _rgb_to_lab_kernel(x: Tensor, out: Tensor, a: Tensor, b: Tensor, mask: Tensor) -> None:
    m_fwd, m_lab, bias = _kernel_consts(a.dtype, a.device)[:3]
    # sRGB -> linear: a = the power branch, b = the linear branch, then select into a.
    torch.clamp_min(x, _SRGB_KNEE, out=a).add_(0.055).mul_(1 / 1.055).log_().mul_(2.4).exp_()
    torch.le(x, _SRGB_KNEE, out=mask)
    torch.mul(x, 1 / 12.92, out=b)
    torch.lerp(a, b, mask, out=a)
    _mm(m_fwd, a, out=b)  # b = XYZ / white
    # f(t) = cbrt(t) above the CIE threshold, linear below.
    torch.clamp_min(b, _LAB_EPS, out=a).log_().mul_(1 / 3).exp_()
    torch.le(b, _LAB_EPS, out=mask)
    b.mul_(_LAB_SLOPE).add_(_LAB_OFFSET)
    torch.lerp(a, b, mask, out=a)
    _mm(m_lab, a, out=b)
    torch.add(b, bias, out=out)


def _lab_to_rgb_kernel(x: Tensor, out: Tensor, a: Tensor, b: Tensor, mask: Tensor) -> None:
    m_f, bias, m_inv = _kernel_consts(a.dtype, a.device)[3:]
    a.copy_(x)
    _mm(m_f, a, out=b)
    b.add_(bias)  # b = f
    b[:, 2].clamp_min_(0)  # as scikit-image: a negative f_z (huge b) is clipped to 0
    torch.le(b, _LAB_F_EPS, out=mask)
    torch.mul(b, b, out=a).mul_(b)
    b.sub_(_LAB_OFFSET).mul_(1 / _LAB_SLOPE)
    torch.lerp(a, b, mask, out=a)  # a = XYZ / white
    _mm(m_inv, a, out=b)  # b = linear RGB (may be < 0 or > 1 out of gamut)
    torch.le(b, _LIN_KNEE, out=mask)
    torch.clamp_min(b, _LIN_KNEE, out=a).log_().mul_(1 / 2.4).exp_().mul_(1.055).sub_(0.055)
    b.mul_(12.92)
    out.copy_(torch.lerp(a, b, mask, out=a))  # copy_: out may be a strided half-precision view


def _blockwise(x: Tensor, kernel: _Kernel) -> Tensor:
    """Run ``kernel`` over pixel blocks of ``x`` ``(*, 3, H, W)``; returns a new tensor of ``x``'s dtype."""
    if x.numel() == 0:
        return torch.empty_like(x)
    flat = x.reshape(-1, 3, x.shape[-2] * x.shape[-1])  # (B, 3, N); a view for contiguous inputs
    batch, _, n_pix = flat.shape
    out = torch.empty(flat.shape, dtype=x.dtype, device=x.device)
    # GPUs gain nothing from blocking; on CPU keep batch * step pixels near _BLOCK_PIXELS.
    step = n_pix if x.device.type != "cpu" else max(1, min(n_pix, _BLOCK_PIXELS // batch))
    work = _work_dtype(x)
    a_buf, b_buf, mask_buf = (torch.empty(batch * 3 * step, dtype=work, device=x.device) for _ in range(3))
    for start in range(0, n_pix, step):
        n = min(step, n_pix - start)
        # Views on the buffers' prefixes stay contiguous for the shorter last block.
        a, b, mask = (buf[: batch * 3 * n].view(batch, 3, n) for buf in (a_buf, b_buf, mask_buf))
        block = flat[:, :, start : start + n]
        kernel(block.to(work), out[:, :, start : start + n], a, b, mask)  # .to: no-op unless half
    return out.view(x.shape)


# ---------------------------------------------------------------------------------------------------------


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """Convert sRGB to CIE Lab.

    Args:
        rgb: ``(*, 3, H, W)`` float tensor, sRGB in [0, 1].

    Returns:
        ``(*, 3, H, W)`` tensor of the same dtype and device: L in [0, 100], a and b in about [-128, 127].
    """
    _check(rgb, "rgb_to_lab")
    if not (torch.is_grad_enabled() and rgb.requires_grad):
        return _blockwise(rgb, _rgb_to_lab_kernel)
    x = rgb.to(_work_dtype(rgb))
    xyz = _affine(_M_FWD, srgb_to_linear(x))  # already divided by the white point
    f = torch.where(xyz > _LAB_EPS, xyz.clamp_min(_LAB_EPS) ** (1 / 3), _LAB_SLOPE * xyz + _LAB_OFFSET)
    return _affine(_M_LAB, f, _BIAS_LAB).to(rgb.dtype)


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """Convert CIE Lab to sRGB.

    Args:
        lab: ``(*, 3, H, W)`` float tensor; L in [0, 100], a and b in physical units.
        clip: clamp the result to [0, 1] (out-of-gamut colours are clipped, as scikit-image does).
            With ``clip=False`` out-of-gamut colours come back outside [0, 1] (also below 0), which
            is how :func:`colorcore.quantize.gamut_centers` tests membership of the sRGB gamut.

    Returns:
        ``(*, 3, H, W)`` sRGB tensor of the same dtype and device.
    """
    _check(lab, "lab_to_rgb")
    if not (torch.is_grad_enabled() and lab.requires_grad):
        rgb = _blockwise(lab, _lab_to_rgb_kernel)
        return rgb.clamp_(0, 1) if clip else rgb
    f = _affine(_M_F, lab.to(_work_dtype(lab)), _BIAS_F)
    fx, fy, fz = f.unbind(-3)
    f = torch.stack((fx, fy, fz.clamp_min(0)), dim=-3)  # scikit-image clips a negative f_z to 0
    xyz = torch.where(f > _LAB_F_EPS, f**3, (f - _LAB_OFFSET) / _LAB_SLOPE)
    rgb = linear_to_srgb(_affine(_M_INV, xyz))
    return (rgb.clamp(0, 1) if clip else rgb).to(lab.dtype)
