"""The studio's `colorize` HTTP API, called with gradio_client against a real server on a free port."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from browser_util import free_port, make_tiny_weights, serve_gradio
from PIL import Image

from colorcore.io import is_jpeg_file
from colorcore.studio import to_gray

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    weights = tmp_path_factory.mktemp("api-weights")
    make_tiny_weights(weights)
    with serve_gradio(free_port(), weights) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str, tmp_path_factory: pytest.TempPathFactory):
    c = gradio_client.Client(server, verbose=False, analytics_enabled=False,
                             download_files=str(tmp_path_factory.mktemp("downloads")))
    yield c
    c.close()


def test_colorize_returns_the_original_resolution(client, tmp_path: Path, make_rgb):
    src = tmp_path / "odd.png"
    Image.fromarray(make_rgb(97, 151, seed=5), "RGB").save(src)  # 151 x 97, not a multiple of any stride
    for model, temperature, top_k in (("eccv16-tiny", 0.38, 0), ("unet-palette-16", 0.38, 2),
                                      ("baseline-tiny", 0.38, 0)):
        out = client.predict(gradio_client.handle_file(str(src)), model, temperature, top_k, 128,
                             api_name="/colorize")
        with Image.open(out) as im:
            assert im.size == (151, 97), model
            assert im.format == "PNG"
            arr = np.asarray(im.convert("RGB"))
        # The output keeps the photo's lightness (up to sRGB clipping of out-of-gamut colours).
        gray_in = np.asarray(to_gray(Image.open(src)), int)
        assert np.abs(np.asarray(to_gray(Image.fromarray(arr)), int) - gray_in).mean() < 1


def test_colorize_takes_a_family_name_as_the_cli_does(client, tmp_path: Path, make_rgb):
    src = tmp_path / "fam.png"
    Image.fromarray(make_rgb(40, 56, seed=7), "RGB").save(src)
    image = gradio_client.handle_file(str(src))
    by_family = client.predict(image, "eccv16", 0.0, 0, 128, api_name="/colorize")
    by_weights = client.predict(image, "eccv16-tiny", 0.0, 0, 128, api_name="/colorize")
    np.testing.assert_array_equal(np.asarray(Image.open(by_family)), np.asarray(Image.open(by_weights)))


def test_colorize_reports_user_errors_in_plain_words(client, tmp_path: Path, make_rgb):
    src = tmp_path / "p.png"
    Image.fromarray(make_rgb(40, 40), "RGB").save(src)
    from gradio_client.exceptions import AppError

    image = gradio_client.handle_file(str(src))
    with pytest.raises(AppError, match="unknown model 'no-such-model'"):
        client.predict(image, "no-such-model", 0.38, 0, 128, api_name="/colorize")
    with pytest.raises(AppError, match="processing size must be"):
        client.predict(image, "baseline-tiny", 0.38, 0, 4000, api_name="/colorize")


def test_only_the_colorize_endpoint_is_public(client):
    info = client.view_api(print_info=False, return_format="dict")
    names = set(info["named_endpoints"])
    assert "/colorize" in names
    params = [p["label"] for p in info["named_endpoints"]["/colorize"]["parameters"]]
    assert params == ["image", "model", "temperature", "top_k", "size", "output_format"]


def test_output_format_follows_the_upload_or_the_request(client, tmp_path: Path, make_rgb):
    from gradio_client.exceptions import AppError

    rgb = make_rgb(60, 80, seed=2)
    src = tmp_path / "photo.jpg"
    Image.fromarray(rgb, "RGB").save(src, quality=92)
    image = gradio_client.handle_file(str(src))
    for fmt, expected in (("auto", "JPEG"), ("png", "PNG"), ("jpeg", "JPEG")):
        out = client.predict(image, "baseline-tiny", 0.38, 0, 128, fmt, api_name="/colorize")
        with Image.open(out) as im:
            assert (im.format, im.size) == (expected, (80, 60)), fmt
    out = client.predict(image, "baseline-tiny", 0.38, 0, 128, api_name="/colorize")  # optional argument
    assert Image.open(out).format == "JPEG"
    with pytest.raises(AppError, match="'tiff'.*auto.*jpeg.*png"):  # Gradio checks the choice itself
        client.predict(image, "baseline-tiny", 0.38, 0, 128, "tiff", api_name="/colorize")


def test_hostile_files_through_the_api(client, tmp_path: Path, make_rgb):
    """Every hostile file gives a colourised PNG or a specific error, and the server keeps serving."""
    from gradio_client.exceptions import AppError
    from hostile import make_hostile_files

    files = make_hostile_files(tmp_path / "hostile", small=True)
    assert len(files) >= 50
    outcomes = {"ok": 0, "error": 0}
    for path in files:
        try:
            out = client.predict(gradio_client.handle_file(str(path)), "baseline-tiny", 0.38, 0, 128,
                                 api_name="/colorize")
        except AppError as exc:
            message = str(exc)
            # A plain-words reason, not Gradio's bare "Error" or a Python exception dump.
            assert len(message) > 15 and "Traceback" not in message, (path.name, message)
            assert "/tmp/" not in message, message  # server folders stay private
            outcomes["error"] += 1
        else:
            with Image.open(out) as im:  # auto: a JPEG answers a JPEG, a PNG anything else
                assert im.format == ("JPEG" if is_jpeg_file(path) else "PNG"), path.name
                assert min(im.size) >= 1, path.name
            outcomes["ok"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0, outcomes
    good = tmp_path / "good.png"
    Image.fromarray(make_rgb(32, 48), "RGB").save(good)
    out = client.predict(gradio_client.handle_file(str(good)), "baseline-tiny", 0.38, 0, 128,
                         api_name="/colorize")
    assert Image.open(out).size == (48, 32)
