"""Empirical ab-bin distribution of a photo folder (the class priors of Zhang et al.'s rebalancing).

Usage::

    python -m training.priors --data DIR [--out FILE] [--max-images N] [--no-progress]

Every colour photo under ``DIR`` (recursive; grayscale photos and unreadable files are skipped) is
converted to Lab with :func:`colorcore.color.rgb_to_lab` and each pixel is hard-assigned to its nearest of
the 313 gamut bins (:func:`colorcore.quantize.empirical_bin_distribution`). The normalised histogram is
cached as JSON, by default in ``~/.cache/colorcore/priors-<key>.json`` (``--out`` picks another file),
where the key hashes the sorted file list with the file sizes, the bin centres and ``--max-images``; a
cache file whose key does not match is recomputed and overwritten.
The trainer calls :func:`load_or_compute_priors` and turns the result into rebalancing weights with
:func:`colorcore.quantize.rebalance_weights`.

The helpers :func:`list_photos`, :func:`select_photos` and :func:`read_ab` are shared with
:mod:`training.palette`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from colorcore.color import rgb_to_lab
from colorcore.errors import ConfigError
from colorcore.io import iter_image_files
from colorcore.quantize import empirical_bin_distribution, gamut_centers, rebalance_weights

PRIORS_FORMAT = "colorcore-priors/1"
GRAY_CHROMA = 5.0  # ab chroma below which a pixel counts as neutral
GRAY_FRACTION = 0.01  # a photo with fewer colourful pixels than this is treated as grayscale
_PIXELS_PER_CHUNK = 1 << 18  # ab pixels gathered before one hard-assignment pass


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/colorcore`` or ``~/.cache/colorcore``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorcore"


def list_photos(data_dir: Path) -> list[Path]:
    """Sorted image files under ``data_dir`` (recursive); ConfigError when the folder is missing or empty."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ConfigError(f"data folder {data_dir} does not exist or is not a folder")
    files = iter_image_files(data_dir)
    if not files:
        raise ConfigError(f"no image files under {data_dir}")
    return files


def select_photos(files: Sequence[Path], max_images: int | None, seed: int = 0) -> list[Path]:
    """All ``files``, or a seeded random ``max_images`` of them (sorted), so every subfolder is sampled."""
    if max_images is not None and max_images < 1:
        raise ConfigError(f"max_images must be >= 1, got {max_images}")
    if max_images is None or max_images >= len(files):
        return list(files)
    return sorted(random.Random(seed).sample(list(files), max_images))


def read_ab(path: Path) -> Tensor | None:
    """Physical ab ``(2, H, W)`` float32 of a photo, or None when it is unreadable or (nearly) grayscale."""
    try:
        with Image.open(path) as img:
            rgb = np.array(img.convert("RGB"))  # a writable copy for torch
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    x = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)
    ab = rgb_to_lab(x)[1:]
    if ab.numel() == 0:
        return None
    colourful = (ab.square().sum(dim=0) > GRAY_CHROMA**2).float().mean()
    return ab if float(colourful) >= GRAY_FRACTION else None


def _progress(items: Sequence[Path], desc: str, enabled: bool) -> Iterator[Path]:
    from tqdm import tqdm

    return iter(tqdm(items, desc=desc, unit="img", disable=not enabled or None, file=sys.stderr))


def _cache_key(data_dir: Path, files: Sequence[Path], centers: Tensor, max_images: int | None) -> str:
    digest = hashlib.sha256(f"{PRIORS_FORMAT}\0{max_images}\0".encode())
    digest.update(centers.detach().cpu().double().numpy().tobytes())
    for path in files:
        digest.update(f"{path.relative_to(data_dir).as_posix()}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def compute_priors(
    files: Sequence[Path], centers: Tensor, progress: bool = True
) -> tuple[Tensor, dict[str, int]]:
    """Hard-assignment histogram ``(Q,)`` float64 of every pixel of the colour photos in ``files``.

    Returns the distribution and counts (``images`` used, ``skipped`` gray or unreadable, ``pixels``).
    """
    stats = {"images": 0, "skipped": 0, "pixels": 0}

    def chunks() -> Iterator[Tensor]:
        # Pixels of many small photos go through one assignment pass: fewer, larger GEMMs.
        pending: list[Tensor] = []
        size = 0
        for path in _progress(files, "priors", progress):
            ab = read_ab(path)
            if ab is None:
                stats["skipped"] += 1
                continue
            stats["images"] += 1
            pending.append(ab.reshape(2, -1))
            size += pending[-1].shape[1]
            if size >= _PIXELS_PER_CHUNK:
                yield torch.cat(pending, dim=1)[:, None]  # (2, 1, N): a (*, 2, H, W) map with H = 1
                pending, size = [], 0
        if pending:
            yield torch.cat(pending, dim=1)[:, None]

    def counted() -> Iterator[Tensor]:
        for chunk in chunks():
            stats["pixels"] += chunk.shape[-1]
            yield chunk

    try:
        p = empirical_bin_distribution(counted(), centers)
    except ConfigError as exc:
        raise ConfigError(f"no colour photos to compute priors from ({stats['skipped']} skipped)") from exc
    return p, stats


def _read_cache(path: Path, key: str, q: int) -> Tensor | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        p = torch.tensor(doc["p"], dtype=torch.float64)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if doc.get("format") != PRIORS_FORMAT or doc.get("key") != key or p.shape != (q,):
        return None
    if not torch.isfinite(p).all() or (p < 0).any():
        return None
    return p


def _write_json(path: Path, doc: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a concurrent reader sees the old file or the new one


def load_or_compute_priors(data_dir: Path, centers: Tensor, max_images: int | None = None, *,
                           cache_file: Path | None = None, progress: bool = True) -> Tensor:
    """The empirical bin distribution ``(Q,)`` float64 (sums to 1) of the photos under ``data_dir``.

    Read from the cache when a file for the same photos (names and sizes), centres and ``max_images``
    exists, else computed and cached. ``cache_file`` overrides the default cache location.
    """
    data_dir = Path(data_dir)
    files = select_photos(list_photos(data_dir), max_images)
    key = _cache_key(data_dir, files, centers, max_images)
    path = Path(cache_file) if cache_file else default_cache_dir() / f"priors-{key}.json"
    cached = _read_cache(path, key, centers.shape[0])
    if cached is not None:
        return cached
    p, stats = compute_priors(files, centers, progress)
    doc = {"format": PRIORS_FORMAT, "key": key, "data": str(data_dir), "max_images": max_images, **stats,
           "bins": int(centers.shape[0]), "p": p.tolist()}
    try:
        _write_json(path, doc)
    except OSError as exc:  # a read-only home must not stop training
        print(f"warning: could not cache priors in {path}: {exc}", file=sys.stderr)
    return p


def rebalancing_weights(priors: Tensor, centers: Tensor) -> Tensor:
    """Zhang et al.'s class-rebalancing weights (lambda 0.5, sigma 5) of a ``(Q,)`` bin distribution: what
    every trainer weights its 313-bin loss with and what litecolor's faithful decode divides out."""
    return rebalance_weights(priors, lam=0.5, sigma=5.0, centers=centers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.priors", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of colour photos (recursive)")
    parser.add_argument("--out", type=Path, help="JSON file to write and reuse instead of the cache")
    parser.add_argument("--max-images", type=int, help="a seeded random subset of this many photos")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    args = parser.parse_args(argv)
    # Each photo is a few thousand pixels: splitting such small ops over threads only adds sync overhead
    # (and on a busy machine costs 100x), so one thread is the fast choice here.
    torch.set_num_threads(1)
    try:
        centers = gamut_centers()
        p = load_or_compute_priors(args.data, centers, args.max_images, cache_file=args.out,
                                   progress=not args.no_progress)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    top = torch.argsort(p, descending=True)[:5]
    used = int((p > 0).sum())
    print(f"{used}/{p.numel()} bins used; most frequent: "
          + ", ".join(f"({centers[i, 0]:.0f}, {centers[i, 1]:.0f}) {p[i]:.3f}" for i in top.tolist()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
