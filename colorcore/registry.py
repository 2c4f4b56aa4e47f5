"""Model registry: names map to a model class plus its default config (torchvision/timm style).

Weights are data, not code: published weights are declared next to the model with
``register_model(..., published=...)`` and bundled weights are discovered from the JSON cards in
``assets/weights`` (see :mod:`colorcore.weights`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from colorcore.errors import ConfigError, ModelNotFoundError

M = TypeVar("M", bound=type[nn.Module])


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model name."""

    name: str
    model_cls: type[nn.Module]
    default_config: Any  # a frozen dataclass instance
    task: str  # "regression" | "classification" | "gan"
    description: str
    published: tuple[Any, ...] = ()  # WeightsEntry objects with download URLs


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    config: Any,
    task: str,
    description: str = "",
    published: tuple[Any, ...] = (),
) -> Callable[[M], M]:
    """Class decorator that registers ``cls(config)`` under ``name``; a duplicate name raises."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"register_model({name!r}): config must be a dataclass instance")
    if task not in {"regression", "classification", "gan"}:
        raise ValueError(f"register_model({name!r}): unknown task {task!r}")

    def decorator(cls: M) -> M:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name].model_cls}")
        _REGISTRY[name] = ModelSpec(name, cls, config, task, description or (cls.__doc__ or "").strip()
                                    .split("\n")[0], tuple(published))
        return cls

    return decorator


def _ensure_zoo_imported() -> None:
    # Importing the package runs every @register_model decorator once.
    import colorcore.models  # noqa: F401


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    _ensure_zoo_imported()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``, or a :class:`ModelNotFoundError` listing the known names."""
    _ensure_zoo_imported()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ModelNotFoundError(f"unknown model {name!r}; known models: {known}") from None


def build_config(name: str, **overrides: Any) -> Any:
    """The default config of ``name`` with ``overrides`` applied; unknown keys raise :class:`ConfigError`."""
    spec = get_spec(name)
    fields = {f.name for f in dataclasses.fields(spec.default_config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(
            f"model {name!r} has no config option(s) {', '.join(unknown)}; "
            f"options: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(spec.default_config, **_coerce(spec.default_config, overrides))


def _coerce(default: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    # JSON round trips turn tuples into lists; configs are frozen and hashable, so restore tuples.
    out = {}
    for key, value in overrides.items():
        if isinstance(getattr(default, key), tuple) and isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        out[key] = value
    return out


def build_model(name: str, config: Any | None = None, **overrides: Any) -> nn.Module:
    """Instantiate ``name`` with an explicit config or the default config plus ``overrides``."""
    spec = get_spec(name)
    cfg = config if config is not None else build_config(name, **overrides)
    try:
        return spec.model_cls(cfg)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid config for model {name!r}: {exc}") from exc


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass."""
    return dataclasses.asdict(config)
