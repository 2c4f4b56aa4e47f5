"""python -m colorcore: models, colorize and evaluate, run in-process (and once as a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorcore.cli import main
from colorcore.weights import WeightsEntry


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def photos(tmp_path: Path, make_rgb: Callable[..., np.ndarray]) -> Path:
    """A folder of three small colour photos (one in a subfolder, one JPEG) plus a non-image file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(make_rgb(37, 53, seed=1)).save(folder / "a.png")
    Image.fromarray(make_rgb(40, 30, seed=2)).save(folder / "b.jpg", quality=95)
    Image.fromarray(make_rgb(24, 24, seed=3)).save(folder / "sub" / "c.png")
    (folder / "readme.txt").write_text("not an image, and not picked up from folders")
    return folder


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(folder))
    return folder


# -- models --------------------------------------------------------------------------------------------


def test_models_table(
    capsys: pytest.CaptureFixture[str], tiny_trained_weights: WeightsEntry, hub_dir: Path
) -> None:
    code, out, err = _run(capsys, "models")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["name", "task", "params", "hints", "weights"]
    baseline = next(line for line in lines if line.startswith("baseline "))
    assert baseline.split()[1:3] == ["regression", "3.1"]  # default config: 3.1 K parameters
    assert "yes" in baseline.split() and baseline.rstrip().endswith("baseline-tiny")
    if any(line.startswith("eccv16 ") for line in lines):
        eccv16 = next(line for line in lines if line.startswith("eccv16 "))
        assert "download" in eccv16.split() and "not downloaded" in eccv16
    assert "Traceback" not in err


def test_models_as_a_subprocess(tiny_trained_weights: WeightsEntry, weights_dir: Path) -> None:
    env = {**os.environ, "COLORCORE_WEIGHTS_DIR": str(weights_dir), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "colorcore", "models"], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("baseline ") and "baseline-tiny" in line for line in proc.stdout.splitlines())
    assert "Traceback" not in proc.stderr


# -- colorize ------------------------------------------------------------------------------------------


def test_colorize_folder(capsys: pytest.CaptureFixture[str], tiny_trained_weights: WeightsEntry, photos: Path,
                         tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, "colorize", photos, "--model", "baseline-tiny", "--out", out_dir)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.png", "b.png", "c.png"]
    for name, size in [("a", (53, 37)), ("b", (30, 40)), ("c", (24, 24))]:
        with Image.open(out_dir / f"{name}.png") as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == size
    assert "colorized 3 of 3" in out


def test_colorize_continues_past_bad_files(
    capsys: pytest.CaptureFixture[str], tiny_trained_weights: WeightsEntry, photos: Path, tmp_path: Path
) -> None:
    fake = photos / "fake.jpg"
    fake.write_text("<html>404 not found</html>")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, "colorize", photos, empty, "--model", "baseline", "--out", out_dir,
                          "--size", "32")
    assert code == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.png", "b.png", "c.png"]
    assert "colorized 3 of 5" in out
    assert "Traceback" not in err
    assert f"{fake}: not a recognised image file" in err
    assert f"{empty}: the file is empty" in err


def test_colorize_name_clashes_and_overwrite_guard(
    capsys: pytest.CaptureFixture[str], tiny_trained_weights: WeightsEntry, tmp_path: Path,
    make_rgb: Callable[..., np.ndarray],
) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        Image.fromarray(make_rgb(8, 8)).save(tmp_path / folder / "same.png")
    code, _, err = _run(capsys, "colorize", tmp_path / "x", tmp_path / "y", "--model", "baseline",
                        "--out", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["same-2.png", "same.png"]
    before = (tmp_path / "x" / "same.png").read_bytes()
    code, _, err = _run(capsys, "colorize", tmp_path / "x", "--model", "baseline", "--out", tmp_path / "x")
    assert code == 1
    _assert_one_line_error(err, "would overwrite the input")
    assert (tmp_path / "x" / "same.png").read_bytes() == before


def test_user_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], weights_dir: Path, photos: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    code, _, err = _run(capsys, "colorize", photos, "--model", "no-such-model", "--out", out_dir)
    assert code == 1
    _assert_one_line_error(err, "unknown model 'no-such-model'", "baseline")
    code, _, err = _run(capsys, "colorize", photos, "--model", "baseline", "--out", out_dir)
    assert code == 1  # no weights in the (empty) weights folder
    _assert_one_line_error(err, "no weights for model 'baseline'")
    code, _, err = _run(capsys, "colorize", tmp_path / "missing", "--model", "baseline", "--out", out_dir)
    assert code == 1
    _assert_one_line_error(err, "no such file or folder")
    (tmp_path / "nothing").mkdir()
    code, _, err = _run(capsys, "colorize", tmp_path / "nothing", "--model", "baseline", "--out", out_dir)
    assert code == 1
    _assert_one_line_error(err, "no image files")
    assert not out_dir.exists()


def test_cuda_request_without_cuda(capsys: pytest.CaptureFixture[str], tiny_trained_weights: WeightsEntry,
                                   photos: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, _, err = _run(capsys, "colorize", photos, "--model", "baseline", "--out", tmp_path / "o",
                        "--device", "cuda")
    assert code == 1
    _assert_one_line_error(err, "CUDA is not available")


@pytest.mark.parametrize("argv", [
    [],
    ["colorize", "x.png", "--out", "o"],  # --model missing
    ["colorize", "x.png", "--model", "baseline", "--out", "o", "--size", "8"],
    ["colorize", "x.png", "--model", "baseline", "--out", "o", "--size", "big"],
    ["colorize", "x.png", "--model", "baseline", "--out", "o", "--temperature", "0"],
    ["colorize", "x.png", "--model", "baseline", "--out", "o", "--top-k", "-1"],
    ["colorize", "x.png", "--model", "baseline", "--out", "o", "--device", "tpu"],
    ["evaluate", "--data", "d"],  # --models missing
    ["frobnicate"],
])
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err and err.strip()


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "colorize", "--help")
    assert code == 0 and "--temperature" in out


# -- evaluate ------------------------------------------------------------------------------------------


def _table_rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| model"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_evaluate_report_and_figure(
    capsys: pytest.CaptureFixture[str], tiny_trained_weights: WeightsEntry, photos: Path, tmp_path: Path,
    hub_dir: Path,
) -> None:
    from colorcore.metrics import METRIC_INFO

    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    report, figure = tmp_path / "rep" / "report.md", tmp_path / "fig" / "grid.png"
    code, out, err = _run(capsys, "evaluate", "--data", photos, "--models", "baseline-tiny,baseline",
                          "--out", report, "--figure", figure)
    assert code == 0, err
    rows = _table_rows(out)
    assert set(rows) == {"baseline-tiny", "baseline [baseline-tiny]", "gray (ab = 0)"}
    header = next(line for line in out.splitlines() if line.startswith("| model"))
    assert METRIC_INFO["psnr"][0] in header and METRIC_INFO["ciede2000"][0] in header
    for cells in rows.values():
        assert cells[1] == "3"  # 3 readable photos (broken.png skipped with a note)
        assert all(c != "n/a" for c in cells[2:])
    assert rows["baseline-tiny"][0] == "64" and rows["gray (ab = 0)"][0] == "-"
    assert rows["baseline-tiny"][2:] == rows["baseline [baseline-tiny]"][2:]
    assert "broken.png" in err and "Traceback" not in err

    with Image.open(figure) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 200
    text = report.read_text()
    assert "| baseline-tiny |" in text and "gray (ab = 0)" in text
    assert "](../fig/grid.png)" in text


def test_evaluate_all_and_limit(
    capsys: pytest.CaptureFixture[str], tiny_trained_weights: WeightsEntry, photos: Path, hub_dir: Path
) -> None:
    code, out, err = _run(capsys, "evaluate", "--data", photos, "--models", "all", "--limit", "2",
                          "--size", "32")
    assert code == 0, err
    rows = _table_rows(out)
    assert set(rows) == {"baseline-tiny", "gray (ab = 0)"}
    assert rows["baseline-tiny"][:2] == ["32", "2"]
    from colorcore.registry import get_spec, list_models

    published = [e.name for m in list_models() for e in get_spec(m).published]
    for name in published:  # published weights are not in the (temporary) hub cache: skipped, with a note
        assert f"skipped {name}" in err


def test_evaluate_errors(capsys: pytest.CaptureFixture[str], weights_dir: Path, photos: Path,
                         tmp_path: Path) -> None:
    code, _, err = _run(capsys, "evaluate", "--data", photos, "--models", "baseline,nope")
    assert code == 1
    _assert_one_line_error(err)
    code, _, err = _run(capsys, "evaluate", "--data", tmp_path / "missing", "--models", "baseline")
    assert code == 1
    _assert_one_line_error(err, "is not a folder")
