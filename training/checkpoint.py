"""Crash-safe training checkpoints that ``torch.load(weights_only=True)`` can read.

A checkpoint is a plain dict of tensors, dicts, lists, str, int, float, bool and None: model and optimiser
state dicts, the model config as a dict, RNG states as tensors, counters and the metric history.
Files are written to a temporary file in the same folder, fsynced, then ``os.replace``d over the target
(and the folder fsynced) by ``colorcore.io.atomic_write_bytes``, so a ``kill -9`` leaves either the old or
the new file, never half of one.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorcore.errors import ColorcoreError
from colorcore.io import atomic_write_bytes

FORMAT = "colorcore-train/1"


class CheckpointError(ColorcoreError):
    """A checkpoint is missing, unreadable or not a colorcore training checkpoint."""


def serialize(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def save_checkpoint(state: dict[str, Any], *paths: Path) -> None:
    """Serialise ``state`` once and write it atomically to every path (e.g. last.pt and best.pt)."""
    data = serialize({"format": FORMAT, **state})
    for path in paths:
        atomic_write_bytes(Path(path), data)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; anything else raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # weights_only refuses pickled objects; truncated files raise various errors
        raise CheckpointError(f"{path} is not a readable training checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a colorcore training checkpoint (format {FORMAT!r})")
    return state


def rng_state() -> dict[str, Any]:
    """torch, CUDA, numpy and python RNG states, as tensors and plain values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss": py_state[2]},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]][: torch.cuda.device_count()]
        for i, s in enumerate(cuda):
            torch.cuda.set_rng_state(s, i)
    np_s = state["numpy"]
    np.random.set_state(("MT19937", np_s["key"].numpy().astype(np.uint32), np_s["pos"], np_s["has_gauss"],
                         np_s["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
