"""``python -m colorcore {models, colorize, colorize-video, evaluate}``: the command-line front end.

User errors (unknown models, missing weights or files, bad images) end with a one-line ``error: ...`` on
stderr and exit status 1; malformed arguments exit with status 2 (argparse). No traceback is shown for
either; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from colorcore.errors import ColorcoreError, ConfigError, ImageLoadError
from colorcore.io import atomic_write_bytes, atomic_write_text, iter_image_files, load_image, save_png
from colorcore.models.litecolor import has_regression_head
from colorcore.pipeline import DECODE_METHODS, MAX_SIZE, MIN_SIZE, Colorizer
from colorcore.quantize import ZHANG_TEMPERATURE

GRAY_LABEL = "gray (ab = 0)"
FIGURE_PHOTOS = 8
FIGURE_THUMB = 256  # longest side of each figure cell, pixels


# -- argument types (failures become argparse errors, exit status 2) ---------------------------------


def _positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _unit_float(text: str) -> float:
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _seconds(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def _size(text: str) -> int:
    value = _positive_int(text)
    if not MIN_SIZE <= value <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"must be in [{MIN_SIZE}, {MAX_SIZE}], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m colorcore", description="Colourise grayscale photos.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered models and their weights")
    p.set_defaults(func=_cmd_models)

    def add_common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--size", type=_size, default=None,
                       help=f"working size in pixels, {MIN_SIZE}-{MAX_SIZE} (default: the size the weights "
                            "were trained at)")
        p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run the model")

    p = sub.add_parser("colorize", help="colourise image files or folders into PNGs")
    p.add_argument("inputs", nargs="+", metavar="INPUT", type=Path, help="image files or folders (recursive)")
    p.add_argument("--model", required=True, help="model or weights name (see `models`), or a weights file")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    p.add_argument("--temperature", type=_positive_float, default=None,
                   help="annealed-mean temperature for classification models (default: the model's)")
    p.add_argument("--top-k", type=_positive_int, default=None,
                   help="decode with the mean of the k most probable colours (classification models)")
    p.add_argument("--method", choices=DECODE_METHODS, default=None,
                   help="decoder for classification models (default: the model's)")
    add_common(p)
    p.set_defaults(func=_cmd_colorize)

    p = sub.add_parser("colorize-video", help="colourise a video clip into an H.264 MP4 (steady colours)")
    p.add_argument("input", metavar="INPUT", type=Path, help="a video file (any container FFmpeg reads)")
    p.add_argument("--model", required=True, help="model or weights name (see `models`), or a weights file")
    p.add_argument("--out", required=True, type=Path, help="output video (.mp4, .m4v, .mov or .mkv)")
    p.add_argument("--stability", type=_unit_float, default=0.9,
                   help="0 colours each frame on its own; up to 1 carries colours along the motion "
                        "(default 0.9)")
    p.add_argument("--start", type=_seconds, default=0.0, help="start this many seconds into the clip")
    p.add_argument("--duration", type=_positive_float, default=None, help="colourise only this many seconds")
    p.add_argument("--temperature", type=_positive_float, default=None,
                   help="annealed-mean temperature for classification models (default: the model's)")
    add_common(p)
    p.set_defaults(func=_cmd_colorize_video)

    p = sub.add_parser("evaluate", help="score models against colour photos (grayed by the pipeline)")
    p.add_argument("--data", required=True, type=Path, help="folder of colour photos (the ground truth)")
    p.add_argument("--models", required=True,
                   help="comma-separated model or weights names, or `all` (every available weights set); "
                        "NAME:faithful, NAME:vivid (T = 0.38), NAME:regression or NAME:tX (temperature X) "
                        "picks a decode")
    p.add_argument("--limit", type=_positive_int, default=None, help="use only the first N photos (sorted)")
    p.add_argument("--out", type=Path, default=None, help="also write a markdown report here")
    p.add_argument("--figure", type=Path, default=None,
                   help=f"write a comparison grid (PNG) of the first {FIGURE_PHOTOS} photos here")
    p.add_argument("--json", type=Path, default=None,
                   help="also write the mean metrics per model (and the gray baseline) as JSON here")
    add_common(p)
    p.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argument error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ColorcoreError, OSError) as exc:
        # str() of an OSError without our own message still names the file and the reason.
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# -- models ------------------------------------------------------------------------------------------


def _cmd_models(args: argparse.Namespace) -> int:
    from colorcore.registry import get_spec, list_models
    from colorcore.weights import available_weights, model_info, published_cache_path

    header = ("name", "task", "params", "hints", "weights", "weights names")
    rows, notes = [], []
    for name in list_models():
        spec = get_spec(name)
        try:  # model_info builds the model to count parameters, which can fail (e.g. a missing palette)
            info = model_info(name)
            params, hints = _human_count(info["params"]), "yes" if info["supports_hints"] else "no"
        except ColorcoreError as exc:
            params, hints = "?", "yes" if getattr(spec.model_cls, "supports_hints", False) else "no"
            notes.append(f"{name}: {exc}")
        names, have = [], False
        for entry in available_weights(name):
            if entry.file is not None:
                names.append(entry.name)
                have = True
            elif published_cache_path(entry).is_file():
                names.append(f"{entry.name} (published, downloaded)")
                have = True
            else:
                names.append(f"{entry.name} (published, not downloaded)")
        status = "yes" if have else ("download" if names else "no")
        rows.append((name, spec.task, params, hints, status, ", ".join(names) or "-"))
    print(_aligned(header, rows))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _human_count(n: int) -> str:
    for unit, scale in (("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(n)


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )


# -- colorize ----------------------------------------------------------------------------------------


def _output_paths(files: Sequence[Path], out_dir: Path) -> dict[Path, Path]:
    """``stem.png`` in ``out_dir`` for each file; clashing stems get ``-2``, ``-3`` ... appended."""
    taken: set[str] = set()
    out = {}
    for f in files:
        name, n = f"{f.stem}.png", 1
        while name.lower() in taken:
            n += 1
            name = f"{f.stem}-{n}.png"
        taken.add(name.lower())
        out[f] = out_dir / name
    inputs = {f.resolve() for f in files}
    for f, dest in out.items():
        if dest.resolve() in inputs:
            raise ConfigError(f"writing {dest} would overwrite the input {f}; choose another --out folder")
    return out


def _strip_path(reason: str, path: Path) -> str:
    prefix = f"{path}: "
    return reason[len(prefix):] if reason.startswith(prefix) else reason


def _cmd_colorize(args: argparse.Namespace) -> int:
    files = iter_image_files(args.inputs)
    if not files:
        raise ImageLoadError(f"no image files found in {', '.join(map(str, args.inputs))}")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} exists and is not a folder")
    destinations = _output_paths(files, args.out)
    colorizer = Colorizer(args.model, device=args.device, size=args.size)
    failures: list[tuple[Path, str]] = []
    for path in tqdm(files, desc=f"colorizing ({colorizer.name})", unit="img", disable=None, file=sys.stderr):
        try:
            image = colorizer.colorize(path, temperature=args.temperature, top_k=args.top_k,
                                       method=args.method)
            save_png(image, destinations[path])
        except (ImageLoadError, OSError) as exc:  # a bad file; ConfigError etc. stop the whole run
            failures.append((path, _strip_path(" ".join(str(exc).split()), path)))
    done = len(files) - len(failures)
    print(f"colorized {done} of {len(files)} image(s) into {args.out}")
    if failures:
        print(f"failed on {len(failures)} file(s):", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0


# -- colorize-video ----------------------------------------------------------------------------------


def _cmd_colorize_video(args: argparse.Namespace) -> int:
    from colorcore.video import VideoOptions, colorize_video, probe

    if args.input.exists() and args.out.exists() and args.input.resolve() == args.out.resolve():
        raise ConfigError(f"writing {args.out} would overwrite the input; choose another --out")
    options = VideoOptions(stability=args.stability, start=args.start, duration=args.duration,
                           temperature=args.temperature)
    info = probe(args.input)  # a bad file fails here, before the model is loaded
    colorizer = Colorizer(args.model, device=args.device, size=args.size)
    with tqdm(total=info.frames, desc=f"colorizing ({colorizer.name})", unit="frame", disable=None,
              file=sys.stderr) as bar:
        def progress(done: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        report = colorize_video(colorizer, args.input, args.out, options, progress=progress)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"colorized {report.frames} frame(s) ({report.width}x{report.height}, {report.cuts} cut(s), "
          f"audio {report.audio}) into {args.out} in {report.seconds:.1f} s ({report.fps:.1f} frames/s)")
    return 0


# -- evaluate ----------------------------------------------------------------------------------------


@dataclass
class _Row:
    label: str
    size: int | None
    scores: list[dict[str, float]] = field(default_factory=list)
    thumbs: list[np.ndarray] = field(default_factory=list)


# Named decodes of a model with two heads (litecolor): the 313-bin median, Zhang's annealed mean and the
# L1 regression head.
NAMED_DECODES = {"faithful": {"method": "faithful"}, "vivid": {"temperature": ZHANG_TEMPERATURE},
                 "regression": {"method": "regression"}}


def _decode_spec(text: str) -> tuple[str, dict[str, object]]:
    """``NAME[:DECODE]`` -> (NAME, decoding knobs); DECODE is a key of NAMED_DECODES or tX (temperature X)."""
    name, _, decode = text.partition(":")
    if not decode:
        return name, {}
    if decode in NAMED_DECODES:
        return name, dict(NAMED_DECODES[decode])
    if decode.startswith("t"):
        try:
            return name, {"temperature": float(decode[1:])}
        except ValueError:
            pass
    raise ConfigError(f"unknown decode {decode!r} in {text!r}; use {', '.join(NAMED_DECODES)} or tX "
                      "(e.g. t0.38)")


def _evaluation_models(
    spec: str, device: str, size: int | None
) -> tuple[list[tuple[str, Colorizer, dict[str, object]]], list[str]]:
    """(label, colorizer, decoding knobs) for ``--models`` and notes about what was skipped."""
    from colorcore.weights import available_weights, load_entry, published_cache_path

    notes: list[str] = []
    chosen: list[tuple[str, Colorizer, dict[str, object]]] = []
    if spec.strip() == "all":
        for entry in available_weights():
            if entry.file is None and not published_cache_path(entry).is_file():
                notes.append(f"skipped {entry.name}: published weights not downloaded (expected at "
                             f"{published_cache_path(entry)})")
                continue
            colorizer = Colorizer(load_entry(entry), device=device, size=size)
            if has_regression_head(colorizer.model):  # both heads get a row
                chosen += [(f"{entry.name}:{d}", colorizer, dict(k)) for d, k in NAMED_DECODES.items()]
            else:
                chosen.append((entry.name, colorizer, {}))
        if not chosen:
            raise ConfigError("no weights are available to evaluate; train and export a model first, or list "
                              "models explicitly with --models")
        return chosen, notes
    names = list(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    if not names:
        raise ConfigError("--models needs at least one model or weights name (or `all`)")
    loaded: dict[str, Colorizer] = {}
    for spec_name in names:
        name, decode = _decode_spec(spec_name)
        if name not in loaded:
            loaded[name] = Colorizer(name, device=device, size=size)
        colorizer = loaded[name]
        entry = getattr(colorizer.model, "weights_entry", None)
        label = spec_name if entry is None or entry.name == name else f"{spec_name} [{entry.name}]"
        chosen.append((label, colorizer, decode))
    return chosen, notes


def _thumb(rgb: np.ndarray) -> np.ndarray:
    im = Image.fromarray(rgb)
    im.thumbnail((FIGURE_THUMB, FIGURE_THUMB), Image.Resampling.LANCZOS)
    return np.asarray(im)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    try:
        from colorcore import metrics
    except ImportError as exc:
        raise ConfigError(f"evaluation needs colorcore.metrics, which cannot be imported: {exc}") from exc
    if not args.data.is_dir():
        raise FileNotFoundError(f"--data {args.data} is not a folder")
    files = iter_image_files([args.data])
    if args.limit is not None:
        files = files[: args.limit]
    if not files:
        raise ImageLoadError(f"no image files found in {args.data}")
    chosen, notes = _evaluation_models(args.models, args.device, args.size)
    rows = [_Row(label, c.size) for label, c, _ in chosen]
    gray_row, truth_row = _Row(GRAY_LABEL, None), _Row("ground truth", None)
    for path in tqdm(files, desc="evaluating", unit="photo", disable=None, file=sys.stderr):
        try:
            truth = np.asarray(load_image(path).convert("RGB"))
        except ImageLoadError as exc:
            notes.append(f"skipped {path}: {_strip_path(str(exc), path)}")
            continue
        keep = len(truth_row.thumbs) < FIGURE_PHOTOS
        gray = metrics.gray_baseline(truth)
        gray_row.scores.append(metrics.compute_all(gray, truth))
        for row, (_, colorizer, decode) in zip(rows, chosen, strict=True):
            pred = colorizer.predict(truth, **decode).rgb
            row.scores.append(metrics.compute_all(pred, truth))
            if keep:
                row.thumbs.append(_thumb(pred))
        if keep:
            gray_row.thumbs.append(_thumb(gray))
            truth_row.thumbs.append(_thumb(truth))
    if not truth_row.thumbs:
        raise ImageLoadError(f"none of the {len(files)} file(s) in {args.data} could be read")
    table = _metrics_table([*rows, gray_row], metrics.METRIC_INFO)
    print(table)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.figure is not None:
        _save_figure([gray_row, *rows, truth_row], args.figure)
        print(f"wrote {args.figure}")
    if args.out is not None:
        _write_report(args, table, len(gray_row.scores), notes)
        print(f"wrote {args.out}")
    if args.json is not None:
        summary = {
            "data": str(args.data), "photos": len(gray_row.scores),
            "models": {row.label: {"size": row.size, "metrics": _means(row.scores)} for row in rows},
            "gray": _means(gray_row.scores),
        }
        atomic_write_text(args.json, json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _means(scores: Sequence[dict[str, float]]) -> dict[str, float | None]:
    """Mean of each metric over photos, ignoring non-finite values (None when there are none)."""
    out: dict[str, float | None] = {}
    for key in dict.fromkeys(k for s in scores for k in s):
        values = np.array([s.get(key, np.nan) for s in scores], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[key] = round(float(finite.mean()), 6) if finite.size else None
    return out


def _metrics_table(rows: Sequence[_Row], info: dict[str, tuple[str, bool | None, str]]) -> str:
    """Markdown table of mean metrics per row, columns in ``METRIC_INFO`` order.

    Arrows say which direction is better; ``higher_is_better = None`` means closer to 0 is better (→0).
    """
    present = {k for row in rows for s in row.scores for k in s}
    keys = [k for k in info if k in present] + sorted(present - set(info))
    header = ["model", "size", "n"]
    for key in keys:
        label, higher, unit = info.get(key, (key, None, ""))
        arrow = {True: " ↑", False: " ↓"}.get(higher, " →0")  # type: ignore[arg-type]
        header.append(f"{label}{f' ({unit})' if unit else ''}{arrow}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in rows:
        cells = [row.label, str(row.size) if row.size else "-", str(len(row.scores))]
        means = _means(row.scores)
        cells += [f"{means[key]:.4g}" if means.get(key) is not None else "n/a" for key in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _save_figure(rows: Sequence[_Row], path: Path) -> None:
    """Grid: one row per entry of ``rows`` (gray input, models, ground truth), one column per photo."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    ncols = len(rows[-1].thumbs)
    fig = Figure(figsize=(2.2 * ncols + 1.2, 2.2 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.imshow(row.thumbs[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row.label, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".").lower() or "png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())


def _write_report(args: argparse.Namespace, table: str, n_photos: int, notes: list[str]) -> None:
    lines = [
        "# Colourisation evaluation", "",
        f"Ground truth: {n_photos} colour photo(s) from `{args.data}`, turned gray by the pipeline. "
        "Means over photos; arrows say whether higher or lower is better (→0: closer to 0 is better). "
        f"`{GRAY_LABEL}` keeps the true L and predicts no colour at all.", "",
        table, "",
    ]
    if args.figure is not None:
        link = os.path.relpath(args.figure.resolve(), args.out.resolve().parent)
        lines += [f"![gray input, one row per model, ground truth]({Path(link).as_posix()})", ""]
    if notes:
        lines += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    atomic_write_text(args.out, "\n".join(lines))


__all__ = ["build_parser", "main"]
