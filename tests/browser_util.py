"""Helpers for the app tests: tiny weights of every kind, a free port, a served app and headless chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from colorcore import create_model
from colorcore.quantize import gamut_centers
from colorcore.weights import save_weights

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# name -> (model, config overrides, colours); random weights, a few thousand parameters each.
TINY_MODELS = {
    "baseline-tiny": ("baseline", {"hidden": 4}, "regression"),
    "eccv16-tiny": ("eccv16", {"width": 0.02, "dilations": [1]}, "gamut313"),
    "unet-palette-16": ("unet-palette", {"bins": 16, "width": 4, "depth": 2}, "palette16"),
    "unet-palette-24": ("unet-palette", {"bins": 24, "width": 4, "depth": 2}, "palette24"),
    "siggraph17-tiny": ("siggraph17", {"width": 0.02}, "gamut313"),
    "baseline-tiny2": ("baseline", {"hidden": 4}, "regression"),  # a 7th choice, for the 6-model cap
}
DEFAULT_TINY = ("baseline-tiny", "eccv16-tiny", "unet-palette-16", "unet-palette-24", "siggraph17-tiny")


def _palette(bins: int) -> list[list[float]]:
    """``bins`` spread-out gamut bin centres (a stand-in for a k-means palette in tests)."""
    centers = gamut_centers()
    idx = torch.linspace(0, len(centers) - 1, bins).round().long()
    return centers[idx].tolist()


def _history(seed: int, epochs: int = 4) -> list[dict[str, float]]:
    """A plausible, decreasing training history for a card (the training-curve figure reads it)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        jitter = float(torch.rand(1, generator=g)) * 0.05
        rows.append({"epoch": float(epoch), "step": epoch * 10, "train_loss": 2.0 / epoch + jitter,
                     "val_loss": 2.2 / epoch + jitter, "val_psnr": 18.0 + epoch + jitter,
                     "val_imgsim": 0.5 + 0.05 * epoch})
    return rows


def make_tiny_weights(folder: Path, names: tuple[str, ...] = DEFAULT_TINY) -> list[str]:
    """Save random tiny weights of each kind (regression, 313-bin, palette 16/24, hints) into ``folder``.

    ``baseline-tiny`` is marked default so it leads the picker. Returns the weights names.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        model_name, config, colors = TINY_MODELS[name]
        config = dict(config)
        if model_name == "unet-palette":
            config["palette"] = _palette(config["bins"])
        torch.manual_seed(i)
        model = create_model(model_name, **config)
        save_weights(model, folder / name, name=name, model_name=model_name, config=model.config,
                     input_size=128, colors=colors, metrics={},
                     card={"default": name == "baseline-tiny", "history": _history(i)})
    return list(names)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; raise with the server's log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = log.read_text(errors="replace") if log is not None and log.is_file() else ""
            raise RuntimeError(f"server exited with code {proc.returncode}:\n{out[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def serve(command: list[str], port: int, weights: Path, ready_path: str = "/", timeout: float = 600.0,
          threads: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run an app as a subprocess on 127.0.0.1:``port`` with ``weights`` as its weights folder.

    ``env`` adds variables (e.g. ``TORCH_HOME`` for an empty download cache)."""
    full_env = dict(os.environ)
    full_env.update(
        COLORCORE_WEIGHTS_DIR=str(weights), GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_SERVER_NAME="127.0.0.1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
        **(env or {}),
    )
    env = full_env
    # A file, not a pipe: an undrained pipe fills up and freezes the server mid-request.
    log = artifacts_dir() / f"server-{port}.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + ready_path, timeout, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def serve_gradio(port: int, weights: Path, **kw: Any) -> contextlib.AbstractContextManager[str]:
    return serve([sys.executable, "app.py"], port, weights, **kw)


def serve_streamlit(port: int, weights: Path, **kw: Any) -> contextlib.AbstractContextManager[str]:
    command = [sys.executable, "-m", "streamlit", "run", "demo/streamlit_app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    return serve(command, port, weights, ready_path="/_stcore/health", **kw)


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is missing; install Debian chromium and chromium-driver (`make browser`)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def chrome(profile_dir: Path, width: int = 1600, height: int = 1700):
    """A headless chromium driven by the system chromedriver (Selenium Manager never downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
                 "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


def artifacts_dir() -> Path:
    folder = REPO / "tests" / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def copy_example(name: str, dest: Path) -> Path:
    """A copy of an example photo (so a test never touches assets/)."""
    target = Path(dest) / name
    shutil.copyfile(REPO / "assets" / "examples" / name, target)
    return target
