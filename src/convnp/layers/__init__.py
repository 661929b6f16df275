"""Stateful layers: each holds ``params``/``grads``/``state`` and calls a pure kernel from :mod:`convnp.ops`."""

from convnp.layers.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from convnp.layers.avgpool import AvgPool2D, GlobalAvgPool2D
from convnp.layers.base import Layer
from convnp.layers.batchnorm import BatchNorm1D, BatchNorm2D
from convnp.layers.conv import Conv2D
from convnp.layers.dense import Dense
from convnp.layers.dropout import Dropout
from convnp.layers.notebook_maxpool import NotebookMaxPool2D
from convnp.layers.pooling import MaxPool2D, Pool2D
from convnp.layers.reshape import Flatten

_CLASSES = (
    AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, LeakyReLU, MaxPool2D,
    NotebookMaxPool2D, ReLU, Sigmoid, Tanh,
)
#: Layer classes by name, for rebuilding a model from its JSON description (checkpoints).
LAYERS = {cls.__name__: cls for cls in _CLASSES}

__all__ = ["LAYERS", "Layer", "Pool2D", *LAYERS]
