"""Shared fixtures: tiny images, an isolated weights folder and a quickly trained baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from photos import smooth_rgb
from PIL import Image

from colorcore.color import rgb_to_lab
from colorcore.weights import WeightsEntry, save_weights

# The test machine is small and shared: one or two threads keep the suite predictable.
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))



@pytest.fixture(autouse=True)
def _no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CPU runs the float32 fast path in tests, so "fast == plain within rounding" holds alike on
    machines with AMX or AVX512-BF16 (where it would pick bf16 autocast). tests/test_fast.py tests the bf16
    choice on its own by forcing the hardware check."""
    import colorcore.fast

    monkeypatch.setattr(colorcore.fast, "cpu_has_fast_bf16", lambda: False)


TINY_WEIGHTS_NAME = "baseline-tiny"
TINY_INPUT_SIZE = 64


@pytest.fixture
def make_rgb():
    """The :func:`smooth_rgb` factory, for tests that need images of their own size."""
    return smooth_rgb


@pytest.fixture
def color_image() -> Image.Image:
    """A 53 x 37 (W x H) RGB image: odd sizes on purpose."""
    return Image.fromarray(smooth_rgb(37, 53), "RGB")


@pytest.fixture
def gray_image() -> Image.Image:
    """A 53 x 37 (W x H) grayscale image."""
    return Image.fromarray(smooth_rgb(37, 53, seed=1)[:, :, 1], "L")


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder that ``colorcore.weights`` uses instead of ``assets/weights``."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("COLORCORE_WEIGHTS_DIR", str(folder))
    return folder


def _training_batch(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic photos whose colour follows lightness (dark = blue, bright = orange): L and ab."""
    rgb = np.stack([smooth_rgb(size, size, seed=seed + i) for i in range(n)])
    lab = rgb_to_lab(torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255)
    l = lab[:, :1]
    t = (l - 50) / 50  # -1 (dark) .. 1 (bright)
    ab = torch.cat((25 * t, 40 * t), dim=1)
    return l, ab


@pytest.fixture(scope="session")
def tiny_baseline_state() -> dict[str, torch.Tensor]:
    """State dict of a ``baseline`` trained for a few steps on synthetic data (about a second)."""
    from colorcore import create_model

    torch.manual_seed(0)
    model = create_model("baseline", hidden=8)
    l, ab = _training_batch(4, 32, seed=10)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(80):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(l), ab)
        loss.backward()
        optimiser.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def tiny_trained_weights(weights_dir: Path, tiny_baseline_state: dict[str, torch.Tensor]) -> WeightsEntry:
    """``baseline-tiny`` (``baseline``, hidden=8, trained briefly) saved as the default bundled weights."""
    from colorcore import create_model

    model = create_model("baseline", hidden=8)
    model.load_state_dict(tiny_baseline_state)
    return save_weights(
        model, weights_dir / TINY_WEIGHTS_NAME, name=TINY_WEIGHTS_NAME, model_name="baseline",
        config=model.config, input_size=TINY_INPUT_SIZE, colors="regression",
        metrics={"note": "test fixture"}, card={"default": True},
    )
