"""colorcore studio, Streamlit twin (``make streamlit``): the same callbacks as the Gradio app.

Upload one or more photos, pick up to six models, set the knobs that apply to them and compare the
results side by side with their metrics. All model logic lives in :mod:`colorcore.studio`; this file
only lays out widgets and shows :class:`~colorcore.errors.ColorcoreError` messages.

Streamlit reruns the whole script on every click, so what is costly is kept: opened photos and the
training-curve chart in ``st.cache_resource`` (models are cached by :func:`colorcore.studio.load_model`),
the last comparison with its encoded pictures and downloads in ``st.session_state``, and the classroom is
an ``st.fragment``, so a pixel click reruns only the classroom.
"""

from __future__ import annotations

import base64
import html
import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components
from PIL import Image
from streamlit_image_coordinates import streamlit_image_coordinates
from video_page import render_video_page

from colorcore import studio
from colorcore.errors import ColorcoreError
from colorcore.io import load_image
from colorcore.pipeline import Hints

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "assets" / "examples").glob("*.jpg"))
SLIDER_WIDTH = 400  # px a result column is laid out for; the slider keeps the photo's aspect ratio


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)  # 4x faster than the default, files a third larger
    return buf.getvalue()


def jpeg_data_url(image: Image.Image, max_side: int = 1024) -> str:
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def slider_html(left: Image.Image, right: Image.Image, left_label: str, right_label: str) -> str:
    """A self-contained before/after slider: drag across the picture to wipe from left to right.

    Written here rather than taken from streamlit-image-comparison, which loads its script from a CDN
    (so it shows nothing offline) and embeds each picture as a quality-100 JPEG.
    """
    lab = "position:absolute;top:6px;padding:1px 6px;background:#0008;color:#fff;font:12px sans-serif"
    return f"""<div class="cc-ba" style="position:relative;display:inline-block;line-height:0">
<img src="{jpeg_data_url(right)}" style="display:block;max-width:100%;max-height:100vh">
<img class="cc-left" src="{jpeg_data_url(left)}"
 style="position:absolute;top:0;left:0;width:100%;height:100%;clip-path:inset(0 50% 0 0)">
<div class="cc-bar" style="position:absolute;top:0;bottom:0;left:50%;width:2px;background:#fff;
 box-shadow:0 0 3px #000;pointer-events:none"></div>
<span style="{lab};left:6px">{html.escape(left_label)}</span>
<span style="{lab};right:6px">{html.escape(right_label)}</span>
<input type="range" min="0" max="100" value="50" step="0.5" aria-label="before/after"
 style="position:absolute;inset:0;width:100%;height:100%;margin:0;opacity:0;cursor:ew-resize"
 oninput="const p=this.parentNode, v=this.value;
p.querySelector('.cc-left').style.clipPath='inset(0 '+(100-v)+'% 0 0)';
p.querySelector('.cc-bar').style.left=v+'%'">
</div>"""


@dataclass(frozen=True)
class Shown:
    """The last comparison as the page shows it, encoded once (a rerun redraws it without any work)."""

    photo: str  # digest of the gray input it belongs to
    stem: str
    comparison: studio.Comparison
    wall: float
    sliders: dict[bool, tuple[str, ...]]  # against the truth? -> one slider page per result
    pngs: tuple[bytes, ...]
    zip: bytes


def build_shown(photo: str, stem: str, comparison: studio.Comparison, wall: float) -> Shown:
    left = {False: (comparison.gray, "gray input")}
    if comparison.truth is not None:
        left[True] = (comparison.truth, "ground truth")
    sliders = {against: tuple(slider_html(image, r.image, label, r.title) for r in comparison.results)
               for against, (image, label) in left.items()}
    pngs = tuple(png_bytes(r.image) for r in comparison.results)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # PNGs are already compressed
        for r, data in zip(comparison.results, pngs, strict=True):
            zf.writestr(f"{stem}_{r.file_tag}.png", data)
    return Shown(photo, stem, comparison, wall, sliders, pngs, buf.getvalue())


@st.cache_resource(show_spinner=False, max_entries=8)
def open_photo(data: bytes, name: str) -> tuple[Image.Image | None, Image.Image | None, str | None]:
    """``(gray input, ground truth, error)`` of an uploaded file, opened once per distinct upload."""
    try:
        return (*studio.split_photo(load_image(data, name=name)), None)
    except ColorcoreError as exc:
        return None, None, str(exc)  # it names the file, as the Gradio studio's messages do


@st.cache_resource(show_spinner=False, max_entries=4)
def open_truth(data: bytes) -> tuple[Image.Image | None, str | None]:
    """``(colour image, error)`` of an uploaded ground truth."""
    try:
        return load_image(data).convert("RGB"), None
    except ColorcoreError as exc:
        return None, str(exc)


@st.cache_resource(show_spinner=False)
def curves_png() -> bytes | None:
    fig = studio.training_curves_figure()
    return None if fig is None else figure_png(fig)


def figure_png(fig) -> bytes:
    """A figure as a PNG at 110 dpi: st.pyplot renders at 200 dpi, 0.4 s more on every pixel click."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def clicked_pixel(click: dict | None, image: Image.Image) -> tuple[int, int] | None:
    """The pixel of ``image`` under a click on its enlarged view (the click component's value), or None."""
    if not click:
        return None
    return studio.click_to_pixel(click["x"], click["y"], (click["width"], click["height"]), image.size)


def click_view(image: Image.Image, key: str) -> dict | None:
    """``image`` shown enlarged and clickable; returns the last click (repeated on every rerun) or None."""
    # Fitted to the column: a 600 px photo in a 400 px column was clipped, and clicks missed their pixel.
    return streamlit_image_coordinates(studio.zoomed(image), key=key, cursor="crosshair", width="stretch",
                                       image_format="JPEG", jpeg_quality=90)


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


def pick_photo() -> tuple[bytes | None, str]:
    """The current photo's bytes (uploaded or example) and its file name."""
    uploads = st.file_uploader("Photos (gray or colour; colour photos become gray + ground truth)",
                               type=["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"],
                               accept_multiple_files=True, key="uploads")
    sources: dict[str, object] = {f.name: f for f in uploads or []}
    if not sources:
        sources = {p.name: p for p in EXAMPLES}
        st.caption("No upload yet: pick one of the example photos.")
    # A fresh upload becomes the current photo, as in the Gradio studio (the selector would keep the old one).
    added = [n for n in sources if n not in st.session_state.get("known_photos", ())]
    st.session_state["known_photos"] = list(sources)
    if added and uploads:
        st.session_state["photo_name"] = added[-1]
    name = st.selectbox("Photo to colourise", list(sources), key="photo_name")
    if name is None:
        return None, "photo"
    source = sources[name]
    data = source.getvalue() if hasattr(source, "getvalue") else Path(source).read_bytes()
    return data, name


def model_picker(choices: list[studio.ModelChoice]) -> list[str]:
    """Short chips (the plain name), with each picked model's one-line description underneath."""
    by_key = {c.key: c for c in choices}
    best = studio.recommended_choice(choices)

    def chip(key: str) -> str:
        return ("★ " if best is not None and key == best.key else "") + by_key[key].name

    keys = st.multiselect(f"Models (1 to {studio.MAX_MODELS})", list(by_key),
                          default=studio.default_selection(choices), format_func=chip,
                          max_selections=studio.MAX_MODELS, key="models",
                          help="★ is the one to start with; add others to compare them side by side.")
    for key in keys:
        c = by_key[key]
        st.caption(f"**{c.name}** ({c.key})" + (f": {c.plain.blurb}" if c.plain else f": {c.label}"))
    return keys


@dataclass(frozen=True)
class Settings:
    """What the sidebar asked for."""

    photo: bytes | None
    name: str  # the photo's file name
    stem: str  # ... as a download stem
    truth_file: bytes | None
    keys: list[str]
    knobs: dict[str, object]  # studio.Knobs arguments
    hints_wanted: bool
    run: bool


def sidebar(choices: list[studio.ModelChoice]) -> Settings:
    st.header("Input")
    photo, name = pick_photo()
    truth_file = st.file_uploader("Separate ground truth (optional)", type=["jpg", "jpeg", "png", "webp"],
                                  key="truth")
    st.header("Models")
    keys = model_picker(choices)
    run = st.button("Colourise", type="primary", width="stretch", key="run")
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
    as_trained = st.checkbox("Run each model at its training size", value=studio.AS_TRAINED_DEFAULT,
                             help=studio.AS_TRAINED_INFO, key="as_trained")
    size = st.slider("Processing size (px)", studio.SIZE_MIN, studio.SIZE_MAX, studio.SIZE_DEFAULT,
                     studio.SIZE_STEP, key="size", disabled=as_trained)
    knobs = {"temperature": temperature, "method": method, "top_k": top_k, "bins": bins,
             "size": None if as_trained else size}
    return Settings(photo, name, studio.photo_stem(name), truth_file.getvalue() if truth_file else None, keys,
                    knobs, vis.hints, run)


def main() -> None:
    st.set_page_config(page_title="colorcore studio", page_icon="🎨", layout="wide")
    st.title("colorcore studio")
    st.caption("Colourise gray photos with several models side by side and compare them against the truth.")

    choices = studio.list_choices()
    if not choices:
        st.warning("No weights are installed: export a model into assets/weights "
                   "or set COLORCORE_WEIGHTS_DIR.")
        return
    with st.sidebar:
        settings = sidebar(choices)
    gray, truth, error = (open_photo(settings.photo, settings.name) if settings.photo is not None
                          else (None, None, None))
    if error:
        st.error(error)
    if settings.truth_file is not None:
        separate, truth_error = open_truth(settings.truth_file)
        truth = separate or truth
        if truth_error:
            st.error(truth_error)

    studio_tab, classroom_tab, video_tab = st.tabs(["Studio", "Classroom", "Video"])
    with studio_tab:
        studio_page(gray, truth, settings, choices)
    with classroom_tab:
        classroom(gray, truth, choices, settings.knobs)
    with video_tab:  # demo/video_page.py
        render_video_page()


def studio_page(gray: Image.Image | None, truth: Image.Image | None, settings: Settings,
                choices: list[studio.ModelChoice]) -> None:
    if gray is None:
        st.info("Upload a photo in the sidebar.")
        return
    photo = studio.image_digest(gray)
    left, right, _ = st.columns([1, 1, 2])
    left.image(gray, caption=f"Input the models see ({gray.width}x{gray.height})", width="stretch")
    if truth is not None:
        right.image(truth, caption="Ground truth", width="stretch")
        studio.prepare_scoring(gray, truth)  # in the background, before Colourise is pressed
    hints = hint_picker(gray, settings.stem) if settings.hints_wanted else None
    if settings.run:
        start = time.perf_counter()
        try:
            knobs = studio.Knobs(**settings.knobs)
            with st.spinner("Colourising…"):
                comparison = studio.run_comparison(gray, settings.keys, knobs, truth=truth, hints=hints,
                                                   choices=choices, metrics=False)
                st.session_state["shown"] = build_shown(photo, settings.stem, comparison,
                                                        time.perf_counter() - start)
        except ColorcoreError as exc:
            st.session_state.pop("shown", None)
            st.error(str(exc))
        finally:
            studio.release_memory()
    shown = st.session_state.get("shown")
    if shown is not None and shown.photo == photo:  # results of another photo are not shown
        show_comparison(shown)


def show_comparison(shown: Shown) -> None:
    comparison = shown.comparison
    for note in comparison.notes:
        st.warning(note)
    st.subheader("Results")
    st.markdown(studio.timing_note(comparison, shown.wall))
    against = comparison.truth is not None and st.toggle("Compare with the ground truth instead of the gray "
                                                         "input", key="against_truth")
    sliders = shown.sliders[bool(against)]
    results = comparison.results
    height = round(SLIDER_WIDTH * comparison.gray.height / comparison.gray.width)
    for start in range(0, len(results), 3):
        # As many columns as results (up to 3): in a third of the page two sliders left a 60 px gap under
        # their pictures, the iframe being sized for SLIDER_WIDTH.
        cols = st.columns(min(3, len(results)))
        for i, col in zip(range(start, start + 3), cols, strict=False):
            if i >= len(results):
                break
            r = results[i]
            with col:
                st.markdown(f"**{r.title}** · {r.elapsed:.2f} s")
                components.html(sliders[i], height=min(height, 520) + 4)
                st.download_button("PNG", shown.pngs[i], file_name=f"{shown.stem}_{r.file_tag}.png",
                                   mime="image/png", key=f"dl-{r.file_tag}")
    if not comparison.scored:  # the pictures are up; now the metrics, once
        comparison = studio.score(comparison)
        shown = Shown(shown.photo, shown.stem, comparison, shown.wall, shown.sliders, shown.pngs, shown.zip)
        st.session_state["shown"] = shown
    table = studio.metrics_table(comparison)
    st.subheader("Metrics" if comparison.truth is not None
                 else "Time per model (add a ground truth for metrics)")
    # A static table: at most seven rows, and it reads (and copies) as plain HTML.
    st.table([{k: "—" if v is None else str(v) for k, v in row.items()} for row in table.records()])
    if comparison.truth is not None:
        st.caption(f"{studio.metric_units()}; time is the model alone.")
    st.download_button("Download all results (ZIP of PNGs, original resolution)", shown.zip,
                       file_name=f"{shown.stem}_colorcore.zip", mime="application/zip", key="dl-all")


@st.fragment
def classroom(gray: Image.Image | None, truth: Image.Image | None, choices: list[studio.ModelChoice],
              knobs: dict[str, object]) -> None:
    """A fragment: clicking a pixel or running the sweep reruns this tab only, not the comparison."""
    st.markdown(studio.EXPLANATION)
    classifiers = studio.classifier_choices(choices)
    if gray is None or not classifiers:
        st.info("Upload a photo and install a classifier (313-bin or palette) to look inside.")
    else:
        strongest = studio.strongest_classifier(choices)
        keys = [c.key for c in classifiers]
        key = st.selectbox("Classifier", keys, index=keys.index(strongest.key) if strongest else 0,
                           format_func={c.key: c.label for c in classifiers}.__getitem__, key="cls_model")
        size, bins, temperature = knobs["size"], knobs["bins"], float(knobs["temperature"])
        c1, c2 = st.columns([1, 2])
        with c1:
            st.caption("Click a pixel of the input to see the classifier's colour distribution there.")
            # The click's value, read before the picture is drawn, so the run the click starts draws the
            # mark where it landed (reading it from the component took a second rerun of the fragment).
            picked = clicked_pixel(st.session_state.get("cls_click"), gray)
            x, y = picked if picked and picked[0] < gray.width and picked[1] < gray.height \
                else (gray.width // 2, gray.height // 2)
            click_view(studio.mark_pixel(studio.zoomed(gray), x, y, gray.size), "cls_click")
        with c2:
            try:
                view = studio.pixel_distribution(key, gray, x, y, temperature=temperature, size=size,
                                                 bins=bins, truth=truth)
                st.image(figure_png(view.figure))
                st.markdown(view.summary)
            except ColorcoreError as exc:
                st.error(str(exc))
        sweep(key, gray, size, bins)
    st.subheader("Training curves of the bundled models")
    png = curves_png()
    if png is None:
        st.caption("No bundled weights carry a training history yet.")
    else:
        st.image(png)


def sweep(key: str, gray: Image.Image, size: object, bins: object) -> None:
    """The temperature sweep strip, computed on request and kept for this photo and model."""
    wanted = (key, studio.image_digest(gray), size, bins)
    if st.button("Temperature sweep (T = 1 … 0)", key="sweep"):
        try:
            frames = studio.temperature_sweep(key, gray, size=size, bins=bins)
            st.session_state["sweep_frames"] = (wanted, [(jpeg_data_url(im, 512), c) for im, c in frames])
        except ColorcoreError as exc:
            st.error(str(exc))
    stored = st.session_state.get("sweep_frames")
    if stored is not None and stored[0] == wanted:
        cols = st.columns(len(stored[1]))
        for col, (url, caption) in zip(cols, stored[1], strict=True):
            col.image(url, caption=caption, width="stretch")


main()
