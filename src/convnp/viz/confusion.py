"""The confusion matrix as a heatmap with the count in every cell (it takes the matrix, not the model)."""

from __future__ import annotations

import numpy as np

from convnp.metrics import _check_confusion, _class_labels
from convnp.viz._common import single_axes


def plot_confusion(matrix, labels=None, ax=None, *, title: str | None = None):
    """Heatmap of a confusion matrix, rows the true class, columns the predicted class.

    The colour is the share of the row (the class's recall on the diagonal), so rare and common classes read
    alike; each cell prints its count. Off-diagonal cells are the mistakes.

    Parameters
    ----------
    matrix : array-like of shape `(K, K)`
        Non-negative counts, as :func:`convnp.metrics.confusion_matrix` returns.
    labels : sequence of `K` names, optional
        Default ``0 .. K-1``.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    owner = "plot_confusion"
    matrix = _check_confusion(matrix, owner)
    K = matrix.shape[0]
    if K == 0:
        raise ValueError(f"{owner}: the confusion matrix is empty (shape (0, 0))")
    names = _class_labels(labels, K, owner)
    size = min(12.0, 1.6 + 0.5 * K)
    fig, ax = single_axes(ax, (size + 1.0, size), owner)
    totals = matrix.sum(axis=1, keepdims=True).astype(np.float64)  # (K, 1) class counts
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)  # (K, K) row shares
    picture = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    integral = matrix.dtype.kind in "iu" or bool(np.all(matrix == np.round(matrix)))
    fontsize = 8 if K <= 12 else 6
    if K <= 30:  # beyond that the numbers no longer fit in their cells
        for i in range(K):
            for j in range(K):
                value = matrix[i, j]
                text = str(int(value)) if integral else f"{value:.2f}"
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=colour)
    if max(map(len, names)) > 3:  # longer names than digits would overlap under their columns: slant them
        ax.set_xticks(range(K), names, rotation=45, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(range(K), names)
    ax.set_yticks(range(K), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    n = matrix.sum()
    accuracy = float(np.trace(matrix) / n) if n else 0.0
    ax.set_title(title or f"confusion matrix: {int(n) if integral else n} samples, accuracy {accuracy:.2%}",
                 fontsize=9)
    fig.colorbar(picture, ax=ax, shrink=0.8, label="share of the true class")
    return fig
