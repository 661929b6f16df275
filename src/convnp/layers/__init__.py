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

# ---- normalisation, regularisation, average pooling and more activations --------------------------------------------
from convnp.layers.activations_extra import LeakyReLU, Sigmoid, Tanh  # noqa: E402
from convnp.layers.avgpool import AvgPool2D, GlobalAvgPool2D  # noqa: E402
from convnp.layers.batchnorm import BatchNorm1D, BatchNorm2D  # noqa: E402
from convnp.layers.dropout import Dropout  # noqa: E402

LAYERS.update(
    {cls.__name__: cls for cls in (AvgPool2D, BatchNorm1D, BatchNorm2D, Dropout, GlobalAvgPool2D, LeakyReLU, Sigmoid, Tanh)}
)
__all__ += ["AvgPool2D", "BatchNorm1D", "BatchNorm2D", "Dropout", "GlobalAvgPool2D", "LeakyReLU", "Sigmoid", "Tanh"]
