"""colorcore: automatic colourisation of grayscale photos, a model zoo and the tools around it."""

from colorcore.errors import ColorcoreError, ConfigError, ImageLoadError, ModelNotFoundError, WeightsError
from colorcore.io import iter_image_files, load_image, save_png
from colorcore.pipeline import Colorizer, ColorizeResult, Hints
from colorcore.registry import list_models, register_model
from colorcore.weights import create_model, model_info

__all__ = [
    "ColorcoreError", "ColorizeResult", "Colorizer", "ConfigError", "Hints", "ImageLoadError",
    "ModelNotFoundError", "WeightsError", "create_model", "iter_image_files", "list_models", "load_image",
    "model_info", "register_model", "save_png",
]
__version__ = "0.1.0"
