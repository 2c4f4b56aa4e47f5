"""UI-independent callbacks shared by the Gradio studio (``app.py``) and the Streamlit twin.

Everything a front end needs and nothing it shows: which models can be picked and which knobs apply to
them, running 1 to 6 models on one photo with their metrics against a ground truth, PNG export, the
single-model API call, and the classroom figures (per-pixel ab distribution, temperature sweep,
training curves). Front ends only lay out widgets and turn :class:`~colorcore.errors.ColorcoreError`
into a message.

Images are PIL images at their original resolution; all resizing, colour conversion and merging happens
in :class:`colorcore.pipeline.Colorizer`. Figures are :class:`matplotlib.figure.Figure` objects built
without pyplot, so callbacks may run in several threads at once.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageColor
from torch import nn

from colorcore.color import lab_to_rgb
from colorcore.errors import ColorcoreError, ConfigError, ModelNotFoundError
from colorcore.io import ImageSource, is_jpeg_file, load_image, save_jpeg, save_png
from colorcore.metrics import METRIC_INFO, Reference, compute_all, gray_baseline, reference
from colorcore.models.litecolor import bin_weights_of, has_regression_head
from colorcore.pipeline import Colorizer, ColorizeResult, Hints
from colorcore.quantize import ZHANG_TEMPERATURE, decode_median
from colorcore.registry import get_spec
from colorcore.weights import WeightsEntry, available_weights, create_model, published_cache_path

MAX_MODELS = 6
SIZE_MIN, SIZE_MAX, SIZE_STEP, SIZE_DEFAULT = 128, 512, 32, 256
TEMPERATURE_MIN, TEMPERATURE_MAX, TEMPERATURE_DEFAULT = 0.01, 1.0, ZHANG_TEMPERATURE
TOP_K_MIN, TOP_K_MAX, TOP_K_DEFAULT = 1, 10, 3
PALETTE_BINS = (16, 24, 32)
DECODE_METHODS = {"annealed": "Annealed mean", "mode": "Mode", "top_k": "Top-k mean"}
# Zhang et al. 2016, Fig. 4: from the mean (T = 1) to the mode (T -> 0); 0 stands for the mode here.
SWEEP_TEMPERATURES = (1.0, 0.77, 0.58, 0.38, 0.29, 0.14, 0.0)
# Metrics shown in the comparison table, in order (keys of colorcore.metrics.METRIC_INFO).
TABLE_METRICS = ("imgsim", "psnr", "ssim", "auc", "colorfulness", "ciede2000")
BASELINE_LABEL = "Gray input (no colour)"
SHORT_LABELS = {"ciede2000": "ΔE2000"}  # table titles shorter than METRIC_INFO's (the unit is the name)
DISTRIBUTION_L = 50.0  # lightness at which bin colours are drawn (Zhang et al. draw the gamut at L = 50)
# A photo counts as colour when the 95th percentile of its per-pixel channel spread (max - min of R, G, B)
# exceeds this many 8-bit levels: JPEG noise in a gray photo stays below it, real colour does not.
COLOUR_SPREAD = 12
MODEL_CACHE_SIZE = MAX_MODELS + 2
# Ticked by default: on the seven example photos a 256 px working size gave 0.1-0.25 dB less PSNR than
# each model's training size (64 or 128 px) for three of four models and only a little more colour.
AS_TRAINED_DEFAULT = True
AS_TRAINED_INFO = "the size each model learned at (64 or 128 px) looked as good as larger ones, and is faster"

KIND_TEXT = {
    "gamut": "313-bin classification",
    "palette": "k-means palette classification",
    "regression": "ab regression",
    "median": "median of the 313-bin distribution",
    "gan": "GAN",
    "hints": "user-guided (hints)",
}


@dataclass(frozen=True)
class PlainName:
    """How the picker presents a model to someone who has never heard of it."""

    name: str  # a plain name ("Faithful")
    blurb: str  # one line on what it is good for


# Keyed by picker key (a weights name, or the model name of a palette group). A new model (the
# pretrained-encoder flagship, say) gets its plain name by adding an entry here and its place in the
# picker by adding its key to RECOMMENDED; nothing else changes. Unlisted keys show their technical label.
PLAIN_NAMES: dict[str, PlainName] = {
    "litecolor:faithful": PlainName("Faithful", "natural colour; it knows what things are"),
    "litecolor:vivid": PlainName("Vivid", "bold, lifelike colour; a hue may be off"),
    "resnet-regression": PlainName("Muted, from scratch", "sepia-leaning, learned from our photos"),
    "eccv16-w25": PlainName("Vivid, from scratch", "bolder colour, often a wrong hue"),
    "siggraph17-w25": PlainName("Paint your own hints", "follows colours you paint on the photo"),
    "unet-palette": PlainName("Poster colours", "bright, flat colour from a small palette"),
    "pix2pix": PlainName("ImageNet U-Net", "a pix2pix generator on ImageNet features"),
    "autoencoder": PlainName("Small autoencoder", "a compact encoder-decoder, muted"),
    "fusion-w50": PlainName("Whole-scene fusion", "an ImageNet view of the whole scene, muted"),
    "eccv16-small": PlainName("Vivid, small", "a smaller 313-bin classifier"),
    "autoencoder-13": PlainName("Deep autoencoder", "a 13-layer encoder-decoder"),
    "zhang-regression": PlainName("Sepia regression", "shows why regression paints sepia"),
    "baseline": PlainName("Two-layer baseline", "how far very little gets you"),
    "eccv16-published": PlainName("Zhang et al. 2016", "the authors' own 313-bin weights"),
    "siggraph17-published": PlainName("Zhang et al. 2017, hints", "the authors' own user-guided weights"),
}
# Best first. The picker lists installed choices in this order (others after them), the first one is
# marked recommended and the default selection takes the first DEFAULT_PICKS of them (faithful + vivid).
RECOMMENDED: tuple[str, ...] = (
    "litecolor:faithful", "litecolor:vivid", "pix2pix", "fusion-w50", "resnet-regression", "eccv16-w25",
    "siggraph17-w25", "unet-palette", "autoencoder", "eccv16-small", "autoencoder-13",
    "zhang-regression", "baseline",
)
DEFAULT_PICKS = 2
# The classroom's sweep and distribution plot use the first runnable 313-bin choice of this list (the
# strongest first; the published weights only when already downloaded), else the first 313-bin choice.
STRONGEST_GAMUT: tuple[str, ...] = ("litecolor:vivid", "eccv16-published", "eccv16-w25", "eccv16-small")
# A model with two heads (litecolor) is two choices, one per named decode: "KEY:faithful" takes the median
# of its 313-bin distribution (no knobs), "KEY:vivid" the same head with the temperature / top-k knobs.
TWO_HEAD_DECODES = {"faithful": "median", "vivid": "gamut"}


# ------------------------------------------------------------------------------------------ choices
@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker.

    Palette weights of one model (e.g. ``unet-palette`` at 16, 24 and 32 colours) share one choice whose
    ``key`` is the model name; the bin-count knob picks among its ``entries``. Every other choice holds
    exactly one weights entry and its ``key`` is the weights name.
    """

    key: str
    label: str  # the technical label ("eccv16-w25 · 313-bin classification"), kept for the classroom
    kind: str  # "gamut" | "palette" | "regression" | "median" | "gan" | "hints"
    entries: tuple[WeightsEntry, ...]
    plain: PlainName | None = None
    decode: str | None = None  # "faithful" or "vivid" for a two-head model's choices (TWO_HEAD_DECODES)

    @property
    def name(self) -> str:
        """The plain name when there is one, else the key."""
        return self.plain.name if self.plain else self.key

    def picker_label(self, recommended: bool = False) -> str:
        """``"Faithful — the most accurate colour ... (resnet-regression)"``, else the technical label."""
        if self.plain is None:
            return self.label
        note = "" if self.runnable else ", downloads on first use"
        star = "★ Recommended: " if recommended else ""
        return f"{star}{self.plain.name} — {self.plain.blurb} ({self.key}{note})"

    @property
    def model(self) -> str:
        return self.entries[0].model

    @property
    def bins(self) -> tuple[int, ...]:
        """Palette sizes available to this choice (empty unless ``kind == "palette"``)."""
        return tuple(sorted(b for b in (_palette_bins(e) for e in self.entries) if b))

    @property
    def is_classifier(self) -> bool:
        return self.kind in {"gamut", "palette"}

    @property
    def bundled(self) -> bool:
        """True when its weights are on disk, so it runs without a download."""
        return self.entries[0].file is not None

    @property
    def runnable(self) -> bool:
        """True when it runs without a download: bundled, or published and already in the cache."""
        entry = self.entries[0]
        return entry.file is not None or (entry.url is not None and published_cache_path(entry).is_file())

    @property
    def supports_hints(self) -> bool:
        return self.kind == "hints"

    def entry(self, bins: int | None = None) -> WeightsEntry:
        """The weights to run: the one entry, or for a palette choice the one with ``bins`` colours."""
        if self.kind != "palette":
            return self.entries[0]
        if bins is None:
            return _default_palette_entry(self.entries)
        for e in self.entries:
            if _palette_bins(e) == bins:
                return e
        have = ", ".join(str(b) for b in self.bins)
        raise ConfigError(f"{self.model} has no weights with {bins} palette colours; available: {have}")


def _palette_bins(entry: WeightsEntry) -> int | None:
    match = re.fullmatch(r"palette(\d+)", entry.colors)
    return int(match.group(1)) if match else None


def _default_palette_entry(entries: Sequence[WeightsEntry]) -> WeightsEntry:
    # 24 colours is the middle of the three trained palettes; otherwise the first (default-marked) one.
    return next((e for e in entries if _palette_bins(e) == 24), entries[0])


def _kind(entry: WeightsEntry) -> str:
    try:
        spec = get_spec(entry.model)
    except ModelNotFoundError:
        return "regression"
    if getattr(spec.model_cls, "supports_hints", False):
        return "hints"
    if spec.task == "classification":
        return "palette" if _palette_bins(entry) else "gamut"
    return spec.task  # "regression" | "gan"


def _label(key: str, kind: str, entries: Sequence[WeightsEntry]) -> str:
    text = KIND_TEXT[kind]
    if kind == "palette":
        sizes = sorted(b for b in map(_palette_bins, entries) if b)
        text += " (" + "/".join(map(str, sizes)) + " colours)"
    entry = entries[0]
    if entry.url is not None:
        cached = published_cache_path(entry).is_file()
        text += ", Zhang's published weights" + ("" if cached else " (downloads on first use)")
    return f"{key} · {text}"


def list_choices(entries: Iterable[WeightsEntry] | None = None) -> list[ModelChoice]:
    """The model picker's choices, bundled weights first, palette weights grouped per model."""
    entries = list(available_weights() if entries is None else entries)
    groups: dict[str, list[WeightsEntry]] = {}
    order: list[tuple[str, str]] = []  # (key, kind) in first-seen order
    decodes: dict[str, str] = {}
    for entry in entries:
        kind = _kind(entry)
        # Palette weights of one model form one choice keyed by the model name (the bin knob picks).
        key = entry.model if kind == "palette" else entry.name
        if key in groups or f"{key}:faithful" in groups:
            if kind == "palette":
                groups[key].append(entry)
            continue  # a duplicate weights name: the first (bundled) one wins, as in find_weights
        if _has_two_heads(entry):
            for decode, decode_kind in TWO_HEAD_DECODES.items():
                groups[f"{key}:{decode}"] = [entry]
                decodes[f"{key}:{decode}"] = decode
                order.append((f"{key}:{decode}", decode_kind))
            continue
        groups[key] = [entry]
        order.append((key, kind))
    choices = [ModelChoice(key, _label(key, kind, groups[key]), kind, tuple(groups[key]),
                           PLAIN_NAMES.get(key), decodes.get(key)) for key, kind in order]
    rank = {key: i for i, key in enumerate(RECOMMENDED)}
    # Stable: bundled before downloads, then the recommended order, then the weights folder's order.
    return sorted(choices, key=lambda c: (not c.bundled, rank.get(c.key, len(rank))))


def _has_two_heads(entry: WeightsEntry) -> bool:
    """Whether the entry's model has a regression head beside its 313-bin head (litecolor)."""
    return has_regression_head(get_spec(entry.model).model_cls)


def find_choice(key: str, choices: Sequence[ModelChoice] | None = None) -> ModelChoice:
    """The choice named ``key``, or a weights name inside a palette group (as a one-entry choice)."""
    choices = list_choices() if choices is None else choices
    for choice in choices:
        if choice.key == key:
            return choice
    for choice in choices:
        for entry in choice.entries:
            if entry.name == key:
                return _single(choice, entry)
    family = _family_default(key, choices)
    if family is not None:
        return family
    known = ", ".join(c.key for c in choices) or "none (no weights are installed)"
    raise ModelNotFoundError(f"unknown model {key!r}; available: {known}")


def _family_default(model: str, choices: Sequence[ModelChoice]) -> ModelChoice | None:
    """The choice of a model family name (``"eccv16"``) as the CLI reads it: its default-marked, else
    first bundled, else first weights (see ``available_weights``); None when no choice is of that model."""
    entries = [(c, e) for c in choices for e in c.entries if e.model == model]
    if not entries:
        return None
    choice, entry = min(entries, key=lambda ce: (not ce[1].card.get("default", False), ce[1].file is None))
    if choice.kind == "palette":
        return choice
    return _single(choice, entry)


def _single(choice: ModelChoice, entry: WeightsEntry) -> ModelChoice:
    """A one-entry choice for ``entry`` of ``choice`` (a palette size picked by its weights name)."""
    label = _label(entry.name, choice.kind, [entry])
    return ModelChoice(entry.name, label, choice.kind, (entry,), choice.plain, choice.decode)


def default_selection(choices: Sequence[ModelChoice], count: int = DEFAULT_PICKS) -> list[str]:
    """Keys pre-selected in the picker: the first ``count`` recommended choices that are installed, or
    (with none of them installed) the first ``count`` bundled choices; never one that needs a download."""
    recommended = [key for key in RECOMMENDED if any(c.key == key and c.bundled for c in choices)]
    return recommended[:count] if recommended else [c.key for c in choices if c.bundled][:count]


def picker_options(choices: Sequence[ModelChoice]) -> list[tuple[str, str]]:
    """``(label, key)`` pairs for a model picker, the recommended choice marked and first."""
    best = recommended_choice(choices)
    return [(c.picker_label(best is not None and c.key == best.key), c.key) for c in choices]


def recommended_choice(choices: Sequence[ModelChoice]) -> ModelChoice | None:
    """The one model to try first: the first installed choice of RECOMMENDED, else the first bundled."""
    picks = default_selection(choices, 1)
    return next((c for c in choices if picks and c.key == picks[0]), None)


def strongest_classifier(choices: Sequence[ModelChoice]) -> ModelChoice | None:
    """The classroom's default: the first runnable choice of STRONGEST_GAMUT, else the first runnable
    313-bin choice, else the first classifier (a palette model); None without classifiers."""
    by_key = {c.key: c for c in choices if c.is_classifier}
    ranked = [by_key[k] for k in STRONGEST_GAMUT if k in by_key and by_key[k].runnable]
    ranked += [c for c in by_key.values() if c.kind == "gamut" and c.runnable]
    ranked += list(by_key.values())
    return ranked[0] if ranked else None


@dataclass(frozen=True)
class KnobVisibility:
    """Which knobs apply to the selected models (processing size always does)."""

    temperature: bool  # 313-bin models decoding with the annealed mean
    method: bool  # 313-bin models: annealed mean / mode / top-k
    top_k: bool  # palette models, or 313-bin models decoding with top-k
    bins: tuple[int, ...]  # palette sizes on offer; empty hides the bin-count knob
    hints: bool  # a user-guided model is selected


def knob_visibility(keys: Sequence[str], method: str = "annealed",
                    choices: Sequence[ModelChoice] | None = None) -> KnobVisibility:
    """The knobs to show for the selected ``keys`` and the 313-bin decoding ``method``."""
    chosen = [find_choice(k, choices) for k in keys]
    kinds = {c.kind for c in chosen}
    gamut = "gamut" in kinds
    bins = sorted({b for c in chosen if c.kind == "palette" for b in c.bins})
    return KnobVisibility(
        temperature=gamut and method == "annealed",
        method=gamut,
        top_k="palette" in kinds or (gamut and method == "top_k"),
        bins=tuple(bins),
        hints="hints" in kinds,
    )


# ------------------------------------------------------------------------------------------ models
@lru_cache(maxsize=MODEL_CACHE_SIZE)
def load_model(weights_name: str) -> nn.Module:
    """The model with the weights named ``weights_name``, loaded once and kept (LRU, a few models)."""
    entry = next((e for e in available_weights() if e.name == weights_name), None)
    if entry is None:
        raise ModelNotFoundError(f"no weights named {weights_name!r} are installed")
    return create_model(entry.model, pretrained=entry.name)


def colorizer(entry: WeightsEntry, size: int | None) -> Colorizer:
    """A :class:`Colorizer` over the cached model (cheap to build per call).

    ``size`` None runs the model at the size it was trained at (``entry.input_size``).
    """
    return Colorizer(load_model(entry.name), device="cpu", size=check_size(size))


def check_size(size: object) -> int | None:
    """A processing size in [SIZE_MIN, SIZE_MAX] pixels as an int; None (or 0) means "as trained"."""
    if size is None or (not isinstance(size, bool) and size == 0):
        return None
    if isinstance(size, bool) or not isinstance(size, int | float) or not math.isfinite(size) \
            or int(size) != size or not SIZE_MIN <= size <= SIZE_MAX:
        raise ConfigError(f"processing size must be a whole number of pixels in [{SIZE_MIN}, {SIZE_MAX}] "
                          f"(or 0 for each model's training size), got {size!r}")
    return int(size)


@dataclass(frozen=True)
class Knobs:
    """The decoding and processing knobs of one run (each applies only to the models it fits)."""

    temperature: float = TEMPERATURE_DEFAULT
    method: str = "annealed"
    top_k: int = TOP_K_DEFAULT
    bins: int | None = None
    size: int | None = SIZE_DEFAULT  # None: each model at the size it was trained at

    def __post_init__(self) -> None:
        if self.method not in DECODE_METHODS:
            raise ConfigError(
                f"unknown decoding mode {self.method!r}; use one of {', '.join(DECODE_METHODS)}")
        if not (isinstance(self.temperature, int | float) and TEMPERATURE_MIN <= self.temperature <= 1.0):
            raise ConfigError(f"temperature must be in [{TEMPERATURE_MIN}, 1], got {self.temperature!r}")
        if isinstance(self.top_k, float) and self.top_k.is_integer():
            object.__setattr__(self, "top_k", int(self.top_k))  # sliders send floats
        if not (isinstance(self.top_k, int) and TOP_K_MIN <= self.top_k <= TOP_K_MAX):
            raise ConfigError(f"top-k must be an integer in [{TOP_K_MIN}, {TOP_K_MAX}], got {self.top_k!r}")
        if self.bins is not None and int(self.bins) not in PALETTE_BINS:
            raise ConfigError(f"palette size must be one of {PALETTE_BINS}, got {self.bins!r}")
        object.__setattr__(self, "bins", None if self.bins is None else int(self.bins))
        object.__setattr__(self, "size", check_size(self.size))

    def decoding(self, choice: ModelChoice) -> dict[str, Any]:
        """``temperature`` / ``top_k`` / ``method`` keyword arguments for ``choice``'s decoder."""
        if choice.decode == "faithful":
            return {"method": "faithful"}
        if choice.kind == "gamut":
            if self.method == "annealed":
                return {"method": "annealed", "temperature": float(self.temperature)}
            if self.method == "mode":
                return {"method": "mode"}
            return {"method": "top_k", "top_k": self.top_k}
        if choice.kind == "palette":
            bins = _palette_bins(choice.entry(self.bins)) or TOP_K_MAX
            return {"method": "top_k", "top_k": min(self.top_k, bins)}
        return {}


# ------------------------------------------------------------------------------------------ input
def is_colour(image: Image.Image) -> bool:
    """Whether ``image`` holds real colour (see :data:`COLOUR_SPREAD`), not a gray photo stored as RGB."""
    if image.mode in {"L", "LA", "1", "I", "F"} or image.mode.startswith("I;"):
        return False
    rgb = np.asarray(image.convert("RGB"))
    step = max(1, max(rgb.shape[:2]) // 512)  # a strided sample is plenty for a percentile
    sample = rgb[::step, ::step].astype(np.int16)
    spread = sample.max(axis=2) - sample.min(axis=2)
    return bool(np.percentile(spread, 95) > COLOUR_SPREAD)


def to_gray(image: Image.Image) -> Image.Image:
    """The gray version a model sees: the photo's CIE L as an 8-bit ``"L"`` image, same size."""
    image = load_image(image)
    if image.mode == "L":
        return image
    rgb = np.asarray(image.convert("RGB"))
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        # A gray photo stored as RGB (the studio's own write-back): CIE L of (v, v, v) rounds back to v
        # for every v, so its first channel is the answer, without 0.15 s of Lab per megapixel.
        return Image.fromarray(rgb[..., 0], "L")
    return Image.fromarray(np.asarray(gray_baseline(rgb))[..., 0], "L")


def split_photo(image: Image.Image | None, truth: Image.Image | None = None
                ) -> tuple[Image.Image | None, Image.Image | None]:
    """Turn an uploaded photo into ``(gray input, ground truth)``.

    A colour photo becomes its gray version and is itself the ground truth. A gray photo keeps the
    current ``truth`` only if that truth is a colour version of it (same size and lightness), so a
    truth from an earlier photo never lingers.
    """
    if image is None:
        return None, None
    image = load_image(image)
    if is_colour(image):
        return to_gray(image), image
    gray = to_gray(image)
    if truth is not None and matches(gray, truth):
        return gray, truth
    return gray, None


def matches(gray: Image.Image, truth: Image.Image, tolerance: float = 3.0) -> bool:
    """Whether ``truth`` is a colour version of ``gray``: same size, mean gray difference <= tolerance."""
    if gray.size != truth.size:
        return False
    diff = np.abs(np.asarray(to_gray(truth), np.int16) - np.asarray(to_gray(gray), np.int16))
    return float(diff.mean()) <= tolerance


def hints_from_layer(layer: np.ndarray | Image.Image | None, size: tuple[int, int]) -> Hints | None:
    """Hints from a painted RGBA stroke layer for an image of ``size`` = (W, H); None when unpainted.

    Editors may hand back a layer at their canvas size; it is stretched (nearest neighbour, so stroke
    colours stay exact) to the photo's size.
    """
    if layer is None:
        return None
    pil = layer if isinstance(layer, Image.Image) else Image.fromarray(np.asarray(layer, np.uint8), "RGBA")
    pil = pil.convert("RGBA")
    if pil.size != tuple(size):
        pil = pil.resize(tuple(size), Image.Resampling.NEAREST)
    arr = np.asarray(pil)
    if not (arr[:, :, 3] > 0).any():
        return None
    return Hints.from_rgba(arr)


def zoomed(image: Image.Image | None, target: int = 320) -> Image.Image | None:
    """A small photo enlarged by a whole factor (nearest neighbour) so its pixels can be clicked."""
    if image is None:
        return None
    factor = max(1, -(-target // max(image.size)))
    return image if factor == 1 else image.resize((image.width * factor, image.height * factor),
                                                  Image.Resampling.NEAREST)


def mark_pixel(shown: Image.Image, x: int, y: int, size: tuple[int, int]) -> Image.Image:
    """``shown`` (the photo as displayed, e.g. :func:`zoomed`) with a ring and cross on photo pixel
    ``(x, y)`` of a photo of ``size``, drawn in white over black so it reads on any colour."""
    from PIL import ImageDraw

    out = shown.convert("RGB")
    sx, sy = out.width / size[0], out.height / size[1]
    cx, cy = (x + 0.5) * sx, (y + 0.5) * sy
    r = max(7.0, max(out.size) / 40, sx)
    draw = ImageDraw.Draw(out)
    for colour, width in (("black", 5), ("white", 2)):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=width)
        draw.line((cx - 2 * r, cy, cx - r / 2, cy), fill=colour, width=width)
        draw.line((cx + r / 2, cy, cx + 2 * r, cy), fill=colour, width=width)
        draw.line((cx, cy - 2 * r, cx, cy - r / 2), fill=colour, width=width)
        draw.line((cx, cy + r / 2, cx, cy + 2 * r), fill=colour, width=width)
    return out


def click_to_pixel(x: float, y: float, shown: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """The photo pixel ``(x, y)`` under a click at ``(x, y)`` on the photo shown at ``shown`` = (W, H)."""
    px, py = (min(n - 1, max(0, int(v * n // max(1, z)))) for v, n, z in zip((x, y), size, shown,
                                                                              strict=True))
    return px, py


def hint_layer(points: Iterable[tuple[int, int, str]], size: tuple[int, int]) -> np.ndarray:
    """An RGBA layer ``(H, W, 4)`` uint8 for :func:`hints_from_layer` with a small square per hint.

    ``points`` are ``(x, y, "#rrggbb")`` in photo pixels; each square spans about 2 % of the photo's short
    side (at least 1 px), so a hint covers the same share of any photo.
    """
    w, h = size
    layer = np.zeros((h, w, 4), np.uint8)
    r = max(0, min(w, h) // 100)
    for x, y, colour in points:
        rgb = ImageColor.getrgb(colour)[:3]
        layer[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = (*rgb, 255)
    return layer


# ------------------------------------------------------------------------------------------ comparison
@dataclass(frozen=True, eq=False)
class ModelResult:
    """One model's output for the comparison."""

    choice: ModelChoice
    entry: WeightsEntry
    image: Image.Image  # RGB at the photo's resolution
    elapsed: float  # seconds
    metrics: dict[str, float] | None  # colorcore.metrics.compute_all against the truth, if any

    @property
    def file_tag(self) -> str:
        """What names this result's download: the weights, and the decode where one file has two."""
        return _file_tag(self.choice, self.entry)

    @property
    def title(self) -> str:
        """Short display name: the plain name, with the palette size where one applies."""
        bins = _palette_bins(self.entry)
        return f"{self.choice.name} ({bins})" if bins else self.choice.name


@dataclass(frozen=True, eq=False)
class Comparison:
    """The outcome of :func:`run_comparison`."""

    gray: Image.Image  # the gray input the models saw ("L")
    truth: Image.Image | None  # the ground truth used for metrics ("RGB"), if any
    results: tuple[ModelResult, ...]
    baseline: dict[str, float] | None  # metrics of the gray input itself
    notes: tuple[str, ...] = field(default=())  # things the user should know (shown as warnings)
    wall: float = 0.0  # seconds from the call to the last result, metrics not included

    @property
    def inference(self) -> float:
        """Summed per-model time (each model's load, predict and merge)."""
        return sum(r.elapsed for r in self.results)

    @property
    def scored(self) -> bool:
        """Whether the metrics are in (or there is no truth to score against)."""
        return self.truth is None or self.baseline is not None


def run_comparison(
    image: Image.Image | None,
    keys: Sequence[str],
    knobs: Knobs,
    *,
    truth: Image.Image | None = None,
    hints: Hints | None = None,
    choices: Sequence[ModelChoice] | None = None,
    metrics: bool = True,
) -> Comparison:
    """Colourise ``image`` with each model in ``keys`` (1 to :data:`MAX_MODELS`) and score each one.

    A colour ``image`` with no ``truth`` is its own ground truth (its gray version is what the models
    see). Metrics are computed when a truth of the photo's size exists; ``metrics=False`` leaves them to
    :func:`score`, so a front end can show the pictures first. A model that cannot run is skipped with a
    note; when none can, the first one's error is raised.
    """
    start = time.perf_counter()
    if image is None:
        raise ConfigError("upload or paste a photo first")
    keys = list(dict.fromkeys(keys or []))
    if not 1 <= len(keys) <= MAX_MODELS:
        raise ConfigError(f"pick between 1 and {MAX_MODELS} models (got {len(keys)})")
    choices = list_choices() if choices is None else choices
    picked = [find_choice(k, choices) for k in keys]
    image = load_image(image)
    notes: list[str] = []
    if truth is None and is_colour(image):
        truth = image
    gray = to_gray(image)
    if truth is not None:
        truth = load_image(truth).convert("RGB")
        if truth.size != gray.size:
            notes.append(f"the ground truth is {truth.size[0]}x{truth.size[1]} but the photo is "
                         f"{gray.size[0]}x{gray.size[1]}; metrics are skipped")
            truth = None
    prepare_scoring(gray, truth)  # the truth's side of the metrics, while the models run
    if hints is not None and hints.shape != gray.size[::-1]:
        raise ConfigError("the painted hints do not match the photo's size; clear them and paint again")
    if hints is not None and not any(c.supports_hints for c in picked):
        # Painted hints would otherwise do nothing: bring in the first bundled user-guided model.
        guided = next((c for c in choices if c.supports_hints and c.bundled), None)
        if guided is not None and len(picked) < MAX_MODELS:
            picked.append(guided)
            notes.append(f"colour hints only steer user-guided models; added {guided.key} to use yours")
        else:
            notes.append("colour hints only steer user-guided models (siggraph17); none is selected")
    results = []
    failures: list[ColorcoreError] = []
    for choice in picked:
        # One model that cannot run (e.g. published weights not downloaded) must not cost the others.
        try:
            entry = choice.entry(knobs.bins)
            res = colorizer(entry, knobs.size).predict(
                gray, hints=hints if choice.supports_hints else None, **knobs.decoding(choice))
        except ColorcoreError as exc:
            failures.append(exc)
            notes.append(f"skipped {choice.key}: {exc}")
            continue
        results.append(ModelResult(choice, entry, res.image, res.elapsed, None))
    if not results:
        raise failures[0]
    comparison = Comparison(gray, truth, tuple(results), None, tuple(notes), time.perf_counter() - start)
    return score(comparison) if metrics else comparison


# Metrics and PNG encoding are numpy/zlib work that releases the GIL: one thread per core halves them.
_POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="studio")


def score(comparison: Comparison) -> Comparison:
    """``comparison`` with its metrics against the truth (a copy; unchanged without a truth).

    The models are scored in parallel. The truth's side of the work (its Lab, SSIM sums and the gray
    row) is shared by every model and remembered per photo (:func:`prepare_scoring`), since one model's
    metrics cost 0.3–0.4 s per megapixel on one core.
    """
    if comparison.truth is None or comparison.scored:
        return comparison
    prepared = prepare_scoring(comparison.gray, comparison.truth)
    if prepared is None:  # run_comparison drops such a truth; a hand-made Comparison may not
        (tw, th), (gw, gh) = comparison.truth.size, comparison.gray.size
        raise ConfigError(f"the ground truth is {tw}x{th} but the photo is {gw}x{gh}")
    ref, baseline = prepared.result()
    scores = list(_POOL.map(lambda r: compute_all(np.asarray(r.image), ref), comparison.results))
    results = tuple(replace(r, metrics=m) for r, m in zip(comparison.results, scores, strict=True))
    return replace(comparison, results=results, baseline=baseline)


# score() waits on _POOL's workers, so it must not run on one of them itself.
_SCORING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="studio-score")


def score_soon(comparison: Comparison) -> Future[Comparison]:
    """Start :func:`score` in the background, so the metrics are computed while a front end sends and
    draws the pictures; ``.result()`` gives the scored comparison."""
    return _SCORING.submit(score, comparison)


# Its own thread: score() waits on these jobs, so they must not queue behind score() in _SCORING.
_PREPARING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-prepare")
_PREPARED: OrderedDict[tuple[str, str], Future[tuple[Reference, dict[str, float]]]] = OrderedDict()
_PREPARED_LOCK = threading.Lock()


def prepare_scoring(gray: Image.Image | None, truth: Image.Image | None
                    ) -> Future[tuple[Reference, dict[str, float]]] | None:
    """Start (or find) the truth's side of scoring ``gray``'s colourisations: the truth's
    :class:`~colorcore.metrics.Reference` and the gray row's metrics, remembered for the last few photos.

    Front ends call it as soon as a photo and its truth arrive, so that a comparison run later only
    scores its models. ``None`` when there is nothing to score against (no truth, or another size)."""
    if gray is None or truth is None or truth.size != gray.size:
        return None
    truth_rgb = np.asarray(truth.convert("RGB"))
    key = (_digest(gray), hashlib.sha1(truth_rgb.tobytes()).hexdigest())
    with _PREPARED_LOCK:
        job = _PREPARED.get(key)
        if job is None:
            job = _PREPARED[key] = _PREPARING.submit(_prepare, gray, truth_rgb)
            while len(_PREPARED) > 8:
                _PREPARED.popitem(last=False)
        _PREPARED.move_to_end(key)
    return job


def _prepare(gray: Image.Image, truth: np.ndarray) -> tuple[Reference, dict[str, float]]:
    ref = reference(truth)
    return ref, compute_all(np.asarray(gray.convert("RGB")), ref)


@dataclass(frozen=True)
class MetricsTable:
    """Rows of the comparison table; ``headers[0]`` is the model, then time, then metrics."""

    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.headers, row, strict=True)) for row in self.rows]


def metric_header(name: str) -> str:
    """Short column title of a metric, with an arrow saying which way is better (see :func:`metric_units`)."""
    label, higher_is_better, _ = METRIC_INFO[name]
    label = SHORT_LABELS.get(name, label)
    return label if higher_is_better is None else f"{label} {'↑' if higher_is_better else '↓'}"


def metric_units(names: Sequence[str] = TABLE_METRICS) -> str:
    """One line naming the units of the table's metrics, e.g. ``"ImgSim in %, PSNR in dB"``."""
    parts = [f"{SHORT_LABELS.get(n, METRIC_INFO[n][0])} in {METRIC_INFO[n][2]}" for n in names
             if METRIC_INFO[n][2] and n not in SHORT_LABELS]
    return ", ".join(parts)


def metrics_table(comparison: Comparison, digits: int = 3) -> MetricsTable:
    """One row per model (time in seconds, metrics if a truth exists) plus the gray-baseline row."""
    metrics = TABLE_METRICS if comparison.truth is not None else ()
    headers = ("Model", "Weights", "Time (s)", *(metric_header(m) for m in metrics))

    def cells(values: dict[str, float] | None) -> list[Any]:
        return [_round(values.get(m) if values else None, digits) for m in metrics]

    rows = [(r.title, r.entry.name, round(r.elapsed, 3), *cells(r.metrics)) for r in comparison.results]
    if comparison.baseline is not None:
        rows.append((BASELINE_LABEL, "", None, *cells(comparison.baseline)))
    return MetricsTable(headers, tuple(rows))


def timing_note(comparison: Comparison, wall: float | None = None) -> str:
    """One line on how long the whole comparison took (``wall``, default ``comparison.wall``), beside
    what the models themselves took, so a tile's own time is not mistaken for the wait."""
    n = len(comparison.results)
    wall = comparison.wall if wall is None else wall
    return (f"{n} model{'s' if n != 1 else ''} in **{wall:.2f} s** "
            f"(the models themselves: {comparison.inference:.2f} s)")


def _round(value: Any, digits: int) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else value


def save_results(comparison: Comparison, folder: str | Path, stem: str = "photo") -> list[Path]:
    """Write each model's result as ``STEM_WEIGHTS.png`` (``STEM_WEIGHTS-DECODE.png`` for a two-head model's
    decodes) at the photo's resolution; returns the paths.

    zlib level 1 and one thread per core: a 1 MP PNG takes 0.05 s instead of 0.2 s at the default level.
    """
    stem = _safe(stem) or "photo"
    return list(_POOL.map(lambda r: save_png(r.image, Path(folder) / f"{stem}_{r.file_tag}.png",
                                             compress_level=1), comparison.results))


def _file_tag(choice: ModelChoice, entry: WeightsEntry) -> str:
    # Faithful and Vivid share the litecolor weights: by the weights name alone, one file overwrote the other.
    return _safe(f"{entry.name}-{choice.decode}" if choice.decode else entry.name)


DISPLAY_MAX = 2048  # long side of the pictures shown in the browser; downloads keep the full resolution


@dataclass(frozen=True)
class DisplayFiles:
    """JPEGs of one comparison for the browser: the gray input, the truth (if any) and each result."""

    gray: Path
    truth: Path | None
    results: tuple[Path, ...]

    def pair(self, i: int, against_truth: bool = False) -> tuple[Path, Path]:
        """(left, right) of result ``i``'s before/after slider: the gray input, or the truth, left."""
        left = self.truth if against_truth and self.truth is not None else self.gray
        return left, self.results[i]


def display_files(comparison: Comparison, folder: str | Path) -> DisplayFiles:
    """Write the comparison's pictures as quality-90 JPEGs (at most DISPLAY_MAX px) for the sliders.

    A 1 MP JPEG encodes in a few ms where Gradio's PNG takes 0.2 s, and the gray input is written once
    for every slider instead of once per slider.
    """
    folder = Path(folder)

    def write(image: Image.Image, name: str) -> Path:
        return display_jpeg(image, folder / f"{name}.jpg")

    pictures = [(comparison.gray, "gray")]
    pictures += [(r.image, f"result{i}") for i, r in enumerate(comparison.results)]
    if comparison.truth is not None:
        pictures.append((comparison.truth, "truth"))
    paths = list(_POOL.map(lambda pair: write(*pair), pictures))  # JPEG encoding releases the GIL
    truth = paths.pop() if comparison.truth is not None else None
    return DisplayFiles(paths[0], truth, tuple(paths[1:]))


def display_jpeg(image: Image.Image, path: str | Path, max_side: int = DISPLAY_MAX) -> Path:
    """``image`` as a quality-90 JPEG of at most ``max_side`` px at ``path``, for showing, not keeping."""
    image = image.copy()
    image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return save_jpeg(image, path, quality=90)


def photo_stem(name: str | None) -> str:
    """A download stem from an uploaded file's name (``"My photo.JPG"`` -> ``"My-photo"``)."""
    return (_safe(Path(name).stem) if name else "") or "photo"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80]


def colorize_batch(paths: Sequence[str | Path], keys: Sequence[str], knobs: Knobs, folder: str | Path,
                   choices: Sequence[ModelChoice] | None = None) -> list[Path]:
    """Colourise every photo with every model; writes ``STEM_WEIGHTS.png`` files and returns them."""
    if not paths:
        raise ConfigError("drop one or more photos first")
    if not 1 <= len(keys) <= MAX_MODELS:
        raise ConfigError(f"pick between 1 and {MAX_MODELS} models (got {len(keys)})")
    choices = list_choices() if choices is None else choices
    stems = [_safe(Path(p).stem) or f"photo{i}" for i, p in enumerate(paths)]
    out = []
    for key in keys:
        choice = find_choice(key, choices)
        entry = choice.entry(knobs.bins)
        images = colorizer(entry, knobs.size).colorize_batch(list(paths), batch_size=4,
                                                             **knobs.decoding(choice))
        for stem, image in zip(stems, images, strict=True):
            out.append(save_png(image, Path(folder) / f"{stem}_{_file_tag(choice, entry)}.png"))
    return out


# ------------------------------------------------------------------------------------------ API
def colorize_one(image: ImageSource | None, model: str, temperature: float = TEMPERATURE_DEFAULT,
                 top_k: int = 0, size: int | None = SIZE_DEFAULT) -> Image.Image:
    """The ``colorize`` API: one model, returns RGB at the photo's original resolution.

    ``model`` is a picker key or a weights name. For 313-bin models ``top_k >= 1`` decodes with the
    top-k mean, else ``temperature > 0`` with the annealed mean and ``temperature == 0`` with the mode;
    palette models use ``top_k`` (0 keeps the model's default); other models ignore both.
    ``size`` 0 or None runs the model at its training size.
    """
    if image is None:
        raise ConfigError("no image was sent")
    choice = find_choice(str(model))
    top_k = int(top_k) if top_k else 0
    if choice.kind == "gamut":
        if top_k:
            decoding: dict[str, Any] = {"method": "top_k", "top_k": top_k}
        elif temperature is not None and float(temperature) == 0:
            decoding = {"method": "mode"}
        else:
            decoding = {"method": "annealed", "temperature": float(temperature)}
    elif choice.kind == "palette":
        decoding = {"method": "top_k", "top_k": top_k} if top_k else {}
    else:
        decoding = {}
    return colorizer(choice.entry(), check_size(size)).colorize(load_image(image), **decoding)


OUTPUT_FORMATS = ("auto", "jpeg", "png")


def save_api_result(image: Image.Image, folder: str | os.PathLike, source: str | os.PathLike,
                    output_format: str = "auto") -> Path:
    """Write the ``colorize`` API's result in ``folder``; returns the file.

    ``auto`` answers a JPEG upload with a JPEG (quality 95, no chroma subsampling) and anything else with
    a PNG. JPEG suits the result: its colour is upsampled from a prediction of at most 512 px, so nothing
    fine is lost, and a 12 MP JPEG encodes in under 0.1 s where a PNG takes seconds. PNGs are written at
    zlib level 1, the fastest that still compresses.
    """
    fmt = str(output_format or "auto").lower()
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, not {output_format!r}")
    if fmt == "auto":
        fmt = "jpeg" if is_jpeg_file(source) else "png"
    if fmt == "jpeg":
        return save_jpeg(image, Path(folder) / "colourised.jpg")
    return save_png(image, Path(folder) / "colourised.png", compress_level=1)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return None


def release_memory() -> bool:
    """Give the heap memory freed by a finished request back to the OS; False where that is not possible.

    glibc keeps freed buffers in its per-thread arenas, so without this the server's resident memory grows
    by the biggest request's working set (a 12 MP photo: 100+ MB) in each handler thread.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


# ------------------------------------------------------------------------------------------ classroom
class _PredictionCache:
    """The last few predictions with logits, so clicking pixels does not rerun the model each time."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, int, str], ColorizeResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, entry: WeightsEntry, size: int | None, image: Image.Image) -> ColorizeResult:
        key = (entry.name, size, _digest(image))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        result = colorizer(entry, size).predict(image)
        with self._lock:
            self._items[key] = result
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return result


_PREDICTIONS = _PredictionCache()


def image_digest(image: Image.Image) -> str:
    """A content hash of ``image`` (mode, size and pixels), to tell a new photo from the same one again."""
    return _digest(image)


def _digest(image: Image.Image) -> str:
    h = hashlib.sha1(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def classifier_choices(choices: Sequence[ModelChoice] | None = None) -> list[ModelChoice]:
    """Choices whose models predict a distribution over colours (the classroom can show it)."""
    return [c for c in (list_choices() if choices is None else choices) if c.is_classifier]


def _centers(entry: WeightsEntry) -> torch.Tensor:
    decoder = getattr(load_model(entry.name), "decoder", None)
    if decoder is None:
        raise ConfigError(f"{entry.name} predicts ab directly, so it has no colour distribution to show")
    return decoder.centers.detach().float().cpu()


def bin_colours(centers: torch.Tensor, lightness: float = DISTRIBUTION_L) -> np.ndarray:
    """sRGB in [0, 1] of each ab bin centre ``(Q, 2)`` at ``lightness``: ``(Q, 3)``."""
    lab = torch.cat((torch.full((centers.shape[0], 1), float(lightness)), centers.float()), dim=1)
    return lab_to_rgb(lab.T[:, :, None])[:, :, 0].T.numpy()


@dataclass(frozen=True)
class PixelDistribution:
    """The classroom's view of one pixel: where it is and what the model believes about its colour."""

    figure: Figure
    x: int
    y: int
    probabilities: np.ndarray  # (Q,) at T = 1
    centers: np.ndarray  # (Q, 2) ab
    summary: str  # one markdown line


def pixel_distribution(
    key: str,
    image: Image.Image | None,
    x: int,
    y: int,
    *,
    temperature: float = TEMPERATURE_DEFAULT,
    size: int | None = SIZE_DEFAULT,
    bins: int | None = None,
    truth: Image.Image | None = None,
) -> PixelDistribution:
    """The model's probability distribution over its colour bins at pixel ``(x, y)`` of ``image``.

    Coordinates are in the photo's original pixels. The logits are looked up at the matching cell of
    the model's working-size output grid.
    """
    if image is None:
        raise ConfigError("upload a photo first, then click a pixel")
    choice = find_choice(key)
    entry = choice.entry(bins)
    image = load_image(image)
    gray = to_gray(image)
    w, h = gray.size
    if not (0 <= x < w and 0 <= y < h):
        raise ConfigError(f"pixel ({x}, {y}) lies outside the {w}x{h} photo")
    centers = _centers(entry)
    result = _PREDICTIONS.get(entry, check_size(size), gray)
    if result.logits is None:
        raise ConfigError(f"{entry.name} returned no logits")
    q, gh, gw = result.logits.shape
    cell = result.logits[:, min(gh - 1, y * gh // h), min(gw - 1, x * gw // w)].float()
    probs = torch.softmax(cell, dim=0).numpy()
    annealed = torch.softmax(cell / max(float(temperature), TEMPERATURE_MIN), dim=0).numpy()
    truth_ab = None
    if truth is not None and truth.size == image.size:
        truth_ab = _pixel_ab(load_image(truth).convert("RGB"), x, y)
    fig = distribution_figure(probs, centers.numpy(), temperature=float(temperature), annealed=annealed,
                              truth_ab=truth_ab, median_ab=_faithful_median(entry, cell, centers),
                              title=f"{entry.name} at pixel ({x}, {y})")
    top = int(probs.argmax())
    summary = (f"**{entry.name}**, pixel ({x}, {y}) of {w}x{h}: {q} bins, most likely bin "
               f"a={centers[top, 0]:.0f}, b={centers[top, 1]:.0f} with p={probs[top]:.1%}; "
               f"entropy {_entropy(probs):.2f} nats (max {math.log(q):.2f}).")
    return PixelDistribution(fig, x, y, probs, centers.numpy(), summary)


def _faithful_median(entry: WeightsEntry, cell: torch.Tensor,
                     centers: torch.Tensor) -> tuple[float, float] | None:
    """The faithful decode at one cell (``cell``: its ``(Q,)`` logits) of a model that keeps the
    rebalancing weights it was trained with (litecolor), else None."""
    weights = bin_weights_of(load_model(entry.name))
    if weights is None:
        return None
    ab = decode_median(cell[:, None, None], centers.float(), weights.float().cpu())[:, 0, 0]
    return float(ab[0]), float(ab[1])


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _pixel_ab(image: Image.Image, x: int, y: int) -> tuple[float, float]:
    from colorcore.color import rgb_to_lab

    rgb = torch.tensor(np.asarray(image)[y, x], dtype=torch.float32).div(255)[:, None, None]
    lab = rgb_to_lab(rgb)[:, 0, 0]
    return float(lab[1]), float(lab[2])


def distribution_figure(
    probs: np.ndarray,
    centers: np.ndarray,
    *,
    temperature: float | None = None,
    annealed: np.ndarray | None = None,
    truth_ab: tuple[float, float] | None = None,
    median_ab: tuple[float, float] | None = None,
    title: str = "",
) -> Figure:
    """Zhang et al.'s ab-plane view of a predicted distribution ``probs (Q,)`` over ``centers (Q, 2)``.

    Every bin is drawn in its own colour at L = 50; its size and opacity grow with its probability.
    With ``annealed`` (the same distribution at ``temperature``) a second panel shows how the
    temperature sharpens it; crosses mark each panel's mean, a star the mode, a ring the true colour and,
    in the first panel, a diamond ``median_ab`` (the faithful decode: the median with the training's
    re-weighting of rare colours divided out).
    """
    centers = np.asarray(centers, np.float64)
    colours = bin_colours(torch.as_tensor(centers, dtype=torch.float32))
    panels = [("T = 1 (the model's softmax)", np.asarray(probs, np.float64))]
    if annealed is not None:
        panels.append((f"T = {temperature:g} (annealed)", np.asarray(annealed, np.float64)))
    fig = Figure(figsize=(4.2 * len(panels), 4.4), layout="constrained")
    step = _grid_step(centers)
    for i, (name, p) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.set_facecolor("#f4f4f4")
        # The whole gamut, faint, so the empty part of the plane reads as "possible but unlikely".
        ax.scatter(centers[:, 0], centers[:, 1], s=(step * 1.6) ** 2 / 4, c=colours, marker="s", alpha=0.12,
                   linewidths=0)
        rel = p / max(p.max(), 1e-12)
        order = np.argsort(rel)  # most probable on top
        ax.scatter(centers[order, 0], centers[order, 1], s=(step * 1.6) ** 2 * rel[order], c=colours[order],
                   marker="s", alpha=np.clip(0.25 + 0.75 * rel[order], 0, 1), edgecolors="black",
                   linewidths=0.3 * (rel[order] > 0.05))
        mean = p @ centers / max(p.sum(), 1e-12)
        ax.plot(*mean, marker="X", markersize=10, color="white", markeredgecolor="black", linestyle="none",
                label=f"mean ({mean[0]:.0f}, {mean[1]:.0f})")
        mode = centers[int(p.argmax())]
        ax.plot(*mode, marker="*", markersize=12, color="gold", markeredgecolor="black", linestyle="none",
                label=f"mode ({mode[0]:.0f}, {mode[1]:.0f})")
        if median_ab is not None and i == 0:
            ax.plot(*median_ab, marker="D", markersize=9, color="deepskyblue", markeredgecolor="black",
                    linestyle="none", label=f"Faithful: median ({median_ab[0]:.0f}, {median_ab[1]:.0f})")
        if truth_ab is not None:
            ax.plot(*truth_ab, marker="o", markersize=11, markerfacecolor="none", markeredgecolor="black",
                    markeredgewidth=2, linestyle="none",
                    label=f"truth ({truth_ab[0]:.0f}, {truth_ab[1]:.0f})")
        lim = max(110.0, float(np.abs(centers).max()) + step)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="#bbb", linewidth=0.6, zorder=0)
        ax.axvline(0, color="#bbb", linewidth=0.6, zorder=0)
        ax.set_xlabel("a (green − / red +)")
        ax.set_ylabel("b (blue − / yellow +)")
        ax.set_title(name, fontsize=10)
        ax.legend(loc="lower left", fontsize=7, framealpha=0.8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _grid_step(centers: np.ndarray) -> float:
    """Typical spacing of the bins (10 for Zhang's gamut) so markers tile the plane for any palette."""
    if len(centers) < 2:
        return 10.0
    d = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(np.clip(np.median(d.min(axis=1)), 4.0, 30.0))


def temperature_sweep(key: str, image: Image.Image | None, *, size: int | None = SIZE_DEFAULT,
                      bins: int | None = None, temperatures: Sequence[float] = SWEEP_TEMPERATURES
                      ) -> list[tuple[Image.Image, str]]:
    """The photo decoded at each temperature (0 = the mode): ``[(image, caption), ...]``."""
    if image is None:
        raise ConfigError("upload a photo first")
    choice = find_choice(key)
    if not choice.is_classifier:
        raise ConfigError(f"{choice.key} regresses ab directly; the temperature sweep needs a classifier")
    c = colorizer(choice.entry(bins), check_size(size))
    gray = to_gray(load_image(image))
    out = []
    for t in temperatures:
        if t == 0:
            out.append((c.colorize(gray, method="mode"), "T = 0 (mode)"))
        else:
            caption = f"T = {t:g}" + (" (mean)" if t == 1 else " (Zhang)" if t == ZHANG_TEMPERATURE else "")
            out.append((c.colorize(gray, method="annealed", temperature=float(t)), caption))
    return out


def training_curves_figure(entries: Iterable[WeightsEntry] | None = None) -> Figure | None:
    """Validation loss and metrics per epoch of every bundled model whose card has a history; else None."""
    entries = [e for e in (available_weights() if entries is None else entries) if e.card.get("history")]
    if not entries:
        return None
    counts: dict[str, int] = {}
    for e in entries:
        for key in {k for row in e.card["history"] for k in row if k.startswith("val_") and k != "val_loss"}:
            counts[key] = counts.get(key, 0) + 1
    # Validation loss (each model's own objective, so log scale) plus the metrics most models report.
    metrics = ["val_loss"] + sorted(counts, key=lambda k: (-counts[k], k))[:3]
    fig = Figure(figsize=(3.6 * len(metrics), 3.4 + 0.25 * math.ceil(len(entries) / 5)), layout="constrained")
    axes = [fig.add_subplot(1, len(metrics), i + 1) for i in range(len(metrics))]
    for e, (colour, style) in zip(entries, line_styles(len(entries)), strict=True):
        history = e.card["history"]
        for ax, key in zip(axes, metrics, strict=True):
            xs, ys = _series(history, key)
            if xs:
                ax.plot(xs, ys, marker="o", markersize=2.5, linewidth=1.4, label=e.name, color=colour,
                        linestyle=style)
    for ax, key in zip(axes, metrics, strict=True):
        name = key.removeprefix("val_")
        ax.set_title("validation loss (own objective)" if key == "val_loss" else f"validation {name}",
                     fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if key == "val_loss" and all(y > 0 for line in ax.get_lines() for y in line.get_ydata()):
            ax.set_yscale("log")
    # One legend below all panels: inside a panel it covered the loss curves.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(5, len(labels)), fontsize=8,
               frameon=False)
    return fig


def line_styles(n: int) -> list[tuple[Any, str]]:
    """``n`` distinct (colour, line style) pairs: tab20's ten dark colours solid, then its light ones
    dashed, then repeats dotted, so 13 models never share a look (tab10 alone repeats after ten)."""
    from matplotlib import colormaps

    tab20 = colormaps["tab20"].colors
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    styles = ("-", "--", ":", "-.")
    return [(tab20[order[i % 20]], styles[(i // 10) % len(styles)]) for i in range(n)]


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(history):
        value = row.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            xs.append(float(row.get("epoch", i + 1)))
            ys.append(float(value))
    return xs, ys


EXPLANATION = """\
### Why regression paints sepia and classification paints colour

A gray pixel of a car could be red, blue or white. A **regression** model is trained with a squared
error on ab, and the prediction that minimises a squared error is the *mean* of all plausible colours.
The mean of red, blue and white is a dull grayish-brown: so regressors give desaturated, sepia-like
photos.

A **classification** model (Zhang et al., ECCV 2016) splits the ab plane into 313 bins and predicts a
*probability for each bin*, trained with cross-entropy and with rare, saturated colours re-weighted.
It can say "40 % red, 35 % blue" instead of averaging them. Decoding picks a colour from that
distribution: the plain mean (T = 1) is the most muted (sepia wherever the model is unsure), the mode
(T → 0) is vivid but patchy, and the **annealed mean** at T = 0.38 sharpens the distribution first, a
compromise between both.

The recommended model has both kinds of head on one network that knows what things are (its encoder was
trained on ImageNet). *Vivid* is its 313-bin head at T = 0.38. *Faithful* reads the same distribution
another way: it divides the training's re-weighting of rare colours back out and takes the **median**,
the one colour with the least average distance to all the plausible ones (the blue diamond in the
distribution plot). That is what accuracy scores reward, and it beats the network's own L1 regression
head on them; like any single best guess, it is muted where the model hesitates. Where the model is sure
(grass, sky), even its mean is colourful; the sweep changes most where it hesitates.

Pick a pixel to see its distribution; the sweep shows the same photo from the mean to the mode.
"""
