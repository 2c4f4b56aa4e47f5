"""colorcore studio, Streamlit twin (``make streamlit``): the same callbacks as the Gradio app.

Upload one or more photos, pick up to six models, set the knobs that apply to them and compare the
results side by side with their metrics. All model logic lives in :mod:`colorcore.studio`; this file
only lays out widgets and shows :class:`~colorcore.errors.ColorcoreError` messages.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import streamlit as st
from PIL import Image
from streamlit_image_coordinates import streamlit_image_coordinates
from video_page import render_video_page

from colorcore import studio
from colorcore.errors import ColorcoreError
from colorcore.io import load_image
from colorcore.pipeline import Hints

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "assets" / "examples").glob("*.jpg"))


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def zip_results(comparison: studio.Comparison, stem: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # PNGs are already compressed
        for r in comparison.results:
            zf.writestr(f"{stem}_{r.entry.name}.png", png_bytes(r.image))
    return buf.getvalue()


def clicked_pixel(click: dict | None, image: Image.Image) -> tuple[int, int] | None:
    """The pixel of ``image`` under a click on its enlarged view (the click component's value), or None."""
    if not click:
        return None
    return studio.click_to_pixel(click["x"], click["y"], (click["width"], click["height"]), image.size)


def click_view(image: Image.Image, key: str) -> dict | None:
    """``image`` shown enlarged and clickable; returns the last click (repeated on every rerun) or None."""
    return streamlit_image_coordinates(studio.zoomed(image), key=key, cursor="crosshair")


def hint_picker(gray: Image.Image, stem: str) -> Hints | None:
    """Click the photo to drop colour hints for the user-guided model; returns them (None without any)."""
    st.subheader("Colour hints for the user-guided model")
    state = st.session_state.setdefault("hints", {"photo": None, "points": [], "last_click": None})
    photo_id = (stem, gray.size)
    if state["photo"] != photo_id:  # a new photo starts without hints
        state.update(photo=photo_id, points=[], last_click=None)
    left, right = st.columns([1, 2])
    colour = left.color_picker("Hint colour", "#3b7dd8", key="hint_colour")
    if left.button("Clear hints", key="hint_clear"):
        state["points"] = []
    left.caption(f"{len(state['points'])} hint(s). Click the photo to add one in the chosen colour.")
    layer = studio.hint_layer(state["points"], gray.size)
    preview = Image.alpha_composite(gray.convert("RGBA"), Image.fromarray(layer, "RGBA")).convert("RGB")
    with right:
        click = click_view(preview, "hint_click")
    # The component repeats its last click on every rerun; only a new click adds a hint.
    if click and click.get("unix_time") != state["last_click"]:
        state["last_click"] = click.get("unix_time")
        x, y = clicked_pixel(click, gray)
        state["points"].append((x, y, colour))
        st.rerun()
    return studio.hints_from_layer(layer, gray.size) if state["points"] else None


def pick_photo() -> tuple[Image.Image | None, str]:
    """The current photo (uploaded or example) and a file stem for downloads."""
    uploads = st.file_uploader("Photos (gray or colour; colour photos become gray + ground truth)",
                               type=["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"],
                               accept_multiple_files=True, key="uploads")
    sources: dict[str, object] = {f.name: f for f in uploads or []}
    if not sources:
        sources = {p.name: p for p in EXAMPLES}
        st.caption("No upload yet: pick one of the example photos.")
    name = st.selectbox("Photo to colourise", list(sources), key="photo_name")
    if name is None:
        return None, "photo"
    source = sources[name]
    data = source.getvalue() if hasattr(source, "getvalue") else source
    try:
        return load_image(data), Path(name).stem
    except ColorcoreError as exc:
        st.error(str(exc))
        return None, Path(name).stem


def main() -> None:
    st.set_page_config(page_title="colorcore studio", page_icon="🎨", layout="wide")
    st.title("colorcore studio")
    st.caption("Colourise gray photos with several models side by side and compare them against the truth.")

    choices = studio.list_choices()
    if not choices:
        st.warning("No weights are installed: export a model into assets/weights "
                   "or set COLORCORE_WEIGHTS_DIR.")
        return
    labels = {c.key: c.label for c in choices}

    with st.sidebar:
        st.header("Input")
        image, stem = pick_photo()
        truth_file = st.file_uploader("Separate ground truth (optional)", type=["jpg", "jpeg", "png", "webp"],
                                      key="truth")
        st.header("Models")
        keys = st.multiselect(f"Models (1 to {studio.MAX_MODELS})", [c.key for c in choices],
                              default=studio.default_selection(choices), format_func=labels.__getitem__,
                              max_selections=studio.MAX_MODELS, key="models")
        st.header("Knobs")
        method = "annealed"
        if studio.knob_visibility(keys, method, choices).method:
            method = st.radio("Decoding of 313-bin models", list(studio.DECODE_METHODS),
                              format_func=studio.DECODE_METHODS.__getitem__, key="method", horizontal=True)
        vis = studio.knob_visibility(keys, method, choices)
        temperature = studio.TEMPERATURE_DEFAULT
        if vis.temperature:
            temperature = st.slider("Temperature", studio.TEMPERATURE_MIN, studio.TEMPERATURE_MAX,
                                    studio.TEMPERATURE_DEFAULT, 0.01, key="temperature")
        top_k = studio.TOP_K_DEFAULT
        if vis.top_k:
            top_k = st.slider("Top-k colours averaged", studio.TOP_K_MIN, studio.TOP_K_MAX,
                              studio.TOP_K_DEFAULT, 1, key="top_k")
        bins = None
        if vis.bins:
            bins = st.radio("Palette colours", list(vis.bins), index=list(vis.bins).index(24)
                            if 24 in vis.bins else 0, horizontal=True, key="bins")
        as_trained = st.checkbox("Run each model at its training size", value=True, key="as_trained")
        size = st.slider("Processing size (px)", studio.SIZE_MIN, studio.SIZE_MAX, studio.SIZE_DEFAULT,
                         studio.SIZE_STEP, key="size", disabled=as_trained)
        size = None if as_trained else size
        run = st.button("Colourise", type="primary", width="stretch", key="run")

    gray, truth = studio.split_photo(image)
    if truth_file is not None:
        try:
            truth = load_image(truth_file.getvalue())
        except ColorcoreError as exc:
            st.error(str(exc))

    studio_tab, classroom_tab, video_tab = st.tabs(["Studio", "Classroom", "Video"])
    with studio_tab:
        if gray is None:
            st.info("Upload a photo in the sidebar.")
        else:
            left, right, _ = st.columns([1, 1, 2])
            left.image(gray, caption=f"Input the models see ({gray.width}x{gray.height})", width="stretch")
            if truth is not None:
                right.image(truth, caption="Ground truth", width="stretch")
            hints = hint_picker(gray, stem) if vis.hints else None
            if run:
                try:
                    knobs = studio.Knobs(temperature=temperature, method=method, top_k=top_k, bins=bins,
                                         size=size)
                    with st.spinner("Colourising…"):
                        st.session_state["comparison"] = (stem, studio.run_comparison(
                            gray, keys, knobs, truth=truth, hints=hints, choices=choices))
                except ColorcoreError as exc:
                    st.session_state.pop("comparison", None)
                    st.error(str(exc))
                finally:
                    studio.release_memory()
            stored = st.session_state.get("comparison")
            if stored is not None and stored[0] == stem and stored[1].gray.size == gray.size:
                show_comparison(*stored)

    with classroom_tab:
        classroom(gray, truth, choices, temperature, size, bins)
    with video_tab:  # demo/video_page.py
        render_video_page()


def show_comparison(stem: str, comparison: studio.Comparison) -> None:
    for note in comparison.notes:
        st.warning(note)
    st.subheader("Results")
    results = comparison.results
    for start in range(0, len(results), 3):
        cols = st.columns(3)
        for col, r in zip(cols, results[start:start + 3], strict=False):
            with col:
                st.image(r.image, caption=f"{r.title} · {r.elapsed:.2f} s", width="stretch")
                st.download_button("PNG", png_bytes(r.image), file_name=f"{stem}_{r.entry.name}.png",
                                   mime="image/png", key=f"dl-{r.entry.name}")
    table = studio.metrics_table(comparison)
    st.subheader("Metrics" if comparison.truth is not None
                 else "Inference time (add a ground truth for metrics)")
    # A static table: at most seven rows, and it reads (and copies) as plain HTML.
    st.table([{k: "—" if v is None else str(v) for k, v in row.items()} for row in table.records()])
    if comparison.truth is not None:
        st.caption(f"{studio.metric_units()}; time is inference only.")
    st.download_button("Download all results (ZIP of PNGs, original resolution)",
                       zip_results(comparison, stem), file_name=f"{stem}_colorcore.zip",
                       mime="application/zip", key="dl-all")


def classroom(gray: Image.Image | None, truth: Image.Image | None, choices: list[studio.ModelChoice],
              temperature: float, size: int | None, bins: int | None) -> None:
    st.markdown(studio.EXPLANATION)
    classifiers = studio.classifier_choices(choices)
    if gray is None or not classifiers:
        st.info("Upload a photo and install a classifier (313-bin or palette) to look inside.")
    else:
        key = st.selectbox("Classifier", [c.key for c in classifiers],
                           format_func={c.key: c.label for c in classifiers}.__getitem__, key="cls_model")
        c1, c2 = st.columns([1, 2])
        with c1:
            st.caption("Click a pixel of the input to see the classifier's colour distribution there.")
            x, y = clicked_pixel(click_view(gray, "cls_click"), gray) or (gray.width // 2, gray.height // 2)
        with c2:
            try:
                view = studio.pixel_distribution(key, gray, x, y, temperature=temperature, size=size,
                                                 bins=bins, truth=truth)
                st.pyplot(view.figure)
                st.markdown(view.summary)
            except ColorcoreError as exc:
                st.error(str(exc))
        if st.button("Temperature sweep (T = 1 … 0)", key="sweep"):
            try:
                strip = studio.temperature_sweep(key, gray, size=size, bins=bins)
                cols = st.columns(len(strip))
                for col, (im, caption) in zip(cols, strip, strict=True):
                    col.image(im, caption=caption, width="stretch")
            except ColorcoreError as exc:
                st.error(str(exc))
    st.subheader("Training curves of the bundled models")
    fig = studio.training_curves_figure()
    if fig is None:
        st.caption("No bundled weights carry a training history yet.")
    else:
        st.pyplot(fig)


main()
