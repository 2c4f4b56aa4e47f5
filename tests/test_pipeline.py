"""colorcore.pipeline: resolution, gray handling, merge correctness, batching, threads, hints, validation."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import rgb2lab
from torch import Tensor, nn

import colorcore.pipeline as pipeline
from colorcore import create_model
from colorcore.errors import ConfigError, ModelNotFoundError
from colorcore.models.base import ColorModel
from colorcore.pipeline import Colorizer, ColorizeResult, Hints
from colorcore.quantize import ABDecoder
from colorcore.weights import WeightsEntry

# -- tiny fake models (never registered, so other tests do not see them) -----------------------------


@dataclass(frozen=True)
class _ConstCfg:
    a: float = 20.0
    b: float = -10.0


class ConstantAB(ColorModel):
    """Predicts the same ab everywhere: makes the merge exactly checkable."""

    stride = 4
    default_size = 48

    def __init__(self, config: _ConstCfg) -> None:
        super().__init__(config)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, l: Tensor) -> Tensor:
        ab = torch.tensor([self.config.a, self.config.b], device=l.device).view(1, 2, 1, 1)
        return (ab * self.scale).expand(l.shape[0], 2, *l.shape[-2:])


class HintEcho(ColorModel):
    """A hinted model that paints every image with the mean ab of its hints (gray without hints)."""

    stride = 4
    default_size = 64
    supports_hints = True

    def __init__(self, config: _ConstCfg) -> None:
        super().__init__(config)
        self.seen_mask: list[float] = []

    def forward(self, l: Tensor, hints_ab: Tensor | None = None, hints_mask: Tensor | None = None) -> Tensor:
        b, _, h, w = l.shape
        if hints_ab is None or hints_mask is None:
            return l.new_zeros(b, 2, h, w)
        assert hints_ab.shape == (b, 2, h, w) and hints_mask.shape == (b, 1, h, w)
        total = hints_mask.sum(dim=(2, 3))  # (B, 1)
        mean = (hints_ab * hints_mask).sum(dim=(2, 3)) / total.clamp_min(1)
        return mean[:, :, None, None].expand(b, 2, h, w)


class TinyClassifier(ColorModel):
    """Random 1x1-conv classifier over a 13 x 13 ab grid (169 bins), logits at half resolution."""

    task = "classification"
    stride = 2
    default_size = 32

    def __init__(self, config: _ConstCfg) -> None:
        super().__init__(config)
        torch.manual_seed(0)
        axis = torch.arange(-60.0, 61.0, 10.0)
        centers = torch.cartesian_prod(axis, axis)
        self.head = nn.Conv2d(1, centers.shape[0], 1)
        self.decoder = ABDecoder(centers)

    def forward(self, l: Tensor) -> Tensor:
        return 4 * self.head(F.avg_pool2d((l - 50) / 50, 2))


def _lab(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(rgb).astype(np.float32)


def _gray_l(gray: np.ndarray) -> np.ndarray:
    return _lab(np.repeat(gray[:, :, None], 3, axis=2))[..., 0]


# -- resolution and gray handling -------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(37, 53), (53, 37), (1, 1), (3, 500), (257, 2)])
def test_output_has_the_original_resolution(hw: tuple[int, int], make_rgb: Callable[..., np.ndarray]) -> None:
    colorizer = Colorizer(ConstantAB(_ConstCfg()), size=64)
    out = colorizer.colorize(make_rgb(*hw))
    assert out.mode == "RGB" and out.size == (hw[1], hw[0])


def test_merge_keeps_l_and_applies_predicted_ab(color_image: Image.Image) -> None:
    result = Colorizer(ConstantAB(_ConstCfg(a=20, b=-10)), size=32).predict(color_image)
    assert isinstance(result, ColorizeResult)
    assert result.rgb.shape == (37, 53, 3) and result.rgb.dtype == np.uint8
    assert result.gray.shape == (37, 53) and result.gray.dtype == np.uint8
    assert result.ab_small.shape == (2, 32, 32) and result.logits is None and result.elapsed > 0
    lab_out = _lab(result.rgb)
    l_in = _gray_l(result.gray)
    mid = (l_in > 25) & (l_in < 85)  # away from the gamut edges, where clipping moves colours
    assert mid.mean() > 0.5
    assert np.abs(lab_out[..., 0] - l_in)[mid].max() < 1.0
    assert np.abs(lab_out[..., 1][mid] - 20).max() < 1.5
    assert np.abs(lab_out[..., 2][mid] + 10).max() < 1.5


def test_gray_of_a_colour_image_is_its_cie_lightness(color_image: Image.Image) -> None:
    result = Colorizer(ConstantAB(_ConstCfg()), size=32).predict(color_image)
    l_true = _lab(np.asarray(color_image))[..., 0]
    # rounded to the nearest gray level: at most half a level (< 0.25 L) away
    assert np.abs(_gray_l(result.gray) - l_true).max() < 0.25


def test_colour_input_gives_the_same_output_as_its_gray_version(
    tiny_trained_weights: WeightsEntry, color_image: Image.Image
) -> None:
    colorizer = Colorizer("baseline", size=None)
    from_colour = colorizer.predict(color_image)
    from_gray = colorizer.predict(Image.fromarray(from_colour.gray, "L"))
    np.testing.assert_array_equal(from_colour.gray, from_gray.gray)
    np.testing.assert_array_equal(from_colour.rgb, from_gray.rgb)
    # the same gray as an RGB image (R = G = B) too
    from_rgb_gray = colorizer.predict(np.repeat(from_colour.gray[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(from_colour.rgb, from_rgb_gray.rgb)


def test_trained_weights_give_colour(
    tiny_trained_weights: WeightsEntry, make_rgb: Callable[..., np.ndarray]
) -> None:
    colorizer = Colorizer("baseline-tiny", size=None)
    assert colorizer.size == tiny_trained_weights.input_size == 64
    assert colorizer.model.weights_entry.name == "baseline-tiny"
    rgb = np.asarray(colorizer.colorize(make_rgb(60, 80, seed=5)))
    lab = _lab(rgb)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    assert chroma.mean() > 5, "the fixture model learnt dark = blue, bright = orange"
    bright, dark = lab[..., 0] > 60, lab[..., 0] < 40
    if bright.any() and dark.any():
        assert lab[..., 2][bright].mean() > lab[..., 2][dark].mean()


def test_banded_full_resolution_path_matches(
    monkeypatch: pytest.MonkeyPatch, color_image: Image.Image
) -> None:
    colorizer = Colorizer(TinyClassifier(_ConstCfg()), size=32)
    whole = colorizer.predict(color_image)
    monkeypatch.setattr(pipeline, "_BAND_PIXELS", 100)  # forces 2-row bands, uneven last band
    banded = colorizer.predict(color_image)
    np.testing.assert_array_equal(whole.gray, banded.gray)
    np.testing.assert_array_equal(whole.rgb, banded.rgb)


# -- batching and threads ---------------------------------------------------------------------------


def test_batch_equals_single(tiny_trained_weights: WeightsEntry, make_rgb: Callable[..., np.ndarray]) -> None:
    colorizer = Colorizer("baseline", size=64)
    images = [make_rgb(37, 53, seed=1), Image.fromarray(make_rgb(20, 90, seed=2)[:, :, 0]),
              make_rgb(64, 64, seed=3)]
    batch = colorizer.colorize_batch(images, batch_size=2)
    single = [colorizer.colorize(im) for im in images]
    assert [b.size for b in batch] == [s.size for s in single] == [(53, 37), (90, 20), (64, 64)]
    for b, s in zip(batch, single, strict=True):
        assert np.abs(np.asarray(b, np.int16) - np.asarray(s, np.int16)).max() <= 1
    assert colorizer.colorize_batch([]) == []


def test_thread_safety(tiny_trained_weights: WeightsEntry, make_rgb: Callable[..., np.ndarray]) -> None:
    colorizer = Colorizer("baseline", size=64)
    images = [make_rgb(20 + 3 * i, 30 + 5 * i, seed=i) for i in range(8)]
    expected = [np.asarray(colorizer.colorize(im)) for im in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda im: np.asarray(colorizer.colorize(im)), images))
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(e, g)


# -- classification models --------------------------------------------------------------------------


def test_classifier_logits_and_decoding(color_image: Image.Image) -> None:
    model = TinyClassifier(_ConstCfg())
    colorizer = Colorizer(model, size=32)
    result = colorizer.predict(color_image)
    assert result.logits is not None and result.logits.shape == (169, 16, 16)
    expected = F.interpolate(model.decoder(result.logits[None]), size=(32, 32), mode="bilinear",
                             align_corners=False)[0]
    torch.testing.assert_close(result.ab_small, expected)
    np.testing.assert_array_equal(np.asarray(colorizer.colorize(color_image)), result.rgb)
    mode = colorizer.predict(color_image, method="mode")
    top1 = colorizer.predict(color_image, top_k=1)
    torch.testing.assert_close(mode.ab_small, top1.ab_small)
    hot = colorizer.predict(color_image, temperature=1.0)
    assert not torch.allclose(hot.ab_small, result.ab_small)
    with pytest.raises(ConfigError, match="top_k"):
        colorizer.colorize(color_image, top_k=170)  # more than the 169 bins


# -- hints ------------------------------------------------------------------------------------------


def test_hints_from_rgba() -> None:
    layer = np.zeros((5, 6, 4), np.uint8)
    layer[2, 3] = (255, 0, 0, 255)
    layer[0, 0] = (0, 0, 255, 10)
    hints = Hints.from_rgba(layer)
    assert hints.shape == (5, 6) and hints.mask.sum() == 2
    red = _lab(np.array([[[255, 0, 0]]], np.uint8))[0, 0, 1:]
    blue = _lab(np.array([[[0, 0, 255]]], np.uint8))[0, 0, 1:]
    np.testing.assert_allclose(hints.ab[2, 3], red, atol=0.05)
    np.testing.assert_allclose(hints.ab[0, 0], blue, atol=0.05)
    assert not hints.ab[~hints.mask].any()
    assert Hints.from_rgba(Image.fromarray(layer, "RGBA")).mask.sum() == 2
    with pytest.raises(ConfigError):
        Hints.from_rgba(np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(ConfigError):
        Hints(np.zeros((5, 6, 2)), np.zeros((5, 7), bool))


def test_a_one_pixel_hint_survives_downscaling(make_rgb: Callable[..., np.ndarray]) -> None:
    image = make_rgb(300, 200, seed=4)  # 300 x 200 down to 32 x 32: a single pixel is 1/9 of a cell
    layer = np.zeros((300, 200, 4), np.uint8)
    layer[151, 77] = (0, 160, 0, 255)  # one green pixel
    colorizer = Colorizer(HintEcho(_ConstCfg()), size=32)
    without = colorizer.predict(image)
    with_hint = colorizer.predict(image, hints=Hints.from_rgba(layer))
    green = _lab(np.array([[[0, 160, 0]]], np.uint8))[0, 0, 1:]
    # the model saw exactly the hint's ab (averaged over the hinted pixels only)
    np.testing.assert_allclose(with_hint.ab_small[:, 0, 0].numpy(), green, atol=0.05)
    assert np.abs(without.ab_small.numpy()).max() == 0
    lab = _lab(with_hint.rgb)
    mid = (lab[..., 0] > 30) & (lab[..., 0] < 80)
    assert lab[..., 1][mid].mean() < -20, "the whole image must turn green"


def test_hints_upscale_for_small_images() -> None:
    layer = np.zeros((10, 10, 4), np.uint8)
    layer[4, 4] = (255, 0, 0, 255)
    colorizer = Colorizer(HintEcho(_ConstCfg()), size=64)
    ab, mask = colorizer._resize_hints(Hints.from_rgba(layer))
    assert mask.shape == (1, 64, 64) and ab.shape == (2, 64, 64)
    assert 20 <= mask.sum() <= 60  # one source pixel covers a ~6.4 x 6.4 block
    assert np.allclose(ab[:, mask[0] > 0].numpy().T, Hints.from_rgba(layer).ab[4, 4], atol=1e-3)


def test_hints_for_an_unhinted_model_warn_and_are_ignored(color_image: Image.Image) -> None:
    colorizer = Colorizer(ConstantAB(_ConstCfg()), size=32)
    layer = np.zeros((37, 53, 4), np.uint8)
    layer[5, 5] = (255, 0, 0, 255)
    with pytest.warns(UserWarning, match="hints"):
        hinted = colorizer.colorize(color_image, hints=Hints.from_rgba(layer))
    np.testing.assert_array_equal(np.asarray(hinted), np.asarray(colorizer.colorize(color_image)))


def test_hints_must_match_the_image(color_image: Image.Image) -> None:
    colorizer = Colorizer(HintEcho(_ConstCfg()), size=32)
    with pytest.raises(ConfigError, match="hints are"):
        colorizer.colorize(color_image, hints=Hints.from_rgba(np.zeros((10, 10, 4), np.uint8)))
    with pytest.raises(ConfigError, match="one"):
        colorizer.colorize_batch([color_image], hints=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a hinted model must not warn
        colorizer.colorize(color_image, hints=Hints.from_rgba(np.zeros((37, 53, 4), np.uint8)))


# -- construction and validation --------------------------------------------------------------------


def test_size_rules(tiny_trained_weights: WeightsEntry) -> None:
    model = ConstantAB(_ConstCfg())  # stride 4, default size 48
    assert Colorizer(model, size=None).size == 48
    assert Colorizer(model, size=65).size == 64
    assert Colorizer(model, size=67).size == 68
    assert Colorizer(create_model("baseline"), size=None).size == 128  # no weights: default_size
    assert Colorizer("baseline-tiny", size=None).size == 64  # weights: their input size
    for bad in (16, 31, 4096, 64.0, "256", True):
        with pytest.raises(ConfigError, match="size"):
            Colorizer(model, size=bad)


@pytest.mark.parametrize("kwargs", [
    {"temperature": 0}, {"temperature": -1.0}, {"temperature": float("nan")}, {"temperature": "hot"},
    {"top_k": 0}, {"top_k": 2.5}, {"top_k": True}, {"method": "median"},
])
def test_decoding_validation(kwargs: dict, color_image: Image.Image) -> None:
    colorizer = Colorizer(TinyClassifier(_ConstCfg()), size=32)
    with pytest.raises(ConfigError):
        colorizer.colorize(color_image, **kwargs)


def test_device_and_model_validation(tmp_path: Path, tiny_trained_weights: WeightsEntry) -> None:
    with pytest.raises(ConfigError, match="device"):
        Colorizer(ConstantAB(_ConstCfg()), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            Colorizer(ConstantAB(_ConstCfg()), device="cuda")
    with pytest.raises(ModelNotFoundError, match="unknown model 'no-such-model'"):
        Colorizer("no-such-model")
    with pytest.raises(ConfigError, match="nn.Module"):
        Colorizer(nn.Linear(2, 2))  # type: ignore[arg-type]
    by_path = Colorizer(tiny_trained_weights.file, size=None)
    assert by_path.size == 64 and by_path.model.weights_entry.name == "baseline-tiny"
