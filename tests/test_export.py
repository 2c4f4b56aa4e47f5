"""Export a real tiny run to bundled weights, load it back through colorcore and colourise with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from photos import smooth_rgb
from PIL import Image

import colorcore
from colorcore.pipeline import Colorizer
from training.checkpoint import load_checkpoint
from training.export import ExportError, export_run, read_history
from training.export import main as export_main
from training.train import main as train_main

SIZE = 32


def _photo(seed: int, side: int) -> np.ndarray:
    return smooth_rgb(side, side, seed, amplitude=0.45)


def _tiny_run_args(root: Path) -> list[str]:
    """Trainer arguments for 4 steps on ``root``'s tiny train/val photos, evaluating every 2."""
    return ["--data", str(root / "train"), "--val", str(root / "val"), "--size", str(SIZE),
            "--batch-size", "4", "--workers", "0", "--no-progress", "--cache-dir", str(root / "cache"),
            "--steps", "4", "--eval-every", "2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished baseline run and a finished unet-palette run on 8 + 4 tiny photos."""
    root = tmp_path_factory.mktemp("export")
    for split, n, offset in (("train", 8, 0), ("val", 4, 50)):
        (root / split).mkdir()
        for i in range(n):
            Image.fromarray(_photo(offset + i, 40)).save(root / split / f"{i}.png")
    common = _tiny_run_args(root)
    out = {"baseline": root / "baseline", "palette": root / "palette"}
    assert train_main(["--model", "baseline", "--config", "hidden=8", "--out", str(out["baseline"]),
                       *common]) == 0
    assert train_main(["--model", "unet-palette", "--config", "width=8", "depth=2",
                       "--out", str(out["palette"]), *common]) == 0
    return out


def test_export_load_colorize_round_trip(runs, weights_dir: Path):
    assert export_main([str(runs["baseline"]), "--name", "baseline-test",
                        "--data-manifest", "8 gradients"]) == 0
    for suffix in (".safetensors", ".json", ".md"):
        assert (weights_dir / f"baseline-test{suffix}").is_file()
    card = json.loads((weights_dir / "baseline-test.json").read_text())
    t = card["training"]
    assert card["model"] == "baseline" and card["colors"] == "regression" and card["input_size"] == SIZE
    assert (t["train_images"], t["val_images"], t["steps"], t["batch_size"], t["size"]) == (8, 4, 4, 4, SIZE)
    assert t["data_manifest"] == "8 gradients" and t["device"] == "cpu" and t["wall_time_s"] >= 0
    assert "python -m training.train" in t["command"] and t["seed"] == 0
    assert [row["step"] for row in card["history"]] == [2, 4]
    best = load_checkpoint(runs["baseline"] / "best.pt")
    assert card["metrics"]["loss"] == pytest.approx(best["counters"]["best_val"])
    assert {"psnr", "auc", "colorfulness"} <= card["metrics"].keys()
    assert card["baseline_gray"]["colorfulness"] == pytest.approx(0.0, abs=1e-6)
    md = (weights_dir / "baseline-test.md").read_text()
    assert "gray (ab = 0)" in md and "8 gradients" in md

    # Loads by weights name and by model name + pretrained=True, with the trained tensors (fp16-rounded).
    by_name = colorcore.create_model("baseline-test", pretrained=True)
    by_model = colorcore.create_model("baseline", pretrained=True, hidden=8)
    assert by_name.weights_entry.name == by_model.weights_entry.name == "baseline-test"
    for key, value in best["model"].items():
        assert torch.allclose(by_name.state_dict()[key].float(), value.float(), atol=1e-2, rtol=1e-3), key

    gray = Image.fromarray(_photo(7, 45)).convert("L")
    out = Colorizer("baseline-test", size=None).colorize(gray)
    assert out.size == gray.size and out.mode == "RGB"
    arr = np.asarray(out).astype(int)
    assert np.abs(arr[..., 0] - arr[..., 2]).max() > 0  # it added colour


def test_palette_export_records_its_palette(runs, weights_dir: Path):
    entry = export_run(runs["palette"], "palette-test")
    assert entry.colors == "palette16" and entry.model == "unet-palette"
    assert {"bin_acc", "ce"} <= entry.metrics.keys()
    model = colorcore.create_model("palette-test")
    assert model.decoder.num_bins == 16


def test_export_errors(runs, tmp_path: Path, weights_dir: Path):
    with pytest.raises(ExportError, match="does not exist"):
        export_run(tmp_path, "x")
    with pytest.raises(ExportError, match="plain file name"):
        export_run(runs["baseline"], "../escape")
    assert read_history(tmp_path) == []


def test_cards_take_full_evaluation_results(runs, weights_dir: Path, tmp_path: Path):
    from colorcore.cli import main as cli_main
    from training.cards import main as cards_main

    assert export_main([str(runs["baseline"]), "--name", "baseline-eval"]) == 0
    sha_before = json.loads((weights_dir / "baseline-eval.json").read_text())["sha256"]
    val = runs["baseline"].parent / "val"
    results = tmp_path / "results.json"
    assert cli_main(["evaluate", "--data", str(val), "--models", "all", "--json", str(results)]) == 0
    summary = json.loads(results.read_text())
    assert summary["photos"] == 4 and "baseline-eval" in summary["models"]

    assert cards_main([str(results), "--default", "baseline-eval"]) == 0
    card = json.loads((weights_dir / "baseline-eval.json").read_text())
    assert card["default"] is True
    assert colorcore.weights.available_weights()[0].name == "baseline-eval"
    assert cards_main([str(results), "--default", "no-such-weights"]) == 1
    evaluation = card["evaluation"]
    assert evaluation["photos"] == 4 and evaluation["size"] == SIZE
    assert evaluation["metrics"] == summary["models"]["baseline-eval"]["metrics"]
    assert evaluation["gray"]["colorfulness"] == pytest.approx(0.0, abs=1e-6)
    assert {"ssim", "ciede2000", "psnr", "auc"} <= evaluation["metrics"].keys()
    assert "Evaluation through the pipeline" in (weights_dir / "baseline-eval.md").read_text()
    # The card changed, the tensors did not: the sha256 check still passes.
    assert card["sha256"] == sha_before
    colorcore.create_model("baseline-eval", pretrained=True)


def test_export_keeps_fp32_when_fp16_does_not_reproduce(runs, weights_dir: Path, monkeypatch):
    from safetensors.torch import load_file

    import training.export as export_mod
    from colorcore.errors import WeightsError

    real_check = export_mod._check_roundtrip

    def strict_check(model, path, size):  # stands in for a decoder whose bins flip under fp16
        if any(t.dtype == torch.float16 for t in load_file(str(path)).values()):
            raise WeightsError("fp16 flips a bin")
        real_check(model, path, size)

    monkeypatch.setattr(export_mod, "_check_roundtrip", strict_check)
    entry = export_run(runs["palette"], "palette-fp32")
    assert entry.card["precision"] == "fp32"
    assert all(t.dtype == torch.float32 for t in load_file(str(entry.file)).values() if t.is_floating_point())
    assert "stored as fp32" in (weights_dir / "palette-fp32.md").read_text()
    colorcore.create_model("palette-fp32", pretrained=True)


def test_init_fine_tunes_from_exported_weights(runs, weights_dir: Path, tmp_path: Path, capsys):
    assert export_main([str(runs["baseline"]), "--name", "baseline-init", "--data-manifest", "8"]) == 0
    exported = colorcore.create_model("baseline-init").state_dict()
    root = runs["baseline"].parent
    common = ["--model", "baseline", "--data", str(root / "train"), "--val", str(root / "val"),
              "--size", str(SIZE), "--batch-size", "4", "--workers", "0", "--no-progress",
              "--cache-dir", str(root / "cache"), "--steps", "1", "--lr", "0", "--init", "baseline-init"]
    # lr 0: the one step leaves the weights where --init put them.
    assert train_main([*common, "--config", "hidden=8", "--out", str(tmp_path / "ft")]) == 0
    tuned = load_checkpoint(tmp_path / "ft" / "last.pt")["model"]
    assert all(torch.equal(tuned[k], v.float()) for k, v in exported.items())
    # The card of the fine-tuned weights says what they started from, even once they replace it.
    init_training = json.loads((weights_dir / "baseline-init.json").read_text())["training"]
    init_steps, init_best = init_training["steps"], init_training["best_step"]
    for _ in range(2):  # the second export finds the fine-tune under that name, not what it started from
        assert export_main([str(tmp_path / "ft"), "--name", "baseline-init", "--data-manifest", "8"]) == 0
        lineage = json.loads((weights_dir / "baseline-init.json").read_text())["training"]["init"]
        assert lineage["weights"] == "baseline-init" and lineage["steps"] == init_steps
        assert "init" not in lineage
    assert (f"in all, from random initialisation: these weights are {init_best + 1} optimiser steps deep; "
            f"{init_steps + 1} steps") in (weights_dir / "baseline-init.md").read_text()
    capsys.readouterr()
    assert train_main([*common, "--config", "hidden=16", "--out", str(tmp_path / "bad")]) == 2
    assert "differs from this run" in capsys.readouterr().err
    unknown = [*common[:-1], "nonexistent", "--config", "hidden=8", "--out", str(tmp_path / "no")]
    assert train_main(unknown) == 2
    assert "no weights named 'nonexistent'" in capsys.readouterr().err


def test_last_checkpoint_card_says_which_step_and_why(runs, weights_dir: Path):
    entry = export_run(runs["baseline"], "baseline-last", checkpoint="last")
    card = json.loads((weights_dir / "baseline-last.json").read_text())
    t = card["training"]
    history = load_checkpoint(runs["baseline"] / "last.pt")["history"]
    lowest = min(history, key=lambda r: r["val_loss"])["step"]
    assert card["checkpoint"] == "last" and t["best_step"] == 4 and t["planned_steps"] == 4
    assert t["lowest_val_loss_step"] == lowest
    md = (weights_dir / "baseline-last.md").read_text()
    assert f"the last checkpoint, step 4 (the lowest val loss was at step {lowest})" in md
    assert "stop reason: reached the planned steps" in md and entry.name == "baseline-last"


def test_export_note_is_on_the_card(runs, weights_dir: Path):
    export_run(runs["baseline"], "baseline-noted", note="paused for 10 minutes")
    card = json.loads((weights_dir / "baseline-noted.json").read_text())
    assert card["training"]["note"] == "paused for 10 minutes"
    assert "- note: paused for 10 minutes" in (weights_dir / "baseline-noted.md").read_text()
    export_run(runs["baseline"], "baseline-plain")
    assert "- note:" not in (weights_dir / "baseline-plain.md").read_text()


def test_card_of_a_sitting_that_ended_before_the_plan(runs, weights_dir: Path, tmp_path: Path):
    root = runs["baseline"].parent
    out = tmp_path / "short"
    assert train_main(["--model", "baseline", "--config", "hidden=8", "--out", str(out),
                       *_tiny_run_args(root), "--stop-after", "2"]) == 0
    export_run(out, "baseline-short", checkpoint="last")
    md = (weights_dir / "baseline-short.md").read_text()
    assert "stop reason: the sitting ended at step 2 of the 4 planned" in md
