"""Turn a training run into bundled weights: ``NAME.safetensors``, ``NAME.json`` (card) and ``NAME.md``.

Usage::

    python -m training.export runs/eccv16-small --name eccv16-small [--out-dir assets/weights]
        [--data-manifest "colour-corpus (see MANIFEST.md)"] [--checkpoint best|last] [--default]

The weights come from ``best.pt`` (lowest validation loss). The JSON card carries ``training`` (data,
image counts, steps, epochs, wall time, device, batch size, size, lr, seed, command), ``metrics`` (the
best checkpoint's validation metrics), ``baseline_gray`` (the same metrics for ab = 0), ``history``
(the rows of ``metrics.csv``, for training-curve plots), ``colors`` and ``input_size``. After writing,
the file is reloaded through :func:`colorcore.weights.load_weights_file` and its output compared with
the checkpoint's.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorcore.errors import ColorcoreError, WeightsError
from colorcore.io import atomic_write_text
from colorcore.models.litecolor import bin_weights_of
from colorcore.registry import build_model
from colorcore.weights import WeightsEntry, load_weights_file, save_weights, weights_dir
from training.checkpoint import load_checkpoint
from training.priors import load_or_compute_priors, rebalancing_weights

# Relative tolerance of the fp16 round trip check (ab units are up to ~110).
_ROUNDTRIP_ATOL = 1.0


class ExportError(ColorcoreError):
    """A run folder cannot be exported (missing checkpoint, no evaluation yet, mismatched weights)."""


def _number(text: str) -> Any:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.csv`` with numbers parsed (empty cells -> None)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def colors_of(model: nn.Module, objective_kind: str) -> str:
    """``gamut313`` (313-bin classifiers), ``palette{bins}`` (palette classifiers) or ``regression``."""
    if objective_kind == "gamut313":
        return "gamut313"
    if objective_kind == "palette":
        return f"palette{model.decoder.num_bins}"
    return "regression"


def _val_metrics(row: dict[str, Any]) -> dict[str, float]:
    return {k.removeprefix("val_"): float(v) for k, v in row.items()
            if k.startswith("val_") and v is not None}


def init_lineage(entry: WeightsEntry) -> dict[str, Any]:
    """The training record of weights a run starts from (``--init``), nested when they were fine-tuned
    too. The trainer stores it when the run starts, so a later export that replaces those weights under
    the same name still describes what the run really started from."""
    t = entry.card.get("training", {})
    keys = ("steps", "epochs", "best_step", "wall_time_s", "device", "command", "init")
    return {"weights": entry.name, **{k: t[k] for k in keys if k in t}}


def lineage_totals(training: dict[str, Any]) -> tuple[int, int, float]:
    """Over a run and every run it was initialised from: the optimiser steps behind its best checkpoint
    (each run's best step, as that is what the next one started from), all steps run, and wall seconds."""
    best = int(training.get("best_step") or training.get("steps") or 0)
    steps, wall = int(training.get("steps") or 0), float(training.get("wall_time_s") or 0.0)
    if training.get("init"):
        more_best, more_steps, more_wall = lineage_totals(training["init"])
        best, steps, wall = best + more_best, steps + more_steps, wall + more_wall
    return best, steps, wall


def _lineage_lines(init: dict[str, Any]) -> list[str]:
    lines = []
    while init:
        best = f" (best checkpoint: step {init['best_step']})" if init.get("best_step") else ""
        lines.append(f"- initialised from weights `{init['weights']}`: {init.get('steps')} steps "
                     f"({init.get('epochs')} epochs){best}, {init.get('wall_time_s', 0):.0f} s on "
                     f"{init.get('device')}; command: `{init.get('command')}`")
        init = init.get("init")
    return lines


def _trainer(training: dict[str, Any]) -> str:
    command = str(training.get("command") or "")
    return "python -m training.train_decoder" if "train_decoder" in command else "python -m training.train"


def model_card_markdown(name: str, entry_card: dict[str, Any]) -> str:
    """Human-readable model card of an exported run."""
    t = entry_card["training"]
    metrics = entry_card.get("metrics", {})
    gray = entry_card.get("baseline_gray") or {}
    lines = [
        f"# {name}",
        "",
        f"Model `{entry_card['model']}` trained with `{_trainer(t)}` and exported by "
        "`python -m training.export`.",
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(entry_card["config"], indent=2),
        "```",
        "",
        f"- objective: {t.get('objective')}",
        f"- colours: {entry_card['colors']}; working input size: {entry_card['input_size']} px; "
        f"stored as {entry_card.get('precision', 'fp16')}",
        "",
        "## Training",
        "",
        f"- data: {t.get('data_dir')} ({t.get('train_images')} train / {t.get('val_images')} val photos; "
        f"{t.get('grayscale_skipped', 0)} grayscale photos skipped)",
    ]
    if t.get("data_manifest"):
        lines.append(f"- data manifest: {t['data_manifest']}")
    cache = t.get("feature_cache")
    if cache:
        lines.append(f"- encoder features cached once by `python -m training.feature_cache`: "
                     f"{cache['photos']} photos x {cache['flips']} flips at {cache['size']} px, "
                     f"{cache['seconds']:.0f} s on {cache['threads']} CPU thread(s) (not in the wall time)")
    if t.get("holdout_images"):
        lines.append(f"- best checkpoint chosen on {t['holdout_images']} train photos held out from training "
                     "(seeded); val is only reported")
    lines += [
        f"- steps: {t.get('steps')} ({t.get('epochs')} epochs) at batch size {t.get('batch_size')} x "
        f"{t.get('world_size', 1)} process(es), size {t.get('size')} px, lr {t.get('lr')}, "
        f"seed {t.get('seed')}",
        *_checkpoint_lines(t, entry_card.get("checkpoint", "best")),
        f"- wall time: {t.get('wall_time_s', 0):.0f} s on {t.get('device')}",
        f"- command: `{t.get('command')}`",
        *([f"- note: {t['note']}"] if t.get("note") else []),
        *_bin_weights_lines(t),
    ]
    if t.get("init"):
        best, steps, wall = lineage_totals(t)
        lines += [*_lineage_lines(t["init"]),
                  f"- in all, from random initialisation: these weights are {best} optimiser steps deep; "
                  f"{steps} steps and {wall:.0f} s of training were run"]
    lines += [
        "",
        "## Validation metrics (exported checkpoint)",
        "",
        "| metric | model | gray (ab = 0) |",
        "|---|---:|---:|",
    ]
    for key, value in metrics.items():
        g = gray.get(key)
        lines.append(f"| {key} | {value:.4g} | {'' if g is None else f'{g:.4g}'} |")
    lines += ["", "The gray baseline is the input itself, measured on the same validation images.", ""]
    lines += evaluation_markdown(entry_card.get("evaluation"))
    return "\n".join(lines)


def _lowest_val_loss_step(history: list[dict[str, Any]]) -> int | None:
    rows = [r for r in history if r.get("val_loss") is not None]
    return min(rows, key=lambda r: r["val_loss"])["step"] if rows else None


def _bin_weights_lines(t: dict[str, Any]) -> list[str]:
    if not t.get("bin_weights_from"):
        return []
    return [f"- rebalancing weights (`bin_weights`, which the faithful decode divides out): recomputed at "
            f"export from the class priors of `{t['bin_weights_from']}`"]


def _checkpoint_lines(t: dict[str, Any], checkpoint: str) -> list[str]:
    """Which checkpoint the weights are, and why the run stopped where it did."""
    planned = t.get("planned_steps")
    if t.get("stop_reason"):
        why = t["stop_reason"]
    elif planned and t.get("steps", 0) < planned:
        why = f"the sitting ended at step {t.get('steps')} of the {planned} planned"
    else:
        why = "interrupted"
    if checkpoint == "last":
        chosen = (f"the last checkpoint, step {t.get('best_step')} (the lowest val loss was at step "
                  f"{t.get('lowest_val_loss_step')})")
    else:
        chosen = f"best checkpoint ({t.get('checkpoint_by') or 'lowest val loss'}), step {t.get('best_step')}"
    return [f"- weights: {chosen}; stop reason: {why}"]


def evaluation_markdown(evaluation: dict[str, Any] | None) -> list[str]:
    """The card section written by ``python -m training.cards`` (full val set, through the pipeline)."""
    if not evaluation:
        return []
    columns = evaluation.get("decodes") or {"model": evaluation["metrics"]}
    lines = [
        "## Evaluation through the pipeline",
        "",
        f"`python -m colorcore evaluate` on {evaluation['photos']} photos of `{evaluation['data']}` at "
        f"{evaluation['size']} px working size, output at full resolution:",
        "",
        "| metric | " + " | ".join(columns) + " | gray (ab = 0) |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for key in evaluation["metrics"]:
        g = evaluation["gray"].get(key)
        shown = ["n/a" if m.get(key) is None else f"{m[key]:.4g}" for m in columns.values()]
        lines.append(f"| {key} | {' | '.join(shown)} | {'n/a' if g is None else f'{g:.4g}'} |")
    return [*lines, ""]


def export_run(run_dir: Path, name: str, out_dir: Path | None = None, data_manifest: str | None = None,
               checkpoint: str = "best", default: bool = False, note: str | None = None,
               bin_priors: Path | None = None) -> WeightsEntry:
    """Export ``run_dir/<checkpoint>.pt`` as bundled weights ``out_dir/name``; returns the written entry.
    ``note`` is a fact about the run that its files do not hold (e.g. that it was paused), for the card.
    ``bin_priors`` (a photo folder) fills litecolor's ``bin_weights`` from that folder's class priors, for
    runs saved before the trainer stored them; it must be the folder the run trained on."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else weights_dir()
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ExportError(f"--name must be a plain file name, got {name!r}")
    ckpt_path = run_dir / f"{checkpoint}.pt"
    if not ckpt_path.is_file():
        hint = " (no evaluation has finished yet)" if checkpoint == "best" else ""
        raise ExportError(f"{ckpt_path} does not exist{hint}")
    state = load_checkpoint(ckpt_path)
    final = load_checkpoint(run_dir / "last.pt") if (run_dir / "last.pt").is_file() else state
    model = build_model(state["model_name"], **state["model_config"])
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{ckpt_path} does not fit model {state['model_name']!r}: {exc}") from exc
    model.eval()
    args = state["args"]
    if bin_priors is not None:
        _fill_bin_weights(model, Path(bin_priors))
    run_config = final.get("run_config", {})
    if not state["history"]:
        raise ExportError(f"{ckpt_path} has no evaluation in its history; train until the first evaluation")
    best_row = state["history"][-1]  # best.pt is written right after the evaluation that made it best
    metrics = _val_metrics(best_row)
    counters = final["counters"]
    facts = final.get("data", {})
    per_epoch = max(1, int(run_config.get("steps_per_epoch", 1)))
    training = {
        "data_dir": facts.get("train_dir", args.get("data")),
        "val_dir": facts.get("val_dir", args.get("val")),
        "data_manifest": data_manifest,
        "train_images": facts.get("train_images"),
        "val_images": facts.get("val_images"),
        "grayscale_skipped": facts.get("train_grayscale_skipped", 0),
        "steps": counters["step"],
        "epochs": round(counters["step"] / per_epoch, 3),
        "planned_steps": args.get("steps"),
        "best_step": best_row.get("step"),
        "lowest_val_loss_step": _lowest_val_loss_step(final["history"]),
        "checkpoint_by": run_config.get("checkpoint_by"),
        "wall_time_s": round(float(counters["elapsed"]), 1),
        "device": final.get("device"),
        "world_size": final.get("world_size", 1),
        "batch_size": args.get("batch_size"),
        "size": args.get("size"),
        "lr": run_config.get("lr", args.get("lr")),
        "seed": args.get("seed"),
        "augment": facts.get("augment"),
        "objective": run_config.get("objective", state.get("objective_kind")),
        "stop_reason": counters.get("stop_reason", ""),
        "holdout_images": facts.get("holdout_images"),
        "feature_cache": facts.get("feature_cache"),
        "command": run_config.get("command", ""),
    }
    if note:
        training["note"] = note
    if bin_priors is not None:
        training["bin_weights_from"] = str(bin_priors)
    if args.get("init"):
        if not run_config.get("init"):
            raise ExportError(f"{run_dir} was started from {args['init']!r} by a trainer that did not record "
                              "those weights' training, so its card could not say what it started from")
        training["init"] = run_config["init"]
    card: dict[str, Any] = {
        "training": training,
        "baseline_gray": final.get("gray_baseline") or {},
        "history": read_history(run_dir) or final["history"],
        "checkpoint": checkpoint,
    }
    if default:
        card["default"] = True
    colors = colors_of(model, state.get("objective_kind", "regression"))
    size = int(args["size"])
    # fp16 halves the size; argmax-style decoders (palette top-k, mode) can flip bins under fp16
    # rounding, so keep fp32 when the half-precision file does not reproduce the checkpoint.
    for half in (True, False):
        card["precision"] = "fp16" if half else "fp32"
        entry = save_weights(model, out_dir / name, name=name, model_name=state["model_name"],
                             config=state["model_config"], input_size=size, colors=colors, metrics=metrics,
                             card=card, half=half)
        try:
            _check_roundtrip(model, out_dir / f"{name}.safetensors", size)
            break
        except WeightsError:
            if not half:
                raise
    atomic_write_text(out_dir / f"{name}.md", model_card_markdown(name, entry.card))
    return entry


@torch.no_grad()
def _check_roundtrip(model: nn.Module, path: Path, size: int) -> None:
    loaded = load_weights_file(path)
    stride = int(getattr(model, "stride", 1))
    side = max(stride, (size // stride) * stride)
    l = torch.linspace(0, 100, side * side).reshape(1, 1, side, side)
    ref = model.predict_ab(l)
    got = loaded.predict_ab(l)
    err = float((ref - got).abs().max())
    if not err <= _ROUNDTRIP_ATOL:
        raise WeightsError(f"exported {path} does not reproduce the checkpoint (max ab difference {err:.3g})")


def _fill_bin_weights(model: nn.Module, data_dir: Path) -> None:
    weights = bin_weights_of(model)
    if weights is None:
        raise ExportError(f"--bin-priors: {type(model).__name__} keeps no bin weights (only litecolor does)")
    if not data_dir.is_dir():
        raise ExportError(f"--bin-priors: {data_dir} is not a folder of photos")
    centers = model.decoder.centers
    with torch.no_grad():
        weights.copy_(rebalancing_weights(load_or_compute_priors(data_dir, centers), centers))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="a run folder written by python -m training.train")
    p.add_argument("--name", required=True, help="weights name (file stem), e.g. eccv16-small")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="default: $COLORCORE_WEIGHTS_DIR or assets/weights")
    p.add_argument("--data-manifest", default=None,
                   help="text describing the training data (goes in the card)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--default", action="store_true", help="mark as the model's default weights")
    p.add_argument("--note", default=None, help="a fact about the run for its card (e.g. that it was paused)")
    p.add_argument("--bin-priors", type=Path, default=None, metavar="TRAIN_DIR",
                   help="litecolor runs saved before the trainer stored its rebalancing weights: recompute "
                        "them from the run's training folder (its faithful decode divides them out)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        entry = export_run(args.run_dir, args.name, args.out_dir, args.data_manifest, args.checkpoint,
                           args.default, args.note, args.bin_priors)
    except ColorcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = ", ".join(f"{k} {v:.4g}" for k, v in entry.metrics.items())
    print(f"wrote {entry.file} (+ .json, .md): {entry.model}, {entry.colors}, "
          f"input {entry.input_size}px; {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
