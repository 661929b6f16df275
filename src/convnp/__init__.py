"""convnp: convolutional neural networks in NumPy, every forward and backward pass written by hand."""

from convnp.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)
from convnp.checkpoint import load_checkpoint, load_pretrained
from convnp.losses import SoftmaxCrossEntropy
from convnp.sequential import Sequential
from convnp.parallel import get_num_threads, set_num_threads

from convnp.version import __version__

__all__ = [
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "Tanh",
    "__version__",
    "get_num_threads",
    "load_checkpoint",
    "load_pretrained",
    "set_num_threads",
]
