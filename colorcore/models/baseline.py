"""``baseline``: one strided conv and one transposed conv regressing ab (seed 000's baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from colorcore.models.base import AB_SCALE, ColorModel, normalize_l
from colorcore.registry import register_model


@dataclass(frozen=True)
class BaselineConfig:
    hidden: int = 64
    kernel: int = 4


@register_model("baseline", config=BaselineConfig(), task="regression",
                description="One conv + one transposed conv, ab regression with MSE")
class Baseline(ColorModel):
    """One conv layer down by 2 and one transposed conv back up, regressing ab."""

    stride = 2
    default_size = 128

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__(config)
        if config.hidden < 1 or config.kernel < 2 or config.kernel % 2:
            raise ValueError("hidden must be >= 1 and kernel an even number >= 2")
        pad = (config.kernel - 2) // 2
        self.down = nn.Sequential(nn.Conv2d(1, config.hidden, config.kernel, 2, pad), nn.ReLU(inplace=True))
        self.up = nn.ConvTranspose2d(config.hidden, 2, config.kernel, 2, pad)

    def forward(self, l: Tensor) -> Tensor:
        return AB_SCALE * self.up(self.down(normalize_l(l)))
