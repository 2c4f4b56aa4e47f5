"""Hostile image files for robustness tests, and a runner that feeds them to the loader and the pipeline.

:func:`make_hostile_cases` writes a deterministic set (about 270 files, under 2 MB, made in a second or
two) into a folder: truncated and byte-flipped JPEG / PNG / GIF / TIFF / WebP files, empty files, 1x1 and
1x20000 images, decompression bombs (headers claiming 20000 x 20000 with a few bytes of zlib data), every
awkward mode (CMYK, 16-bit, palette + transparency, LA, 1-bit, float and 32-bit TIFF), animated GIF /
PNG / WebP, multi-page TIFF, all eight EXIF orientations, huge and corrupt EXIF blocks, and text, HTML,
zip, PDF and SVG files renamed to image extensions. Each case says what must happen: ``"ok"`` (loads, at
the given oriented size), ``"error"`` (a clear :class:`~colorcore.errors.ImageLoadError`) or
``"either"`` (fuzzed files: no crash, and if it loads, the size its header announces).

:func:`make_hostile_files` is the short form other tests (e.g. the Gradio API test) reuse::

    from hostile import make_hostile_files
    paths = make_hostile_files(tmp_path, small=True)  # about 40 representative files

Run as a script, it loads every file with ``colorcore.io.load_image`` and colourises it with
``colorcore.pipeline.Colorizer``, printing one JSON line per file (``{"start": name}`` first, so that a
caller watching the output can tell which file hangs) and finally the peak-RSS growth::

    python tests/hostile.py run FOLDER --model WEIGHTS.safetensors
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import resource
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin

OK, ERROR, EITHER = "ok", "error", "either"
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class HostileCase:
    """One generated file and what the loader must do with it.

    Attributes:
        path: the file.
        expect: ``"ok"``, ``"error"`` or ``"either"``.
        size: ``(width, height)`` after EXIF orientation when ``expect == "ok"``, else None.
        note: what the file is, for failure messages.
    """

    path: Path
    expect: str
    size: tuple[int, int] | None
    note: str


# -------------------------------------------------------------------------------------- raw encoders


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A small ``(H, W, 3)`` uint8 picture with gradients and edges (so encoders produce real data)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([128 + 100 * np.sin(x / 7 + p) * np.cos(y / 5 - p) for p in rng.uniform(0, 6, 3)], -1)
    rgb[height // 3 : height // 2, width // 4 : width // 2] = rng.integers(0, 256, 3)
    return np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)


def _encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_raw(width: int, height: int, *, bit_depth: int = 8, color_type: int = 2, rows: bytes | None = None,
            extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A PNG written by hand: IHDR, optional extra chunks, one zlib IDAT of ``rows`` and IEND.

    ``rows`` defaults to all-zero scanlines (filter byte 0 each), which zlib shrinks about 1000-fold:
    a 7000 x 7000 gray PNG of zeros takes about 50 kB on disk and 49 MB once decoded.
    """
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    if rows is None:
        stride = 1 + (width * channels * bit_depth + 7) // 8
        comp = zlib.compressobj(9)
        line = bytes(stride)
        parts = [comp.compress(line) for _ in range(height)]
        data = b"".join(parts) + comp.flush()
    else:
        data = zlib.compress(rows, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr) + b"".join(_chunk(k, v) for k, v in extra) + _chunk(b"IDAT", data)
    return b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IEND", b"")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` and holds a single byte of compressed data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00"))
            + _chunk(b"IEND", b""))


def _gif_header(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only frame claim ``width x height`` (one LZW code of data)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def _gif_frame_larger_than_screen(width: int, height: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def _icon_holding(png: bytes) -> bytes:
    """A Windows icon whose single 16x16 entry is ``png`` (of any size)."""
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def _bmp_header(width: int, height: int) -> bytes:
    """A 24-bit BMP header claiming ``width x height`` with 16 bytes of pixels."""
    pixels = bytes(16)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    head = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return head + info + pixels


def _jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """A copy of JPEG ``data`` whose SOF marker claims ``width x height``."""
    buf = bytearray(data)
    i = 2
    while i < len(buf) - 9:
        marker, length = buf[i + 1], struct.unpack(">H", buf[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            buf[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(buf)
        i += 2 + length
    raise ValueError("no SOF marker")


def _tiff_header(width: int, height: int) -> bytes:
    """A little-endian baseline TIFF claiming ``width x height`` (8-bit gray, one tiny strip)."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 4)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value) if typ == 4 else \
            struct.pack("<HHIHH", tag, typ, count, value, 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(4)


def _exif(orientation: int | None = None, padding: int = 0) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    if padding:
        exif[0x010E] = "x" * padding  # ImageDescription: a large EXIF block
    return exif


def _looping_exif() -> bytes:
    """EXIF (orientation 3) whose Exif sub-IFD pointer and next-IFD pointer both point back at IFD0."""
    ifd0 = struct.pack("<H", 2) + struct.pack("<HHIHH", EXIF_ORIENTATION, 3, 1, 3, 0) \
        + struct.pack("<HHII", 0x8769, 4, 1, 8) + struct.pack("<I", 8)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd0


def _with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """``jpeg`` with an APP1 segment holding ``payload`` right after the SOI marker."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload + jpeg[2:]


def _flip(data: bytes, seed: int, count: int, skip: int = 0) -> bytes:
    """``data`` with ``count`` random bytes (after the first ``skip``) replaced, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    buf = bytearray(data)
    for pos in rng.integers(skip, len(buf), count):
        buf[pos] = (buf[pos] + int(rng.integers(1, 256))) % 256
    return bytes(buf)


def _oriented(size: tuple[int, int], orientation: int | None) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


# -------------------------------------------------------------------------------------------- cases


def make_hostile_cases(folder: str | os.PathLike, small: bool = False) -> list[HostileCase]:
    """Write the hostile files into ``folder`` (created) and return what each must do.

    ``small=True`` writes a representative subset of about 40 files (every kind once, fewer fuzz
    variants, no large image); the full set has more than 200.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[HostileCase] = []

    def add(name: str, data: bytes | None, expect: str, size: tuple[int, int] | None, note: str) -> None:
        path = folder / name
        if any(c.path.stem == path.stem for c in cases):  # the CLI names its outputs by stem
            raise ValueError(f"two hostile files share the stem {path.stem!r}")
        if data is not None:
            path.write_bytes(data)
        cases.append(HostileCase(path, expect, size, note))

    def good(name: str, im: Image.Image, fmt: str, note: str, size: tuple[int, int] | None = None,
             **kwargs: object) -> bytes:
        data = _encode(im, fmt, **kwargs)
        add(name, data, OK, size or im.size, note)
        return data

    rgb = Image.fromarray(_photo(48, 64))
    gray = rgb.convert("L")
    n_trunc, n_flip = (2, 2) if small else (36, 24)

    # --- valid images in every format and awkward mode ---------------------------------------------
    jpeg = good("ok_baseline.jpg", rgb, "JPEG", "baseline JPEG", quality=90)
    progressive = good("ok_progressive.jpg", rgb, "JPEG", "progressive JPEG", quality=85, progressive=True)
    png = good("ok_rgb.png", rgb, "PNG", "RGB PNG")
    good("ok_gray.jpg", gray, "JPEG", "grayscale JPEG")
    good("ok_cmyk.jpg", rgb.convert("CMYK"), "JPEG", "Adobe CMYK JPEG")
    good("ok_cmyk_tiff.tif", rgb.convert("CMYK"), "TIFF", "CMYK TIFF")
    sixteen = Image.fromarray((np.asarray(gray, np.uint16) * 257).astype(np.uint16))
    good("ok_i16.png", sixteen, "PNG", "16-bit gray PNG (I;16)")
    rows16 = b"".join(b"\x00" + np.full(64 * 3, 40000 + 300 * r, ">u2").tobytes() for r in range(48))
    add("ok_rgb16.png", png_raw(64, 48, bit_depth=16, rows=rows16), OK, (64, 48), "16-bit RGB PNG")
    palette = rgb.quantize(16)
    good("ok_palette_trns.png", palette, "PNG", "palette PNG with a transparent index", transparency=0)
    good("ok_palette_trns_gif.gif", palette, "GIF", "GIF with transparency", transparency=3)
    good("ok_la.png", Image.merge("LA", (gray, gray.point(lambda v: 255 - v))), "PNG", "LA PNG")
    good("ok_rgba.webp", rgb.convert("RGBA"), "WEBP", "lossless WebP with alpha", lossless=True)
    good("ok_palette_alpha.png", palette, "PNG", "palette PNG with per-entry alpha (a PA image on disk)",
         transparency=bytes(range(0, 256, 16)))
    good("ok_bilevel.png", gray.convert("1"), "PNG", "1-bit PNG")
    good("ok_float.tif", Image.fromarray(np.asarray(gray, np.float32) / 255), "TIFF", "float32 TIFF")
    good("ok_int32.tif", Image.fromarray(np.asarray(gray, np.int32) * 1000), "TIFF", "32-bit integer TIFF")
    good("ok_bmp.bmp", rgb, "BMP", "BMP")
    good("ok_one.png", Image.new("RGB", (1, 1), (200, 30, 10)), "PNG", "1x1 PNG")
    good("ok_one_jpeg.jpg", Image.new("L", (1, 1), 77), "JPEG", "1x1 JPEG")
    add("ok_line_wide.png", png_raw(20000, 1, color_type=0), OK, (20000, 1), "20000x1 gray PNG")
    add("ok_line_tall.png", png_raw(1, 20000, color_type=0), OK, (1, 20000), "1x20000 gray PNG")
    frames = [Image.new("RGB", (20, 10), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    good("ok_anim.gif", frames[0], "GIF", "animated GIF", save_all=True, append_images=frames[1:],
         duration=40)
    good("ok_apng.png", frames[0], "PNG", "animated PNG (APNG)", save_all=True, append_images=frames[1:])
    good("ok_anim_webp.webp", frames[0], "WEBP", "animated WebP", save_all=True, append_images=frames[1:])
    good("ok_pages.tif", frames[0], "TIFF", "3-page TIFF", save_all=True, append_images=frames[1:])
    for orientation in range(1, 9):
        size = _oriented(rgb.size, orientation)
        good(f"ok_exif_orient{orientation}.jpg", rgb, "JPEG", f"EXIF orientation {orientation}", size,
             exif=_exif(orientation))
        if small and orientation >= 6:
            break
    good("ok_exif_orient_bad.jpg", rgb, "JPEG", "EXIF orientation 99 (invalid)", exif=_exif(99))
    good("ok_exif_huge.jpg", rgb, "JPEG", "60 kB EXIF block", exif=_exif(6, padding=60000),
         size=_oriented(rgb.size, 6))
    good("ok_exif_huge_png.png", rgb, "PNG", "1 MB eXIf chunk", exif=_exif(padding=1_000_000))
    garbage = bytes(np.random.default_rng(5).integers(0, 256, 200, dtype=np.uint8))
    add("ok_exif_garbage.jpg", _with_app1(jpeg, b"Exif\x00\x00" + garbage), OK, rgb.size,
        "random bytes as EXIF")
    if not small:
        good("ok_tga.tga", rgb, "TGA", "TGA")
        good("ok_ppm.ppm", rgb, "PPM", "PPM")
        good("ok_pgm16.pgm", sixteen, "PPM", "16-bit PGM")
        good("ok_pcx.pcx", rgb, "PCX", "PCX")
        good("ok_sgi.sgi", rgb, "SGI", "SGI")
        good("ok_jp2.jp2", rgb, "JPEG2000", "JPEG 2000")
        good("ok_lzw.tif", rgb, "TIFF", "LZW TIFF", compression="tiff_lzw")
        good("ok_odd.jpg", Image.fromarray(_photo(37, 53, seed=2)), "JPEG", "odd-sized 4:2:0 JPEG")
        good("ok_restart.jpg", rgb, "JPEG", "JPEG with restart markers", restart_marker_blocks=1)
        add("ok_big_gray.png", png_raw(5000, 5000, color_type=0), OK, (5000, 5000),
            "5000x5000 gray PNG (25 MP, under the cap)")
        add("ok_exif_loop.jpg", _with_app1(jpeg, _looping_exif()), OK, rgb.size,
            "EXIF whose sub-IFD and next-IFD pointers loop back to IFD0 (orientation 3)")

    # --- decompression bombs and absurd headers -------------------------------------------------
    add("bomb_png_20000.png", _png_header_only(20000, 20000), ERROR, None, "PNG claiming 20000x20000")
    add("bomb_png_zeros.png", png_raw(7000, 7000, color_type=0), ERROR, None,
        "7000x7000 PNG of zlib'd zeros (49 MP, over the 40 MP cap)")
    add("bomb_gif.gif", _gif_header(65535, 65535), ERROR, None, "GIF claiming 65535x65535")
    add("bomb_bmp.bmp", _bmp_header(30000, 30000), ERROR, None, "BMP claiming 30000x30000")
    add("bomb_jpeg.jpg", _jpeg_with_size(jpeg, 60000, 60000), ERROR, None, "JPEG SOF claiming 60000x60000")
    add("bomb_tiff.tif", _tiff_header(20000, 20000), ERROR, None, "TIFF claiming 20000x20000")
    add("bomb_in_icon.ico", _icon_holding(png_raw(7000, 7000, color_type=0)), ERROR, None,
        "ICO whose 16x16 entry holds a 7000x7000 PNG")
    add("bomb_gif_frame.gif", _gif_frame_larger_than_screen(8000, 8000), ERROR, None,
        "GIF with a 10x10 screen and an 8000x8000 frame")
    add("zero_width.png", _png_header_only(0, 10), ERROR, None, "PNG of width 0")
    add("zero_height.bmp", _bmp_header(10, 0), ERROR, None, "BMP of height 0")

    # --- not images ---------------------------------------------------------------------------------
    for ext in (["jpg", "png"] if small else ["jpg", "png", "gif", "webp", "tif", "bmp"]):
        add(f"empty_{ext}.{ext}", b"", ERROR, None, f"0-byte .{ext}")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        # A fixed timestamp keeps the archive byte-identical between runs.
        zf.writestr(zipfile.ZipInfo("photo.jpg", date_time=(2020, 1, 1, 0, 0, 0)), jpeg)
    not_images = {
        "text.jpg": b"this is not a photo\n" * 20,
        "page.jpg": b"<!doctype html><html><head><title>404</title></head><body>Not found</body></html>",
        "archive.jpg": zipped.getvalue(),
        "document.png": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
        "vector.png": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
        "script.webp": b"#!/bin/sh\necho hello\n",
        "random.jpg": bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
        "zeros.gif": bytes(1024),
        "eps.jpg": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "magic_only.png": b"\x89PNG\r\n\x1a\n",
        "magic_only_jpeg.jpg": b"\xff\xd8\xff",
    }
    for i, (name, data) in enumerate(not_images.items()):
        if not small or i < 5:
            add(f"notimg_{name}", data, ERROR, None, f"not an image: {name}")
    if not small:
        (folder / "folder.jpg").mkdir(exist_ok=True)
        add("folder.jpg", None, ERROR, None, "a folder named like an image")
        if Path("/dev/zero").exists():
            link = folder / "devzero.jpg"
            if not link.is_symlink():
                link.symlink_to("/dev/zero")
            add("devzero.jpg", None, ERROR, None, "symlink to /dev/zero (endless data)")

    # --- truncations and byte flips -------------------------------------------------------------
    gif = _encode(frames[0].resize((64, 48)), "GIF", save_all=True, append_images=frames[1:])
    tiff = _encode(rgb, "TIFF")
    webp = _encode(rgb, "WEBP", quality=80)
    bmp = _encode(rgb, "BMP")
    sources: list[tuple[str, bytes, int, int]] = [  # (kind, data, truncations, flips)
        ("jpeg", jpeg, n_trunc, n_flip), ("progjpeg", progressive, n_trunc // 2, n_flip // 2),
        ("png", png, n_trunc, n_flip), ("gif", gif, n_trunc // 4, n_flip // 4),
        ("tiff", tiff, n_trunc // 4, n_flip // 4), ("webp", webp, n_trunc // 4, n_flip // 4),
        ("bmp", bmp, n_trunc // 4, n_flip // 4),
    ]
    ext = {"jpeg": "jpg", "progjpeg": "jpg", "png": "png", "gif": "gif", "tiff": "tif", "webp": "webp",
           "bmp": "bmp"}
    for s, (kind, data, truncs, flips) in enumerate(sources):
        for i in range(truncs):
            cut = 1 + (len(data) - 2) * (i + 1) // (truncs + 1)  # spread over the file, never whole
            add(f"trunc_{kind}_{i:02d}.{ext[kind]}", data[:cut], EITHER, None,
                f"{kind} truncated to {cut} of {len(data)} bytes")
        for i in range(flips):
            # Flip 1-8 bytes; half the variants spare the first 16 bytes so the header still parses.
            count = 1 + i % 8
            flipped = _flip(data, seed=1000 * s + i, count=count, skip=16 if i % 2 else 0)
            add(f"flip_{kind}_{i:02d}.{ext[kind]}", flipped, EITHER, None,
                f"{kind} with {count} byte(s) changed")
    # PNG with its IHDR checksum broken: PIL may refuse the header or (for some chunks) ignore it.
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside IHDR's CRC
    add("bad_crc.png", bytes(bad_crc), EITHER, None, "PNG with a broken IHDR CRC")
    return cases


def make_hostile_files(folder: str | os.PathLike, small: bool = True) -> list[Path]:
    """Write hostile files into ``folder`` and return their paths (see :func:`make_hostile_cases`)."""
    return [case.path for case in make_hostile_cases(folder, small=small)]


# ------------------------------------------------------------------------------------- video cases


@functools.lru_cache(maxsize=4)
def _panorama(height: int, width: int, seed: int) -> np.ndarray:
    return _photo(height, width + 2 * 64, seed)


def clip_frame(index: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Frame ``index`` of a test clip: :func:`_photo` panned right by 2 px per frame, one corner black."""
    photo = _panorama(height, width, seed)
    x0 = (2 * index) % 128
    rgb = photo[:, x0 : x0 + width].copy()
    rgb[: height // 4, : width // 4] = 0  # a black top-left corner (rotation tests)
    return rgb


def write_clip(path: Path, frames: int = 8, size: tuple[int, int] = (64, 48), *, fps: int = 25,
               codec: str = "libx264", fmt: str | None = None, pts_ms: list[int] | None = None,
               rotation: int | None = None, audio: str | None = None, faststart: bool = False,
               blank: bool = False, seed: int = 0) -> Path:
    """Write a small clip of :func:`clip_frame` frames (``size`` is width x height) with PyAV.

    ``pts_ms`` gives each frame its own timestamp (variable frame rate); ``rotation`` sets the display
    matrix (degrees counter-clockwise, as phones write it); ``audio`` adds one second of a 440 Hz tone in
    that codec ("aac", "pcm_s16le", ...). ``blank`` frames are plain gray (fast to make at 8K).
    """
    import fractions

    import av

    width, height = size
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if pts_ms is not None:
            video.codec_context.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = out.add_stream(audio, rate=8000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i in range(frames):
            rgb = np.full((height, width, 3), 128, np.uint8) if blank else clip_frame(i, height, width, seed)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], fractions.Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if sound is not None:
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)[None]
            samples = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            samples.sample_rate, samples.pts = 8000, 0
            out.mux(sound.encode(samples))
            out.mux(sound.encode())
    return path


def make_hostile_videos(folder: str | os.PathLike) -> list[HostileCase]:
    """Hostile and awkward video files; ``size`` is the output's (width, height) when ``expect == "ok"``.

    Not a video (text, a JPEG, random bytes, an empty file), truncated MP4s (index at the end: unreadable;
    index first: the readable part), audio only, a video stream with 0 frames, 8K frames, variable frame
    rate, a clip over a frame cap of 50 (``LONG_CLIP_CAP``), a phone video tagged to turn 90 degrees, an odd
    frame size, and PCM audio that MP4 cannot hold.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[HostileCase] = []

    def add(name: str, expect: str, size: tuple[int, int] | None, note: str) -> Path:
        cases.append(HostileCase(folder / name, expect, size, note))
        return folder / name

    add("v_text.mp4", ERROR, None, "a text file named .mp4").write_text("hello\n" * 40)
    add("v_photo.mp4", ERROR, None, "a JPEG photo named .mp4").write_bytes(
        _encode(Image.fromarray(_photo(48, 64)), "JPEG"))
    add("v_random.mkv", ERROR, None, "random bytes").write_bytes(
        bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)))
    add("v_empty.mp4", ERROR, None, "an empty file").write_bytes(b"")
    whole = write_clip(folder / "whole.tmp.mp4", frames=12, audio="aac")
    data = whole.read_bytes()
    whole.unlink()
    add("v_truncated.mp4", ERROR, None, "MP4 cut in half, index (moov) at the end").write_bytes(
        data[: len(data) // 2])
    first = write_clip(folder / "first.tmp.mp4", frames=48, faststart=True)
    data = first.read_bytes()
    first.unlink()
    add("v_truncated_faststart.mp4", OK, (64, 48), "48-frame MP4, index first, cut at 75 %").write_bytes(
        data[: len(data) * 3 // 4])
    audio_only = add("v_audio_only.m4a", ERROR, None, "AAC audio, no video stream")
    _audio_only(audio_only)
    write_clip(add("v_zero_frames.mkv", ERROR, None, "a video stream with 0 frames (and audio)"), frames=0,
               codec="mpeg4", audio="aac")
    write_clip(add("v_8k.mkv", ERROR, None, "one 7680x4320 MJPEG frame"), frames=1, size=(7680, 4320),
               codec="mjpeg", blank=True)
    write_clip(add("v_vfr.mp4", OK, (64, 48), "variable frame rate"), frames=6,
               pts_ms=[0, 40, 50, 120, 300, 310])
    write_clip(add("v_long.mp4", ERROR, None, f"{LONG_CLIP_CAP + 10} frames, over a cap of {LONG_CLIP_CAP}"),
               frames=LONG_CLIP_CAP + 10, size=(16, 16), fps=100)
    write_clip(add("v_rotated.mp4", OK, (48, 64), "phone video: 64x48 stored, rotate 90 degrees clockwise"),
               frames=4, rotation=-90)
    write_clip(add("v_odd.mkv", OK, (63, 47), "odd frame size (4:4:4 out)"), frames=3, size=(63, 47),
               codec="mpeg4")
    write_clip(add("v_pcm.mov", OK, (64, 48), "PCM audio, which MP4 cannot hold"), frames=4,
               audio="pcm_s16le")
    return cases


LONG_CLIP_CAP = 50


def _audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=8000)
        sound.layout = "mono"
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.float32), format="flt", layout="mono")
        samples.sample_rate, samples.pts = 8000, 0
        out.mux(sound.encode(samples))
        out.mux(sound.encode())


def header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` a file's header announces, after its EXIF orientation; None if unreadable."""
    try:
        with Image.open(path) as im:
            size = im.size
            try:
                orientation = im.getexif().get(EXIF_ORIENTATION)
            except Exception:  # noqa: BLE001 - corrupt EXIF is ignored by the loader too
                orientation = None
    except Exception:  # noqa: BLE001 - anything PIL refuses has no announced size
        return None
    return _oriented(size, orientation if orientation in range(1, 9) else None)


# ------------------------------------------------------------------------------------------ the runner


def _attempt(fn: Callable[[], Image.Image | np.ndarray]) -> dict[str, object]:
    """Run ``fn``: outcome ``ok`` (with the size), ``error`` (ColorcoreError) or ``crash`` (anything else)."""
    from colorcore.errors import ColorcoreError

    t0 = time.perf_counter()
    try:
        out = fn()
    except ColorcoreError as exc:
        return {"outcome": "error", "message": str(exc), "type": type(exc).__name__,
                "seconds": time.perf_counter() - t0}
    except BaseException as exc:  # noqa: BLE001 - recorded, the caller fails the test with it
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"outcome": "crash", "message": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__,
                "seconds": time.perf_counter() - t0}
    size = out.size if isinstance(out, Image.Image) else (out.shape[1], out.shape[0])
    return {"outcome": "ok", "size": list(size), "seconds": time.perf_counter() - t0}


def run(folder: Path, model: str) -> None:
    """Load and colourise every file in ``folder`` (sorted), one JSON line each, then the RSS growth."""
    import torch

    from colorcore.io import load_image
    from colorcore.pipeline import Colorizer

    torch.set_num_threads(1)
    colorizer = Colorizer(model, size=None)
    TiffImagePlugin.READ_LIBTIFF = False  # the default; stated because the hostile TIFFs test this decoder
    start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        print(json.dumps({"start": path.name}), flush=True)
        record = {"name": path.name, "load": _attempt(lambda p=path: load_image(p)),
                  "pipeline": _attempt(lambda p=path: colorizer.predict(p).rgb)}
        print(json.dumps(record), flush=True)
    end_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_growth_mb": (end_kb - start_kb) / 1024, "peak_rss_mb": end_kb / 1024}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hostile image files: make them, or run them")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make", help="write the hostile files into FOLDER")
    p.add_argument("folder", type=Path)
    p.add_argument("--small", action="store_true")
    p = sub.add_parser("run", help="load and colourise every file in FOLDER")
    p.add_argument("folder", type=Path)
    p.add_argument("--model", required=True, help="model or weights name, or a weights file")
    args = parser.parse_args(argv)
    if args.command == "make":
        cases = make_hostile_cases(args.folder, small=args.small)
        print(f"wrote {len(cases)} files into {args.folder}")
    else:
        run(args.folder, args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
