"""colorcore.io: every mode and source, EXIF, broken files, the pixel cap, saving and folder walks."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorcore.errors import ImageLoadError
from colorcore.io import is_image_file, is_jpeg_file, iter_image_files, load_image, save_jpeg, save_png


def _encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- modes ------------------------------------------------------------------------------------------


def test_rgb_and_l_pass_through(tmp_path: Path, make_rgb: Callable[..., np.ndarray]) -> None:
    rgb = make_rgb(9, 14)
    out = load_image(_write(tmp_path / "x.png", _encode(Image.fromarray(rgb), "PNG")))
    assert out.mode == "RGB" and out.size == (14, 9)
    np.testing.assert_array_equal(np.asarray(out), rgb)
    gray = load_image(Image.fromarray(rgb[:, :, 0], "L"))
    assert gray.mode == "L"
    np.testing.assert_array_equal(np.asarray(gray), rgb[:, :, 0])


def test_bilevel_becomes_l() -> None:
    im = Image.fromarray(np.array([[0, 1], [1, 0]], bool))
    assert im.mode == "1"
    out = load_image(_encode(im, "PNG"))
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out), [[0, 255], [255, 0]])


def test_la_is_composited_on_white() -> None:
    im = Image.new("LA", (3, 1))
    im.putdata([(100, 255), (100, 0), (100, 128)])
    out = load_image(_encode(im, "PNG"))
    assert out.mode == "L"
    v = np.asarray(out)[0]
    assert v[0] == 100 and v[1] == 255
    assert abs(int(v[2]) - round(100 * 128 / 255 + 255 * 127 / 255)) <= 1


def test_rgba_is_composited_on_white() -> None:
    arr = np.zeros((2, 2, 4), np.uint8)
    arr[..., 0] = 200
    arr[0, 0, 3] = 255  # opaque red
    arr[0, 1, 3] = 0  # fully transparent -> white
    out = load_image(_encode(Image.fromarray(arr, "RGBA"), "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (200, 0, 0)
    assert out.getpixel((1, 0)) == (255, 255, 255)


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (4, 1))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (3 * 253))
    im.putdata([0, 1, 2, 0])
    path = tmp_path / "p.png"
    im.save(path, transparency=0)
    reopened = Image.open(path)
    assert reopened.mode == "P" and "transparency" in reopened.info
    out = load_image(path)
    assert out.mode == "RGB"
    assert [out.getpixel((x, 0)) for x in range(4)] == [(255,) * 3, (255, 0, 0), (0, 0, 255), (255,) * 3]


def test_palette_and_pa_modes() -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([10, 20, 30, 40, 50, 60] + [0] * (3 * 254))
    im.putdata([0, 1])
    out = load_image(im)
    assert out.mode == "RGB" and out.getpixel((1, 0)) == (40, 50, 60)
    pa = im.convert("PA")
    assert pa.mode == "PA"
    assert load_image(pa).getpixel((0, 0)) == (10, 20, 30)


def test_cmyk(tmp_path: Path) -> None:
    im = Image.new("CMYK", (5, 4), (0, 255, 255, 0))  # pure red
    path = tmp_path / "c.tif"
    im.save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.getpixel((2, 2)) == (255, 0, 0)
    jpeg = load_image(_encode(im, "JPEG", quality=95))  # Adobe CMYK JPEG
    r, g, b = jpeg.getpixel((2, 2))
    assert r > 200 and g < 50 and b < 50


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    arr = np.array([[0, 257, 32896, 65535]], np.uint16)
    im = Image.fromarray(arr)
    assert im.mode.startswith("I;16")
    data = _encode(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = load_image(data)
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out)[0], [0, 1, 128, 255])


def test_int32_mode() -> None:
    im = Image.fromarray(np.array([[0, 65535]], np.int32))
    assert im.mode == "I"
    np.testing.assert_array_equal(np.asarray(load_image(im))[0], [0, 255])
    wide = Image.fromarray(np.array([[-1000, 0, 1000]], np.int32))  # not 16-bit data: stretched
    np.testing.assert_array_equal(np.asarray(load_image(wide))[0], [0, 128, 255])


def test_float_mode(tmp_path: Path) -> None:
    im = Image.fromarray(np.array([[0.0, 0.5, 1.0, -0.2]], np.float32))
    assert im.mode == "F"
    path = tmp_path / "f.tif"
    im.save(path)
    out = load_image(path)
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out)[0], [0, 128, 255, 0])
    hdr = Image.fromarray(np.array([[0.0, 500.0, 1000.0]], np.float32))
    np.testing.assert_array_equal(np.asarray(load_image(hdr))[0], [0, 128, 255])


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (8, 6)
    r, g, b = out.getpixel((4, 3))
    assert r > 200 and g < 50 and b < 50


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # stored: left half red, right half blue
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    out = load_image(path)
    assert out.size == (20, 40)  # width and height swapped
    top, bottom = out.getpixel((10, 3)), out.getpixel((10, 36))
    assert top[0] > 200 and top[2] < 60, "the stored left edge must end up on top"
    assert bottom[2] > 200 and bottom[0] < 60
    assert load_image(Image.open(path)).size == (20, 40)  # also for an opened PIL image


# -- numpy ------------------------------------------------------------------------------------------


def test_numpy_inputs() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = load_image(gray)
    assert out.mode == "L" and out.size == (4, 3)
    np.testing.assert_array_equal(np.asarray(out), gray)
    assert load_image(gray[:, :, None]).mode == "L"

    rgb16 = np.full((2, 3, 3), 65535, np.uint16)
    rgb16[0, 0] = (0, 32896, 65535)
    out = load_image(rgb16)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (0, 128, 255)

    rgba = np.ones((2, 2, 4), np.float32)
    rgba[0, 0] = (0.0, 0.0, 0.0, 0.0)  # transparent -> white
    rgba[1, 1] = (2.0, -1.0, 0.5, 1.0)  # floats are clipped to [0, 1]
    out = load_image(rgba)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (255, 0, 128)

    assert np.asarray(load_image(np.array([[np.nan, 0.25]]))).tolist() == [[0, 64]]
    assert np.asarray(load_image(np.array([[True, False]]))).tolist() == [[255, 0]]


@pytest.mark.parametrize("arr", [
    np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3, 1), np.uint8), np.zeros((0, 5), np.uint8),
    np.zeros((2, 2), np.int64), np.zeros(5, np.uint8),
])
def test_bad_numpy_inputs(arr: np.ndarray) -> None:
    with pytest.raises(ImageLoadError):
        load_image(arr)


# -- broken inputs ----------------------------------------------------------------------------------


def test_missing_empty_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="0 bytes"):
        load_image(_write(tmp_path / "empty.jpg", b""))
    with pytest.raises(ImageLoadError, match="0 bytes"):
        load_image(b"")
    with pytest.raises(ImageLoadError, match="not a file"):
        load_image(tmp_path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files(tmp_path: Path, fmt: str, make_rgb: Callable[..., np.ndarray]) -> None:
    data = _encode(Image.fromarray(make_rgb(64, 64)), fmt)
    path = _write(tmp_path / f"cut.{fmt.lower()}", data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(path)
    with pytest.raises(ImageLoadError):
        load_image(data[:40])


def test_non_images_renamed_jpg(tmp_path: Path) -> None:
    text = _write(tmp_path / "notes.jpg", b"just some text, not a photo\n" * 10)
    html = _write(tmp_path / "page.jpg", b"<!doctype html><html><body>404</body></html>")
    archive = tmp_path / "archive.jpg"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "hello")
    for path in (text, html, archive):
        with pytest.raises(ImageLoadError, match="not a recognised image"):
            load_image(path)


def test_corrupt_jpeg_body(tmp_path: Path, make_rgb: Callable[..., np.ndarray]) -> None:
    data = bytearray(_encode(Image.fromarray(make_rgb(32, 32)), "JPEG"))
    data[200:-2] = b"\x00" * (len(data) - 202)  # keep the header, destroy the entropy-coded data
    path = _write(tmp_path / "garbage.jpg", bytes(data))
    try:
        out = load_image(path)  # libjpeg may decode zeros into a valid (if odd) picture ...
        assert out.size == (32, 32)
    except ImageLoadError:  # ... or refuse it; both are fine, anything else is not
        pass


def test_refused_formats(tmp_path: Path) -> None:
    eps = _write(tmp_path / "x.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    with pytest.raises(ImageLoadError, match="not a recognised image"):
        load_image(eps)  # EPS would run Ghostscript: never opened


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but that holds no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


def test_pixel_cap_is_checked_before_decoding(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.png", _png_header_only(6000, 5000))  # 30 MP claimed, no data
    with pytest.raises(ImageLoadError, match=r"6000x5000 = 30 MP, above the 20 MP limit"):
        load_image(path, max_pixels=20_000_000)
    with pytest.raises(ImageLoadError, match="truncated|cannot decode"):
        load_image(path)  # under the default cap it is decoded and fails for lack of data


def test_small_pixel_cap(make_rgb: Callable[..., np.ndarray]) -> None:
    data = _encode(Image.fromarray(make_rgb(100, 100)), "PNG")
    with pytest.raises(ImageLoadError, match="100x100"):
        load_image(data, max_pixels=5000)
    assert load_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(np.zeros((100, 100), np.uint8), max_pixels=5000)
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(Image.new("RGB", (100, 100)), max_pixels=5000)


def test_decompression_bomb_is_one_clear_error() -> None:
    with pytest.raises(ImageLoadError, match=r"400 MP, above the 40 MP limit"):
        load_image(_png_header_only(20_000, 20_000))


# -- saving and walking -----------------------------------------------------------------------------


def test_save_png_is_atomic_and_round_trips(tmp_path: Path, make_rgb: Callable[..., np.ndarray]) -> None:
    rgb = make_rgb(7, 5)
    path = save_png(Image.fromarray(rgb), tmp_path / "sub" / "out.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)
    save_png(rgb[:, :, 0], path)  # overwrite with a gray array
    assert Image.open(path).mode == "L"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]  # no temporary left behind


def test_save_png_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises((OSError, ValueError, TypeError)):
        save_png(np.zeros((2, 2, 5), np.uint8), tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def test_save_jpeg_is_444_and_sniffed(tmp_path: Path, make_rgb: Callable[..., np.ndarray]) -> None:
    rgb = make_rgb(32, 48)
    path = save_jpeg(rgb, tmp_path / "out.jpg")
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (48, 32)
        assert [f[1:3] for f in im.layer] == [(1, 1)] * 3  # 4:4:4: no channel subsampled
        assert max(im.quantization[0]) <= 12  # quality 95 (quality 75 goes up to 61)
        assert np.abs(np.asarray(im, int) - rgb).mean() < 3.5
    assert is_jpeg_file(path)
    png = save_png(rgb, tmp_path / "fast.png", compress_level=1)
    np.testing.assert_array_equal(np.asarray(Image.open(png)), rgb)
    assert not is_jpeg_file(png) and not is_jpeg_file(tmp_path / "missing.jpg")
    (tmp_path / "renamed.png").write_bytes(path.read_bytes())
    assert is_jpeg_file(tmp_path / "renamed.png")  # by content, not by name


def test_is_image_file() -> None:
    assert is_image_file("a/b/photo.JPG") and is_image_file(Path("x.tiff")) and is_image_file("y.webp")
    assert not is_image_file("notes.txt") and not is_image_file("._photo.jpg") and not is_image_file("jpg")


def test_iter_image_files(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / ".hidden").mkdir()
    for name in ["d/b.png", "d/a.jpg", "d/sub/c.webp", "d/readme.txt", "d/.hidden/e.png", "odd.dat"]:
        (tmp_path / name).write_bytes(b"x")
    found = iter_image_files([tmp_path / "d", tmp_path / "odd.dat", tmp_path / "d" / "a.jpg"])
    rel = [p.relative_to(tmp_path).as_posix() for p in found]
    assert rel == ["d/a.jpg", "d/b.png", "d/sub/c.webp", "odd.dat"]  # explicit files kept, duplicates gone
    assert iter_image_files(tmp_path / "d" / "sub") == [tmp_path / "d" / "sub" / "c.webp"]
    with pytest.raises(FileNotFoundError, match="missing"):
        iter_image_files([tmp_path / "missing"])


def test_messages_name_an_upload_by_its_file_name():
    with pytest.raises(ImageLoadError, match=r"^notes\.png: ") as not_image:
        load_image(b"hello, not an image", name="notes.png")
    assert "bytes>" not in str(not_image.value)
    with pytest.raises(ImageLoadError, match=r"^empty\.jpg: the image data is empty \(0 bytes\)$"):
        load_image(b"", name="empty.jpg")
    with pytest.raises(ImageLoadError, match=r"^<19 bytes>: "):
        load_image(b"hello, not an image")
