"""colorcore studio: the Gradio app (``make run`` / ``python app.py``) on 127.0.0.1:7860.

A thin shell over :mod:`colorcore.studio`: this file lays out widgets and turns
:class:`~colorcore.errors.ColorcoreError` into plain-language messages; all model logic lives in the
package. ``GRADIO_SERVER_PORT`` picks another port; ``COLORCORE_WEIGHTS_DIR`` another weights folder.

API (``gradio_client``)::

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    # model: a name from the studio's model list; then temperature, top_k (0 = off), processing size
    # output_format (optional): auto (JPEG in -> JPEG out, else PNG), jpeg or png
    path = client.predict(handle_file("photo.jpg"), "MODEL-NAME", 0.38, 0, 256, api_name="/colorize")
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from PIL import Image

from colorcore import studio
from colorcore.errors import ColorcoreError
from colorcore.io import load_image
from video_tab import build_video_tab

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
CONCURRENCY = 2  # simultaneous model runs: a CPU box gains nothing from more
QUEUE_SIZE = 64  # requests waiting beyond this are refused with "queue full" instead of piling up
DOWNLOAD_TTL_S = 3600  # result files older than this are deleted

CSS = """
#cc-header h1 {margin-bottom: 0}
#cc-header p {margin-top: 2px; opacity: .75}
.cc-sidebar {border-right: 1px solid var(--border-color-primary); padding-right: 12px}
.cc-caption p {margin: 0; font-weight: 600; line-height: 1.3}
#cc-run {min-height: 48px; font-size: 1.05em}
#cc-empty {text-align: center; opacity: .6; padding: 48px 0}
#cc-metrics th {font-size: 0.85em}
#cc-cls-image img {image-rendering: pixelated; cursor: crosshair}
/* The hint editor's colour popup opened beside its toolbar, over the photo's left part: lay the swatches
   out as one column over the toolbar itself, in the margin left of the photo. The free colour picker
   (a 200 x 370 px panel) has no such room, so the swatches carry the colours hints need. */
#cc-hints .half-container > .wrap.padded {left: -4px !important; top: -120px !important;
  bottom: auto !important; margin: 0 !important; padding: 4px !important; transform: none !important;
  translate: none !important; width: fit-content !important; min-width: 0 !important; z-index: 20}
#cc-hints .half-container > .wrap.padded .swatch-wrap {width: auto !important}
#cc-hints .half-container > .wrap.padded .swatch-container,
#cc-hints .half-container > .wrap.padded menu.swatch {display: flex !important;
  flex-direction: column !important; flex-wrap: nowrap !important; width: auto !important;
  gap: 3px !important; margin: 0 !important}
#cc-hints .half-container > .wrap.padded > span, #cc-hints .colorpicker {display: none !important}
"""
HINT_COLOURS = ("#d62828", "#f77f00", "#fcbf49", "#e8b48f", "#8b5a2b", "#6a994e", "#2a9d8f", "#8ecae6",
                "#3a86ff", "#8338ec", "#c9a227")  # hues, plus skin, wood and sky tones


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show a ColorcoreError's message as a red toast instead of a stack trace; free memory afterwards."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ColorcoreError as exc:
            raise _error(_user_message(exc)) from exc
        finally:
            studio.release_memory()

    return wrapper


def _error(message: str, title: str = "Cannot do that") -> gr.Error:
    """A red toast that stays until the user closes it.

    What it says must be acted on (a URL to fetch, a folder, a size limit), so it must not fade after
    Gradio's default 10 s. It also must not be missed: a browser asked to show a 400 MP upload can
    stall drawing the page for longer than that, and a timed toast then fades before it is ever seen.
    """
    return gr.Error(message, title=title, duration=None)


def _user_message(exc: Exception) -> str:
    """An error's text as the browser must show it: no private folders, nothing that reads as HTML."""
    # Gradio renders toasts as sanitised HTML, so "(<urlopen error ...>). If ..." lost everything after
    # "(": the angle brackets of such reprs go, their words stay.
    return _without_folders(re.sub(r"<([^<>]*)>", r"\1", str(exc)))


_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
_PATH = re.compile(r"(?<![\w.])(?:/[^/\s:]+)+/([^/\s:]+)")


def _public_folders() -> tuple[str, ...]:
    """Folders a message may name in full: where the user has to put or delete weights files."""
    from colorcore.weights import weights_dir

    return tuple(str(Path(p)) + "/" for p in (torch.hub.get_dir(), weights_dir()))


def _without_folders(message: str) -> str:
    """Drop server-side folders (uploads live in Gradio's temp folders) from file paths in a message.

    URLs, and paths inside the weights folder or torch's download cache, stay whole: the user needs
    them to fetch or place a file. Only absolute paths go: "a text/HTML/SVG file" keeps its slashes.
    """
    public = _public_folders()

    def scrub(text: str) -> str:
        return _PATH.sub(lambda m: m.group(0) if m.group(0).startswith(public) else m.group(1), text)

    parts, last = [], 0
    for url in _URL.finditer(message):
        parts += [scrub(message[last:url.start()]), url.group(0)]
        last = url.end()
    return "".join([*parts, scrub(message[last:])])


class _Downloads:
    """A private folder of result files; each run gets a subfolder, old ones are pruned."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="colorcore-studio-"))

    def new_folder(self) -> Path:
        now = time.time()
        for old in self.root.iterdir():
            if now - old.stat().st_mtime > DOWNLOAD_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        folder = self.root / uuid.uuid4().hex[:12]
        folder.mkdir()
        return folder


class CheckedImage(gr.Image):
    """``gr.Image`` whose uploads are opened by :func:`colorcore.io.load_image`, not by Gradio.

    So a decompression bomb, an oversized or a disguised file is refused by colorcore's pixel cap and
    decoder list before anything is decoded, with colorcore's plain-words message. A subclass, not a
    patched instance, because Gradio rebuilds components from their class on updates; ``is_template``
    makes it draw with the ordinary image widget. (Gradio writes an ``app.pyi`` stub for it; ignored.)
    """

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        if payload is None or self.type != "pil":
            return super().preprocess(payload)
        url = payload.url or ""
        source: str | bytes | None = payload.path
        if url.startswith("data:"):  # a pasted image
            source = base64.b64decode(url.partition(",")[2])
        if source is None:
            return super().preprocess(payload)
        if isinstance(source, str):
            _wait_until_written(source)
        try:
            image = load_image(source)
        except ColorcoreError as exc:
            raise _error(_user_message(exc), title="Cannot open this photo") from exc
        mode = self.image_mode
        image = image.convert(mode) if mode and image.mode != mode else image
        image.info["orig_name"] = payload.orig_name  # downloads are named after the upload
        return image


def _wait_until_written(path: str, timeout: float = 1.0) -> None:
    """Wait while ``path`` is empty, for up to ``timeout`` seconds.

    Gradio writes its cache files in place (``Path.write_bytes``, not a rename), and writes a picture
    again when another output of the same event shows the same one, as the photo and the Classroom do.
    An event reading the file then can find it empty for a moment (seen once, in the studio benchmark's
    1 MP uploads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.path.getsize(path) > 0:
                return
        except OSError:
            return  # load_image names what is wrong with the path
        time.sleep(0.02)


def _slot_positions(n: int) -> list[int]:
    """Where n results go in the 2 x 3 grid of slots: one row up to 3, then balanced rows (2+2, 3+2, 3+3)."""
    first = n if n <= 3 else (n + 1) // 2
    return [*range(first), *range(3, 3 + n - first)]


def _examples() -> list[Path]:
    return sorted(p for p in EXAMPLES_DIR.glob("*.jpg"))


def _size(as_trained: bool, size: float) -> int | None:
    """The processing size knob: None runs each model at the size it was trained at."""
    return None if as_trained else int(size)


def _knobs(method: str, temperature: float, top_k: float, bins: Any, as_trained: bool,
           size: float) -> studio.Knobs:
    return studio.Knobs(temperature=float(temperature), method=method, top_k=int(top_k),
                        bins=int(bins) if bins else None, size=_size(as_trained, size))


AGAINST = {"gray": "the gray input", "truth": "the ground truth"}  # left side of each slider


@dataclass(frozen=True)
class InputPanel:
    photo: gr.Image
    run: gr.Button
    truth_box: gr.Accordion
    truth: gr.Image
    files: gr.File
    batch_gallery: gr.Gallery
    batch_run: gr.Button


@dataclass(frozen=True)
class KnobPanel:
    models: gr.CheckboxGroup
    method: gr.Radio
    temperature: gr.Slider
    top_k: gr.Slider
    bins: gr.Radio
    as_trained: gr.Checkbox
    size: gr.Slider

    def inputs(self) -> list[gr.components.Component]:
        """The knobs in the order of :func:`_knobs` (after the model keys)."""
        return [self.method, self.temperature, self.top_k, self.bins, self.as_trained, self.size]


@dataclass(frozen=True)
class ResultsPanel:
    hints_box: gr.Accordion
    editor: gr.ImageEditor
    empty: gr.Markdown
    timing: gr.Markdown
    against: gr.Radio
    containers: list[Any]  # per row: three slot columns, then the row
    captions: list[gr.Markdown]
    sliders: list[gr.ImageSlider]
    metrics: gr.Dataframe
    downloads: gr.File

    def cleared(self) -> list[Any]:
        """Updates for :meth:`outputs` that empty the results (a new photo must not show old ones)."""
        hidden = [gr.update(visible=False)] * len(self.containers)
        return [gr.Markdown(visible=True), gr.Markdown(value="", visible=False), *hidden,
                *[gr.Markdown(value="")] * len(self.captions),
                *[gr.ImageSlider(value=None)] * len(self.sliders),
                gr.Dataframe(value=None, visible=False), gr.File(value=None, visible=False),
                gr.Radio(visible=False)]

    def outputs(self) -> list[Any]:
        return [self.empty, self.timing, *self.containers, *self.captions, *self.sliders, self.metrics,
                self.downloads, self.against]


def _photo_panel() -> tuple[gr.Image, gr.Button]:
    photo = CheckedImage(label="Photo", type="pil", image_mode="RGB", format="png", height=260,
                         sources=["upload", "clipboard", "webcam"], elem_id="cc-photo")
    return photo, gr.Button("Colourise", variant="primary", elem_id="cc-run")


def _extras_panel(photo: gr.Image, run: gr.Button) -> InputPanel:
    """Ground truth, examples and batch, below the model picker (a first run needs none of them)."""
    with gr.Accordion("Ground truth (optional)", open=False) as truth_box:
        truth = CheckedImage(label="Colour original", type="pil", image_mode="RGB", format="png", height=200,
                             sources=["upload", "clipboard"], elem_id="cc-truth")
    gr.Examples(examples=[[str(p)] for p in _examples()], inputs=[photo], examples_per_page=8,
                label="Examples: colour photos (see assets/examples/SOURCES.md)")
    with gr.Accordion("Several photos at once (batch)", open=False):
        files = gr.File(label="Drop photos", file_count="multiple", file_types=["image"], height=110,
                        elem_id="cc-files")
        batch_gallery = gr.Gallery(label="Click one to open it", columns=5, height=140, allow_preview=False,
                                   visible=False)
        batch_run = gr.Button("Colourise all photos → PNG files")
    return InputPanel(photo, run, truth_box, truth, files, batch_gallery, batch_run)


def _knob_panel(choices: list[studio.ModelChoice], selected: list[str]) -> KnobPanel:
    vis = studio.knob_visibility(selected, "annealed", choices)
    models = gr.CheckboxGroup(studio.picker_options(choices), value=selected, elem_id="cc-models",
                              label=f"Models (1 to {studio.MAX_MODELS})",
                              info="Start with the recommended one; tick others to compare side by side.")
    method = gr.Radio([(v, k) for k, v in studio.DECODE_METHODS.items()], value="annealed",
                      label="Decoding of 313-bin models", visible=vis.method, elem_id="cc-method")
    temperature = gr.Slider(studio.TEMPERATURE_MIN, studio.TEMPERATURE_MAX, value=studio.TEMPERATURE_DEFAULT,
                            step=0.01, label="Temperature", visible=vis.temperature, elem_id="cc-temperature",
                            info="1 = plain mean (dull), towards 0 = mode (vivid); Zhang et al. use 0.38")
    top_k = gr.Slider(studio.TOP_K_MIN, studio.TOP_K_MAX, value=studio.TOP_K_DEFAULT, step=1, label="Top-k",
                      info="average of the k likeliest colours", visible=vis.top_k, elem_id="cc-topk")
    bins = gr.Radio(list(vis.bins) or list(studio.PALETTE_BINS),
                    value=24 if 24 in vis.bins or not vis.bins else vis.bins[0], label="Palette colours",
                    info="picks the matching palette weights", visible=bool(vis.bins), elem_id="cc-bins")
    as_trained = gr.Checkbox(value=studio.AS_TRAINED_DEFAULT, label="Run each model at its training size",
                             info=studio.AS_TRAINED_INFO, elem_id="cc-as-trained")
    size = gr.Slider(studio.SIZE_MIN, studio.SIZE_MAX, value=studio.SIZE_DEFAULT, step=studio.SIZE_STEP,
                     label="Processing size (px)", interactive=not studio.AS_TRAINED_DEFAULT,
                     info="the output keeps the photo's own resolution", elem_id="cc-size")
    return KnobPanel(models, method, temperature, top_k, bins, as_trained, size)


def _results_panel(hints_visible: bool) -> ResultsPanel:
    with gr.Accordion("Colour hints for the user-guided model", open=True,
                      visible=hints_visible) as hints_box:
        editor = gr.ImageEditor(
            label="Paint hints", type="numpy", image_mode="RGBA", sources=[], transforms=[], height=400,
            layers=False, elem_id="cc-hints",
            brush=gr.Brush(default_size=8, color_mode="defaults", colors=list(HINT_COLOURS)),
        )
    empty = gr.Markdown("Pick a photo and one or more models, then press **Colourise**.", elem_id="cc-empty")
    timing = gr.Markdown(visible=False, elem_id="cc-timing")
    against = gr.Radio([(v, k) for k, v in AGAINST.items()], value="gray", visible=False,
                       label="Left of each slider", elem_id="cc-against")
    containers, captions, sliders = [], [], []
    for row_index in range(2):
        with gr.Row(visible=False) as row:
            for i in range(3):
                index = 3 * row_index + i
                with gr.Column(visible=False, min_width=200) as slot:
                    # A caption of its own: the slider's label sat under its buttons and was cut off.
                    captions.append(gr.Markdown("", elem_classes="cc-caption", elem_id=f"cc-caption-{index}"))
                    sliders.append(gr.ImageSlider(show_label=False, type="filepath", max_height=420,
                                                  buttons=["fullscreen"], elem_id=f"cc-slider-{index}"))
                containers.append(slot)
        containers.append(row)
    metrics = gr.Dataframe(label="Metrics", interactive=False, wrap=True, visible=False, elem_id="cc-metrics")
    downloads = gr.File(label="Download results (PNG, original resolution)", file_count="multiple",
                        interactive=False, visible=False, elem_id="cc-downloads")
    return ResultsPanel(hints_box, editor, empty, timing, against, containers, captions, sliders, metrics,
                        downloads)


@dataclass(frozen=True)
class ClassroomPanel:
    model: gr.Dropdown
    image: gr.Image
    summary: gr.Markdown
    plot: gr.Plot
    sweep_run: gr.Button
    sweep: gr.Gallery


def _classroom_tab(choices: list[studio.ModelChoice]) -> ClassroomPanel:
    gr.Markdown(studio.EXPLANATION)
    classifiers = [(c.label, c.key) for c in studio.classifier_choices(choices)]
    strongest = studio.strongest_classifier(choices)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            model = gr.Dropdown(classifiers, value=strongest.key if strongest else None,
                                label="Classifier to inspect", elem_id="cc-cls-model")
            image = gr.Image(label="Click a pixel of the photo (from the Studio tab)", type="pil",
                             interactive=False, height=320, format="png", elem_id="cc-cls-image")
            summary = gr.Markdown("", elem_id="cc-cls-summary")
        with gr.Column(scale=3, min_width=420):
            plot = gr.Plot(label="Predicted distribution over the ab plane", show_label=False,
                           elem_id="cc-plot")
    sweep_run = gr.Button("Temperature sweep: T = 1, 0.77, 0.58, 0.38, 0.29, 0.14, 0 (mode)")
    sweep = gr.Gallery(label="From the mean (T = 1) to the mode (T = 0)", columns=7, height=230,
                       object_fit="contain", elem_id="cc-sweep")
    curves = studio.training_curves_figure()
    gr.Markdown("### Training curves of the bundled models" + (
        "" if curves is not None else "\nNo bundled weights carry a training history yet."))
    gr.Plot(value=curves, label="Training curves", show_label=False, visible=curves is not None,
            elem_id="cc-curves")
    return ClassroomPanel(model, image, summary, plot, sweep_run, sweep)


def build_app() -> gr.Blocks:
    """The studio's Blocks (not launched)."""
    choices = studio.list_choices()
    selected = studio.default_selection(choices)
    downloads = _Downloads()

    with gr.Blocks(title="colorcore studio", delete_cache=(DOWNLOAD_TTL_S, DOWNLOAD_TTL_S)) as demo:
        gr.Markdown("# colorcore studio\nColourise gray photos with several models side by side, "
                    "compare them against the truth and look inside the classifiers.", elem_id="cc-header")
        if not choices:
            gr.Markdown("**No weights are installed.** Train and export a model into `assets/weights` "
                        "(or set `COLORCORE_WEIGHTS_DIR`), then restart the studio.")
        with gr.Tabs():
            with gr.Tab("Studio", id="studio"):
                with gr.Row(equal_height=False):
                    # Narrow enough minimums that at 820 px the results stay beside the settings.
                    with gr.Column(scale=2, min_width=280, elem_classes="cc-sidebar"):
                        photo, run = _photo_panel()
                        knobs = _knob_panel(choices, selected)
                        inputs = _extras_panel(photo, run)
                    with gr.Column(scale=5, min_width=400):
                        results = _results_panel(studio.knob_visibility(selected, "annealed", choices).hints)
            with gr.Tab("Classroom", id="classroom"):
                classroom = _classroom_tab(choices)
            build_video_tab()  # video_tab.py: upload a clip, colourise it without flicker
            with gr.Tab("API", id="api"):
                api_help = gr.Markdown(_api_help("http://127.0.0.1:7860/", selected), elem_id="cc-api-help")

        def on_load(request: gr.Request) -> str:
            return _api_help(_base_url(request), selected)

        demo.load(on_load, None, api_help, api_visibility="private", show_progress="hidden")
        # The shown comparison holds full-resolution pictures: let an abandoned session's copy go.
        state = _StudioState(gr.State(None), gr.State(None, time_to_live=DOWNLOAD_TTL_S), gr.State("photo"),
                             gr.State(list(selected)))
        _wire_photo(inputs, results, classroom, state)
        _wire_knobs(knobs, results, choices, state)
        _wire_run(inputs, knobs, results, choices, downloads, state)
        _wire_batch(inputs, knobs, results, choices, downloads)
        _wire_classroom(classroom, inputs, knobs, downloads)
        _api_endpoint(downloads)
    return demo


@dataclass(frozen=True)
class _StudioState:
    """Per-session values: the gray photo's digest (to tell our own write-back from a new photo), the
    shown comparison with its display files and pending scores, the upload's file stem, and the last valid
    model pick."""

    gray_digest: gr.State
    shown: gr.State
    stem: gr.State
    picked: gr.State


def _wire_photo(inputs: InputPanel, results: ResultsPanel, classroom: ClassroomPanel, state: _StudioState
                ) -> None:
    @_guard
    def on_photo(image: Image.Image | None, current_truth: Image.Image | None, digest: str | None):
        if image is None:
            return (gr.skip(), None, gr.skip(), None, None, None, "photo", *results.cleared())
        if digest is not None and studio.image_digest(image.convert("L")) == digest:
            # The gray version written back below fires .change again: nothing changed.
            return (gr.skip(),) * (7 + len(results.outputs()))
        gray, new_truth = studio.split_photo(image, current_truth)
        studio.prepare_scoring(gray, new_truth)  # in the background, before Colourise is pressed
        is_new_truth = new_truth is not None and new_truth is not current_truth
        if is_new_truth:
            gr.Info("Colour photo: the models get its gray version; the photo is the ground truth.")
        editor = {"background": gray, "layers": [], "composite": None}
        return (gray, new_truth if is_new_truth or new_truth is None else gr.skip(),
                gr.Accordion(open=True) if is_new_truth else gr.skip(), editor, studio.zoomed(gray),
                studio.image_digest(gray), studio.photo_stem(image.info.get("orig_name")), *results.cleared())

    inputs.photo.change(
        on_photo, [inputs.photo, inputs.truth, state.gray_digest],
        [inputs.photo, inputs.truth, inputs.truth_box, results.editor, classroom.image, state.gray_digest,
         state.stem, *results.outputs()],
        api_visibility="private", show_progress="hidden",
    ).failure(lambda: None, None, inputs.photo, api_visibility="private", show_progress="hidden")
    # A file the photo box cannot open would otherwise stay as a broken-image placeholder.


def _wire_knobs(knobs: KnobPanel, results: ResultsPanel, choices: list[studio.ModelChoice],
                state: _StudioState) -> None:
    def on_models(keys: list[str], mode: str, previous: list[str]):
        keys = list(keys or [])
        if len(keys) > studio.MAX_MODELS:
            gr.Warning(f"At most {studio.MAX_MODELS} models at once: untick one before adding another.")
            return (gr.CheckboxGroup(value=previous), previous, *(gr.skip(),) * 5)
        v = studio.knob_visibility(keys, mode, choices)
        bin_choices = list(v.bins) or list(studio.PALETTE_BINS)
        return (gr.skip(), keys, gr.update(visible=v.method), gr.update(visible=v.temperature),
                gr.update(visible=v.top_k), gr.update(visible=bool(v.bins), choices=bin_choices,
                                                      value=24 if 24 in bin_choices else bin_choices[0]),
                gr.Accordion(visible=v.hints))

    knobs.models.change(on_models, [knobs.models, knobs.method, state.picked],
                        [knobs.models, state.picked, knobs.method, knobs.temperature, knobs.top_k, knobs.bins,
                         results.hints_box], api_visibility="private", show_progress="hidden")

    def on_method(keys: list[str], mode: str):
        v = studio.knob_visibility(keys or [], mode, choices)
        return gr.update(visible=v.temperature), gr.update(visible=v.top_k)

    knobs.method.change(on_method, [knobs.models, knobs.method], [knobs.temperature, knobs.top_k],
                        api_visibility="private", show_progress="hidden")
    knobs.as_trained.change(lambda auto: gr.Slider(interactive=not auto), knobs.as_trained, knobs.size,
                            api_visibility="private", show_progress="hidden")


def _slider_updates(shown: tuple[studio.Comparison, studio.DisplayFiles, Future] | None, against: str
                    ) -> list[Any]:
    """Each slot's slider from the shown (comparison, display files, pending scores)."""
    if shown is None:
        return [gr.skip()] * studio.MAX_MODELS
    comparison, files = shown[:2]
    placed = dict(zip(_slot_positions(len(comparison.results)), range(len(comparison.results)), strict=True))
    return [gr.ImageSlider(value=files.pair(placed[j], against == "truth")) if j in placed
            else gr.ImageSlider(value=None) for j in range(studio.MAX_MODELS)]


def _wire_run(inputs: InputPanel, knobs: KnobPanel, results: ResultsPanel, choices: list[studio.ModelChoice],
              downloads: _Downloads, state: _StudioState) -> None:
    @_guard
    def on_run(image, truth_image, keys, mode, t, k, b, auto, s, editor_value, against):
        start = time.perf_counter()
        hints = None
        if image is not None and editor_value and editor_value.get("layers"):
            hints = studio.hints_from_layer(editor_value["layers"][0], image.size)
        # Pictures first; the metrics and the PNG downloads follow in on_score and on_save.
        comparison = studio.run_comparison(image, keys or [], _knobs(mode, t, k, b, auto, s),
                                           truth=truth_image, hints=hints, choices=choices, metrics=False)
        for note in comparison.notes:
            gr.Warning(note)
        files = studio.display_files(comparison, downloads.new_folder())
        # Scored while the pictures travel and render; on_score collects it. After the JPEGs: both use
        # the studio's worker threads, and the pictures must not queue behind the metrics.
        scoring = studio.score_soon(comparison)
        placed = dict(zip(_slot_positions(len(comparison.results)), comparison.results, strict=True))
        updates: list[Any] = []
        for row_index in range(2):
            row_slots = range(3 * row_index, 3 * row_index + 3)
            updates.extend(gr.Column(visible=j in placed) for j in row_slots)
            updates.append(gr.Row(visible=any(j in placed for j in row_slots)))
        captions = [f"{r.title} · {r.elapsed:.2f} s" if (r := placed.get(j)) else ""
                    for j in range(studio.MAX_MODELS)]
        against = against if comparison.truth is not None else "gray"
        shown = (comparison, files, scoring)
        note = studio.timing_note(comparison, time.perf_counter() - start)
        return (gr.Markdown(visible=False), gr.Markdown(note, visible=True), *updates, *captions,
                *_slider_updates(shown, against), gr.skip(), gr.skip(),
                gr.Radio(visible=comparison.truth is not None, value=against), shown)

    @_guard
    def on_score(shown):
        if shown is None:
            return gr.skip()
        comparison = shown[2].result()
        table = studio.metrics_table(comparison)
        label = (f"Metrics against the ground truth ({studio.metric_units()}; time = the model alone)"
                 if comparison.truth is not None else "Time per model (add a ground truth for metrics)")
        data = {"headers": list(table.headers), "data": [list(r) for r in table.rows]}
        return gr.Dataframe(value=data, visible=True, label=label)

    @_guard
    def on_save(shown, stem):
        # Beside on_score: the PNGs (0.05 s per megapixel and model) queue behind the metrics' jobs.
        if shown is None:
            return gr.skip()
        paths = studio.save_results(shown[0], downloads.new_folder(), stem)
        return gr.File(value=[str(p) for p in paths], visible=True)

    ran = inputs.run.click(
        on_run, [inputs.photo, inputs.truth, knobs.models, *knobs.inputs(), results.editor, results.against],
        [*results.outputs(), state.shown], api_visibility="private", scroll_to_output=False,
    )
    # Side by side, not one after the other: the PNGs queue on the workers behind the metrics, and the
    # downloads no longer wait for the table's round trip to the browser.
    ran.success(on_score, state.shown, results.metrics, api_visibility="private", show_progress="hidden")
    ran.success(on_save, [state.shown, state.stem], results.downloads, api_visibility="private",
                show_progress="hidden")
    results.against.change(_slider_updates, [state.shown, results.against], results.sliders,
                           api_visibility="private", show_progress="hidden")


def _wire_batch(inputs: InputPanel, knobs: KnobPanel, results: ResultsPanel,
                choices: list[studio.ModelChoice], downloads: _Downloads) -> None:
    def on_files(paths: list[str] | None):
        paths = list(paths or [])
        if not paths:
            return gr.Gallery(value=None, visible=False), gr.skip()
        first = _open_or_warn(paths[0])
        return gr.Gallery(value=paths, visible=True), first if first is not None else gr.skip()

    inputs.files.change(on_files, inputs.files, [inputs.batch_gallery, inputs.photo],
                        api_visibility="private")

    def on_pick(paths: list[str] | None, evt: gr.SelectData):
        paths = list(paths or [])
        if evt.index is None or not 0 <= evt.index < len(paths):
            return gr.skip()
        image = _open_or_warn(paths[evt.index])
        return image if image is not None else gr.skip()

    inputs.batch_gallery.select(on_pick, inputs.files, inputs.photo, api_visibility="private")

    @_guard
    def on_batch(paths, keys, mode, t, k, b, auto, s):
        out = studio.colorize_batch(list(paths or []), keys or [], _knobs(mode, t, k, b, auto, s),
                                    downloads.new_folder(), choices=choices)
        gr.Info(f"Wrote {len(out)} PNG files.")
        return gr.File(value=[str(p) for p in out], visible=True)

    inputs.batch_run.click(on_batch, [inputs.files, knobs.models, *knobs.inputs()], results.downloads,
                           api_visibility="private")


def _wire_classroom(classroom: ClassroomPanel, inputs: InputPanel, knobs: KnobPanel, downloads: _Downloads
                    ) -> None:
    @_guard
    def on_pixel(key, image, shown, truth_image, t, auto, s, b, evt: gr.SelectData):
        if not key:
            raise _error("No classifier is installed to inspect.")
        if image is None or shown is None:
            raise _error("Upload a photo in the Studio tab first.")
        # The classroom shows the photo enlarged; map the click back to the photo's pixels.
        x, y = studio.click_to_pixel(*evt.index, shown.size, image.size)
        view = studio.pixel_distribution(key, image, x, y, temperature=float(t), size=_size(auto, s),
                                         bins=int(b) if b else None, truth=truth_image)
        marked = studio.mark_pixel(studio.zoomed(studio.to_gray(image)), x, y, image.size)
        return view.figure, view.summary, marked

    classroom.image.select(
        on_pixel, [classroom.model, inputs.photo, classroom.image, inputs.truth, knobs.temperature,
                   knobs.as_trained, knobs.size, knobs.bins],
        [classroom.plot, classroom.summary, classroom.image], api_visibility="private")

    @_guard
    def on_sweep(key, image, auto, s, b):
        if not key:
            raise _error("No classifier is installed for the sweep.")
        frames = studio.temperature_sweep(key, image, size=_size(auto, s), bins=int(b) if b else None)
        folder = downloads.new_folder()
        return [(str(studio.display_jpeg(im, folder / f"sweep{i}.jpg", 1024)), caption)
                for i, (im, caption) in enumerate(frames)]

    classroom.sweep_run.click(on_sweep, [classroom.model, inputs.photo, knobs.as_trained, knobs.size,
                                         knobs.bins], classroom.sweep, api_visibility="private")


def _api_endpoint(downloads: _Downloads) -> None:
    """Hidden components behind the `colorize` API endpoint (one model, original resolution out)."""
    with gr.Row(visible=False):
        # A file, not gr.Image: Gradio would decode the upload itself, before colorcore.io's pixel cap
        # and its one clear error type could see a hostile file.
        api_image = gr.File(label="image", type="filepath")
        api_model = gr.Textbox(label="model")
        api_temperature = gr.Number(value=studio.TEMPERATURE_DEFAULT, label="temperature")
        api_top_k = gr.Number(value=0, precision=0, label="top_k")
        api_size = gr.Number(value=studio.SIZE_DEFAULT, precision=0, label="size")
        api_format = gr.Radio(list(studio.OUTPUT_FORMATS), value="auto", label="output_format")
        api_out = gr.Image(type="filepath", label="colourised")
        api_button = gr.Button("api")

    @_guard
    def colorize(image: str | None, model: str, temperature: float, top_k: float, size: float,
                 output_format: str = "auto") -> str:
        """Colourise one photo with one model; returns it at the photo's original resolution."""
        result = studio.colorize_one(image, model, 0.0 if temperature is None else float(temperature),
                                     int(top_k or 0), int(size or 0))
        # Written here, not by gr.Image: Gradio would PNG-encode at zlib level 6 (3 s for 12 MP).
        return str(studio.save_api_result(result, downloads.new_folder(), image, output_format))

    api_button.click(colorize, [api_image, api_model, api_temperature, api_top_k, api_size, api_format],
                     api_out, api_name="colorize")


def _base_url(request: gr.Request | None) -> str:
    """The address the browser used to reach the studio (so the API example names the right port)."""
    headers = getattr(request, "headers", None) or {}
    host = headers.get("x-forwarded-host") or headers.get("host")
    if not host:
        return "http://127.0.0.1:7860/"
    return f"{headers.get('x-forwarded-proto', 'http')}://{host}/"


def _open_or_warn(path: str) -> Image.Image | None:
    try:
        return load_image(path)
    except ColorcoreError as exc:
        gr.Warning(_user_message(exc))
        return None


def _api_help(base_url: str, selected: list[str]) -> str:
    """The API tab's text, naming the address the page was served from and a model that is installed."""
    model = selected[0] if selected else "MODEL"
    return f"""\
### Call the studio from Python

Every model is also an HTTP endpoint, `colorize`, that returns the colourised photo at its original
resolution. Arguments: image, model (a weights name from the Studio's model list, shown in brackets, or a
model family such as `eccv16`, which takes that family's default weights), temperature (313-bin models;
0 = mode), top_k (0 = off; palette and 313-bin models), processing size (128 to 512, or 0 for the model's
training size), and optionally output_format: `auto` (default: a JPEG upload gets a quality-95 JPEG back,
anything else a PNG), `jpeg` or `png`. Gradio's own **Use via API** page (link at the bottom) lists it too.

```python
from gradio_client import Client, handle_file

client = Client("{base_url}")
out_path = client.predict(
    handle_file("old_photo.jpg"),  # image
    "{model}",{" " * max(1, 22 - len(model))}# model
    0.38,                          # temperature
    0,                             # top_k
    0,                             # processing size (0 = as trained)
    api_name="/colorize",
)
```
"""


def main() -> None:
    if "OMP_NUM_THREADS" not in os.environ:
        # Requests run CONCURRENCY at a time; giving each all cores would only make them fight.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // CONCURRENCY))
    demo = build_app()
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        theme=gr.themes.Soft(primary_hue="indigo", secondary_hue="amber"),
        css=CSS,
        footer_links=["api"],
        max_file_size="50mb",
        show_error=False,
    )


if __name__ == "__main__":
    main()
