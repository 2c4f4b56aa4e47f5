"""The Streamlit twin's Video tab, mounted by ``demo/streamlit_app.py``; logic in colorcore.video_studio.

Cancel is Streamlit's own: pressing the Cancel button (or any widget) reruns the script, which interrupts
the running job; :func:`colorcore.video.colorize_video` then deletes its partial output.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from colorcore import studio, video_studio
from colorcore.errors import ColorcoreError


def render_video_page() -> None:
    """Draw the Video tab inside the caller's ``st.tabs`` context."""
    st.markdown("Colourise a gray film clip. Colours are carried from frame to frame along the motion, so "
                "they do not flicker; **stability 0** colours each frame on its own. The sound is kept.")
    choices = video_studio.video_choices()
    if not choices:
        st.info("No bundled weights are installed.")
        return
    labels = {c.key: c.label for c in choices}
    keys = list(labels)
    default = video_studio.default_model(choices)
    upload = st.file_uploader("Video clip", type=[e.lstrip(".") for e in video_studio.VIDEO_EXTENSIONS],
                              key="video_clip")
    left, right = st.columns(2)
    model = left.selectbox("Model", keys, index=keys.index(default) if default in keys else 0,
                           format_func=labels.__getitem__, key="video_model")
    stability = right.slider("Stability (0 = each frame on its own)", 0.0, 1.0,
                             video_studio.STABILITY_DEFAULT, 0.05, key="video_stability")
    seconds = f"{video_studio.PREVIEW_SECONDS:g} s"
    b1, b2, b3 = st.columns(3)
    preview = b1.button(f"Preview {seconds}", key="video_preview", width="stretch")
    run = b2.button("Colourise clip", type="primary", key="video_run", width="stretch")
    b3.button("Cancel", key="video_cancel", width="stretch",
              help="Stops a running job (the page reruns); nothing is kept")
    if (preview or run) and upload is None:
        st.warning(video_studio.NO_CLIP)
    elif preview or run:
        folder = Path(tempfile.mkdtemp(prefix="colorcore-video-"))
        src = folder / f"upload{Path(upload.name).suffix.lower() or '.mp4'}"
        src.write_bytes(upload.getvalue())
        bar = st.progress(0.0, text="Starting…")

        def progress(done: int, total: int | None) -> None:
            fraction = min(1.0, done / total) if total else 0.0
            bar.progress(fraction, text=f"frame {done}" + (f" of {total}" if total else ""))

        try:
            result = video_studio.colorize_clip(src, model, stability, folder, preview=preview,
                                                progress=progress)
            st.session_state["video_result"] = (result.path.read_bytes(), result.path.name, result.summary)
        except ColorcoreError as exc:
            st.session_state.pop("video_result", None)
            st.error(str(exc).replace(str(folder) + "/", ""))
        finally:
            bar.empty()
            studio.release_memory()
    stored = st.session_state.get("video_result")
    if stored is not None:
        data, name, summary = stored
        st.video(data, format="video/mp4")
        st.markdown(summary)
        st.download_button("Download (MP4)", data, file_name=name, mime="video/mp4", key="video_download")
