"""Real tiny training runs: data pipeline, every objective, checkpoints, bit-exact resume, kill -9, DDP."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from photos import smooth_rgb
from PIL import Image

from colorcore.errors import ConfigError
from colorcore.registry import build_model, get_spec
from training import data as tdata
from training.bench import bench
from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from training.objectives import (
    FusionRegression,
    GamutAndRegression,
    GamutClassification,
    HintRegression,
    ObjectiveOptions,
    PaletteClassification,
    Pix2PixGAN,
    Regression,
    is_gamut,
    make_objective,
)
from training.train import Precision, Stepper, TrainError, main, parse_args, run

REPO = Path(__file__).resolve().parents[1]
SIZE = 32


def _photo(seed: int, height: int, width: int) -> np.ndarray:
    return smooth_rgb(height, width, seed, amplitude=0.45)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """train/ (10 colour photos in two subfolders, 1 grayscale, 1 corrupt) and val/ (4 colour photos)."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(10):
        sub = root / "train" / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_photo(i, 40, 48)).save(sub / f"p{i}.png")
    Image.fromarray(_photo(99, 40, 40)[:, :, 0]).convert("RGB").save(root / "train" / "gray.jpg")
    (root / "train" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "val").mkdir()
    for i in range(4):
        Image.fromarray(_photo(100 + i, 36, 36)).save(root / "val" / f"v{i}.jpg", quality=95)
    return {"train": root / "train", "val": root / "val", "cache": root / "cache"}


def _args(photos: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["--data", str(photos["train"]), "--val", str(photos["val"]), "--size", str(SIZE),
            "--batch-size", "4", "--workers", "0", "--no-progress", "--cache-dir", str(photos["cache"]),
            "--out", str(out), *extra]


# ------------------------------------------------------------------------------------------------ data
def test_scan_skips_grayscale_and_unreadable(photos, tmp_path):
    scan = tdata.scan_images(photos["train"], tmp_path)
    assert len(scan.paths) == 10 and scan.grayscale == 1 and scan.unreadable == 1
    assert all("gray" not in p.name and "broken" not in p.name for p in scan.paths)
    assert list(tmp_path.glob("scan-*.json"))  # verdicts cached
    assert tdata.scan_images(photos["train"], tmp_path) == scan


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(tdata.DataError, match="no images"):
        tdata.scan_images(tmp_path)
    with pytest.raises(tdata.DataError, match="does not exist"):
        tdata.scan_images(tmp_path / "missing")


def test_augment_is_seeded_and_switchable():
    img = torch.from_numpy(_photo(0, 40, 56)).permute(2, 0, 1).contiguous()
    full = tdata.Augment()
    a = tdata.augment_crop(img, SIZE, full, torch.Generator().manual_seed(5))
    b = tdata.augment_crop(img, SIZE, full, torch.Generator().manual_seed(5))
    c = tdata.augment_crop(img, SIZE, full, torch.Generator().manual_seed(6))
    assert a.shape == (3, SIZE, SIZE) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    # No augmentation: a random full-height square; on a square image that is the whole image, resized.
    sq = img[:, :, :40]
    plain = tdata.augment_crop(sq, 40, tdata.Augment.none(), torch.Generator().manual_seed(1))
    assert torch.equal(plain, sq)
    flip_only = tdata.Augment(flip=True, zoom=False, rotate=False, shear=False)
    outs = {tdata.augment_crop(sq, 40, flip_only, torch.Generator().manual_seed(s)).flip(-1).equal(sq)
            for s in range(8)}
    assert outs == {True, False}  # some seeds flip, some do not


def test_sampler_skip_and_partition():
    s = tdata.ResumableSampler(10, batch_size=3, seed=1)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == 9 and len({i for i, _ in full}) == 9  # drop_last: 3 batches of 3
    s.set_epoch(2, skip_batches=2)
    assert list(s) == full[6:]
    s.set_epoch(3)
    assert [i for i, _ in s] != [i for i, _ in full]  # a new order every epoch
    ranks = [tdata.ResumableSampler(10, batch_size=2, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(0)
    a, b = ({i for i, _ in r} for r in ranks)
    assert not a & b and len(a) == len(b) == 4


def test_cache_is_a_plain_uint8_tensor(photos, tmp_path):
    paths = list(tdata.scan_images(photos["val"]).paths)
    images = tdata.build_cache(paths, SIZE, tmp_path)
    path = tdata.cache_path(tmp_path, paths, SIZE)
    loaded = torch.load(path, weights_only=True)
    assert loaded.dtype == torch.uint8 and loaded.shape == (4, 3, SIZE, SIZE)
    assert torch.equal(loaded, images)
    ds = tdata.PhotoDataset(paths, SIZE, tdata.Augment.none())
    assert torch.equal(ds[0], images[0])  # same centre crop from file and from cache


# ---------------------------------------------------------------------------------------- objectives
OVERFIT = {
    # model name, config overrides, objective class, steps, lr (each falls to ~0.6-0.7 of its start)
    "regression": ("baseline", {"hidden": 16}, Regression, 20, 1e-2),
    "gamut313": ("eccv16-small", {"width": 0.0625}, GamutClassification, 15, 1e-2),
    "palette": ("unet-palette", {"width": 8, "depth": 2}, PaletteClassification, 20, 1e-2),
    "gan": ("pix2pix", {"decoder": [16, 16, 8, 8, 8], "disc_width": 8}, Pix2PixGAN, 8, 1e-3),
    "hints": ("siggraph17", {"width": 0.0625}, HintRegression, 15, 1e-2),
    "fusion": ("fusion", {"width": 0.0625}, FusionRegression, 5, 3e-3),
}


def _fixed_batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    rgb = torch.stack([torch.from_numpy(_photo(10 + i, SIZE, SIZE)).permute(2, 0, 1) for i in range(n)])
    return tdata.to_lab(rgb)


@pytest.mark.parametrize("kind", list(OVERFIT))
def test_objective_overfits_a_fixed_batch(kind):
    name, cfg, cls, steps, lr = OVERFIT[kind]
    torch.manual_seed(0)
    model = build_model(name, **cfg)
    objective = make_objective(model, get_spec(name).task, ObjectiveOptions(),
                               lambda c: torch.linspace(0.5, 2.0, c.shape[0]))
    assert type(objective) is cls
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, betas=getattr(objective, "betas", (0.9, 0.999)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    d_opt = d_sched = d_scaler = None
    if isinstance(objective, Pix2PixGAN):
        d_opt = torch.optim.Adam(objective.discriminator.parameters(), lr=lr, betas=objective.betas)
        d_sched = torch.optim.lr_scheduler.LambdaLR(d_opt, lambda _: 1.0)
        d_scaler = torch.amp.GradScaler("cpu", enabled=False)
    stepper = Stepper(objective, model, objective.adapter(model), getattr(objective, "discriminator", None),
                      opt, sched, torch.amp.GradScaler("cpu", enabled=False), d_opt, d_sched, d_scaler,
                      Precision(None, False), torch.device("cpu"), params)
    l, ab = _fixed_batch()
    model.train()
    # The GAN's total loss includes the moving adversarial term, so its L1 term is what must fall;
    # hints change every step, so the hinted model is judged on a fixed-hint evaluation loss.
    track = "l1" if kind == "gan" else None
    first = last = None
    for step in range(steps):
        loss, logs = stepper.step(l, ab, step)
        value = float(logs[track]) if track else float(loss)
        first = value if first is None else first
        last = value
    assert np.isfinite(last)
    if kind == "hints":
        model.eval()
        after = float(objective.evaluate(model, l, ab, 0).loss)
        torch.manual_seed(0)
        fresh = build_model(name, **cfg).eval()
        before = float(objective.evaluate(fresh, l, ab, 0).loss)
        assert after < 0.85 * before, (before, after)
    else:
        assert last < 0.85 * first, (first, last)


def test_gamut_loss_uses_logit_resolution_and_weights():
    centers = torch.tensor([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    obj = GamutClassification(centers, torch.tensor([1.0, 2.0, 4.0]), k=1)
    ab = torch.zeros(1, 2, 8, 8)
    ab[:, 0, :4] = 50.0  # top half a = 50 -> bin 1 (weight 2); bottom -> bin 0 (weight 1)
    logits = torch.zeros(1, 3, 2, 2)  # uniform predictions at 2 x 2
    expected = np.log(3) * (2 + 1) / 2
    assert float(obj._loss(logits, ab)) == pytest.approx(expected, rel=1e-5)


def test_euclidean_regression_scores_the_enlarged_head_against_the_full_size_target():
    centers = torch.tensor([[0.0, 0.0], [50.0, 0.0]])
    ones = torch.ones(2)
    euclid = GamutAndRegression(centers, ones, regression="euclidean")
    l1 = GamutAndRegression(centers, ones, regression="l1")
    head = torch.zeros(1, 2, 2, 2)
    head[:, 0], head[:, 1] = 30.0, 40.0  # every pixel (30, 40): 50 ab from gray
    target = torch.zeros(1, 2, 8, 8)
    assert float(euclid.regression_loss(head, target)) == pytest.approx(50 / 110, rel=1e-4)
    assert float(l1.regression_loss(head, target)) == pytest.approx(35 / 110, rel=1e-4)
    # a sharp edge the 2 x 2 head cannot hold: L1 on the pooled target is blind to it, the full-size loss not
    edge = torch.zeros(1, 2, 8, 8)
    edge[:, 0, :, :4] = 20.0
    edge[:, 0, :, 4:] = -20.0
    pooled_fit = torch.zeros(1, 2, 2, 2)
    pooled_fit[:, 0, :, 0], pooled_fit[:, 0, :, 1] = 20.0, -20.0
    assert float(l1.regression_loss(pooled_fit, edge)) == pytest.approx(0.0, abs=1e-6)
    assert float(euclid.regression_loss(pooled_fit, edge)) > 0.02
    exact = edge.clone().requires_grad_(True)
    euclid.regression_loss(exact, edge).backward()
    assert torch.isfinite(exact.grad).all()
    with pytest.raises(ConfigError, match="euclidean"):
        GamutAndRegression(centers, ones, regression="l2")


def test_palette_loss_rebalanced_scales_each_pixel_by_its_colour_weight():
    model = build_model("unet-palette", width=8, depth=2, bins=16)
    centers = model.decoder.centers
    weights = torch.linspace(0.5, 2.0, centers.shape[0])
    ab = centers[3].view(1, 2, 1, 1).expand(1, 2, 8, 8).clone()
    ab[..., :4, :] = centers[10].view(1, 2, 1, 1)  # top half colour 10, bottom half colour 3
    logits = torch.zeros(1, centers.shape[0], 8, 8)  # uniform predictions
    plain = PaletteClassification()._loss(model, logits, ab)
    rebalanced = PaletteClassification(weights)._loss(model, logits, ab)
    assert float(plain) == pytest.approx(np.log(centers.shape[0]), rel=1e-5)
    assert float(rebalanced) == pytest.approx(float(plain) * float(weights[3] + weights[10]) / 2, rel=1e-5)


def test_gamut_objective_for_published_and_derived_bins():
    # eccv16 checkpoints trained on the derived bins (fp16 centres in model_out) must still train as gamut
    # classifiers; a palette must not.
    from colorcore import quantize

    assert is_gamut(quantize.gamut_centers())
    assert is_gamut(quantize.derived_gamut_centers().half().float())
    assert not is_gamut(quantize.gamut_centers()[:312])
    assert not is_gamut(quantize.load_palette(16))
    model = build_model("eccv16", width=0.02, dilations=[1])
    model.model_out.weight.data.copy_((quantize.derived_gamut_centers() / 110).t().reshape(2, 313, 1, 1))
    model.load_state_dict(model.state_dict())  # re-syncs the decoder's centres from model_out
    objective = make_objective(model, "classification", ObjectiveOptions(),
                               class_weights=lambda c: torch.ones(c.shape[0]))
    assert isinstance(objective, GamutClassification)
    torch.testing.assert_close(objective.centers, quantize.derived_gamut_centers())


def test_palette_rebalancing_is_opt_in_and_uses_training_priors(photos, tmp_path):
    model = build_model("unet-palette", width=8, depth=2, bins=16)
    plain = make_objective(model, "classification", ObjectiveOptions())
    assert not plain.rebalanced and "plain" in plain.describe()
    with pytest.raises(ConfigError, match="rebalancing weights"):
        make_objective(model, "classification", ObjectiveOptions(rebalance_palette=True))
    out = tmp_path / "pal"
    assert main(["--model", "unet-palette", "--config", "width=8", "depth=2", "bins=16", "--steps", "2",
                 "--eval-every", "2", "--rebalance-palette", *_args(photos, out)]) == 0
    priors = list(photos["cache"].glob("priors-*-palette16.json"))  # palette priors, kept apart from 313-bin
    assert priors
    row = _read_csv(out / "metrics.csv")[-1]
    assert np.isfinite(float(row["val_loss"])) and 0.0 <= float(row["val_bin_acc"]) <= 100.0


def test_hint_grid_index_is_the_nearest_grid_cell():
    from training.objectives import hint_grid, hint_grid_index

    ab = torch.rand(2, 2, 5, 5) * 240 - 120
    grid = hint_grid()
    nearest = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), grid).argmin(dim=1).reshape(2, 5, 5)
    assert grid.shape == (529, 2) and torch.equal(hint_grid_index(ab), nearest)


def test_regression_loss_names():
    from training.objectives import regression_loss

    pred, target = torch.full((1, 2, 2, 2), 11.0), torch.zeros(1, 2, 2, 2)
    assert float(regression_loss("mse")(pred, target)) == pytest.approx(0.01)
    assert float(regression_loss("smooth_l1")(pred, target)) == pytest.approx(0.1 - 0.5 / 110)
    with pytest.raises(Exception, match="unknown regression loss"):
        regression_loss("hinge")


# ----------------------------------------------------------------------------------------------- runs
def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_regression_run_writes_everything(photos, tmp_path):
    out = tmp_path / "run"
    assert main(["--model", "baseline", "--steps", "6", "--eval-every", "2", "--config", "hidden=8",
                 *_args(photos, out)]) == 0
    for name in ("config.json", "last.pt", "best.pt", "metrics.csv", "loss.png", "metrics.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png",
                                                                  "epoch_003.png"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_config"] == {"hidden": 8, "kernel": 4}
    assert config["data"]["train_grayscale_skipped"] == 1 and config["data"]["train_images"] == 10
    rows = _read_csv(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    for key in ("train_loss", "val_loss", "val_psnr", "val_auc", "val_colorfulness"):
        assert all(np.isfinite(float(r[key])) for r in rows), key
    ckpt = torch.load(out / "last.pt", weights_only=True)  # plain data only
    assert ckpt["counters"]["step"] == 6 and ckpt["counters"]["finished"]
    assert isinstance(ckpt["model_config"], dict) and isinstance(ckpt["rng"]["torch"], torch.Tensor)
    best = load_checkpoint(out / "best.pt")
    assert best["counters"]["best_val"] == pytest.approx(min(float(r["val_loss"]) for r in rows), rel=1e-5)
    grid = Image.open(out / "samples" / "epoch_001.png")
    assert grid.width > 3 * SIZE and grid.height > 4 * SIZE  # 3 columns (gray | pred | truth), 4 rows


def test_classifier_run_logs_bin_metrics(photos, tmp_path):
    out = tmp_path / "cls"
    assert main(["--model", "eccv16-small", "--config", "width=0.0625", "--steps", "2", "--eval-every", "2",
                 *_args(photos, out)]) == 0
    row = _read_csv(out / "metrics.csv")[-1]
    assert 0.0 <= float(row["val_bin_acc"]) <= 100.0 and float(row["val_ce"]) > 0
    assert list(photos["cache"].glob("priors-*.json"))  # priors of the train folder, cached


def test_existing_run_needs_resume_and_bad_size_is_rejected(photos, tmp_path):
    out = tmp_path / "r"
    assert main(["--model", "baseline", "--steps", "1", *_args(photos, out)]) == 0
    with pytest.raises(TrainError, match="--resume"):
        run(parse_args(["--model", "baseline", "--steps", "1", *_args(photos, out)]))
    with pytest.raises(TrainError, match="stride"):
        run(parse_args(["--model", "unet-palette", "--steps", "1", *_args(photos, tmp_path / "s"),
                        "--size", "40"]))
    # A finished run resumes to a no-op.
    assert main(["--model", "baseline", "--steps", "1", "--resume", *_args(photos, out)]) == 0


def test_early_stopping(photos, tmp_path):
    # lr 0: the val loss never improves, so patience 2 stops the run at the third evaluation.
    out = tmp_path / "es"
    summary = run(parse_args(["--model", "baseline", "--steps", "20", "--eval-every", "1", "--lr", "0",
                              "--patience", "2", *_args(photos, out)]))
    counters = summary["counters"]
    assert counters["step"] == 3 and counters["finished"]
    assert counters["stop_reason"].startswith("early stop")
    assert load_checkpoint(out / "best.pt")["counters"]["step"] == 1
    assert main(["--model", "baseline", "--steps", "20", "--resume", *_args(photos, out)]) == 0  # no-op
    assert load_checkpoint(out / "last.pt")["counters"]["step"] == 3


def _state(path: Path) -> dict[str, torch.Tensor]:
    ck = load_checkpoint(path)
    return {**{f"model.{k}": v for k, v in ck["model"].items()},
            **{f"objective.{k}": v for k, v in ck["objective"].items()}}


@pytest.mark.parametrize("model,config,extra", [
    ("baseline", ["hidden=8"], []),
    ("siggraph17", ["width=0.0625"], []),  # hints are seeded per step
])
def test_resume_is_bit_exact(photos, tmp_path, model, config, extra):
    # 10 photos / batch 4 = 2 batches per epoch; stopping at step 3 is mid-epoch and between evaluations.
    common = ["--model", model, "--config", *config, "--steps", "5", "--eval-every", "2", *extra]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*common, *_args(photos, straight)]) == 0
    assert main([*common, "--stop-after", "3", *_args(photos, split)]) == 0
    mid = load_checkpoint(split / "last.pt")["counters"]
    assert (mid["step"], mid["epoch"], mid["batch_in_epoch"], mid["finished"]) == (3, 1, 1, False)
    assert main([*common, "--resume", *_args(photos, split)]) == 0
    a, b = _state(straight / "last.pt"), _state(split / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ha, hb = (load_checkpoint(p / "last.pt")["history"] for p in (straight, split))
    assert [(r["step"], r["train_loss"], r["val_loss"]) for r in ha] == \
        [(r["step"], r["train_loss"], r["val_loss"]) for r in hb]


def test_gan_resume_restores_discriminator(photos, tmp_path):
    common = ["--model", "pix2pix", "--config", "decoder=[16,16,8,8,8]", "disc_width=8", "--steps", "3",
              "--eval-every", "3", "--l1-pretrain-steps", "1"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*common, *_args(photos, straight)]) == 0
    # Interrupted after one L1-only and one adversarial step; the third step needs D's restored state.
    assert main([*common, "--stop-after", "2", *_args(photos, split)]) == 0
    assert main([*common, "--resume", *_args(photos, split)]) == 0
    a, b = _state(straight / "last.pt"), _state(split / "last.pt")
    assert any(k.startswith("objective.discriminator.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    row = _read_csv(straight / "metrics.csv")[-1]
    assert float(row["train_d"]) > 0 and float(row["train_g_adv"]) > 0


def test_checkpoint_writes_are_atomic(tmp_path):
    path = tmp_path / "x.pt"
    save_checkpoint({"a": torch.ones(3)}, path)
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(3))
    path.write_bytes(path.read_bytes()[:20])  # what a non-atomic writer could leave behind
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not list(tmp_path.glob(".*.tmp"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_kill_9_then_resume_ends_with_valid_best(photos, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "training.train", "--model", "baseline", "--config", "hidden=8",
           "--steps", "150", "--eval-every", "50", "--save-every", "1", "--threads", "1", *_args(photos, out)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (out / "best.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.1)  # somewhere in the middle of checkpointing and training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = load_checkpoint(out / "last.pt")["counters"]["step"]
    assert 0 < killed_at < 150
    resume = subprocess.run([*cmd, "--resume"], cwd=REPO, env=_env(), capture_output=True, text=True,
                            timeout=240)
    assert resume.returncode == 0, resume.stderr[-2000:]
    best = load_checkpoint(out / "best.pt")
    last = load_checkpoint(out / "last.pt")
    assert last["counters"]["finished"] and best["counters"]["best_val"] == last["counters"]["best_val"]


def test_ddp_two_cpu_processes(photos, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "training.train", "--model", "baseline", "--config", "hidden=8", "--steps", "2",
           "--eval-every", "2", "--threads", "1", *_args(photos, out)]
    cmd[cmd.index("--batch-size") + 1] = "2"
    res = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    ck = load_checkpoint(out / "last.pt")
    assert ck["counters"]["step"] == 2 and ck["world_size"] == 2
    assert len(_read_csv(out / "metrics.csv")) == 1


def test_bench_runs_on_cpu():
    result = bench("baseline", size=SIZE, batch_size=2, steps=2, warmup=1, device="cpu",
                   config={"hidden": 8}, log=lambda _: None)
    assert result["images_per_s"] > 0 and result["gflops_per_step"] > 0
    assert result["peak_fraction"] is None  # CPU: peak unknown unless given
    given = bench("baseline", size=SIZE, batch_size=2, steps=1, warmup=0, device="cpu", config={"hidden": 8},
                  peak_tflops=1.0, log=lambda _: None)
    assert 0 < given["peak_fraction"] < 1
