"""Data sets and data files: MNIST from wherever it can be found, the IDX format, users' own ``.npz`` files, image
files, batching and input preparation.

Nothing here unpickles a user's file: ``.npz`` archives are read with ``allow_pickle=False``. Pillow, needed only to
read image files, is imported inside :mod:`convnp.data.image_files` when used.
"""

from convnp.data.batching import iterate_minibatches
from convnp.data.datasets import Dataset, load_dataset
from convnp.data.idx import read_idx, write_idx
from convnp.data.image_files import read_image
from convnp.data.images import load_digits, load_images, preprocess_digit
from convnp.data.mnist import load_mnist, mnist_cache_dir
from convnp.data.npz import load_npz

__all__ = [
    "Dataset",
    "iterate_minibatches",
    "load_dataset",
    "load_digits",
    "load_images",
    "load_mnist",
    "load_npz",
    "mnist_cache_dir",
    "preprocess_digit",
    "read_idx",
    "read_image",
    "write_idx",
]
