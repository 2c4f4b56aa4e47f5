"""The model zoo: importing this package registers every family (one module each)."""

from colorcore.models import (  # noqa: F401  (imported for their @register_model side effects)
    autoencoder,
    baseline,
    eccv16,
    efficientnet_lite,
    fusion,
    litecolor,
    pix2pix,
    resnet_regression,
    siggraph17,
    unet_palette,
    zhang_regression,
)
from colorcore.models.base import ColorModel

__all__ = ["ColorModel"]
