"""Loss functions on logits."""

from __future__ import annotations

import numpy as np

from convnp._checks import check_finite, check_input
from convnp.ops.activations import log_softmax


def check_labels(y, n_samples: int, n_classes: int, owner: str) -> np.ndarray:
    """Validate integer class labels: shape ``(N,)``, an integer dtype, each in ``[0, n_classes)``."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{owner}: labels must be a NumPy integer array of shape (N,), got {type(y).__name__}")
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(f"{owner}: labels must have shape ({n_samples},) to match the logits, got {y.shape}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{owner}: labels must be integers (class indices), got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)]
        raise ValueError(
            f"{owner}: labels must lie in [0, {n_classes - 1}] for {n_classes} classes, got {int(bad[0])} "
            f"({bad.size} out of range)"
        )
    return y


class SoftmaxCrossEntropy:
    """Softmax followed by cross-entropy on integer labels, averaged over the batch.

    ``loss = -(1/N) sum_n log softmax(z_n)[y_n]`` with ``log softmax`` computed by log-sum-exp, so logits of
    +-1e4 give a finite loss and gradient.

    Gradient: ``dL/dz = (softmax(z) - onehot(y)) / N``.

    Shape
    -----
    - logits: ``(N, K)``, float32 or float64
    - y: ``(N,)`` integers in ``[0, K)``
    """

    def __init__(self):
        self._cache = None

    def __repr__(self) -> str:
        return "SoftmaxCrossEntropy()"

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        """Mean loss over the batch; keeps what :meth:`backward` needs."""
        owner = repr(self)
        check_input(logits, owner, ndim=2, trailing=None, dtype=None, layout="(N, n_classes)")
        N, K = logits.shape
        check_labels(y, N, K, owner)
        logp = log_softmax(logits)  # (N, K)
        loss = -logp[np.arange(N), y].mean()
        self._cache = (logp, y)
        return float(loss)

    __call__ = forward

    def backward(self) -> np.ndarray:
        """``dL/dlogits`` of shape ``(N, K)``."""
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward needs a preceding forward(logits, y)")
        logp, y = self._cache
        N = logp.shape[0]
        dlogits = np.exp(logp)  # softmax probabilities
        dlogits[np.arange(N), y] -= 1.0
        dlogits /= N
        check_finite(dlogits, "the gradient", repr(self))
        return dlogits
