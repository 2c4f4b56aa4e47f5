"""Video: the pipeline hooks, flow propagation, PyAV round trips, the CLI and interruption safety.

Clips are a few 64x48 frames written at run time (tests/hostile.py ``write_clip``); hostile files are in
tests/test_hostile.py.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from hostile import clip_frame, write_clip

from colorcore.cli import main as cli_main
from colorcore.errors import ConfigError
from colorcore.pipeline import Colorizer
from colorcore.video import (
    VideoCancelledError,
    VideoOptions,
    colorize_frames,
    colorize_video,
    probe,
)
from colorcore.video_temporal import Propagator, Temporal, histogram_distance
from colorcore.weights import WeightsEntry


@pytest.fixture
def colorizer(tiny_trained_weights: WeightsEntry) -> Colorizer:
    return Colorizer(str(tiny_trained_weights.file), size=None)


def _decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames and display times of a clip."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], [round(float(f.time), 4) for f in frames]


def _audio_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def _smooth_image(seed: int, size: int = 48) -> np.ndarray:
    """A smooth gray texture with some structure, for flow (uint8, size x size)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    f = sum(np.sin(x / rng.uniform(3, 8) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(3, 8))
            for _ in range(3))
    return np.clip(128 + 40 * f, 0, 255).astype(np.uint8)


# -- pipeline hooks ----------------------------------------------------------------------------------


def test_predict_small_then_merge_is_predict(colorizer: Colorizer, color_image) -> None:
    gray, ab = colorizer.predict_small(color_image)
    result = colorizer.predict(color_image)
    assert ab.shape == (2, colorizer.size, colorizer.size)
    assert np.array_equal(gray, result.gray)
    assert torch.equal(ab, result.ab_small)
    assert np.array_equal(colorizer.merge(gray, ab), result.rgb)


# -- propagation -------------------------------------------------------------------------------------


def test_propagated_frames_keep_each_frames_own_full_resolution_gray(colorizer: Colorizer) -> None:
    frames = [clip_frame(i, 48, 64) for i in range(5)]
    for frame, out in zip(frames, colorize_frames(colorizer, frames), strict=True):
        gray = colorizer.predict_small(frame)[0]
        assert np.array_equal(out.gray, gray)
        assert np.array_equal(out.rgb, colorizer.merge(gray, torch.from_numpy(out.ab_small)))


def test_stability_zero_is_per_frame_colouring(colorizer: Colorizer) -> None:
    frames = [clip_frame(i, 48, 64) for i in range(4)]
    for frame, out in zip(frames, colorize_frames(colorizer, frames, VideoOptions(stability=0)), strict=True):
        assert np.array_equal(out.ab_small, out.predicted) and not out.cut
        assert np.array_equal(out.rgb, colorizer.predict(frame).rgb)


def test_propagation_damps_flicker_on_a_still_scene_and_follows_a_pan() -> None:
    rng = np.random.default_rng(0)
    base = _smooth_image(1, 64)
    truth = np.stack([np.full((64, 64), 20.0), np.full((64, 64), -10.0)]).astype(np.float32)
    propagator = Propagator(Temporal(stability=0.8))
    outs, preds = [], []
    for t in range(12):
        shift = t  # a 1 px/frame pan: the truth's colour moves with the content
        l = np.roll(base, shift, axis=1)
        pred = truth + rng.normal(0, 6, truth.shape).astype(np.float32)  # a flickering per-frame model
        step = propagator.step(l, pred)
        assert not step.cut
        outs.append(step.ab[:, 8:-8, 8:-8])
        preds.append(pred[:, 8:-8, 8:-8])
    flicker = lambda seq: np.mean([np.abs(b - a).mean() for a, b in zip(seq[4:], seq[5:], strict=False)])  # noqa: E731
    assert flicker(outs) < 0.5 * flicker(preds)
    # Averaging along the motion also lands nearer the truth than any single noisy prediction.
    inner = truth[:, 8:-8, 8:-8]
    assert np.abs(outs[-1] - inner).mean() < 0.6 * np.abs(preds[-1] - inner).mean()


def test_a_scene_cut_restarts_from_the_new_prediction() -> None:
    propagator = Propagator(Temporal(stability=0.9))
    a, b = _smooth_image(1, 64), 255 - _smooth_image(2, 64) // 2
    assert histogram_distance(a, b) > 0.4
    ab_a = np.full((2, 64, 64), 30, np.float32)
    ab_b = np.full((2, 64, 64), -30, np.float32)
    propagator.step(a, ab_a)
    assert not propagator.step(a, ab_a).cut
    step = propagator.step(b, ab_b)
    assert step.cut and np.array_equal(step.ab, ab_b)


def test_warp_failure_lowers_confidence_where_the_content_changes() -> None:
    propagator = Propagator(Temporal(stability=1.0))
    base = _smooth_image(3, 64)
    changed = base.copy()
    changed[20:44, 20:44] = 255 - changed[20:44, 20:44]  # an object appears: an occlusion
    old = np.full((2, 64, 64), 40, np.float32)
    new = np.full((2, 64, 64), -40, np.float32)
    propagator.step(base, old)
    step = propagator.step(changed, new)
    assert not step.cut
    inside, outside = step.ab[:, 28:36, 28:36].mean(), step.ab[:, :10, :10].mean()
    assert inside < -20  # the new prediction takes over where the warp fails
    assert outside > 30  # elsewhere the old colour is carried (stability 1)


def test_bad_knobs_are_config_errors() -> None:
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ConfigError):
            VideoOptions(stability=bad)
    with pytest.raises(ConfigError):
        VideoOptions(start=-1)
    with pytest.raises(ConfigError):
        VideoOptions(duration=0)


# -- files -------------------------------------------------------------------------------------------


def test_clip_round_trip_keeps_size_timestamps_gray_and_audio(colorizer: Colorizer, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", frames=10, audio="aac")
    info = probe(src)
    assert (info.width, info.height, info.frames, info.audio) == (64, 48, 10, "aac")
    report = colorize_video(colorizer, src, tmp_path / "out.mp4", VideoOptions(crf=10))
    assert (report.frames, report.width, report.height, report.audio) == (10, 64, 48, "copied")
    rgb_in, times_in = _decode(src)
    rgb_out, times_out = _decode(report.output)
    assert times_out == times_in and len(times_in) == 10
    # The output's CIE L is the input's up to the encode: 4:2:0 halves the chroma resolution, and L
    # computed back from RGB moves with the chroma at the black corner's edges.
    gray = [(colorizer.predict_small(a)[0].astype(int), colorizer.predict_small(b)[0])
            for a, b in zip(rgb_in, rgb_out, strict=True)]
    assert max(np.abs(a - b).mean() for a, b in gray) < 4
    assert np.abs(rgb_out[0][..., 0].astype(int) - rgb_out[0][..., 2]).mean() > 1  # it has colour
    assert _audio_payloads(report.output) == _audio_payloads(src)  # copied packet for packet


def test_start_and_duration_select_a_window_from_time_zero(colorizer: Colorizer, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", frames=20, fps=10)
    report = colorize_video(colorizer, src, tmp_path / "out.mkv", VideoOptions(start=0.5, duration=1.0))
    _, times = _decode(report.output)
    assert report.frames == 10 and times[0] == 0 and times[-1] == pytest.approx(0.9)


def test_cancel_and_ctrl_c_leave_nothing_under_the_output_name(colorizer: Colorizer, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", frames=8)
    dest = tmp_path / "out.mp4"
    dest.write_bytes(b"an older result")
    with pytest.raises(VideoCancelledError):
        colorize_video(colorizer, src, dest, should_stop=lambda: True)
    assert dest.read_bytes() == b"an older result"

    def interrupt(done: int, total: int | None) -> None:
        if done == 3:
            raise KeyboardInterrupt

    dest.unlink()
    with pytest.raises(KeyboardInterrupt):
        colorize_video(colorizer, src, dest, progress=interrupt)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "weights"]  # no temporary files


def test_cli_colorizes_a_clip_with_a_frame_bar(tiny_trained_weights: WeightsEntry, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    src = write_clip(tmp_path / "in.mp4", frames=6)
    out = tmp_path / "out.mp4"
    model = str(tiny_trained_weights.file)
    status = cli_main(["colorize-video", str(src), "--model", model, "--out", str(out), "--stability", "0.5"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "colorized 6 frame(s) (64x48" in captured.out and out.is_file()
    for bad in (["--stability", "2"], ["--start", "-1"]):
        assert cli_main(["colorize-video", str(src), "--model", "baseline", "--out", str(out), *bad]) == 2
    status = cli_main(["colorize-video", str(src), "--model", "baseline", "--out", str(tmp_path / "o.avi")])
    assert status == 1 and "must end in" in capsys.readouterr().err


# -- studio ------------------------------------------------------------------------------------------


def test_studio_preview_whole_clip_and_cancel(tiny_trained_weights: WeightsEntry, tmp_path: Path) -> None:
    from colorcore import video_studio

    src = write_clip(tmp_path / "in.mp4", frames=40, fps=10)  # 4 s
    choices = video_studio.video_choices()
    key = video_studio.default_model(choices)
    assert key == tiny_trained_weights.name
    seen: list[int] = []
    preview = video_studio.colorize_clip(src, key, 0.8, tmp_path, preview=True,
                                         progress=lambda done, total: seen.append(done))
    assert preview.report.frames == 30 and seen == list(range(1, 31))
    assert preview.path.name.endswith("_preview.mp4")
    whole = video_studio.colorize_clip(src, key, 0.0, tmp_path)
    assert whole.report.frames == 40 and "40 frames of 64x48" in whole.summary
    flags = video_studio.StopFlags()
    should_stop = flags.start("session")
    assert flags.stop("session") and not flags.stop("other")
    (tmp_path / "sub").mkdir()
    with pytest.raises(VideoCancelledError):
        video_studio.colorize_clip(src, key, 0.8, tmp_path / "sub", should_stop=should_stop)
    assert not list((tmp_path / "sub").iterdir())
    with pytest.raises(ConfigError, match="Upload a video"):
        video_studio.colorize_clip(None, key, 0.8, tmp_path)


def test_gradio_video_tab_builds_and_runs(tiny_trained_weights: WeightsEntry, tmp_path: Path) -> None:
    import gradio as gr

    from video_tab import _run, build_video_tab

    with gr.Blocks(), gr.Tabs():
        tab = build_video_tab()
    assert tab.label == "Video"
    src = write_clip(tmp_path / "in.mp4", frames=5)
    shown, download, summary = _run(str(src), tiny_trained_weights.name, 0.5, False, None,
                                    lambda *a, **k: None)
    assert Path(shown).is_file() and download == shown and "5 frames" in summary
    assert gr.Video(interactive=False).postprocess(shown).path == shown  # served as is, no ffmpeg needed
    with pytest.raises(gr.Error):
        _run(str(tmp_path / "missing.mp4"), tiny_trained_weights.name, 0.5, True, None, lambda *a, **k: None)


def test_streamlit_video_page_renders_and_asks_for_a_clip(tiny_trained_weights: WeightsEntry) -> None:
    from streamlit.testing.v1 import AppTest

    page = AppTest.from_string("from demo.video_page import render_video_page\nrender_video_page()")
    page.run(timeout=60)
    assert not page.exception
    assert page.selectbox(key="video_model").value == tiny_trained_weights.name
    assert page.slider(key="video_stability").value == pytest.approx(VideoOptions().stability)
    page.button(key="video_preview").click().run(timeout=60)
    assert not page.exception and any("Upload a video clip" in w.value for w in page.warning)



def test_ctrl_c_in_the_cli_leaves_no_file_under_the_output_name(
    tiny_trained_weights: WeightsEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = write_clip(tmp_path / "in.mp4", frames=12)
    out = tmp_path / "out.mp4"
    step, calls = Propagator.step, []

    def ctrl_c_at_frame_5(self: Propagator, l: np.ndarray, ab: np.ndarray):
        calls.append(1)
        if len(calls) == 5:  # SIGINT arrives as KeyboardInterrupt in the main thread, mid-clip
            raise KeyboardInterrupt
        return step(self, l, ab)

    monkeypatch.setattr(Propagator, "step", ctrl_c_at_frame_5)
    model = str(tiny_trained_weights.file)
    status = cli_main(["colorize-video", str(src), "--model", model, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 130 and "interrupted" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.mp4.*"))
