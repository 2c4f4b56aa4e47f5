"""torch.hub entry points: ``torch.hub.load(path_to_clone, NAME, source="local")`` returns a ready model.

NAME is any bundled weights name (``python -m colorcore models`` lists them) or a model family, which
gives that family's default weights; ``litecolor`` is the flagship. Keyword arguments select among a
family's weights by config, as :func:`colorcore.create_model` does.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from colorcore.weights import available_weights, create_model

dependencies = ["torch", "torchvision", "safetensors", "numpy", "PIL", "skimage"]


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def load(pretrained: bool = True, **config: object) -> nn.Module:
        return create_model(name, pretrained=pretrained, **config).eval()

    load.__name__ = name
    load.__doc__ = f"colorcore model {name!r} with its bundled weights (pretrained=False: a fresh one)."
    return load


# Names hold dashes, so they are set as module attributes (torch.hub looks them up with getattr).
_bundled = [e for e in available_weights() if e.file is not None]
for _name in sorted({e.name for e in _bundled} | {e.model for e in _bundled}):
    globals()[_name] = _entrypoint(_name)
