"""Weights as data: safetensors files with a JSON card, plus the two published Zhang ``.pth`` files.

Bundled weights live in ``assets/weights`` (or ``$COLORCORE_WEIGHTS_DIR``) as ``NAME.safetensors``
beside ``NAME.json``. The JSON card names the model, its config, the sha256 of the safetensors file,
the working input size, the colour set (313-bin gamut or k-means palette), training facts and metrics.

Nothing is ever unpickled except the two published ``.pth`` files, and those only through
``torch.load(weights_only=True)`` after their sha256 prefix has been checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from colorcore.errors import ConfigError, ModelNotFoundError, WeightsError
from colorcore.io import atomic_write_bytes, atomic_write_text
from colorcore.registry import build_config, build_model, config_to_dict, get_spec, list_models

FORMAT = "colorcore-weights/1"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WeightsEntry:
    """One set of weights for a registered model.

    Exactly one of ``file`` (a local safetensors path) or ``url`` (a published ``.pth``) is set.
    ``sha256`` is the full hex digest for bundled files and the published hash prefix for URLs.
    """

    name: str
    model: str
    config: dict[str, Any]
    sha256: str
    input_size: int
    colors: str  # "gamut313", "palette16", "palette24", "palette32" or "regression"
    file: Path | None = None
    url: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.file) if self.file is not None else str(self.url)


def weights_dir() -> Path:
    """Folder of bundled weights: ``$COLORCORE_WEIGHTS_DIR`` or ``<repo>/assets/weights``."""
    return Path(os.environ.get("COLORCORE_WEIGHTS_DIR", REPO_ROOT / "assets" / "weights"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_card(json_path: Path) -> WeightsEntry:
    """Parse a weights card; an unreadable or foreign card raises :class:`WeightsError`."""
    try:
        card = json.loads(Path(json_path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"cannot read weights card {json_path}: {exc}") from exc
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise WeightsError(f"{json_path} is not a colorcore weights card (format must be {FORMAT!r})")
    try:
        return WeightsEntry(
            name=str(card["name"]),
            model=str(card["model"]),
            config=dict(card["config"]),
            sha256=str(card["sha256"]),
            input_size=int(card["input_size"]),
            colors=str(card["colors"]),
            file=Path(json_path).with_suffix(".safetensors"),
            metrics=dict(card.get("metrics", {})),
            card=card,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"weights card {json_path} lacks a required field: {exc}") from exc


def bundled_weights(folder: Path | None = None) -> list[WeightsEntry]:
    """Every valid card in the weights folder, sorted by name (broken cards are skipped)."""
    folder = Path(folder) if folder is not None else weights_dir()
    entries = []
    for json_path in sorted(folder.glob("*.json")):
        try:
            entries.append(read_card(json_path))
        except WeightsError:
            continue
    return entries


def available_weights(model: str | None = None) -> list[WeightsEntry]:
    """Bundled entries first (default-marked ones leading), then published ones; optionally for one model."""
    bundled = sorted(bundled_weights(), key=lambda e: (not e.card.get("default", False), e.name))
    published = [entry for name in list_models() for entry in get_spec(name).published]
    return [e for e in bundled + published if model is None or e.model == model]


def find_weights(name: str) -> WeightsEntry | None:
    """The entry whose weights name is ``name``, if any."""
    return next((e for e in available_weights() if e.name == name), None)


def save_weights(
    model: nn.Module,
    path: str | Path,
    *,
    name: str,
    model_name: str,
    config: Any,
    input_size: int,
    colors: str,
    metrics: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
    half: bool = True,
) -> WeightsEntry:
    """Write ``path.safetensors`` and its ``path.json`` card atomically; returns the new entry.

    Float tensors are stored as fp16 when ``half`` (BatchNorm statistics stay fp32).
    """
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point() and "running_" not in key:
            value = value.half()
        tensors[key] = value
    st_path = path.with_suffix(".safetensors")
    metadata = {"format": FORMAT, "model": model_name}
    atomic_write_bytes(st_path, save(tensors, metadata=metadata))
    payload = dict(card or {})
    payload.update(
        format=FORMAT,
        name=name,
        model=model_name,
        config=config_to_dict(config) if not isinstance(config, dict) else config,
        sha256=sha256_file(st_path),
        input_size=int(input_size),
        colors=colors,
        metrics=metrics or {},
    )
    atomic_write_text(path.with_suffix(".json"), json.dumps(payload, indent=2) + "\n")
    return read_card(path.with_suffix(".json"))


def load_safetensors_entry(entry: WeightsEntry) -> nn.Module:
    """Rebuild the model from the card's config and load its tensors after the sha256 check."""
    assert entry.file is not None
    if not entry.file.is_file():
        raise WeightsError(f"weights file {entry.file} for {entry.name!r} is missing")
    actual = sha256_file(entry.file)
    if actual != entry.sha256:
        raise WeightsError(
            f"weights file {entry.file} fails its hash check (expected sha256 {entry.sha256[:12]}…, "
            f"got {actual[:12]}…); it is corrupt or was replaced"
        )
    try:
        tensors = load_file(str(entry.file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{entry.file} is not a readable safetensors file: {exc}") from exc
    model = build_model(entry.model, **without_backbone_download(entry.config))
    _load_state(model, tensors, entry.source)
    return model


# Config keys that make a model load ImageNet weights when built; a weights file already holds those tensors.
BACKBONE_WEIGHT_KEYS = ("encoder_weights", "backbone_weights")


def without_backbone_download(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ImageNet initialisation switched off, so loading bundled weights needs neither the
    backbone's package nor a download (the file overwrites every tensor anyway)."""
    return {k: None if k in BACKBONE_WEIGHT_KEYS else v for k, v in config.items()}


def _load_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    reference = model.state_dict()
    cast = {k: v.to(reference[k].dtype) if k in reference else v for k, v in tensors.items()}
    try:
        model.load_state_dict(cast, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(f"weights in {source} do not fit the model: {first}") from exc


def published_cache_path(entry: WeightsEntry) -> Path:
    assert entry.url is not None
    return Path(torch.hub.get_dir()) / "checkpoints" / entry.url.rsplit("/", 1)[-1]


def fetch_published(entry: WeightsEntry) -> Path:
    """Download a published ``.pth`` into the torch hub cache (once) and check its sha256 prefix."""
    dest = published_cache_path(entry)
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".partial")
        try:
            torch.hub.download_url_to_file(entry.url, str(tmp), hash_prefix=entry.sha256, progress=False)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            tmp.unlink(missing_ok=True)
            raise WeightsError(
                f"cannot download the published {entry.model} weights ({exc}). If this machine is "
                f"offline, download {entry.url} elsewhere and place it at {dest}"
            ) from exc
        except RuntimeError as exc:  # torch raises RuntimeError on a hash mismatch
            tmp.unlink(missing_ok=True)
            raise WeightsError(f"downloaded {entry.url} fails its hash check: {exc}") from exc
        shutil.move(str(tmp), dest)
    if not sha256_file(dest).startswith(entry.sha256):
        raise WeightsError(f"{dest} fails its hash check (sha256 must start with {entry.sha256}); delete it")
    return dest


def load_published_entry(entry: WeightsEntry, path: Path | None = None) -> nn.Module:
    """Load a published Zhang ``.pth`` with ``weights_only=True`` and ``strict=True``."""
    path = path if path is not None else fetch_published(entry)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything that is not plain tensors
        raise WeightsError(f"{path} is not a loadable tensor checkpoint: {exc}") from exc
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    model = build_model(entry.model, **entry.config)
    _load_state(model, state, str(path))
    return model


def load_weights_file(path: str | Path, model: str | None = None) -> nn.Module:
    """Load an explicit file: a colorcore ``.safetensors`` (with its card) or a published ``.pth``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in {".safetensors", ".json"}:
        card = path.with_suffix(".json")
        if not card.is_file():
            raise WeightsError(f"{path} has no card {card.name} beside it (model name and config live there)")
        entry = read_card(card)
        if model is not None and entry.model != model:
            raise WeightsError(f"{path} holds weights for {entry.model!r}, not {model!r}")
        return _tag(load_safetensors_entry(entry), entry)
    if suffix in {".pth", ".pt"}:
        candidates = [e for e in available_weights(model) if e.url is not None]
        for entry in candidates:
            if sha256_file(path).startswith(entry.sha256):
                return _tag(load_published_entry(entry, path), entry)
        raise WeightsError(
            f"{path} is not one of the published checkpoints; only those are unpickled (safely). "
            "Use a colorcore .safetensors file instead"
        )
    raise WeightsError(f"unknown weights format {suffix or '(no extension)'!r} for {path}; "
                       "expected .safetensors (or a published .pth)")


def _tag(model: nn.Module, entry: WeightsEntry) -> nn.Module:
    model.weights_entry = entry  # the pipeline reads input size and colour set from here
    return model.eval()


def load_entry(entry: WeightsEntry) -> nn.Module:
    loader = load_safetensors_entry if entry.file is not None else load_published_entry
    return _tag(loader(entry), entry)


def create_model(name: str, pretrained: bool | str | Path = False, **config: Any) -> nn.Module:
    """Build a registered model, optionally with weights.

    Args:
        name: a model name (``list_models()``) or a bundled weights name such as ``"unet-palette-24"``.
        pretrained: ``False`` for fresh weights; ``True`` for the best available weights of the model
            whose config matches ``config``; ``"published"`` for the published Zhang weights; a weights
            name; or a path to a weights file.
        **config: config overrides (fresh model) or selectors among weights (pretrained).
    """
    entry = find_weights(name)
    if entry is not None and name not in _model_names():
        return load_entry(entry) if not config else _select(entry.model, config, [entry])
    get_spec(name)  # clear error for unknown names
    if pretrained is False or pretrained is None:
        model = build_model(name, **config)
        model.weights_entry = None
        return model
    if pretrained is True:
        return _select(name, config, available_weights(name))
    if isinstance(pretrained, str) and not _looks_like_path(pretrained):
        if pretrained == "published":
            return _select(name, config, [e for e in available_weights(name) if e.url is not None])
        entry = find_weights(pretrained)
        if entry is None or entry.model != name:
            names = ", ".join(e.name for e in available_weights(name)) or "none"
            raise WeightsError(f"no weights named {pretrained!r} for model {name!r}; available: {names}")
        return load_entry(entry)
    return load_weights_file(pretrained, model=name)


def _looks_like_path(text: str) -> bool:
    # A weights name never has a folder or a file extension; anything else is a file, so that a wrong
    # file ("x.bin") gets the "unknown weights format" error instead of "no weights named".
    return (text.endswith((".safetensors", ".pth", ".pt", ".json")) or "/" in text or os.sep in text
            or Path(text).is_file())


def _model_names() -> set[str]:
    return set(list_models())


def _select(name: str, config: dict[str, Any], entries: list[WeightsEntry]) -> nn.Module:
    build_config(name, **config)  # validates option names
    for entry in entries:
        if all(_same(entry.config.get(k), v) for k, v in config.items()):
            return load_entry(entry)
    wanted = f" with {config}" if config else ""
    have = ", ".join(e.name for e in available_weights(name)) or "none"
    raise WeightsError(
        f"no weights for model {name!r}{wanted} (available: {have}). Train some with "
        f"`python -m training.train --model {name} ...` and export them, or use pretrained=False"
    )


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=list) == json.dumps(b, sort_keys=True, default=list)


@cache
def _param_count(name: str) -> int:
    return sum(p.numel() for p in build_model(name).parameters())


def model_info(name: str) -> dict[str, Any]:
    """Facts about a model: task, description, default config, parameter count and its weights."""
    if name not in _model_names():
        entry = find_weights(name)
        if entry is None:
            get_spec(name)  # raises ModelNotFoundError with the known names
            raise ModelNotFoundError(name)
        name = entry.model
    spec = get_spec(name)
    model_cls = spec.model_cls
    return {
        "name": name,
        "task": spec.task,
        "description": spec.description,
        "config": config_to_dict(spec.default_config),
        "params": _param_count(name),
        "stride": getattr(model_cls, "stride", 1),
        "supports_hints": getattr(model_cls, "supports_hints", False),
        "weights": [
            {"name": e.name, "source": e.source, "input_size": e.input_size, "colors": e.colors,
             "metrics": e.metrics, "bundled": e.file is not None}
            for e in available_weights(name)
        ],
    }


__all__ = [
    "FORMAT", "WeightsEntry", "available_weights", "bundled_weights", "create_model", "fetch_published",
    "find_weights", "load_weights_file", "model_info", "read_card", "save_weights", "sha256_file",
    "weights_dir", "ConfigError",
]
