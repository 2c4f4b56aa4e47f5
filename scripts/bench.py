"""Speed of the colourisation pipeline, end to end: figures to read, not a test.

Usage::

    python scripts/bench.py [--sizes 512x512,1024x768,4000x3000] [--repeat 3] [--threads 2]
        [--weights NAME] [--model eccv16-small] [--skip-e2e] [--skip-app] [--skip-rss]

1. ``eccv16`` end to end, from opening a JPEG to a colour RGB array at the original size, for each size:

   - **reference**, a plain pipeline written here: PIL decode, scikit-image ``rgb2lab`` at full resolution
     (float64), ``skimage.transform.resize`` of L to 256 x 256 with anti-aliasing, the eager float32 model
     (``predict_ab`` under ``torch.inference_mode``), bilinear ab upsampling (``F.interpolate``),
     scikit-image ``lab2rgb`` at full resolution, rounding to uint8;
   - ``Colorizer(fast=False)`` and ``Colorizer(fast=True)`` (``predict(path).rgb``).

   It prints the median wall time (and CPU time) of ``--repeat`` rounds after one warm-up (the three
   take turns within each round), the speed-up over the reference and the mean / max |delta RGB|
   against the reference's output (0-255).
   eccv16 runs at width 1.0 with random He-normal weights (and random BatchNorm statistics) unless
   ``--weights NAME`` names installed weights: the published weights cannot be downloaded on a machine
   without internet, and PyTorch's default initialisation would give almost flat logits, i.e. almost gray
   output, which would make the |delta RGB| comparison meaningless.
2. App-style: the UI model (``--model``, with its bundled weights from ``assets/weights`` when there are
   some, else random) at 512 x 512, at the size it was trained at, end to end. Target: <= 150 ms on 2 cores.
3. Resident memory (psutil) of a fresh process holding three colourisers (``--rss-models``: model names
   mean that architecture at full size with random weights, the worst case; weights names mean those
   bundled weights), each having colourised one 512 x 512 photo. Target: <= 1.5 GB.

Numbers taken while other jobs use the CPU are noisy; the CPU times are less sensitive to that than the
wall times when running with one thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import lab2rgb, rgb2lab
from skimage.transform import resize
from torch import nn

from colorcore import create_model
from colorcore.fast import cpu_has_fast_bf16, he_init, nnpack_ok
from colorcore.pipeline import Colorizer
from colorcore.registry import list_models
from colorcore.studio import release_memory
from colorcore.weights import available_weights, find_weights

REFERENCE_SIZE = 256


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like ``(H, W, 3)`` uint8 image: smooth colour regions, edges and grain (JPEG-realistic)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    detail = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float32)
    mid = np.asarray(Image.fromarray(detail).resize((width, height), Image.Resampling.NEAREST), np.float32)
    img = 0.7 * base + 0.3 * mid + rng.normal(0, 4, (height, width, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def load(model_name: str, weights: str | None, *, bundled: bool) -> tuple[nn.Module, str]:
    """The model with named weights, else (if ``bundled``) its first bundled weights, else random He weights.

    Returns the model and a label saying which weights it has.
    """
    if weights:
        return create_model(model_name, pretrained=weights).eval(), f"weights {weights}"
    named = find_weights(model_name)  # a weights name such as "siggraph17-w25"
    if bundled and named is not None and named.file is not None:
        return create_model(named.model, pretrained=named.name).eval(), f"bundled weights {named.name}"
    entries = [e for e in available_weights(model_name) if e.file is not None] if bundled else []
    if entries:
        name = entries[0].name
        return create_model(model_name, pretrained=name).eval(), f"bundled weights {name}"
    why = "no bundled weights" if bundled else "published weights cannot be downloaded here"
    return he_init(create_model(model_name)), f"random He-normal weights ({why})"


def reference_pipeline(path: Path, model: nn.Module, size: int = REFERENCE_SIZE) -> np.ndarray:
    """The plain pipeline: scikit-image Lab at full resolution, eager float32 model, bilinear ab."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    lab = rgb2lab(rgb)
    l_small = resize(lab[..., 0], (size, size), anti_aliasing=True)
    with torch.inference_mode():
        ab = model.predict_ab(torch.from_numpy(l_small).float()[None, None])
        ab_full = F.interpolate(ab, size=rgb.shape[:2], mode="bilinear", align_corners=False)[0]
    lab[..., 1:] = ab_full.permute(1, 2, 0).numpy()
    return (lab2rgb(lab) * 255).round().astype(np.uint8)


Timing = tuple[float, float, np.ndarray]  # median wall s, median CPU s, last result


def timed(fns: dict[str, Callable[[], np.ndarray]], repeat: int) -> dict[str, Timing]:
    """Median wall and CPU seconds of each function over ``repeat`` rounds, and its last result.

    One warm-up call each, then the functions take turns within every round, so that a change in the
    machine's background load hits all of them alike.
    """
    results = {name: fn() for name, fn in fns.items()}
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            results[name] = fn()
            walls[name].append(time.perf_counter() - w0)
            cpus[name].append(time.process_time() - c0)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name]), results[name])
            for name in fns}


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def bench_e2e(args: argparse.Namespace, folder: Path) -> None:
    model, label = load("eccv16", args.weights, bundled=False)
    print(f"\n== eccv16 end to end (width 1.0, {label}; working size {REFERENCE_SIZE})")
    plain = Colorizer(model, size=REFERENCE_SIZE, fast=False)
    fast = Colorizer(model, size=REFERENCE_SIZE, fast=True)
    print(f"fast path: {fast.fast_report}")
    header = f"{'size':>10} {'MP':>5} | {'pipeline':<18} {'wall s':>7} {'cpu s':>7} {'speed-up':>8} " \
             f"{'mean|dRGB|':>10} {'max|dRGB|':>9}"
    print(header)
    print("-" * len(header))
    for w, h in args.sizes:
        path = folder / f"photo_{w}x{h}.jpg"
        Image.fromarray(synthetic_photo(h, w, seed=w + h)).save(path, quality=90)
        runs = timed({"reference (skimage)": lambda p=path: reference_pipeline(p, model),
                      "colorcore plain": lambda p=path: plain.predict(p).rgb,
                      "colorcore fast": lambda p=path: fast.predict(p).rgb}, args.repeat)
        ref_wall, _, ref = runs["reference (skimage)"]
        rows = [(name, wall, cpu, out) for name, (wall, cpu, out) in runs.items()]
        for name, wall, cpu, out in rows:
            diff = np.abs(out.astype(np.int16) - ref.astype(np.int16))
            print(f"{f'{w}x{h}':>10} {w * h / 1e6:5.1f} | {name:<18} {wall:7.3f} {cpu:7.3f} "
                  f"{ref_wall / wall:7.2f}x {diff.mean():10.3f} {int(diff.max()):9d}")


def bench_app(args: argparse.Namespace, folder: Path) -> None:
    model, label = load(args.model, None, bundled=True)
    colorizer = Colorizer(model, size=None)
    path = folder / "app_512.jpg"
    Image.fromarray(synthetic_photo(512, 512, seed=7)).save(path, quality=90)
    plain = Colorizer(model, size=None, fast=False)
    runs = timed({"fast": lambda: colorizer.predict(path).rgb, "plain": lambda: plain.predict(path).rgb},
                 max(args.repeat, 5))
    (wall, cpu, _), (p_wall, p_cpu, _) = runs["fast"], runs["plain"]
    print(f"\n== app-style: {args.model} ({label}) at its working size {colorizer.size}, "
          "512x512 JPEG end to end")
    print(f"fast path: {colorizer.fast_report}")
    print(f"fast  {wall * 1e3:7.1f} ms wall  {cpu * 1e3:7.1f} ms cpu   (target <= 150 ms on 2 cores)")
    print(f"plain {p_wall * 1e3:7.1f} ms wall  {p_cpu * 1e3:7.1f} ms cpu")


def rss_child(models: list[str], image: Path) -> None:
    """Run in a fresh process: RSS before and after loading the models and colourising once with each."""
    import psutil

    proc = psutil.Process()
    before = proc.memory_info().rss
    keep = []
    for name in models:
        # A model name: that architecture at its default (full) size with random weights, the worst case;
        # a weights name: those bundled weights.
        model = he_init(create_model(name)) if name in list_models() else create_model(name).eval()
        colorizer = Colorizer(model, size=None)
        colorizer.predict(image)
        keep.append(colorizer)
    after = proc.memory_info().rss
    release_memory()  # what the apps do after each request
    trimmed = proc.memory_info().rss
    print(json.dumps({"before": before, "after": after, "trimmed": trimmed, "models": models}))


def bench_rss(args: argparse.Namespace, folder: Path) -> None:
    image = folder / "rss_512.jpg"
    Image.fromarray(synthetic_photo(512, 512, seed=3)).save(image, quality=90)
    cmd = [sys.executable, __file__, "--rss-child", ",".join(args.rss_models), "--rss-image", str(image),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"\n== RSS: the child process failed:\n{done.stderr[-2000:]}")
        return
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n== RSS with {len(facts['models'])} models loaded ({', '.join(facts['models'])}), fresh process")
    print(f"after imports {facts['before'] / 2**20:7.0f} MB; with the models, after one 512x512 photo each "
          f"{facts['after'] / 2**20:7.0f} MB;\nafter the apps' release_memory() "
          f"{facts['trimmed'] / 2**20:7.0f} MB   (target <= 1536 MB)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="512x512,1024x768,4000x3000",
                   help="comma-separated WxH sizes for the eccv16 end-to-end figures")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per figure (after one warm-up)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--weights", default=None, help="eccv16 weights name (default: random He weights)")
    p.add_argument("--model", default="eccv16-small", help="the UI model of the app-style figure")
    p.add_argument("--rss-models", default="eccv16-small,eccv16,siggraph17",
                   help="comma-separated models held at once for the RSS figure")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--skip-app", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--rss-image", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rss_child is not None:
        rss_child(args.rss_child.split(","), args.rss_image)
        return 0
    args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    args.rss_models = [m.strip() for m in args.rss_models.split(",") if m.strip()]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, NNPACK usable: {nnpack_ok()}, native bf16: "
          f"{cpu_has_fast_bf16()}")
    with tempfile.TemporaryDirectory(prefix="colorcore-bench-") as tmp:
        folder = Path(tmp)
        if not args.skip_e2e:
            bench_e2e(args, folder)
        if not args.skip_app:
            bench_app(args, folder)
        if not args.skip_rss:
            bench_rss(args, folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
