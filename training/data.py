"""Photo folders -> seeded, augmented uint8 batches; Lab conversion happens later, on the device.

* :func:`scan_images` walks a folder recursively, decodes every photo once (small, via JPEG draft mode)
  and drops grayscale or unreadable ones; the result is cached as JSON keyed by the file list.
* :class:`PhotoDataset` returns ``(3, size, size)`` uint8 RGB crops. Every sample's randomness comes
  from its own ``torch.Generator`` seeded by ``(seed, epoch, index)``, so the data are independent of
  worker count and of skipped batches (needed for bit-exact resume).
* :class:`ResumableSampler` is a :class:`~torch.utils.data.DistributedSampler` that can skip the batches
  already done in the current epoch and hands ``(index, sample_seed)`` keys to the dataset.
* ``--cache`` mode: :func:`build_cache` decodes the set once into a ``(N, 3, S, S)`` uint8 tensor saved
  with ``torch.save`` and read back with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from colorcore.color import rgb_to_lab
from colorcore.errors import ColorcoreError
from colorcore.io import atomic_write_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Rotation and shear are applied to a slightly larger crop, then the centre is kept, so that no
# black corners enter the training data: 1 / (cos 10° + sin 10°) and 1 + tan 8° together need ~1.34.
_AFFINE_MARGIN = 1.36
MAX_ROTATION_DEG = 10.0
MAX_SHEAR_DEG = 8.0
MIN_ZOOM_SCALE = 0.6  # zoom crops keep between 60 % and 100 % of the short side
# A photo counts as grayscale when fewer than 1 % of its pixels differ between channels by more than
# this many 8-bit levels (JPEG chroma noise on true grayscale photos stays below it).
_GRAY_LEVEL = 8
_GRAY_FRACTION = 0.01
_SCAN_SIDE = 64


class DataError(ColorcoreError):
    """A training or validation folder is missing, empty or holds no colour photos."""


@dataclass(frozen=True)
class Augment:
    """Which seed-003 augmentations are on; all off gives a plain random square crop."""

    flip: bool = True
    zoom: bool = True
    rotate: bool = True
    shear: bool = True

    @classmethod
    def none(cls) -> Augment:
        return cls(False, False, False, False)


@dataclass(frozen=True)
class ScanResult:
    """Colour photos found under a folder, and how many files were skipped and why."""

    paths: tuple[Path, ...]
    grayscale: int
    unreadable: int


def list_images(root: Path) -> list[Path]:
    """Every file with an image extension under ``root`` (recursive), sorted for a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def open_rgb(path: Path, min_side: int | None = None) -> Image.Image:
    """Open a photo as RGB with EXIF orientation applied; JPEG decoding is reduced (draft) when large."""
    img = Image.open(path)
    if min_side is not None and img.format == "JPEG":
        # draft() picks a power-of-two scale whose result is still >= the requested size.
        img.draft("RGB", (min_side, min_side))
    img = ImageOps.exif_transpose(img)
    return img.convert("RGB")


def is_grayscale(img: Image.Image) -> bool:
    """True when (nearly) every pixel has R = G = B."""
    if img.mode in {"1", "L", "LA", "I", "I;16", "F"}:
        return True
    arr = np.asarray(img.convert("RGB"), dtype=np.int16)
    spread = arr.max(axis=2) - arr.min(axis=2)
    return float((spread > _GRAY_LEVEL).mean()) < _GRAY_FRACTION


def _check_one(path: Path) -> str:
    try:
        img = Image.open(path)
        raw_gray = img.mode in {"1", "L", "LA", "I", "I;16", "F"}
        if raw_gray:
            img.load()
            return "gray"
        rgb = open_rgb(path, _SCAN_SIDE)
        rgb.thumbnail((_SCAN_SIDE, _SCAN_SIDE))
        return "gray" if is_grayscale(rgb) else "ok"
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return "bad"


def _listing_key(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        st = p.stat()
        digest.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def scan_images(root: Path, cache_dir: Path | None = None) -> ScanResult:
    """Find the colour photos under ``root``; grayscale and unreadable files are skipped and counted.

    The per-file verdicts are cached in ``cache_dir/scan-<hash>.json`` (hash of paths, sizes, mtimes).
    """
    paths = list_images(root)
    if not paths:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    verdicts: list[str] | None = None
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"scan-{_listing_key(paths)}.json"
        if cache_file.is_file():
            try:
                loaded = json.loads(cache_file.read_text())
                if isinstance(loaded, list) and len(loaded) == len(paths):
                    verdicts = [str(v) for v in loaded]
            except (OSError, json.JSONDecodeError):
                verdicts = None
    if verdicts is None:
        verdicts = [_check_one(p) for p in paths]
        if cache_file is not None:
            atomic_write_text(cache_file, json.dumps(verdicts))
    kept = tuple(p for p, v in zip(paths, verdicts, strict=True) if v == "ok")
    if not kept:
        raise DataError(f"{root} holds {len(paths)} image file(s) but no readable colour photo")
    return ScanResult(kept, verdicts.count("gray"), verdicts.count("bad"))


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch (independent of batch and worker layout)."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _rand(gen: torch.Generator) -> float:
    return float(torch.rand((), generator=gen))


def augment_crop(img: Tensor, size: int, augment: Augment, gen: torch.Generator | None) -> Tensor:
    """Random square crop of ``img`` (``(3, H, W)`` uint8) resized to ``(3, size, size)``.

    ``gen=None`` gives the deterministic validation view: the central square of the short side.
    """
    h, w = img.shape[-2:]
    short = min(h, w)
    if gen is None:
        side = short
        top, left = (h - side) // 2, (w - side) // 2
        return TF.resized_crop(img, top, left, side, side, [size, size], antialias=True)
    scale = MIN_ZOOM_SCALE + (1 - MIN_ZOOM_SCALE) * _rand(gen) if augment.zoom else 1.0
    side = max(1, round(short * scale))
    top = int(torch.randint(0, h - side + 1, (), generator=gen))
    left = int(torch.randint(0, w - side + 1, (), generator=gen))
    if augment.rotate or augment.shear:
        angle = (2 * _rand(gen) - 1) * MAX_ROTATION_DEG if augment.rotate else 0.0
        shear = (2 * _rand(gen) - 1) * MAX_SHEAR_DEG if augment.shear else 0.0
        big = math.ceil(size * _AFFINE_MARGIN)
        out = TF.resized_crop(img, top, left, side, side, [big, big], antialias=True)
        out = TF.affine(out, angle=angle, translate=[0, 0], scale=1.0, shear=[shear, 0.0],
                        interpolation=TF.InterpolationMode.BILINEAR)
        out = TF.center_crop(out, [size, size])
    else:
        out = TF.resized_crop(img, top, left, side, side, [size, size], antialias=True)
    if augment.flip and _rand(gen) < 0.5:
        out = TF.horizontal_flip(out)
    return out.contiguous()


class PhotoDataset(Dataset):
    """Colour photos as ``(3, size, size)`` uint8 RGB tensors.

    Items are addressed by ``(index, sample_seed)`` keys (see :class:`ResumableSampler`); a plain int index
    gives the deterministic centre crop (validation).
    Args:
        paths: photo files (used when ``images`` is None).
        size: output side in pixels.
        augment: which augmentations apply to keyed (training) items.
        images: optional ``(N, 3, S, S)`` uint8 cache that replaces file decoding.
    """

    def __init__(self, paths: Sequence[Path], size: int, augment: Augment, images: Tensor | None = None):
        self.paths = list(paths)
        self.size = int(size)
        self.augment = augment
        self.images = images
        if images is not None and images.shape[0] != len(self.paths):
            raise DataError(f"cache holds {images.shape[0]} images but the folder has {len(self.paths)}")

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Tensor:
        if self.images is not None:
            return self.images[index]
        # Decode at (at least) 1.36x the crop size so zoom/affine have pixels to work with.
        img = open_rgb(self.paths[index], math.ceil(self.size * _AFFINE_MARGIN))
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)

    def __getitem__(self, key: int | tuple[int, int]) -> Tensor:
        if isinstance(key, tuple):
            index, seed = key
            gen = torch.Generator().manual_seed(seed)
            return augment_crop(self.load(index), self.size, self.augment, gen)
        return augment_crop(self.load(int(key)), self.size, self.augment, None)


class ResumableSampler(DistributedSampler):
    """Seeded (optionally distributed) shuffling that yields ``(index, sample_seed)`` keys.

    ``set_epoch(epoch, skip_batches)`` starts the epoch after the first ``skip_batches`` batches, which a
    resumed run has already trained on. With ``num_replicas = 1`` no process group is needed.
    """

    def __init__(self, n: int, *, batch_size: int, seed: int, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True, drop_last: bool = True):
        # DistributedSampler only needs len(dataset); a range stands in for the dataset.
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=False)
        self.batch_size = int(batch_size)
        self.drop_last_batch = drop_last
        self.skip = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = int(skip_batches)

    def batches_per_epoch(self) -> int:
        return self.num_samples // self.batch_size if self.drop_last_batch else \
            math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        order = list(super().__iter__())
        usable = self.batches_per_epoch() * self.batch_size
        order = order[:usable][self.skip * self.batch_size:]
        for index in order:
            yield index, sample_seed(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.skip) * self.batch_size


def cache_path(cache_dir: Path, paths: Sequence[Path], size: int) -> Path:
    """Where the decoded uint8 tensor of ``paths`` at ``size`` lives."""
    return Path(cache_dir) / f"{_listing_key(paths)}-{size}.pt"


def build_cache(paths: Sequence[Path], size: int, cache_dir: Path, progress: bool = False) -> Tensor:
    """Decode ``paths`` once into a ``(N, 3, size, size)`` uint8 tensor of central square crops, cached.

    The cache holds the central square of each photo at the training size, so zoom crops from the cache
    are upsampled slightly; non-square photos lose their borders.
    """
    dest = cache_path(cache_dir, paths, size)
    if dest.is_file():
        try:
            images = torch.load(dest, map_location="cpu", weights_only=True)
            if isinstance(images, Tensor) and images.dtype == torch.uint8 and \
                    images.shape == (len(paths), 3, size, size):
                return images
        except (OSError, RuntimeError, EOFError):
            pass  # a broken cache is rebuilt below
    images = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    iterator = range(len(paths))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"caching {len(paths)} images", unit="img")
    for i in iterator:
        img = open_rgb(paths[i], size)
        t = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
        images[i] = augment_crop(t, size, Augment.none(), None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Streamed to disk rather than through colorcore.io.atomic_write_bytes: the tensor is hundreds of MB.
    tmp = dest.with_suffix(f".{os.getpid()}.tmp")
    torch.save(images, tmp)
    os.replace(tmp, dest)
    return images


def to_lab(batch: Tensor) -> tuple[Tensor, Tensor]:
    """uint8 RGB ``(B, 3, H, W)`` on any device -> L ``(B, 1, H, W)`` in [0, 100], ab ``(B, 2, H, W)``."""
    lab = rgb_to_lab(batch.float() / 255.0)
    return lab[:, :1].contiguous(), lab[:, 1:].contiguous()
