"""The studio's Video tab (Gradio), mounted by ``app.py``; the logic lives in colorcore.video_studio."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr

from colorcore import studio, video_studio
from colorcore.errors import ColorcoreError

RESULT_TTL_S = 3600  # result folders older than this are deleted when a new run starts
_STOPS = video_studio.StopFlags()
_ROOT = Path(tempfile.mkdtemp(prefix="colorcore-video-"))


def _new_folder() -> Path:
    now = time.time()
    for old in _ROOT.iterdir():
        if now - old.stat().st_mtime > RESULT_TTL_S:
            shutil.rmtree(old, ignore_errors=True)
    folder = _ROOT / uuid.uuid4().hex[:12]
    folder.mkdir()
    return folder


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def _run(clip: str | None, model: str, stability: float, preview: bool, request: gr.Request | None,
         progress: gr.Progress) -> tuple[str, str, str]:
    session = _session(request)
    should_stop = _STOPS.start(session)

    def report(done: int, total: int | None) -> None:
        progress((done, total) if total else None, desc=f"frame {done}" + (f" of {total}" if total else ""),
                 unit="frames")

    try:
        result = video_studio.colorize_clip(clip, model, stability, _new_folder(), preview=preview,
                                            progress=report, should_stop=should_stop)
    except ColorcoreError as exc:
        raise gr.Error(str(exc).replace(str(Path(clip).parent) + "/", "") if clip else str(exc),
                       title="Cannot colourise this clip") from exc
    finally:
        _STOPS.finish(session)
        studio.release_memory()
    return str(result.path), str(result.path), result.summary


def build_video_tab() -> gr.Tab:
    """Lay out the Video tab inside the caller's ``gr.Tabs`` context."""
    choices = video_studio.video_choices()
    pairs = [(c.label, c.key) for c in choices]
    with gr.Tab("Video", id="video") as tab:
        seconds = f"{video_studio.PREVIEW_SECONDS:g} s"
        gr.Markdown("Colourise a gray film clip. Colours are carried from frame to frame along the motion, "
                    "so they do not flicker; **stability 0** colours each frame on its own. The sound is "
                    f"kept. Try **Preview** (the first {seconds}) before a long clip.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                clip = gr.File(label="Video clip", file_types=list(video_studio.VIDEO_EXTENSIONS),
                               type="filepath", elem_id="cc-video-in")
                model = gr.Dropdown(pairs, value=video_studio.default_model(choices), label="Model",
                                    elem_id="cc-video-model")
                stability = gr.Slider(0, 1, video_studio.STABILITY_DEFAULT, step=0.05, label="Stability",
                                      info="0 = each frame on its own; higher = steadier colour",
                                      elem_id="cc-video-stability")
                with gr.Row():
                    preview = gr.Button(f"Preview {seconds}", elem_id="cc-video-preview")
                    run = gr.Button("Colourise clip", variant="primary", elem_id="cc-video-run")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cc-video-cancel")
            with gr.Column(scale=3, min_width=420):
                shown = gr.Video(label="Result", interactive=False, elem_id="cc-video-out")
                download = gr.File(label="Download (MP4)", interactive=False, elem_id="cc-video-download")
                summary = gr.Markdown("", elem_id="cc-video-summary")

        def on_preview(clip, model, stability, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            return _run(clip, model, stability, True, request, progress)

        def on_run(clip, model, stability, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            return _run(clip, model, stability, False, request, progress)

        def on_cancel(request: gr.Request) -> None:
            if _STOPS.stop(_session(request)):
                gr.Info("Stopping after the current frame; nothing is kept.")

        outputs = [shown, download, summary]
        preview.click(on_preview, [clip, model, stability], outputs, api_visibility="private",
                      concurrency_id="video", concurrency_limit=1)
        run.click(on_run, [clip, model, stability], outputs, api_visibility="private",
                  concurrency_id="video", concurrency_limit=1)
        cancel.click(on_cancel, None, None, api_visibility="private", queue=False)
    return tab
