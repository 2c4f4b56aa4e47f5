"""The model zoo: importing this package registers every family (one module each)."""

from colorcore.models import baseline  # noqa: F401
from colorcore.models.base import ColorModel

__all__ = ["ColorModel"]
