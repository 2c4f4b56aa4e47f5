"""colorcore.metrics: hand-computed cases, scikit-image / scikit-learn golden values and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import color as skcolor
from skimage.metrics import structural_similarity
from sklearn.metrics import r2_score

from colorcore import metrics
from colorcore.errors import ConfigError
from colorcore.quantize import gamut_centers, hard_assign, soft_encode

KEYS = ["imgsim", "psnr", "ssim", "ab_mse", "ab_r2", "auc", "colorfulness", "colorfulness_diff", "ciede2000"]


def _const(value: tuple[int, int, int], h: int = 8, w: int = 9) -> np.ndarray:
    return np.broadcast_to(np.array(value, dtype=np.uint8), (h, w, 3)).copy()


@pytest.fixture
def pair(make_rgb) -> tuple[np.ndarray, np.ndarray]:
    truth = make_rgb(24, 31, seed=3)
    noise = np.random.default_rng(4).integers(-40, 41, truth.shape)
    pred = np.clip(truth.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return pred, truth


def test_identical_images(make_rgb) -> None:
    img = make_rgb(20, 17, seed=1)
    scores = metrics.compute_all(img, img)
    assert list(scores) == KEYS == list(metrics.METRIC_INFO)
    assert scores["imgsim"] == 100.0 and scores["psnr"] == metrics.PSNR_CAP == 100.0
    assert scores["ssim"] == pytest.approx(1.0) and scores["ab_mse"] == 0.0 and scores["ab_r2"] == 1.0
    assert scores["auc"] == pytest.approx(100.0) and scores["colorfulness_diff"] == 0.0
    assert scores["ciede2000"] == 0.0 and scores["colorfulness"] > 0


def test_constant_offset() -> None:
    truth, pred = _const((100, 100, 100)), _const((110, 110, 110))
    assert metrics.imgsim(pred, truth) == pytest.approx(100 * (1 - 10 / 255))
    assert metrics.psnr(pred, truth) == pytest.approx(10 * math.log10(255**2 / 100))  # 28.13 dB
    one_channel = _const((100, 100, 130))
    assert metrics.imgsim(one_channel, truth) == pytest.approx(100 * (1 - 10 / 255))  # mean |Δ| = 30 / 3
    assert metrics.psnr(one_channel, truth) == pytest.approx(10 * math.log10(255**2 / 300))


def test_psnr_is_capped_not_infinite() -> None:
    truth = _const((0, 0, 0), 400, 400)
    pred = truth.copy()
    pred[0, 0, 0] = 1  # one off-by-one value among 480000: 48.1 + 56.8 dB > the cap
    assert metrics.psnr(pred, truth) == metrics.PSNR_CAP
    pred[:10] = 1
    assert metrics.psnr(pred, truth) < metrics.PSNR_CAP


def test_colorfulness_hand_computed() -> None:
    assert metrics.colorfulness(_const((77, 77, 77))) == 0.0
    red = _const((255, 0, 0))  # rg = 255, yb = 127.5, no spread
    assert metrics.colorfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5))
    half = np.zeros((2, 2, 3), dtype=np.uint8)
    half[0] = (255, 0, 0)  # rg: 255 / 0 and yb: 127.5 / 0 -> std = mean = half the value
    assert metrics.colorfulness(half) == pytest.approx(1.3 * math.hypot(127.5, 63.75))
    diff = metrics.colorfulness_diff(_const((77, 77, 77)), red)
    assert diff == pytest.approx(-0.3 * math.hypot(255, 127.5))


def test_lab_uses_colorcore_and_matches_skimage(pair) -> None:
    pred, truth = pair
    np.testing.assert_allclose(metrics.image_to_lab(truth), skcolor.rgb2lab(truth), atol=1e-3)
    lab_p, lab_t = skcolor.rgb2lab(pred), skcolor.rgb2lab(truth)
    ab_p, ab_t = lab_p[..., 1:].reshape(-1, 2), lab_t[..., 1:].reshape(-1, 2)
    assert metrics.ab_mse(pred, truth) == pytest.approx(np.mean((ab_p - ab_t) ** 2), rel=1e-4)
    r2 = r2_score(ab_t, ab_p, multioutput="variance_weighted")
    assert metrics.ab_r2(pred, truth) == pytest.approx(r2, abs=1e-4)
    ref_de = np.mean(skcolor.deltaE_ciede2000(lab_t, lab_p, channel_axis=-1))
    assert metrics.ciede2000(pred, truth) == pytest.approx(ref_de, abs=1e-3)
    ref_ssim = structural_similarity(pred, truth, channel_axis=-1, data_range=255)
    assert metrics.ssim(pred, truth) == pytest.approx(ref_ssim)


# The last two sit on either side of the int32 / int64 switch of the window sums (2,358 px wide).
@pytest.mark.parametrize(("h", "w", "seed"), [(24, 31, 0), (7, 7, 1), (9, 12, 2), (5, 4, 3), (64, 3, 4),
                                              (9, 2358, 5), (9, 2359, 6)])
def test_ssim_equals_skimage_to_float_noise(h: int, w: int, seed: int) -> None:
    # Integer window sums replace scipy's filters: the value must not move beyond rounding.
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pred = np.clip(truth.astype(np.int16) + rng.integers(-60, 61, truth.shape), 0, 255).astype(np.uint8)
    extremes = np.where(rng.random(truth.shape) < 0.5, 0, 255).astype(np.uint8)
    flat = np.full_like(truth, 77)
    side = min(h, w)
    win = min(7, side if side % 2 else side - 1)
    for a, b in ((pred, truth), (extremes, truth), (flat, flat), (flat, extremes)):
        ref = structural_similarity(a, b, channel_axis=-1, data_range=255, win_size=win)
        assert metrics.ssim(a, b) == pytest.approx(ref, rel=0, abs=1e-13)
    assert metrics._sum_dtype(truth.shape, win) == (np.int32 if w <= 2358 else np.int64)


def test_ciede2000_equals_skimage_on_gray_and_hue_wrapping_pixels() -> None:
    rng = np.random.default_rng(5)
    lab_t = np.stack([rng.uniform(0, 100, (40, 50)), rng.uniform(-110, 110, (40, 50)),
                      rng.uniform(-110, 110, (40, 50))], axis=-1)
    lab_p = lab_t + rng.normal(0, 30, lab_t.shape)
    lab_p[0, :, 1:] = 0  # gray prediction: no chroma, no hue
    lab_t[1, :, 1:] = 0
    lab_p[2, :, 1:] = lab_t[2, :, 1:] = 0
    lab_t[3, :, 1:], lab_p[3, :, 1:] = (-50, 1e-3), (-50, -1e-3)  # hues either side of 180 degrees
    rows = skcolor.deltaE_ciede2000(lab_t, lab_p, channel_axis=-1).mean(axis=1)
    for r in range(6):
        row = metrics._ciede2000(lab_p[r:r + 1], lab_t[r:r + 1])
        assert row == pytest.approx(rows[r], rel=1e-5, abs=1e-5)
    ref = np.mean(skcolor.deltaE_ciede2000(lab_t, lab_p, channel_axis=-1))
    assert metrics._ciede2000(lab_p, lab_t) == pytest.approx(ref, rel=1e-5)


def test_ciede2000_over_several_chunks_equals_skimage() -> None:
    # More pixels than one chunk, in both the planar layout image_to_lab gives and an interleaved one.
    rng = np.random.default_rng(6)
    shape = (190, 230)
    assert shape[0] * shape[1] > 1.3 * metrics._CIEDE_CHUNK
    lab_t = np.stack([rng.uniform(0, 100, shape), rng.uniform(-110, 110, shape),
                      rng.uniform(-110, 110, shape)], axis=-1)
    lab_p = np.clip(lab_t + rng.normal(0, 25, lab_t.shape), [0, -128, -128], [100, 127, 127])
    ref = np.mean(skcolor.deltaE_ciede2000(lab_t, lab_p, channel_axis=-1))
    planar = [np.moveaxis(np.ascontiguousarray(np.moveaxis(a, -1, 0)), 0, -1) for a in (lab_p, lab_t)]
    assert metrics._ciede2000(lab_p, lab_t) == pytest.approx(ref, rel=1e-5)
    assert metrics._ciede2000(*planar) == pytest.approx(ref, rel=1e-5)


def test_auc_against_direct_threshold_sweep(pair) -> None:
    pred, truth = pair
    lab_p, lab_t = skcolor.rgb2lab(pred), skcolor.rgb2lab(truth)
    err = np.linalg.norm(lab_p[..., 1:] - lab_t[..., 1:], axis=-1)
    cdf = [np.mean(err <= t) for t in range(151)]
    expected = 100 * np.trapezoid(cdf) / 150
    assert metrics.auc(pred, truth) == pytest.approx(expected, abs=0.05)  # err near integers may flip
    assert 0 < metrics.auc(pred, truth) < 100


def test_auc_of_a_constant_error() -> None:
    truth = _const((200, 30, 30))  # a red: ab error e against its gray version
    gray = metrics.gray_baseline(truth)
    e = float(np.hypot(*(metrics.image_to_lab(truth) - metrics.image_to_lab(gray))[0, 0, 1:]))
    assert 30 < e < 150
    step = math.ceil(e)  # CDF 0 below, 1 from there on; the trapezoid adds half a step
    assert metrics.auc(gray, truth) == pytest.approx(100 * (150 - step + 0.5) / 150)
    assert metrics.auc(_const((0, 255, 0)), _const((255, 0, 255))) == 0.0  # error > 150 everywhere


def test_ab_r2_of_a_constant_truth() -> None:
    truth = _const((10, 120, 200))
    assert metrics.ab_r2(truth, truth) == 1.0
    assert metrics.ab_r2(_const((200, 120, 10)), truth) == 0.0


def test_gray_baseline(make_rgb) -> None:
    truth = make_rgb(15, 22, seed=5)
    gray = metrics.gray_baseline(truth)
    assert gray.dtype == np.uint8 and gray.shape == truth.shape
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    lab_gray, lab_truth = metrics.image_to_lab(gray), metrics.image_to_lab(truth)
    assert np.abs(lab_gray[..., 0] - lab_truth[..., 0]).max() < 0.5  # rounding to 8 bits
    assert np.abs(lab_gray[..., 1:]).max() < 0.01
    scores = metrics.compute_all(gray, truth)
    assert scores["colorfulness"] == 0.0 and scores["auc"] < 100 and scores["psnr"] < 100


def test_bin_accuracy() -> None:
    centers = gamut_centers()
    ab = torch.randn(2, 2, 4, 5, generator=torch.Generator().manual_seed(0)) * 40
    target = hard_assign(ab, centers)
    logits = torch.nn.functional.one_hot(target, 313).permute(0, 3, 1, 2).float()
    assert metrics.bin_accuracy(logits, ab, centers) == 100.0
    wrong = logits.clone()
    wrong[0] = wrong[0].roll(1, dims=0)  # first image: every argmax moves to another bin
    assert metrics.bin_accuracy(wrong, ab, centers) == 50.0
    with pytest.raises(ConfigError, match="classes"):
        metrics.bin_accuracy(logits[:, :16], ab, centers)
    with pytest.raises(ConfigError, match="differ"):
        metrics.bin_accuracy(logits[..., :3], ab, centers)


def test_class_cross_entropy() -> None:
    centers = gamut_centers()
    ab = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(1)) * 30
    target = soft_encode(ab, centers)
    uniform = torch.zeros(1, 313, 3, 3)
    assert metrics.class_cross_entropy(uniform, target) == pytest.approx(math.log(313))
    logits = torch.randn(1, 313, 3, 3, generator=torch.Generator().manual_seed(2))
    expected = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    assert metrics.class_cross_entropy(logits, target) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ConfigError):
        metrics.class_cross_entropy(logits, target[:, :10])


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 3), dtype=np.float32), np.zeros((4, 4), dtype=np.uint8), np.zeros((4, 4, 4), np.uint8),
     np.zeros((0, 4, 3), np.uint8), "image.png"],
)
def test_rejects_bad_images(bad: object) -> None:
    with pytest.raises(ConfigError):
        metrics.compute_all(bad, _const((1, 2, 3), 4, 4))  # type: ignore[arg-type]


def test_a_reference_scores_exactly_as_its_truth(pair, make_rgb) -> None:
    pred, truth = pair
    ref = metrics.reference(truth)
    assert metrics.compute_all(pred, ref) == metrics.compute_all(pred, truth)
    assert metrics.compute_all(pred, ref)["ssim"] == metrics.ssim(pred, truth)
    other = make_rgb(24, 30, seed=5)
    with pytest.raises(ConfigError, match="differ in size"):
        metrics.compute_all(other, ref)
    tiny = metrics.reference(truth[:2, :2])
    assert math.isnan(metrics.compute_all(pred[:2, :2], tiny)["ssim"])


def test_rejects_size_mismatch() -> None:
    with pytest.raises(ConfigError, match="differ in size"):
        metrics.psnr(_const((0, 0, 0), 4, 5), _const((0, 0, 0), 5, 4))


def test_tiny_images_still_score() -> None:
    a, b = _const((10, 20, 30), 5, 4), _const((12, 20, 30), 5, 4)
    assert 0 < metrics.ssim(a, b) <= 1  # window shrunk to 3
    assert math.isnan(metrics.ssim(a[:2], b[:2]))
    assert all(math.isfinite(v) for k, v in metrics.compute_all(a, b).items() if k != "ssim")


def test_metric_info() -> None:
    for name, (label, higher, unit) in metrics.METRIC_INFO.items():
        assert isinstance(label, str) and label and isinstance(unit, str)
        assert higher in (True, False, None), name
    assert metrics.METRIC_INFO["ciede2000"][1] is False and metrics.METRIC_INFO["psnr"][2] == "dB"
