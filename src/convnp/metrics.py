"""Metrics on predictions, pure NumPy: accuracy, the confusion matrix, per-class precision and recall, text tables.

Conventions (scikit-learn's): the confusion matrix has one row per *true* class and one column per *predicted*
class, so ``confusion[i, j]`` counts the samples of class ``i`` predicted as ``j``. A ratio whose denominator is
zero (precision of a class never predicted, recall of a class never present) is defined as 0.0, like
scikit-learn's ``zero_division=0``, rather than NaN: the tables and JSON stay plain numbers.

References: scikit-learn ``sklearn.metrics.confusion_matrix`` and ``precision_recall_fscore_support``.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "confusion_matrix",
    "precision_recall",
    "classification_report",
    "format_confusion",
    "format_per_class",
]


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose largest logit (or probability) is at the true label.

    Parameters
    ----------
    logits : ndarray of shape `(N, K)`
    y : ndarray of shape `(N,)`
    """
    if logits.shape[0] != y.shape[0]:
        raise ValueError(f"accuracy: inconsistent numbers of samples: {[logits.shape[0], y.shape[0]]}")
    return float(np.mean(logits.argmax(axis=1) == y))


def top_k_accuracy(scores: np.ndarray, y, k: int = 5) -> float:
    """Fraction of rows whose true label is among their ``k`` largest scores (logits or probabilities).

    Ties are broken towards the lower class, as ``argmax`` breaks them, so ``k=1`` gives :func:`accuracy`.

    Parameters
    ----------
    scores : ndarray of shape `(N, K)`
    y : array-like of shape `(N,)`, integers in ``[0, K)``
    k : int
        From 1 to ``K``.

    Returns
    -------
    float
        0.0 when ``N == 0``.
    """
    scores = np.asarray(scores)
    y = _check_labels(y, "y", "top_k_accuracy")
    if scores.ndim != 2 or scores.shape[0] != y.shape[0]:
        raise ValueError(f"top_k_accuracy: expected scores of shape (N, K) with N = {y.shape[0]} labels, "
                         f"got {scores.shape}")
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 1 <= k <= scores.shape[1]:
        raise ValueError(f"top_k_accuracy: k must be between 1 and the {scores.shape[1]} classes, got {k!r}")
    if y.size == 0:
        return 0.0
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (N, k), ties: the lower class first
    return float(np.mean((order == y[:, None]).any(axis=1)))


def _check_labels(y, name: str, owner: str) -> np.ndarray:
    """``y`` as an int64 array of shape ``(N,)`` of class indices ``>= 0``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{owner}: {name} must have shape (N,), one class index per sample, got shape {y.shape}")
    if y.size == 0 and y.dtype.kind in "iuf":
        # np.asarray([]) is float64; an empty list is still a valid (empty) set of labels.
        return y.astype(np.int64)
    if y.dtype.kind not in "iu":
        hint = " (cast with y.astype(np.int64), or take logits.argmax(axis=1))" if y.dtype.kind == "f" else ""
        raise ValueError(f"{owner}: {name} must hold integer class indices, got dtype {y.dtype}{hint}")
    if y.dtype.kind == "u" and y.size and y.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{owner}: {name} holds {int(y.max())}, too large for a class index")
    y = y.astype(np.int64, copy=False)
    if y.size and y.min() < 0:
        index = int(np.argmin(y))
        raise ValueError(f"{owner}: {name} must be >= 0 (class indices), found {int(y[index])} at index {index}")
    return y


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Count each (true class, predicted class) pair.

    Parameters
    ----------
    y_true : array-like of shape `(N,)`, integers in ``[0, K)``
    y_pred : array-like of shape `(N,)`, integers in ``[0, K)``
        E.g. ``logits.argmax(axis=1)``.
    n_classes : int, optional
        ``K``. Default: one more than the largest label in either array (0 when both are empty). Pass it so that
        classes absent from a small sample still get their row and column.

    Returns
    -------
    confusion : ndarray of shape `(K, K)`, int64
        ``confusion[i, j]`` = number of samples of true class ``i`` predicted as ``j``. Row sums are the class
        counts (supports), column sums the prediction counts, and ``trace / N`` the accuracy.

    Raises
    ------
    ValueError
        If either array is not 1-D integers ``>= 0``, their lengths differ, or a label is ``>= n_classes``.
    TypeError
        If ``n_classes`` is not an int.

    Notes
    -----
    One ``np.bincount`` over the flat index ``y_true * K + y_pred`` fills the matrix, with no loop over samples.
    """
    owner = "confusion_matrix"
    y_true = _check_labels(y_true, "y_true", owner)
    y_pred = _check_labels(y_pred, "y_pred", owner)
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"{owner}: inconsistent numbers of samples: {[y_true.shape[0], y_pred.shape[0]]}")
    top = max(int(y_true.max(initial=-1)), int(y_pred.max(initial=-1)))
    if n_classes is None:
        K = top + 1
    else:
        if not isinstance(n_classes, numbers.Integral) or isinstance(n_classes, bool):
            raise TypeError(f"{owner}: n_classes must be an int, got {type(n_classes).__name__}")
        K = int(n_classes)
        if K < 1:
            raise ValueError(f"{owner}: n_classes must be >= 1, got {K}")
        for name, y in (("y_true", y_true), ("y_pred", y_pred)):
            if y.size and int(y.max()) >= K:
                index = int(np.argmax(y))
                raise ValueError(
                    f"{owner}: {name} holds class {int(y[index])} (at index {index}) but n_classes is {K}, "
                    f"so labels must lie in [0, {K - 1}]"
                )
    counts = np.bincount(y_true * K + y_pred, minlength=K * K)  # (K*K,)
    return counts.reshape(K, K).astype(np.int64, copy=False)  # (K, K): rows true, columns predicted


def _check_confusion(confusion, owner: str) -> np.ndarray:
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"{owner}: expected a square confusion matrix of shape (K, K), got shape {confusion.shape}")
    if confusion.dtype.kind not in "iuf":
        raise ValueError(f"{owner}: expected counts (integers or floats), got dtype {confusion.dtype}")
    if confusion.dtype.kind == "f" and not np.isfinite(confusion).all():
        raise ValueError(f"{owner}: the confusion matrix holds NaN or inf")
    if confusion.size and confusion.min() < 0:
        raise ValueError(f"{owner}: counts must be >= 0, found {confusion.min()}")
    return confusion


def precision_recall(confusion) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision and recall from a confusion matrix (rows true, columns predicted).

    Parameters
    ----------
    confusion : array-like of shape `(K, K)`
        Non-negative counts, as :func:`confusion_matrix` returns.

    Returns
    -------
    precision : ndarray of shape `(K,)`, float64
        ``confusion[k, k] / confusion[:, k].sum()``: of the samples predicted as ``k``, the fraction that are ``k``.
        0.0 for a class that is never predicted.
    recall : ndarray of shape `(K,)`, float64
        ``confusion[k, k] / confusion[k, :].sum()``: of the samples of class ``k``, the fraction found.
        0.0 for a class with no samples.
    """
    confusion = _check_confusion(confusion, "precision_recall")
    tp = np.diag(confusion).astype(np.float64)  # (K,)
    predicted = confusion.sum(axis=0).astype(np.float64)  # (K,) column sums
    actual = confusion.sum(axis=1).astype(np.float64)  # (K,) row sums
    # zero_division=0: a 0/0 ratio says nothing about the classifier, and NaN would poison means and JSON.
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    return precision, recall


def classification_report(y_true, y_pred, n_classes: int | None = None) -> dict:
    """Everything an evaluation reports, computed once from labels and predictions.

    Parameters
    ----------
    y_true, y_pred : array-like of shape `(N,)`, integers in ``[0, K)``
    n_classes : int, optional
        ``K``, as for :func:`confusion_matrix`.

    Returns
    -------
    dict with
        ``n_samples`` (int), ``accuracy`` (float; 0.0 when ``N == 0``), ``confusion`` (int64 ndarray of shape
        `(K, K)`), and ``per_class``: a list of ``K`` dicts ``{"class", "support", "precision", "recall", "f1"}``,
        where ``f1`` is the harmonic mean of precision and recall (0.0 when both are 0).
    """
    confusion = confusion_matrix(y_true, y_pred, n_classes)
    precision, recall = precision_recall(confusion)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)  # (K,)
    support = confusion.sum(axis=1)  # (K,)
    n_samples = int(support.sum())
    per_class = [
        {"class": k, "support": int(support[k]), "precision": float(precision[k]), "recall": float(recall[k]),
         "f1": float(f1[k])}
        for k in range(confusion.shape[0])
    ]
    return {
        "n_samples": n_samples,
        "accuracy": float(np.trace(confusion) / n_samples) if n_samples else 0.0,
        "confusion": confusion,
        "per_class": per_class,
    }


def _class_labels(labels, K: int, owner: str) -> list[str]:
    if labels is None:
        return [str(k) for k in range(K)]
    labels = [str(label) for label in labels]
    if len(labels) != K:
        raise ValueError(f"{owner}: expected {K} labels, one per class, got {len(labels)}")
    return labels


def _align(rows: list[list[str]], left_columns: int = 1) -> str:
    """Join rows of cells into lines, each column as wide as its widest cell; the first columns flush left."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) if c < left_columns else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_confusion(confusion, labels=None) -> str:
    """The confusion matrix as an aligned text table: one row per true class, one column per predicted class.

    Parameters
    ----------
    confusion : array-like of shape `(K, K)`
    labels : sequence of `K` names, optional
        Row and column headers; default ``0 .. K-1``.

    Returns
    -------
    str
        A header line ``true \\ predicted  0  1 ...`` followed by ``K`` lines, no trailing newline.
    """
    confusion = _check_confusion(confusion, "format_confusion")
    names = _class_labels(labels, confusion.shape[0], "format_confusion")
    integral = confusion.dtype.kind in "iu" or bool(np.all(confusion == np.round(confusion)))
    cell = (lambda v: str(int(v))) if integral else (lambda v: f"{v:.3f}")
    rows = [["true \\ predicted", *names]]
    rows += [[name, *(cell(v) for v in row)] for name, row in zip(names, confusion)]
    return _align(rows)


def format_per_class(report: dict, labels=None) -> str:
    """The ``per_class`` entries of :func:`classification_report` as an aligned table.

    Columns: class, support, precision, recall, f1 (ratios to 4 decimals).
    """
    per_class = report["per_class"]
    names = _class_labels(labels, len(per_class), "format_per_class")
    rows = [["class", "support", "precision", "recall", "f1"]]
    for name, row in zip(names, per_class):
        rows.append([name, str(row["support"]), f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}"])
    return _align(rows)
