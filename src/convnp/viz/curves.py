"""Training curves: loss and accuracy per epoch, training and validation, from a History or ``metrics.csv``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from convnp.viz._common import check_axes, new_figure

#: The columns :func:`read_metrics` turns into numbers (the header of :class:`convnp.train.callbacks.MetricsCSV`).
NUMERIC = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")


def read_metrics(path) -> list[dict]:
    """The rows of a run's ``metrics.csv`` as epoch dicts, like ``Trainer.history``.

    Numbers become floats (``epoch`` an int); an empty cell (no validation data) leaves its key out.

    Parameters
    ----------
    path : path of ``metrics.csv``, or the run folder holding it

    Raises
    ------
    ValueError
        If the file is missing, has no ``loss``/``accuracy`` columns, or holds a value that is not a number.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise ValueError(f"{path}: no such metrics file (a run folder's metrics.csv)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [name for name in ("loss", "accuracy") if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: lacks the column(s) {missing}; expected the header {','.join(NUMERIC)}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row = {}
            for key, text in raw.items():
                if key is None or text is None or text == "":
                    continue
                if key in NUMERIC:
                    try:
                        row[key] = int(text) if key == "epoch" else float(text)
                    except ValueError:
                        raise ValueError(f"{path}, line {line}: {key} must be a number, got {text!r}") from None
                else:
                    row[key] = text
            rows.append(row)
    return rows


def _series(history, owner: str) -> dict[str, list[float]]:
    """Check the epoch dicts and pull out the x axis and each curve (NaN where an epoch lacks a value)."""
    if isinstance(history, (str, Path)) or not hasattr(history, "__len__"):
        raise TypeError(f"{owner}: expected a list of epoch dicts (a History, or read_metrics(path)), got "
                        f"{type(history).__name__}")
    history = list(history)
    if not history:
        raise ValueError(f"{owner}: the history is empty; train at least one epoch first")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise TypeError(f"{owner}: epoch {i} must be a dict, got {type(row).__name__}")
        missing = [key for key in ("loss", "accuracy") if key not in row]
        if missing:
            raise ValueError(f"{owner}: epoch {i} lacks {missing}; each epoch needs 'loss' and 'accuracy'")
    series = {"epoch": [float(row.get("epoch", i + 1)) for i, row in enumerate(history)]}
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        values = [row.get(key) for row in history]
        series[key] = [math.nan if v is None else float(v) for v in values]
    return series


def plot_curves(history_or_metrics, ax=None):
    """Loss and accuracy per epoch, training (solid) and validation (dashed).

    Parameters
    ----------
    history_or_metrics : list of dict
        One dict per epoch with ``loss``, ``accuracy`` and optionally ``val_loss``, ``val_accuracy``, ``epoch``
        (1-based; default the position): ``Trainer.history``, a checkpoint's ``meta["history"]``, or
        :func:`read_metrics` of a ``metrics.csv``.
    ax : None, an Axes, or a pair of Axes
        None: a new figure with a loss panel and an accuracy panel. A pair ``(ax_loss, ax_accuracy)``: draw there.
        One Axes: loss on it, accuracy (in %) on a twin axis at the right.

    Returns
    -------
    matplotlib.figure.Figure
    """
    owner = "plot_curves"
    s = _series(history_or_metrics, owner)
    fig, ax_loss, ax_acc, twin = _curve_axes(ax, owner)
    x = s["epoch"]
    marker = "o" if len(x) <= 30 else None
    has_val = any(not math.isnan(v) for v in s["val_loss"])

    ax_loss.plot(x, s["loss"], marker=marker, color="C0", label="training loss")
    if has_val:
        ax_loss.plot(x, s["val_loss"], marker=marker, color="C0", linestyle="--", label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")

    acc = [100 * v for v in s["accuracy"]]
    val_acc = [100 * v for v in s["val_accuracy"]]
    ax_acc.plot(x, acc, marker=marker, color="C1", label="training accuracy")
    if any(not math.isnan(v) for v in val_acc):
        ax_acc.plot(x, val_acc, marker=marker, color="C1", linestyle="--", label="validation accuracy")
    ax_acc.set_ylabel("accuracy (%)")

    if twin:  # one legend for both axes
        lines = ax_loss.get_lines() + ax_acc.get_lines()
        ax_loss.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize="small")
        ax_loss.set_title("loss and accuracy")
    else:
        ax_acc.set_xlabel("epoch")
        ax_loss.set_title("loss")
        ax_acc.set_title("accuracy")
        ax_loss.legend(fontsize="small")
        ax_acc.legend(fontsize="small")
    for a in (ax_loss, ax_acc):
        a.grid(True, alpha=0.3)
        if len(x) <= 20:
            a.set_xticks(x)
    return fig


def _curve_axes(ax, owner: str):
    """``(figure, loss Axes, accuracy Axes, twin)`` for ``plot_curves``'s ``ax``; ``twin``: one Axes shared by both,
    accuracy on its right-hand twin."""
    if ax is None:
        fig = new_figure((9, 3.6))
        ax_loss, ax_acc = fig.subplots(1, 2)
        return fig, ax_loss, ax_acc, False
    if isinstance(ax, (list, tuple)):
        if len(ax) != 2:
            raise ValueError(f"{owner}: ax must be one Axes or a pair (ax_loss, ax_accuracy), got {len(ax)} axes")
        for a in ax:
            check_axes(a, owner)
        return ax[0].figure, ax[0], ax[1], False
    check_axes(ax, owner)
    return ax.figure, ax, ax.twinx(), True
