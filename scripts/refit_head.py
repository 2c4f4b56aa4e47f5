"""Refit litecolor's 313-bin head alone, with less or no class rebalancing, and score the faithful decode.

Usage::

    python scripts/refit_head.py --data TRAIN_REST --score HOLDOUT_A [--photos 16000] [--gamma 1 0.5 0]
        [--steps 1500] [--threads 2]

The bundled weights stay frozen in fp32. Their decoder's stride-4 features (the head's 64-channel input) and
the ab area-pooled to that grid are taken once for ``--photos`` photos of ``--data`` (a seeded shuffle;
every other batch of 64 mirrored). For each ``--gamma`` the 1 x 1 head, started from the bundled one, is
fitted with Zhang's soft-encoded cross-entropy weighted by ``w ** gamma`` (``w``: the weights' own
``bin_weights``), and the faithful median divides ``w ** gamma`` out, as it divides ``w`` for the bundled
head. Each head, and the bundled one, is then scored through :class:`colorcore.pipeline.Colorizer` at 128 px
on ``--score``: faithful and vivid (T = 0.38) mean PSNR, AuC, colourfulness and CIEDE2000. The features of
16,000 photos take about 2.2 GB of memory.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from colorcore import create_model, metrics, quantize
from colorcore.io import iter_image_files, load_image
from colorcore.pipeline import Colorizer
from colorcore.quantize import ZHANG_TEMPERATURE
from training.data import to_lab
from training.objectives import pool_to

BATCH = 64
SCORES = ("psnr", "auc", "colorfulness", "ciede2000")


def frozen_litecolor() -> nn.Module:
    model = create_model("litecolor", pretrained=True).float().eval()
    model.requires_grad_(False)
    return model


def head_inputs(model: nn.Module, paths: list[Path]) -> tuple[Tensor, Tensor]:
    """(features ``(N, C, h, w)``, ab pooled to ``(N, 2, h, w)``), both fp16, of the photos at their size."""
    grabbed: list[Tensor] = []
    hook = model.class_head.register_forward_pre_hook(lambda _module, args: grabbed.append(args[0].half()))
    pooled: list[Tensor] = []
    start = time.time()
    try:
        with torch.no_grad():
            for i in range(0, len(paths), BATCH):
                rgb = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)
                                   for p in paths[i:i + BATCH]])
                l, ab = to_lab(rgb.flip(-1) if (i // BATCH) % 2 else rgb)
                model.forward_both(l)
                pooled.append(pool_to(ab, grabbed[-1].shape[-2:]).half())
                if i % (20 * BATCH) == 0:
                    print(f"features: {i}/{len(paths)} photos, {time.time() - start:.0f} s", flush=True)
    finally:
        hook.remove()  # scoring runs the same model
    return torch.cat(grabbed), torch.cat(pooled)


def fit_head(model: nn.Module, features: Tensor, ab: Tensor, weights: Tensor, steps: int, lr: float
             ) -> nn.Conv2d:
    """The bundled head refitted on the features, its soft-encoded CE weighted by the true bin's weight."""
    head = nn.Conv2d(features.shape[1], weights.numel(), 1)
    head.load_state_dict(model.class_head.state_dict())
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(0)
    centers = model.decoder.centers.float()
    smoothed = 0.0
    for step in range(steps):
        rows = torch.randint(0, features.shape[0], (32,), generator=generator)
        bins, target = quantize.soft_encode_sparse(ab[rows].float(), centers)
        nll = -(target * F.log_softmax(head(features[rows].float()), dim=1).gather(1, bins)).sum(dim=1)
        pixel_weights = weights[bins[:, 0]]
        loss = (nll * pixel_weights).sum() / pixel_weights.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        smoothed = 0.98 * smoothed + 0.02 * loss.item()
        if step % 500 == 0 or step == steps - 1:
            print(f"  step {step}/{steps}: loss {smoothed:.4f}", flush=True)
    return head


def score(model: nn.Module, files: list[Path]) -> dict[str, dict[str, float]]:
    """Mean scores of the faithful and vivid decodes through the pipeline at 128 px."""
    colorizer = Colorizer(model, size=128)
    decodes = {"faithful": {"method": "faithful"}, "vivid": {"temperature": ZHANG_TEMPERATURE}}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in decodes}
    for path in files:
        truth = np.asarray(load_image(path).convert("RGB"))
        reference = metrics.reference(truth)
        for name, knobs in decodes.items():
            rows[name].append(metrics.compute_all(colorizer.predict(truth, **knobs).rgb, reference))
    return {name: {k: float(np.mean([r[k] for r in scored])) for k in SCORES}
            for name, scored in rows.items()}


def report(label: str, scores: dict[str, dict[str, float]]) -> None:
    for decode, values in scores.items():
        print(f"{label:>14} {decode:>8}: " + "  ".join(f"{k} {v:.3f}" for k, v in values.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="photos to fit on (e.g. TRAIN_REST)")
    parser.add_argument("--score", type=Path, required=True, help="photos to score on (e.g. HOLDOUT_A)")
    parser.add_argument("--photos", type=int, default=16000)
    parser.add_argument("--gamma", type=float, nargs="+", default=[1.0, 0.5, 0.0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1, help="shuffle of --data before taking --photos")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    paths = iter_image_files([args.data])
    random.Random(args.seed).shuffle(paths)
    score_files = iter_image_files([args.score])
    model = frozen_litecolor()
    features, ab = head_inputs(model, paths[: args.photos])
    bundled_head = {k: v.clone() for k, v in model.class_head.state_dict().items()}
    bundled_weights = model.bin_weights.clone()
    report("bundled head", score(model, score_files))
    for gamma in args.gamma:
        weights = bundled_weights.clamp_min(1e-8) ** gamma
        print(f"gamma {gamma:g}: fitting", flush=True)
        head = fit_head(model, features, ab, weights, args.steps, args.lr)
        model.class_head.load_state_dict(head.state_dict())
        model.bin_weights.copy_(weights)
        report(f"gamma {gamma:g}", score(model, score_files))
        model.class_head.load_state_dict(bundled_head)
        model.bin_weights.copy_(bundled_weights)


if __name__ == "__main__":
    main()
