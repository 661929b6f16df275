"""The model zoo: named constructors returning a :class:`~convnp.sequential.Sequential`.

Every builder takes ``rng`` (a ``np.random.Generator``), ``dtype``, ``input_shape`` (one image, ``(H, W, C)``) and
``num_classes``, and returns a network from ``(N, *input_shape)`` images to ``(N, num_classes)`` logits; the defaults,
``(28, 28, 1)`` and 10, give the MNIST networks. Each is a list of layer descriptions (its module's ``layers``) built
by :func:`convnp.models.spec.build_network`, which also builds the networks of architecture files
(:func:`build_model`). Their recommended training settings are in :data:`convnp.models.recipes.RECIPES`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convnp.models.best import best
from convnp.models.convnet import convnet
from convnp.models.lenet5 import lenet5
from convnp.models.notebook import notebook
from convnp.models.recipes import RECIPES
from convnp.models.spec import build_network, read_architecture
from convnp.models.sprint import sprint

# In order of strength (test accuracy), which is also the order listings and error messages use.
MODELS = {"notebook": notebook, "sprint": sprint, "lenet5": lenet5, "convnet": convnet, "best": best}


def get_model(name: str, **kwargs):
    """Build the zoo model called ``name`` (one of :data:`MODELS`); ``kwargs`` go to its builder (``rng``,
    ``dtype``, ``input_shape``, ``num_classes``, ...)."""
    try:
        build = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None
    return build(**kwargs)


def is_architecture_file(model: str) -> bool:
    """Whether ``model`` names an architecture file (a path ending in ``.json``) rather than a zoo model."""
    return str(model).lower().endswith(".json")


def build_model(model: str, *, input_shape: tuple, num_classes: int, rng=None, dtype=np.float32):
    """The network ``model`` names, for images of ``input_shape`` ``(H, W, C)`` and ``num_classes`` classes.

    ``model`` is a zoo name (:data:`MODELS`) or the path of an architecture file: a ``.json`` list of layer
    descriptions (:func:`convnp.models.spec.read_architecture`), whose last layer must give ``num_classes`` logits.
    Raises ValueError (one line) for an unknown name, a bad file or an input the network cannot take.
    """
    if is_architecture_file(model):
        layers = read_architecture(model)
        return build_network(layers, input_shape, rng, dtype, num_classes=num_classes, name=Path(model).name)
    return get_model(model, input_shape=input_shape, num_classes=num_classes, rng=rng, dtype=dtype)


__all__ = [
    "MODELS", "RECIPES", "best", "build_model", "build_network", "convnet", "get_model", "is_architecture_file",
    "lenet5", "notebook", "read_architecture",
]
