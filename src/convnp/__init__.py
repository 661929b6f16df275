"""convnp: convolutional neural networks in NumPy, every forward and backward pass written by hand."""

from convnp.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU
from convnp.losses import SoftmaxCrossEntropy
from convnp.model import Sequential

__version__ = "0.1.0"

__all__ = ["Conv2D", "Dense", "Flatten", "Layer", "MaxPool2D", "ReLU", "Sequential", "SoftmaxCrossEntropy", "__version__"]
