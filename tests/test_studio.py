"""colorcore.studio: picker choices, knobs, comparisons with metrics, the API call, classroom figures."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from browser_util import make_tiny_weights
from matplotlib.figure import Figure
from photos import smooth_rgb
from PIL import Image

from colorcore import studio
from colorcore.errors import ColorcoreError, ConfigError, ModelNotFoundError
from colorcore.metrics import compute_all, gray_baseline
from colorcore.pipeline import Colorizer
from colorcore.quantize import decode_median

SIZE = 128


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    make_tiny_weights(folder)
    return folder


@pytest.fixture(autouse=True)
def use_tiny(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLORCORE_WEIGHTS_DIR", str(tiny_dir))
    studio.load_model.cache_clear()  # names may repeat across weights folders of other tests
    yield
    studio.load_model.cache_clear()


@pytest.fixture
def photo(make_rgb) -> Image.Image:
    return Image.fromarray(make_rgb(37, 53, seed=3), "RGB")  # odd 53 x 37 on purpose


def knobs(**kw) -> studio.Knobs:
    return studio.Knobs(size=SIZE, **kw)


# ------------------------------------------------------------------------------------------ choices
def test_choices_group_palettes_and_label_kinds():
    choices = {c.key: c for c in studio.list_choices()}
    assert {"baseline-tiny", "eccv16-tiny", "unet-palette", "siggraph17-tiny"} <= set(choices)
    assert "unet-palette-16" not in choices and "unet-palette-24" not in choices  # grouped
    palette = choices["unet-palette"]
    assert palette.kind == "palette" and palette.bins == (16, 24)
    assert palette.entry(16).name == "unet-palette-16" and palette.entry().name == "unet-palette-24"
    assert choices["eccv16-tiny"].kind == "gamut" and "313-bin" in choices["eccv16-tiny"].label
    assert choices["siggraph17-tiny"].kind == "hints" and choices["siggraph17-tiny"].supports_hints
    assert choices["baseline-tiny"].kind == "regression"
    # Published Zhang weights are offered but never pre-selected (they need a download).
    assert "published" in choices["eccv16-published"].label


def test_recommended_models_lead_and_are_preselected(monkeypatch):
    # No recommended weights installed: today's rule, the first bundled ones (default-marked first).
    monkeypatch.setattr(studio, "RECOMMENDED", ("not-installed",))
    choices = studio.list_choices()
    assert studio.default_selection(choices) == ["baseline-tiny", "eccv16-tiny"]
    assert studio.recommended_choice(choices).key == "baseline-tiny"
    assert all(c.bundled for c in choices[:4]) and not choices[-1].bundled  # downloads last
    # A recommended model that is installed leads the picker and the default selection.
    monkeypatch.setattr(studio, "RECOMMENDED", ("siggraph17-tiny", "not-installed", "unet-palette"))
    monkeypatch.setitem(studio.PLAIN_NAMES, "siggraph17-tiny", studio.PlainName("Hints", "paint your own"))
    monkeypatch.delitem(studio.PLAIN_NAMES, "unet-palette")
    choices = studio.list_choices()
    assert [c.key for c in choices[:2]] == ["siggraph17-tiny", "unet-palette"]
    assert studio.default_selection(choices) == ["siggraph17-tiny", "unet-palette"]
    options = studio.picker_options(choices)
    assert options[0] == ("★ Recommended: Hints — paint your own (siggraph17-tiny)", "siggraph17-tiny")
    assert options[1][0].startswith("unet-palette · k-means palette")  # no plain name: technical label
    published = next(label for label, key in options if key == "eccv16-published")
    assert published.startswith("Zhang et al. 2016 — ") and "downloads on first use" in published


def test_plain_names_cover_every_bundled_model():
    from colorcore.weights import bundled_weights

    bundled = bundled_weights(Path(__file__).resolve().parents[1] / "assets" / "weights")
    keys = {c.key for c in studio.list_choices(bundled)}
    assert keys <= set(studio.PLAIN_NAMES), keys - set(studio.PLAIN_NAMES)
    assert set(studio.RECOMMENDED) <= set(studio.PLAIN_NAMES)
    assert all(len(p.blurb) <= 45 for p in studio.PLAIN_NAMES.values())  # short in the picker


def test_strongest_classifier_follows_the_data_rule(monkeypatch):
    choices = studio.list_choices()
    # eccv16-published needs a download, so the first runnable 313-bin choice wins.
    assert studio.strongest_classifier(choices).key == "eccv16-tiny"
    monkeypatch.setattr(studio, "STRONGEST_GAMUT", ("siggraph17-tiny", "eccv16-published"))
    assert studio.strongest_classifier(choices).key == "eccv16-tiny"  # not a classifier: ignored
    palettes = [c for c in choices if c.kind == "palette"]
    assert studio.strongest_classifier(palettes).key == "unet-palette"
    assert studio.strongest_classifier([c for c in choices if not c.is_classifier]) is None


def test_find_choice_accepts_weights_names_and_rejects_unknown():
    assert studio.find_choice("unet-palette-16").entry().name == "unet-palette-16"
    # A family name, as the CLI takes it: that family's default weights (bundled before published).
    assert studio.find_choice("eccv16").entry().name == "eccv16-tiny"
    assert studio.find_choice("siggraph17").entry().name == "siggraph17-tiny"
    assert studio.find_choice("baseline").entry().name == "baseline-tiny"
    with pytest.raises(ModelNotFoundError, match="available: .*eccv16-tiny"):
        studio.find_choice("nope")
    with pytest.raises(ConfigError, match="no weights with 32 palette colours; available: 16, 24"):
        studio.find_choice("unet-palette").entry(32)


@pytest.mark.parametrize(
    ("keys", "method", "expected"),
    [
        (["baseline-tiny"], "annealed", (False, False, False, (), False)),
        (["eccv16-tiny"], "annealed", (True, True, False, (), False)),
        (["eccv16-tiny"], "mode", (False, True, False, (), False)),
        (["eccv16-tiny"], "top_k", (False, True, True, (), False)),
        (["unet-palette", "baseline-tiny"], "annealed", (False, False, True, (16, 24), False)),
        (["siggraph17-tiny"], "annealed", (False, False, False, (), True)),
        ([], "annealed", (False, False, False, (), False)),
    ],
)
def test_knob_visibility(keys, method, expected):
    v = studio.knob_visibility(keys, method)
    assert (v.temperature, v.method, v.top_k, v.bins, v.hints) == expected


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"temperature": 0.0}, "temperature"), ({"temperature": 1.5}, "temperature"), ({"size": 100}, "size"),
     ({"size": 600}, "size"), ({"size": 200.5}, "size"), ({"top_k": 0}, "top-k"), ({"top_k": 11}, "top-k"),
     ({"method": "median"}, "decoding mode"), ({"bins": 20}, "palette size")],
)
def test_knobs_reject_out_of_range_values(kw, message):
    with pytest.raises(ConfigError, match=message):
        studio.Knobs(**kw)


def test_knobs_decoding_per_kind():
    choices = {c.key: c for c in studio.list_choices()}
    gamut = choices["eccv16-tiny"]
    assert knobs(temperature=0.5).decoding(gamut) == {"method": "annealed", "temperature": 0.5}
    assert knobs(method="mode").decoding(gamut) == {"method": "mode"}
    assert knobs(method="top_k", top_k=4.0).decoding(gamut) == {"method": "top_k", "top_k": 4}
    assert knobs(top_k=7, bins=16).decoding(choices["unet-palette"]) == {"method": "top_k", "top_k": 7}
    assert knobs(temperature=0.5).decoding(choices["baseline-tiny"]) == {}


# ------------------------------------------------------------------------------------------ input
def test_colour_detection(photo: Image.Image):
    assert studio.is_colour(photo)
    gray_rgb = photo.convert("L").convert("RGB")
    buf = io.BytesIO()
    gray_rgb.save(buf, format="JPEG", quality=70)  # JPEG adds a little chroma noise to a gray photo
    assert not studio.is_colour(Image.open(buf))
    assert not studio.is_colour(photo.convert("L"))


def test_to_gray_of_a_gray_photo_stored_as_rgb_is_its_channel():
    # The shortcut for R = G = B must give what the Lab route gives, for every gray level.
    levels = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(2, axis=0)
    gray = studio.to_gray(Image.fromarray(levels, "RGB"))
    assert gray.mode == "L"
    assert np.array_equal(np.asarray(gray), gray_baseline(levels)[..., 0])
    assert np.array_equal(np.asarray(gray), levels[..., 0])
    nearly = levels.copy()
    nearly[0, 10, 2] += 1  # not gray any more: the Lab route decides
    assert np.array_equal(np.asarray(studio.to_gray(Image.fromarray(nearly, "RGB"))),
                          gray_baseline(nearly)[..., 0])


def test_split_photo_turns_colour_into_gray_plus_truth(photo: Image.Image):
    gray, truth = studio.split_photo(photo)
    assert gray.mode == "L" and gray.size == photo.size
    assert np.array_equal(np.asarray(truth), np.asarray(photo))
    expected = gray_baseline(np.asarray(photo))
    assert np.array_equal(np.asarray(gray), np.asarray(expected)[..., 0])
    # The gray photo coming back (e.g. from the UI) keeps its truth; an unrelated truth is dropped.
    assert studio.split_photo(gray.convert("RGB"), truth)[1] is truth
    other = Image.fromarray(np.asarray(photo)[::-1].copy())
    assert studio.split_photo(gray, other)[1] is None
    assert studio.split_photo(None, truth) == (None, None)


def test_hints_from_layer_resizes_and_ignores_empty_layers():
    assert studio.hints_from_layer(None, (53, 37)) is None
    assert studio.hints_from_layer(np.zeros((74, 106, 4), np.uint8), (53, 37)) is None
    layer = np.zeros((74, 106, 4), np.uint8)
    layer[10:20, 10:20] = (220, 30, 30, 255)  # a red stroke on a canvas twice the photo's size
    hints = studio.hints_from_layer(layer, (53, 37))
    assert hints.shape == (37, 53) and hints.mask.sum() == 25
    assert hints.ab[hints.mask][:, 0].min() > 40  # red: large positive a


# ------------------------------------------------------------------------------------------ comparison
def test_comparison_outputs_metrics_and_baseline(photo: Image.Image):
    comparison = studio.run_comparison(photo, ["eccv16-tiny", "baseline-tiny"], knobs())
    assert [r.entry.name for r in comparison.results] == ["eccv16-tiny", "baseline-tiny"]
    truth = np.asarray(photo)
    for r in comparison.results:
        assert r.image.size == photo.size and r.image.mode == "RGB" and r.elapsed > 0
        # The colour goes on top of the photo's own lightness.
        diff = np.abs(np.asarray(studio.to_gray(r.image), int) - np.asarray(comparison.gray, int))
        assert diff.mean() < 1  # (sRGB clipping of out-of-gamut colours moves a few pixels a little)
        assert r.metrics == pytest.approx(compute_all(np.asarray(r.image), truth), nan_ok=True)
    assert comparison.baseline == pytest.approx(compute_all(gray_baseline(truth), truth), nan_ok=True)

    table = studio.metrics_table(comparison)
    assert table.headers[:3] == ("Model", "Weights", "Time (s)")
    assert any(h.startswith("PSNR") for h in table.headers) and any("2000" in h for h in table.headers)
    assert [row[1] for row in table.rows] == ["eccv16-tiny", "baseline-tiny", ""]
    assert table.rows[-1][0] == studio.BASELINE_LABEL
    psnr = next(i for i, h in enumerate(table.headers) if h.startswith("PSNR"))
    assert table.rows[-1][psnr] == pytest.approx(comparison.baseline["psnr"], abs=1e-3)
    assert table.records()[0]["Weights"] == "eccv16-tiny"


def test_metrics_can_follow_the_pictures(photo: Image.Image):
    """metrics=False returns the pictures at once; score() adds the same metrics run_comparison computes."""
    fast = studio.run_comparison(photo, ["eccv16-tiny", "baseline-tiny"], knobs(), metrics=False)
    assert not fast.scored and all(r.metrics is None for r in fast.results) and fast.baseline is None
    full = studio.run_comparison(photo, ["eccv16-tiny", "baseline-tiny"], knobs())
    scored = studio.score(fast)
    assert scored.scored and fast.baseline is None  # a copy; the original is untouched
    for a, b in zip(scored.results, full.results, strict=True):
        assert a.metrics == pytest.approx(b.metrics, nan_ok=True)
    assert scored.baseline == pytest.approx(full.baseline, nan_ok=True)
    later = studio.score_soon(fast).result(timeout=60)  # the same, computed in the background
    assert [r.metrics for r in later.results] == [r.metrics for r in scored.results]
    gray_only = studio.run_comparison(photo.convert("L"), ["baseline-tiny"], knobs(), metrics=False)
    assert gray_only.scored and studio.score(gray_only) is gray_only  # nothing to score against
    # The truth's side is prepared once per photo (the front ends start it on upload) and reused.
    prepared = studio.prepare_scoring(fast.gray, fast.truth)
    assert prepared is studio.prepare_scoring(fast.gray, fast.truth.copy())
    assert prepared.result(timeout=60)[1] == scored.baseline
    assert studio.prepare_scoring(fast.gray, None) is None
    assert studio.prepare_scoring(fast.gray, fast.truth.resize((10, 10))) is None
    with pytest.raises(ConfigError, match="ground truth is 10x10"):
        studio.score(dataclasses.replace(fast, truth=fast.truth.resize((10, 10))))
    # The wall time covers every model, and the note puts it beside the models' own time.
    assert fast.wall >= fast.inference > 0
    note = studio.timing_note(fast, 1.5)
    assert note.startswith("2 models in **1.50 s**") and f"{fast.inference:.2f} s" in note


def test_display_files_are_small_jpegs_and_pair_with_gray_or_truth(photo: Image.Image, tmp_path: Path):
    big = photo.resize((3000, 2100))
    comparison = studio.run_comparison(big, ["baseline-tiny", "eccv16-tiny"], knobs(), metrics=False)
    files = studio.display_files(comparison, tmp_path)
    for path in (files.gray, files.truth, *files.results):
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.size == (2048, 1434)
    assert files.pair(1) == (files.gray, files.results[1])

    def off(path: Path, image: Image.Image) -> float:  # mean |difference| to the shown thumbnail
        shown = image.convert("RGB").resize((2048, 1434), Image.Resampling.BILINEAR)
        with Image.open(path) as im:
            return float(np.abs(np.asarray(im.convert("RGB"), np.int16) - np.asarray(shown, np.int16)).mean())

    # Each file holds its own picture (they are written in parallel).
    assert off(files.gray, comparison.gray) < 3 and off(files.truth, comparison.truth) < 3
    for path, result in zip(files.results, comparison.results, strict=True):
        assert off(path, result.image) < 3
    assert files.pair(1, against_truth=True) == (files.truth, files.results[1])
    no_truth = studio.display_files(studio.run_comparison(photo.convert("L"), ["baseline-tiny"], knobs()),
                                    tmp_path / "gray")
    assert no_truth.truth is None and no_truth.pair(0, against_truth=True)[0] == no_truth.gray


def test_comparison_without_truth_reports_time_only(photo: Image.Image):
    gray = photo.convert("L")
    comparison = studio.run_comparison(gray, ["baseline-tiny"], knobs())
    assert comparison.truth is None and comparison.baseline is None
    assert studio.metrics_table(comparison).headers == ("Model", "Weights", "Time (s)")
    mismatched = studio.run_comparison(gray, ["baseline-tiny"], knobs(), truth=photo.resize((20, 20)))
    assert mismatched.truth is None and "metrics are skipped" in mismatched.notes[0]


def test_comparison_skips_a_model_that_cannot_run(photo: Image.Image, monkeypatch):
    from colorcore import weights
    from colorcore.errors import WeightsError

    def offline(entry):
        raise WeightsError(f"cannot download the published {entry.model} weights (offline)")

    monkeypatch.setattr(weights, "fetch_published", offline)
    comparison = studio.run_comparison(photo, ["baseline-tiny", "eccv16-published"], knobs())
    assert [r.entry.name for r in comparison.results] == ["baseline-tiny"]
    assert comparison.notes == ("skipped eccv16-published: cannot download the published eccv16 weights "
                                "(offline)",)
    with pytest.raises(WeightsError, match="cannot download the published eccv16"):
        studio.run_comparison(photo, ["eccv16-published"], knobs())


def test_comparison_decoding_knobs_change_the_result(photo: Image.Image):
    def run(**kw):
        return np.asarray(studio.run_comparison(photo, ["eccv16-tiny"], knobs(**kw)).results[0].image, int)

    mode, hot = run(method="mode"), run(temperature=1.0)
    assert np.abs(mode - hot).max() > 0
    expected = Colorizer(studio.load_model("eccv16-tiny"), size=SIZE).colorize(
        studio.to_gray(photo), method="mode")
    assert np.array_equal(mode, np.asarray(expected))
    p16 = studio.run_comparison(photo, ["unet-palette"], knobs(bins=16, top_k=1)).results[0]
    assert p16.entry.name == "unet-palette-16"


@pytest.mark.parametrize(
    ("keys", "error", "message"),
    [([], ConfigError, "between 1 and 6"),
     (["baseline-tiny", "eccv16-tiny", "unet-palette", "siggraph17-tiny", "unet-palette-16",
       "unet-palette-24", "eccv16-published"], ConfigError, "got 7"),
     (["ghost"], ModelNotFoundError, "unknown model 'ghost'")],
)
def test_comparison_rejects_bad_model_lists(photo, keys, error, message):
    with pytest.raises(error, match=message):
        studio.run_comparison(photo, keys, knobs())


def test_comparison_needs_a_photo():
    with pytest.raises(ConfigError, match="upload or paste a photo"):
        studio.run_comparison(None, ["baseline-tiny"], knobs())


def test_hints_steer_the_user_guided_model(photo: Image.Image):
    layer = np.zeros((photo.height, photo.width, 4), np.uint8)
    layer[5:30, 5:40] = (30, 60, 230, 255)  # a big blue stroke
    hints = studio.hints_from_layer(layer, photo.size)
    plain = studio.run_comparison(photo, ["siggraph17-tiny", "baseline-tiny"], knobs())
    hinted = studio.run_comparison(photo, ["siggraph17-tiny", "baseline-tiny"], knobs(), hints=hints)
    diff = [np.abs(np.asarray(a.image, int) - np.asarray(b.image, int)).max()
            for a, b in zip(plain.results, hinted.results, strict=True)]
    assert diff[0] > 0 and diff[1] == 0  # only the hinted model listens
    # Hints with no user-guided model selected bring one in, rather than being silently ignored ...
    added = studio.run_comparison(photo, ["baseline-tiny"], knobs(), hints=hints)
    assert [r.choice.key for r in added.results] == ["baseline-tiny", "siggraph17-tiny"]
    assert "added siggraph17-tiny" in added.notes[0]
    np.testing.assert_array_equal(np.asarray(added.results[1].image), np.asarray(hinted.results[0].image))
    # ... and without a bundled one the user is told.
    unguided = [c for c in studio.list_choices() if not c.supports_hints]
    alone = studio.run_comparison(photo, ["baseline-tiny"], knobs(), hints=hints, choices=unguided)
    assert [r.choice.key for r in alone.results] == ["baseline-tiny"]
    assert "none is selected" in alone.notes[0]


def test_save_results_and_batch_write_full_resolution_pngs(photo: Image.Image, tmp_path: Path):
    comparison = studio.run_comparison(photo, ["baseline-tiny", "unet-palette"], knobs())
    paths = studio.save_results(comparison, tmp_path / "one", studio.photo_stem("/x/my photo.JPG"))
    assert [p.name for p in paths] == ["my-photo_baseline-tiny.png", "my-photo_unet-palette-24.png"]
    assert studio.photo_stem(None) == studio.photo_stem("") == studio.photo_stem("###.png") == "photo"
    assert all(Image.open(p).size == photo.size and Image.open(p).format == "PNG" for p in paths)
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    photo.save(a)
    photo.resize((64, 40)).save(b)
    out = studio.colorize_batch([a, b], ["baseline-tiny", "eccv16-tiny"], knobs(), tmp_path / "batch")
    assert sorted(p.name for p in out) == ["a_baseline-tiny.png", "a_eccv16-tiny.png", "b_baseline-tiny.png",
                                           "b_eccv16-tiny.png"]
    assert Image.open(tmp_path / "batch" / "b_eccv16-tiny.png").size == (64, 40)
    with pytest.raises(ConfigError, match="drop one or more photos"):
        studio.colorize_batch([], ["baseline-tiny"], knobs(), tmp_path)


def test_models_are_cached_by_weights_name():
    assert studio.load_model("baseline-tiny") is studio.load_model("baseline-tiny")
    with pytest.raises(ModelNotFoundError):
        studio.load_model("not-installed")


# ------------------------------------------------------------------------------------------ API
def test_colorize_one_keeps_resolution_and_maps_knobs(photo: Image.Image):
    big = photo.resize((300, 210))
    out = studio.colorize_one(big, "eccv16-tiny", 0.0, 0, SIZE)
    assert out.size == big.size
    expected = Colorizer(studio.load_model("eccv16-tiny"), size=SIZE).colorize(big, method="mode")
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    top2 = Colorizer(studio.load_model("eccv16-tiny"), size=SIZE).colorize(big, method="top_k", top_k=2)
    out2 = studio.colorize_one(big, "eccv16-tiny", 0.38, 2, SIZE)
    assert np.array_equal(np.asarray(out2), np.asarray(top2))
    assert studio.colorize_one(big, "unet-palette-16", 0.38, 3, SIZE).size == big.size
    # Size 0 runs the model at the size it was trained at (128 for the tiny weights).
    trained = np.asarray(Colorizer(studio.load_model("baseline-tiny"), size=128).colorize(big))
    assert np.array_equal(np.asarray(studio.colorize_one(big, "baseline-tiny", 0.38, 0, 0)), trained)
    assert not np.array_equal(np.asarray(studio.colorize_one(big, "baseline-tiny", 0.38, 0, 256)), trained)
    assert studio.Knobs(size=None).size is None
    # A family name takes that family's default weights, as the CLI does.
    assert np.array_equal(np.asarray(studio.colorize_one(big, "eccv16", 0.0, 0, SIZE)), np.asarray(expected))
    with pytest.raises(ConfigError, match="processing size"):
        studio.colorize_one(big, "baseline-tiny", 0.38, 0, 4096)
    with pytest.raises(ColorcoreError, match="no image"):
        studio.colorize_one(None, "baseline-tiny")


def test_save_api_result_answers_jpeg_with_jpeg(photo: Image.Image, tmp_path):
    jpg, png = tmp_path / "in.jpg", tmp_path / "in.png"
    photo.save(jpg, quality=90)
    photo.save(png)
    cases = [(jpg, "auto", "JPEG"), (png, "auto", "PNG"), (jpg, "png", "PNG"), (png, "JPEG", "JPEG"),
             (tmp_path / "gone.jpg", "auto", "PNG")]
    for i, (source, fmt, expected) in enumerate(cases):
        out = studio.save_api_result(photo, tmp_path / str(i), source, fmt)
        with Image.open(out) as im:
            assert (im.format, im.size) == (expected, photo.size), (source.name, fmt)
    with pytest.raises(ConfigError, match="output format must be one of auto, jpeg, png, not 'gif'"):
        studio.save_api_result(photo, tmp_path, jpg, "gif")


def test_release_memory_trims_the_heap_on_glibc():
    import platform

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert studio.release_memory() is glibc


def test_clicks_on_an_enlarged_photo_map_back_to_its_pixels():
    small = Image.new("RGB", (128, 96))
    shown = studio.zoomed(small)
    assert shown.size == (384, 288)  # a whole factor, nearest neighbour
    assert studio.zoomed(Image.new("RGB", (500, 400))).size == (500, 400) and studio.zoomed(None) is None
    assert studio.click_to_pixel(0, 0, shown.size, small.size) == (0, 0)
    assert studio.click_to_pixel(383.9, 287.9, shown.size, small.size) == (127, 95)
    assert studio.click_to_pixel(200, 100, (400, 300), small.size) == (64, 32)  # a differently scaled view
    assert studio.click_to_pixel(999, -5, shown.size, small.size) == (127, 0)  # clamped inside the photo


def test_hint_layer_paints_squares_that_become_hints():
    from colorcore.color import rgb_to_lab

    size = (200, 100)
    layer = studio.hint_layer([(10, 20, "#ff0000"), (199, 99, "#0000ff")], size)
    assert layer.shape == (100, 200, 4) and layer[20, 10].tolist() == [255, 0, 0, 255]
    assert layer[19:22, 9:12, 3].all() and layer[18:23, 8:13, 3].sum() == 9 * 255  # 3 x 3 on a 100 px side
    assert layer[98:, 198:, 3].all()  # clipped at the border
    hints = studio.hints_from_layer(layer, size)
    assert hints.mask.sum() == 9 + 4
    red_ab = rgb_to_lab(torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1))[1:, 0, 0].numpy()
    np.testing.assert_allclose(hints.ab[20, 10], red_ab, atol=0.5)
    assert studio.hints_from_layer(studio.hint_layer([], size), size) is None


# ------------------------------------------------------------------------------------------ classroom
def test_pixel_distribution_reads_the_logits_at_the_clicked_cell(photo: Image.Image):
    gray = studio.to_gray(photo)
    view = studio.pixel_distribution("eccv16-tiny", gray, 40, 10, temperature=0.38, size=SIZE, truth=photo)
    assert isinstance(view.figure, Figure) and len(view.figure.axes) == 2
    assert view.probabilities.shape == (313,) and view.probabilities.sum() == pytest.approx(1, abs=1e-5)
    result = Colorizer(studio.load_model("eccv16-tiny"), size=SIZE).predict(gray)
    q, gh, gw = result.logits.shape
    expected = torch.softmax(result.logits[:, 10 * gh // 37, 40 * gw // 53], 0).numpy()
    np.testing.assert_allclose(view.probabilities, expected, atol=1e-6)
    assert "eccv16-tiny" in view.summary and "entropy" in view.summary
    palette = studio.pixel_distribution("unet-palette", gray, 0, 0, size=SIZE, bins=16)
    assert palette.probabilities.shape == (16,) and palette.centers.shape == (16, 2)


@pytest.mark.parametrize(("key", "xy", "message"), [
    ("baseline-tiny", (1, 1), "no colour distribution"), ("eccv16-tiny", (53, 0), "outside the 53x37"),
])
def test_pixel_distribution_errors(photo: Image.Image, key, xy, message):
    with pytest.raises(ConfigError, match=message):
        studio.pixel_distribution(key, photo, *xy, size=SIZE)


def test_temperature_sweep_runs_from_mean_to_mode(photo: Image.Image):
    strip = studio.temperature_sweep("eccv16-tiny", photo, size=SIZE)
    assert [c for _, c in strip][0] == "T = 1 (mean)" and strip[-1][1] == "T = 0 (mode)"
    assert len(strip) == len(studio.SWEEP_TEMPERATURES) == 7
    assert all(im.size == photo.size for im, _ in strip)
    gray = studio.to_gray(photo)
    mode = Colorizer(studio.load_model("eccv16-tiny"), size=SIZE).colorize(gray, method="mode")
    assert np.array_equal(np.asarray(strip[-1][0]), np.asarray(mode))
    with pytest.raises(ConfigError, match="needs a classifier"):
        studio.temperature_sweep("baseline-tiny", photo, size=SIZE)


def test_training_curves_figure_plots_each_history():
    fig = studio.training_curves_figure()
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("validation loss") and "validation psnr" in titles
    assert len(fig.axes[0].get_lines()) == 5  # one line per bundled tiny model
    # The legend sits below the panels, not on top of the loss curves.
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert studio.training_curves_figure([]) is None


def test_line_styles_never_repeat_for_the_whole_zoo():
    styles = studio.line_styles(13)
    assert len(set(styles)) == 13
    assert len({colour for colour, _ in styles[:10]}) == 10  # the first ten differ by colour alone
    assert styles[10][1] != styles[0][1]


def test_mark_pixel_rings_the_clicked_pixel():
    photo = Image.new("L", (100, 80), 128)
    shown = studio.zoomed(photo)  # 400 x 320
    marked = np.asarray(studio.mark_pixel(shown, 30, 20, photo.size), int)
    assert marked.shape == (320, 400, 3)
    cx, cy = 30 * 4 + 2, 20 * 4 + 2
    changed = np.argwhere(np.abs(marked - 128).sum(axis=2) > 0)
    # Everything drawn stays near the pixel, all around it, and leaves the pixel itself visible.
    assert np.abs(changed - [cy, cx]).max() <= 2 * 10 + 4
    assert changed[:, 0].min() < cy < changed[:, 0].max() and changed[:, 1].min() < cx < changed[:, 1].max()
    assert (marked[cy, cx] == 128).all()


def test_distribution_figure_and_bin_colours():
    c = np.array([[0.0, 0.0], [60.0, 60.0], [-40.0, 30.0]])
    colours = studio.bin_colours(torch.tensor(c, dtype=torch.float32))
    assert colours.shape == (3, 3) and colours.min() >= 0 and colours.max() <= 1
    assert np.allclose(colours[0], colours[0][0], atol=1e-3)  # a = b = 0 is neutral gray
    fig = studio.distribution_figure(np.array([0.1, 0.7, 0.2]), c, truth_ab=(50.0, 50.0))
    assert len(fig.axes) == 1


def test_litecolor_pixel_distribution_marks_its_faithful_median(monkeypatch):
    assets = Path(__file__).resolve().parents[1] / "assets" / "weights"
    monkeypatch.setenv("COLORCORE_WEIGHTS_DIR", str(assets))  # the real flagship weights
    studio.load_model.cache_clear()
    photo = Image.fromarray(smooth_rgb(64, 96, seed=5), "RGB")
    view = studio.pixel_distribution("litecolor:vivid", photo, 30, 20, size=128)
    labels = [t.get_text() for t in view.figure.axes[0].get_legend().get_texts()]
    marked = next(t for t in labels if t.startswith("Faithful: median"))
    assert not any(t.get_text().startswith("Faithful") for t in view.figure.axes[1].get_legend().get_texts())
    # the diamond is the faithful decode of the clicked cell (row 20 * 32 // 64, column 30 * 32 // 96 of the
    # 32 x 32 logits at 128 px), with the weights' own rebalancing divided out
    model = studio.load_model("litecolor")
    logits = Colorizer(model, size=128).predict(studio.to_gray(photo)).logits.float()
    a, b = decode_median(logits, model.decoder.centers.float(), model.bin_weights.float())[:, 10, 10].tolist()
    assert marked == f"Faithful: median ({a:.0f}, {b:.0f})"


def test_metric_headers_say_which_way_is_better():
    assert studio.metric_header("psnr") == "PSNR ↑"
    assert studio.metric_header("ciede2000") == "ΔE2000 ↓"
    assert "PSNR in dB" in studio.metric_units() and "ImgSim in %" in studio.metric_units()


def test_a_two_head_model_is_a_faithful_and_a_vivid_choice(color_image, monkeypatch, tmp_path: Path):
    assets = Path(__file__).resolve().parents[1] / "assets" / "weights"
    monkeypatch.setenv("COLORCORE_WEIGHTS_DIR", str(assets))  # the real flagship weights
    studio.load_model.cache_clear()
    choices = studio.list_choices()
    faithful = studio.find_choice("litecolor:faithful", choices)
    vivid = studio.find_choice("litecolor:vivid", choices)
    assert (faithful.kind, faithful.decode) == ("median", "faithful")
    assert faithful.label == "litecolor:faithful · median of the 313-bin distribution"
    assert not faithful.is_classifier  # no temperature or top-k knobs
    assert (vivid.kind, vivid.decode) == ("gamut", "vivid")
    assert faithful.entries == vivid.entries  # one weights file, two decodes
    knobs = studio.Knobs(temperature=0.38, size=None)
    assert knobs.decoding(faithful) == {"method": "faithful"}
    assert knobs.decoding(vivid) == {"method": "annealed", "temperature": 0.38}
    assert studio.default_selection(choices) == ["litecolor:faithful", "litecolor:vivid"]
    assert studio.strongest_classifier(choices).key == "litecolor:vivid"
    assert studio.find_choice("litecolor", choices).decode == "faithful"  # a family name: the first decode
    comparison = studio.run_comparison(color_image, ["litecolor:faithful", "litecolor:vivid"], knobs,
                                       choices=choices)
    a, b = (np.asarray(r.image) for r in comparison.results)
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() > 1
    # One weights file, two downloads: neither overwrites the other.
    paths = studio.save_results(comparison, tmp_path / "one", "photo")
    assert [p.name for p in paths] == ["photo_litecolor-faithful.png", "photo_litecolor-vivid.png"]
    for path, image in zip(paths, (a, b), strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), image)
    color_image.save(tmp_path / "photo.png")
    batch = studio.colorize_batch([tmp_path / "photo.png"], ["litecolor:faithful", "litecolor:vivid"], knobs,
                                  tmp_path / "batch", choices=choices)
    assert len({p.name for p in batch}) == 2
