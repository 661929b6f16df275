"""Floating-point operation counts of a model, per image, for inference and for one training step.

One multiply-add counts as 2 FLOPs, and counts are per sample (batch axis excluded). Per layer, with ``MACs`` its
multiply-adds:

- Conv2D: forward ``2 * H_out * W_out * kH * kW * C_in * C_out`` (= ``2 * MACs``) plus ``H_out * W_out * C_out``
  bias adds; weight gradient the same (``dbias`` sums as many); input gradient ``2 * MACs``.
- Dense: forward ``2 * in * out`` plus ``out`` bias adds; weight gradient the same; input gradient ``2 * in * out``.
- BatchNorm1D / BatchNorm2D: 2 per element each for the forward (scale and shift, the statistics folded in), the
  weight gradient (``dgamma`` and ``dbeta`` sums) and the input gradient.
- ReLU, LeakyReLU, Tanh, Sigmoid, Dropout: 1 per element forward, as many for the input gradient (Dropout's
  mask multiply in training; at inference it does nothing, but ``forward`` counts it all the same).
- MaxPool2D, AvgPool2D: ``kH * kW`` per output element forward, as many for the input gradient.
- GlobalAvgPool2D: 1 per input element forward, as many for the input gradient.
- Flatten: 0.

A training step is forward + weight gradients + input gradients, where the first layer computes no input gradient
(:meth:`convnp.sequential.Sequential.backward` tells it so). Conv2D and Dense therefore cost about 3x their forward
(2x as the first layer), BatchNorm 3x, the other element-wise layers 2x. Element-wise counts are a convention (a ``tanh`` is counted as
one operation, Dropout's mask multiply as one), small next to the matrix products that dominate the time.
The loss, the optimizer step and BatchNorm's batch statistics are not counted.

References: Molchanov et al. 2017, "Pruning Convolutional Neural Networks for Resource Efficient Inference"
(a convolution as ``2 * H * W * (C_in * K^2 + 1) * C_out``: the same products, with the bias counted as a
multiply-add where we count one add); Kaplan et al. 2020, "Scaling Laws for Neural Language Models", section 2.1
(the backward pass of a matrix product costs twice its forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convnp.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)

_ONE_PER_ELEMENT = (ReLU, LeakyReLU, Tanh, Sigmoid, Dropout)
_KNOWN = (Conv2D, Dense, BatchNorm1D, BatchNorm2D, *_ONE_PER_ELEMENT, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten)


@dataclass(frozen=True)
class LayerFlops:
    """FLOPs of one layer for one sample: its forward pass and the two halves of its backward pass."""

    forward: int
    weight_grad: int
    input_grad: int

    @property
    def train(self) -> int:
        return self.forward + self.weight_grad + self.input_grad


def _breakdown(layer, input_shape: tuple) -> LayerFlops:
    """Forward, weight-gradient and input-gradient FLOPs of ``layer`` on one sample of ``input_shape``."""
    out_shape = tuple(layer.output_shape(tuple(input_shape)))
    n_out = int(np.prod(out_shape))
    if isinstance(layer, Conv2D):
        H_out, W_out, C_out = out_shape
        kH, kW = layer.kernel_size
        products = 2 * H_out * W_out * kH * kW * layer.in_channels * C_out  # 2 * multiply-adds
        bias = H_out * W_out * C_out if layer.use_bias else 0
        return LayerFlops(products + bias, products + bias, products)
    if isinstance(layer, Dense):
        products = 2 * layer.in_features * layer.out_features
        bias = layer.out_features if layer.use_bias else 0
        return LayerFlops(products + bias, products + bias, products)
    if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
        return LayerFlops(2 * n_out, 2 * n_out, 2 * n_out)
    if isinstance(layer, _ONE_PER_ELEMENT):
        return LayerFlops(n_out, 0, n_out)
    if isinstance(layer, (MaxPool2D, AvgPool2D)):  # NotebookMaxPool2D is a MaxPool2D
        kH, kW = layer.kernel_size
        return LayerFlops(kH * kW * n_out, 0, kH * kW * n_out)
    if isinstance(layer, GlobalAvgPool2D):
        n_in = int(np.prod(input_shape))
        return LayerFlops(n_in, 0, n_in)
    if isinstance(layer, Flatten):
        return LayerFlops(0, 0, 0)
    raise TypeError(
        f"flops: no FLOP rule for layer type {type(layer).__name__}; "
        f"known: {', '.join(sorted(cls.__name__ for cls in _KNOWN))}"
    )


def layer_flops(layer, input_shape: tuple) -> int:
    """Forward FLOPs of ``layer`` for one sample (see the module docstring for each layer's rule).

    Parameters
    ----------
    layer : convnp.layers.Layer
    input_shape : tuple
        One sample's shape, batch axis excluded: ``(H, W, C)`` for image layers, ``(in_features,)`` for Dense.

    Returns
    -------
    int

    Examples
    --------
    A 3x3 convolution of a 28x28 image into 8 maps: ``2 * 26 * 26 * 9 * 1 * 8 = 97,344`` for the products plus
    ``26 * 26 * 8 = 5,408`` bias adds.

    >>> import numpy as np
    >>> from convnp.layers import Conv2D
    >>> layer_flops(Conv2D(1, 8, 3, rng=np.random.default_rng(0)), (28, 28, 1))
    102752
    """
    return _breakdown(layer, input_shape).forward


def model_flops(model, input_shape: tuple | None = None) -> dict:
    """FLOPs of ``model`` per image: inference (``forward``) and one training step (``train``), layer by layer.

    Parameters
    ----------
    model : convnp.sequential.Sequential
    input_shape : tuple (H, W, C), optional
        One sample's shape; defaults to ``model.input_shape``.

    Returns
    -------
    dict with
        ``forward`` : int, the forward pass;
        ``train`` : int, forward + weight gradients + input gradients (none for the first layer);
        ``layers`` : list of dicts ``{"index", "layer", "output_shape", "forward", "weight_grad", "input_grad",
        "train"}``, one per layer, whose columns sum to the totals.
    """
    shape = input_shape or model.input_shape
    if shape is None:
        raise ValueError("model_flops: the model has no input_shape; pass input_shape=(H, W, C)")
    shape = tuple(int(d) for d in shape)
    rows = []
    for i, layer in enumerate(model.layers):
        counts = _breakdown(layer, shape)
        if i == 0:
            # Sequential.backward asks the first layer for no input gradient: nothing consumes it.
            counts = LayerFlops(counts.forward, counts.weight_grad, 0)
        shape = tuple(layer.output_shape(shape))
        rows.append(
            {
                "index": i,
                "layer": repr(layer),
                "output_shape": list(shape),
                "forward": counts.forward,
                "weight_grad": counts.weight_grad,
                "input_grad": counts.input_grad,
                "train": counts.train,
            }
        )
    return {
        "forward": sum(r["forward"] for r in rows),
        "train": sum(r["train"] for r in rows),
        "layers": rows,
    }


__all__ = ["LayerFlops", "layer_flops", "model_flops"]
