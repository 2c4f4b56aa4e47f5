"""PNG figures of a run: loss curves, metric curves and a grid of validation samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in history:
        value = row.get(key)
        if value is None or value == "":
            continue
        xs.append(float(row["step"]))
        ys.append(float(value))
    return xs, ys


def plot_history(history: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write ``loss.png`` (train and val loss per step) and ``metrics.png`` (one panel per val metric)."""
    out_dir = Path(out_dir)
    if not history:
        return []
    plt = _pyplot()
    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        xs, ys = _series(history, key)
        if xs:
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "loss.png", dpi=100)
    plt.close(fig)
    written.append(out_dir / "loss.png")

    keys = [k for k in history[-1] if k.startswith("val_") and k != "val_loss"]
    if keys:
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            xs, ys = _series(history, key)
            ax.plot(xs, ys, marker="o", markersize=3)
            ax.set_title(key.removeprefix("val_"))
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "metrics.png", dpi=100)
        plt.close(fig)
        written.append(out_dir / "metrics.png")
    return written


def save_sample_grid(gray: Tensor, pred: Tensor, truth: Tensor, path: Path) -> None:
    """One row per image: gray | prediction | truth; inputs are ``(B, 3, H, W)`` float RGB in [0, 1]."""
    from torchvision.utils import save_image

    rows = torch.stack((gray, pred, truth), dim=1).flatten(0, 1)  # (3B, 3, H, W), row-major triplets
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_image(rows.float().clamp(0, 1).cpu(), str(path), nrow=3, padding=2, pad_value=1.0)
