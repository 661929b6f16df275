"""Array-likes that read rows of stored images on demand, so a data set larger than memory can be split and trained on.

A folder's pixels are a memory-mapped uint8 ``.npy`` (:mod:`~convnp.data.folder_cache`). Fancy-indexing it copies,
so a held-out split or a whole standardised copy would bring the data set into memory as uint8 or, worse, as
float32 (four times larger). These views keep an index instead and read only the rows asked for:

- :class:`Rows`: some rows of an array, in a given order (a split of a folder);
- :class:`StandardizedImages`: rows standardised into the model's dtype as they are read (a training batch).

Both answer ``len``, ``shape``, ``dtype``, ``ndim`` and ``view[key]`` for a slice or an integer array, which is all
:func:`~convnp.data.batching.iterate_minibatches` and the training loop ask of their inputs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Rows", "StandardizedImages"]


class Rows:
    """The rows ``index`` of ``base``, read when indexed.

    Parameters
    ----------
    base : ndarray (or memory map) of shape `(N, ...)`
    index : ndarray of shape `(M,)`, int, values in ``[0, N)``
    """

    def __init__(self, base, index):
        self.base = base
        self.index = np.asarray(index, dtype=np.int64).reshape(-1)

    @property
    def shape(self) -> tuple:
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        """``key`` a slice, an int or an integer array -> those rows of ``base``, in memory."""
        return np.asarray(self.base[self.index[key]])

    def take(self, index) -> "Rows":
        """A view of some of these rows, still unread."""
        return Rows(self.base, self.index[np.asarray(index, dtype=np.int64)])

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class StandardizedImages:
    """Stored images ``(N, H, W, C)`` standardised as they are read: ``view[key]`` is ``standardize(images[key])``.

    The values are those of standardising the whole array at once (the arithmetic is per element), so a run reads
    the same numbers either way.

    Parameters
    ----------
    images : ndarray, memory map or :class:`Rows`, of shape `(N, H, W, C)`, as stored
    standardize : callable ``(x, dtype) -> ndarray``, a :class:`~convnp.data.transforms.Standardize`
    dtype : the model's dtype
    """

    def __init__(self, images, standardize, dtype):
        self.images = images
        self.standardize = standardize
        self.dtype = np.dtype(dtype)

    @property
    def shape(self) -> tuple:
        return tuple(self.images.shape)

    @property
    def ndim(self) -> int:
        return len(self.images.shape)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key) -> np.ndarray:
        """``key`` a slice or an integer array -> `(k, H, W, C)` standardised, in :attr:`dtype`."""
        if isinstance(key, (int, np.integer)):
            return self[key:key + 1 if key != -1 else None][0]
        return self.standardize(np.asarray(self.images[key]), self.dtype)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)
