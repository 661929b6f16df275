"""Loss functions on logits."""

from __future__ import annotations

import numbers

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
    """Softmax followed by cross-entropy on integer labels, averaged over the batch; optional label smoothing.

    With ``label_smoothing = eps`` the target of sample ``n`` is the smoothed distribution
    ``t_n = (1 - eps) * onehot(y_n) + eps / K`` and

    ``loss = -(1/N) sum_n sum_k t_nk log softmax(z_n)_k``,

    which is ``(1 - eps) * NLL + eps * mean_k(-log softmax(z_n)_k)`` averaged over the batch: PyTorch's
    ``cross_entropy(..., label_smoothing=eps)`` (Szegedy et al. 2016, "Rethinking the Inception Architecture",
    section 7). ``eps = 0`` is the plain cross-entropy ``-(1/N) sum_n log softmax(z_n)[y_n]``. ``log softmax`` is
    computed by log-sum-exp, so logits of +-1e4 give a finite loss and gradient.

    Gradient: ``dL/dz = (softmax(z) - t) / N``.

    Parameters
    ----------
    label_smoothing : float in [0, 1)
        Share ``eps`` of the target spread evenly over all ``K`` classes (the true class included).

    Shape
    -----
    - logits: ``(N, K)``, float32 or float64
    - y: ``(N,)`` integers in ``[0, K)``
    """

    def __init__(self, label_smoothing: float = 0.0):
        if (
            not isinstance(label_smoothing, numbers.Real)
            or isinstance(label_smoothing, bool)
            or not 0.0 <= label_smoothing < 1.0
        ):
            raise ValueError(
                f"SoftmaxCrossEntropy: label_smoothing must be a number in [0, 1), got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)
        self._cache = None

    def __repr__(self) -> str:
        if self.label_smoothing == 0.0:
            return "SoftmaxCrossEntropy()"
        return f"SoftmaxCrossEntropy(label_smoothing={self.label_smoothing})"

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        """Mean loss over the batch; keeps what :meth:`backward` needs."""
        owner = self  # str(self) is the repr, built only if a message needs it
        check_input(logits, owner, ndim=2, trailing=None, dtype=None, layout="(N, n_classes)")
        N, K = logits.shape
        check_labels(y, N, K, owner)
        logp = log_softmax(logits)  # (N, K)
        nll = -logp[np.arange(N), y].mean()
        eps = self.label_smoothing
        if eps == 0.0:
            loss = nll
        else:
            # The uniform part of the target weighs every class alike: its term is the mean of -log p over classes.
            loss = (1.0 - eps) * nll + eps * (-logp.mean(axis=1)).mean()
        self._cache = (logp, y)
        return float(loss)

    __call__ = forward

    def backward(self) -> np.ndarray:
        """``dL/dlogits`` of shape ``(N, K)``."""
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward needs a preceding forward(logits, y)")
        logp, y = self._cache
        N, K = logp.shape
        eps = self.label_smoothing
        dlogits = np.exp(logp)  # (N, K) softmax probabilities
        if eps != 0.0:
            dlogits -= np.asarray(eps / K, dtype=dlogits.dtype)  # the uniform part of the target
        dlogits[np.arange(N), y] -= np.asarray(1.0 - eps, dtype=dlogits.dtype)
        dlogits /= N
        check_finite(dlogits, "the gradient", self)
        return dlogits
