"""Faults: kill -9 during training, tampered or malicious weights, and no unsafe unpickling anywhere.

Training: a tiny ``baseline`` run of N steps is trained once straight through and once while being
killed with SIGKILL at random moments (three times, each followed by ``--resume``). The final
checkpoints are compared by content (``torch.load(weights_only=True)`` then ``torch.equal`` on every
tensor of the model and optimiser state, plus the loss history), not by file hash: a checkpoint also
records wall-clock times, which differ between any two runs. After every kill every ``*.pt`` file in the
run folder must load.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import colorcore.registry as registry
from colorcore.cli import main as cli_main
from colorcore.errors import WeightsError
from colorcore.weights import WeightsEntry, create_model, load_weights_file, sha256_file
from training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
STEPS, EVAL_EVERY, KILLS = 120, 40, 3
SEED = 20240611  # the kill steps are random but reproducible


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 training and 3 validation colour photos, 40 x 48."""
    root = tmp_path_factory.mktemp("fault_photos")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:48] / 40.0
    for sub, count in (("train", 8), ("val", 3)):
        (root / sub).mkdir()
        for i in range(count):
            rgb = np.stack([0.5 + 0.45 * np.sin(3 * x + 2 * y + p) for p in rng.uniform(0, 6, 3)], -1)
            rgb = np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1)
            Image.fromarray((rgb * 255).astype(np.uint8)).save(root / sub / f"p{i}.png")
    return root


def _command(photos: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "training.train", "--model", "baseline", "--config", "hidden=8",
            "--data", str(photos / "train"), "--val", str(photos / "val"), "--size", "32",
            "--batch-size", "4", "--steps", str(STEPS), "--eval-every", str(EVAL_EVERY), "--seed", "0",
            "--workers", "0", "--threads", "1", "--no-progress", "--cache-dir", str(photos / "cache"),
            "--out", str(out), *extra]


def _env() -> dict[str, str]:
    path = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)


def _all_checkpoints_load(folder: Path) -> list[str]:
    """Names of the ``*.pt`` files in ``folder``; fails if any does not load with weights_only=True."""
    names = []
    for path in sorted(folder.glob("*.pt")):
        load_checkpoint(path)  # raises CheckpointError on a torn or foreign file
        names.append(path.name)
    return names


def _saved_step(last: Path) -> int:
    """The step recorded in ``last.pt`` (-1 before the first save)."""
    return int(load_checkpoint(last)["counters"]["step"]) if last.exists() else -1


def _content(path: Path) -> dict[str, object]:
    """The deterministic content of a checkpoint: model and optimiser tensors, counters and losses."""
    ck = load_checkpoint(path)
    tensors = {f"model.{k}": v for k, v in ck["model"].items()}
    for i, state in ck["optimizer"]["state"].items():
        tensors.update({f"optimizer.{i}.{k}": torch.as_tensor(v) for k, v in state.items()})
    counters = {k: v for k, v in ck["counters"].items() if k != "elapsed"}  # wall time differs
    losses = [(r["step"], r["train_loss"], r["val_loss"]) for r in ck["history"]]
    return {"tensors": tensors, "counters": counters, "losses": losses}


def test_kill_9_three_times_then_resume_equals_an_uninterrupted_run(photos: Path, tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run(_command(photos, straight), cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    # Kill targets are random steps well before the end, so every kill lands mid-run however fast the
    # machine is; the kill itself lands wherever the process is (computing or writing a checkpoint).
    targets = sorted(random.Random(SEED).sample(range(5, STEPS - 40), KILLS))
    log = []
    cmd = _command(photos, killed, "--save-every", "1")
    last = killed / "last.pt"
    for attempt, target in enumerate(targets):
        proc = subprocess.Popen(cmd + (["--resume"] if attempt else []), cwd=REPO, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline and _saved_step(last) < target:
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, f"ended before the kill at step {target}: {err[-2000:]}"
        log.append(f"killed at step {_saved_step(last)} (target {target})")
        present = _all_checkpoints_load(killed)  # no torn checkpoint, whenever the kill landed
        assert "last.pt" in present, log
    resumed = subprocess.run(cmd + ["--resume"], cwd=REPO, env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _all_checkpoints_load(killed) == _all_checkpoints_load(straight) == ["best.pt", "last.pt"]

    for name in ("last.pt", "best.pt"):
        want, got = _content(straight / name), _content(killed / name)
        assert got["counters"] == want["counters"], (name, log)
        assert want["tensors"].keys() == got["tensors"].keys()
        differ = [k for k in want["tensors"] if not torch.equal(want["tensors"][k], got["tensors"][k])]
        assert not differ, f"{name}: tensors differ after {log}: {differ}"
        assert got["losses"] == want["losses"], (name, log)
    assert load_checkpoint(killed / "last.pt")["counters"]["finished"]
    print("kill log:", log, "; leftover temporary files:", sorted(p.name for p in killed.glob(".*.tmp")))


# -- weights -------------------------------------------------------------------------------------------
# tests/test_weights.py already covers a tampered safetensors file (hash check), an unknown extension,
# a non-published .pth never being unpickled and a corrupted download cache; these add the rest.


def test_truncated_safetensors_with_a_matching_card_is_refused(tiny_trained_weights: WeightsEntry) -> None:
    path = tiny_trained_weights.file
    path.write_bytes(path.read_bytes()[:100])
    card = path.with_suffix(".json")
    card.write_text(re.sub(r'"sha256": "[0-9a-f]+"', f'"sha256": "{sha256_file(path)}"', card.read_text()))
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        create_model(tiny_trained_weights.name)


class _Payload:
    """Pickles to a call of ``os.mkdir(marker)``: what a malicious checkpoint would run when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.marker),)


def test_malicious_pickle_under_a_published_hash_is_refused_unexecuted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"down.0.weight": _Payload(marker)}, path)
    entry = WeightsEntry(name="baseline-pub", model="baseline", config={}, sha256=sha256_file(path)[:8],
                         input_size=128, colors="regression", url="https://example.invalid/evil.pth")
    spec = registry.get_spec("baseline")
    monkeypatch.setitem(registry._REGISTRY, "baseline", dataclasses.replace(spec, published=(entry,)))
    with pytest.raises(WeightsError, match="not a loadable tensor checkpoint"):
        load_weights_file(path)  # its hash makes it "published", so it is unpickled, but only safely
    assert not marker.exists(), "the payload ran"


def test_cli_refuses_tampered_weights_in_one_line(
    tiny_trained_weights: WeightsEntry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(tiny_trained_weights.file.read_bytes())
    data[-3] ^= 0x55
    tiny_trained_weights.file.write_bytes(bytes(data))
    image = tmp_path / "in.png"
    Image.new("L", (8, 8), 100).save(image)
    status = cli_main(["colorize", str(image), "--model", str(tiny_trained_weights.file),
                       "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "hash check" in lines[0]


# -- no unsafe deserialisation in the code base --------------------------------------------------------

_UNSAFE = {"pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads", "dill.load",
           "dill.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load", "marshal.load",
           "marshal.loads", "shelve.open", "torch.hub.load", "pandas.read_pickle"}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def _unsafe_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[(a.asname or a.name).split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases) or ""
        kwargs = {k.arg: k.value for k in node.keywords}
        where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path.name}:{node.lineno}"
        if name == "torch.load" or name.endswith(".torch.load"):
            flag = kwargs.get("weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                found.append(f"{where}: torch.load without weights_only=True")
        elif name in _UNSAFE:
            found.append(f"{where}: {name}")
        elif name == "numpy.load":
            flag = kwargs.get("allow_pickle")
            if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                found.append(f"{where}: numpy.load with allow_pickle")
    return found


def test_no_unsafe_unpickling_in_colorcore_or_training(tmp_path: Path) -> None:
    files = sorted([*(REPO / "colorcore").rglob("*.py"), *(REPO / "training").rglob("*.py")])
    assert len(files) > 20
    problems = [p for f in files for p in _unsafe_calls(f)]
    # The text as well, for what the AST cannot see (strings passed to exec, comments aside).
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"weights_only\s*=\s*False|allow_pickle\s*=\s*True", code):
                problems.append(f"{f.relative_to(REPO)}:{i}: {line.strip()}")
    assert not problems, "\n".join(problems)
    # The scanner itself must catch what it is meant to catch.
    probe = tmp_path / "probe.py"
    probe.write_text("import pickle\nimport torch as t\nfrom numpy import load\n"
                     "t.load('x')\npickle.loads(b'')\nt.load('y', weights_only=True)\n"
                     "load('z', allow_pickle=True)\n")
    assert [p.split(": ", 1)[1] for p in _unsafe_calls(probe)] == [
        "torch.load without weights_only=True", "pickle.loads", "numpy.load with allow_pickle"]
