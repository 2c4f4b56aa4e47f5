"""Train any model of the zoo on a folder of colour photos.

Usage::

    python -m training.train --model eccv16-small --data DIR [--val DIR] [--size 128]
        [--epochs N | --steps N] [--batch-size 32] [--lr LR] [--device cpu|cuda] [--amp] [--compile]
        [--channels-last] [--out runs/NAME] [--resume] [--seed 0] [--workers N] [--cache]
        [--patience 7] [--min-delta 0.001] [--no-flip] [--no-zoom] [--no-rotate] [--no-shear]
        [--config key=value ...] [--val-limit N] [--log-every N] [--threads N]
    torchrun --nproc_per_node=N -m training.train ...      # DDP (nccl on GPU, gloo on CPU)

The objective follows the model (see :mod:`training.objectives`). Each run folder holds ``config.json``,
``last.pt`` / ``best.pt`` (atomic, ``torch.load(weights_only=True)``-safe), ``metrics.csv``, ``loss.png``,
``metrics.png`` and ``samples/epoch_XXX.png`` (gray | prediction | truth). ``--resume`` continues
bit-for-bit (CPU, ``--workers 0``) from ``last.pt``, including the position inside the current epoch.
Without ``--val`` a seeded 5 % of ``--data`` is held out. ``--batch-size`` is per process under DDP.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from colorcore.color import lab_to_rgb
from colorcore.errors import ColorcoreError, ConfigError
from colorcore.fast import cpu_has_fast_bf16
from colorcore.io import atomic_write_text
from colorcore.registry import build_config, build_model, config_to_dict, get_spec
from colorcore.weights import create_model
from training import data as tdata
from training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from training.export import init_lineage
from training.objectives import (
    Objective,
    ObjectiveOptions,
    Pix2PixGAN,
    is_gamut,
    make_objective,
    store_bin_weights,
)
from training.plots import plot_history, save_sample_grid

# Options that may differ between an interrupted run and its --resume (they do not change the maths).
RUNTIME_KEYS = frozenset({
    "resume", "device", "workers", "threads", "log_every", "stop_after", "no_progress", "save_every", "out",
    "compile", "cache_dir",
})
VAL_FRACTION = 0.05
N_SAMPLES = 8


class TrainError(ColorcoreError):
    """A training run cannot start or continue (bad options, existing run, diverged loss)."""


# ----------------------------------------------------------------------------------------------- options
def _parse_kv(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--config expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = {"none": None, "null": None}.get(raw.lower(), raw)
        out[key.strip().replace("-", "_")] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="registered model name (python -m colorcore models)")
    p.add_argument("--data", required=True, type=Path, help="folder of colour photos (recursive)")
    p.add_argument("--val", type=Path, default=None, help="validation folder (default: 5%% of --data)")
    p.add_argument("--size", type=int, default=128, help="training crop side in pixels")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="passes over the training set (default 10)")
    length.add_argument("--steps", type=int, default=None, help="optimiser steps instead of epochs")
    p.add_argument("--batch-size", type=int, default=32, help="images per step (per process under DDP)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: per objective)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="cosine decay to 5%% of --lr after a linear warm-up, or constant")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="linear warm-up steps (default 2%% of the run)")
    p.add_argument("--grad-clip", type=float, default=0.0, help="clip the gradient norm (0 = off)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (fp16 + GradScaler on old GPUs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster convs on GPU)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/MODEL)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt when it exists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="fine-tune: start a new run from these weights (a bundled weights name or a "
                        ".safetensors file of the same model and config); ignored when resuming")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers (default 8 on CUDA, 1 on CPU)")
    p.add_argument("--cache", action="store_true", help="decode the photos once into a uint8 tensor file")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/.cache"),
                   help="where the --cache tensors, grayscale scans and priors live")
    p.add_argument("--patience", type=int, default=7, help="evaluations without improvement before stopping")
    p.add_argument("--min-delta", type=float, default=0.001,
                   help="relative val-loss improvement that resets the patience (0.001 = 0.1%%)")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--no-zoom", action="store_true")
    p.add_argument("--no-rotate", action="store_true")
    p.add_argument("--no-shear", action="store_true")
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model config overrides, values parsed as JSON (e.g. width=0.25 loss=huber)")
    p.add_argument("--loss", default=None, help="regression loss: mse, l1, smoothl1 or huber")
    p.add_argument("--huber-delta", type=float, default=1.0, help="Huber/SmoothL1 delta in ab units")
    p.add_argument("--ce-weight", type=float, default=None, help="siggraph17: weight of the 529-class CE")
    p.add_argument("--l1-pretrain-steps", type=int, default=0, help="pix2pix: L1-only steps before the GAN")
    p.add_argument("--prior-images", type=int, default=None,
                   help="313-bin classifiers: images used for the class priors (default all)")
    p.add_argument("--rebalance-palette", action="store_true",
                   help="palette classifiers: weight the cross-entropy by class rebalancing (lambda 0.5) "
                        "from the training set's palette priors, for more colourful predictions")
    p.add_argument("--val-limit", type=int, default=None, help="use at most N validation images")
    p.add_argument("--eval-every", type=int, default=None,
                   help="steps between evaluations (default: one epoch; with --steps at most steps/10)")
    p.add_argument("--save-every", type=int, default=None, help="also write last.pt every N steps")
    p.add_argument("--stop-after", type=int, default=None,
                   help="end this invocation after N total steps, saving last.pt (simulates an interruption)")
    p.add_argument("--log-every", type=int, default=20, help="steps between progress-bar loss updates")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.epochs is None and args.steps is None:
        args.epochs = 10
    for name in ("size", "batch_size"):
        if getattr(args, name) < 1:
            raise TrainError(f"--{name.replace('_', '-')} must be >= 1")
    if (args.epochs is not None and args.epochs < 1) or (args.steps is not None and args.steps < 1):
        raise TrainError("--epochs / --steps must be >= 1")
    if args.out is None:
        args.out = Path("runs") / args.model
    args.command = "python -m training.train " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    return args


def args_to_dict(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


# ----------------------------------------------------------------------------------------- environment
@dataclass
class Dist:
    """Process-group facts; ``world == 1`` means no process group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_arg: str | None) -> tuple[Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = torch.cuda.is_available() if device_arg is None else device_arg.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise TrainError("--device cuda requested but no CUDA device is available")
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if want_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
        info = Dist(dist.get_rank(), dist.get_world_size(), local)
        device = torch.device("cuda", local) if want_cuda else torch.device("cpu")
        return info, device
    if device_arg is None:
        return Dist(), torch.device("cuda" if want_cuda else "cpu")
    return Dist(), torch.device(device_arg)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Precision:
    dtype: torch.dtype | None  # autocast dtype, None = off
    scaler: bool  # fp16 needs loss scaling

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)


def pick_precision(amp: bool, device: torch.device, log) -> Precision:
    if not amp:
        return Precision(None, False)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision(torch.bfloat16, False)
        return Precision(torch.float16, True)
    if cpu_has_fast_bf16():
        log("--amp on CPU: bfloat16 autocast")
        return Precision(torch.bfloat16, False)
    log("--amp ignored: this CPU lacks native bfloat16 (AMX / AVX512-BF16), so autocast would be slower")
    return Precision(None, False)


# ------------------------------------------------------------------------------------------------ data
@dataclass
class DataBundle:
    train: tdata.PhotoDataset
    val: Any  # PhotoDataset or a Subset of one
    sampler: tdata.ResumableSampler
    train_loader: DataLoader
    val_loader: DataLoader
    facts: dict[str, Any] = field(default_factory=dict)


def holdout_indices(n: int, seed: int) -> list[int]:
    """Sorted indices of the seeded ``VAL_FRACTION`` of ``n`` photos held out when no ``--val`` is given."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[: max(1, round(n * VAL_FRACTION))])


def prepare_data(args: argparse.Namespace, info: Dist, device: torch.device, log) -> DataBundle:
    augment = tdata.Augment(flip=not args.no_flip, zoom=not args.no_zoom, rotate=not args.no_rotate,
                            shear=not args.no_shear)
    cache_dir = Path(args.cache_dir)
    scan = tdata.scan_images(args.data, cache_dir)
    train_paths = list(scan.paths)
    facts: dict[str, Any] = {"train_dir": str(args.data), "train_grayscale_skipped": scan.grayscale,
                             "train_unreadable_skipped": scan.unreadable}
    if args.val is not None:
        vscan = tdata.scan_images(args.val, cache_dir)
        val_paths = list(vscan.paths)
        facts.update(val_dir=str(args.val), val_grayscale_skipped=vscan.grayscale,
                     val_unreadable_skipped=vscan.unreadable)
    else:
        if len(train_paths) < 2:
            raise TrainError(f"{args.data} has {len(train_paths)} colour photo(s); pass --val or add more")
        held = set(holdout_indices(len(train_paths), args.seed))
        val_paths = [p for i, p in enumerate(train_paths) if i in held]
        train_paths = [p for i, p in enumerate(train_paths) if i not in held]
        facts.update(val_dir=f"{args.data} (seeded {VAL_FRACTION:.0%} hold-out)")
    if args.val_limit is not None:
        val_paths = val_paths[: max(1, args.val_limit)]
    if len(train_paths) < args.batch_size * info.world:
        raise TrainError(f"{len(train_paths)} training photos are fewer than one batch "
                         f"({args.batch_size} x {info.world} process(es)); lower --batch-size")
    log(f"data: {len(train_paths)} train photos ({scan.grayscale} grayscale and {scan.unreadable} unreadable "
        f"skipped), {len(val_paths)} val photos")
    train_images = val_images = None
    if args.cache:
        train_images = tdata.build_cache(train_paths, args.size, cache_dir, progress=info.main)
        val_images = tdata.build_cache(val_paths, args.size, cache_dir, progress=info.main)
    train = tdata.PhotoDataset(train_paths, args.size, augment, train_images)
    val = tdata.PhotoDataset(val_paths, args.size, augment, val_images)
    sampler = tdata.ResumableSampler(len(train), batch_size=args.batch_size, seed=args.seed,
                                     num_replicas=info.world, rank=info.rank)
    workers = args.workers if args.workers is not None else (8 if device.type == "cuda" else 1)
    pin = device.type == "cuda"
    loader_gen = torch.Generator().manual_seed(args.seed)  # keeps the global RNG untouched by the loader
    common = {"num_workers": workers, "pin_memory": pin, "persistent_workers": workers > 0}
    if workers > 0:
        common["prefetch_factor"] = 4
    train_loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                              generator=loader_gen, **common)
    val_loader = DataLoader(val, batch_size=args.batch_size, shuffle=False,
                            generator=torch.Generator().manual_seed(args.seed), **common)
    facts.update(train_images=len(train_paths), val_images=len(val_paths), cached=bool(args.cache),
                 augment={"flip": augment.flip, "zoom": augment.zoom, "rotate": augment.rotate,
                          "shear": augment.shear})
    return DataBundle(train, val, sampler, train_loader, val_loader, facts)


# ------------------------------------------------------------------------------------------ evaluation
def lab_batch_to_uint8(l: Tensor, ab: Tensor) -> np.ndarray:
    """``(B, 1, H, W)`` L and ``(B, 2, H, W)`` ab -> ``(B, H, W, 3)`` uint8 sRGB."""
    rgb = lab_to_rgb(torch.cat((l.float(), ab.float()), dim=1))
    return (rgb * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def image_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean PSNR, AuC and colourfulness of ``(B, H, W, 3)`` uint8 predictions against the truth."""
    from colorcore import metrics

    rows = [{"psnr": float(metrics.psnr(p, t)), "auc": float(metrics.auc(p, t)),
             "colorfulness": float(metrics.colorfulness(p))} for p, t in zip(pred, truth, strict=True)]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def move(batch: Tensor, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor, Tensor]:
    """uint8 RGB batch -> (rgb uint8 on device, L, ab) in physical Lab units on ``device``."""
    rgb = batch.to(device, non_blocking=True)
    l, ab = tdata.to_lab(rgb)
    if channels_last:
        l = l.contiguous(memory_format=torch.channels_last)
    return rgb, l, ab


@torch.no_grad()
def evaluate(model: nn.Module, objective: Objective, loader: DataLoader, device: torch.device,
             precision: Precision, channels_last: bool, sample_path: Path | None) -> dict[str, float]:
    """Validation loss and metrics over ``loader``; optionally writes the sample grid of the first batch."""
    from colorcore import metrics

    was_training = model.training
    model.eval()
    objective.eval()
    sums: dict[str, float] = {}
    n = 0
    samples_needed = N_SAMPLES if sample_path is not None else 0
    sample_parts: list[tuple[Tensor, Tensor, Tensor]] = []
    for i, batch in enumerate(loader):
        rgb, l, ab = move(batch, device, channels_last)
        with precision.autocast(device):
            out = objective.evaluate(model, l, ab, i)
        b = l.shape[0]
        pred = lab_batch_to_uint8(l, out.ab)
        truth = rgb.permute(0, 2, 3, 1).cpu().numpy()
        row = {"loss": float(out.loss), **image_metrics(pred, truth)}
        if out.logits is not None and out.targets is not None:
            row["bin_acc"] = float(metrics.bin_accuracy(out.logits.float(), out.ab_small, out.centers))
            row["ce"] = float(metrics.class_cross_entropy(out.logits.float(), out.targets))
        for k, v in row.items():
            sums[k] = sums.get(k, 0.0) + v * b
        n += b
        if samples_needed > 0:
            take = min(samples_needed, b)
            gray = lab_to_rgb(torch.cat((l[:take].float(), torch.zeros_like(ab[:take])), 1))
            sample_parts.append((gray, torch.from_numpy(pred[:take]).permute(0, 3, 1, 2).float() / 255,
                                 rgb[:take].float() / 255))
            samples_needed -= take
    if sample_path is not None and sample_parts:
        gray, pred_t, truth_t = (torch.cat([p[j].cpu() for p in sample_parts]) for j in range(3))
        save_sample_grid(gray, pred_t, truth_t, sample_path)
    if was_training:
        model.train()
        objective.train()
    return {k: v / max(n, 1) for k, v in sums.items()}


@torch.no_grad()
def gray_baseline(loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Metrics of predicting ab = 0 (the gray input itself) on the validation set."""
    from colorcore import metrics

    sums: dict[str, float] = {}
    n = 0
    for batch in loader:
        rgb, l, ab = move(batch, device, False)
        truth = rgb.permute(0, 2, 3, 1).cpu().numpy()
        pred = np.stack([metrics.gray_baseline(t) for t in truth])
        row = image_metrics(pred, truth)
        for k, v in row.items():
            sums[k] = sums.get(k, 0.0) + v * l.shape[0]
        n += l.shape[0]
    return {k: v / max(n, 1) for k, v in sums.items()}


# ------------------------------------------------------------------------------------------ schedules
def make_lr_lambda(schedule: str, total: int, warmup: int, floor: float = 0.05):
    def fn(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if schedule == "constant":
            return warm
        progress = min(step, total) / max(1, total)
        return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    return fn


# ---------------------------------------------------------------------------------------------- a step
@dataclass
class Stepper:
    """One optimisation step of any objective (shared by the trainer and :mod:`training.bench`)."""

    objective: Objective
    model: nn.Module
    net: nn.Module  # the objective's adapter, maybe DDP-wrapped and/or compiled
    d_net: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    d_optimizer: torch.optim.Optimizer | None
    d_scheduler: Any
    d_scaler: torch.amp.GradScaler | None
    precision: Precision
    device: torch.device
    params: list[nn.Parameter]
    grad_clip: float = 0.0

    def step(self, l: Tensor, ab: Tensor, step: int, check_finite: bool = False
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """Forward, backward and update on L ``(B, 1, H, W)`` and ab ``(B, 2, H, W)``; returns the loss."""
        obj = self.objective
        gan = isinstance(obj, Pix2PixGAN)
        with self.precision.autocast(self.device):
            if gan:
                loss, fake, logs = obj.generator_loss(self.net, l, ab, step)
            else:
                loss, logs = obj.train_loss(self.net, self.model, l, ab, step)
        # Checking finiteness syncs with the device, so only when asked (at logging steps).
        if check_finite and not torch.isfinite(loss.detach()).item():
            raise TrainError(f"the loss became {float(loss)} at step {step}; lower --lr or use --grad-clip")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if gan:
            if obj.adversarial(step):
                with self.precision.autocast(self.device):
                    d_loss, d_logs = obj.discriminator_loss(self.d_net, l, ab, fake)
                self.d_optimizer.zero_grad(set_to_none=True)
                self.d_scaler.scale(d_loss).backward()
                self.d_scaler.step(self.d_optimizer)
                self.d_scaler.update()
                logs = {**logs, **d_logs}
                self.d_scheduler.step()  # D's schedule counts its own steps (none during the L1 phase)
        return loss.detach(), logs


# --------------------------------------------------------------------------------------------- history
def write_metrics_csv(history: list[dict[str, Any]], path: Path) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


# ------------------------------------------------------------------------------------------------ run
@dataclass
class Counters:
    """Where training stands; all of it goes into the checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    evals: int = 0
    best_val: float = math.inf
    patience_ref: float = math.inf
    bad_evals: int = 0
    elapsed: float = 0.0
    finished: bool = False
    stop_reason: str = ""


def _class_weights_fn(args: argparse.Namespace, progress: bool, log):
    """Rebalancing weights (lambda 0.5, sigma 5) from the TRAIN folder's priors, cached in --cache-dir."""

    def fn(centers: Tensor) -> Tensor:
        from training.priors import load_or_compute_priors, rebalancing_weights

        tag = hashlib.sha256(f"{Path(args.data).resolve()}:{args.prior_images}".encode()).hexdigest()[:16]
        name = "" if is_gamut(centers) else f"-palette{centers.shape[0]}"
        cache_file = Path(args.cache_dir) / f"priors-{tag}{name}.json"
        log(f"class priors of {args.data} (cache {cache_file})")
        priors = load_or_compute_priors(Path(args.data), centers, max_images=args.prior_images,
                                        cache_file=cache_file, progress=progress)
        return rebalancing_weights(priors, centers)

    return fn


def init_from_weights(model: nn.Module, name: str, config: Any, weights: str) -> dict[str, Any]:
    """Copy ``weights`` (a bundled weights name or file) into ``model``; model and config must match.

    Returns the weights' training record, which the run's model card will carry."""
    source = create_model(name, pretrained=weights)
    entry = source.weights_entry  # create_model tags every model it loads with its weights entry
    have = config_to_dict(config)
    if config_to_dict(build_config(name, **entry.config)) != have:
        raise TrainError(f"--init {weights} was trained with config {entry.config}, which differs from this "
                         f"run's {have}; pass the same --config")
    model.load_state_dict(source.state_dict(), strict=True)
    return init_lineage(entry)


def _resolve_resume(args: argparse.Namespace, log) -> tuple[argparse.Namespace, dict[str, Any] | None]:
    out = Path(args.out)
    last = out / "last.pt"
    if not args.resume:
        if last.exists():
            raise TrainError(f"{out} already holds a run (last.pt); pass --resume to continue it "
                             "or pick another --out")
        return args, None
    if not last.exists():
        log(f"--resume: no {last} yet, starting a new run")
        return args, None
    state = load_checkpoint(last)
    saved = dict(state["args"])
    current = args_to_dict(args)
    # The card keeps the command that started the run.
    fixed = RUNTIME_KEYS | {"command"}
    changed = sorted(k for k in saved if k not in fixed and saved.get(k) != current.get(k))
    if changed:
        log("--resume: keeping the run's own settings for " + ", ".join(
            f"{k}={saved[k]!r} (asked {current.get(k)!r})" for k in changed))
    merged = {**saved, **{k: current[k] for k in RUNTIME_KEYS if k in current}}
    for key in ("data", "val", "out", "cache_dir"):
        if merged.get(key) is not None:
            merged[key] = Path(merged[key])
    return argparse.Namespace(**merged), state


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train according to ``args``; returns a summary (rank 0's view)."""
    info, device = setup_distributed(args.device)
    try:
        return _run(args, info, device)
    finally:
        if info.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _run(args: argparse.Namespace, info: Dist, device: torch.device) -> dict[str, Any]:
    def log(msg: str) -> None:
        if info.main:
            print(msg, file=sys.stderr, flush=True)

    if args.threads:
        torch.set_num_threads(args.threads)
    args, state = _resolve_resume(args, log)
    out = Path(args.out)
    if state is not None and state["counters"].get("finished"):
        log(f"{out} is already finished ({state['counters'].get('stop_reason')}); nothing to do")
        return {"out": str(out), "counters": state["counters"], "history": state["history"]}
    seed_everything(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    spec = get_spec(args.model)
    overrides = _parse_kv(args.config) if isinstance(args.config, list) else dict(args.config)
    config = build_config(args.model, **overrides)
    model = build_model(args.model, config)
    stride = int(getattr(model, "stride", 1))
    if args.size % stride:
        raise TrainError(f"--size {args.size} must be a multiple of {args.model}'s stride {stride}")
    # Rank 0 fills the caches (grayscale scan, --cache tensors, priors) while the others wait.
    if info.world > 1 and not info.main:
        dist.barrier()
    options = ObjectiveOptions(loss=args.loss, huber_delta=args.huber_delta, ce_weight=args.ce_weight,
                               l1_pretrain_steps=args.l1_pretrain_steps, seed=args.seed,
                               # runs saved before the option existed lack it
                               rebalance_palette=getattr(args, "rebalance_palette", False))
    objective = make_objective(model, spec.task, options,
                               _class_weights_fn(args, info.main and not args.no_progress, log))
    is_gan = isinstance(objective, Pix2PixGAN)
    log(f"model {args.model} ({sum(p.numel() for p in model.parameters()):,} parameters), "
        f"objective {objective.describe()}, device {device}, {info.world} process(es)")

    bundle = prepare_data(args, info, device, log)
    if info.world > 1 and info.main:
        dist.barrier()
    per_epoch = bundle.sampler.batches_per_epoch()
    total = args.steps if args.steps is not None else args.epochs * per_epoch
    eval_every = args.eval_every or (per_epoch if args.steps is None else max(1, min(per_epoch, total // 10)))
    warmup = args.warmup_steps if args.warmup_steps is not None else round(0.02 * total)
    lr = args.lr if args.lr is not None else objective.default_lr

    if state is not None:  # what --init started from was recorded when the run began
        init_record = state.get("run_config", {}).get("init")
    elif args.init:
        init_record = init_from_weights(model, args.model, config, args.init)
        log(f"initialised from weights {args.init}")
    else:
        init_record = None
    store_bin_weights(model, objective)  # after --init, whose weights carry the old run's
    model.to(device)
    objective.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
        objective.to(memory_format=torch.channels_last)
    betas = getattr(objective, "betas", (0.9, 0.999))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, make_lr_lambda(args.schedule, total, warmup))
    precision = pick_precision(args.amp, device, log)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scaler)
    d_optimizer = d_scheduler = d_scaler = None
    if is_gan:
        d_params = list(objective.discriminator.parameters())
        d_optimizer = torch.optim.AdamW(d_params, lr=lr, betas=betas, weight_decay=args.weight_decay)
        d_total = max(1, total - args.l1_pretrain_steps)
        d_scheduler = torch.optim.lr_scheduler.LambdaLR(d_optimizer,
                                                        make_lr_lambda(args.schedule, d_total, warmup))
        d_scaler = torch.amp.GradScaler(device.type, enabled=precision.scaler)

    counters = Counters()
    history: list[dict[str, Any]] = []
    gray = None
    loss_sum = torch.zeros((), dtype=torch.float64)
    loss_count = 0
    log_sums: dict[str, Tensor] = {}
    if state is not None:
        model.load_state_dict(state["model"])
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if is_gan:
            d_optimizer.load_state_dict(state["d_optimizer"])
            d_scheduler.load_state_dict(state["d_scheduler"])
            d_scaler.load_state_dict(state["d_scaler"])
        counters = Counters(**state["counters"])
        history = list(state["history"])
        gray = state.get("gray_baseline")
        acc = state["accum"]
        loss_sum, loss_count = acc["loss_sum"].double().cpu(), int(acc["count"])
        log_sums = {k: v.double().cpu() for k, v in acc["logs"].items()}
        set_rng_state(state["rng"])
        log(f"resumed {out} at step {counters.step} "
            f"(epoch {counters.epoch}, batch {counters.batch_in_epoch})")
    loss_sum = loss_sum.to(device)
    log_sums = {k: v.to(device) for k, v in log_sums.items()}

    net: nn.Module = objective.adapter(model)
    d_net: nn.Module | None = objective.discriminator if is_gan else None
    if info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(net, device_ids=ids)
        if is_gan:
            d_net = DistributedDataParallel(objective.discriminator, device_ids=ids)
    if args.compile:
        net = torch.compile(net)
    stepper = Stepper(objective, model, net, d_net, optimizer, scheduler, scaler, d_optimizer, d_scheduler,
                      d_scaler, precision, device, params, args.grad_clip)

    run_config = {"args": args_to_dict(args), "model": args.model, "model_config": config_to_dict(config),
                  "task": spec.task, "objective": objective.describe(), "world_size": info.world,
                  "device": str(device), "lr": lr, "total_steps": total, "steps_per_epoch": per_epoch,
                  "eval_every": eval_every, "data": bundle.facts, "command": args.command,
                  "init": init_record}
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("last.pt", "best.pt", "metrics.csv", "config.json"):
            for stale in out.glob(f".{name}.*.tmp"):  # left by a process killed mid-write
                stale.unlink(missing_ok=True)
        atomic_write_text(out / "config.json", json.dumps(run_config, indent=2, default=str) + "\n")
        if gray is None:
            gray = gray_baseline(bundle.val_loader, device)
            log("gray baseline (ab = 0) on val: " + ", ".join(f"{k} {v:.4g}" for k, v in gray.items()))

    def checkpoint_state() -> dict[str, Any]:
        st = {
            "args": args_to_dict(args), "model_name": args.model, "model_config": config_to_dict(config),
            "task": spec.task, "objective_kind": objective.kind,
            "model": model.state_dict(), "objective": objective.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "counters": vars(counters).copy(), "history": history,
            "gray_baseline": gray, "data": bundle.facts, "device": str(device), "world_size": info.world,
            "accum": {"loss_sum": loss_sum.detach().cpu(), "count": loss_count,
                      "logs": {k: v.detach().cpu() for k, v in log_sums.items()}},
            "rng": rng_state(), "run_config": json.loads(json.dumps(run_config, default=str)),
        }
        if is_gan:
            st.update(d_optimizer=d_optimizer.state_dict(), d_scheduler=d_scheduler.state_dict(),
                      d_scaler=d_scaler.state_dict())
        return st

    def save(best: bool) -> None:
        if info.main:
            # best.pt first: if killed in between, the older last.pt replays to the same best.pt.
            save_checkpoint(checkpoint_state(), *((out / "best.pt",) if best else ()), out / "last.pt")

    from tqdm import tqdm

    imgs_per_step = args.batch_size * info.world
    bar = tqdm(total=total * imgs_per_step, initial=counters.step * imgs_per_step, unit="img",
               unit_scale=True,
               disable=not info.main or args.no_progress, dynamic_ncols=True, desc=args.model)
    model.train()
    objective.train()
    stop_at = min(total, args.stop_after) if args.stop_after is not None else total
    session_start = time.perf_counter()
    elapsed_before = counters.elapsed

    def do_eval() -> bool:
        """Evaluate on rank 0, append history, save checkpoints; returns True to stop early."""
        nonlocal loss_sum, loss_count, log_sums
        counters.evals += 1
        train_loss = loss_sum.clone()
        count = torch.tensor(float(loss_count), dtype=torch.float64, device=device)
        logs = {k: v.clone() for k, v in sorted(log_sums.items())}
        if info.world > 1:
            for t in (train_loss, count, *logs.values()):
                dist.all_reduce(t)
        stop = torch.zeros(1, dtype=torch.int64, device=device)
        if info.main:
            sample = out / "samples" / f"epoch_{counters.evals:03d}.png"
            eval_start = time.perf_counter()
            val = evaluate(model, objective, bundle.val_loader, device, precision, args.channels_last, sample)
            eval_s = time.perf_counter() - eval_start
            counters.elapsed = elapsed_before + time.perf_counter() - session_start
            denom = max(float(count), 1.0)
            row: dict[str, Any] = {
                "epoch": round(counters.step / per_epoch, 4), "step": counters.step,
                "images": counters.step * imgs_per_step, "wall_s": round(counters.elapsed, 2),
                "lr": scheduler.get_last_lr()[0], "train_loss": float(train_loss) / denom,
                **{f"train_{k}": float(v) / denom for k, v in logs.items()},
                "val_loss": val.pop("loss"), **{f"val_{k}": v for k, v in val.items()},
                "eval_s": round(eval_s, 2),
            }
            history.append(row)
            improved = row["val_loss"] < counters.best_val
            if improved:
                counters.best_val = row["val_loss"]
            if row["val_loss"] < counters.patience_ref * (1 - args.min_delta) or not math.isfinite(
                    counters.patience_ref):
                counters.patience_ref = row["val_loss"]
                counters.bad_evals = 0
            else:
                counters.bad_evals += 1
            if counters.bad_evals >= args.patience:
                counters.finished, counters.stop_reason = True, (
                    f"early stop: val loss did not improve by {args.min_delta:.2%} "
                    f"in {args.patience} evaluations")
                stop[0] = 1
            if counters.step >= total:
                counters.finished = True
                counters.stop_reason = counters.stop_reason or "reached the planned steps"
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            loss_count, log_sums = 0, {}
            save(best=improved)
            write_metrics_csv(history, out / "metrics.csv")
            plot_history(history, out)
            bar.write(f"step {counters.step}: train {row['train_loss']:.4g}  val {row['val_loss']:.4g}  "
                      + "  ".join(f"{k[4:]} {v:.4g}" for k, v in row.items()
                                  if k.startswith("val_") and k != "val_loss"))
        else:
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            loss_count, log_sums = 0, {}
        if info.world > 1:
            dist.broadcast(stop, 0)
        return bool(stop.item())

    stopped = False
    window_t, window_imgs = time.perf_counter(), 0
    while counters.step < stop_at and not stopped:
        bundle.sampler.set_epoch(counters.epoch, counters.batch_in_epoch)
        for batch in bundle.train_loader:
            _, l, ab = move(batch, device, args.channels_last)
            check = counters.step % max(1, args.log_every) == 0
            loss, logs = stepper.step(l, ab, counters.step, check_finite=check)
            loss_sum += loss.detach().double()
            loss_count += 1
            for k, v in logs.items():
                zero = torch.zeros((), dtype=torch.float64, device=device)
                log_sums[k] = log_sums.get(k, zero) + v.double()
            counters.step += 1
            counters.batch_in_epoch += 1
            if counters.batch_in_epoch >= per_epoch:
                counters.epoch += 1
                counters.batch_in_epoch = 0
            bar.update(imgs_per_step)
            window_imgs += imgs_per_step
            if info.main and counters.step % max(1, args.log_every) == 0:
                now = time.perf_counter()
                rate = window_imgs / max(now - window_t, 1e-9)
                bar.set_postfix(loss=f"{float(loss):.4g}", img_s=f"{rate:.1f}", epoch=counters.epoch)
                window_t, window_imgs = now, 0
            due_eval = counters.step % eval_every == 0 or counters.step >= total
            if due_eval:
                stopped = do_eval()
                window_t, window_imgs = time.perf_counter(), 0  # the images/s window excludes evaluation
            elif args.save_every and counters.step % args.save_every == 0:
                counters.elapsed = elapsed_before + time.perf_counter() - session_start
                save(best=False)
            if stopped or counters.step >= stop_at:
                break
            if counters.batch_in_epoch == 0:
                break  # epoch boundary: restart the loader with the next epoch's order
    bar.close()
    counters.elapsed = elapsed_before + time.perf_counter() - session_start
    if info.main and not (history and history[-1]["step"] == counters.step):
        save(best=False)  # interrupted between evaluations (--stop-after): keep the exact state
    if info.main and counters.finished:
        log(f"done: {counters.stop_reason}; best val loss {counters.best_val:.4g}; {out}")
    return {"out": str(out), "counters": vars(counters).copy(), "history": history, "gray_baseline": gray}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        run(args)
    except ColorcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
