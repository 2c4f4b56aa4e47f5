"""hubconf.py: torch.hub.load(clone, NAME, source="local") returns the bundled, ready model."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from colorcore.weights import available_weights, create_model

ROOT = Path(__file__).resolve().parents[1]


def test_every_bundled_weights_name_and_family_is_an_entry_point():
    hubconf = importlib.import_module("hubconf")
    bundled = [e for e in available_weights() if e.file is not None]
    assert bundled
    for name in {e.name for e in bundled} | {e.model for e in bundled}:
        assert callable(getattr(hubconf, name)), name


def test_hub_load_returns_the_bundled_model_in_eval_mode():
    model = torch.hub.load(str(ROOT), "eccv16-w25", source="local")
    assert not model.training
    l = torch.linspace(0, 100, 64 * 64).reshape(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            model.predict_ab(l), create_model("eccv16-w25", pretrained=True).eval().predict_ab(l)
        )


def test_hub_load_gives_the_flagship():
    model = torch.hub.load(str(ROOT), "litecolor", source="local")
    assert type(model).__name__ == "LiteColor" and model.weights_entry.name == "litecolor"
