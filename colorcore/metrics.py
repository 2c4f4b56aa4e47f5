"""Image-quality metrics for colourisation, on uint8 RGB images, plus two classifier metrics.

Every image metric takes ``pred`` and ``truth`` as ``(H, W, 3)`` uint8 numpy arrays of the same shape
and returns a Python float. Lab values come from :func:`colorcore.color.rgb_to_lab` (fast, matches
scikit-image within 1e-4).

- ``imgsim``: 100 * (1 - mean |ΔRGB| / 255), in %.
- ``psnr``: RGB PSNR in dB with data range 255, capped at :data:`PSNR_CAP` = 100 dB so that identical
  images (infinite PSNR) keep means and JSON finite. Only near-identical multi-megapixel images reach the
  cap otherwise (a single off-by-one value among N gives 48.1 + 10 log10(N) dB).
- ``ssim``: ``skimage.metrics.structural_similarity`` (``channel_axis=-1``, ``data_range=255``, 7 x 7
  window, smaller for images under 7 pixels; NaN below 3 pixels), computed here from exact integer window
  sums (equal within 1e-15).
- ``ab_mse``: mean squared ab error over pixels and both channels (ab units squared).
- ``ab_r2``: coefficient of determination of the ab channels pooled, ``1 - SS_res / SS_tot``
  (scikit-learn's "variance_weighted" R²); a constant truth gives 1 for a perfect prediction, else 0.
- ``auc``: Zhang et al. 2016's raw accuracy: the fraction of pixels whose ab L2 error is <= t, integrated
  over t in [0, 150] (trapezoid, integer steps) and normalised, in %.
- ``colorfulness``: Hasler & Süsstrunk (2003) M = σ_rgyb + 0.3 μ_rgyb of ``pred`` (RGB 0..255 scale).
- ``colorfulness_diff``: colourfulness of ``pred`` minus that of ``truth``.
- ``ciede2000``: mean CIEDE2000 colour difference (``skimage.color.deltaE_ciede2000``'s formula).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colorcore.color import lab_to_rgb, rgb_to_lab
from colorcore.errors import ConfigError
from colorcore.quantize import hard_assign

PSNR_CAP = 100.0  # dB reported for identical images
AUC_MAX_THRESHOLD = 150  # ab units, Zhang et al. 2016
SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. 2004, scikit-image's defaults

#: name -> (label, higher_is_better, unit); ``None`` means "closer to 0 is better".
METRIC_INFO: dict[str, tuple[str, bool | None, str]] = {
    "imgsim": ("ImgSim", True, "%"),
    "psnr": ("PSNR", True, "dB"),
    "ssim": ("SSIM", True, ""),
    "ab_mse": ("ab MSE", False, "ab²"),
    "ab_r2": ("ab R²", True, ""),
    "auc": ("AuC", True, "%"),
    # Colourisers mostly err on the dull side, so more colour is usually better (up to the truth's).
    "colorfulness": ("Colourfulness", True, ""),
    "colorfulness_diff": ("Colourfulness Δ", None, ""),
    "ciede2000": ("CIEDE2000", False, "ΔE00"),
}


def _check_image(img: np.ndarray, name: str) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        desc = (f"{img.dtype} array of shape {img.shape}" if isinstance(img, np.ndarray)
                else type(img).__name__)
        raise ConfigError(f"{name} must be an (H, W, 3) uint8 RGB array, got {desc}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ConfigError(f"{name} is empty ({img.shape[0]}x{img.shape[1]})")


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    _check_image(pred, "pred")
    _check_image(truth, "truth")
    if pred.shape != truth.shape:
        raise ConfigError(f"pred and truth differ in size: {pred.shape[1]}x{pred.shape[0]} vs "
                          f"{truth.shape[1]}x{truth.shape[0]}")


def image_to_lab(img: np.ndarray) -> np.ndarray:
    """CIE Lab ``(H, W, 3)`` float64 of a uint8 RGB image, via :func:`colorcore.color.rgb_to_lab`."""
    _check_image(img, "image")
    # torch.from_numpy warns on read-only arrays (np.asarray of a PIL image): copy those.
    arr = img if img.flags.writeable and img.flags.c_contiguous else np.array(img)
    rgb = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255)
    with torch.no_grad():
        return rgb_to_lab(rgb).permute(1, 2, 0).double().numpy()


# ---- RGB metrics -------------------------------------------------------------------------------------


def imgsim(pred: np.ndarray, truth: np.ndarray) -> float:
    """100 * (1 - mean |ΔRGB| / 255), in % (100 for identical images)."""
    _check_pair(pred, truth)
    diff = np.abs(pred.astype(np.int16) - truth.astype(np.int16))
    return float(100.0 * (1.0 - diff.mean() / 255.0))


def psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """RGB PSNR in dB (data range 255), capped at :data:`PSNR_CAP` for identical images."""
    _check_pair(pred, truth)
    diff = pred.astype(np.int32) - truth
    mse = float(np.einsum("ijk,ijk->", diff, diff, dtype=np.int64)) / diff.size  # exact integer sum
    if mse == 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean structural similarity over the RGB channels: scikit-image's, computed exactly (see below)."""
    _check_pair(pred, truth)
    return _ssim(pred, _ssim_sums(truth))


def _ssim_window(shape: tuple[int, ...]) -> int | None:
    side = min(shape[:2])
    if side < 3:
        return None
    return min(7, side if side % 2 else side - 1)  # scikit-image needs an odd window <= the image side


_SsimSums = tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]


def _ssim_sums(truth: np.ndarray) -> _SsimSums | None:
    """The truth's side of SSIM, per channel: the channel as a contiguous integer array (the shifted adds
    of :func:`_window_sums` are slow on a strided view), its window sums and those of its square."""
    win = _ssim_window(truth.shape)
    if win is None:
        return None
    y = truth.astype(_sum_dtype(truth.shape, win))
    channels = [np.ascontiguousarray(y[..., c]) for c in range(3)]
    return channels, [(_window_sums(yc, win), _window_sums(yc * yc, win)) for yc in channels]


def _ssim(pred: np.ndarray, truth_sums: _SsimSums | None) -> float:
    if truth_sums is None:
        return float("nan")
    channels, sums = truth_sums
    win = _ssim_window(pred.shape)
    x = pred.astype(channels[0].dtype)
    return float(np.mean([_ssim_channel(np.ascontiguousarray(x[..., c]), yc, *sums[c], win)
                          for c, yc in enumerate(channels)]))


def _sum_dtype(shape: tuple[int, ...], win: int) -> type[np.integer]:
    """int32 where no running sum of squares (nor SSIM's products of window sums) can overflow it, with a
    factor 2 to spare (images up to 2,358 px wide), else int64: int32 halves the memory traffic."""
    return np.int32 if max(shape[0], shape[1] * win) * 2 * 255**2 < 2**31 else np.int64


def _window_sums(a: np.ndarray, win: int) -> np.ndarray:
    """Sums of the ``win`` x ``win`` windows lying wholly inside the integer image ``a``, in its dtype.

    ``win - 1`` shifted adds per axis: for SSIM's window of at most 7 they vectorise, where a running
    ``cumsum`` does not, and take under half its time (on a contiguous ``a``)."""
    h, w = a.shape[0] - win + 1, a.shape[1] - win + 1
    rows = a[:h].copy()
    for k in range(1, win):
        rows += a[k:k + h]
    out = rows[:, :w].copy()
    for k in range(1, win):
        out += rows[:, k:k + w]
    return out


def _ssim_channel(x: np.ndarray, y: np.ndarray, sy: np.ndarray, syy: np.ndarray, win: int) -> float:
    """``structural_similarity(x, y, data_range=255, win_size=win)`` (uniform window, sample covariance).

    scikit-image averages S over the pixels whose window lies inside the image; there its filtered means
    are window sums / n, exact integers here, and S's four factors share denominators that cancel. So S
    comes from integer sums alone, with one float rounding per factor (equal to scikit-image's within
    1e-15), and numpy releases the GIL, which scipy.ndimage's filters hold: the studio scores models in
    parallel threads, and those filters serialised them. ``x``, ``y`` are integer channels; ``sy`` and
    ``syy`` the window sums of ``y`` and ``y**2``, computed once per truth (:class:`Reference`).
    """
    n = win * win
    sx = _window_sums(x, win)
    sxy = _window_sums(x * y, win)
    sq = _window_sums(x * x, win) + syy
    p, q = sx * sy, sx * sx + sy * sy
    c1 = (SSIM_K1 * 255) ** 2 * n * n
    c2 = (SSIM_K2 * 255) ** 2 * n * (n - 1)
    s = (2 * p + c1) * (2 * (n * sxy - p) + c2) / ((q + c1) * (n * sq - q + c2))
    return float(s.mean(dtype=np.float64))


def colorfulness(pred: np.ndarray, truth: np.ndarray | None = None) -> float:
    """Hasler & Süsstrunk (2003) colourfulness of ``pred`` (``truth`` is accepted and ignored); 0 for gray."""
    _check_image(pred, "pred")
    rgb = pred.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    sigma = math.hypot(float(rg.std()), float(yb.std()))
    mu = math.hypot(float(rg.mean()), float(yb.mean()))
    return sigma + 0.3 * mu


def colorfulness_diff(pred: np.ndarray, truth: np.ndarray) -> float:
    """Colourfulness of ``pred`` minus colourfulness of ``truth`` (negative: duller than the truth)."""
    _check_pair(pred, truth)
    return colorfulness(pred) - colorfulness(truth)


# ---- Lab metrics (on precomputed Lab, shared by compute_all) -----------------------------------------


def _ab_mse(lab_p: np.ndarray, lab_t: np.ndarray) -> float:
    return float(np.mean((lab_p[..., 1:] - lab_t[..., 1:]) ** 2))


def _ab_r2(lab_p: np.ndarray, lab_t: np.ndarray) -> float:
    ab_p, ab_t = lab_p[..., 1:].reshape(-1, 2), lab_t[..., 1:].reshape(-1, 2)
    ss_res = float(((ab_t - ab_p) ** 2).sum())
    ss_tot = float(((ab_t - ab_t.mean(axis=0)) ** 2).sum())
    if ss_tot == 0:  # constant truth: scikit-learn's convention (force_finite)
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def _auc(lab_p: np.ndarray, lab_t: np.ndarray) -> float:
    err = np.sqrt(((lab_p[..., 1:] - lab_t[..., 1:]) ** 2).sum(axis=-1)).ravel()
    # err <= t  <=>  ceil(err) <= t for integer t: one bincount gives the CDF at every threshold.
    steps = np.minimum(np.ceil(err), AUC_MAX_THRESHOLD + 1).astype(np.int64)
    cdf = np.cumsum(np.bincount(steps, minlength=AUC_MAX_THRESHOLD + 2))[: AUC_MAX_THRESHOLD + 1] / err.size
    area = np.trapezoid(cdf, dx=1.0) / AUC_MAX_THRESHOLD
    return float(100.0 * area)


# Below torch's intra-op grain size (32,768 elements) each op runs on the calling thread: no thread pool
# to oversubscribe when the studio scores models in parallel threads, and the chunk stays in cache.
_CIEDE_CHUNK = 32_000
_TWO_PI = 2 * math.pi
_COS_SIN = {deg: (math.cos(math.radians(deg)), math.sin(math.radians(deg))) for deg in (30, 6, 63)}


def _ciede2000(lab_p: np.ndarray, lab_t: np.ndarray) -> float:
    """Mean of ``skimage.color.deltaE_ciede2000(lab_t, lab_p)`` (Sharma et al. 2005), equal within 1e-5.

    The same formula, run with torch in float32 on chunks of pixels (each chunk's sum and the mean are
    float64): its vectorised sin, cos, atan2 and exp take a third of numpy's scalar ones, float32 halves
    float64's time, and torch releases the GIL. Masked updates become sign flips and the hue's four
    cosines come from one ``cos`` and ``sin`` by multiple-angle identities."""
    planes_t = torch.from_numpy(np.moveaxis(lab_t[..., :3], -1, 0).reshape(3, -1)).float()
    planes_p = torch.from_numpy(np.moveaxis(lab_p[..., :3], -1, 0).reshape(3, -1)).float()
    total = 0.0
    with torch.no_grad():
        for i in range(0, planes_t.shape[1], _CIEDE_CHUNK):
            total += float(_ciede2000_sum(*planes_t[:, i:i + _CIEDE_CHUNK], *planes_p[:, i:i + _CIEDE_CHUNK]))
    return total / max(planes_t.shape[1], 1)


def _ciede2000_sum(l1: Tensor, a1: Tensor, b1: Tensor, l2: Tensor, a2: Tensor, b2: Tensor) -> Tensor:
    """Sum of CIEDE2000 over pixels (float64); 1 is the reference (truth), 2 the sample, 1-D tensors of one
    float dtype."""
    c7 = _pow7(0.5 * (torch.sqrt(a1 * a1 + b1 * b1) + torch.sqrt(a2 * a2 + b2 * b2)))
    scale = 1 + 0.5 * (1 - torch.sqrt(c7 / (c7 + 25.0**7)))
    C1, h1 = _polar_2pi(a1 * scale, b1)
    C2, h2 = _polar_2pi(a2 * scale, b2)
    tmp = (0.5 * (l1 + l2) - 50) ** 2
    L_term = (l2 - l1) / (1 + 0.015 * tmp / torch.sqrt(20 + tmp))
    cbar = 0.5 * (C1 + C2)
    C_term = (C2 - C1) / (1 + 0.045 * cbar)
    h_diff, h_sum = h2 - h1, h1 + h2
    wrap = (h_diff.abs() > math.pi).to(h_diff.dtype)
    # Wrapping the hue difference by 2 pi flips the sign of sin(dH / 2); where C1 C2 = 0 the term is 0.
    H_term = 2 * torch.sqrt(C1 * C2) * torch.sin(0.5 * h_diff) * (1 - 2 * wrap)
    # The mean hue moves by pi where the hues wrap. scikit-image keeps h1 + h2 where C1 C2 = 0, but
    # there H_term is 0 and the hue enters nothing else.
    hbar = 0.5 * h_sum + math.pi * wrap * (1 - 2 * (h_sum >= _TWO_PI).to(h_sum.dtype))
    c, s = torch.cos(hbar), torch.sin(hbar)
    c2, s2 = 2 * c * c - 1, 2 * s * c
    c3, s3 = c * (4 * c * c - 3), s * (3 - 4 * s * s)
    c4, s4 = 2 * c2 * c2 - 1, 2 * s2 * c2
    (c30, s30), (c6, s6), (c63, s63) = _COS_SIN[30], _COS_SIN[6], _COS_SIN[63]
    T = (1 - 0.17 * (c * c30 + s * s30) + 0.24 * c2 + 0.32 * (c3 * c6 - s3 * s6)
         - 0.20 * (c4 * c63 + s4 * s63))
    H_term = H_term / (1 + 0.015 * cbar * T)
    c7 = _pow7(cbar)
    Rc = 2 * torch.sqrt(c7 / (c7 + 25.0**7))
    dtheta = math.radians(30) * torch.exp(-(((hbar * (180 / math.pi)) - 275) / 25) ** 2)
    dE2 = L_term * L_term + C_term * C_term + H_term * H_term - torch.sin(2 * dtheta) * Rc * C_term * H_term
    return torch.sqrt(dE2.clamp_min_(0)).sum(dtype=torch.float64)


def _pow7(x: Tensor) -> Tensor:
    x2 = x * x
    return x2 * x2 * x2 * x


def _polar_2pi(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Radius and angle in [0, 2 pi) (scikit-image's ``_cart2polar_2pi``)."""
    t = torch.atan2(y, x)
    return torch.sqrt(x * x + y * y), torch.where(t < 0.0, t + _TWO_PI, t)


def _lab_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _check_pair(pred, truth)
    return image_to_lab(pred), image_to_lab(truth)


def ab_mse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error of the Lab ab channels (ab units squared, averaged over pixels and a, b)."""
    return _ab_mse(*_lab_pair(pred, truth))


def ab_r2(pred: np.ndarray, truth: np.ndarray) -> float:
    """R² of the predicted ab channels against the truth's, pooled over a and b."""
    return _ab_r2(*_lab_pair(pred, truth))


def auc(pred: np.ndarray, truth: np.ndarray) -> float:
    """Area under the CDF of per-pixel ab L2 error over thresholds 0..150, in % (100 for identical)."""
    return _auc(*_lab_pair(pred, truth))


def ciede2000(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference between ``pred`` and ``truth``."""
    return _ciede2000(*_lab_pair(pred, truth))


@dataclass(frozen=True, eq=False)
class Reference:
    """A ground truth with the work every score against it shares, done once: its Lab, colourfulness
    and SSIM window sums. Scoring several models against one photo (the studio, the evaluator's gray
    row) builds it once; :func:`reference` makes it."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    lab: np.ndarray  # (H, W, 3) float64
    colorfulness: float
    ssim_sums: _SsimSums | None


def reference(truth: np.ndarray) -> Reference:
    """The :class:`Reference` of a ``(H, W, 3)`` uint8 RGB truth."""
    _check_image(truth, "truth")
    return Reference(truth, image_to_lab(truth), colorfulness(truth), _ssim_sums(truth))


def compute_all(pred: np.ndarray, truth: np.ndarray | Reference) -> dict[str, float]:
    """Every metric of :data:`METRIC_INFO`, in that order, against a truth image or its :class:`Reference`
    (faster when one truth scores several predictions); Lab is computed once per image."""
    ref = truth if isinstance(truth, Reference) else reference(truth)
    _check_pair(pred, ref.image)
    lab_p, lab_t = image_to_lab(pred), ref.lab
    cf_pred = colorfulness(pred)
    return {
        "imgsim": imgsim(pred, ref.image),
        "psnr": psnr(pred, ref.image),
        "ssim": _ssim(pred, ref.ssim_sums),
        "ab_mse": _ab_mse(lab_p, lab_t),
        "ab_r2": _ab_r2(lab_p, lab_t),
        "auc": _auc(lab_p, lab_t),
        "colorfulness": cf_pred,
        "colorfulness_diff": cf_pred - ref.colorfulness,
        "ciede2000": _ciede2000(lab_p, lab_t),
    }


def gray_baseline(truth: np.ndarray) -> np.ndarray:
    """What doing nothing scores: the truth's L with a = b = 0, as a neutral uint8 RGB image (R = G = B)."""
    _check_image(truth, "truth")
    lab = torch.from_numpy(image_to_lab(truth)).permute(2, 0, 1).float()
    lab[1:] = 0
    with torch.no_grad():
        rgb = lab_to_rgb(lab)
    # Lab (L, 0, 0) is neutral up to rounding of the white point; one channel keeps it exactly gray.
    gray = rgb.mean(dim=0).mul_(255).round_().clamp_(0, 255).to(torch.uint8).numpy()
    return np.repeat(gray[..., None], 3, axis=2)


# ---- classifier metrics -------------------------------------------------------------------------------


def bin_accuracy(logits: Tensor, ab_true: Tensor, centers: Tensor) -> float:
    """Top-1 accuracy in %: argmax of ``logits (B, Q, h, w)`` vs the nearest bin of ``ab_true (B, 2, h, w)``.

    ``centers (Q, 2)`` are the bin centres the logits refer to.
    """
    if logits.dim() != 4 or ab_true.dim() != 4 or ab_true.shape[1] != 2:
        raise ConfigError(f"expected logits (B, Q, h, w) and ab (B, 2, h, w), got {tuple(logits.shape)} "
                          f"and {tuple(ab_true.shape)}")
    if logits.shape[0] != ab_true.shape[0] or logits.shape[-2:] != ab_true.shape[-2:]:
        raise ConfigError(f"logits {tuple(logits.shape)} and ab {tuple(ab_true.shape)} "
                          "differ in batch or size")
    if logits.shape[1] != centers.shape[0]:
        raise ConfigError(f"logits have {logits.shape[1]} classes but there are {centers.shape[0]} centres")
    with torch.no_grad():
        target = hard_assign(ab_true, centers.to(ab_true.device))
        correct = (logits.argmax(dim=1) == target.to(logits.device)).float().mean()
    return float(100.0 * correct)


def class_cross_entropy(logits: Tensor, soft_targets: Tensor) -> float:
    """Mean over pixels of ``-sum_q t_q log softmax(logits)_q`` (nats); both ``(B, Q, h, w)``."""
    if logits.shape != soft_targets.shape or logits.dim() < 2:
        raise ConfigError(f"logits {tuple(logits.shape)} and soft targets {tuple(soft_targets.shape)} "
                          "must have the same (B, Q, h, w) shape")
    with torch.no_grad():
        logp = F.log_softmax(logits.double(), dim=1)
        # Zero targets contribute nothing, even where log p is -inf.
        nll = -(soft_targets.double() * logp).nan_to_num(nan=0.0).sum(dim=1)
    return float(nll.mean())


__all__ = [
    "AUC_MAX_THRESHOLD", "METRIC_INFO", "PSNR_CAP", "Reference", "ab_mse", "ab_r2", "auc", "bin_accuracy",
    "ciede2000", "class_cross_entropy", "colorfulness", "colorfulness_diff", "compute_all", "gray_baseline",
    "image_to_lab", "imgsim", "psnr", "reference", "ssim",
]
