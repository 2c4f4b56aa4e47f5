"""Fit the k-means ab palettes used by the palette classifiers (``colorcore/data/palette{bins}.json``).

Usage::

    python -m training.palette --data DIR [--bins 16 24 32] [--samples N] [--max-images N]
        [--seed 0] [--out-dir colorcore/data] [--no-progress]

A seeded random subset of the photos under ``DIR`` (recursive; grayscale and unreadable files skipped)
is converted to Lab with :func:`colorcore.color.rgb_to_lab`; the same number of ab pixels is drawn from
each photo, ``--samples`` in all, and :func:`colorcore.quantize.fit_palette` (scikit-learn k-means) fits
one palette per ``--bins`` value. Near-neutral pixels are kept: most of a photo is nearly gray, and a
palette without neutral colours could not decode them.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from colorcore.errors import ConfigError
from colorcore.quantize import DATA_DIR, fit_palette, save_palette
from training.priors import _progress, list_photos, read_ab, select_photos


def sample_ab(
    files: Sequence[Path], samples: int, seed: int = 0, progress: bool = True
) -> tuple[Tensor, int]:
    """Up to ``samples`` ab pixels ``(N, 2)`` drawn evenly from the colour photos in ``files``.

    Each photo gets an equal share of what is still missing, so skipped photos (gray or unreadable) are
    made up by the later ones; fewer come back only when the photos run out of pixels. Returns the
    samples and the number of photos used.
    """
    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    gen = torch.Generator().manual_seed(seed)
    picked: list[Tensor] = []
    collected = 0
    for i, path in enumerate(_progress(files, "sampling ab", progress)):
        ab = read_ab(path)
        if ab is None:
            continue
        quota = math.ceil((samples - collected) / (len(files) - i))
        flat = ab.reshape(2, -1)
        idx = torch.randperm(flat.shape[1], generator=gen)[:quota]
        picked.append(flat[:, idx].T)
        collected += len(idx)
    if not picked:
        raise ConfigError("no colour photos to sample ab pixels from")
    return torch.cat(picked)[:samples], len(picked)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.palette", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of colour photos (recursive)")
    parser.add_argument("--bins", type=int, nargs="+", default=[16, 24, 32], help="palette sizes to fit")
    parser.add_argument("--samples", type=int, default=200_000, help="ab pixels in total (default 200000)")
    parser.add_argument("--max-images", type=int, default=2000, help="photos sampled (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR, help="where palette{bins}.json go")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # per-photo work is tiny; see training.priors
    try:
        files = select_photos(list_photos(args.data), args.max_images, args.seed)
        start = time.perf_counter()
        ab, used = sample_ab(files, args.samples, args.seed, progress=not args.no_progress)
        print(f"{len(ab)} ab samples from {used} photos ({len(files) - used} skipped) "
              f"in {time.perf_counter() - start:.1f} s")
        for bins in args.bins:
            start = time.perf_counter()
            centers = fit_palette(ab, bins, seed=args.seed)
            path = args.out_dir / f"palette{bins}.json"
            source = {
                "data": "/".join(Path(args.data).resolve().parts[-2:]),
                "photos": used,
                "samples": len(ab),
                "seed": args.seed,
                "method": "sklearn KMeans(n_init=4), centres sorted by a then b",
            }
            save_palette(path, centers, source)
            chroma = centers.norm(dim=1)
            print(f"wrote {path}: {bins} colours, chroma {chroma.min():.1f}..{chroma.max():.1f} "
                  f"({time.perf_counter() - start:.1f} s)")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
