"""Photo-like test images: smooth colour gradients plus a little noise, so there is real colour to learn."""

from __future__ import annotations

import numpy as np


def smooth_rgb(height: int, width: int, seed: int = 0, amplitude: float = 0.4) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 image: per-channel sine gradients of ``amplitude`` around 0.5, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y /= max(height - 1, 1)
    x /= max(width - 1, 1)
    phase = rng.uniform(0, 2 * np.pi, 3)
    rgb = np.stack([0.5 + amplitude * np.sin(3 * x + 2 * y + p) for p in phase], axis=-1)
    rgb += rng.normal(0, 0.02, rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
