"""The model zoo: every registered model builds, runs forward/backward at several sizes, and the
families' specific contracts (published state-dict layouts, decoders, hints, backbones) hold."""

from __future__ import annotations

import json
import urllib.error
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import ResNet18_Weights, resnet18

from colorcore import model_info, quantize
from colorcore.errors import ConfigError
from colorcore.models.blocks import GRAY_MEAN, GRAY_STD
from colorcore.models.eccv16 import ECCV16
from colorcore.models.siggraph17 import simulate_hints
from colorcore.quantize import decode_annealed_mean, decode_mode, decode_top_k
from colorcore.registry import build_model, list_models

# The shared reference lives beside the checkout; the copy in tests/data keeps CI independent of it.
REFERENCE_JSON = Path(__file__).resolve().parents[2] / "shared/reference/official_state_dict_shapes.json"
LOCAL_JSON = Path(__file__).parent / "data" / "official_state_dict_shapes.json"


def _palettes_shipped() -> bool:
    # The k-means palette files are produced by training.palette; until then tests pass explicit palettes.
    try:
        return all(quantize.load_palette(bins).shape == (bins, 2) for bins in (16, 24, 32))
    except ConfigError:
        return False


HAVE_PALETTES = _palettes_shipped()
PALETTE16 = tuple((float(10 * (i % 4) - 15), float(10 * (i // 4) - 15)) for i in range(16))

# Small configs for the forward/backward sweep; the defaults are built once in test_default_build.
SMALL = {
    "eccv16": {"width": 0.125},
    "eccv16-small": {"width": 0.125},
    "siggraph17": {"width": 0.125},
    "fusion": {"width": 0.25},
    "pix2pix": {"decoder": (32, 16, 16, 16, 8)},
    "unet-palette": {"width": 8, "depth": 3, **({} if HAVE_PALETTES else {"palette": PALETTE16})},
    "autoencoder-13": {"encoder": (16, 16, 32, 32, 64, 64), "decoder": (64, 32, 32, 16, 16, 8)},
    "litecolor": {"encoder": "lite0", "decoder": (16, 16, 16, 16), "global_dim": 8},
}
# Classifiers' logits are at H / this.
LOGIT_DOWNSCALE = {"eccv16": 4, "eccv16-small": 4, "unet-palette": 1, "litecolor": 4}
# Models whose ab output is 110 * tanh, hence inside [-110, 110] even untrained.
UNBOUNDED = {"baseline", "zhang-regression"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The machine's cores are shared; one intra-op thread keeps this file predictable.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def hub_dir(tmp_path):
    """An empty torch hub cache in tmp_path, restored afterwards."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(old)


@pytest.fixture
def offline(monkeypatch, hub_dir):
    """No cached ImageNet weights and no network: every download fails at once."""

    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("offline in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return hub_dir


def _l(b: int, h: int, w: int) -> torch.Tensor:
    return torch.rand(b, 1, h, w) * 100


def _small(name: str):
    return build_model(name, **SMALL.get(name, {}))


def test_every_family_is_registered():
    assert set(list_models()) == {
        "baseline", "resnet-regression", "unet-palette", "autoencoder", "autoencoder-13", "zhang-regression",
        "eccv16", "eccv16-small", "siggraph17", "fusion", "pix2pix", "litecolor",
    }


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_shapes_and_ranges(name):
    torch.manual_seed(0)
    model = _small(name)
    for size in (64, 128):
        model.train()
        l = _l(2, size, size)
        out = model(l)
        if model.task == "classification":
            side = size // LOGIT_DOWNSCALE[name]
            assert out.shape == (2, model.decoder.num_bins, side, side)
        else:
            assert out.shape == (2, 2, size, size)
            if name not in UNBOUNDED:
                assert out.abs().max() <= 110
        assert torch.isfinite(out).all()
        loss = out.float().square().mean()
        if name == "siggraph17":  # training also uses hints and the class head
            gen = torch.Generator().manual_seed(0)
            hints = simulate_hints(torch.randn(2, 2, size, size) * 30, generator=gen)
            ab, classes = model.forward_with_classes(l, *hints)
            assert classes.shape == (2, 529, size // 4, size // 4)
            loss = loss + ab.square().mean() + classes.square().mean()
        if hasattr(model, "forward_both"):  # litecolor's regression head
            loss = loss + model.forward_both(l)[1].float().square().mean()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
        model.zero_grad(set_to_none=True)

        model.eval()
        with torch.no_grad():
            ab = model.predict_ab(l)
        assert ab.shape == (2, 2, size, size) and torch.isfinite(ab).all()
        if model.task == "classification":  # a convex mix of bin centres stays inside their hull
            centers = model.decoder.centers
            assert (ab.amin(dim=(0, 2, 3)) >= centers.amin(0) - 1e-3).all()
            assert (ab.amax(dim=(0, 2, 3)) <= centers.amax(0) + 1e-3).all()
    # Non-square inputs at the model's own stride work too, and other sizes are refused clearly.
    with torch.no_grad():
        assert model.predict_ab(_l(1, 64, 96)).shape == (1, 2, 64, 96)
    if model.stride > 1:
        with pytest.raises(ConfigError, match="divisible"):
            model.predict_ab(_l(1, 64 + model.stride // 2, 64))


@pytest.mark.parametrize("name", list_models())
def test_default_build_and_param_count(name):
    if name == "unet-palette" and not HAVE_PALETTES:
        pytest.skip("palette files not shipped yet; the default config needs them")
    model = build_model(name)
    n_params = sum(p.numel() for p in model.parameters())
    assert model_info(name)["params"] == n_params
    assert model_info(name)["stride"] == model.stride


def _random_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape) + 0.5
        else:
            state[key] = torch.randn(shape) * 0.02
    return state


def test_local_reference_copy_matches_shared():
    if not REFERENCE_JSON.is_file():
        pytest.skip(f"{REFERENCE_JSON} is not present on this machine")
    assert json.loads(LOCAL_JSON.read_text()) == json.loads(REFERENCE_JSON.read_text())


@pytest.mark.parametrize("name", ["eccv16", "siggraph17"])
def test_state_dict_matches_published_checkpoint(name):
    reference = json.loads(LOCAL_JSON.read_text())[name]
    torch.manual_seed(0)
    model = build_model(name)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == reference
    state = _random_state(reference)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        out = model(_l(2, 64, 64))
    if name == "eccv16":
        assert out.shape == (2, 313, 16, 16)
        # The decoder's centres follow model_out after loading (the published bin order rules).
        expected = state["model_out.weight"].reshape(2, 313).t() * 110
        torch.testing.assert_close(model.decoder.centers, expected)
    else:
        assert out.shape == (2, 2, 64, 64)
    assert torch.isfinite(out).all()


def test_eccv16_model_out_is_gamut_and_decoding_limits():
    torch.manual_seed(0)
    model = build_model("eccv16", width=0.125).eval()
    centers = quantize.gamut_centers()
    assert centers.shape == (313, 2)
    torch.testing.assert_close(model.model_out.weight.reshape(2, 313).t() * 110, centers)
    torch.testing.assert_close(model.decoder.centers, centers)
    assert not model.model_out.weight.requires_grad
    # width scales the trunk, never the 313 classes or the 2 output channels
    assert model.model1[0].out_channels == 8 and model.model8[6].out_channels == 313

    logits = torch.randn(2, 313, 5, 7) * 3
    mean = model.decoder(logits, temperature=1.0)
    published = 110 * model.model_out(torch.softmax(logits, dim=1))
    torch.testing.assert_close(mean, published, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(model.decoder(logits, temperature=1e-4), decode_mode(logits, centers))
    torch.testing.assert_close(model.decoder(logits), decode_annealed_mean(logits, centers, 0.38))
    torch.testing.assert_close(model.decoder(logits, method="mode"), decode_mode(logits, centers))

    l = _l(1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.published_forward(l), model.predict_ab(l, temperature=1.0),
                                   rtol=1e-4, atol=1e-3)


def test_eccv16_small_layout():
    model = build_model("eccv16-small")
    assert isinstance(model, ECCV16) and model.default_size == 128
    blocks = {k.split(".")[0] for k in model.state_dict()}
    assert blocks == {"model1", "model2", "model3", "model4", "model5", "model8", "model_out"}
    assert model.model1[0].out_channels == 32 and model.model4[0].out_channels == 256
    with torch.no_grad():
        assert model.eval()(_l(1, 128, 128)).shape == (1, 313, 32, 32)


def test_unet_palette_bins_and_decoding():
    for bins in (16, 24, 32):
        palette = tuple((float(i), float(-i)) for i in range(bins))
        model = build_model("unet-palette", bins=bins, width=4, depth=2, palette=palette)
        assert model.decoder.num_bins == bins and model.stride == 4
    for bins in (8, 20, 64):
        with pytest.raises(ConfigError, match="bins"):
            build_model("unet-palette", bins=bins, palette=PALETTE16)
    with pytest.raises(ConfigError, match="palette"):
        build_model("unet-palette", bins=24, palette=PALETTE16)

    model = build_model("unet-palette", width=4, depth=2, palette=PALETTE16)
    centers = torch.tensor(PALETTE16)
    torch.testing.assert_close(model.decoder.centers, centers)
    logits = torch.randn(2, 16, 4, 4) * 2
    torch.testing.assert_close(model.decoder(logits), decode_top_k(logits, centers, 3))  # default: top-3
    torch.testing.assert_close(model.decoder(logits, top_k=1), decode_mode(logits, centers))
    torch.testing.assert_close(model.decoder(logits, temperature=1e-4), decode_mode(logits, centers))
    mean = torch.einsum("bqhw,qc->bchw", torch.softmax(logits, dim=1), centers)
    torch.testing.assert_close(model.decoder(logits, temperature=1.0), mean)


def test_unet_palette_without_palette_asks_load_palette(monkeypatch):
    asked = []

    def fake_load_palette(bins: int) -> torch.Tensor:
        asked.append(bins)
        return torch.arange(2 * bins, dtype=torch.float32).reshape(bins, 2)

    monkeypatch.setattr(quantize, "load_palette", fake_load_palette)
    model = build_model("unet-palette", bins=32, width=4, depth=2)
    assert asked == [32]
    torch.testing.assert_close(model.decoder.centers, fake_load_palette(32))
    assert "decoder.centers" in model.state_dict()  # weights files carry their palette


@pytest.mark.skipif(not HAVE_PALETTES, reason="palette files not shipped yet")
def test_unet_palette_default_palette_comes_from_load_palette():
    model = build_model("unet-palette", bins=24, width=4, depth=2)
    torch.testing.assert_close(model.decoder.centers, torch.as_tensor(quantize.load_palette(24)).float())


def test_autoencoder_variants():
    big = build_model("autoencoder-13")
    convs = [m for m in big.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(big.encoder) == 6 and len(convs) == 13
    assert 5_500_000 < sum(p.numel() for p in big.parameters()) < 6_500_000
    assert sum(p.numel() for p in build_model("autoencoder").parameters()) < 500_000
    with pytest.raises(ConfigError, match="upsample_before"):
        build_model("autoencoder", upsample_before=(0, 1))


def test_zhang_regression_presets_and_loss():
    small, large = build_model("zhang-regression"), build_model("zhang-regression", width="large")
    assert 0.8e6 < sum(p.numel() for p in small.parameters()) < 1.2e6
    assert 3.2e6 < sum(p.numel() for p in large.parameters()) < 3.8e6
    assert build_model("zhang-regression", loss="smooth_l1").config.loss == "smooth_l1"
    with pytest.raises(ConfigError, match="loss"):
        build_model("zhang-regression", loss="l3")
    with pytest.raises(ConfigError, match="width"):
        build_model("zhang-regression", width="huge")


def test_siggraph17_hints():
    torch.manual_seed(0)
    model = build_model("siggraph17", width=0.125).eval()
    assert model.supports_hints
    l = _l(2, 64, 64)
    hints_ab = torch.rand(2, 2, 64, 64) * 120 - 60
    empty = torch.zeros(2, 1, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 20:30, 20:30] = 1
    with torch.no_grad():
        plain = model(l)
        # hint colours outside the mask are ignored; a mask changes the result
        torch.testing.assert_close(model(l, hints_ab=hints_ab, hints_mask=empty), plain)
        hinted = model.predict_ab(l, hints_ab=hints_ab, hints_mask=mask)
        assert not torch.allclose(hinted, plain)
        ab, classes = model.forward_with_classes(l, hints_ab, mask)
    assert ab.shape == (2, 2, 64, 64) and classes.shape == (2, 529, 16, 16)
    with pytest.raises(ConfigError, match="both"):
        model(l, hints_ab=hints_ab)
    with pytest.raises(ConfigError, match="hints"):
        model(l, hints_ab=hints_ab[:, :, :32], hints_mask=mask[:, :, :32])


def test_simulate_hints_statistics():
    gen = torch.Generator().manual_seed(0)
    ab = torch.randn(400, 2, 16, 16) * 30
    hints, mask = simulate_hints(ab, generator=gen)
    assert hints.shape == ab.shape and mask.shape == (400, 1, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (hints * (1 - mask)).abs().max() == 0
    no_hints = (mask.sum(dim=(1, 2, 3)) == 0).float().mean().item()
    assert 0.07 < no_hints < 0.19  # geometric: P(N = 0) = p = 0.125

    # One patch per image: a square of side 1..9 holding the mean ab of its pixels.
    hints, mask = simulate_hints(ab, p_geometric=1e-6, max_points=1, generator=gen)
    sides = []
    for i in range(ab.shape[0]):
        ys, xs = torch.nonzero(mask[i, 0], as_tuple=True)
        side = int(ys.max() - ys.min() + 1)
        assert side == int(xs.max() - xs.min() + 1) and len(ys) == side * side
        sides.append(side)
        inside = mask[i, 0].bool()
        patch_mean = ab[i][:, inside].mean(1, keepdim=True).expand(-1, len(ys))
        torch.testing.assert_close(hints[i][:, inside], patch_mean)
    assert set(sides) == set(range(1, 10))
    assert simulate_hints(ab[:4], p_geometric=1.0)[1].sum() == 0


def test_resnet_regression_imagenet_fallback_warns(offline):
    with pytest.warns(RuntimeWarning, match="ImageNet weights for resnet18 are unavailable.*random init"):
        model = build_model("resnet-regression", encoder_weights="imagenet")
    assert model.predict_ab(_l(1, 64, 64)).shape == (1, 2, 64, 64)
    with pytest.raises(ConfigError, match="imagenet"):
        build_model("resnet-regression", encoder_weights="places365")


def _fake_imagenet(hub_dir: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    state = resnet18().state_dict()
    path = hub_dir / "checkpoints" / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_resnet_regression_adapts_cached_imagenet_weights(hub_dir):
    state = _fake_imagenet(hub_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_model("resnet-regression", encoder_weights="imagenet").eval()
    conv1 = model.encoder[0]
    torch.testing.assert_close(conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.encoder[5][0].conv1.weight, state["layer2.0.conv1.weight"])
    # Summing RGB filters is exact for a grey image replicated to RGB under the shared grey statistics.
    l = _l(1, 32, 32)
    rgb = ((l / 100 - GRAY_MEAN) / GRAY_STD).expand(-1, 3, -1, -1)
    with torch.no_grad():
        expected = F.conv2d(rgb, state["conv1.weight"], stride=2, padding=3)
        torch.testing.assert_close(conv1((l / 100 - GRAY_MEAN) / GRAY_STD), expected, rtol=1e-4, atol=1e-4)


def test_imagenet_cache_that_does_not_fit_falls_back(hub_dir):
    path = hub_dir / "checkpoints" / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True)
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.warns(RuntimeWarning, match="do not fit"):
        model = build_model("pix2pix", encoder_weights="imagenet")
    assert model.stem[0].weight.abs().sum() > 0  # random init, not the partial zeros


def test_fusion_backbone_embedding(hub_dir):
    state = _fake_imagenet(hub_dir)
    torch.manual_seed(0)
    model = build_model("fusion", width=0.25, backbone_weights="imagenet")
    torch.testing.assert_close(model.backbone.conv1.weight, state["conv1.weight"])  # RGB backbone kept whole
    assert all(not p.requires_grad for p in model.backbone.parameters())
    model.train()
    assert not model.backbone.training and model.encoder.training
    l = _l(2, 64, 64)
    emb = model.embed(l)
    assert emb.shape == (2, 512) and not emb.requires_grad
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(l, embedding=emb), model(l))
        assert not torch.allclose(model(l, embedding=emb.flip(0)), model(l))  # the embedding matters
    with pytest.raises(ConfigError, match="embedding"):
        model(l, embedding=torch.zeros(2, 2048))


def test_fusion_resnet50_offline(offline):
    with pytest.warns(RuntimeWarning, match="resnet50"):
        model = build_model("fusion", backbone="resnet50", backbone_weights="imagenet", width=0.125)
    assert model.embed_dim == 2048
    with pytest.raises(ConfigError, match="backbone"):
        build_model("fusion", backbone="vgg16")


def test_pix2pix_patchgan():
    torch.manual_seed(0)
    model = build_model("pix2pix", decoder=(32, 16, 16, 16, 8))
    disc = model.make_discriminator().eval()
    assert [m.stride[0] for m in disc.modules() if isinstance(m, torch.nn.Conv2d)] == [2, 2, 2, 1, 1]
    l = _l(2, 64, 64)
    ab = torch.rand(2, 2, 64, 64) * 220 - 110
    assert disc(l, ab).shape == (2, 1, 6, 6)
    # Each logit sees a 70x70 patch: measure the receptive field of a central output through gradients.
    l = _l(1, 128, 128).requires_grad_()
    out = disc(l, torch.zeros(1, 2, 128, 128))
    out[0, 0, 7, 7].backward()
    rows = torch.nonzero(l.grad[0, 0].abs().sum(1)).flatten()
    cols = torch.nonzero(l.grad[0, 0].abs().sum(0)).flatten()
    assert int(rows.max() - rows.min() + 1) == 70 and int(cols.max() - cols.min() + 1) == 70
