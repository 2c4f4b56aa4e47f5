"""What the studio's Video tab does (Gradio and Streamlit alike); the UI files only lay out widgets.

One clip, one model, one stability: :func:`colorize_clip` colours either the first
:data:`PREVIEW_SECONDS` (a quick look) or the whole clip into a fresh MP4 in a folder the caller owns,
reporting progress per frame and polling a stop flag, so a long clip can be cancelled. :class:`StopFlags`
keeps one stop flag per browser session for the Cancel button.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from colorcore import studio
from colorcore.errors import ConfigError
from colorcore.video import VideoOptions, VideoReport, colorize_video, probe
from colorcore.video_temporal import Temporal

PREVIEW_SECONDS = 3.0
STABILITY_DEFAULT = Temporal().stability
# Upload filter of both UIs; FFmpeg reads more, and colorize_video judges the content, not the name.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv",
                    ".3gp", ".ogv")
NO_CLIP = "Upload a video clip first."


@dataclass(frozen=True)
class ClipResult:
    """A colourised clip: the MP4, what happened, and a one-paragraph summary for the page."""

    path: Path
    report: VideoReport
    summary: str


def video_choices(choices: Sequence[studio.ModelChoice] | None = None) -> list[studio.ModelChoice]:
    """Models that can colour a video: the installed, bundled ones (hint painting has no place in a clip)."""
    choices = studio.list_choices() if choices is None else choices
    return [c for c in choices if c.bundled and c.kind != "hints"]


def default_model(choices: Sequence[studio.ModelChoice]) -> str | None:
    """The studio's first default pick when it can do video, else the first video choice."""
    keys = [c.key for c in choices]
    first = next((k for k in studio.default_selection(list(choices), 1) if k in keys), None)
    return first or (keys[0] if keys else None)


def decoding(choice: studio.ModelChoice) -> dict[str, object]:
    """The decoder the studio uses for ``choice`` at its default knobs (a two-head model's named decode)."""
    return dict(studio.Knobs(size=None).decoding(choice))


def colorize_clip(
    src: str | Path | None,
    model: str,
    stability: float,
    folder: str | Path,
    *,
    preview: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    choices: Sequence[studio.ModelChoice] | None = None,
) -> ClipResult:
    """Colour ``src`` (all of it, or its first :data:`PREVIEW_SECONDS`) with weights ``model``.

    Raises :class:`~colorcore.errors.ColorcoreError` subclasses with plain messages (no clip, an unknown
    model, a bad file, a cancel).
    """
    if src is None or not str(src):
        raise ConfigError(NO_CLIP)
    src = Path(src)
    choice = studio.find_choice(model, video_choices(choices))
    options = VideoOptions(stability=float(stability), duration=PREVIEW_SECONDS if preview else None,
                           **decoding(choice))
    info = probe(src)  # a bad file fails before the model is loaded
    colorizer = studio.colorizer(choice.entry(), None)
    stem = re.sub(r"[^\w.-]+", "_", src.stem)[:60] or "clip"
    dest = Path(folder) / f"{stem}_{choice.entry().name}{'_preview' if preview else ''}.mp4"
    report = colorize_video(colorizer, src, dest, options, progress=progress, should_stop=should_stop)
    part = f"the first {PREVIEW_SECONDS:g} s" if preview else "the whole clip"
    notes = "".join(f" Note: {n}." for n in report.notes)
    summary = (f"Colourised {part} with **{choice.label}**: {report.frames} frames of "
               f"{report.width}x{report.height} at {info.fps:.3g} fps in {report.seconds:.1f} s "
               f"({report.fps:.1f} frames/s), stability {float(stability):.2f}, {report.cuts} scene cut(s), "
               f"audio {report.audio}.{notes}")
    return ClipResult(dest, report, summary)


class StopFlags:
    """One stop flag per session: :meth:`start` arms a fresh one for a run, :meth:`stop` raises it."""

    def __init__(self) -> None:
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, session: str) -> Callable[[], bool]:
        flag = threading.Event()
        with self._lock:
            self._flags[session] = flag
        return flag.is_set

    def stop(self, session: str) -> bool:
        """Ask the session's running job to stop; False when none is running."""
        with self._lock:
            flag = self._flags.get(session)
        if flag is None or flag.is_set():
            return False
        flag.set()
        return True

    def finish(self, session: str) -> None:
        with self._lock:
            self._flags.pop(session, None)


__all__ = ["ClipResult", "NO_CLIP", "PREVIEW_SECONDS", "STABILITY_DEFAULT", "StopFlags", "VIDEO_EXTENSIONS",
           "colorize_clip", "decoding", "default_model", "video_choices"]
