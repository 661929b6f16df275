"""What every plot shares: importing matplotlib on demand, a figure or the caller's axes, tiling images.

matplotlib is imported here, inside the functions, and nowhere outside ``convnp.viz``: the core stays NumPy-only,
and the compute-only helpers of this package (``read_metrics``, ``conv_activations``, the grids) work without it.
Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, made without pyplot: no display is needed, no
global backend is switched, and no figure lingers in pyplot's registry after the caller drops it.
"""

from __future__ import annotations

import io
import math

import numpy as np

INSTALL_HINT = "matplotlib is not installed; install it with: pip install 'convnp[plot]'"


def require_matplotlib():
    """The ``matplotlib`` module, or an ImportError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return matplotlib


def new_figure(figsize: tuple[float, float]):
    """A blank Figure drawn by Agg (the raster backend that needs no display)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def single_axes(ax, figsize: tuple[float, float], owner: str):
    """``(figure, axes)``: the caller's ``ax`` and its figure, or a new figure with one axes."""
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    check_axes(ax, owner)
    return ax.figure, ax


def check_axes(ax, owner: str) -> None:
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"{owner}: ax must be a matplotlib Axes or None, got {type(ax).__name__}")


def figure_png(fig, dpi: int = 100) -> bytes:
    """The figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def grid_shape(n: int, max_columns: int = 8) -> tuple[int, int]:
    """``(rows, columns)`` of a near-square grid for ``n`` tiles, at most ``max_columns`` wide."""
    columns = min(max_columns, max(1, math.ceil(math.sqrt(n))))
    return math.ceil(n / columns), columns


def tile(images: np.ndarray, columns: int, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """Lay ``(n, h, w)`` images out as one ``(rows*(h+gap)-gap, columns*(w+gap)-gap)`` mosaic.

    The gaps and unused tiles hold ``fill`` (NaN by default, which imshow leaves blank), so a colour scale computed
    from the mosaic sees only the images.
    """
    n, h, w = images.shape
    rows = math.ceil(n / columns)
    mosaic = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), fill, dtype=np.float64)
    for k in range(n):
        r, c = divmod(k, columns)
        mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[k]
    return mosaic


def tile_origin(k: int, columns: int, h: int, w: int, gap: int = 1) -> tuple[int, int]:
    """Top-left pixel ``(y, x)`` of tile ``k`` in a :func:`tile` mosaic."""
    r, c = divmod(k, columns)
    return r * (h + gap), c * (w + gap)


def symmetric_limit(values: np.ndarray) -> float:
    """The largest absolute finite value (1.0 if there is none), so a diverging colour map centres on zero."""
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    return top if top > 0 else 1.0


def bare(ax) -> None:
    """No ticks or frame: for image mosaics."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
