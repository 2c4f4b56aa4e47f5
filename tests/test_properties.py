"""Property tests (hypothesis) for the colour maths and the quantisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial import ConvexHull

from colorcore.color import lab_to_rgb, rgb_to_lab
from colorcore.quantize import (
    decode_annealed_mean,
    decode_mode,
    decode_top_k,
    gamut_centers,
    load_palette,
    rebalance_weights,
    smooth_distribution,
    soft_encode,
)

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CENTER_SETS = {"gamut": gamut_centers(), "palette16": load_palette(16), "palette32": load_palette(32)}

shapes = st.tuples(st.integers(1, 5), st.integers(1, 6))  # H, W
unit = st.floats(0.0, 1.0, allow_nan=False, width=64)


@st.composite
def rgb_images(draw: st.DrawFn) -> torch.Tensor:
    h, w = draw(shapes)
    arr = draw(arrays(np.float64, (3, h, w), elements=unit))
    return torch.from_numpy(arr)


@st.composite
def lab_images(draw: st.DrawFn) -> torch.Tensor:
    h, w = draw(shapes)
    l = draw(arrays(np.float64, (1, h, w), elements=st.floats(0, 100)))
    ab = draw(arrays(np.float64, (2, h, w), elements=st.floats(-150, 150)))
    return torch.from_numpy(np.concatenate((l, ab)))


@st.composite
def logits_for(draw: st.DrawFn, q: int) -> torch.Tensor:
    h, w = draw(shapes)
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.1, 20.0))
    return torch.randn(1, q, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def _inside_hull(points: torch.Tensor, centers: torch.Tensor, tol: float = 1e-6) -> bool:
    hull = ConvexHull(centers.double().numpy())
    pts = points.movedim(-3, -1).reshape(-1, 2).double().numpy()
    return bool(((pts @ hull.equations[:, :2].T + hull.equations[:, 2]) <= tol).all())


# ---- colour maths ---------------------------------------------------------------------------------------


@FAST
@given(rgb_images())
def test_round_trip_within_gamut(rgb: torch.Tensor) -> None:
    # 1e-7, not 1e-12: the standard sRGB knees (0.04045 / 12.92 > 0.0031308) leave a 3e-8 mismatch
    # for encoded values in (0.0404499, 0.04045], exactly as in scikit-image.
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-7, rtol=0)
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb.float())), rgb.float(), atol=2e-5, rtol=0)


@FAST
@given(rgb_images())
def test_lab_ranges(rgb: torch.Tensor) -> None:
    lab = rgb_to_lab(rgb)
    assert lab[0].min() >= -1e-9 and lab[0].max() <= 100 + 1e-6
    assert lab[1:].abs().max() <= 128


@FAST
@given(lab_images())
def test_lab_to_rgb_is_clipped_and_finite(lab: torch.Tensor) -> None:
    rgb = lab_to_rgb(lab)
    assert torch.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    assert torch.isfinite(lab_to_rgb(lab, clip=False)).all()


DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@FAST
@given(rgb_images(), st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
       st.sampled_from(DEVICES), st.booleans())
def test_dtype_and_device_kept(rgb: torch.Tensor, dtype: torch.dtype, device: str, grad: bool) -> None:
    x = rgb.to(device=device, dtype=dtype).requires_grad_(grad)
    lab = rgb_to_lab(x)
    back = lab_to_rgb(lab)
    for out in (lab, back):
        assert out.dtype == dtype and out.device.type == device and out.shape == rgb.shape
        assert out.requires_grad == grad


# ---- quantisation ---------------------------------------------------------------------------------------


@FAST
@given(st.data(), st.sampled_from(sorted(CENTER_SETS)), st.floats(0.5, 50.0))
def test_soft_encode_is_a_distribution(data: st.DataObject, name: str, sigma: float) -> None:
    centers = CENTER_SETS[name]
    k = data.draw(st.integers(1, min(10, centers.shape[0])))
    h, w = data.draw(shapes)
    ab = torch.from_numpy(data.draw(arrays(np.float32, (2, h, w), elements=st.floats(-300, 300, width=32))))
    enc = soft_encode(ab, centers, k=k, sigma=sigma)
    assert enc.shape == (centers.shape[0], h, w)
    assert (enc >= 0).all() and ((enc > 0).sum(dim=0) <= k).all()
    torch.testing.assert_close(enc.sum(dim=0), torch.ones(h, w), atol=1e-5, rtol=0)


@FAST
@given(st.data(), st.sampled_from(sorted(CENTER_SETS)), st.floats(0.01, 10.0))
def test_decoders_stay_in_the_convex_hull(data: st.DataObject, name: str, temperature: float) -> None:
    centers = CENTER_SETS[name]
    logits = data.draw(logits_for(centers.shape[0]))
    k = data.draw(st.integers(1, centers.shape[0]))
    for ab in (decode_annealed_mean(logits, centers, temperature), decode_top_k(logits, centers, k),
               decode_mode(logits, centers)):
        assert ab.shape == (1, 2, *logits.shape[-2:])
        assert _inside_hull(ab, centers)


@FAST
@given(st.data(), st.sampled_from(sorted(CENTER_SETS)))
def test_top1_and_cold_limit_are_the_mode(data: st.DataObject, name: str) -> None:
    centers = CENTER_SETS[name]
    logits = data.draw(logits_for(centers.shape[0]))
    mode = decode_mode(logits, centers)
    torch.testing.assert_close(decode_top_k(logits, centers, 1), mode)
    top2 = logits.topk(2, dim=1).values
    assume(bool(((top2[:, 0] - top2[:, 1]) > 1e-2).all()))  # a unique maximum at every pixel
    torch.testing.assert_close(decode_annealed_mean(logits, centers, 1e-4), mode, atol=1e-6, rtol=0)


@FAST
@given(st.data(), st.sampled_from(sorted(CENTER_SETS)))
def test_unit_temperature_is_the_mean(data: st.DataObject, name: str) -> None:
    centers = CENTER_SETS[name]
    logits = data.draw(logits_for(centers.shape[0]))
    probs = torch.softmax(logits, dim=1)
    mean = (probs[:, :, None] * centers.double()[None, :, :, None, None]).sum(dim=1)
    torch.testing.assert_close(decode_annealed_mean(logits, centers, 1.0), mean)
    torch.testing.assert_close(decode_top_k(logits, centers, centers.shape[0]), mean)


@FAST
@given(arrays(np.float64, 313, elements=st.floats(0, 1e3)), st.floats(0.01, 1.0), st.sampled_from([0.0, 5.0]))
def test_rebalance_normalisation(p: np.ndarray, lam: float, sigma: float) -> None:
    assume(p.sum() > 0)
    prior = torch.from_numpy(p)
    centers = CENTER_SETS["gamut"]
    w = rebalance_weights(prior, lam=lam, sigma=sigma, centers=centers)
    p_tilde = prior / prior.sum() if sigma == 0 else smooth_distribution(prior, centers, sigma)
    assert (w > 0).all() and torch.isfinite(w).all()
    assert float((p_tilde * w.double()).sum()) == pytest.approx(1.0, abs=1e-5)
