"""Stateful layers: each holds ``params``/``grads``/``state`` and calls a pure kernel from :mod:`convnp.ops`."""

from convnp.layers.activation import ReLU
from convnp.layers.base import Layer
from convnp.layers.conv import Conv2D
from convnp.layers.dense import Dense
from convnp.layers.legacy import NotebookMaxPool2D
from convnp.layers.pooling import MaxPool2D
from convnp.layers.reshape import Flatten

#: Layer classes by name, for rebuilding a model from its JSON description (checkpoints).
LAYERS = {cls.__name__: cls for cls in (Conv2D, Dense, Flatten, MaxPool2D, NotebookMaxPool2D, ReLU)}

__all__ = ["LAYERS", "Conv2D", "Dense", "Flatten", "Layer", "MaxPool2D", "NotebookMaxPool2D", "ReLU"]
