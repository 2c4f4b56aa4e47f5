"""Image in, full-resolution colour image out: the one place that resizes, converts and merges.

How :class:`Colorizer` turns an image of any size into a colour image of the same size:

1. :func:`colorcore.io.load_image` opens it (any mode, EXIF orientation applied, pixel cap).
2. It becomes an 8-bit gray image ``gray``: a gray input is used as is; a colour input keeps only its
   CIE L (``colorcore.color.rgb_to_lab``), rounded to the nearest of the 256 gray levels. Rounding costs
   at most 0.26 L units (half the widest gap between two gray levels) and makes "colour photo" and "its
   gray version" give identical results.
3. Full-resolution ``L = LUT[gray]`` (the exact ``rgb_to_lab`` L of each gray level) is resized with
   antialiasing to the square working size (Zhang et al. resize to 256 x 256 the same way).
4. The model predicts ab at the working size (``model.predict_ab`` under ``torch.inference_mode``).
5. ab is upsampled bilinearly to the original H x W, merged with the full-resolution L and turned into
   8-bit sRGB, in float32 bands, so that a 12 MP photo needs little memory beyond its own buffers (gray
   and the output). Nothing at full resolution is float64 and nothing full-size is copied twice.

``fast=True`` (the default) runs the same steps faster, within rounding of the plain path (see
:mod:`colorcore.fast`): the model is replaced by an optimised copy (BatchNorm folded, Winograd 3x3
convolutions on CPU, channels_last on CUDA, bf16 only on CPUs with native bf16 and only where the quality
check holds), and on the CPU step 2 and step 5 use table-driven kernels (:func:`colorcore.fast.rgb_to_gray`,
:func:`colorcore.fast.merge_gray_ab`) in cache-sized bands instead of the general Lab conversions: the
gray level fixes L, f(Y) and Y, so only a and b are per-pixel work. ``fast=False`` keeps the plain path,
the reference the fast one is tested against.

A :class:`Colorizer` keeps no per-call state (the model is only read), so one instance may serve
several threads.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from colorcore.color import lab_to_rgb, rgb_to_lab
from colorcore.errors import ConfigError
from colorcore.fast import FastReport, cached_optimize, merge_gray_ab, rgb_to_gray
from colorcore.io import DEFAULT_MAX_PIXELS, ImageSource, load_image
from colorcore.models.litecolor import check_faithful

MIN_SIZE, MAX_SIZE = 32, 2048
# faithful (the 313-bin median) and regression (the L1 head): litecolor only
DECODE_METHODS = ("annealed", "mode", "top_k", "faithful", "regression")
_BAND_PIXELS = 1 << 20  # pixels per full-resolution conversion band (bounds temporary memory)
_FAST_BAND_PIXELS = 1 << 16  # the fast CPU kernels' bands: their scratch buffers stay in the L2 cache
_CHECK_SIZE = 64  # side of the input on which an optimised model is checked against the original


@dataclass(frozen=True, eq=False)
class Hints:
    """User colour hints at the image's original resolution.

    Attributes:
        ab: ``(H, W, 2)`` float32 physical ab (only meaningful where ``mask`` is set).
        mask: ``(H, W)`` bool, True at hinted pixels.
    """

    ab: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        ab, mask = np.asarray(self.ab), np.asarray(self.mask)
        if ab.ndim != 3 or ab.shape[2] != 2:
            raise ConfigError(f"hint ab must have shape (H, W, 2), got {ab.shape}")
        if mask.shape != ab.shape[:2]:
            raise ConfigError(f"hint mask shape {mask.shape} does not match hint ab shape {ab.shape[:2]}")
        object.__setattr__(self, "ab", ab.astype(np.float32, copy=False))
        object.__setattr__(self, "mask", mask.astype(bool, copy=False))

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the image the hints belong to."""
        return self.mask.shape  # type: ignore[return-value]

    @classmethod
    def from_rgba(cls, layer: np.ndarray | Image.Image) -> Hints:
        """Hints from a painted stroke layer: pixels with alpha > 0 are hints with their RGB's ab.

        Args:
            layer: ``(H, W, 4)`` uint8 RGBA array (or a PIL image, converted to RGBA).
        """
        if isinstance(layer, Image.Image):
            layer = np.asarray(layer.convert("RGBA"))
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4 or layer.dtype != np.uint8:
            raise ConfigError(
                f"a hint layer must be an (H, W, 4) uint8 RGBA array, got {layer.shape} {layer.dtype}"
            )
        mask = layer[:, :, 3] > 0
        ab = np.zeros((*mask.shape, 2), np.float32)
        if mask.any():
            rgb = torch.from_numpy(layer[mask][:, :3].T.copy()).float().div_(255)  # (3, N)
            ab[mask] = rgb_to_lab(rgb[:, :, None])[1:, :, 0].T.numpy()
        return cls(ab, mask)


@dataclass(frozen=True, eq=False)
class ColorizeResult:
    """Everything one colourisation produced.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 colour image at the original resolution.
        gray: ``(H, W)`` uint8 gray input the model saw (its L is the output's L).
        ab_small: ``(2, S, S)`` float32 CPU tensor, predicted physical ab at the working size S.
        logits: ``(Q, h, w)`` float32 CPU tensor of class logits as the model emitted them for the
            working-size input (classification models only), else None.
        elapsed: seconds spent, from loading to the merged result (a batch shares its time equally).
    """

    rgb: np.ndarray
    gray: np.ndarray
    ab_small: Tensor
    logits: Tensor | None
    elapsed: float

    @property
    def image(self) -> Image.Image:
        """The colour result as an RGB PIL image."""
        return Image.fromarray(self.rgb, "RGB")


@dataclass(frozen=True, eq=False)
class _Prepared:
    gray: np.ndarray  # (H, W) uint8; full-resolution L is recomputed from it band by band (4x smaller)
    l_small: Tensor  # (1, S, S)
    hints_ab: Tensor | None  # (2, S, S)
    hints_mask: Tensor | None  # (1, S, S)


def _gray_lut(device: torch.device) -> Tensor:
    """L in [0, 100] of each 8-bit gray level, computed by ``rgb_to_lab`` itself: ``(256,)`` float32."""
    ramp = torch.arange(256, dtype=torch.float32, device=device).div_(255).expand(3, 1, 256)
    return rgb_to_lab(ramp)[0, 0].contiguous()


def _bands(height: int, width: int) -> list[slice]:
    """Row slices of about ``_BAND_PIXELS`` pixels covering ``height`` rows."""
    step = max(1, _BAND_PIXELS // max(width, 1))
    return [slice(r0, min(height, r0 + step)) for r0 in range(0, height, step)]


class Colorizer:
    """Colourises images of any size with one model at a fixed square working size.

    Args:
        model: a model (``nn.Module`` with ``predict_ab``), a model or weights name (loaded with
            ``colorcore.create_model(name, pretrained=True)``), or a path to a weights file. A module
            passed in is moved to ``device`` and put in eval mode.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        size: working size in pixels, in [32, 2048], rounded to a multiple of the model's stride;
            None means the size the weights were trained at (``model.weights_entry.input_size``), else
            ``model.default_size``.
        max_pixels: the pixel cap passed to :func:`colorcore.io.load_image`.
        fast: use the fast path (module docstring); results match the plain path within rounding
            (mean |delta RGB| well under 1 of 255). ``fast_report`` says what was optimised.
    """

    def __init__(
        self,
        model: nn.Module | str | Path,
        device: str | torch.device = "cpu",
        size: int | None = 256,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        fast: bool = True,
    ) -> None:
        self.device = _resolve_device(device)
        name = str(model) if isinstance(model, str | Path) else None
        if isinstance(model, str | Path):
            model = _load_model(model)
        if not isinstance(model, nn.Module) or not hasattr(model, "predict_ab_and_logits"):
            raise ConfigError(f"Colorizer needs a colorcore model (a ColorModel nn.Module), got {model!r}")
        entry = getattr(model, "weights_entry", None)
        self.name = name or (entry.name if entry is not None else type(model).__name__)
        self.model = model.to(self.device).eval()
        self.stride = int(getattr(model, "stride", 1))
        if size is None:
            size = entry.input_size if entry is not None else int(getattr(model, "default_size", 256))
        self.size = _check_size(size, self.stride)
        self.max_pixels = max_pixels
        self.supports_hints = bool(getattr(model, "supports_hints", False))
        self._dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        self._lut = _gray_lut(self.device)
        self._boundaries = (self._lut[1:] + self._lut[:-1]) / 2  # nearest gray level of an L value
        self.fast = bool(fast)
        # The network that runs: the model itself, or an optimised copy sharing its unchanged tensors.
        self._net: nn.Module = self.model
        self.fast_report: FastReport | None = None
        if self.fast:
            check = min(self.size, max(_CHECK_SIZE, 2 * self.stride))
            check = check - check % self.stride or self.stride
            self._net, self.fast_report = cached_optimize(self.model, check)
        self._fast_cpu = self.fast and self.device.type == "cpu"
        self._lut_np = self._lut.cpu().numpy()

    def __repr__(self) -> str:
        return f"Colorizer({self.name!r}, device={str(self.device)!r}, size={self.size}, fast={self.fast})"

    # -- public API ------------------------------------------------------------------------------

    def colorize(
        self,
        image: ImageSource,
        *,
        temperature: float | None = None,
        top_k: int | None = None,
        method: str | None = None,
        hints: Hints | None = None,
    ) -> Image.Image:
        """Colourise one image; returns an RGB PIL image at the input's original resolution.

        ``temperature``, ``top_k`` and ``method`` steer classification decoders (see
        :class:`colorcore.quantize.ABDecoder`) and are ignored by regression models. ``hints`` are used
        by hinted models and ignored, with a warning, by the others.
        """
        return self._run([image], [hints], temperature, top_k, method, want_logits=False)[0].image

    def predict(
        self,
        image: ImageSource,
        *,
        temperature: float | None = None,
        top_k: int | None = None,
        method: str | None = None,
        hints: Hints | None = None,
    ) -> ColorizeResult:
        """Like :meth:`colorize` but returns every intermediate, logits included (for the classroom)."""
        return self._run([image], [hints], temperature, top_k, method, want_logits=True)[0]

    def colorize_batch(
        self,
        images: Sequence[ImageSource],
        *,
        temperature: float | None = None,
        top_k: int | None = None,
        method: str | None = None,
        hints: Sequence[Hints | None] | None = None,
        batch_size: int = 16,
    ) -> list[Image.Image]:
        """Colourise several images with batched inference (``batch_size`` per forward pass).

        Each output keeps its own input's resolution. ``hints``, if given, has one entry per image.
        One unreadable image raises :class:`~colorcore.errors.ImageLoadError` for the whole call.
        """
        if hints is not None and len(hints) != len(images):
            raise ConfigError(f"got {len(hints)} hints for {len(images)} images; pass one (or None) each")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        per_image = list(hints) if hints is not None else [None] * len(images)
        out: list[Image.Image] = []
        for start in range(0, len(images), batch_size):
            chunk = slice(start, start + batch_size)
            results = self._run(list(images[chunk]), per_image[chunk], temperature, top_k, method,
                                want_logits=False)
            out.extend(r.image for r in results)
        return out

    def predict_small(
        self,
        image: ImageSource,
        *,
        temperature: float | None = None,
        top_k: int | None = None,
        method: str | None = None,
    ) -> tuple[np.ndarray, Tensor]:
        """Steps 1-4 only: the full-resolution 8-bit gray ``(H, W)`` and the working-size ab ``(2, S, S)``.

        For callers that change ab before it is merged (video propagation); :meth:`merge` finishes the job,
        so ``merge(*predict_small(x))`` equals ``predict(x).rgb``.
        """
        check_decoding(temperature, top_k, method)
        check_faithful(self.model, method)
        with torch.inference_mode():
            prepared = self._prepare(image, None)
            ab_small, _ = self._infer([prepared], temperature, top_k, method, False)
        return prepared.gray, ab_small[0].float().cpu()

    def merge(self, gray: np.ndarray, ab_small: Tensor) -> np.ndarray:
        """Step 5: full-resolution gray ``(H, W)`` and working-size ab ``(2, S, S)`` -> uint8 RGB."""
        with torch.inference_mode():
            return self._merge(gray, ab_small)

    # -- internals -------------------------------------------------------------------------------

    def _run(
        self,
        images: list[ImageSource],
        hints: list[Hints | None],
        temperature: float | None,
        top_k: int | None,
        method: str | None,
        *,
        want_logits: bool,
    ) -> list[ColorizeResult]:
        check_decoding(temperature, top_k, method)
        if not images:
            return []
        start = time.perf_counter()
        if any(h is not None for h in hints) and not self.supports_hints:
            warnings.warn(f"{self.name} does not take colour hints; the hints are ignored", stacklevel=3)
            hints = [None] * len(images)
        with torch.inference_mode():
            prepared = [self._prepare(image, h) for image, h in zip(images, hints, strict=True)]
            ab_small, logits = self._infer(prepared, temperature, top_k, method, want_logits)
            rgbs = [self._merge(p.gray, ab_small[i]) for i, p in enumerate(prepared)]
        elapsed = (time.perf_counter() - start) / len(images)
        return [
            ColorizeResult(rgb=rgb, gray=p.gray, ab_small=ab_small[i].float().cpu(),
                           logits=None if logits is None else logits[i].float().cpu(), elapsed=elapsed)
            for i, (p, rgb) in enumerate(zip(prepared, rgbs, strict=True))
        ]

    def _prepare(self, image: ImageSource, hints: Hints | None) -> _Prepared:
        pil = load_image(image, max_pixels=self.max_pixels)
        gray = self._to_gray(pil)
        h, w = gray.shape
        if self._fast_cpu:  # one float32 table look-up per pixel
            l_full = torch.from_numpy(np.take(self._lut_np, gray))
        else:
            l_full = torch.empty((h, w), dtype=torch.float32, device=self.device)
            gray_t = torch.from_numpy(gray)
            for rows in _bands(h, w):
                l_full[rows] = self._lut[gray_t[rows].to(self.device, torch.int64)]
        l_small = F.interpolate(l_full[None, None], size=(self.size, self.size), mode="bilinear",
                                align_corners=False, antialias=True)[0]
        hints_ab = hints_mask = None
        if hints is not None:
            if hints.shape != (h, w):
                raise ConfigError(f"hints are {hints.shape[1]}x{hints.shape[0]} but the image is {w}x{h}")
            hints_ab, hints_mask = self._resize_hints(hints)
        return _Prepared(gray, l_small, hints_ab, hints_mask)

    def _to_gray(self, pil: Image.Image) -> np.ndarray:
        """8-bit gray ``(H, W)``: an L image as is, a colour image's CIE L rounded to a gray level."""
        # np.array, not asarray: PIL hands out read-only buffers, which torch.from_numpy warns about.
        if pil.mode == "L":
            return np.array(pil)
        if self._fast_cpu:
            return rgb_to_gray(np.asarray(pil), _FAST_BAND_PIXELS)
        rgb = torch.from_numpy(np.array(pil))  # (H, W, 3) uint8
        h, w = rgb.shape[:2]
        gray = torch.empty((h, w), dtype=torch.uint8)
        for rows in _bands(h, w):
            band = rgb[rows].to(self.device).permute(2, 0, 1).float().div_(255)
            gray[rows] = torch.bucketize(rgb_to_lab(band)[0], self._boundaries).to(torch.uint8).cpu()
        return gray.numpy()

    def _resize_hints(self, hints: Hints) -> tuple[Tensor, Tensor]:
        """Area-resize hints to the working size: a cell is hinted if any pixel in it is, with the mean ab."""
        mask = torch.from_numpy(hints.mask).to(self.device, torch.float32)
        ab = torch.from_numpy(hints.ab).to(self.device).permute(2, 0, 1) * mask
        pooled = F.adaptive_avg_pool2d(torch.cat((ab, mask[None]))[None], (self.size, self.size))[0]
        coverage = pooled[2:3]
        hinted = coverage > 0
        mean_ab = torch.where(hinted, pooled[:2] / coverage.clamp_min(1e-12), torch.zeros_like(pooled[:2]))
        return mean_ab, hinted.float()

    def _infer(
        self, prepared: list[_Prepared], temperature: float | None, top_k: int | None, method: str | None,
        want_logits: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """Batched model call: ab ``(B, 2, S, S)`` and, for classifiers if wanted, logits ``(B, Q, h, w)``."""
        check_faithful(self.model, method)
        l = torch.stack([p.l_small for p in prepared]).to(self._dtype)
        hint_kwargs = {}
        if self.supports_hints and any(p.hints_ab is not None for p in prepared):
            zeros = torch.zeros((2, self.size, self.size), device=self.device)
            hint_kwargs = {
                "hints_ab": torch.stack([p.hints_ab if p.hints_ab is not None else zeros for p in prepared])
                .to(self._dtype),
                "hints_mask": torch.stack([p.hints_mask if p.hints_mask is not None else zeros[:1]
                                           for p in prepared]).to(self._dtype),
            }
        decode = {"temperature": temperature, "top_k": top_k, "method": method}
        model = self._net
        bf16 = self.fast_report is not None and self.fast_report.bf16 and not self.fast_report.fallback
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            ab, logits = model.predict_ab_and_logits(l, **decode, **hint_kwargs)
        return ab.float(), logits if want_logits else None

    def _merge(self, gray: np.ndarray, ab_small: Tensor) -> np.ndarray:
        """Full-resolution gray ``(H, W)`` + working-size ab ``(2, S, S)`` -> ``(H, W, 3)`` uint8 sRGB."""
        if self._fast_cpu:
            return merge_gray_ab(gray, ab_small, _FAST_BAND_PIXELS)
        h, w = gray.shape
        ab = F.interpolate(ab_small[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
        gray_t = torch.from_numpy(gray)
        out = np.empty((h, w, 3), np.uint8)
        out_t = torch.from_numpy(out)
        for rows in _bands(h, w):
            l_band = self._lut[gray_t[rows].to(self.device, torch.int64)]
            rgb = lab_to_rgb(torch.cat((l_band[None], ab[:, rows]))).mul_(255).round_().to(torch.uint8)
            out_t[rows] = rgb.permute(1, 2, 0).cpu()
        return out


def _load_model(model: str | Path) -> nn.Module:
    from colorcore.weights import create_model, load_weights_file

    text = str(model)
    if Path(text).suffix.lower() in {".safetensors", ".pth", ".pt", ".json"}:
        return load_weights_file(text)
    return create_model(text, pretrained=True)


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; use 'cpu' or 'cuda'") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was requested but CUDA is not available here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} does not exist; {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device {device!r}; use 'cpu' or 'cuda'")
    return dev


def _check_size(size: object, stride: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ConfigError(f"size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}")
    return max(stride, int(round(int(size) / stride)) * stride)


def check_decoding(temperature: object, top_k: object, method: object) -> None:
    """Raise :class:`ConfigError` unless the decoding knobs are valid (None means the model's default)."""
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float)
        or not math.isfinite(temperature) or temperature <= 0
    ):
        raise ConfigError(f"temperature must be a number > 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k must be an integer >= 1, got {top_k!r}")
    if method is not None and method not in DECODE_METHODS:
        raise ConfigError(f"unknown decoding method {method!r}; use one of {', '.join(DECODE_METHODS)}")


__all__ = ["ColorizeResult", "Colorizer", "DECODE_METHODS", "Hints", "MAX_SIZE", "MIN_SIZE", "check_decoding"]
