"""How high AuC goes with oracle colour: a yardstick for the README's AuC target, not a model.

Usage::

    python scripts/auc_oracle.py --data ../shared/data/colour-corpus/val [--size 64] [--limit N]

For each photo it keeps the true L and replaces ab with (1) the photo's own median ab at every pixel, an
oracle that knows each photo's colour cast and nothing finer, and (2) the true ab shrunk to the working
size and enlarged again (bilinear), what a perfect model at that size would give. It prints the mean AuC
of each (``colorcore.metrics.auc``, the evaluator's code) and of gray (ab = 0).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from colorcore import metrics
from colorcore.color import lab_to_rgb, rgb_to_lab
from colorcore.io import iter_image_files, load_image


def to_uint8(lab: torch.Tensor) -> np.ndarray:
    return (lab_to_rgb(lab)[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    files = sorted(iter_image_files(args.data))[: args.limit]
    scores: dict[str, list[float]] = {"gray (ab = 0)": [], "photo's median ab": [],
                                      f"true ab at {args.size} px": []}
    for path in files:
        rgb = np.array(load_image(path).convert("RGB"))
        lab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255)
        l, ab = lab[:, :1], lab[:, 1:]
        median = ab.flatten(2).median(dim=2).values[..., None, None].expand_as(ab)
        small = F.interpolate(ab, size=(args.size, args.size), mode="bilinear", antialias=True,
                              align_corners=False)
        back = F.interpolate(small, size=rgb.shape[:2], mode="bilinear", align_corners=False)
        for label, guess in zip(scores, (torch.zeros_like(ab), median, back), strict=True):
            scores[label].append(metrics.auc(to_uint8(torch.cat([l, guess], 1)), rgb))
    print(f"{len(files)} photos from {args.data}")
    for label, values in scores.items():
        print(f"{label:<22} AuC {np.mean(values):6.2f} %")


if __name__ == "__main__":
    main()
