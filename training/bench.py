"""Training throughput on synthetic data: images/s and the fraction of the device's peak FLOP/s.

Usage::

    python -m training.bench --model eccv16 --size 256 [--batch-size 64] [--steps 20] [--warmup 3]
        [--device cuda] [--amp] [--channels-last] [--compile] [--config key=value ...]
        [--peak-tflops X] [--json] [--frozen-encoder]

One full training step (the trainer's :class:`training.train.Stepper`: forward, loss, backward, optimiser
update; for pix2pix also the discriminator step) is timed over ``--steps`` steps after ``--warmup``
steps. FLOPs per step are counted once with :class:`torch.utils.flop_counter.FlopCounterMode` on the
eager model (convolutions and matmuls, forward and backward). The peak is the dense tensor-core rate of
the GPU for the precision in use (H100 / H200: 989 TFLOP/s bf16 or fp16, 495 TF32); on other devices,
and on CPU, it is "unknown" unless ``--peak-tflops`` is given. 313-bin classifiers use uniform class
weights here (no priors on synthetic data).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from colorcore.errors import ColorcoreError
from colorcore.registry import build_config, build_model, get_spec
from training.data import to_lab
from training.objectives import ObjectiveOptions, Pix2PixGAN, make_objective
from training.train import Precision, Stepper, _parse_kv, pick_precision

# Dense peak TFLOP/s per GPU family and precision (NVIDIA datasheets, SXM parts, without sparsity).
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H200": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
}


def precision_key(precision: Precision, device: torch.device) -> str:
    if precision.dtype == torch.bfloat16:
        return "bf16"
    if precision.dtype == torch.float16:
        return "fp16"
    # cuDNN convolutions use TF32 tensor cores by default for fp32 tensors.
    return "tf32" if device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"


def device_peak(device: torch.device, key: str) -> tuple[float | None, str]:
    """Peak TFLOP/s of ``device`` for precision ``key`` and the device's name (None when unknown)."""
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    for family, table in PEAK_TFLOPS.items():
        if family in name:
            return table.get(key), name
    return None, name


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_batch(batch: int, size: int, device: torch.device, seed: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random colour images (low-frequency noise upsampled) as L and ab on ``device``."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, max(2, size // 16), max(2, size // 16), generator=gen)
    rgb = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return to_lab((rgb * 255).round().to(torch.uint8).to(device))


class CachedDecode(torch.nn.Module):
    """Phase 1's step: the decoder on encoder features computed once (the input L is ignored)."""

    def __init__(self, model: torch.nn.Module, l: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        with torch.no_grad():
            self.taps = tuple(t.detach() for t in model.encode(l))

    def forward(self, l: torch.Tensor) -> Any:
        return self.model.decode(*self.taps)


def bench(model_name: str, size: int = 256, batch_size: int = 64, steps: int = 20, warmup: int = 3,
          device: str | None = None, amp: bool = False, channels_last: bool = False, compile: bool = False,
          config: dict[str, Any] | None = None, peak_tflops: float | None = None, lr: float = 1e-4,
          frozen_encoder: bool = False, log=print) -> dict[str, Any]:
    """Measure training throughput; returns images/s, TFLOP/s, FLOPs per step and peak fraction.

    ``frozen_encoder`` times phase 1 of a model with ``encode`` / ``decode`` (litecolor): the encoder's
    features are computed once, as the feature cache does, and each step trains the decoder alone.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    spec = get_spec(model_name)
    model = build_model(model_name, build_config(model_name, **(config or {})))
    stride = int(getattr(model, "stride", 1))
    if size % stride:
        raise ColorcoreError(f"--size {size} must be a multiple of {model_name}'s stride {stride}")
    objective = make_objective(model, spec.task, ObjectiveOptions(), lambda c: torch.ones(c.shape[0]))
    model.to(dev)
    objective.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        objective.to(memory_format=torch.channels_last)
    model.train()
    objective.train()
    precision = pick_precision(amp, dev, log)
    gan = isinstance(objective, Pix2PixGAN)
    if frozen_encoder and not hasattr(model, "decode"):
        raise ColorcoreError(f"--frozen-encoder needs a model with encode/decode (litecolor): {model_name}")
    if frozen_encoder:
        model.encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    betas = getattr(objective, "betas", (0.9, 0.999))

    def optimiser(ps):
        opt = torch.optim.AdamW(ps, lr=lr, betas=betas)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0), torch.amp.GradScaler(
            dev.type, enabled=precision.scaler)

    opt, sched, scaler = optimiser(params)
    d_opt = d_sched = d_scaler = None
    if gan:
        d_opt, d_sched, d_scaler = optimiser(list(objective.discriminator.parameters()))
    l, ab = synthetic_batch(batch_size, size, dev)
    if channels_last:
        l = l.contiguous(memory_format=torch.channels_last)
    eager = CachedDecode(model, l) if frozen_encoder else objective.adapter(model)
    net = torch.compile(eager) if compile else eager
    d_net = objective.discriminator if gan else None
    make = lambda n: Stepper(objective, model, n, d_net, opt, sched, scaler, d_opt, d_sched, d_scaler,  # noqa: E731
                             precision, dev, params)

    counter = FlopCounterMode(display=False)
    with counter:
        make(eager).step(l, ab, 0)
    flops = int(counter.get_total_flops())

    stepper = make(net)
    for i in range(warmup):
        stepper.step(l, ab, i)
    _sync(dev)
    start = time.perf_counter()
    for i in range(steps):
        loss, _ = stepper.step(l, ab, warmup + i)
    _sync(dev)
    seconds = time.perf_counter() - start
    loss_value = float(loss)
    key = precision_key(precision, dev)
    peak, device_name = device_peak(dev, key)
    if peak_tflops is not None:
        peak = float(peak_tflops)
    achieved = flops * steps / seconds / 1e12
    result = {
        "model": model_name + (" (phase 1: frozen encoder, cached features)" if frozen_encoder else ""),
        "device": device_name, "size": size, "batch_size": batch_size, "steps": steps,
        "amp": amp, "channels_last": channels_last, "compile": compile, "precision": key,
        "seconds": seconds, "images_per_s": batch_size * steps / seconds, "step_ms": 1000 * seconds / steps,
        "gflops_per_step": flops / 1e9, "tflops_per_s": achieved,
        "peak_tflops": peak, "peak_fraction": achieved / peak if peak else None, "final_loss": loss_value,
    }
    return result


def format_result(r: dict[str, Any]) -> str:
    peak = (f"{r['peak_fraction']:.1%} of {r['peak_tflops']:.0f} TFLOP/s ({r['precision']} dense peak)"
            if r["peak_fraction"] is not None else "peak unknown (pass --peak-tflops)")
    return (f"{r['model']} on {r['device']}: {r['images_per_s']:.1f} images/s "
            f"({r['step_ms']:.1f} ms/step, batch {r['batch_size']} x {r['size']}px, {r['precision']}); "
            f"{r['gflops_per_step']:.1f} GFLOP/step -> {r['tflops_per_s']:.2f} TFLOP/s, {peak}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.bench", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, when not in the table")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--frozen-encoder", action="store_true",
                   help="phase 1 of litecolor: time the decoder on cached encoder features")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if min(args.size, args.batch_size, args.steps) < 1 or args.warmup < 0:
        print("error: --size, --batch-size and --steps must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    try:
        result = bench(args.model, args.size, args.batch_size, args.steps, args.warmup, args.device, args.amp,
                       args.channels_last, args.compile, _parse_kv(args.config), args.peak_tflops,
                       frozen_encoder=args.frozen_encoder, log=lambda m: print(m, file=sys.stderr))
    except ColorcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
