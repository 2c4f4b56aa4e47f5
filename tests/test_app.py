"""app.py without a browser: the studio's upload widget hands files to colorcore.io, not to Gradio."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio.data_classes import ImageData
from hostile import _png_header_only
from PIL import Image

from app import CheckedImage


@pytest.fixture
def widget() -> CheckedImage:
    return CheckedImage(type="pil", image_mode="RGB", format="png")


def test_checked_image_is_drawn_by_the_image_widget(widget):
    assert widget.get_block_name() == "image"


def test_checked_image_opens_uploads_with_colorcore(widget, tmp_path: Path, make_rgb):
    rgb = make_rgb(30, 40)
    gray = tmp_path / "gray.png"
    Image.fromarray(rgb[:, :, 0], "L").save(gray)
    out = widget.preprocess(ImageData(path=str(gray), orig_name="gray.png"))
    assert out.mode == "RGB" and out.size == (40, 30)
    np.testing.assert_array_equal(np.asarray(out)[:, :, 1], rgb[:, :, 0])
    # EXIF orientation 6 (rotate 90 degrees clockwise to display) is applied, as colorcore.io does.
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[274] = 6
    Image.fromarray(rgb).save(rotated, exif=exif, quality=95)
    assert widget.preprocess(ImageData(path=str(rotated), orig_name="rotated.jpg")).size == (30, 40)
    # A pasted image arrives as a data: URL.
    url = "data:image/png;base64," + base64.b64encode(gray.read_bytes()).decode()
    assert widget.preprocess(ImageData(url=url)).size == (40, 30)
    assert widget.preprocess(None) is None


def test_checked_image_refuses_bombs_and_fakes_in_plain_words(widget, tmp_path: Path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(20000, 20000))
    with pytest.raises(gr.Error, match="400 MP, above the 40 MP limit") as info:
        widget.preprocess(ImageData(path=str(bomb), orig_name="bomb.png"))
    assert str(tmp_path) not in str(info.value)  # server folders stay private
    assert info.value.duration is None  # stays until closed: the browser may be slow to draw it
    fake = tmp_path / "page.jpg"
    fake.write_text("<html><body>not a photo</body></html>")
    with pytest.raises(gr.Error, match=r"page.jpg: not a recognised image file \(it is a text/HTML/SVG file"):
        widget.preprocess(ImageData(path=str(fake), orig_name="page.jpg"))


def test_checked_image_waits_for_a_cache_file_being_rewritten(widget, tmp_path: Path, make_rgb):
    # Gradio rewrites a cache file in place when two outputs show the same picture: empty for a moment.
    photo = tmp_path / "image.png"
    photo.write_bytes(b"")
    Image.fromarray(make_rgb(30, 40)).save(tmp_path / "full.png")
    writer = threading.Timer(0.2, lambda: photo.write_bytes((tmp_path / "full.png").read_bytes()))
    writer.start()
    try:
        assert widget.preprocess(ImageData(path=str(photo), orig_name="image.png")).size == (40, 30)
    finally:
        writer.join()
    stays_empty = tmp_path / "empty.png"
    stays_empty.write_bytes(b"")
    with pytest.raises(gr.Error, match="empty"):
        widget.preprocess(ImageData(path=str(stays_empty), orig_name="empty.png"))


def test_without_folders_drops_server_paths_only():
    from app import _without_folders

    assert _without_folders("/tmp/gradio/ab12/photo.jpg: not a recognised image file (it is a text/HTML/SVG "
                            "file)") == "photo.jpg: not a recognised image file (it is a text/HTML/SVG file)"
    assert _without_folders("cannot read '/srv/x/y.png'") == "cannot read 'y.png'"


def test_offline_message_keeps_the_url_and_the_folder_the_user_needs(monkeypatch, tmp_path: Path):
    """Published weights offline: the user must learn what to download and where to put it."""
    import torch

    from app import _user_message
    from colorcore.errors import WeightsError
    from colorcore.weights import available_weights, published_cache_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    entry = next(e for e in available_weights() if e.url is not None)
    dest = published_cache_path(entry)
    assert str(dest).startswith(torch.hub.get_dir())
    exc = WeightsError(f"cannot download the published eccv16 weights (<urlopen error [Errno -3] Temporary "
                       f"failure in name resolution>). If this machine is offline, download {entry.url} "
                       f"elsewhere and place it at {dest}")
    assert _user_message(exc) == (
        "cannot download the published eccv16 weights (urlopen error [Errno -3] Temporary failure in name "
        f"resolution). If this machine is offline, download {entry.url} elsewhere and place it at {dest}")
    # Upload folders still go, also next to a URL.
    assert _user_message(WeightsError("see https://a.b/c/d.pth, not /tmp/gradio/x/y.png")) == (
        "see https://a.b/c/d.pth, not y.png")


def test_api_help_names_the_address_the_page_came_from():
    from app import _api_help, _base_url

    class Request:
        headers = {"host": "10.0.0.5:8123"}

    assert _base_url(Request()) == "http://10.0.0.5:8123/"
    assert _base_url(None) == "http://127.0.0.1:7860/"
    text = _api_help(_base_url(Request()), ["resnet-regression"])
    assert 'Client("http://10.0.0.5:8123/")' in text and '"resnet-regression",' in text
    assert "7860" not in text
