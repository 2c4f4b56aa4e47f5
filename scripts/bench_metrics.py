"""Time the studio's scoring of one photo: ``python scripts/bench_metrics.py [--megapixels 1] [--threads 2]``.

Scores ``--models`` noisy copies of an example photo (``assets/examples/rocket.jpg`` enlarged to
``--megapixels``) against it, as :func:`colorcore.studio.score` does: the truth's side once
(:func:`colorcore.metrics.reference`), then :func:`colorcore.metrics.compute_all` per prediction on
``--threads`` worker threads. Prints the best-of-``--repeats`` milliseconds of each metric on one thread, of
one ``compute_all`` and of the whole batch. Not a test: it measures, it does not judge.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorcore import metrics

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "examples" / "rocket.jpg"


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls, in ms (the minimum is the least noisy on a shared box)."""
    return 1000 * min(timeit.repeat(fn, number=1, repeat=repeats))


def photo(megapixels: float) -> np.ndarray:
    with Image.open(PHOTO) as im:
        scale = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
        return np.asarray(im.convert("RGB").resize((round(im.width * scale), round(im.height * scale))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--models", type=int, default=6, help="predictions scored in the batch")
    parser.add_argument("--threads", type=int, default=2, help="torch threads and scoring workers")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    truth = photo(args.megapixels)
    rng = np.random.default_rng(0)
    preds = [np.clip(truth + rng.integers(-30, 31, truth.shape), 0, 255).astype(np.uint8)
             for _ in range(args.models)]
    ref = metrics.reference(truth)
    lab_p = metrics.image_to_lab(preds[0])
    pred = preds[0]
    parts = {
        "Lab of the prediction": lambda: metrics.image_to_lab(pred),
        "ImgSim": lambda: metrics.imgsim(pred, truth),
        "PSNR": lambda: metrics.psnr(pred, truth),
        "SSIM (truth's sums ready)": lambda: metrics._ssim(pred, ref.ssim_sums),
        "ab MSE + ab R²": lambda: (metrics._ab_mse(lab_p, ref.lab), metrics._ab_r2(lab_p, ref.lab)),
        "AuC": lambda: metrics._auc(lab_p, ref.lab),
        "colourfulness": lambda: metrics.colorfulness(pred),
        "CIEDE2000": lambda: metrics._ciede2000(lab_p, ref.lab),
    }
    print(f"{truth.shape[1]}x{truth.shape[0]} photo ({truth.shape[0] * truth.shape[1] / 1e6:.2f} MP), "
          f"torch threads {args.threads}, best of {args.repeats}")
    for name, fn in parts.items():
        print(f"  {name:<28} {best_ms(fn, args.repeats):8.1f} ms")
    whole = {"the truth side (once)": lambda: metrics.reference(truth),
             "compute_all, one model": lambda: metrics.compute_all(pred, ref)}
    for name, fn in whole.items():
        print(f"  {name:<28} {best_ms(fn, args.repeats):8.1f} ms")
    with ThreadPoolExecutor(args.threads) as pool:
        batch = best_ms(lambda: list(pool.map(lambda p: metrics.compute_all(p, ref), preds)), args.repeats)
    print(f"  {f'{args.models} models on {args.threads} threads':<28} {batch:8.1f} ms")


if __name__ == "__main__":
    main()
