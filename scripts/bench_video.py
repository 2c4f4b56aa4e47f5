"""Video colourisation on clips of known true colour: flicker, quality, speed, memory. Figures, not a test.

Usage::

    python scripts/bench_video.py [--model resnet-regression] [--threads 2] [--frames 90]
        [--stability 0.9] [--skip-rss]

The clip (640 x 360, 25 fps) is made here from two ``skimage.data`` photos, upscaled: a third of the frames
pan across ``coffee``, a third zoom into it, then a cut to ``astronaut``, panned and zoomed at once. Each
frame is an affine view of its photo, so the true colour of every frame, and the true motion between two
frames, are known exactly. The models get the gray of each frame (the pipeline grays colour input).

1. **Flicker:** mean |delta ab| (CIE Lab, over pixels visible in both frames) between consecutive frames
   after compensating the true motion (the previous frame warped onto the next), within a shot. The
   truth has some of its own (interpolation); the *excess* of an output is its flicker minus the truth's.
   Target: the propagated output (``--stability``) has <= 50 % of the per-frame output's excess.
2. **Quality:** mean PSNR (RGB) and AuC (ab error CDF up to 150) against the true frames, propagated vs
   per-frame. Target: a drop of <= 0.2 dB / 0.2 points.
3. **Speed:** ``colorize_video`` end to end on the clip as an H.264 MP4 (decode, model, flow, merge,
   encode), frames per second, on ``--threads`` threads. Target: >= 8 frames/s for the studio's default
   model.
4. **Memory:** peak RSS of a fresh process colourising the clip, and one colourising a clip 10 times as
   long (the same frames, looped). Target: <= 10 % more.

Numbers taken while other jobs use the CPU are noisy: the speed is a lower bound on an idle machine. With
two threads on a busy machine, OpenMP's spinning workers wait for each other; ``OMP_WAIT_POLICY=PASSIVE``
(inherited by the measuring process) avoids that and is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from skimage import data

from colorcore import studio, video_studio
from colorcore.color import rgb_to_lab
from colorcore.metrics import auc, psnr
from colorcore.pipeline import Colorizer
from colorcore.video import VideoOptions, colorize_frames, colorize_video

WIDTH, HEIGHT, FPS = 640, 360, 25


@dataclass(frozen=True)
class Shot:
    """Frames of one photo: the affine map (output pixel -> photo pixel) of each frame."""

    photo: np.ndarray  # (H, W, 3) uint8, upscaled
    maps: tuple[np.ndarray, ...]  # (2, 3) float64 each


def _view(photo: np.ndarray, scale: float, cx: float, cy: float) -> np.ndarray:
    """The affine map of a WIDTH x HEIGHT view of ``photo`` at ``scale`` photo px per output px, centred."""
    return np.array([[scale, 0, cx - scale * WIDTH / 2], [0, scale, cy - scale * HEIGHT / 2]])


def make_shots(frames: int) -> list[Shot]:
    """Pan, zoom, cut: ``frames`` frames in three shots of about equal length (see the module docstring)."""
    n = max(3, frames // 3)
    coffee = cv2.resize(data.coffee(), (1200, 800), interpolation=cv2.INTER_CUBIC)
    astronaut = cv2.resize(data.astronaut(), (1000, 1000), interpolation=cv2.INTER_CUBIC)
    pan = tuple(_view(coffee, 1.0, 330 + 4 * i, 400) for i in range(n))  # 4 px per frame
    zoom = tuple(_view(coffee, 1.0 * 0.99 ** i, 600, 400) for i in range(n))  # 1 % per frame
    both = tuple(_view(astronaut, 1.4 * 0.995 ** i, 500 + 3 * i, 480) for i in range(frames - 2 * n))
    return [Shot(coffee, pan + zoom), Shot(astronaut, both)]


def render(photo: np.ndarray, m: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(photo, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def true_frames(shots: list[Shot]) -> Iterator[np.ndarray]:
    for shot in shots:
        for m in shot.maps:
            yield render(shot.photo, m)


def _pairs(shots: list[Shot]) -> Iterator[tuple[int, np.ndarray]]:
    """(index of a frame, the map from its pixels to the previous frame's) for frames 2.. of each shot."""
    index = 0
    for shot in shots:
        for k, (a, b) in enumerate(zip(shot.maps, shot.maps[1:], strict=False)):
            inv_a = np.linalg.inv(np.vstack([a, [0, 0, 1]]))
            yield index + k + 1, (inv_a @ np.vstack([b, [0, 0, 1]]))[:2]
        index += len(shot.maps)


def _ab(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255))[1:].permute(1, 2, 0).numpy()


def flicker(frames: list[np.ndarray], shots: list[Shot]) -> float:
    """Mean |delta ab| between motion-compensated consecutive frames of each shot (module docstring)."""
    ab = [_ab(f) for f in frames]
    ones = np.ones((HEIGHT, WIDTH), np.float32)
    values = []
    for t, m in _pairs(shots):
        prev = cv2.warpAffine(ab[t - 1], m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        seen = cv2.warpAffine(ones, m, (WIDTH, HEIGHT), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
        seen = cv2.erode(seen.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        values.append(float(np.abs(ab[t] - prev)[seen].mean()))
    return float(np.mean(values))


def quality(colorizer: Colorizer, shots: list[Shot], options: VideoOptions) -> dict[str, float]:
    truth = list(true_frames(shots))
    out = [f.rgb for f in colorize_frames(colorizer, truth, options)]
    return {"psnr": float(np.mean([psnr(o, t) for o, t in zip(out, truth, strict=True)])),
            "auc": float(np.mean([auc(o, t) for o, t in zip(out, truth, strict=True)])),
            "flicker": flicker(out, shots)}


def compare(colorizer: Colorizer, shots: list[Shot], stability: float, decode: dict[str, object]) -> None:
    """Print the flicker and quality table: truth, gray, per-frame and propagated."""
    truth = list(true_frames(shots))
    truth_flicker = flicker(truth, shots)
    gray = [colorizer.merge(colorizer.predict_small(t)[0], torch.zeros(2, 1, 1)) for t in truth]  # ab = 0
    gray_psnr = np.mean([psnr(g, t) for g, t in zip(gray, truth, strict=True)])
    gray_auc = np.mean([auc(g, t) for g, t in zip(gray, truth, strict=True)])
    del truth, gray
    t0 = time.perf_counter()
    per_frame = quality(colorizer, shots, VideoOptions(stability=0.0, **decode))
    propagated = quality(colorizer, shots, VideoOptions(stability=stability, **decode))
    excess_pf, excess_pr = per_frame["flicker"] - truth_flicker, propagated["flicker"] - truth_flicker
    print("\n| output | flicker (mean abs delta ab) | excess over truth | PSNR (dB) | AuC (%) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| truth | {truth_flicker:.3f} | 0 | | |")
    print(f"| gray (ab = 0) | 0 | | {gray_psnr:.2f} | {gray_auc:.2f} |")
    print(f"| per-frame (stability 0) | {per_frame['flicker']:.3f} | {excess_pf:.3f} | "
          f"{per_frame['psnr']:.2f} | {per_frame['auc']:.2f} |")
    print(f"| propagated (stability {stability}) | {propagated['flicker']:.3f} | {excess_pr:.3f} | "
          f"{propagated['psnr']:.2f} | {propagated['auc']:.2f} |")
    reduction = 1 - excess_pr / excess_pf if excess_pf > 0 else float("nan")
    print(f"\nexcess flicker reduced by {100 * reduction:.1f} % (target >= 50 %); PSNR "
          f"{propagated['psnr'] - per_frame['psnr']:+.2f} dB, AuC "
          f"{propagated['auc'] - per_frame['auc']:+.2f} points (target >= -0.2 each); "
          f"{time.perf_counter() - t0:.0f} s")


def write_clip(path: Path, shots: list[Shot], loops: int = 1) -> int:
    """The clip as a near-lossless H.264 MP4 (``loops`` times over), written one frame at a time."""
    count = 0
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        for _ in range(loops):
            for frame in true_frames(shots):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                count += 1
        out.mux(stream.encode())
    return count


def load(key: str) -> tuple[Colorizer, dict[str, object]]:
    """The studio's colourizer for a picker key, at its training size, and the decoder the studio uses."""
    choice = studio.find_choice(key)
    return studio.colorizer(choice.entry(), None), video_studio.decoding(choice)


def child(src: Path, model: str, threads: int, stability: float) -> None:
    """Colourise ``src`` in this (fresh) process; print fps and peak RSS as JSON."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    colorizer, decode = load(model)
    with tempfile.TemporaryDirectory() as tmp:
        cpu = time.process_time()
        options = VideoOptions(stability=stability, **decode)
        report = colorize_video(colorizer, src, Path(tmp) / "out.mp4", options)
        cpu = time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": report.frames, "seconds": report.seconds, "fps": report.fps,
                      "cpu_ms_per_frame": 1e3 * cpu / report.frames, "peak_rss_mb": peak_mb}))


def run_child(src: Path, model: str, threads: int, stability: float) -> dict:
    cmd = [sys.executable, __file__, "--child", str(src), "--model", model, "--threads", str(threads),
           "--stability", str(stability)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None,
                        help="a studio model key, e.g. resnet-regression (default: the studio's first)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=90, help="frames in the clip (three shots)")
    parser.add_argument("--stability", type=float, default=VideoOptions().stability)
    parser.add_argument("--skip-rss", action="store_true", help="skip the 10x longer clip")
    parser.add_argument("--skip-quality", action="store_true", help="only speed and memory")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    model = args.model or studio.default_selection(studio.list_choices())[0]
    if args.child is not None:
        child(args.child, model, args.threads, args.stability)
        return 0
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    shots = make_shots(args.frames)
    colorizer, decode = load(model)
    frames = sum(len(s.maps) for s in shots)
    print(f"model {model} at {colorizer.size} px, {frames} frames of {WIDTH}x{HEIGHT} (pan, zoom, cut, "
          f"pan+zoom), {args.threads} threads, stability {args.stability}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")

    if not args.skip_quality:
        compare(colorizer, shots, args.stability, decode)

    with tempfile.TemporaryDirectory() as tmp:
        short = Path(tmp) / "clip.mp4"
        write_clip(short, shots)
        speed = run_child(short, model, args.threads, args.stability)
        print(f"\nend to end (decode, model, flow, merge, H.264 encode): {speed['fps']:.1f} frames/s "
              f"({speed['frames']} frames in {speed['seconds']:.1f} s; target >= 8), "
              f"{speed['cpu_ms_per_frame']:.0f} ms of CPU per frame; peak RSS {speed['peak_rss_mb']:.0f} MiB")
        per_frame_speed = run_child(short, model, args.threads, 0.0)
        print(f"same, stability 0 (no flow): {per_frame_speed['fps']:.1f} frames/s, "
              f"{per_frame_speed['cpu_ms_per_frame']:.0f} ms of CPU per frame")
        if not args.skip_rss:
            long = Path(tmp) / "long.mp4"
            count = write_clip(long, shots, loops=10)
            longer = run_child(long, model, args.threads, args.stability)
            growth = longer["peak_rss_mb"] / speed["peak_rss_mb"] - 1
            print(f"peak RSS: {speed['peak_rss_mb']:.0f} MiB for {speed['frames']} frames, "
                  f"{longer['peak_rss_mb']:.0f} MiB for {count} ({100 * growth:+.1f} %; target <= +10 %); "
                  f"{longer['fps']:.1f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
