"""Video in, colourised video out: lazy PyAV decoding, the still pipeline per frame, flow propagation.

:func:`colorize_video` reads a clip of any container FFmpeg reads one frame at a time (memory does not
grow with the clip's length), colours each frame with :class:`colorcore.pipeline.Colorizer` split at its
working size (:meth:`~colorcore.pipeline.Colorizer.predict_small`, then
:meth:`~colorcore.pipeline.Colorizer.merge`), steadies the working-size ab between frames with
:class:`colorcore.video_temporal.Propagator`, and writes H.264 (MP4, MOV or MKV by the output's suffix):

- the frame size, frame rate and every frame's timestamp are kept (variable frame rate included);
- the rotation tag of a phone video is applied to the pixels, so the output is upright without one;
- the first audio stream is copied packet for packet (re-encoded to AAC only when the output container
  cannot hold its codec, which the report says);
- the output is written to a hidden temporary file beside ``dest`` and renamed at the end, so an error,
  a cancel or Ctrl-C never leaves a half-written file under the final name.

Every input problem is a :class:`VideoError` (a :class:`~colorcore.errors.ColorcoreError`) with a one-line
message naming the file: not a video (text, a still image, random bytes), no video stream, no decodable
frame, frames over :data:`MAX_FRAME_PIXELS` (8K), more than ``max_frames`` frames. Damaged packets in an
otherwise readable clip (a truncated download) are skipped and counted in the report.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from colorcore.errors import ColorcoreError, ConfigError
from colorcore.pipeline import Colorizer, check_decoding
from colorcore.video_temporal import Propagator, Temporal

MAX_FRAMES = 54_000  # 30 minutes at 30 fps: a family film reel, not a feature (hours of CPU time)
MAX_FRAME_PIXELS = 4096 * 2304  # DCI 4K and a little more; 8K frames (33 MP) are refused
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow")
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Audio codecs the MP4/MOV muxers take as they are; anything else is re-encoded to AAC there.
_MP4_AUDIO = frozenset({"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"})
# Demuxers that are not clips: single images, text art, playlists and devices that open other inputs.
_NOT_VIDEO = frozenset({"image2", "tty", "lavfi", "concat", "hls", "dash", "sdp", "rtsp", "rtp", "ffmetadata",
                        "bin", "xbin", "adp", "idf", "srt", "ass", "webvtt", "subviewer", "microdvd"})


class VideoError(ColorcoreError):
    """A file is not a video we can colourise (corrupt, no frames, too large, too long, wrong type)."""


class VideoCancelledError(ColorcoreError):
    """The caller asked :func:`colorize_video` to stop; nothing was written under the output name."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` reads from a clip's headers.

    Attributes:
        width, height: the displayed frame size (after the rotation tag).
        rotation: degrees counter-clockwise the stored frames are turned to display them (0, 90, 180, 270).
        fps: average frame rate (frames per second).
        frames: the frame count the container announces or its duration implies; None if unknown.
        duration: seconds, or None if unknown.
        audio: codec of the first audio stream, or None.
    """

    path: Path
    container: str
    codec: str
    width: int
    height: int
    rotation: int
    fps: float
    frames: int | None
    duration: float | None
    audio: str | None


@dataclass(frozen=True)
class VideoOptions:
    """How to colourise a clip.

    Attributes:
        stability: 0 colours each frame on its own; up to 1, how strongly the previous frame's colours are
            carried forward along the motion (see :mod:`colorcore.video_temporal`).
        start: seconds into the clip to start at.
        duration: seconds to colourise from ``start``; None means to the end.
        max_frames: refuse clips (or windows) with more frames than this.
        max_frame_pixels: refuse frames larger than this.
        crf, preset: libx264 quality (lower is better; 18 is visually lossless) and speed preset.
        temperature, top_k, method: decoding knobs for classification models (None: the model's).
    """

    stability: float = Temporal.stability
    start: float = 0.0
    duration: float | None = None
    max_frames: int = MAX_FRAMES
    max_frame_pixels: int = MAX_FRAME_PIXELS
    crf: int = 18
    preset: str = "veryfast"
    temperature: float | None = None
    top_k: int | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        Temporal(stability=self.stability)  # validates stability
        if not _finite(self.start) or self.start < 0:
            raise ConfigError(f"start must be a number of seconds >= 0, got {self.start!r}")
        if self.duration is not None and (not _finite(self.duration) or self.duration <= 0):
            raise ConfigError(f"duration must be a number of seconds > 0, got {self.duration!r}")
        for name in ("max_frames", "max_frame_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ConfigError(f"crf must be an integer in [0, 51], got {self.crf!r}")
        if self.preset not in X264_PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; use one of {', '.join(X264_PRESETS)}")
        check_decoding(self.temperature, self.top_k, self.method)

    @property
    def temporal(self) -> Temporal:
        return Temporal(stability=self.stability)

    @property
    def decoding(self) -> dict[str, object]:
        return {"temperature": self.temperature, "top_k": self.top_k, "method": self.method}


@dataclass(frozen=True, eq=False)
class ColorFrame:
    """One colourised frame: full-resolution RGB and gray, the working-size ab, and the propagation state."""

    rgb: np.ndarray  # (H, W, 3) uint8
    gray: np.ndarray  # (H, W) uint8: the frame's L, kept exactly
    ab_small: np.ndarray  # (2, S, S) float32 after propagation
    predicted: np.ndarray  # (2, S, S) float32 before propagation
    confidence: float
    cut: bool


@dataclass(frozen=True)
class VideoReport:
    """What :func:`colorize_video` did."""

    output: Path
    frames: int
    seconds: float
    cuts: int
    width: int
    height: int
    audio: str  # "copied", "re-encoded to AAC", or "none"
    notes: tuple[str, ...] = field(default=())

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


# -- probing -----------------------------------------------------------------------------------------


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise VideoError(f"{path}: not a video FFmpeg can read ({_reason(exc)})") from None
    name = container.format.name
    if name in _NOT_VIDEO or name.endswith("_pipe"):
        container.close()
        kind = "a still image; use `colorize` for photos" if name == "image2" or name.endswith("_pipe") \
            else f"not a video (FFmpeg reads it as {name!r})"
        raise VideoError(f"{path}: {kind}")
    return container


def _reason(exc: BaseException) -> str:
    """FFmpeg's reason without the file name PyAV appends (the caller names the file itself)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()).rstrip(":").lower() or type(exc).__name__


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if s.codec_context is not None]
    if not streams:
        raise VideoError(f"{path}: the file has no video stream"
                         + (" (only audio)" if container.streams.audio else ""))
    return streams[0]


def _rotation_of(stream: av.video.stream.VideoStream, first: av.VideoFrame | None = None) -> int:
    """The display rotation in degrees counter-clockwise, snapped to a quarter turn (0, 90, 180, 270)."""
    degrees = getattr(first, "rotation", 0) if first is not None else 0
    return int(round((degrees or 0) / 90)) % 4 * 90


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0


def _frame_estimate(stream: av.video.stream.VideoStream, container: av.container.InputContainer,
                    fps: float) -> tuple[int | None, float | None]:
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    frames = stream.frames or (int(round(duration * fps)) if duration else None)
    return frames or None, duration


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a clip's headers (and its first frame, for the rotation tag); raises :class:`VideoError`."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        fps = _fps(stream)
        frames, duration = _frame_estimate(stream, container, fps)
        first = None
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError:
            pass
        rotation = _rotation_of(stream, first)
        w, h = stream.codec_context.width, stream.codec_context.height
        if first is not None:
            w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(path, container.format.name, stream.codec_context.name, w, h, rotation, fps, frames,
                         duration, audio)


# -- colourising frames ------------------------------------------------------------------------------


def colorize_frames(colorizer: Colorizer, frames: Iterable[np.ndarray], options: VideoOptions | None = None,
                    ) -> Iterator[ColorFrame]:
    """Colourise a sequence of frames (``(H, W, 3)`` uint8 RGB or ``(H, W)`` gray), lazily, in order.

    The core of :func:`colorize_video`, without files: the benchmark feeds it frames it made itself.
    """
    options = options or VideoOptions()
    propagator = Propagator(options.temporal)
    size = colorizer.size
    for frame in frames:
        gray, ab = colorizer.predict_small(frame, **options.decoding)
        predicted = ab.numpy()
        # The flow's view of the frame: its gray at the working size, like the model's input.
        l_small = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
        step = propagator.step(l_small, predicted)
        rgb = colorizer.merge(gray, torch.from_numpy(step.ab))
        yield ColorFrame(rgb, gray, step.ab, predicted, step.confidence, step.cut)


# -- files -------------------------------------------------------------------------------------------


@dataclass
class _Decoded:
    """Per-clip decoding state shared between the frame generator and the caller."""

    damaged: int = 0
    decoded: int = 0


def _frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
            audio_in: av.audio.stream.AudioStream | None, on_audio: Callable[[av.Packet], None],
            start: float, end: float | None, state: _Decoded) -> Iterator[av.VideoFrame]:
    """Decoded video frames in [start, end) in display order; audio packets go to ``on_audio`` as met."""
    streams = [stream] + ([audio_in] if audio_in is not None else [])
    for packet in container.demux(streams):
        if packet.stream is audio_in:
            if packet.dts is not None:
                on_audio(packet)
            continue
        try:
            decoded = packet.decode()
        except av.FFmpegError:  # a damaged packet: skip it, as players do, and say so at the end
            state.damaged += 1
            continue
        for frame in decoded:
            t = frame.time if frame.time is not None else state.decoded / _fps(stream)
            state.decoded += 1
            if t < start - 1e-6:
                continue
            if end is not None and t >= end - 1e-6:
                return
            yield frame


def _temp_path(dest: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return Path(name)


def colorize_video(
    colorizer: Colorizer,
    src: str | os.PathLike,
    dest: str | os.PathLike,
    options: VideoOptions | None = None,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> VideoReport:
    """Colourise the clip ``src`` into ``dest`` (see the module docstring); returns a :class:`VideoReport`.

    ``progress(done, total)`` is called after every frame (``total`` is the expected count, or None).
    ``should_stop()`` is polled after every frame; when it returns True the partial output is deleted and
    :class:`VideoCancelledError` is raised.
    """
    options = options or VideoOptions()
    src, dest = Path(src), Path(dest)
    fmt = OUTPUT_FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{dest}: the output must end in {', '.join(OUTPUT_FORMATS)}")
    if not dest.parent.is_dir():
        raise VideoError(f"{dest.parent}: the output folder does not exist")
    if dest.is_dir():
        raise VideoError(f"{dest}: is a folder")
    began = time.perf_counter()
    tmp = _temp_path(dest)
    try:
        with ExitStack() as stack:
            container = stack.enter_context(_open(src))
            try:
                report = _transcode(colorizer, container, src, tmp, fmt, options, progress, should_stop)
            except av.FFmpegError as exc:  # a decoder, encoder or muxer failure deep in the clip
                raise VideoError(f"{src}: FFmpeg could not process the clip ({_reason(exc)})") from None
        os.replace(tmp, dest)
    except BaseException:  # errors, cancel and Ctrl-C alike: nothing half-written stays behind
        tmp.unlink(missing_ok=True)
        raise
    return replace(report, output=dest, seconds=time.perf_counter() - began)


def _transcode(colorizer: Colorizer, container: av.container.InputContainer, src: Path, tmp: Path, fmt: str,
               options: VideoOptions, progress: Callable[[int, int | None], None] | None,
               should_stop: Callable[[], bool] | None) -> VideoReport:
    stream = _video_stream(container, src)
    threads = max(1, torch.get_num_threads())
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    fps = _fps(stream)
    total, duration = _frame_estimate(stream, container, fps)
    w0, h0 = stream.codec_context.width, stream.codec_context.height
    if w0 * h0 > options.max_frame_pixels:
        raise VideoError(_too_large(src, w0, h0, options.max_frame_pixels))
    start, end = options.start, None if options.duration is None else options.start + options.duration
    if duration is not None and start >= duration:
        raise VideoError(f"{src}: --start {start:g} s is past the end of the clip ({duration:.2f} s)")
    if total is not None:
        window = (min(end, duration) if end is not None and duration else duration or 0) - start
        if duration:
            total = max(1, int(round(window * fps)))
        if total > options.max_frames:
            raise VideoError(
                f"{src}: about {total} frames ({_clock(total / fps)} at {fps:.3g} fps) is over the "
                f"limit of {options.max_frames} frames; colourise a part with --start and --duration")
    if start > 0:
        container.seek(int(start * av.time_base), backward=True, any_frame=False)

    audio_in = container.streams.audio[0] if container.streams.audio else None
    out = av.open(str(tmp), mode="w", format=fmt)
    try:
        return _encode_all(colorizer, container, stream, audio_in, out, src, fmt, options, fps, total,
                           start, end, threads, progress, should_stop)
    finally:
        out.close()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def _too_large(src: Path, w: int, h: int, limit: int) -> str:
    return (f"{src}: frames of {w}x{h} ({w * h / 1e6:.1f} MP) are over the video limit of "
            f"{limit / 1e6:.1f} MP (4K); scale the clip down first")


def _encode_all(colorizer: Colorizer, container: av.container.InputContainer,
                stream: av.video.stream.VideoStream, audio_in: av.audio.stream.AudioStream | None,
                out: av.container.OutputContainer, src: Path, fmt: str, options: VideoOptions, fps: float,
                total: int | None, start: float, end: float | None, threads: int,
                progress: Callable[[int, int | None], None] | None,
                should_stop: Callable[[], bool] | None) -> VideoReport:
    notes: list[str] = []
    audio_mode, audio_out, audio_encoder = "none", None, None
    if audio_in is not None:
        if fmt == "matroska" or audio_in.codec_context.name in _MP4_AUDIO:
            audio_out, audio_mode = out.add_stream_from_template(audio_in), "copied"
        else:
            audio_encoder = out.add_stream("aac", rate=audio_in.codec_context.sample_rate or 48000)
            audio_mode = "re-encoded to AAC"
            notes.append(f"the audio ({audio_in.codec_context.name}) cannot go into {fmt} as it is; "
                         "re-encoded to AAC")
    video_out: av.video.stream.VideoStream | None = None
    state = _Decoded()
    origin: float | None = None  # seconds subtracted from every timestamp (the window's start)
    pending_audio: list[av.Packet] = []  # audio met before the first video frame fixes the origin

    def mux_audio(packet: av.Packet) -> None:
        if origin is None:
            pending_audio.append(packet)
            return
        t = float(packet.pts * packet.time_base) if packet.pts is not None else None
        # The whole clip keeps every packet (AAC's priming packet has a negative time); a window trims.
        if t is None or (start > 0 and t < origin - 1e-6) or (end is not None and t >= end):
            return
        shift = int(round(origin / packet.time_base))
        if audio_out is not None:
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = audio_out
            out.mux(packet)
        elif audio_encoder is not None:
            for frame in packet.decode():
                frame.pts = None  # the encoder numbers samples itself
                out.mux(audio_encoder.encode(frame))

    def frames() -> Iterator[np.ndarray]:
        nonlocal origin, video_out
        for frame in _frames(container, stream, audio_in, mux_audio, start, end, state):
            if origin is None:
                origin = frame.time if start > 0 and frame.time is not None else 0.0
                video_out = _add_video_stream(out, frame, stream, fps, options, threads, src)
                for packet in pending_audio:
                    mux_audio(packet)
                pending_audio.clear()
            timestamps.append(frame.pts)
            rgb = frame.to_ndarray(format="rgb24")
            if frame.width * frame.height > options.max_frame_pixels:
                raise VideoError(_too_large(src, frame.width, frame.height, options.max_frame_pixels))
            yield _upright(rgb, _rotation_of(stream, frame))

    timestamps: deque[int | None] = deque()
    done = cuts = 0
    time_base = stream.time_base
    last_pts = -1
    for colored in colorize_frames(colorizer, frames(), options):
        assert video_out is not None
        if done >= options.max_frames:
            raise VideoError(f"{src}: more than {options.max_frames} frames; colourise a part with --start "
                             "and --duration")
        rgb = colored.rgb
        if (rgb.shape[1], rgb.shape[0]) != (video_out.width, video_out.height):  # a mid-clip size change
            rgb = cv2.resize(rgb, (video_out.width, video_out.height), interpolation=cv2.INTER_AREA)
        out_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        pts = timestamps.popleft()
        shift = int(round((origin or 0.0) / time_base))
        pts = int(round(done / fps / time_base)) if pts is None else pts - shift
        last_pts = out_frame.pts = max(pts, last_pts + 1)  # x264 refuses repeated timestamps (broken files)
        out_frame.time_base = time_base
        for packet in video_out.encode(out_frame):
            out.mux(packet)
        done += 1
        cuts += colored.cut
        if progress is not None:
            progress(done, total)
        if should_stop is not None and should_stop():
            raise VideoCancelledError("stopped before the end; nothing was written")
    if video_out is None:
        what = f"no frame after {start:g} s" if start > 0 and state.decoded else "no decodable video frame"
        damaged = f" ({state.damaged} damaged packet(s))" if state.damaged else ""
        raise VideoError(f"{src}: {what}{damaged}")
    for packet in video_out.encode():
        out.mux(packet)
    if audio_encoder is not None:
        out.mux(audio_encoder.encode(None))
    if state.damaged:
        notes.append(f"skipped {state.damaged} damaged packet(s); the file may be truncated")
    announced = stream.frames
    if announced and end is None and start == 0 and done < announced - 1:
        notes.append(f"the clip ended after {done} of the {announced} frames its header announces "
                     "(truncated?)")
    # colorize_video fills in the output's name and the time taken.
    return VideoReport(Path(), done, 0.0, cuts, video_out.width, video_out.height, audio_mode, tuple(notes))


def _add_video_stream(out: av.container.OutputContainer, first: av.VideoFrame,
                      stream: av.video.stream.VideoStream, fps: float, options: VideoOptions, threads: int,
                      src: Path) -> av.video.stream.VideoStream:
    rotation = _rotation_of(stream, first)
    w, h = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
    rate = stream.average_rate or stream.guessed_rate or Fraction(fps).limit_denominator(1001)
    video = out.add_stream("libx264", rate=rate)
    video.width, video.height = w, h
    # 4:2:0 needs even sides; an odd-sized clip keeps its size in 4:4:4 (High 4:4:4, fewer players).
    video.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
    video.time_base = stream.time_base
    video.codec_context.time_base = stream.time_base
    video.codec_context.thread_count = threads
    video.options = {"crf": str(options.crf), "preset": options.preset}
    return video


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Turn stored pixels the way the rotation tag says (counter-clockwise quarter turns)."""
    return np.ascontiguousarray(np.rot90(rgb, rotation // 90)) if rotation else rgb


__all__ = ["ColorFrame", "MAX_FRAMES", "MAX_FRAME_PIXELS", "OUTPUT_FORMATS", "VideoCancelledError",
           "VideoError",
           "VideoInfo", "VideoOptions", "VideoReport", "colorize_frames", "colorize_video", "probe"]
