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


def _ssim_sums(truth: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]] | None:
    """The truth's side of SSIM, per channel: its window sums and window sums of its square."""
    win = _ssim_window(truth.shape)
    if win is None:
        return None
    y = truth.astype(_sum_dtype(truth.shape, win))
    return y, [(_window_sums(y[..., c], win), _window_sums(y[..., c] ** 2, win)) for c in range(3)]


def _ssim(pred: np.ndarray, truth_sums) -> float:
    if truth_sums is None:
        return float("nan")
    y, sums = truth_sums
    win = _ssim_window(pred.shape)
    x = pred.astype(y.dtype)
    return float(np.mean([_ssim_channel(x[..., c], y[..., c], *sums[c], win) for c in range(3)]))


def _sum_dtype(shape: tuple[int, ...], win: int) -> type[np.integer]:
    """int32 where no running sum of squares (nor SSIM's products of window sums) can overflow it, with a
    factor 2 to spare (images up to 2,358 px wide), else int64: int32 halves the memory traffic."""
    return np.int32 if max(shape[0], shape[1] * win) * 2 * 255**2 < 2**31 else np.int64


def _window_sums(a: np.ndarray, win: int) -> np.ndarray:
    """Sums of the ``win`` x ``win`` windows lying wholly inside the integer image ``a``, in its dtype."""
    rows = np.zeros((a.shape[0] + 1, a.shape[1]), a.dtype)
    np.cumsum(a, axis=0, out=rows[1:])
    band = rows[win:] - rows[:-win]
    cols = np.zeros((band.shape[0], band.shape[1] + 1), a.dtype)
    np.cumsum(band, axis=1, out=cols[:, 1:])
    return cols[:, win:] - cols[:, :-win]


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


def _ciede2000(lab_p: np.ndarray, lab_t: np.ndarray) -> float:
    """Mean of ``skimage.color.deltaE_ciede2000(lab_t, lab_p)``: the same float64 formula (Sharma et al.
    2005), with its masked in-place updates as ``np.where`` and ``x**7`` as products, which release the
    GIL (the studio scores models in parallel threads) and skip ``pow``; equal within 1e-12."""
    L1, a1, b1 = np.moveaxis(lab_t, -1, 0)[:3]
    L2, a2, b2 = np.moveaxis(lab_p, -1, 0)[:3]
    c7 = _pow7(0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2)))
    scale = 1 + 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0**7)))
    C1, h1 = _polar_2pi(a1 * scale, b1)
    C2, h2 = _polar_2pi(a2 * scale, b2)
    tmp = (0.5 * (L1 + L2) - 50) ** 2
    L_term = (L2 - L1) / (1 + 0.015 * tmp / np.sqrt(20 + tmp))
    cbar = 0.5 * (C1 + C2)
    C_term = (C2 - C1) / (1 + 0.045 * cbar)
    h_diff, h_sum, CC = h2 - h1, h1 + h2, C1 * C2
    dH = np.where(h_diff > np.pi, h_diff - 2 * np.pi, np.where(h_diff < -np.pi, h_diff + 2 * np.pi, h_diff))
    dH = np.where(CC == 0.0, 0.0, dH)  # no chroma: no hue difference
    dH_term = 2 * np.sqrt(CC) * np.sin(dH / 2)
    wrap = (CC != 0.0) & (np.abs(h_diff) > np.pi)
    hbar = np.where(wrap, np.where(h_sum < 2 * np.pi, h_sum + 2 * np.pi, h_sum - 2 * np.pi), h_sum)
    hbar = np.where(CC == 0.0, h_sum, 0.5 * hbar)  # scikit-image doubles, then halves, these
    T = (1 - 0.17 * np.cos(hbar - np.deg2rad(30)) + 0.24 * np.cos(2 * hbar)
         + 0.32 * np.cos(3 * hbar + np.deg2rad(6)) - 0.20 * np.cos(4 * hbar - np.deg2rad(63)))
    H_term = dH_term / (1 + 0.015 * cbar * T)
    c7 = _pow7(cbar)
    Rc = 2 * np.sqrt(c7 / (c7 + 25.0**7))
    dtheta = np.deg2rad(30) * np.exp(-(((np.rad2deg(hbar) - 275) / 25) ** 2))
    dE2 = L_term**2
    dE2 += C_term**2
    dE2 += H_term**2
    dE2 += -np.sin(2 * dtheta) * Rc * C_term * H_term
    return float(np.mean(np.sqrt(np.maximum(dE2, 0))))


def _pow7(x: np.ndarray) -> np.ndarray:
    x2 = x * x
    return x2 * x2 * x2 * x


def _polar_2pi(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle in [0, 2 pi) (scikit-image's ``_cart2polar_2pi``)."""
    t = np.arctan2(y, x)
    return np.hypot(x, y), t + np.where(t < 0.0, 2 * np.pi, 0.0)


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
    ssim_sums: tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]] | None


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
