"""colorcore: automatic colourisation of grayscale photos, a model zoo and the tools around it."""

from colorcore.errors import ColorcoreError, ConfigError, ImageLoadError, ModelNotFoundError, WeightsError
from colorcore.registry import list_models, register_model
from colorcore.weights import create_model, model_info

__all__ = [
    "ColorcoreError", "ConfigError", "ImageLoadError", "ModelNotFoundError", "WeightsError",
    "create_model", "list_models", "model_info", "register_model",
]
__version__ = "0.1.0"
