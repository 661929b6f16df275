"""The first convolution's kernels as a grid of small images, one tile per output channel."""

from __future__ import annotations

import numpy as np

from convnp.viz._common import bare, grid_shape, single_axes, symmetric_limit, tile, tile_origin


def filter_grid(weight: np.ndarray, max_columns: int = 8) -> tuple[np.ndarray, int]:
    """Tile conv kernels into one mosaic.

    Parameters
    ----------
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
        A Conv2D layer's ``params["weight"]``. With several input channels each tile shows their mean (for the
        first layer of an MNIST model ``C_in`` is 1 and the tile is the kernel itself).

    Returns
    -------
    mosaic : ndarray of shape `(rows*(kH+1)-1, columns*(kW+1)-1)`, NaN in the gaps
    columns : int
    """
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(
            f"plot_filters: expected conv weights of shape (kH, kW, C_in, C_out), got shape {weight.shape}; "
            "pass model.layers[0].params['weight']"
        )
    if weight.dtype.kind not in "iuf" or weight.size == 0:
        raise ValueError(f"plot_filters: expected a non-empty array of numbers, got dtype {weight.dtype}, "
                         f"shape {weight.shape}")
    if not np.isfinite(weight).all():
        raise ValueError("plot_filters: the weights hold NaN or inf")
    kernels = weight.astype(np.float64).mean(axis=2).transpose(2, 0, 1)  # (C_out, kH, kW)
    _, columns = grid_shape(len(kernels), max_columns)
    return tile(kernels, columns), columns


def plot_filters(weight: np.ndarray, ax=None, *, title: str | None = None):
    """Show each kernel of a conv layer as a tile, on one colour scale symmetric about zero.

    Red pixels add to the output where the input is bright, blue ones subtract; white is zero. One scale for all
    tiles lets the kernels be compared with each other.

    Parameters
    ----------
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
    ax : matplotlib Axes, optional
        Draw into it (the mosaic is one image); default: a new figure.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    mosaic, columns = filter_grid(weight)
    kH, kW, C_in, C_out = np.shape(weight)
    rows = -(-C_out // columns)
    fig, ax = single_axes(ax, (1.1 * columns + 1.2, 1.1 * rows + 0.6), "plot_filters")
    limit = symmetric_limit(mosaic)
    image = ax.imshow(mosaic, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    for k in range(C_out):
        y, x = tile_origin(k, columns, kH, kW)
        ax.text(x, y - 0.15, str(k), fontsize=7, va="bottom", ha="left")
    bare(ax)
    what = f"{C_out} kernels {kH}x{kW}" + (f" (mean over {C_in} input channels)" if C_in > 1 else "")
    ax.set_title(title or f"first convolution: {what}", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label="weight")
    return fig
