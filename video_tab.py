"""The studio's Video tab (Gradio), mounted by ``app.py``; the logic lives in colorcore.video_studio."""

from __future__ import annotations

import gradio as gr


def build_video_tab() -> gr.Tab:
    """Lay out the Video tab inside the caller's ``gr.Tabs`` context."""
    with gr.Tab("Video", id="video") as tab:
        gr.Markdown("Video colourisation is being added.")
    return tab
