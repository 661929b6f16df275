"""Data sets and data files: MNIST from wherever it can be found, the IDX format, users' own ``.npz`` files.

Nothing here unpickles a user's file: ``.npz`` archives are read with ``allow_pickle=False``.
"""

from convnp.data.idx import read_idx, write_idx
from convnp.data.mnist import load_mnist, mnist_cache_dir
from convnp.data.npz import load_npz

__all__ = [
    "load_mnist",
    "mnist_cache_dir",
    "read_idx",
    "write_idx",
    "load_npz",
]
