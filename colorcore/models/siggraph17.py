"""``siggraph17``: Zhang et al., "Real-Time User-Guided Image Colorization with Learned Deep Priors" (2017).

A U-Net-like network with optional user hints: input = concat[(L - 50)/100, hint_ab/110, mask]
(zeros where there are no hints). At ``width=1`` the ``state_dict`` has exactly the names and shapes
of the published PyTorch checkpoint (``strict=True`` loading).

Training (implemented by the trainer): smooth-L1 on ab from ``model_out`` plus, optionally,
cross-entropy of ``model_class`` against the 23x23 ab grid (10-unit cells over [-110, 110]),
with hints drawn by :func:`simulate_hints` so the network learns both with and without hints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from colorcore.errors import ConfigError
from colorcore.models.base import AB_SCALE, ColorModel, normalize_l
from colorcore.models.blocks import check_width, scaled, zhang_block
from colorcore.registry import register_model
from colorcore.weights import WeightsEntry

NUM_CLASSES = 529  # a 23 x 23 grid of 10-unit ab cells


@dataclass(frozen=True)
class SIGGRAPH17Config:
    width: float = 1.0  # channel multiplier (min 8 channels per layer); 1.0 matches the published network


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))


def _short(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1))


@register_model(
    "siggraph17", config=SIGGRAPH17Config(), task="regression",
    description="Zhang et al. SIGGRAPH17 user-guided network (optional ab hints), ab regression",
    published=(WeightsEntry(
        name="siggraph17-published", model="siggraph17", config={}, sha256="df00044c", input_size=256,
        colors="gamut313", url="https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth"),),
)
class SIGGRAPH17(ColorModel):
    """SIGGRAPH17 network; ``forward(l, hints_ab=None, hints_mask=None)`` returns ab ``(B, 2, H, W)``."""

    stride = 8
    default_size = 256
    supports_hints = True

    def __init__(self, config: SIGGRAPH17Config) -> None:
        super().__init__(config)
        check_width(config.width)
        c1, c2, c3, c4 = (scaled(c, config.width) for c in (64, 128, 256, 512))
        self.model1 = zhang_block(4, c1, 2)
        self.model2 = zhang_block(c1, c2, 2)
        self.model3 = zhang_block(c2, c3, 3)
        self.model4 = zhang_block(c3, c4, 3)
        self.model5 = zhang_block(c4, c4, 3, dilation=2)
        self.model6 = zhang_block(c4, c4, 3, dilation=2)
        self.model7 = zhang_block(c4, c4, 3)
        self.model8up = _up(c4, c3)
        self.model3short8 = _short(c3, c3)
        self.model8 = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(c3, c3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c3, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(c3),
        )
        self.model9up = _up(c3, c2)
        self.model2short9 = _short(c2, c2)
        self.model9 = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(c2)
        )
        self.model10up = _up(c2, c2)
        self.model1short10 = _short(c1, c2)
        self.model10 = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(c2, c2, 3, padding=1), nn.LeakyReLU(0.2)
        )
        self.model_class = nn.Sequential(nn.Conv2d(c3, NUM_CLASSES, 1))
        self.model_out = nn.Sequential(nn.Conv2d(c2, 2, 1), nn.Tanh())

    def _input(self, l: Tensor, hints_ab: Tensor | None, hints_mask: Tensor | None) -> Tensor:
        b, _, h, w = l.shape
        if (hints_ab is None) != (hints_mask is None):
            raise ConfigError("give both hints_ab and hints_mask, or neither")
        if hints_ab is None or hints_mask is None:
            hints_ab, hints_mask = l.new_zeros(b, 2, h, w), l.new_zeros(b, 1, h, w)
        if hints_ab.shape != (b, 2, h, w) or hints_mask.shape != (b, 1, h, w):
            raise ConfigError(
                f"hints must be ab (B, 2, H, W) and mask (B, 1, H, W) matching L {tuple(l.shape)}, "
                f"got {tuple(hints_ab.shape)} and {tuple(hints_mask.shape)}"
            )
        # Hint colours outside the mask must be zero, as in training.
        return torch.cat((normalize_l(l), hints_ab * hints_mask / AB_SCALE, hints_mask), dim=1)

    def forward_with_classes(
        self, l: Tensor, hints_ab: Tensor | None = None, hints_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """ab ``(B, 2, H, W)`` in [-110, 110] and logits ``(B, 529, H/4, W/4)`` over the 23x23 ab grid."""
        conv1_2 = self.model1(self._input(l, hints_ab, hints_mask))
        conv2_2 = self.model2(conv1_2[:, :, ::2, ::2])
        conv3_3 = self.model3(conv2_2[:, :, ::2, ::2])
        conv4_3 = self.model4(conv3_3[:, :, ::2, ::2])
        conv7_3 = self.model7(self.model6(self.model5(conv4_3)))
        conv8_3 = self.model8(self.model8up(conv7_3) + self.model3short8(conv3_3))
        conv9_3 = self.model9(self.model9up(conv8_3) + self.model2short9(conv2_2))
        conv10_2 = self.model10(self.model10up(conv9_3) + self.model1short10(conv1_2))
        return AB_SCALE * self.model_out(conv10_2), self.model_class(conv8_3)

    def forward(self, l: Tensor, hints_ab: Tensor | None = None, hints_mask: Tensor | None = None) -> Tensor:
        """L ``(B, 1, H, W)`` in [0, 100] (+ optional hints) -> ab ``(B, 2, H, W)`` in [-110, 110]."""
        return self.forward_with_classes(l, hints_ab, hints_mask)[0]


def simulate_hints(
    ab: Tensor,
    *,
    p_geometric: float = 0.125,
    max_points: int = 64,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Random user hints for training, as in Zhang et al. 2017.

    Per image the number of hints N follows a geometric distribution on {0, 1, ...} with
    P(N = n) = p (1 - p)^n (so a fraction ``p_geometric`` of images get no hints and the network also
    learns to colourise unaided), capped at ``max_points``. Each hint is a square patch of side uniform
    in 1..9 at a uniform position; the patch reveals the mean ab of the ground truth over that patch.

    Args:
        ab: ground truth ``(B, 2, H, W)`` in physical units.
    Returns:
        ``hints_ab (B, 2, H, W)`` (zero outside hints) and ``hints_mask (B, 1, H, W)`` in {0, 1}.
    """
    if ab.dim() != 4 or ab.shape[1] != 2:
        raise ConfigError(f"simulate_hints expects ab of shape (B, 2, H, W), got {tuple(ab.shape)}")
    if not 0 < p_geometric <= 1 or max_points < 0:
        raise ConfigError(f"need 0 < p_geometric <= 1 and max_points >= 0, got {p_geometric}, {max_points}")
    b, _, h, w = ab.shape
    hints = torch.zeros_like(ab)
    mask = ab.new_zeros(b, 1, h, w)
    # Geometric counts by inversion, N = floor(log U / log(1 - p)); p = 1 means no hints at all.
    u = torch.rand(b, generator=generator, dtype=torch.float64).clamp_min(1e-300)
    counts = torch.zeros(b, dtype=torch.float64)
    if p_geometric < 1:
        counts = (u.log() / torch.log1p(torch.tensor(-p_geometric, dtype=torch.float64))).floor()
    for i, n in enumerate(counts.clamp(max=max_points).long().tolist()):
        for _ in range(n):
            size = int(torch.randint(1, 10, (1,), generator=generator))
            size = min(size, h, w)
            y = int(torch.randint(0, h - size + 1, (1,), generator=generator))
            x = int(torch.randint(0, w - size + 1, (1,), generator=generator))
            patch = (i, slice(None), slice(y, y + size), slice(x, x + size))
            hints[patch] = ab[patch].mean(dim=(1, 2), keepdim=True)
            mask[patch] = 1
    return hints, mask
