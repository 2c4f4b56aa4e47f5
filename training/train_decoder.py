"""Phase 1 of the flagship's training: the decoder and heads on cached features of the frozen encoder.

The cache (``training.feature_cache``) holds every photo's encoder taps as itself and mirrored, so one
step costs only the decoder. The loss is the 313-bin rebalanced cross-entropy on soft-encoded targets
(Zhang et al. 2016; priors from the cache's own stride-4 ab) plus ``--l1-weight`` x L1 on the regression
head's ab / 110 (``--regression euclidean``: the Euclidean ab error of the head enlarged to the full-size
photo, what AuC integrates). A seeded ``--holdout`` fraction of the TRAIN photos picks the best checkpoint
and early stopping, by its loss or (``--select auc``) its faithful AuC (the 313-bin median's); the val cache
is only reported (faithful, vivid and regression decodes), so choices are not tuned to it.

``--tune-encoder-after 16`` (or 8) also fine-tunes the encoder's stages after that tap and its head, run on
the cached tap, at ``--encoder-lr-scale`` times the learning rate: the last stages hold most of the
encoder's parameters but little of its compute at 128 px, so the semantic layers adapt to gray photos at
about half the speed of the decoder alone. ``--init WEIGHTS`` starts from trained weights.

Run folders match ``training.train``'s (``config.json``, atomic ``last.pt`` / ``best.pt``,
``metrics.csv``, ``loss.png``, ``metrics.png``), so ``training.export`` exports them and ``--resume``
continues bit for bit. Phase 2 (end to end) is ``training.train --model litecolor --init WEIGHTS``.

    python -m training.train_decoder --cache CACHE/train --val-cache CACHE/val --out runs/litecolor-p1 \
        [--epochs 6] [--batch-size 32] [--lr 1e-3] [--l1-weight 5] [--holdout 0.03] [--resume]
        [--init WEIGHTS] [--tune-encoder-after {8,16}] [--encoder-lr-scale 0.1]
        [--regression {l1,euclidean}] [--select {loss,auc}]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colorcore import quantize
from colorcore.errors import ColorcoreError
from colorcore.io import atomic_write_text
from colorcore.models.litecolor import TAP_STRIDES
from colorcore.registry import build_model
from training import data as tdata
from training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from training.feature_cache import open_cache
from training.objectives import HEAD_REGRESSION_LOSSES, GamutAndRegression, store_bin_weights
from training.plots import plot_history
from training.priors import rebalancing_weights
from training.train import (
    image_metrics,
    init_from_weights,
    lab_batch_to_uint8,
    make_lr_lambda,
    pick_precision,
    write_metrics_csv,
)

VIVID_TEMPERATURE = quantize.ZHANG_TEMPERATURE
CPU = torch.device("cpu")


class FeatureBatches:
    """Batches of (taps, ab4) from a cache; ``rows`` are photo indices, mirrored at random when flips=2."""

    def __init__(
        self, meta: dict[str, Any], arrays: dict[str, np.ndarray], rows: np.ndarray, full_ab: bool = False
    ) -> None:
        self.flips = int(meta["flips"])
        self.arrays = arrays
        self.rows = np.asarray(rows, dtype=np.int64)
        self.full_ab = full_ab  # targets at the photo's full size (from rgb.npy) instead of ab4

    def get(
        self, photos: np.ndarray, flips: np.ndarray | None = None
    ) -> tuple[list[Tensor], Tensor, tuple[Tensor, Tensor]]:
        """(taps, ab, (soft-target bins, weights)) of ``photos``, mirrored where ``flips`` is 1; ab is ab4, or
        the full-size ab with ``full_ab``."""
        flips = np.zeros(len(photos), dtype=np.int64) if flips is None else flips
        order = np.argsort(photos)  # sorted reads are kinder to the page cache
        photos, flips = photos[order], flips[order]
        feat_rows = photos * self.flips + np.minimum(flips, self.flips - 1)
        taps = [
            torch.from_numpy(np.ascontiguousarray(self.arrays[f"t{s}"][feat_rows])).float()
            for s in (4, 8, 16, 32)
        ]
        mirrored = torch.from_numpy(flips.astype(bool))
        idx, weights = (
            torch.from_numpy(np.ascontiguousarray(self.arrays[k][photos])) for k in ("soft_idx", "soft_w")
        )
        idx, weights = idx.long(), weights.float()
        if self.full_ab:  # photos are sorted, as rgb() reads them
            ab = tdata.to_lab(self.rgb(photos))[1]
        else:
            ab = torch.from_numpy(np.ascontiguousarray(self.arrays["ab4"][photos])).float()
        for t in (ab, idx, weights):
            t[mirrored] = t[mirrored].flip(-1)
        return taps, ab, (idx, weights)

    def rgb(self, photos: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.arrays["rgb"][np.sort(photos)]))


def decode_cached(model, taps: Sequence[Tensor], tune_after: int | None) -> tuple[Tensor, Tensor]:
    """(logits, ab) from cached taps (strides 4, 8, 16, 32); with ``tune_after``, the encoder's stages
    after that tap run again on it, so they can train."""
    if tune_after is not None:
        cached = dict(zip(TAP_STRIDES, taps, strict=True))
        later = model.encoder.taps_from(cached[tune_after], tune_after)
        taps = [later.get(s, cached[s]) for s in TAP_STRIDES]
    return model.decode(*taps)


def split_holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into (train rows, holdout rows)."""
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(n * fraction))
    return np.sort(perm[k:]), np.sort(perm[:k])


def soft_targets(folder: Path, ab4: np.ndarray, centers: Tensor, chunk: int = 1024) -> dict[str, np.ndarray]:
    """The 5-nearest-bin soft targets of every cached ab4 (computed once, stored beside the cache)."""
    paths = {"soft_idx": folder / "soft_idx.npy", "soft_w": folder / "soft_w.npy"}
    if not all(p.is_file() for p in paths.values()):
        idx_all = np.empty((len(ab4), 5, *ab4.shape[-2:]), dtype=np.int16)
        w_all = np.empty(idx_all.shape, dtype=np.float16)
        for lo in range(0, len(ab4), chunk):
            idx, w = quantize.soft_encode_sparse(
                torch.from_numpy(np.array(ab4[lo : lo + chunk])).float(), centers, k=5, sigma=5.0
            )
            idx_all[lo : lo + chunk], w_all[lo : lo + chunk] = idx.numpy(), w.numpy()
        for key, arr in (("soft_idx", idx_all), ("soft_w", w_all)):
            tmp = paths[key].with_name(paths[key].name + ".tmp.npy")
            np.save(tmp, arr)
            tmp.rename(paths[key])
    return {k: np.load(p, mmap_mode="r") for k, p in paths.items()}


def cache_priors(ab4: np.ndarray, rows: np.ndarray, centers: Tensor, chunk: int = 2048) -> Tensor:
    """313-bin empirical distribution of the cached stride-4 ab over ``rows``."""
    counts = torch.zeros(centers.shape[0], dtype=torch.float64)
    for lo in range(0, len(rows), chunk):
        ab = torch.from_numpy(np.ascontiguousarray(ab4[rows[lo : lo + chunk]])).float()
        counts += quantize.empirical_bin_distribution(ab, centers).double() * ab[:, 0].numel()
    return (counts / counts.sum()).float()


@torch.no_grad()
def evaluate(
    model,
    loss_fn: GamutAndRegression,
    batches: FeatureBatches,
    photos: np.ndarray,
    batch_size: int,
    with_images: bool,
    tune_after: int | None = None,
) -> dict[str, float]:
    """Mean loss over ``photos`` and, with ``with_images``, PSNR / AuC / colourfulness of the faithful decode
    (no prefix: the median of the 313-bin head), the vivid one and the regression head."""
    model.eval()
    sums: dict[str, float] = {}
    rows: dict[str, list[dict[str, float]]] = {"": [], "vivid_": [], "regression_": []}
    for lo in range(0, len(photos), batch_size):
        chunk = np.sort(photos[lo : lo + batch_size])
        taps, ab4, soft = batches.get(chunk)
        logits, ab_pred = decode_cached(model, taps, tune_after)
        loss, parts = loss_fn.loss(logits, ab_pred, ab4, soft)
        for k, v in {"loss": float(loss), **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(chunk)
        if with_images:
            rgb = batches.rgb(chunk)
            l, _ = tdata.to_lab(rgb)
            truth = rgb.permute(0, 2, 3, 1).numpy()
            vivid = model.decoder(logits, temperature=VIVID_TEMPERATURE)
            faithful = quantize.decode_median(logits, model.decoder.centers, loss_fn.class_weights)
            for prefix, ab in (("", faithful), ("vivid_", vivid), ("regression_", ab_pred)):
                full = F.interpolate(ab, size=l.shape[-2:], mode="bilinear", align_corners=False)
                rows[prefix].append(image_metrics(lab_batch_to_uint8(l, full), truth) | {"n": len(chunk)})
    out = {k: v / len(photos) for k, v in sums.items()}
    for prefix, parts in rows.items():
        if parts:
            n = sum(p["n"] for p in parts)
            for key in ("psnr", "auc", "colorfulness"):
                out[prefix + key] = sum(p[key] * p["n"] for p in parts) / n
    model.train()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train_decoder", description=__doc__.split("\n")[0])
    p.add_argument("--cache", required=True, type=Path, help="feature cache of the TRAIN photos")
    p.add_argument("--val-cache", type=Path, default=None, help="feature cache of the val photos (reported)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--epochs", type=float, default=6.0)
    p.add_argument("--steps", type=int, default=None, help="overrides --epochs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--l1-weight", type=float, default=5.0, help="weight of the regression head's loss")
    p.add_argument(
        "--regression",
        choices=HEAD_REGRESSION_LOSSES,
        default="l1",
        help="l1: per channel on ab pooled to stride 4; euclidean: ab distance of the head enlarged to the "
        "full-size photo, as scored",
    )
    p.add_argument(
        "--select",
        choices=("loss", "auc"),
        default="loss",
        help="what on the holdout picks the best checkpoint and stops early: the loss or the faithful AuC",
    )
    p.add_argument(
        "--holdout", type=float, default=0.03, help="fraction of TRAIN photos held out for choices"
    )
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--min-delta", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--amp",
        action="store_true",
        help="bf16 autocast where the CPU has it natively (AMX, AVX512-BF16); ignored elsewhere",
    )
    p.add_argument("--stop-after", type=int, default=None, help="stop (resumably) after this global step")
    p.add_argument("--init", default=None, metavar="WEIGHTS", help="start from these weights (name or file)")
    p.add_argument(
        "--tune-encoder-after",
        type=int,
        choices=(8, 16),
        default=None,
        help="also fine-tune the encoder's stages after this tap stride (and its head)",
    )
    p.add_argument("--encoder-lr-scale", type=float, default=0.1, help="encoder lr / --lr when tuning it")
    return p


def _state(model, optimizer, scheduler, counters, history, args_dict, run_config) -> dict[str, Any]:
    return {
        "args": args_dict,
        "model_name": run_config["model"],
        "model_config": run_config["model_config"],
        "task": "classification",
        "objective_kind": "gamut313",
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "counters": dict(counters),
        "history": history,
        "gray_baseline": run_config.get("gray_baseline"),
        "data": run_config["data"],
        "device": "cpu",
        "world_size": 1,
        "rng": rng_state(),
        "run_config": run_config,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    out: Path = args.out
    state = load_checkpoint(out / "last.pt") if args.resume and (out / "last.pt").is_file() else None
    if state is not None and state["counters"].get("finished"):
        print(f"{out} is already finished ({state['counters'].get('stop_reason')})", file=sys.stderr)
        return state["counters"]
    torch.manual_seed(args.seed)
    meta, arrays = open_cache(args.cache)
    val = open_cache(args.val_cache) if args.val_cache else None
    if val is not None and (val[0]["model"], val[0]["config"], val[0]["size"]) != (
        meta["model"],
        meta["config"],
        meta["size"],
    ):
        raise ColorcoreError(
            f"{args.val_cache} was cached for another model, config or size than {args.cache}"
        )
    model = build_model(meta["model"], **meta["config"])
    init_record = init_from_weights(model, meta["model"], model.config, args.init) if args.init else None
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    tune_after = args.tune_encoder_after
    encoder_params = model.encoder.parameters_after(tune_after) if tune_after is not None else []
    for p in encoder_params:
        p.requires_grad_(True)
    train_rows, holdout_rows = split_holdout(int(meta["photos"]), args.holdout, args.seed)
    centers = model.decoder.centers
    arrays.update(soft_targets(args.cache, arrays["ab4"], centers))
    if val is not None:
        val[1].update(soft_targets(args.val_cache, val[1]["ab4"], centers))
    priors = cache_priors(arrays["ab4"], train_rows, centers)
    loss_fn = GamutAndRegression(
        centers,
        rebalancing_weights(priors, centers),
        args.l1_weight,
        args.regression,
    )
    store_bin_weights(model, loss_fn)
    full_ab = args.regression == "euclidean"
    batches = FeatureBatches(meta, arrays, train_rows, full_ab)
    val_batches = FeatureBatches(val[0], val[1], np.arange(val[0]["photos"]), full_ab) if val else None
    per_epoch = len(train_rows) // args.batch_size
    total = args.steps if args.steps is not None else int(math.ceil(args.epochs * per_epoch))
    warmup = args.warmup_steps if args.warmup_steps is not None else round(0.02 * total)
    params = [p for p in model.parameters() if p.requires_grad]
    tuned = {id(p) for p in encoder_params}
    groups = [{"params": [p for p in params if id(p) not in tuned], "lr": args.lr}]
    if encoder_params:
        groups.append({"params": encoder_params, "lr": args.lr * args.encoder_lr_scale})
    optimizer = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, make_lr_lambda("cosine", total, warmup))
    args_dict = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args_dict.update(
        size=meta["size"], data=meta["data_dir"], val=val[0]["data_dir"] if val else None
    )
    encoder = meta["config"]["encoder"]
    frozen = (
        f"frozen {encoder} encoder"
        if tune_after is None
        else f"{encoder} encoder frozen up to its stride-{tune_after} tap, later stages tuned at "
        f"{args.encoder_lr_scale} x lr"
    )
    run_config = {
        "model": meta["model"],
        "model_config": meta["config"],
        "lr": args.lr,
        "total_steps": total,
        "steps_per_epoch": per_epoch,
        "command": "python -m training.train_decoder " + " ".join(sys.argv[1:]),
        "init": init_record,
        "checkpoint_by": "highest hold-out AuC" if args.select == "auc" else "lowest val loss",
        "objective": f"phase 1 ({frozen}, cached features x{meta['flips']} "
        f"flips): {loss_fn.describe().removesuffix(' (two heads)')}"
        + (", checkpoint by hold-out AuC" if args.select == "auc" else ""),
        "data": {
            "train_dir": meta["data_dir"],
            "val_dir": val[0]["data_dir"] if val else None,
            "train_images": len(train_rows),
            "holdout_images": len(holdout_rows),
            "val_images": val[0]["photos"] if val else None,
            "train_grayscale_skipped": meta["grayscale_skipped"],
            "feature_cache": meta,
        },
    }
    counters: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "elapsed": 0.0,
        "best": math.inf,
        "bad_evals": 0,
        "finished": False,
        "stop_reason": "",
    }
    history: list[dict[str, Any]] = []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        counters, history = dict(state["counters"]), list(state["history"])
        run_config = state["run_config"]
        set_rng_state(state["rng"])
        print(f"resumed {out} at step {counters['step']}", file=sys.stderr)
    else:
        out.mkdir(parents=True, exist_ok=True)
        if val_batches is not None:  # the score of doing nothing (ab = 0) on the val photos
            rgb = val_batches.rgb(np.arange(val[0]["photos"]))
            l, ab = tdata.to_lab(rgb)
            gray = image_metrics(lab_batch_to_uint8(l, torch.zeros_like(ab)), rgb.permute(0, 2, 3, 1).numpy())
            run_config["gray_baseline"] = gray
            print(
                "gray baseline on val: " + ", ".join(f"{k} {v:.4g}" for k, v in gray.items()), file=sys.stderr
            )
    atomic_write_text(out / "config.json", json.dumps(run_config, indent=2, default=str) + "\n")

    def do_eval(train_loss: float) -> None:
        by_auc = args.select == "auc"
        held = evaluate(model, loss_fn, batches, holdout_rows, 64, with_images=by_auc, tune_after=tune_after)
        row: dict[str, Any] = {
            "epoch": round(counters["step"] / per_epoch, 4),
            "step": counters["step"],
            "images": counters["step"] * args.batch_size,
            "wall_s": round(counters["elapsed"], 1),
            "lr": scheduler.get_last_lr()[0],
            "train_loss": train_loss,
            "holdout_loss": held["loss"],
            "holdout_ce": held["ce"],
            "holdout_l1": held["l1"],
            **({"holdout_auc": held["auc"], "holdout_psnr": held["psnr"]} if by_auc else {}),
        }
        if val_batches is not None:
            v = evaluate(
                model, loss_fn, val_batches, val_batches.rows, 64, with_images=True, tune_after=tune_after
            )
            row.update({f"val_{k}": x for k, x in v.items()})
        history.append(row)
        score = 100.0 - held["auc"] if by_auc else held["loss"]  # lower is better either way
        improved = score < counters["best"] * (1 - args.min_delta)
        if score < counters["best"]:
            counters["best"] = score
        counters["bad_evals"] = 0 if improved else counters["bad_evals"] + 1
        if counters["bad_evals"] >= args.patience:
            counters["finished"], counters["stop_reason"] = True, f"early stop on the holdout {args.select}"
        if counters["step"] >= total:
            counters["finished"], counters["stop_reason"] = (
                True,
                counters["stop_reason"] or "reached the planned steps",
            )
        st = _state(model, optimizer, scheduler, counters, history, args_dict, run_config)
        save_checkpoint(
            st, *((out / "best.pt",) if score <= counters["best"] else ()), out / "last.pt"
        )
        write_metrics_csv(history, out / "metrics.csv")
        plot_history([{**r, "val_loss": r["holdout_loss"]} for r in history], out)
        print(
            f"step {counters['step']}: "
            + "  ".join(f"{k} {x:.4g}" for k, x in row.items() if isinstance(x, float) and k not in ("lr",)),
            file=sys.stderr,
            flush=True,
        )

    # bf16 only where the CPU has it natively, as in training.train; loss and optimiser stay float32
    precision = pick_precision(args.amp, CPU, lambda msg: print(msg, file=sys.stderr))
    model.train()
    start, elapsed_before = time.perf_counter(), counters["elapsed"]
    loss_sum, loss_n, window = 0.0, 0, time.perf_counter()
    stop_at = min(total, args.stop_after) if args.stop_after else total
    while counters["step"] < stop_at and not counters["finished"]:
        rng = np.random.default_rng(args.seed * 1000 + counters["epoch"])
        order = rng.permutation(train_rows)
        flips = rng.integers(0, 2, size=len(order))
        for b in range(counters["batch_in_epoch"], per_epoch):
            sl = slice(b * args.batch_size, (b + 1) * args.batch_size)
            taps, ab4, soft = batches.get(order[sl], flips[sl])
            with precision.autocast(CPU):
                logits, ab_pred = decode_cached(model, taps, tune_after)
            loss, _ = loss_fn.loss(logits, ab_pred, ab4, soft)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            scheduler.step()
            loss_sum, loss_n = loss_sum + float(loss.detach()), loss_n + 1
            counters["step"] += 1
            counters["batch_in_epoch"] = b + 1
            if counters["step"] % 50 == 0:
                rate = 50 * args.batch_size / (time.perf_counter() - window)
                print(
                    f"step {counters['step']}/{total} loss {loss_sum / loss_n:.4f} {rate:.1f} img/s",
                    file=sys.stderr,
                    flush=True,
                )
                window = time.perf_counter()
            if counters["step"] % args.eval_every == 0 or counters["step"] >= total:
                counters["elapsed"] = elapsed_before + time.perf_counter() - start
                do_eval(loss_sum / max(loss_n, 1))
                loss_sum, loss_n = 0.0, 0
            if counters["finished"] or counters["step"] >= stop_at:
                break
        else:
            counters["epoch"] += 1
            counters["batch_in_epoch"] = 0
    counters["elapsed"] = elapsed_before + time.perf_counter() - start
    if not history or history[-1]["step"] != counters["step"]:
        save_checkpoint(
            _state(model, optimizer, scheduler, counters, history, args_dict, run_config), out / "last.pt"
        )
    return counters


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        counters = run(args)
    except ColorcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: step {counters['step']}, {counters.get('stop_reason') or 'stopped'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
