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
.cc-slot .label-wrap, .cc-slot label {font-weight: 600}
#cc-run {min-height: 48px; font-size: 1.05em}
#cc-empty {text-align: center; opacity: .6; padding: 48px 0}
#cc-metrics th {font-size: 0.85em}
#cc-cls-image img {image-rendering: pixelated; cursor: crosshair}
footer {display: none !important}
"""


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show a ColorcoreError's message as a red toast instead of a stack trace; free memory afterwards."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ColorcoreError as exc:
            raise gr.Error(_without_folders(str(exc)), title="Cannot do that") from exc
        finally:
            studio.release_memory()

    return wrapper


def _without_folders(message: str) -> str:
    """Drop server-side folders from file paths in a message (uploads live in Gradio's temp folders)."""
    # Only absolute paths: "a text/HTML/SVG file" keeps its slashes.
    return re.sub(r"(?<![\w.])(?:/[^/\s:]+)+/([^/\s:]+)", r"\1", message)


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
        try:
            image = load_image(source)
        except ColorcoreError as exc:
            raise gr.Error(_without_folders(str(exc)), title="Cannot open this photo") from exc
        mode = self.image_mode
        return image.convert(mode) if mode and image.mode != mode else image


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


def build_app() -> gr.Blocks:
    """The studio's Blocks (not launched)."""
    choices = studio.list_choices()
    pairs = [(c.label, c.key) for c in choices]
    selected = studio.default_selection(choices)
    vis = studio.knob_visibility(selected, "annealed", choices)
    classifiers = [(c.label, c.key) for c in studio.classifier_choices(choices)]
    downloads = _Downloads()

    with gr.Blocks(title="colorcore studio", delete_cache=(DOWNLOAD_TTL_S, DOWNLOAD_TTL_S)) as demo:
        gr.Markdown("# colorcore studio\nColourise gray photos with several models side by side, "
                    "compare them against the truth and look inside the classifiers.", elem_id="cc-header")
        if not choices:
            gr.Markdown("**No weights are installed.** Train and export a model into `assets/weights` "
                        "(or set `COLORCORE_WEIGHTS_DIR`), then restart the studio.")

        with gr.Tabs():
            # ------------------------------------------------------------------ studio
            with gr.Tab("Studio", id="studio"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=330, elem_classes="cc-sidebar"):
                        photo = CheckedImage(label="Photo", type="pil", image_mode="RGB", format="png",
                                             height=260, sources=["upload", "clipboard", "webcam"],
                                             elem_id="cc-photo")
                        run = gr.Button("Colourise", variant="primary", elem_id="cc-run")
                        with gr.Accordion("Ground truth (optional)", open=False) as truth_box:
                            truth = CheckedImage(label="Colour original", type="pil", image_mode="RGB",
                                                 format="png", height=200, sources=["upload", "clipboard"],
                                                 elem_id="cc-truth")
                        gr.Examples(examples=[[str(p)] for p in _examples()], inputs=[photo],
                                    label="Examples: colour photos from the validation set",
                                    examples_per_page=8)
                        with gr.Accordion("Several photos at once (batch)", open=False):
                            files = gr.File(label="Drop photos", file_count="multiple", file_types=["image"],
                                            height=110, elem_id="cc-files")
                            batch_gallery = gr.Gallery(label="Click one to open it", columns=5, height=140,
                                                       allow_preview=False, visible=False)
                            batch_run = gr.Button("Colourise all photos → PNG files")

                    with gr.Column(scale=2, min_width=300, elem_classes="cc-sidebar"):
                        models = gr.CheckboxGroup(pairs, value=selected, elem_id="cc-models",
                                                  label=f"Models (1 to {studio.MAX_MODELS})")
                        method = gr.Radio([(v, k) for k, v in studio.DECODE_METHODS.items()],
                                          value="annealed",
                                          label="Decoding of 313-bin models", visible=vis.method,
                                          elem_id="cc-method")
                        temperature = gr.Slider(studio.TEMPERATURE_MIN, studio.TEMPERATURE_MAX,
                                                value=studio.TEMPERATURE_DEFAULT, step=0.01,
                                                label="Temperature",
                                                info="1 = plain mean (dull), towards 0 = mode (vivid); "
                                                "Zhang et al. use 0.38",
                                                visible=vis.temperature, elem_id="cc-temperature")
                        top_k = gr.Slider(studio.TOP_K_MIN, studio.TOP_K_MAX, value=studio.TOP_K_DEFAULT,
                                          step=1, label="Top-k", info="average of the k likeliest colours",
                                          visible=vis.top_k,
                                          elem_id="cc-topk")
                        bins = gr.Radio(list(vis.bins) or list(studio.PALETTE_BINS),
                                        value=24 if 24 in vis.bins or not vis.bins else vis.bins[0],
                                        label="Palette colours", info="picks the matching palette weights",
                                        visible=bool(vis.bins), elem_id="cc-bins")
                        as_trained = gr.Checkbox(value=True, label="Run each model at its training size",
                                                 elem_id="cc-as-trained")
                        size = gr.Slider(studio.SIZE_MIN, studio.SIZE_MAX, value=studio.SIZE_DEFAULT,
                                         step=studio.SIZE_STEP, label="Processing size (px)",
                                         interactive=False,
                                         info="the output keeps the photo's own resolution",
                                         elem_id="cc-size")
                        with gr.Accordion("Colour hints for user-guided models", open=True,
                                          visible=vis.hints) as hints_box:
                            editor = gr.ImageEditor(
                                label="Paint colour strokes on the photo", type="numpy", image_mode="RGBA",
                                sources=[], transforms=[], height=300, layers=False, elem_id="cc-hints",
                                brush=gr.Brush(default_size=6, color_mode="defaults", colors=[
                                    "#d62828", "#f77f00", "#fcbf49", "#2a9d8f", "#3a86ff", "#8338ec",
                                    "#6a994e", "#c9a227"]),
                            )

                    with gr.Column(scale=5, min_width=480):
                        empty = gr.Markdown("Pick a photo and one or more models, then press **Colourise**.",
                                            elem_id="cc-empty")
                        slots, sliders = [], []
                        for row_index in range(2):
                            with gr.Row(visible=False) as row:
                                for i in range(3):
                                    with gr.Column(visible=False, min_width=200,
                                                   elem_classes="cc-slot") as slot:
                                        sliders.append(gr.ImageSlider(
                                            label=f"Model {3 * row_index + i + 1}", type="pil", format="png",
                                            max_height=420, elem_id=f"cc-slider-{3 * row_index + i}"))
                                    slots.append(slot)
                            slots.append(row)
                        metrics = gr.Dataframe(label="Metrics", interactive=False, wrap=True, visible=False,
                                               elem_id="cc-metrics")
                        results = gr.File(label="Download results (PNG, original resolution)",
                                          file_count="multiple", interactive=False, visible=False,
                                          elem_id="cc-downloads")

            # ------------------------------------------------------------------ classroom
            with gr.Tab("Classroom", id="classroom"):
                gr.Markdown(studio.EXPLANATION)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=300):
                        cls_model = gr.Dropdown(classifiers, value=classifiers[0][1] if classifiers else None,
                                                label="Classifier to inspect", elem_id="cc-cls-model")
                        cls_image = gr.Image(label="Click a pixel of the photo (from the Studio tab)",
                                             type="pil", interactive=False, height=320, format="png",
                                             elem_id="cc-cls-image")
                        cls_summary = gr.Markdown("", elem_id="cc-cls-summary")
                    with gr.Column(scale=3, min_width=420):
                        cls_plot = gr.Plot(label="Predicted distribution over the ab plane", show_label=False,
                                           elem_id="cc-plot")
                sweep_run = gr.Button("Temperature sweep: T = 1, 0.77, 0.58, 0.38, 0.29, 0.14, 0 (mode)")
                sweep = gr.Gallery(label="From the mean (T = 1) to the mode (T = 0)", columns=7, height=230,
                                   object_fit="contain", elem_id="cc-sweep")
                curves_fig = studio.training_curves_figure()
                gr.Markdown("### Training curves of the bundled models" + (
                    "" if curves_fig is not None else "\nNo bundled weights carry a training history yet."))
                gr.Plot(value=curves_fig, label="Training curves", show_label=False, visible=curves_fig
                        is not None)

            build_video_tab()  # video_tab.py: upload a clip, colourise it without flicker

            # ------------------------------------------------------------------ API help
            with gr.Tab("API", id="api"):
                gr.Markdown(API_HELP.replace("MODEL", selected[0] if selected else "MODEL"))

        # Hidden components behind the `colorize` API endpoint (one model, original resolution out).
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

        # ---------------------------------------------------------------------- callbacks
        @_guard
        def on_photo(image: Image.Image | None, current_truth: Image.Image | None):
            gray, new_truth = studio.split_photo(image, current_truth)
            if image is not None and new_truth is not None and new_truth is not current_truth:
                gr.Info("Colour photo: the models get its gray version; the photo is the ground truth.")
            editor_value = {"background": gray, "layers": [], "composite": None} if gray is not None else None
            unchanged = new_truth is current_truth
            # Writing the gray image back fires .change again; skip it when it is already gray.
            return (gr.skip() if image is None or unchanged else gray,
                    gr.skip() if unchanged else new_truth,
                    gr.Accordion(open=True) if new_truth is not None and not unchanged else gr.skip(),
                    editor_value, studio.zoomed(gray))

        photo.change(on_photo, [photo, truth], [photo, truth, truth_box, editor, cls_image],
                     api_visibility="private", show_progress="hidden")

        def on_models(keys: list[str], mode: str):
            v = studio.knob_visibility(keys or [], mode, choices)
            bin_choices = list(v.bins) or list(studio.PALETTE_BINS)
            return (gr.update(visible=v.method), gr.update(visible=v.temperature), gr.update(visible=v.top_k),
                    gr.update(visible=bool(v.bins), choices=bin_choices,
                              value=24 if 24 in bin_choices else bin_choices[0]),
                    gr.Accordion(visible=v.hints))

        models.change(on_models, [models, method], [method, temperature, top_k, bins, hints_box],
                      api_visibility="private", show_progress="hidden")

        def on_method(keys: list[str], mode: str):
            v = studio.knob_visibility(keys or [], mode, choices)
            return gr.update(visible=v.temperature), gr.update(visible=v.top_k)

        method.change(on_method, [models, method], [temperature, top_k], api_visibility="private",
                      show_progress="hidden")

        @_guard
        def on_run(image, truth_image, keys, mode, t, k, b, auto, s, editor_value):
            knobs = _knobs(mode, t, k, b, auto, s)
            hints = None
            if image is not None and editor_value and editor_value.get("layers"):
                hints = studio.hints_from_layer(editor_value["layers"][0], image.size)
            comparison = studio.run_comparison(image, keys or [], knobs, truth=truth_image, hints=hints,
                                               choices=choices)
            for note in comparison.notes:
                gr.Warning(note)
            before = comparison.gray.convert("RGB")
            placed = dict(zip(_slot_positions(len(comparison.results)), comparison.results, strict=True))
            updates: list[Any] = []
            for row_index in range(2):
                row_slots = range(3 * row_index, 3 * row_index + 3)
                updates.extend(gr.Column(visible=j in placed) for j in row_slots)
                updates.append(gr.Row(visible=any(j in placed for j in row_slots)))
            slider_updates = [
                gr.ImageSlider(value=(before, r.image), label=f"{r.title} · {r.elapsed:.2f} s")
                if (r := placed.get(j)) is not None else gr.ImageSlider(value=None)
                for j in range(studio.MAX_MODELS)
            ]
            table = studio.metrics_table(comparison)
            paths = studio.save_results(comparison, downloads.new_folder(), "photo")
            has_truth = comparison.truth is not None
            label = (f"Metrics against the ground truth ({studio.metric_units()}; time = inference only)"
                     if has_truth else "Inference time (add a ground truth for metrics)")
            data = {"headers": list(table.headers), "data": [list(r) for r in table.rows]}
            frame = gr.Dataframe(value=data, visible=True, label=label)
            return (gr.Markdown(visible=False), *updates, *slider_updates, frame,
                    gr.File(value=[str(p) for p in paths], visible=True))

        as_trained.change(lambda auto: gr.Slider(interactive=not auto), as_trained, size,
                          api_visibility="private", show_progress="hidden")

        run.click(on_run, [photo, truth, models, method, temperature, top_k, bins, as_trained, size, editor],
                  [empty, *slots, *sliders, metrics, results], api_visibility="private",
                  scroll_to_output=False)

        def on_files(paths: list[str] | None):
            paths = list(paths or [])
            if not paths:
                return gr.Gallery(value=None, visible=False), gr.skip()
            first = _open_or_warn(paths[0])
            return gr.Gallery(value=paths, visible=True), first if first is not None else gr.skip()

        files.change(on_files, files, [batch_gallery, photo], api_visibility="private")

        def on_pick(paths: list[str] | None, evt: gr.SelectData):
            paths = list(paths or [])
            if evt.index is None or not 0 <= evt.index < len(paths):
                return gr.skip()
            image = _open_or_warn(paths[evt.index])
            return image if image is not None else gr.skip()

        batch_gallery.select(on_pick, files, photo, api_visibility="private")

        @_guard
        def on_batch(paths, keys, mode, t, k, b, auto, s):
            out = studio.colorize_batch(list(paths or []), keys or [], _knobs(mode, t, k, b, auto, s),
                                        downloads.new_folder(), choices=choices)
            gr.Info(f"Wrote {len(out)} PNG files.")
            return gr.File(value=[str(p) for p in out], visible=True)

        batch_run.click(on_batch, [files, models, method, temperature, top_k, bins, as_trained, size],
                        results, api_visibility="private")

        @_guard
        def on_pixel(key, image, shown, truth_image, t, auto, s, b, evt: gr.SelectData):
            if not key:
                raise gr.Error("No classifier is installed to inspect.")
            if image is None or shown is None:
                raise gr.Error("Upload a photo in the Studio tab first.")
            # The classroom shows the photo enlarged; map the click back to the photo's pixels.
            x, y = studio.click_to_pixel(*evt.index, shown.size, image.size)
            view = studio.pixel_distribution(key, image, x, y, temperature=float(t), size=_size(auto, s),
                                             bins=int(b) if b else None, truth=truth_image)
            return view.figure, view.summary

        cls_image.select(on_pixel, [cls_model, photo, cls_image, truth, temperature, as_trained, size, bins],
                         [cls_plot, cls_summary], api_visibility="private")

        @_guard
        def on_sweep(key, image, auto, s, b):
            if not key:
                raise gr.Error("No classifier is installed for the sweep.")
            return studio.temperature_sweep(key, image, size=_size(auto, s), bins=int(b) if b else None)

        sweep_run.click(on_sweep, [cls_model, photo, as_trained, size, bins], sweep, api_visibility="private")

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
    return demo


def _open_or_warn(path: str) -> Image.Image | None:
    try:
        return load_image(path)
    except ColorcoreError as exc:
        gr.Warning(str(exc))
        return None


API_HELP = """\
### Call the studio from Python

Every model is also an HTTP endpoint, `colorize`, that returns the colourised photo at its original
resolution. Arguments: image, model (a name from the Studio's model list), temperature
(313-bin models; 0 = mode), top_k (0 = off; palette and 313-bin models), processing size (128 to 512,
or 0 for the model's training size), and optionally output_format: `auto` (default: a JPEG upload gets
a quality-95 JPEG back, anything else a PNG), `jpeg` or `png`.

```python
from gradio_client import Client, handle_file

client = Client("http://127.0.0.1:7860/")
out_path = client.predict(
    handle_file("old_photo.jpg"),  # image
    "MODEL",                       # model
    0.38,                          # temperature
    0,                             # top_k
    256,                           # processing size
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
