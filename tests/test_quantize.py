"""colorcore.quantize: the 313-bin gamut, soft encoding, priors and rebalancing, palettes and decoders."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from colorcore import quantize
from colorcore.color import rgb_to_lab
from colorcore.errors import ConfigError
from colorcore.quantize import (
    ABDecoder,
    decode_annealed_mean,
    decode_median,
    decode_mode,
    decode_top_k,
    derived_gamut_centers,
    empirical_bin_distribution,
    fit_palette,
    gamut_centers,
    hard_assign,
    load_palette,
    rebalance_weights,
    smooth_distribution,
    soft_assign,
    soft_encode,
)

E2 = math.exp(-2.0)  # Gaussian weight of a grid neighbour 10 units away with sigma 5


@pytest.fixture(scope="module")
def centers() -> torch.Tensor:
    return gamut_centers()


def _index(centers: torch.Tensor, a: float, b: float) -> int:
    hits = ((centers[:, 0] == a) & (centers[:, 1] == b)).nonzero()
    assert len(hits) == 1, (a, b)
    return int(hits[0, 0])


def _ab(*pairs: tuple[float, float]) -> torch.Tensor:
    """``(1, 2, 1, N)`` ab map from (a, b) pairs."""
    return torch.tensor(pairs, dtype=torch.float32).T[None, :, None, :]


# ---- gamut --------------------------------------------------------------------------------------------


def test_gamut_has_313_bins_in_zhang_order(centers: torch.Tensor) -> None:
    assert centers.shape == (313, 2) and centers.dtype == torch.float32
    assert centers[:2].tolist() == [[-90.0, 50.0], [-90.0, 60.0]]  # as Zhang's pts_in_hull.npy
    assert torch.all(centers % 10 == 0) and centers.abs().max() <= 110
    keys = centers[:, 0] * 1000 + centers[:, 1]
    assert torch.all(keys[1:] > keys[:-1])  # a-major, b ascending, no duplicates
    _index(centers, 0, 0)


def test_gamut_covers_every_srgb_colour(centers: torch.Tensor) -> None:
    # Every sRGB colour's nearest grid point (within 5 * sqrt(2)) must be a kept bin.
    v = torch.linspace(0, 1, 21, dtype=torch.float64)
    r, g, b = torch.meshgrid(v, v, v, indexing="ij")
    ab = rgb_to_lab(torch.stack((r, g, b)).reshape(3, 21, 441))[1:].reshape(2, -1).T
    nearest = (ab / 10).round() * 10
    kept = {(float(a), float(b)) for a, b in centers.tolist()}
    assert {(float(a), float(b)) for a, b in nearest.tolist()} <= kept


def test_gamut_is_cached_but_returned_as_a_copy() -> None:
    first = gamut_centers()
    first[0] = 999.0
    assert gamut_centers()[0].tolist() == [-90.0, 50.0]


def test_gamut_is_the_published_pts_in_hull() -> None:
    # Spot values of richzhang/colorization's resources/pts_in_hull.npy: its first ten and last five rows.
    centers = gamut_centers()
    assert centers.shape == (313, 2)
    assert centers[:10].tolist() == [[-90, 50], [-90, 60], [-90, 70], [-90, 80], [-90, 90],
                                     [-80, 20], [-80, 30], [-80, 40], [-80, 50], [-80, 60]]
    assert centers[-5:].tolist() == [[100, -40], [100, -30], [100, -20], [100, -10], [100, 0]]
    assert len({tuple(c) for c in centers.tolist()}) == 313
    order = centers[:, 0] * 1000 + centers[:, 1]  # a-major, then b
    assert torch.equal(order, order.sort().values)


def test_derived_gamut_differs_from_the_published_by_three_edge_bins() -> None:
    derived = {tuple(c) for c in derived_gamut_centers().tolist()}
    published = {tuple(c) for c in gamut_centers().tolist()}
    assert len(derived) == 313
    assert derived - published == {(-60.0, 100.0), (80.0, 80.0), (110.0, -60.0)}
    assert published - derived == {(40.0, 90.0), (100.0, -90.0), (100.0, 0.0)}


def test_derived_gamut_radius_controls_the_count() -> None:
    assert derived_gamut_centers(radius=5.0).shape[0] < 313 < derived_gamut_centers(radius=20.0).shape[0]
    with pytest.raises(ConfigError):
        derived_gamut_centers(grid=0)


# ---- hard assignment and soft encoding ------------------------------------------------------------------


def test_hard_assign_matches_brute_force(centers: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize, "_BLOCK_PIXELS", 37)  # several blocks and a short last one
    ab = torch.randn(3, 2, 5, 7, generator=torch.Generator().manual_seed(0)) * 50
    idx = hard_assign(ab, centers)
    assert idx.shape == (3, 5, 7) and idx.dtype == torch.long
    pixels = ab.movedim(1, -1).reshape(-1, 2)
    expected = torch.cdist(pixels, centers).argmin(dim=1).reshape(3, 5, 7)
    assert torch.equal(idx, expected)


def test_soft_encode_hand_computed(centers: torch.Tensor) -> None:
    enc = soft_encode(_ab((0.0, 0.0)), centers)  # exactly on a bin: 4 grid neighbours at distance 10
    assert enc.shape == (1, 313, 1, 1)
    w = enc[0, :, 0, 0]
    assert int((w > 0).sum()) == 5
    assert w[_index(centers, 0, 0)].item() == pytest.approx(1 / (1 + 4 * E2))
    for a, b in [(10, 0), (-10, 0), (0, 10), (0, -10)]:
        assert w[_index(centers, a, b)].item() == pytest.approx(E2 / (1 + 4 * E2))


def test_soft_encode_properties(centers: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    ab = torch.randn(2, 2, 6, 5, generator=torch.Generator().manual_seed(1)) * 60
    ab[0, :, 0, 0] = torch.tensor([500.0, -500.0])  # far outside the gamut: must not underflow to 0/0
    enc = soft_encode(ab, centers, k=5, sigma=5.0)
    assert enc.shape == (2, 313, 6, 5) and enc.dtype == torch.float32
    torch.testing.assert_close(enc.sum(dim=1), torch.ones(2, 6, 5))
    support = (enc > 0).sum(dim=1)
    assert (enc >= 0).all() and support[0, 0, 0] >= 1 and enc[0, :, 0, 0].max() > 0.99  # nearest bin wins
    support[0, 0, 0] = 5
    assert torch.equal(support, torch.full((2, 6, 5), 5))
    assert torch.equal(enc.argmax(dim=1), hard_assign(ab, centers))
    monkeypatch.setattr(quantize, "_BLOCK_PIXELS", 7)
    torch.testing.assert_close(soft_encode(ab, centers), enc)
    one_hot = soft_encode(ab, centers, k=1)
    assert torch.equal(one_hot.argmax(dim=1), hard_assign(ab, centers))
    assert torch.all(one_hot.amax(dim=1) == 1)


def test_soft_encode_float64_and_unbatched(centers: torch.Tensor) -> None:
    ab = torch.zeros(2, 3, 4, dtype=torch.float64)
    enc = soft_encode(ab, centers)
    assert enc.shape == (313, 3, 4) and enc.dtype == torch.float64


@pytest.mark.parametrize(("k", "sigma"), [(0, 5.0), (314, 5.0), (2.5, 5.0), (True, 5.0), (5, 0.0), (5, -1.0)])
def test_soft_encode_rejects_bad_arguments(centers: torch.Tensor, k: object, sigma: float) -> None:
    with pytest.raises(ConfigError):
        soft_encode(torch.zeros(1, 2, 2, 2), centers, k=k, sigma=sigma)  # type: ignore[arg-type]


def test_shape_errors(centers: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="ab"):
        hard_assign(torch.zeros(1, 3, 2, 2), centers)
    with pytest.raises(ConfigError, match="centres"):
        soft_encode(torch.zeros(1, 2, 2, 2), torch.zeros(5, 3))


def test_soft_assign_on_a_palette() -> None:
    palette = load_palette(16)
    ab = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(2)) * 30
    enc = soft_assign(ab, palette)
    assert enc.shape == (2, 16, 4, 4)
    torch.testing.assert_close(enc.sum(dim=1), torch.ones(2, 4, 4))
    assert torch.equal((enc > 0).sum(dim=1), torch.full((2, 4, 4), 3))
    assert torch.equal(enc.argmax(dim=1), hard_assign(ab, palette))
    tiny = palette[:2]
    clipped = soft_assign(ab, tiny, k=5)  # k clipped to Q = 2
    assert torch.equal((clipped > 0).sum(dim=1), torch.full((2, 4, 4), 2))


# ---- priors and rebalancing ---------------------------------------------------------------------------


def test_empirical_distribution(centers: torch.Tensor) -> None:
    ab = _ab((0, 0), (1, 2), (9, 1), (-30, 40))  # three pixels in two bins, one in a third
    p = empirical_bin_distribution(ab, centers)
    assert p.shape == (313,) and p.sum().item() == pytest.approx(1.0)
    assert p[_index(centers, 0, 0)] == pytest.approx(0.5)
    assert p[_index(centers, 10, 0)] == pytest.approx(0.25)
    assert p[_index(centers, -30, 40)] == pytest.approx(0.25)
    as_iterable = empirical_bin_distribution(iter([ab[..., :1], ab[..., 1:]]), centers)
    torch.testing.assert_close(as_iterable, p)
    with pytest.raises(ConfigError, match="no ab pixels"):
        empirical_bin_distribution([], centers)


def test_smooth_distribution_spreads_mass_by_a_gaussian(centers: torch.Tensor) -> None:
    p = torch.zeros(313)
    p[_index(centers, 0, 0)] = 1
    sm = smooth_distribution(p, centers, sigma=5.0)
    assert sm.sum().item() == pytest.approx(1.0)
    centre = sm[_index(centers, 0, 0)]
    assert sm[_index(centers, 10, 0)] / centre == pytest.approx(E2)
    assert sm[_index(centers, 10, 10)] / centre == pytest.approx(E2**2)
    assert sm.argmax().item() == _index(centers, 0, 0)


def test_rebalance_weights(centers: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(3)
    p = torch.rand(313, generator=gen) ** 4
    w = rebalance_weights(p, lam=0.5, sigma=5.0, centers=centers)
    p_tilde = smooth_distribution(p, centers, 5.0)
    assert w.shape == (313,) and w.dtype == torch.float32
    assert (p_tilde * w.double()).sum().item() == pytest.approx(1.0, abs=1e-6)
    expected = 1 / (0.5 * p_tilde + 0.5 / 313)
    torch.testing.assert_close(w.double(), expected / (p_tilde * expected).sum(), rtol=1e-6, atol=0)
    order = torch.argsort(p_tilde)
    assert torch.all(w[order][1:] <= w[order][:-1] + 1e-6)  # rarer bins weigh more
    torch.testing.assert_close(rebalance_weights(p, lam=1.0, centers=centers), torch.ones(313))
    uniform = rebalance_weights(torch.ones(313), lam=0.5, sigma=0)
    torch.testing.assert_close(uniform, torch.ones(313))


@pytest.mark.parametrize("kwargs", [{"lam": -0.1}, {"lam": 1.5}, {"lam": 0.0, "sigma": 0}])
def test_rebalance_rejects_bad_arguments(kwargs: dict[str, float]) -> None:
    p = torch.zeros(313)
    p[0] = 1  # lam = 0 with empty bins would divide by zero
    with pytest.raises(ConfigError):
        rebalance_weights(p, **kwargs)


def test_distribution_validation(centers: torch.Tensor) -> None:
    with pytest.raises(ConfigError):
        rebalance_weights(-torch.ones(313))
    with pytest.raises(ConfigError, match="313 centres"):
        smooth_distribution(torch.ones(10), centers)


# ---- palettes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bins", [16, 24, 32])
def test_shipped_palettes(bins: int) -> None:
    palette = load_palette(bins)
    assert palette.shape == (bins, 2) and palette.dtype == torch.float32 and torch.isfinite(palette).all()
    assert palette.abs().max() < 128
    keys = palette[:, 0] * 1e4 + palette[:, 1]
    assert torch.all(keys[1:] > keys[:-1])  # sorted by a, then b
    assert palette.norm(dim=1).min() < 5  # a neutral colour for the many near-gray pixels
    palette[0] = 0
    assert not torch.equal(load_palette(bins), palette)  # callers get copies


@pytest.mark.parametrize("bins", [0, 20, 313, "16", 16.0, True])
def test_load_palette_rejects_other_sizes(bins: object) -> None:
    with pytest.raises(ConfigError, match="no palette"):
        load_palette(bins)  # type: ignore[arg-type]


def test_palette_file_round_trip_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize, "DATA_DIR", tmp_path)
    quantize._load_palette.cache_clear()
    try:
        with pytest.raises(ConfigError, match="missing"):
            load_palette(16)
        centers = torch.randn(16, 2, generator=torch.Generator().manual_seed(4)) * 40
        quantize.save_palette(tmp_path / "palette16.json", centers, {"note": "test"})
        torch.testing.assert_close(load_palette(16), centers, atol=1e-4, rtol=0)
        quantize.save_palette(tmp_path / "palette24.json", centers)  # 16 pairs where 24 are expected
        with pytest.raises(ConfigError, match="does not hold 24"):
            load_palette(24)
        (tmp_path / "palette32.json").write_text("{not json", encoding="utf-8")
        with pytest.raises(ConfigError, match="unreadable"):
            load_palette(32)
    finally:
        quantize._load_palette.cache_clear()


def test_fit_palette_finds_clusters_deterministically() -> None:
    rng = np.random.default_rng(5)
    true = np.array([[-40.0, 30.0], [0.0, 0.0], [25.0, -60.0], [50.0, 50.0]])
    samples = np.concatenate([c + rng.normal(0, 2, (300, 2)) for c in true])
    rng.shuffle(samples)
    fitted = fit_palette(samples, 4, seed=0)
    assert fitted.shape == (4, 2) and fitted.dtype == torch.float32
    np.testing.assert_allclose(fitted.numpy(), true, atol=1.0)  # sorted by a like ``true``
    assert torch.equal(fit_palette(torch.from_numpy(samples[::-1].copy()), 4, seed=0), fitted)


def test_fit_palette_validation() -> None:
    with pytest.raises(ConfigError, match="distinct"):
        fit_palette(np.zeros((50, 2)), 4)
    with pytest.raises(ConfigError, match=r"\(N, 2\)"):
        fit_palette(np.zeros((50, 3)), 4)
    with pytest.raises(ConfigError, match="bins"):
        fit_palette(np.random.default_rng(0).normal(size=(5, 2)), 8)


# ---- decoders -----------------------------------------------------------------------------------------


def _logits(q: int, seed: int = 6, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(2, q, 3, 4, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 3


def test_annealed_mean_matches_manual_softmax(centers: torch.Tensor) -> None:
    logits = _logits(313)
    for t in (1.0, ZT := quantize.ZHANG_TEMPERATURE):
        probs = torch.softmax(logits / t, dim=1)
        expected = (probs[:, :, None] * centers[None, :, :, None, None]).sum(dim=1)
        torch.testing.assert_close(decode_annealed_mean(logits, centers, t), expected, atol=1e-4, rtol=1e-5)
    assert ZT == 0.38


def test_mode_top_k_and_limits(centers: torch.Tensor) -> None:
    logits = _logits(313, dtype=torch.float64)
    mode = decode_mode(logits, centers)
    assert mode.shape == (2, 2, 3, 4) and mode.dtype == torch.float64
    assert torch.equal(mode, centers.double()[logits.argmax(dim=1)].movedim(-1, 1))
    torch.testing.assert_close(decode_top_k(logits, centers, 1), mode)
    torch.testing.assert_close(decode_top_k(logits, centers, 313), decode_annealed_mean(logits, centers, 1.0))
    torch.testing.assert_close(decode_annealed_mean(logits, centers, 1e-6), mode)  # no overflow as T -> 0


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), "0.38", True])
def test_annealed_rejects_bad_temperature(centers: torch.Tensor, temperature: object) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        decode_annealed_mean(_logits(313), centers, temperature)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [0, 314, -1, 2.0, True])
def test_top_k_rejects_bad_k(centers: torch.Tensor, k: object) -> None:
    with pytest.raises(ConfigError, match="top_k"):
        decode_top_k(_logits(313), centers, k)  # type: ignore[arg-type]


def _expected_distance(probs: np.ndarray, centers: np.ndarray, ab: np.ndarray) -> float:
    return float((probs * np.linalg.norm(centers - ab, axis=1)).sum())


def test_median_minimises_the_expected_distance_like_scipy(centers: torch.Tensor) -> None:
    from scipy.optimize import minimize

    logits = _logits(313, dtype=torch.float64)[:, :, :2, :2] / 2  # flatter: medians between bins
    weights = torch.rand(313, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 4 + 0.2
    c = centers.double().numpy()
    for bin_weights in (None, weights):
        median = decode_median(logits, centers, bin_weights, iterations=300)
        default = decode_median(logits, centers, bin_weights)
        assert median.shape == (2, 2, 2, 2) and median.dtype == torch.float64
        probs = torch.softmax(logits, dim=1)
        if bin_weights is not None:
            probs = probs / bin_weights[:, None, None]
            probs = probs / probs.sum(dim=1, keepdim=True)
        for n, y, x in np.ndindex(2, 2, 2):
            p = probs[n, :, y, x].numpy()
            best = minimize(lambda ab, p=p: _expected_distance(p, c, ab), p @ c, method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
            np.testing.assert_allclose(median[n, :, y, x].numpy(), best.x, atol=0.05)
            # 16 steps (the default) come within 0.1 % of the least expected distance
            assert _expected_distance(p, c, default[n, :, y, x].numpy()) <= best.fun * 1.001
    mean = decode_annealed_mean(logits, centers, 1.0)
    assert not torch.allclose(median.float(), mean.float(), atol=0.5)  # the median is not the mean


def test_median_of_a_majority_is_its_bin_and_bin_weights_divide_out(centers: torch.Tensor) -> None:
    heavy, light = _index(centers, 20.0, 30.0), _index(centers, -40.0, -10.0)
    probs = torch.full((313,), 0.4 / 311, dtype=torch.float64)
    probs[heavy], probs[light] = 0.55, 0.05
    logits = probs.log()[None, :, None, None]
    median = decode_median(logits, centers, iterations=100)[0, :, 0, 0]
    assert torch.linalg.norm(median - torch.tensor([20.0, 30.0], dtype=torch.float64)) < 1.0
    # a head trained with rebalancing weights w predicts p * w; the decode divides w out again
    weights = torch.linspace(0.5, 3.0, 313, dtype=torch.float64)
    torch.testing.assert_close(decode_median((probs * weights).log()[None, :, None, None], centers, weights),
                               decode_median(logits, centers))
    assert decode_median(logits.to(torch.bfloat16), centers).dtype == torch.bfloat16


@pytest.mark.parametrize("bad", [{"bin_weights": torch.ones(312)}, {"bin_weights": -torch.ones(313)},
                                 {"bin_weights": torch.full((313,), float("nan"))}, {"iterations": -1},
                                 {"iterations": True}, {"iterations": 2.5}])
def test_median_rejects_bad_arguments(centers: torch.Tensor, bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="bin_weights|iterations"):
        decode_median(_logits(313), centers, **bad)  # type: ignore[arg-type]


def test_decoder_rejects_mismatched_logits(centers: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="313"):
        decode_mode(_logits(16), centers)


def test_ab_decoder_dispatch(centers: torch.Tensor) -> None:
    logits = _logits(313)
    dec = ABDecoder(centers)
    assert dec.num_bins == 313 and "centers" in dec.state_dict()
    torch.testing.assert_close(dec(logits), decode_annealed_mean(logits, centers, 0.38))
    torch.testing.assert_close(dec(logits, temperature=1.0), decode_annealed_mean(logits, centers, 1.0))
    torch.testing.assert_close(dec(logits, temperature=0), decode_mode(logits, centers))  # the T -> 0 limit
    torch.testing.assert_close(dec(logits, top_k=3, temperature=1.0), decode_top_k(logits, centers, 3))
    torch.testing.assert_close(dec(logits, method="mode"), decode_mode(logits, centers))
    torch.testing.assert_close(dec(logits, method="top_k"), decode_mode(logits, centers))
    with pytest.raises(ConfigError, match="unknown decoding method"):
        dec(logits, method="median")
    with pytest.raises(ConfigError, match="temperature"):
        dec(logits, temperature=-0.5)


def test_ab_decoder_defaults_and_validation() -> None:
    palette = load_palette(24)
    logits = _logits(24)
    torch.testing.assert_close(ABDecoder(palette, default_top_k=4)(logits), decode_top_k(logits, palette, 4))
    cold = ABDecoder(palette, default_temperature=0)
    torch.testing.assert_close(cold(logits), decode_mode(logits, palette))
    with pytest.raises(ConfigError, match="default_top_k"):
        ABDecoder(palette, default_top_k=25)
    with pytest.raises(ConfigError, match="default_temperature"):
        ABDecoder(palette, default_temperature=-1)
    with pytest.raises(ConfigError, match="centres"):
        ABDecoder(torch.zeros(4, 3))


# ---- training tools built on this module (training.priors, training.palette) -------------------------


@pytest.fixture
def photo_dir(tmp_path: Path, make_rgb) -> Path:
    from PIL import Image

    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(make_rgb(12, 10, seed=1)).save(root / "a.png")
    Image.fromarray(make_rgb(9, 14, seed=2)).save(root / "sub" / "b.png")
    Image.fromarray(make_rgb(8, 8, seed=3)[..., 0]).save(root / "gray.png")  # skipped: no colour
    (root / "broken.jpg").write_bytes(b"not a jpeg")  # skipped: unreadable
    return root


def test_priors_are_the_empirical_distribution_and_cached(
    photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import priors

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    centers = gamut_centers()
    p = priors.load_or_compute_priors(photo_dir, centers, progress=False)
    expected = empirical_bin_distribution(
        [priors.read_ab(photo_dir / "a.png"), priors.read_ab(photo_dir / "sub" / "b.png")], centers
    )
    torch.testing.assert_close(p, expected)
    cached = list((tmp_path / "cache" / "colorcore").glob("priors-*.json"))
    assert len(cached) == 1

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(priors, "compute_priors", fail)
    torch.testing.assert_close(priors.load_or_compute_priors(photo_dir, centers, progress=False), p)
    with pytest.raises(AssertionError, match="cache"):  # another file size means another key
        (photo_dir / "broken.jpg").write_bytes(b"still not a jpeg")
        priors.load_or_compute_priors(photo_dir, centers, progress=False)
    with pytest.raises(ConfigError, match="does not exist"):
        priors.load_or_compute_priors(tmp_path / "missing", centers)


def test_priors_cli_writes_out_file(photo_dir: Path, tmp_path: Path) -> None:
    import json

    from training import priors

    out = tmp_path / "priors.json"
    argv = ["--data", str(photo_dir), "--out", str(out), "--max-images", "3", "--no-progress"]
    assert priors.main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["bins"] == 313 and sum(doc["p"]) == pytest.approx(1.0) and doc["images"] >= 1
    assert priors.main(["--data", str(tmp_path / "nowhere")]) == 2


def test_palette_cli(photo_dir: Path, tmp_path: Path) -> None:
    from training import palette

    out_dir = tmp_path / "palettes"
    code = palette.main(["--data", str(photo_dir), "--bins", "4", "6", "--samples", "100", "--out-dir",
                         str(out_dir), "--no-progress"])
    assert code == 0
    for bins in (4, 6):
        doc = __import__("json").loads((out_dir / f"palette{bins}.json").read_text())
        assert doc["format"] == quantize.PALETTE_FORMAT and doc["bins"] == bins
        assert doc["source"]["photos"] == 2 and doc["source"]["samples"] == 100
        assert len(doc["centers"]) == bins
    assert palette.main(["--data", str(photo_dir), "--bins", "500", "--out-dir", str(out_dir)]) == 2
