"""colorcore.color against scikit-image, on random and real photos, plus round trips and gradients."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor

from colorcore import color
from colorcore.color import lab_to_rgb, linear_to_srgb, rgb_to_lab, srgb_to_linear

VAL_DIR = Path("/work/shared/data/colour-corpus/val")
TOL = 1e-3


def _to_chw(arr: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.array(arr)).permute(2, 0, 1).to(dtype)  # a writable copy


def _to_hwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(1, 2, 0).double().numpy()


def _sk_lab2rgb(lab: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # scikit-image warns about clipped negative Z values
        warnings.simplefilter("ignore")
        return skcolor.lab2rgb(lab)


def _random_lab(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Lab values over the whole box L in [0, 100], a, b in [-128, 127], most of them out of gamut."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(*shape, generator=gen, dtype=dtype)
    lo = torch.tensor([0.0, -128.0, -128.0], dtype=dtype)[:, None, None]
    span = torch.tensor([100.0, 255.0, 255.0], dtype=dtype)[:, None, None]
    return lo + span * u


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rgb_to_lab_matches_skimage_on_random_pixels(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.random((23, 31, 3))
    rgb[:3] = 0.0  # black and the dark, linear parts of both piecewise curves
    rgb[3:6] = rng.random((3, 31, 3)) * 0.05
    rgb[6:8] = 1.0
    ours = rgb_to_lab(_to_chw(rgb, dtype))
    assert ours.dtype == dtype
    np.testing.assert_allclose(_to_hwc(ours), skcolor.rgb2lab(rgb), atol=TOL, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lab_to_rgb_matches_skimage_including_out_of_gamut(dtype: torch.dtype) -> None:
    lab = _random_lab((3, 29, 17), seed=1, dtype=dtype)
    ours = lab_to_rgb(lab)
    assert ours.dtype == dtype and ours.min() >= 0 and ours.max() <= 1
    np.testing.assert_allclose(_to_hwc(ours), _sk_lab2rgb(_to_hwc(lab)), atol=TOL, rtol=0)


def _val_photos(n: int) -> list[Path]:
    files = sorted(VAL_DIR.glob("*.jpg"))[:: 97][:n] if VAL_DIR.is_dir() else []
    if not files:
        pytest.skip(f"no photos in {VAL_DIR}")
    return files


def test_matches_skimage_on_real_photos() -> None:
    for path in _val_photos(4):
        rgb_u8 = np.asarray(Image.open(path).convert("RGB"))
        rgb = rgb_u8 / 255.0
        ref_lab = skcolor.rgb2lab(rgb)
        ours = rgb_to_lab(_to_chw(rgb_u8, torch.float32) / 255)
        np.testing.assert_allclose(_to_hwc(ours), ref_lab, atol=TOL, rtol=0, err_msg=str(path))
        back = lab_to_rgb(_to_chw(ref_lab, torch.float32))
        np.testing.assert_allclose(_to_hwc(back), _sk_lab2rgb(ref_lab), atol=TOL, rtol=0, err_msg=str(path))


def test_round_trip_on_rgb_cube() -> None:
    v = torch.linspace(0, 1, 17, dtype=torch.float64)
    r, g, b = torch.meshgrid(v, v, v, indexing="ij")
    rgb = torch.stack((r, g, b)).reshape(3, 17, 289)
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-9, rtol=0)
    rgb32 = rgb.float()
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb32)), rgb32, atol=1e-5, rtol=0)


def test_known_values() -> None:
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64).T[:, :, None]
    lab = rgb_to_lab(rgb)[:, :, 0].T
    expected = torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.24, 80.09, 67.20]], dtype=torch.float64)
    torch.testing.assert_close(lab, expected, atol=1e-2, rtol=0)  # white, black, sRGB red


def test_batch_shapes_non_contiguous_and_block_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny blocks force several blocks per image, a short last block and batches larger than a block.
    monkeypatch.setattr(color, "_BLOCK_PIXELS", 50)
    x = torch.rand(2, 3, 7, 11, 3, generator=torch.Generator().manual_seed(2)).movedim(-1, -3)  # (2,3,3,7,11)
    assert not x.is_contiguous()
    ref = torch.stack([rgb_to_lab(img.contiguous()) for img in x.reshape(6, 3, 7, 11)]).reshape(x.shape)
    out = rgb_to_lab(x)
    assert out.shape == x.shape
    # float32: other block sizes take other SIMD paths (AVX-512 here), which round the last bits differently
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(_to_hwc(out[1, 2]), skcolor.rgb2lab(_to_hwc(x[1, 2])), atol=TOL)
    lab = _random_lab((3, 9, 13), seed=3, dtype=torch.float32)
    np.testing.assert_allclose(_to_hwc(lab_to_rgb(lab)), _sk_lab2rgb(_to_hwc(lab)), atol=TOL)


def test_grad_and_no_grad_paths_agree() -> None:
    rgb = torch.rand(2, 3, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    lab = _random_lab((2, 3, 6, 5), seed=5)
    fast_lab, fast_rgb = rgb_to_lab(rgb), lab_to_rgb(lab, clip=False)
    slow_lab = rgb_to_lab(rgb.clone().requires_grad_(True))
    slow_rgb = lab_to_rgb(lab.clone().requires_grad_(True), clip=False)
    assert slow_lab.requires_grad and slow_rgb.requires_grad
    torch.testing.assert_close(slow_lab.detach(), fast_lab, atol=1e-9, rtol=0)
    torch.testing.assert_close(slow_rgb.detach(), fast_rgb, atol=1e-9, rtol=0)


def test_gradcheck() -> None:
    gen = torch.Generator().manual_seed(6)
    # Keep away from the knees of the piecewise curves, where finite differences straddle two branches.
    rgb = (0.1 + 0.8 * torch.rand(1, 3, 3, 4, dtype=torch.float64, generator=gen)).requires_grad_(True)
    assert torch.autograd.gradcheck(rgb_to_lab, (rgb,))
    lab = rgb_to_lab(rgb.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: lab_to_rgb(x, clip=False), (lab,))
    dark = (0.001 + 0.03 * torch.rand(3, 2, 2, dtype=torch.float64, generator=gen)).requires_grad_(True)
    assert torch.autograd.gradcheck(rgb_to_lab, (dark,))  # the linear branches


def test_gradients_are_finite_at_black_and_white() -> None:
    rgb = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)[:, None, None].expand(3, 2, 2).clone()
    rgb.requires_grad_(True)
    rgb_to_lab(rgb).sum().backward()
    assert torch.isfinite(rgb.grad).all()
    lab = torch.zeros(3, 2, 2, dtype=torch.float64, requires_grad=True)
    lab_to_rgb(lab).sum().backward()
    assert torch.isfinite(lab.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_keeps_dtype(dtype: torch.dtype) -> None:
    rgb = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(7))
    lab = rgb_to_lab(rgb.to(dtype))
    assert lab.dtype == dtype
    # The error is the storage rounding of Lab in 16 bits, not the arithmetic (done in float32).
    torch.testing.assert_close(lab.float(), rgb_to_lab(rgb), atol=1.0, rtol=1e-2)
    assert lab_to_rgb(lab).dtype == dtype


def test_clip_false_exposes_out_of_gamut() -> None:
    lab = torch.tensor([50.0, 120.0, -120.0], dtype=torch.float64)[:, None, None]  # far outside sRGB
    raw = lab_to_rgb(lab, clip=False)
    assert raw.min() < 0 or raw.max() > 1
    torch.testing.assert_close(lab_to_rgb(lab), raw.clamp(0, 1))


def test_transfer_curves_invert() -> None:
    x = torch.linspace(0, 1, 1001, dtype=torch.float64)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-7, rtol=0)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(\*, 3, H, W\)"):
        rgb_to_lab(torch.rand(4, 5, 5))
    with pytest.raises(TypeError, match="float"):
        lab_to_rgb(torch.zeros(3, 2, 2, dtype=torch.uint8))


def test_empty_input() -> None:
    assert rgb_to_lab(torch.rand(0, 3, 4, 4)).shape == (0, 3, 4, 4)
    assert lab_to_rgb(torch.rand(3, 0, 4)).shape == (3, 0, 4)
