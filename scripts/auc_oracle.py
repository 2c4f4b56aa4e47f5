"""How high AuC goes with oracle colour, and where models lose it: a yardstick for the README's AuC target.

Usage::

    python scripts/auc_oracle.py --data ../shared/data/colour-corpus/val [--size 64] [--limit N]
        [--models resnet-regression,autoencoder] [--flip] [--by-source]

For each photo it keeps the true L and replaces ab with (1) the photo's own median ab at every pixel, an
oracle that knows each photo's colour cast and nothing finer, and (2) the true ab shrunk to the working
size and enlarged again (bilinear), what a perfect model at that size would give. It prints the mean AuC
of each (``colorcore.metrics.auc``, the evaluator's code) and of gray (ab = 0).

``--models`` adds rows for models run through :class:`colorcore.pipeline.Colorizer` at their trained size;
with two or more, an ``ensemble`` row averages their ab. ``--flip`` adds each model (and the ensemble)
averaged with its run on the mirrored photo. ``--by-source`` adds a column per source, the file-name prefix
before the last ``_`` (``flowers_12.jpg`` -> ``flowers``), as in the colour corpus.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from colorcore import metrics
from colorcore.color import lab_to_rgb, rgb_to_lab
from colorcore.io import iter_image_files, load_image
from colorcore.pipeline import Colorizer


def to_uint8(lab: torch.Tensor) -> np.ndarray:
    return (lab_to_rgb(lab)[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def to_lab(rgb: np.ndarray) -> torch.Tensor:
    return rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()[None] / 255)


def model_ab(colorizer: Colorizer, photo: Image.Image, mirrored: bool = False) -> torch.Tensor:
    """ab ``(1, 2, H, W)`` of the model's full-size output; with ``mirrored``, of its run on the mirrored
    photo, mirrored back."""
    if not mirrored:
        return to_lab(np.array(colorizer.colorize(photo)))[:, 1:]
    return to_lab(np.array(ImageOps.mirror(colorizer.colorize(ImageOps.mirror(photo)))))[:, 1:]


def source_of(path: Path) -> str:
    return path.stem.rsplit("_", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--models", default="", help="comma-separated model or weights names")
    parser.add_argument("--flip", action="store_true", help="also average each model with its mirrored run")
    parser.add_argument("--by-source", action="store_true", help="a column per file-name source prefix")
    args = parser.parse_args()
    files = sorted(iter_image_files(args.data))[: args.limit]
    colorizers = {name: Colorizer(name, size=None) for name in filter(None, args.models.split(","))}
    # scores[row][source] -> per-photo AuC; source "all" holds every photo.
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

    def record(row: str, source: str, l: torch.Tensor, ab: torch.Tensor, rgb: np.ndarray) -> None:
        value = metrics.auc(to_uint8(torch.cat([l, ab], 1)), rgb)
        scores[row]["all"].append(value)
        scores[row][source].append(value)

    for path in files:
        photo = load_image(path).convert("RGB")
        rgb = np.array(photo)
        lab = to_lab(rgb)
        l, ab = lab[:, :1], lab[:, 1:]
        source = source_of(path)
        median = ab.flatten(2).median(dim=2).values[..., None, None].expand_as(ab)
        small = F.interpolate(ab, size=(args.size, args.size), mode="bilinear", antialias=True,
                              align_corners=False)
        back = F.interpolate(small, size=rgb.shape[:2], mode="bilinear", align_corners=False)
        record("gray (ab = 0)", source, l, torch.zeros_like(ab), rgb)
        record("photo's median ab", source, l, median, rgb)
        record(f"true ab at {args.size} px", source, l, back, rgb)
        plain = [model_ab(colorizer, photo) for colorizer in colorizers.values()]
        variants = [("", plain)]
        if args.flip:  # each model's plain run averaged with its mirrored one
            variants.append(("+flip", [(ab + model_ab(colorizer, photo, mirrored=True)) / 2
                                       for ab, colorizer in zip(plain, colorizers.values(), strict=True)]))
        for suffix, predictions in variants:
            for name, ab_pred in zip(colorizers, predictions, strict=True):
                record(name + suffix, source, l, ab_pred, rgb)
            if len(predictions) > 1:
                record("ensemble" + suffix, source, l, torch.stack(predictions).mean(0), rgb)

    print(f"{len(files)} photos from {args.data}; AuC (%), mean over photos")
    columns = ["all"]
    if args.by_source:
        counts = scores["gray (ab = 0)"]
        columns += sorted((s for s in counts if s != "all"), key=lambda s: (-len(counts[s]), s))
    print("| row | " + " | ".join(f"{c} ({len(scores['gray (ab = 0)'][c])})" for c in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for row, by_source in scores.items():
        print(f"| {row} | " + " | ".join(f"{np.mean(by_source[c]):.2f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
