"""The first convolution's kernels as a grid of small images, one tile per output channel.

A kernel over one input channel (grey images) is drawn on a diverging colour map, every tile on one scale symmetric
about zero. A kernel over three input channels (colour images) is drawn as a small RGB picture: its weights for the
red, green and blue input channels become the tile's red, green and blue, each kernel min-max scaled jointly over
all its weights (its smallest weight black, its largest white, the same factor for the three channels), so the hue
of a pixel shows which colour the kernel responds to there. This is how CS231n's ``visualize_grid`` scales each
filter, and how first-layer filters are usually shown since AlexNet (Krizhevsky et al. 2012, figure 3).
"""

from __future__ import annotations

import numpy as np

from convnp.viz._common import bare, grid_shape, single_axes, symmetric_limit, tile, tile_origin


def _check_weight(weight) -> np.ndarray:
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
    return weight


def _use_rgb(weight: np.ndarray, rgb: bool | None) -> bool:
    C_in = weight.shape[2]
    if rgb is None:
        return C_in == 3
    if rgb and C_in != 3:
        raise ValueError(f"plot_filters: rgb=True needs kernels over 3 input channels (C_in = 3), got C_in = {C_in} "
                         f"(weights of shape {weight.shape})")
    return bool(rgb)


def rgb_kernels(weight: np.ndarray) -> np.ndarray:
    """Kernels over 3 input channels as RGB pictures in ``[0, 1]``, each min-max scaled on its own.

    Parameters
    ----------
    weight : ndarray of shape `(kH, kW, 3, C_out)`

    Returns
    -------
    ndarray of shape `(C_out, kH, kW, 3)`, float64
        ``(w - min_k) / (max_k - min_k)`` with ``min_k``, ``max_k`` the smallest and largest of kernel ``k``'s
        ``kH * kW * 3`` weights; a kernel whose weights are all equal is mid-grey (0.5).
    """
    kernels = weight.astype(np.float64).transpose(3, 0, 1, 2)  # (C_out, kH, kW, 3)
    low = kernels.min(axis=(1, 2, 3), keepdims=True)  # (C_out, 1, 1, 1)
    span = kernels.max(axis=(1, 2, 3), keepdims=True) - low  # (C_out, 1, 1, 1)
    flat = span[:, 0, 0, 0] == 0
    span[flat] = 1.0
    scaled = (kernels - low) / span
    scaled[flat] = 0.5
    return scaled


def filter_grid(weight: np.ndarray, max_columns: int = 8, *, rgb: bool | None = None) -> tuple[np.ndarray, int]:
    """Tile conv kernels into one mosaic.

    Parameters
    ----------
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
        A Conv2D layer's ``params["weight"]``.
    max_columns : int
        At most this many tiles per row.
    rgb : bool, optional
        Draw each kernel's 3 input channels as red, green and blue (:func:`rgb_kernels`). Default: when
        ``C_in`` is 3. Otherwise each tile shows the weights themselves (for ``C_in`` 1, the first layer of a grey
        model, the kernel itself; with several input channels their mean).

    Returns
    -------
    mosaic : ndarray of shape `(rows*(kH+1)-1, columns*(kW+1)-1)`, NaN in the gaps; with ``rgb`` of shape
        `(rows*(kH+1)-1, columns*(kW+1)-1, 3)`, values in ``[0, 1]``, white (1.0) in the gaps
    columns : int
    """
    weight = _check_weight(weight)
    if _use_rgb(weight, rgb):
        kernels = rgb_kernels(weight)  # (C_out, kH, kW, 3)
        _, columns = grid_shape(len(kernels), max_columns)
        channels = [tile(kernels[..., c], columns, fill=1.0) for c in range(3)]  # 3 x (rows', columns')
        return np.stack(channels, axis=-1), columns
    kernels = weight.astype(np.float64).mean(axis=2).transpose(2, 0, 1)  # (C_out, kH, kW)
    _, columns = grid_shape(len(kernels), max_columns)
    return tile(kernels, columns), columns


def plot_filters(weight: np.ndarray, ax=None, *, title: str | None = None, rgb: bool | None = None):
    """Show each kernel of a conv layer as a tile.

    Over one input channel (or several, averaged): one colour scale symmetric about zero for all tiles, so the
    kernels can be compared with each other; red pixels add to the output where the input is bright, blue ones
    subtract; white is zero. Over 3 input channels (``rgb``, the default then): each kernel as an RGB picture of
    its red, green and blue input channels' weights, min-max scaled per kernel (:func:`rgb_kernels`), no colour bar.

    Parameters
    ----------
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
    ax : matplotlib Axes, optional
        Draw into it (the mosaic is one image); default: a new figure.
    title : str, optional
    rgb : bool, optional
        See :func:`filter_grid`; default: when ``C_in`` is 3.

    Returns
    -------
    matplotlib.figure.Figure
    """
    mosaic, columns = filter_grid(weight, rgb=rgb)
    kH, kW, C_in, C_out = np.shape(weight)
    rows = -(-C_out // columns)
    fig, ax = single_axes(ax, (1.1 * columns + 1.2, 1.1 * rows + 0.6), "plot_filters")
    if mosaic.ndim == 3:
        image = ax.imshow(mosaic, interpolation="nearest")
        what = f"{C_out} kernels {kH}x{kW}x3 as RGB (each min-max scaled)"
    else:
        limit = symmetric_limit(mosaic)
        image = ax.imshow(mosaic, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        what = f"{C_out} kernels {kH}x{kW}" + (f" (mean over {C_in} input channels)" if C_in > 1 else "")
    for k in range(C_out):
        y, x = tile_origin(k, columns, kH, kW)
        ax.text(x, y - 0.15, str(k), fontsize=7, va="bottom", ha="left")
    bare(ax)
    ax.set_title(title or f"first convolution: {what}", fontsize=9)
    if mosaic.ndim == 2:
        fig.colorbar(image, ax=ax, shrink=0.8, label="weight")
    return fig
