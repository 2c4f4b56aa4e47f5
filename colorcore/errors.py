"""One exception hierarchy, so every front end can turn failures into a plain one-line message."""

from __future__ import annotations


class ColorcoreError(Exception):
    """Base class of every error a user can cause; its message is meant to be shown as is."""


class ImageLoadError(ColorcoreError):
    """A file or byte string is not an image we can open (corrupt, truncated, too large, wrong type)."""


class ModelNotFoundError(ColorcoreError, KeyError):
    """An unknown model or weights name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(ColorcoreError):
    """Weights are missing, fail their hash check, are of an unknown format or do not fit the model."""


class ConfigError(ColorcoreError, ValueError):
    """A model config or a decoding argument is invalid."""
