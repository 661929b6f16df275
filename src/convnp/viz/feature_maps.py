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


def plot_feature_maps(model, image: np.ndarray, *, max_channels: int = 32, ax=None, title: str | None = None,
                      standardize=None):
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
    standardize : Standardize, optional
        The input preparation the image went through (``checkpoint.standardize``): the input is then drawn
        un-standardised, back to its pixels, in colour when it has 3 channels (see :func:`input_pixels`). Without
        it the input is drawn as given, the channels' mean in grey on its own range.

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
    pixels = None if standardize is None else input_pixels(image[0], standardize)  # (H, W, C) in [0, 1]
    layers = conv_activations(model, image)

    fig, axes = _layer_axes(ax, image, len(layers), owner, pixels)
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


def input_pixels(image: np.ndarray, standardize) -> np.ndarray:
    """A prepared image brought back to its pixels for display: ``x * std[c] + mean[c]``, the inverse of
    :class:`convnp.data.transforms.Standardize` up to its ``scale``.

    Parameters
    ----------
    image : ndarray of shape `(H, W, C)`, float
        One standardised image, as the model takes it.
    standardize : Standardize
        What prepared it (``scale``, and ``mean``, ``std`` per channel).

    Returns
    -------
    ndarray of shape `(H, W, C)`, float64, in ``[0, 1]``
        For uint8 data (``scale`` 1/255) the stored pixels divided by 255, clipped to ``[0, 1]``; for float data,
        the stored values min-max scaled over the image (their own range is not known).
    """
    mean, std = np.asarray(standardize.mean, np.float64), np.asarray(standardize.std, np.float64)  # (C,), (C,)
    if image.shape[-1] != len(mean):
        raise ValueError(f"plot_feature_maps: standardize has {len(mean)} channel(s) but the image has shape "
                         f"{image.shape}; pass the standardize of the checkpoint that prepared it")
    pixels = image.astype(np.float64) * std + mean  # (H, W, C), the stored values times scale
    if np.isclose(standardize.scale, 1 / 255):
        return np.clip(pixels, 0.0, 1.0)
    low, high = float(pixels.min()), float(pixels.max())
    return (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)


def _draw_input(ax, image: np.ndarray, pixels: np.ndarray | None) -> None:
    """The input: its ``pixels`` `(H, W, C)` in ``[0, 1]`` (:func:`input_pixels`) in colour, or grey on 0..1; without
    them the prepared ``image`` `(1, H, W, C)`, the channels' mean in grey on its own range."""
    if pixels is None:
        ax.imshow(image[0].mean(axis=-1), cmap="gray", interpolation="nearest")  # (H, W): the channels' mean
    else:
        if pixels.shape[-1] == 3:
            ax.imshow(pixels, interpolation="nearest")
        else:
            ax.imshow(pixels.mean(axis=-1), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title("input", fontsize=9)
    bare(ax)


def _layer_axes(ax, image: np.ndarray, n_layers: int, owner: str, pixels=None):
    """The figure and one Axes per Conv2D layer: the caller's ``ax``, or a new figure with ``image``
    `(1, H, W, C)` (or its ``pixels``) drawn at the left."""
    if ax is None:
        fig = new_figure((3.2 * (n_layers + 1) + 1, 3.8))
        widths = [1.0] + [1.4] * n_layers
        axes = fig.subplots(1, n_layers + 1, width_ratios=widths, squeeze=False)[0]
        _draw_input(axes[0], image, pixels)
        return fig, list(axes[1:])
    axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
    if len(axes) != n_layers:
        raise ValueError(f"{owner}: got {len(axes)} axes for {n_layers} Conv2D layer(s); pass one per layer")
    for a in axes:
        check_axes(a, owner)
    return axes[0].figure, axes
