"""Time sRGB <-> Lab on a large image: ``python scripts/bench_color.py [--megapixels 12] [--threads 2]``.

Prints the best-of-``--repeats`` wall time of ``colorcore.color.rgb_to_lab`` and ``lab_to_rgb`` on a random
``(3, H, W)`` float32 image (and, with ``--skimage``, of scikit-image's ``rgb2lab`` / ``lab2rgb`` for
comparison), plus the largest absolute difference to scikit-image on a small crop.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

import numpy as np
import torch
from skimage import color as skcolor

from colorcore.color import lab_to_rgb, rgb_to_lab


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time in seconds over ``repeats`` calls (the minimum is the least noisy on a shared box)."""
    return min(timeit.repeat(fn, number=1, repeat=repeats))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skimage", action="store_true", help="also time scikit-image (slow)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    h = int(round((args.megapixels * 1e6 * 3 / 4) ** 0.5))
    w = int(round(h * 4 / 3))
    rgb = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    print(f"image {h}x{w} ({h * w / 1e6:.1f} MP), float32, {torch.get_num_threads()} threads")

    with torch.no_grad():
        lab = rgb_to_lab(rgb)
        t_fwd = _best_time(lambda: rgb_to_lab(rgb), args.repeats)
        t_inv = _best_time(lambda: lab_to_rgb(lab), args.repeats)
    print(f"colorcore rgb_to_lab  {t_fwd * 1e3:8.1f} ms")
    print(f"colorcore lab_to_rgb  {t_inv * 1e3:8.1f} ms")
    print(f"colorcore both ways   {(t_fwd + t_inv) * 1e3:8.1f} ms")

    crop = rgb[:, :256, :256]
    ref = skcolor.rgb2lab(crop.permute(1, 2, 0).double().numpy())
    err_fwd = np.abs(rgb_to_lab(crop).permute(1, 2, 0).double().numpy() - ref).max()
    ref_inv = skcolor.lab2rgb(ref)
    err_inv = np.abs(lab_to_rgb(torch.from_numpy(ref).permute(2, 0, 1).float()).permute(1, 2, 0).numpy()
                     - ref_inv).max()
    print(f"max |diff| vs scikit-image (float32): Lab {err_fwd:.2e}, RGB {err_inv:.2e}")

    if args.skimage:
        img = rgb.permute(1, 2, 0).numpy()
        lab_np = skcolor.rgb2lab(img)
        s_fwd = _best_time(lambda: skcolor.rgb2lab(img), 1)
        s_inv = _best_time(lambda: skcolor.lab2rgb(lab_np), 1)
        print(f"skimage   rgb2lab     {s_fwd * 1e3:8.1f} ms")
        print(f"skimage   lab2rgb     {s_inv * 1e3:8.1f} ms")
        print(f"speed-up both ways    {(s_fwd + s_inv) / (t_fwd + t_inv):8.1f}x")


if __name__ == "__main__":
    main()
