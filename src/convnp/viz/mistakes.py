"""The mistakes the model was surest of: a grid of images with their true and predicted labels."""

from __future__ import annotations

import numpy as np

from convnp.viz._common import bare, grid_shape, single_axes


def _check(images, y_true, y_pred, confidence, owner: str):
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        pass
    elif images.ndim == 3:
        images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
    else:
        raise ValueError(f"{owner}: expected images of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3), "
                         f"got shape {images.shape}")
    if images.dtype.kind not in "iuf":
        raise ValueError(f"{owner}: images must hold numbers, got dtype {images.dtype}")
    arrays = {"y_true": np.asarray(y_true), "y_pred": np.asarray(y_pred), "confidence": np.asarray(confidence)}
    for name, value in arrays.items():
        if value.ndim != 1:
            raise ValueError(f"{owner}: {name} must have shape (N,), got shape {value.shape}")
    lengths = [len(images)] + [len(v) for v in arrays.values()]
    if len(set(lengths)) > 1:
        raise ValueError(f"{owner}: inconsistent numbers of samples (images, y_true, y_pred, confidence): {lengths}")
    for name in ("y_true", "y_pred"):
        if arrays[name].size and arrays[name].dtype.kind not in "iu":
            raise ValueError(f"{owner}: {name} must hold integer class indices, got dtype {arrays[name].dtype}")
    c = arrays["confidence"]
    if c.size and (c.dtype.kind not in "iuf" or not np.all((c >= 0) & (c <= 1))):
        raise ValueError(f"{owner}: confidence must hold probabilities in [0, 1] (the softmax of the predicted "
                         "class), e.g. probs.max(axis=1)")
    return images, arrays["y_true"], arrays["y_pred"], c


def most_confident_mistakes(y_true, y_pred, confidence, n: int = 16) -> np.ndarray:
    """Indices of at most ``n`` misclassified samples, most confident first (ties: lower index first).

    Parameters
    ----------
    y_true, y_pred : ndarray of shape `(N,)`, integers
    confidence : ndarray of shape `(N,)`
        The probability the model gave its prediction.
    """
    y_true, y_pred, confidence = np.asarray(y_true), np.asarray(y_pred), np.asarray(confidence)
    wrong = np.flatnonzero(y_true != y_pred)  # (M,)
    order = np.argsort(-confidence[wrong], kind="stable")  # stable: equal confidences keep their index order
    return wrong[order[:n]]


def plot_mistakes(images, y_true, y_pred, confidence, n: int = 16, ax=None, *, labels=None,
                  title: str | None = None):
    """Grid of the ``n`` most confident mistakes, each captioned ``true -> predicted (confidence)``.

    Parameters
    ----------
    images : ndarray of shape `(N, H, W)` or `(N, H, W, C)` with C 1 or 3
        The images as stored (uint8 pixels are shown on 0..255, floats on their own range).
    y_true, y_pred : ndarray of shape `(N,)`, integers
    confidence : ndarray of shape `(N,)`, in [0, 1]
        The probability of the predicted class, e.g. ``probs.max(axis=1)``.
    n : int
        At most this many mistakes are shown.
    ax : matplotlib Axes, optional
        Draw the grid (one image) there; default: a new figure.
    labels : sequence of class names, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        When there is no mistake the axes says so.
    """
    owner = "plot_mistakes"
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{owner}: n must be a positive integer, got {n!r}")
    images, y_true, y_pred, confidence = _check(images, y_true, y_pred, confidence, owner)
    name = (lambda k: str(labels[k])) if labels is not None else str
    chosen = most_confident_mistakes(y_true, y_pred, confidence, n)
    n_wrong = int(np.count_nonzero(y_true != y_pred))
    rows, columns = grid_shape(max(len(chosen), 1), max_columns=8)
    captions = [f"{name(int(y_true[i]))} -> {name(int(y_pred[i]))} ({confidence[i]:.0%})" for i in chosen]
    # A tile is 1.15 inches wide, or wider where its 7-point caption (about 0.055 inch a character) needs it.
    pitch = min(2.5, max([1.15] + [0.055 * len(c) + 0.1 for c in captions]))
    size = (pitch * columns + 0.4, pitch * 1.35 / 1.15 * rows + 0.5) if len(chosen) else (6.0, 1.5)
    fig, ax = single_axes(ax, size, owner)
    bare(ax)
    ax.set_title(title or f"most confident mistakes: {len(chosen)} of {n_wrong} (true -> predicted, confidence)",
                 fontsize=9)
    if len(chosen) == 0:
        ax.text(0.5, 0.5, f"no mistakes among {len(y_true)} images", ha="center", va="center",
                transform=ax.transAxes)
        return fig

    _, H, W, C = images.shape
    picked = images[chosen].astype(np.float64)  # (M, H, W, C)
    lo, hi = (0.0, 255.0) if images.dtype == np.uint8 else (float(picked.min()), float(picked.max()))
    picked = (picked - lo) / (hi - lo) if hi > lo else np.zeros_like(picked)
    gap, top = max(2, W // 6), max(6, H // 3)  # room between tiles, and above each for its caption
    mosaic = np.ones((rows * (H + top), columns * (W + gap) - gap, 3))  # white paper
    for k in range(len(chosen)):
        r, c = divmod(k, columns)
        y, x = r * (H + top) + top, c * (W + gap)
        mosaic[y : y + H, x : x + W] = picked[k] if C == 3 else picked[k, :, :, :1]  # grey broadcasts to RGB
        ax.text(x + W / 2 - 0.5, y - 1.0, captions[k], ha="center", va="bottom", fontsize=7, color="firebrick")
    ax.imshow(np.clip(mosaic, 0.0, 1.0), interpolation="nearest")
    return fig
