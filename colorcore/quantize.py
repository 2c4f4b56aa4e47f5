"""ab quantisation and decoding: the 313-bin gamut, soft encoding, class rebalancing, decoders, palettes.

Shapes follow ``(*, C, H, W)``: ab maps are ``(*, 2, H, W)`` in physical Lab units, logits and
probabilities ``(*, Q, H, W)``, and bin centres ``(Q, 2)``.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from colorcore.color import lab_to_rgb
from colorcore.errors import ConfigError

ZHANG_TEMPERATURE = 0.38


@lru_cache(maxsize=4)
def _gamut_np(grid: int, limit: int, lightness_steps: int) -> tuple[tuple[float, float], ...]:
    axis = torch.arange(-limit, limit + 1, grid, dtype=torch.float64)
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    a, b = a.flatten(), b.flatten()
    L = torch.linspace(0, 100, lightness_steps, dtype=torch.float64)
    lab = torch.stack(
        (L[:, None].expand(-1, a.numel()), a[None].expand(L.numel(), -1), b[None].expand(L.numel(), -1)), dim=0
    )[:, :, :, None]  # (3, nL, Nab, 1)
    rgb = lab_to_rgb(lab, clip=False)[..., 0]
    inside = ((rgb >= -1e-6) & (rgb <= 1 + 1e-6)).all(dim=0).any(dim=0)
    return tuple((float(x), float(y)) for x, y in zip(a[inside], b[inside], strict=True))


def gamut_centers(grid: int = 10, limit: int = 110, lightness_steps: int = 101) -> Tensor:
    """Centres of the in-gamut ab bins of a ``grid``-spaced lattice over ``[-limit, limit]^2``.

    A bin is kept when its centre is an sRGB colour for at least one lightness L in [0, 100].
    Returns a ``(Q, 2)`` float32 tensor (Q = 313 for the defaults, as in Zhang et al. 2016).
    """
    return torch.tensor(_gamut_np(grid, limit, lightness_steps), dtype=torch.float32)


def _validate(logits: Tensor, centers: Tensor) -> None:
    if centers.dim() != 2 or centers.shape[1] != 2:
        raise ConfigError(f"bin centres must be (Q, 2), got {tuple(centers.shape)}")
    if logits.dim() < 3 or logits.shape[-3] != centers.shape[0]:
        raise ConfigError(f"logits must be (*, {centers.shape[0]}, H, W), got {tuple(logits.shape)}")


def _expect(probs: Tensor, centers: Tensor) -> Tensor:
    return torch.einsum("...qhw,qc->...chw", probs, centers.to(probs.dtype))


def decode_annealed_mean(logits: Tensor, centers: Tensor, temperature: float = ZHANG_TEMPERATURE) -> Tensor:
    """Annealed mean: softmax(logits / T) weighted mean of bin centres, ``(*, Q, H, W)`` -> ``(*, 2, H, W)``.

    T = 1 gives the plain mean of the predicted distribution; T -> 0 approaches the mode.
    """
    _validate(logits, centers)
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    probs = torch.softmax(logits.float() / temperature, dim=-3)
    return _expect(probs, centers).to(logits.dtype)


def decode_mode(logits: Tensor, centers: Tensor) -> Tensor:
    """The centre of the most probable bin at each pixel, ``(*, Q, H, W)`` -> ``(*, 2, H, W)``."""
    _validate(logits, centers)
    idx = logits.argmax(dim=-3)  # (*, H, W)
    return centers.to(logits.dtype)[idx].movedim(-1, -3)


def decode_top_k(logits: Tensor, centers: Tensor, k: int) -> Tensor:
    """Probability-weighted mean of the ``k`` most probable bins' centres (k = 1 is the mode)."""
    _validate(logits, centers)
    q = centers.shape[0]
    if not isinstance(k, int) or not 1 <= k <= q:
        raise ConfigError(f"top_k must be an integer in [1, {q}], got {k!r}")
    top_logits, top_idx = logits.float().topk(k, dim=-3)
    weights = torch.softmax(top_logits, dim=-3)  # renormalised probabilities of the top k
    colours = centers.float()[top_idx]  # (*, k, H, W, 2)
    return (weights.unsqueeze(-1) * colours).sum(dim=-4).movedim(-1, -3).to(logits.dtype)


class ABDecoder(nn.Module):
    """Turns class logits into ab; holds the bin centres (gamut or palette) as a buffer.

    ``forward(logits, temperature=None, top_k=None, method=None)``: ``method`` is ``"annealed"``,
    ``"mode"`` or ``"top_k"``; by default ``top_k`` wins when given, else the annealed mean at
    ``temperature`` (default ``self.default_temperature``), or the mode when that default is 0.
    """

    def __init__(self, centers: Tensor, default_temperature: float = ZHANG_TEMPERATURE, default_top_k: int = 0):
        super().__init__()
        self.register_buffer("centers", centers.detach().clone().float(), persistent=True)
        self.default_temperature = float(default_temperature)
        self.default_top_k = int(default_top_k)

    @property
    def num_bins(self) -> int:
        return int(self.centers.shape[0])

    def forward(
        self, logits: Tensor, temperature: float | None = None, top_k: int | None = None, method: str | None = None
    ) -> Tensor:
        if method is None:
            if top_k:
                method = "top_k"
            elif temperature is not None:
                method = "annealed"
            elif self.default_top_k:
                method, top_k = "top_k", self.default_top_k
            else:
                method = "annealed" if self.default_temperature > 0 else "mode"
        if method == "annealed":
            t = self.default_temperature if temperature is None else temperature
            return decode_annealed_mean(logits, self.centers, t)
        if method == "mode":
            return decode_mode(logits, self.centers)
        if method == "top_k":
            return decode_top_k(logits, self.centers, top_k if top_k else self.default_top_k or 1)
        raise ConfigError(f"unknown decoding method {method!r}; use 'annealed', 'mode' or 'top_k'")
