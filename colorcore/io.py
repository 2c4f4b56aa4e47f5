"""Safe image I/O: every source and mode in, an 8-bit RGB or L PIL image out, one exception type.

Rules :func:`load_image` follows (front ends rely on them):

- Sources: a path, raw bytes, a PIL image or a numpy array. The result is always fully decoded and
  detached from any file, in mode ``"RGB"`` or ``"L"``, with the EXIF orientation applied.
- Modes: ``1``/``L``/``I;16*``/``I``/``F`` become ``L``; ``P``/``CMYK``/``YCbCr``/``LAB``/``HSV``/``RGB``
  become ``RGB``. 16-bit data is divided by 257; ``I`` (32-bit) data in [0, 65535] is treated as 16-bit,
  anything else is min-max stretched; ``F`` data is taken as [0, 1] when its maximum is <= 1 (and
  clipped), otherwise min-max stretched.
- Transparency (``LA``, ``PA``, ``RGBA``, ``P`` with a transparent index) is composited on white: a
  colouriser only sees lightness, and white is what a transparent area looks like on a page.
- Animated images (GIF, APNG, WebP, multi-page TIFF) give their first frame.
- A pixel cap (default 40 MP) is checked from the header, before any pixel is decoded. PIL's own
  decompression-bomb guard (``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 MP) still applies first, so a
  ``max_pixels`` above that needs ``PIL.Image.MAX_IMAGE_PIXELS`` raised too.
- Missing, empty, truncated, corrupt, unsupported and oversized inputs all raise
  :class:`~colorcore.errors.ImageLoadError` with the reason, whatever exception the decoder raised
  (hostile files make PIL plugins raise all sorts; ``tests/hostile.py`` feeds it hundreds of them). A file
  that starts like a known format but fails to parse is reported as such ("starts like a PNG file but
  its header is corrupt"), and the pixel cap is checked again after decoding for containers that learn
  their real size only then.
  ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never touched, so truncated files fail instead of silently
  decoding grey.
"""

from __future__ import annotations

import io
import os
import re
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from colorcore.errors import ImageLoadError

DEFAULT_MAX_PIXELS = 40_000_000

# Decoders we trust with user files. Deliberately excludes e.g. EPS (runs Ghostscript), PSD and the
# scientific formats, which a photo colouriser has no use for, and ICO: PIL decodes an icon inside
# Image.open, before any size check, and an icon may hold a PNG of any size (a hidden bomb).
_FORMATS = ("AVIF", "BMP", "DIB", "GIF", "JPEG", "JPEG2000", "PCX", "PNG", "PPM", "QOI", "SGI",
            "TGA", "TIFF", "WEBP")

IMAGE_EXTENSIONS = frozenset({
    ".avif", ".bmp", ".dib", ".gif", ".j2k", ".jfif", ".jp2", ".jpe", ".jpeg", ".jpg", ".jpx",
    ".pbm", ".pcx", ".pgm", ".png", ".pnm", ".ppm", ".qoi", ".rgb", ".sgi", ".tga", ".tif", ".tiff", ".webp",
})

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray


def _allowed_formats() -> list[str]:
    Image.init()  # registers every plugin; cheap after the first call
    return [f for f in _FORMATS if f in Image.OPEN]


def _describe(source: object) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def _check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{what}: image is {width}x{height} = {width * height / 1e6:.0f} MP, above the "
            f"{max_pixels / 1e6:g} MP limit; downscale it first (or raise max_pixels)"
        )


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None
               ) -> Image.Image:
    """Open ``source`` as a decoded 8-bit ``"RGB"`` or ``"L"`` PIL image (see the module docstring).

    Args:
        source: a file path, encoded bytes, a PIL image, or a numpy array ``(H, W)``, ``(H, W, 1)``,
            ``(H, W, 3)`` or ``(H, W, 4)`` of dtype uint8, uint16, bool or float (float taken as [0, 1]).
        max_pixels: refuse images with more than this many pixels (width x height).
        name: what messages call the source (an upload's file name), instead of its path or "<N bytes>".

    Raises:
        ImageLoadError: the source is missing, empty, not an image, truncated, corrupt or too large.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    what = name or _describe(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels, what)
    if isinstance(source, Image.Image):
        _check_pixels(*source.size, max_pixels, what)
        try:
            source.load()
            return _normalise(source, what)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageLoadError(f"{what}: cannot decode the image ({exc})") from exc
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise ImageLoadError(f"{name}: the image data is empty (0 bytes)" if name
                                 else "the image data is empty (0 bytes)")
        return _open(io.BytesIO(bytes(source)), max_pixels, what)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(f"{path}: no such file")
        if not path.is_file():
            raise ImageLoadError(f"{path}: not a file")
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{path}: the file is empty (0 bytes)")
        try:
            with open(path, "rb") as fh:
                return _open(fh, max_pixels, what)
        except PermissionError as exc:
            raise ImageLoadError(f"{path}: cannot read the file ({exc.strerror})") from exc
    raise ImageLoadError(f"cannot load an image from a {type(source).__name__}")


_JPEG_SIGNATURE = b"\xff\xd8\xff"
# Leading bytes of formats, to tell "a corrupt PNG" from "not an image" when PIL identifies nothing.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (_JPEG_SIGNATURE, "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"qoif", "QOI"),
)
_REFUSED = ((b"%PDF", "a PDF document"), (b"%!PS", "a PostScript/EPS file"), (b"8BPS", "a Photoshop file"),
            (b"PK\x03\x04", "a zip archive"), (b"<", "a text/HTML/SVG file"), (b"\x1f\x8b", "a gzip file"),
            (b"\x00\x00\x01\x00", "a Windows icon (ICO files decode while opening, before any size check)"))


def _describe_unidentified(head: bytes) -> str:
    """Why PIL identified nothing: a known format with a corrupt header, a refused kind of file, or none."""
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return f"it starts like a {name} file but its header is corrupt"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it starts like a WebP file but its header is corrupt"
    if head[4:8] == b"ftyp":
        return "it starts like an AVIF/HEIF file but is not a readable AVIF"
    stripped = head.lstrip()
    for magic, name in _REFUSED:
        if stripped.startswith(magic):
            return f"it is {name}"
    return "unknown format"


def _open(fh: io.IOBase, max_pixels: int, what: str) -> Image.Image:
    fmt = "image"
    try:
        head = fh.read(32)
        fh.seek(0)
        # Image.open only parses the header; its own bomb check (PIL.Image.MAX_IMAGE_PIXELS) may fire here.
        with Image.open(fh, formats=_allowed_formats()) as im:
            fmt = f"{im.format} image" if im.format else "image"
            _check_pixels(*im.size, max_pixels, what)
            im.load()  # decode now, inside the try: truncated or corrupt data raises here
            # Some containers learn their real size only while decoding.
            _check_pixels(*im.size, max_pixels, what)
            return _normalise(im, what)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # PIL's own guard (2 x PIL.Image.MAX_IMAGE_PIXELS) fires inside Image.open, before our check.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} MP" if found else "too large"
        raise ImageLoadError(
            f"{what}: image is {size}, above the {max_pixels / 1e6:g} MP limit (PIL refuses it as a possible "
            "decompression bomb); downscale it first"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(
            f"{what}: not a recognised image file ({_describe_unidentified(head)}; supported: "
            f"{', '.join(_allowed_formats())})"
        ) from exc
    except MemoryError as exc:
        raise ImageLoadError(f"{what}: not enough memory to decode this {fmt}") from exc
    # Plugins signal corrupt data with these (struct.error and IndexError leak from headers) and, on
    # hostile input, occasionally with anything else: it is still the file's fault, never a crash.
    except Exception as exc:  # noqa: BLE001
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, OSError | ValueError | SyntaxError | EOFError | IndexError | struct.error):
            reason = f"{type(exc).__name__}: {reason}"
        hint = " (the file is truncated)" if "truncat" in reason.lower() else ""
        raise ImageLoadError(f"{what}: cannot decode the {fmt}{hint}: {reason}") from exc


def _normalise(im: Image.Image, what: str) -> Image.Image:
    """Decoded PIL image of any mode -> detached 8-bit ``RGB``/``L`` image, orientation applied."""
    # Animated files open on their first frame and load() decoded only that one.
    im = _transpose(im)
    mode = im.mode
    if mode in {"RGB", "L"}:
        return im.copy() if _shares_file(im) else im
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I;16"):
        return Image.fromarray(_scale16(np.asarray(im)))
    if mode == "I":
        arr = np.asarray(im)
        if arr.size and arr.min() >= 0 and arr.max() <= 65535:
            return Image.fromarray(_scale16(arr))
        return Image.fromarray(_stretch(arr))
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        finite = arr[np.isfinite(arr)]
        if finite.size == 0 or finite.max() <= 1.0:
            return Image.fromarray(_float_to_u8(arr))
        return Image.fromarray(_stretch(arr))
    if mode in {"LA", "La"}:
        return _on_white(im.convert("LA")).convert("L")
    if mode in {"RGBA", "RGBa", "PA"} or (mode == "P" and "transparency" in im.info):
        return _on_white(im.convert("RGBA")).convert("RGB")
    try:
        return im.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX, ...
    except ValueError as exc:
        raise ImageLoadError(f"{what}: unsupported image mode {mode!r}") from exc


def _shares_file(im: Image.Image) -> bool:
    # A decoded ImageFile still holds its file object; copy so the result outlives the `with`.
    return getattr(im, "fp", None) is not None or hasattr(im, "filename")


def _transpose(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im) or im
    except Exception:  # a corrupt EXIF block must not reject an otherwise good image
        return im


def _on_white(im: Image.Image) -> Image.Image:
    background = Image.new(im.mode, im.size, (255,) * len(im.mode))
    background.alpha_composite(im) if im.mode == "RGBA" else background.paste(im, mask=im.getchannel("A"))
    return background


def _scale16(arr: np.ndarray) -> np.ndarray:
    """uint16-range integers -> uint8 by /257 (65535 -> 255), rounded."""
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _float_to_u8(arr: np.ndarray) -> np.ndarray:
    """Float in [0, 1] (clipped; NaN -> 0) -> uint8."""
    arr = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _stretch(arr: np.ndarray) -> np.ndarray:
    """Min-max stretch of arbitrary-range data to uint8 (a constant image becomes 0)."""
    arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, np.uint8)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return _float_to_u8(scaled)


def _from_array(arr: np.ndarray, max_pixels: int, what: str) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageLoadError(
            f"{what}: expected an array of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"{what}: the array is empty, shape {arr.shape}")
    _check_pixels(arr.shape[1], arr.shape[0], max_pixels, what)
    if arr.dtype == np.uint8:
        u8 = arr
    elif arr.dtype == np.uint16:
        u8 = _scale16(arr)
    elif arr.dtype == np.bool_:
        u8 = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        u8 = _float_to_u8(arr)
    else:
        raise ImageLoadError(f"{what}: unsupported array dtype {arr.dtype}; use uint8, uint16, bool or float")
    u8 = np.ascontiguousarray(u8)
    if u8.ndim == 2:
        return Image.fromarray(u8, "L")
    if u8.shape[2] == 4:
        return _on_white(Image.fromarray(u8, "RGBA")).convert("RGB")
    return Image.fromarray(u8, "RGB")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the replace is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically and durably; returns the path.

    A temporary file beside ``dest`` is written, fsynced and ``os.replace``d over it (then the folder is
    fsynced), so a crash or ``kill -9`` leaves the old file or the new one, never half of one. Missing
    parent folders are created.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600 files; outputs and run folders are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)
    return dest


def atomic_write_text(dest: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 ``text``."""
    return atomic_write_bytes(dest, text.encode())


def _encode(image: Image.Image | np.ndarray, path: str | os.PathLike, fmt: str, **params: Any) -> Path:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image))
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return atomic_write_bytes(path, buf.getvalue())


def save_png(image: Image.Image | np.ndarray, path: str | os.PathLike, compress_level: int = 6) -> Path:
    """Write ``image`` (PIL, or a uint8 array ``(H, W)``/``(H, W, 3)``) as PNG atomically; returns the path.

    ``compress_level`` is zlib's 0-9: 1 encodes a 12 MP photo about 2.5x faster than the default 6 for a
    file about a third larger. The file appears complete or not at all (see :func:`atomic_write_bytes`).
    Missing parent folders are created.
    """
    return _encode(image, path, "PNG", compress_level=compress_level)


def save_jpeg(image: Image.Image | np.ndarray, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write ``image`` as a JPEG atomically, without chroma subsampling (4:4:4); returns the path.

    ``quality`` is 1-95. Written like :func:`save_png`.
    """
    return _encode(image, path, "JPEG", quality=quality, subsampling=0)


def is_jpeg_file(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` starts with the JPEG signature, whatever its name (False: unreadable)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_JPEG_SIGNATURE)) == _JPEG_SIGNATURE
    except OSError:
        return False


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like an image by its extension (hidden files such as ``._x.jpg`` excluded)."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def iter_image_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of image files.

    Folders are walked recursively (symlinked folders are not followed, so loops cannot hang) and only
    files passing :func:`is_image_file` are kept. A file named explicitly is always kept, whatever its
    extension, so that a bad file is reported by the loader rather than skipped silently.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found.update(Path(root) / f for f in files if is_image_file(f))
        elif p.exists():
            found.add(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return sorted(found)


__all__ = [
    "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "ImageSource", "is_image_file", "is_jpeg_file",
    "iter_image_files", "load_image", "save_jpeg", "save_png",
]
