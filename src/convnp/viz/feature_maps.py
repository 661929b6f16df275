"""What each convolution sees: the activations of one image after every Conv2D layer, a grid per layer."""

from __future__ import annotations

import numpy as np

from convnp.inference import layer_outputs
from convnp.viz._common import bare, check_axes, grid_shape, new_figure, symmetric_limit, tile


def _conv_indices(model, owner: str) -> list[int]:
    from convnp.layers import Conv2D

    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"{owner}: expected a Sequential model (with .layers), got {type(model).__name__}")
    indices = [i for i, layer in enumerate(layers) if isinstance(layer, Conv2D)]
    if not indices:
        raise ValueError(f"{owner}: the model has no Conv2D layer, so there are no feature maps to show")
    return indices


def conv_activations(model, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Run ``model`` layer by layer in inference mode (:func:`convnp.inference.layer_outputs`) and keep the output
    of every Conv2D layer.

    Parameters
    ----------
    model : Sequential
    x : ndarray of shape `(N, H, W, C)`, float
        Prepared input (``checkpoint.prepare(images)``), as the model's first layer takes it.

    Returns
    -------
    list of ``(name, activations)``
        One per Conv2D layer, in order: ``name`` like ``"layer 0: Conv2D(in_channels=1, ...)"``, ``activations``
        of shape `(N, H_out, W_out, C_out)` (before the activation function that follows the convolution).
        Layers after the last Conv2D are not run.
    """
    owner = "conv_activations"
    indices = _conv_indices(model, owner)
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected a batch of images of shape (N, H, W, C), got shape {x.shape}; "
                         "add the batch axis with x[None]")
    if x.dtype.kind != "f":
        raise ValueError(f"{owner}: expected prepared float input, got dtype {x.dtype}; "
                         "standardise the images first, e.g. checkpoint.prepare(images)")
    if x.dtype != model.dtype:
        x = x.astype(model.dtype)
    outputs = layer_outputs(model, x, upto=indices[-1])  # layers 0 .. the last Conv2D
    return [(f"layer {i}: {model.layers[i]!r}", outputs[i]) for i in indices]


def plot_feature_maps(model, image: np.ndarray, *, max_channels: int = 32, ax=None, title: str | None = None):
    """Show the input image and, for each Conv2D layer, its output channels as a grid of maps.

    Each layer's maps share one colour scale, symmetric about zero (red: the kernel matched, blue: the opposite
    pattern); a ReLU after the convolution keeps only the red.

    Parameters
    ----------
    model : Sequential
    image : ndarray of shape `(H, W, C)` or `(1, H, W, C)`, float
        One prepared image (``checkpoint.prepare(x[i : i + 1])``).
    max_channels : int
        Show at most this many channels per layer (the first ones).
    ax : sequence of Axes, one per Conv2D layer, optional
        Draw each layer's grid there (a single Axes is accepted for a one-convolution model); the input image is then
        not drawn. Default: a new figure with the input at the left.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    owner = "plot_feature_maps"
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[None]  # (H, W, C) -> (1, H, W, C)
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"{owner}: expected one image of shape (H, W, C) or (1, H, W, C), got shape {image.shape}")
    if not isinstance(max_channels, int) or max_channels < 1:
        raise ValueError(f"{owner}: max_channels must be a positive integer, got {max_channels!r}")
    layers = conv_activations(model, image)

    fig, axes = _layer_axes(ax, image, len(layers), owner)
    for a, (name, maps) in zip(axes, layers):
        n_maps = maps.shape[-1]
        maps = maps[0].transpose(2, 0, 1)[:max_channels].astype(np.float64)  # (C_out, H_out, W_out)
        _, columns = grid_shape(len(maps), max_columns=8)
        mosaic = tile(maps, columns, gap=2)
        limit = symmetric_limit(mosaic)
        picture = a.imshow(mosaic, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        count = f"{len(maps)} of {n_maps}" if len(maps) < n_maps else f"{n_maps}"
        a.set_title(f"{name.split(':')[0]} (Conv2D): {count} maps {maps.shape[1]}x{maps.shape[2]}", fontsize=9)
        bare(a)
        fig.colorbar(picture, ax=a, shrink=0.7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _layer_axes(ax, image: np.ndarray, n_layers: int, owner: str):
    """The figure and one Axes per Conv2D layer: the caller's ``ax``, or a new figure with ``image``
    `(1, H, W, C)` drawn at the left."""
    if ax is None:
        fig = new_figure((3.2 * (n_layers + 1) + 1, 3.8))
        widths = [1.0] + [1.4] * n_layers
        axes = fig.subplots(1, n_layers + 1, width_ratios=widths, squeeze=False)[0]
        ax_input, axes = axes[0], list(axes[1:])
        shown = image[0].mean(axis=-1)  # (H, W): the channels' mean
        ax_input.imshow(shown, cmap="gray", interpolation="nearest")
        ax_input.set_title("input", fontsize=9)
        bare(ax_input)
        return fig, axes
    axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
    if len(axes) != n_layers:
        raise ValueError(f"{owner}: got {len(axes)} axes for {n_layers} Conv2D layer(s); pass one per layer")
    for a in axes:
        check_axes(a, owner)
    return axes[0].figure, axes
