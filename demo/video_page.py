"""The Streamlit twin's Video tab: mounted by ``demo/streamlit_app.py``; logic in colorcore.video_studio."""

from __future__ import annotations

import streamlit as st


def render_video_page() -> None:
    """Draw the Video tab inside the caller's ``st.tabs`` context."""
    st.info("Video colourisation is being added.")
