"""colorcore.fast: exact BatchNorm folding, Winograd convs, table kernels, and fast == plain end to end."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.color import rgb2lab
from torch import nn

import colorcore.fast as fast
from colorcore import create_model
from colorcore.color import lab_to_rgb
from colorcore.fast import FastConv2d, merge_gray_ab, optimize, rgb_to_gray
from colorcore.pipeline import Colorizer


def he_init(model: nn.Module, seed: int = 0) -> nn.Module:
    """Strongly coloured random weights, negative BatchNorm scales included (see colorcore.fast.he_init)."""
    return fast.he_init(model, seed, negative_bn_scales=True)


def _chroma(rgb: np.ndarray) -> float:
    lab = rgb2lab(rgb)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


# -- fast == plain, end to end -----------------------------------------------------------------------


@pytest.mark.parametrize("name,config,size", [
    ("eccv16", {"width": 0.5}, 256),  # 256-channel trunk at 32 px: (dilated) Winograd, BN -> conv
    ("eccv16-small", {}, 128),
    ("siggraph17", {"width": 0.25}, 128),  # 3 of its BNs feed one conv; the others feed skips and sums
    ("zhang-regression", {}, 128),
    ("unet-palette", {}, 128),  # Conv -> BN folding
])
def test_fast_path_matches_plain_path(name: str, config: dict, size: int,
                                      make_rgb: Callable[..., np.ndarray]) -> None:
    model = he_init(create_model(name, **config))
    plain = Colorizer(model, size=size, fast=False)
    quick = Colorizer(model, size=size, fast=True)
    report = quick.fast_report
    assert report is not None and not report.fallback and report.changed, str(report)
    assert report.folded_into_previous + report.folded_into_next > 0
    image = make_rgb(90, 130, seed=3)
    want, got = plain.predict(image), quick.predict(image)
    gray_diff = np.abs(want.gray.astype(np.int16) - got.gray)
    assert gray_diff.max() <= 1 and (gray_diff > 0).mean() < 1e-3  # ties between two gray levels only
    assert _chroma(want.rgb) > 4, "the check is meaningless on near-gray output"
    diff = np.abs(want.rgb.astype(np.int16) - got.rgb.astype(np.int16))
    assert diff.mean() <= 1.0 and diff.max() <= 8, (diff.mean(), diff.max())
    torch.testing.assert_close(got.ab_small, want.ab_small, atol=0.05, rtol=0)


def test_winograd_is_used_where_it_fits() -> None:
    model = he_init(create_model("eccv16", width=0.5))
    net, report = optimize(model, 64)
    convs = [m for m in net.modules() if isinstance(m, FastConv2d)]
    assert report.winograd == sum(m.winograd for m in convs) >= 10
    assert report.folded_into_next == 6  # every block's BN into the next block's first conv, not the convT
    assert any(m.winograd and m.dilation[0] == 2 for m in convs)
    if fast.nnpack_ok():  # the path that runs at 256 px: 32 px maps in the 256-channel trunk
        l = torch.rand(1, 1, 256, 256, generator=torch.Generator().manual_seed(1)) * 100
        with torch.inference_mode():
            want, got = model(l), net(l)
        assert ((got - want).abs().max() / want.abs().max()) < 1e-4


def test_bns_that_feed_more_than_one_consumer_stay() -> None:
    model = he_init(create_model("siggraph17", width=0.25))
    net, report = optimize(model, 64)
    folded = sorted(name for name, m in net.named_modules() if isinstance(m, nn.Identity))
    # model4..6 feed only the next block; model1..3 also feed a shortcut conv (through slicing), and
    # model7..9 a transposed conv: those BNs must stay.
    assert folded == ["model4.6", "model5.6", "model6.6"] and report.folded_into_next == 3


def test_optimize_leaves_the_model_alone_and_shares_its_tensors() -> None:
    model = he_init(create_model("eccv16-small"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kinds = [type(m) for m in model.modules()]
    net, _ = optimize(model, 64)
    assert net is not model
    assert [type(m) for m in model.modules()] == kinds
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    shared = {p.data_ptr() for p in model.parameters()}
    unchanged = [m.weight for m in net.modules() if isinstance(m, FastConv2d) and m.edge_taps is None]
    assert unchanged and all(w.data_ptr() in shared for w in unchanged), "unchanged weights are not copied"


def test_nothing_to_do_returns_the_model_itself() -> None:
    model = create_model("baseline", hidden=8).eval()
    net, report = optimize(model, 64)
    assert net is model and not report.changed and not report.fallback


def test_a_failing_check_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    model = he_init(create_model("eccv16-small"))
    monkeypatch.setattr(fast, "CHECK_TOLERANCE", -1.0)  # no optimised model can pass
    with pytest.warns(RuntimeWarning, match="fast inference disabled"):
        net, report = optimize(model, 64)
    assert net is model and report.fallback and "differs" in report.fallback


def test_colorizers_share_one_optimised_copy_until_the_weights_change() -> None:
    model = he_init(create_model("eccv16-small"))
    a, b = Colorizer(model, size=64), Colorizer(model, size=128)
    assert a._net is b._net and a._net is not model
    with torch.no_grad():
        model.model1[0].bias.add_(1.0)  # in place: the optimised copy would be stale
    c = Colorizer(model, size=64)
    assert c._net is not a._net


# -- exact BatchNorm folding -------------------------------------------------------------------------


def _random_bn(channels: int, seed: int) -> nn.BatchNorm2d:
    gen = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(channels, generator=gen))
        bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.1)
        bn.weight.copy_(torch.randn(channels, generator=gen))
        bn.bias.copy_(torch.randn(channels, generator=gen))
    return bn.eval()


@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (3, 1, 1, 1), (3, 1, 2, 2), (3, 2, 1, 1), (4, 2, 1, 1), (5, 1, 1, 1), (1, 1, 0, 1), (3, 1, 0, 1),
])
def test_bn_before_conv_folds_exactly_at_the_border(kernel: int, stride: int, padding: int,
                                                    dilation: int) -> None:
    torch.manual_seed(0)
    block = nn.Sequential(nn.ReLU(), _random_bn(6, 1),
                          nn.Conv2d(6, 5, kernel, stride=stride, padding=padding, dilation=dilation)).eval()
    net, report = optimize(block, example=torch.randn(1, 6, 16, 16), winograd=False)
    assert report.folded_into_next == 1 and isinstance(net[1], nn.Identity)
    for h, w in [(16, 16), (7, 11), (kernel + 1, kernel), (23, 9)]:  # including maps barely above the kernel
        x = torch.randn(2, 6, h, w)
        with torch.inference_mode():
            want, got = block(x), net(x)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_conv_before_bn_folds_and_shared_outputs_are_left_alone() -> None:
    class Fork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), _random_bn(4, 2)
            self.conv2, self.bn2 = nn.Conv2d(3, 4, 3, padding=1), _random_bn(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv2(x)  # used twice: its BN must not be folded into it
            return self.bn(self.conv(x)) + self.bn2(y) + y

    model = Fork().eval()
    net, report = optimize(model, example=torch.randn(1, 3, 16, 16), winograd=False)
    assert report.folded_into_previous == 1 and isinstance(net.bn, nn.Identity)
    assert isinstance(net.bn2, nn.BatchNorm2d)
    x = torch.randn(1, 3, 9, 12)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), model(x), atol=1e-5, rtol=1e-5)


# -- Winograd convolutions -----------------------------------------------------------------------------


@pytest.mark.skipif(not fast.nnpack_ok(), reason="NNPACK is not usable on this machine")
@pytest.mark.parametrize("dilation,hw", [(1, (33, 40)), (2, (32, 32)), (2, (35, 41)), (3, (40, 37))])
def test_winograd_conv_matches_the_default(dilation: int, hw: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(dilation)
    conv = nn.Conv2d(64, 64, 3, padding=dilation, dilation=dilation).eval()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / 24)
    fast_conv = FastConv2d(conv, conv.weight, conv.bias, None, winograd=True)
    x = torch.randn(3, 64, *hw, generator=gen)  # a batch: run image by image
    with torch.inference_mode():
        torch.testing.assert_close(fast_conv(x), conv(x), atol=2e-4, rtol=1e-4)


# -- full-resolution table kernels ---------------------------------------------------------------------


def test_rgb_to_gray_is_the_nearest_gray_level_of_cie_l() -> None:
    levels = np.arange(256, dtype=np.uint8)
    ramp = np.repeat(levels[None, :, None], 3, axis=2)
    np.testing.assert_array_equal(rgb_to_gray(ramp)[0], levels)  # gray in, the same gray out
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    got = rgb_to_gray(rgb, band_pixels=1000).astype(np.int64)
    l_true = rgb2lab(rgb)[..., 0]
    l_levels = rgb2lab(ramp)[0, :, 0]
    err = np.abs(l_levels[got] - l_true)
    best = np.abs(l_levels[None, None, :] - l_true[..., None]).min(axis=-1)
    # The nearest level (up to float rounding at exact ties), so never more than half a level away.
    assert (err <= best + 1e-6).all()
    assert err.max() <= np.diff(l_levels).max() / 2 + 1e-9


def test_merge_matches_lab_to_rgb(make_rgb: Callable[..., np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (70, 90), dtype=np.uint8)
    ab = torch.from_numpy(rng.normal(0, 45, (2, 16, 24)).astype(np.float32))  # far out of gamut too
    got = merge_gray_ab(gray, ab, band_pixels=500)
    # The reference: float32 lab_to_rgb on F.interpolate'd ab and the exact L of each gray level.
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    levels = torch.from_numpy(rgb2lab(ramp)[0, :, 0])
    l_full = levels[torch.from_numpy(gray).long()].float()
    ab_full = F.interpolate(ab[None], size=gray.shape, mode="bilinear", align_corners=False)[0]
    want = (lab_to_rgb(torch.cat((l_full[None], ab_full))) * 255).round().to(torch.uint8)
    want = want.permute(1, 2, 0).numpy()
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    np.testing.assert_array_equal(merge_gray_ab(gray, ab), got)  # bands never change the result


def test_merge_handles_tiny_and_skinny_images() -> None:
    ab = torch.full((2, 8, 8), 20.0)
    for h, w in [(1, 1), (1, 300), (300, 1), (3, 2)]:
        out = merge_gray_ab(np.full((h, w), 128, np.uint8), ab, band_pixels=64)
        assert out.shape == (h, w, 3)
        assert (out == out[0, 0]).all()  # constant input, constant output


# -- bf16 -------------------------------------------------------------------------------------------------


def test_bf16_only_on_native_hardware_and_when_quality_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    model = he_init(create_model("eccv16-small"))
    monkeypatch.setattr(fast, "cpu_has_fast_bf16", lambda: False)
    assert not optimize(model, 32)[1].bf16  # emulated bf16 is slower: never chosen automatically
    monkeypatch.setattr(fast, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(fast, "BF16_AB_TOLERANCE", -1.0)  # quality check fails
    net, report = optimize(model, 32)
    assert not report.bf16 and any("bf16" in n for n in report.notes)
    monkeypatch.setattr(fast, "BF16_AB_TOLERANCE", 1e9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net, report = optimize(model, 32)
    assert report.bf16 and report.winograd == 0  # Winograd is float32-only; bf16 goes through autocast
