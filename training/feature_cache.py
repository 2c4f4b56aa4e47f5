"""Phase 1 of the flagship's training: cache the frozen encoder's features once, for every photo.

With the encoder frozen, its features of a photo never change, so running it every epoch is wasted
work on a CPU. ``build_cache`` runs it once over a folder (each photo as itself and mirrored), and
stores each tap as one float16 ``.npy`` array that ``training.train_decoder`` memory-maps. Targets (ab
area-pooled to the logits' stride-4 grid) are stored once and mirrored on the fly.

Layout of a cache folder (``meta.json`` is written last, so a folder without it is incomplete)::

    t4.npy t8.npy t16.npy t32.npy   (N * flips, C, h, w) float16, row = photo * flips + flip
    ab4.npy                         (N, 2, S/4, S/4) float16, physical ab pooled to stride 4
    rgb.npy                         (N, 3, S, S) uint8, the photos at the cache size (for metrics)
    meta.json                       model, config, size, flips, photo list digest and count

    python -m training.feature_cache --data DIR --out CACHE [--size 128] [--flips 2] [--config k=v ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorcore.errors import ColorcoreError
from colorcore.io import atomic_write_text
from colorcore.models.litecolor import TAP_STRIDES
from colorcore.registry import build_config, build_model, config_to_dict
from training import data as tdata

FORMAT = "colorcore-feature-cache/1"


class CacheError(ColorcoreError):
    """A feature cache is missing, incomplete or was made for another model or photo set."""


def square_rgb(path: Path, size: int) -> np.ndarray:
    """The photo at ``path`` as ``(3, size, size)`` uint8: short side resized to ``size``, centre crop."""
    img = tdata.open_rgb(path)
    w, h = img.size
    scale = size / min(w, h)
    if (w, h) != (size, size):
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.LANCZOS)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def listing_digest(paths: Sequence[Path]) -> str:
    return hashlib.sha256("\n".join(p.name for p in paths).encode()).hexdigest()[:16]


@torch.no_grad()
def build_cache(
    data_dir: Path,
    out: Path,
    *,
    model_name: str = "litecolor",
    config: dict[str, Any] | None = None,
    size: int = 128,
    flips: int = 2,
    batch_size: int = 64,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the frozen encoder over every colour photo under ``data_dir``; returns the cache's meta."""
    if flips not in (1, 2):
        raise CacheError(f"flips must be 1 (as is) or 2 (as is and mirrored), got {flips}")
    cfg = build_config(model_name, **{"encoder_weights": "imagenet", **(config or {})})
    model = build_model(model_name, cfg).eval()
    if size % model.stride:
        raise CacheError(f"size {size} must be a multiple of {model_name}'s stride {model.stride}")
    scan = tdata.scan_images(Path(data_dir))
    paths = list(scan.paths[:limit] if limit else scan.paths)
    if not paths:
        raise CacheError(f"no colour photos under {data_dir}")
    n = len(paths)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    probe = model.encode(torch.full((1, 1, size, size), 50.0))
    taps = {
        s: np.lib.format.open_memmap(
            tmp / f"t{s}.npy", mode="w+", dtype=np.float16, shape=(n * flips, *t.shape[1:])
        )
        for s, t in zip(TAP_STRIDES, probe, strict=True)
    }
    ab4 = np.lib.format.open_memmap(
        tmp / "ab4.npy", mode="w+", dtype=np.float16, shape=(n, 2, size // 4, size // 4)
    )
    rgb_all = np.lib.format.open_memmap(tmp / "rgb.npy", mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
    from tqdm import tqdm

    start = time.perf_counter()
    bar = tqdm(total=n, unit="photo", disable=not progress, desc="encoder features")
    for lo in range(0, n, batch_size):
        chunk = paths[lo : lo + batch_size]
        rgb = np.stack([square_rgb(p, size) for p in chunk])
        rgb_all[lo : lo + len(chunk)] = rgb
        l, ab = tdata.to_lab(torch.from_numpy(rgb))
        ab4[lo : lo + len(chunk)] = F.adaptive_avg_pool2d(ab, size // 4).numpy().astype(np.float16)
        for flip in range(flips):
            feats = model.encode(l.flip(-1) if flip else l)
            for s, t in zip(TAP_STRIDES, feats, strict=True):
                taps[s][[(lo + i) * flips + flip for i in range(len(chunk))]] = t.numpy().astype(np.float16)
        bar.update(len(chunk))
    bar.close()
    for arr in (*taps.values(), ab4, rgb_all):
        arr.flush()
    meta = {
        "format": FORMAT,
        "model": model_name,
        "config": config_to_dict(cfg),
        "size": size,
        "flips": flips,
        "photos": n,
        "data_dir": str(Path(data_dir).resolve()),
        "listing": listing_digest(paths),
        "grayscale_skipped": scan.grayscale,
        "unreadable_skipped": scan.unreadable,
        "seconds": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
    }
    atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return meta


def open_cache(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a complete cache; arrays are read-only memory maps."""
    meta_path = Path(folder) / "meta.json"
    if not meta_path.is_file():
        raise CacheError(
            f"{folder} is not a complete feature cache (no meta.json); build it with "
            "python -m training.feature_cache"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise CacheError(f"{folder} has format {meta.get('format')!r}, expected {FORMAT!r}")
    names = [f"t{s}" for s in TAP_STRIDES] + ["ab4", "rgb"]
    return meta, {k: np.load(Path(folder) / f"{k}.npy", mmap_mode="r") for k in names}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.feature_cache", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path, help="folder of colour photos (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="cache folder to write")
    p.add_argument("--model", default="litecolor")
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="model config overrides")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--flips", type=int, default=2, choices=(1, 2))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, default=None, help="first N photos only (tests)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from training.train import _parse_kv

        if args.threads:
            torch.set_num_threads(args.threads)
        meta = build_cache(
            args.data,
            args.out,
            model_name=args.model,
            config=_parse_kv(args.config),
            size=args.size,
            flips=args.flips,
            batch_size=args.batch_size,
            limit=args.limit,
            progress=not args.no_progress,
        )
    except ColorcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"cached {meta['photos']} photos x {meta['flips']} flips in {meta['seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
