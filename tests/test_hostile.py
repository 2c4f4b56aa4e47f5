"""Hostile files (tests/hostile.py) through the loader, the pipeline and the CLI.

No crash (only ColorcoreError), no hang (each file has a deadline; the loop runs in a child process
that is killed if one file takes too long), bounded memory (peak-RSS growth of that process), and
every file gives either the right result (the oriented size its header announces) or a clear error.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hostile import (
    EITHER,
    ERROR,
    LONG_CLIP_CAP,
    OK,
    HostileCase,
    header_size,
    make_hostile_cases,
    make_hostile_files,
    make_hostile_videos,
)
from PIL import Image

from colorcore.cli import main as cli_main
from colorcore.io import is_image_file
from colorcore.weights import WeightsEntry

HOSTILE = Path(__file__).with_name("hostile.py")
FIRST_LINE_TIMEOUT_S = 180  # the child imports torch and builds the model first (slow on a busy machine)
FILE_TIMEOUT_S = 60  # per file; the slowest (a 25 MP PNG) takes about 2 s
RSS_LIMIT_MB = 1536


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[HostileCase]:
    return make_hostile_cases(tmp_path_factory.mktemp("hostile"))


def _clear(message: str, path: Path) -> bool:
    """A clear error: one line, names the file, says something beyond it."""
    return "\n" not in message and str(path) in message and len(message) > len(str(path)) + 10


def test_the_set_is_large_varied_deterministic_and_small_on_disk(
    cases: list[HostileCase], tmp_path: Path
) -> None:
    assert len(cases) >= 200
    assert len({c.path.name for c in cases}) == len(cases)
    assert len({c.path.stem for c in cases}) == len(cases), "the CLI names outputs by stem"
    kinds = {c.path.name.split("_")[0] for c in cases}
    assert {"ok", "bomb", "trunc", "flip", "empty", "notimg"} <= kinds
    assert sum(c.expect == OK for c in cases) >= 40 and sum(c.expect == ERROR for c in cases) >= 25
    files = [c.path for c in cases if c.path.is_file() and not c.path.is_symlink()]
    assert sum(p.stat().st_size for p in files) < 3_000_000
    again = make_hostile_cases(tmp_path / "again")
    assert [c.path.name for c in again] == [c.path.name for c in cases]
    for a, b in zip(cases, again, strict=True):
        if a.path.is_file() and not a.path.is_symlink():
            assert a.path.read_bytes() == b.path.read_bytes(), a.path.name
    small = make_hostile_files(tmp_path / "small")
    assert 30 <= len(small) <= 80 and all(p.exists() for p in small)
    assert {p.name for p in small} <= {c.path.name for c in cases}


def _run_child(folder: Path, model: Path) -> tuple[dict[str, dict], dict]:
    """Run ``hostile.py run`` and collect its records; fail naming the file if one hangs."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(HOSTILE), "run", str(folder), "--model", str(model)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    records: dict[str, dict] = {}
    summary: dict = {}
    current, timeout = "(start-up)", FIRST_LINE_TIMEOUT_S
    try:
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"hang: no progress for {timeout} s while processing {current}")
            if line is None:
                break
            item = json.loads(line)
            timeout = FILE_TIMEOUT_S
            if "start" in item:
                current = item["start"]
            elif "name" in item:
                records[item["name"]] = item
            else:
                summary = item
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0, proc.stderr.read()[-3000:]
    return records, summary


def test_loader_and_pipeline_survive_every_file(
    cases: list[HostileCase], tiny_trained_weights: WeightsEntry
) -> None:
    folder = cases[0].path.parent
    records, summary = _run_child(folder, tiny_trained_weights.file)
    problems: list[str] = []
    for case in cases:
        rec = records.get(case.path.name)
        if rec is None:
            problems.append(f"{case.path.name}: not processed")
            continue
        load, pipe = rec["load"], rec["pipeline"]
        for leg, out in (("load_image", load), ("pipeline", pipe)):
            if out["outcome"] == "crash":
                problems.append(f"{case.path.name} ({case.note}): {leg} crashed with {out['message']}")
            elif out["outcome"] == "error" and not _clear(out["message"], case.path):
                problems.append(f"{case.path.name}: unclear {leg} error {out['message']!r}")
        if load["outcome"] != pipe["outcome"]:
            problems.append(f"{case.path.name}: load_image {load['outcome']} but pipeline {pipe['outcome']}")
        if case.expect == OK:
            if load["outcome"] != "ok":
                problems.append(f"{case.path.name} ({case.note}): should load, got {load.get('message')}")
            elif tuple(load["size"]) != case.size or tuple(pipe.get("size", ())) != case.size:
                problems.append(f"{case.path.name}: size {load['size']} (pipeline {pipe.get('size')}), "
                                f"want {case.size}")
        elif case.expect == ERROR and load["outcome"] != "error":
            problems.append(f"{case.path.name} ({case.note}): should be refused, got {load['outcome']}")
        elif case.expect == EITHER and load["outcome"] == "ok":
            announced = header_size(case.path)
            if tuple(load["size"]) != announced or pipe.get("size") != load["size"]:
                problems.append(f"{case.path.name}: loaded at {load['size']} (pipeline {pipe.get('size')}), "
                                f"its header says {announced}")
    assert not problems, "\n".join(problems)
    fuzzed = [records[c.path.name]["load"]["outcome"] for c in cases if c.expect == EITHER]
    assert fuzzed.count("error") > 50 and fuzzed.count("ok") > 10  # the fuzzing reaches both outcomes
    assert summary["rss_growth_mb"] < RSS_LIMIT_MB, summary


def test_cli_reports_every_bad_file_and_writes_the_good_ones(
    cases: list[HostileCase], tiny_trained_weights: WeightsEntry, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = cases[0].path.parent
    out = tmp_path / "out"
    status = cli_main(["colorize", str(folder), "--model", str(tiny_trained_weights.file), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    failed = {}
    for line in captured.err.splitlines():
        if line.startswith("  ") and ": " in line:
            path, reason = line.strip().split(": ", 1)
            failed[Path(path).name] = reason
    # A folder walk takes files with image extensions only ("folder.jpg" is a folder, ICO is refused).
    files = [c for c in cases if c.path.is_file() or c.path.is_symlink()]
    files = [c for c in files if is_image_file(c.path)]
    assert len(files) >= len(cases) - 2
    assert f"colorized {len(files) - len(failed)} of {len(files)} image(s)" in captured.out
    for case in files:
        written = out / f"{case.path.stem}.png"
        if case.expect == ERROR:
            assert case.path.name in failed, f"{case.path.name} ({case.note}) was not reported"
        if case.expect == OK:
            assert case.path.name not in failed, f"{case.path.name}: {failed.get(case.path.name)}"
        if case.path.name in failed:
            assert failed[case.path.name].strip() and not written.exists()
        else:
            want = case.size if case.expect == OK else header_size(case.path)
            with Image.open(written) as im:
                assert im.size == want and im.mode == "RGB", case.path.name
    assert not list(out.glob(".*.tmp")), "no half-written outputs"


# -- video -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video_cases(tmp_path_factory: pytest.TempPathFactory) -> list[HostileCase]:
    return make_hostile_videos(tmp_path_factory.mktemp("hostile_videos"))


def _display_times(path: Path) -> list[float]:
    import av

    with av.open(str(path)) as container:
        return [round(float(f.time), 4) for f in container.decode(video=0)]


@pytest.mark.timeout(120)  # a hang fails here instead of stalling the suite
def test_every_hostile_video_gives_a_clear_error_or_a_correct_clip(
    video_cases: list[HostileCase], tiny_trained_weights: WeightsEntry, tmp_path: Path
) -> None:
    from colorcore.pipeline import Colorizer
    from colorcore.video import VideoError, VideoOptions, colorize_video

    colorizer = Colorizer(str(tiny_trained_weights.file), size=None)
    options = VideoOptions(max_frames=LONG_CLIP_CAP)
    problems: list[str] = []
    for case in video_cases:
        dest = tmp_path / f"{case.path.stem}.mp4"
        try:
            report = colorize_video(colorizer, case.path, dest, options)
        except VideoError as exc:
            if case.expect == OK:
                problems.append(f"{case.path.name} ({case.note}): should colourise, got {exc}")
            elif not _clear(str(exc), case.path):
                problems.append(f"{case.path.name}: unclear error {exc!r}")
            if dest.exists():
                problems.append(f"{case.path.name}: failed but left {dest.name}")
            continue
        if case.expect == ERROR:
            problems.append(f"{case.path.name} ({case.note}): should be refused, got {report}")
            continue
        import av

        with av.open(str(dest)) as out:
            stream = out.streams.video[0]
            frames = list(out.decode(stream))
            if (stream.width, stream.height) != case.size or not frames:
                problems.append(f"{case.path.name}: {stream.width}x{stream.height}, {len(frames)} frames; "
                                f"want {case.size}")
            if any(f.rotation for f in frames):
                problems.append(f"{case.path.name}: the output still carries a rotation tag")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"half-written files left behind: {leftovers}"
    assert not problems, "\n".join(problems)


def test_hostile_video_specifics(video_cases: list[HostileCase], tiny_trained_weights: WeightsEntry,
                                 tmp_path: Path) -> None:
    """VFR keeps every timestamp, a phone video is turned upright, PCM becomes AAC, truncation is said."""
    import av

    from colorcore.pipeline import Colorizer
    from colorcore.video import colorize_video

    by_name = {c.path.name: c.path for c in video_cases}
    colorizer = Colorizer(str(tiny_trained_weights.file), size=None)
    vfr = colorize_video(colorizer, by_name["v_vfr.mp4"], tmp_path / "vfr.mp4")
    want = [0, 0.04, 0.05, 0.12, 0.3, 0.31]
    assert _display_times(vfr.output) == _display_times(by_name["v_vfr.mp4"]) == want

    rotated = colorize_video(colorizer, by_name["v_rotated.mp4"], tmp_path / "rotated.mp4")
    with av.open(str(rotated.output)) as out:
        gray = next(out.decode(video=0)).to_ndarray(format="gray").astype(float)
    # Stored 64x48 with a red (dark in gray) top-left corner; a quarter turn clockwise puts it top right.
    assert gray.shape == (64, 48)
    corners = {"top-right": gray[:12, -9:].mean(), "top-left": gray[:12, :9].mean(),
               "bottom-left": gray[-12:, :9].mean(), "bottom-right": gray[-12:, -9:].mean()}
    assert min(corners, key=corners.get) == "top-right", corners

    pcm = colorize_video(colorizer, by_name["v_pcm.mov"], tmp_path / "pcm.mp4")
    assert pcm.audio == "re-encoded to AAC" and any("AAC" in n for n in pcm.notes)
    with av.open(str(pcm.output)) as out:
        assert out.streams.audio[0].codec_context.name == "aac"

    cut = colorize_video(colorizer, by_name["v_truncated_faststart.mp4"], tmp_path / "cut.mp4")
    assert 0 < cut.frames < 48 and any("truncated" in n for n in cut.notes), cut


def test_cli_refuses_a_bad_video_in_one_line(
    video_cases: list[HostileCase], tiny_trained_weights: WeightsEntry, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = next(c.path for c in video_cases if c.path.name == "v_text.mp4")
    out = tmp_path / "out.mp4"
    model = str(tiny_trained_weights.file)
    status = cli_main(["colorize-video", str(bad), "--model", model, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and err.startswith("error: ") and str(bad) in err
    assert not out.exists() and not list(tmp_path.glob(".out.mp4.*"))
