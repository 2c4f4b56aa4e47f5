"""The interface every model family implements.

A model takes L of shape ``(B, 1, H, W)`` in [0, 100] and its ``forward`` returns either physical ab
``(B, 2, H, W)`` (``task = "regression"`` or ``"gan"``) or class logits ``(B, Q, h, w)``
(``task = "classification"``) that ``self.decoder`` turns into ab. ``predict_ab`` hides that difference
and always returns ab at the input's H x W, which is all the pipeline needs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from colorcore.errors import ConfigError
from colorcore.quantize import ABDecoder

L_CENTER = 50.0
L_SCALE = 100.0
AB_SCALE = 110.0


def normalize_l(l: Tensor) -> Tensor:
    """Zhang's input normalisation: L in [0, 100] -> (L - 50) / 100 in [-0.5, 0.5]."""
    return (l - L_CENTER) / L_SCALE


class ColorModel(nn.Module):
    """Base class: subclasses set the class attributes and implement ``forward``."""

    task: ClassVar[str] = "regression"
    stride: ClassVar[int] = 1  # H and W must be multiples of this
    default_size: ClassVar[int] = 256  # working size used by the pipeline when weights do not say
    supports_hints: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.decoder: ABDecoder | None = None

    def check_input(self, l: Tensor) -> None:
        """Raise :class:`ConfigError` unless ``l`` is ``(B, 1, H, W)`` with H, W multiples of ``stride``."""
        if l.dim() != 4 or l.shape[1] != 1:
            raise ConfigError(f"{type(self).__name__} expects L of shape (B, 1, H, W), got {tuple(l.shape)}")
        h, w = l.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ConfigError(
                f"{type(self).__name__} needs H and W divisible by {self.stride}, got {h}x{w}"
            )

    def predict_ab_and_logits(
        self,
        l: Tensor,
        *,
        temperature: float | None = None,
        top_k: int | None = None,
        method: str | None = None,
        hints_ab: Tensor | None = None,
        hints_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Physical ab ``(B, 2, H, W)`` at the input's size, and the class logits ``(B, Q, h, w)`` of
        classifiers (None for other models) from the same forward pass; decoding knobs apply to
        classifiers only."""
        self.check_input(l)
        ab, logits = self._ab_and_logits(l, temperature=temperature, top_k=top_k, method=method,
                                         hints_ab=hints_ab, hints_mask=hints_mask)
        if ab.shape[-2:] != l.shape[-2:]:
            ab = F.interpolate(ab, size=l.shape[-2:], mode="bilinear", align_corners=False)
        return ab, logits

    def _ab_and_logits(
        self,
        l: Tensor,
        *,
        temperature: float | None,
        top_k: int | None,
        method: str | None,
        hints_ab: Tensor | None,
        hints_mask: Tensor | None,
    ) -> tuple[Tensor, Tensor | None]:
        """ab at the model's output size and the logits (None for regressors); families with more than
        one head override this, not :meth:`predict_ab_and_logits`."""
        out = self(l, hints_ab=hints_ab, hints_mask=hints_mask) if self.supports_hints else self(l)
        if self.decoder is None:
            return out, None
        return self.decoder(out, temperature=temperature, top_k=top_k, method=method), out

    def predict_ab(self, l: Tensor, **knobs: Any) -> Tensor:
        """Physical ab ``(B, 2, H, W)`` at the input's size (knobs as in :meth:`predict_ab_and_logits`)."""
        return self.predict_ab_and_logits(l, **knobs)[0]
