"""Temporal consistency for video: carry the previous frame's ab forward along optical flow.

Everything here works at the model's square working size S, on the two things the pipeline produces
there: the 8-bit gray ``l`` (S x S, resized from the frame's full-resolution gray) and the predicted ab
``(2, S, S)``. The full-resolution L of each frame is never touched; only the ab that will be upsampled
and merged with it is.

For each frame t, :class:`Propagator` :

1. detects a scene cut from L alone (total-variation distance of the gray histograms of frames t-1 and
   t), and after a cut starts over from the new prediction;
2. computes DIS optical flow (OpenCV) from frame t back to t-1 and from t-1 forward to t;
3. warps the previous *output* ab (and the previous gray) to frame t along the backward flow;
4. scores each pixel's warp: the confidence is ``exp(-(e / sigma_l)^2) * exp(-(d / sigma_fb)^2)``, where
   e is the gray-level error between frame t and the warped frame t-1 (photometric failure) and d the
   forward-backward flow mismatch in pixels (occlusion, where the two flows disagree); 0 where the warp
   samples outside frame t-1;
5. blends: ``ab_t = w * warped + (1 - w) * predicted`` with ``w = stability * confidence``.

With confidence 1 everywhere this is an exponential moving average along motion tracks with memory
``1 / (1 - stability)`` frames; where the warp fails the new prediction takes over at once. A frame whose
warp fails almost everywhere counts as a cut too (two shots with similar histograms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from colorcore.errors import ConfigError

HIST_BINS = 64


@dataclass(frozen=True)
class Temporal:
    """The propagation knobs.

    Attributes:
        stability: 0 colours every frame on its own; up to 1, the weight of the warped previous ab where
            the warp is trusted (0.9 keeps about ten frames of memory).
        sigma_l: gray-level error of the warp at which confidence falls to 1/e.
        sigma_fb: forward-backward flow mismatch (working-size pixels) at which confidence falls to 1/e.
        cut_histogram: histogram distance (0..1) above which two frames are different shots.
        cut_confidence: mean warp confidence below which two frames are different shots.
    """

    stability: float = 0.9  # scripts/bench_video.py: 60 % of the excess flicker gone, 0.8: 53 %
    sigma_l: float = 8.0
    sigma_fb: float = 1.0
    cut_histogram: float = 0.4
    cut_confidence: float = 0.25

    def __post_init__(self) -> None:
        s = self.stability
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or not 0 <= s <= 1:
            raise ConfigError(f"stability must be a number in [0, 1], got {s!r}")
        for name in ("sigma_l", "sigma_fb"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True, eq=False)
class Step:
    """One propagated frame: the ab to merge, the mean warp confidence (0 at a cut) and whether it cut."""

    ab: np.ndarray  # (2, S, S) float32
    confidence: float
    cut: bool


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance (0 = same, 1 = disjoint) of two uint8 images' gray histograms."""
    ha = np.bincount(a.ravel() >> 2, minlength=HIST_BINS) / a.size  # 64 bins of 4 gray levels
    hb = np.bincount(b.ravel() >> 2, minlength=HIST_BINS) / b.size
    return float(0.5 * np.abs(ha - hb).sum())


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``image`` (H, W) or (H, W, C) at ``x + flow(x)``; also returns where that lies inside it."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    warped = cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return warped, inside


def warp_confidence(l: np.ndarray, prev_l: np.ndarray, back: np.ndarray, fwd: np.ndarray,
                    temporal: Temporal) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel trust ``(S, S)`` in [0, 1] of warping frame t-1 to t along ``back``, and the warp map.

    ``back`` is the flow from frame t to t-1, ``fwd`` from t-1 to t (both ``(S, S, 2)`` float32).
    Returns ``(confidence, inside)``.
    """
    warped_l, inside = warp(prev_l.astype(np.float32), back)
    error = np.abs(l.astype(np.float32) - warped_l)
    fwd_at_target, _ = warp(fwd, back)
    mismatch = np.hypot(*np.moveaxis(back + fwd_at_target, -1, 0))
    conf = np.exp(-((error / temporal.sigma_l) ** 2) - (mismatch / temporal.sigma_fb) ** 2)
    conf *= inside
    # A 3x3 minimum: an occlusion edge distrusts its neighbours too (their bilinear samples straddle it).
    return cv2.erode(conf.astype(np.float32), np.ones((3, 3), np.uint8)), inside


class Propagator:
    """Stateful per-clip propagation (one per clip, frames in display order); see the module docstring."""

    def __init__(self, temporal: Temporal | None = None) -> None:
        self.temporal = temporal or Temporal()
        # MEDIUM: 1.5 ms for a 128^2 pair on one core; its flow is visibly cleaner than FAST's at edges.
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._prev_l: np.ndarray | None = None
        self._prev_ab: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_l = self._prev_ab = None

    def step(self, l: np.ndarray, ab: np.ndarray) -> Step:
        """Propagate into a new frame: ``l`` its working-size gray (S, S) uint8, ``ab`` its prediction."""
        l = np.ascontiguousarray(l, np.uint8)
        ab = np.asarray(ab, np.float32)
        if ab.shape != (2, *l.shape):
            raise ConfigError(f"ab of shape {ab.shape} does not match gray of shape {l.shape}")
        prev_l, prev_ab = self._prev_l, self._prev_ab
        out, confidence, cut = ab, 0.0, prev_l is not None
        if self.temporal.stability > 0 and prev_l is not None and prev_l.shape == l.shape \
                and histogram_distance(prev_l, l) <= self.temporal.cut_histogram:
            back = self._dis.calc(l, prev_l, None)
            fwd = self._dis.calc(prev_l, l, None)
            conf, _ = warp_confidence(l, prev_l, back, fwd, self.temporal)
            confidence = float(conf.mean())
            if confidence >= self.temporal.cut_confidence:
                cut = False
                warped_ab, _ = warp(np.ascontiguousarray(prev_ab.transpose(1, 2, 0)), back)
                weight = self.temporal.stability * conf[None]
                out = (weight * warped_ab.transpose(2, 0, 1) + (1 - weight) * ab).astype(np.float32)
        if self.temporal.stability == 0:
            cut = False  # per-frame colouring has no notion of shots
        self._prev_l, self._prev_ab = l, out
        return Step(out, confidence, cut)
