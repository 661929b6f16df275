"""How convnp's channels-last tensors map to ONNX's channels-first ones: one place for every transpose.

convnp keeps images and feature maps channels-last, ``(N, H, W, C)``; ONNX's ``Conv``, ``MaxPool``,
``AveragePool``, ``GlobalAveragePool`` and ``BatchNormalization`` read channels-first, ``(N, C, H, W)``. The
exporter (:mod:`convnp.onnx.export`) and the importer both go through the functions here, so the two directions
are each other's inverse by construction (``docs/onnx.md`` explains the choices):

==========================  ==============================  =================================  ======================
tensor                      convnp                          ONNX                               convnp -> ONNX
==========================  ==============================  =================================  ======================
images, feature maps        ``(N, H, W, C)``                ``(N, C, H, W)``                   ``NHWC_TO_NCHW``
Conv weight                 ``(kH, kW, C_in, C_out)``       ``(C_out, C_in, kH, kW)``          :func:`conv_weight_to_onnx`
Conv padding                ``((top, bottom), (left, r))``  ``pads = [top, left, bottom, r]``  :func:`conv_pads_to_onnx`
Dense weight                ``(in_features, out_features)`` Gemm ``B``, ``transB = 0``         as it is
Dense rows after a Flatten  ``(h, w, c)`` order             ``(c, h, w)`` order                :func:`channels_first_rows`
==========================  ==============================  =================================  ======================

A flatten is where the layouts meet. convnp's :class:`~convnp.layers.Flatten` of ``(N, H, W, C)`` puts feature
``(h, w, c)`` at index ``(h * W + w) * C + c``; ONNX's ``Flatten`` of ``(N, C, H, W)`` puts it at
``(c * H + h) * W + w``. The exporter transposes back to ``(N, H, W, C)`` before its ``Flatten``, so the dense
weights travel unchanged. A graph written by PyTorch flattens channels-first; the importer permutes the following
dense layer's rows with :func:`channels_last_rows` instead.
"""

from __future__ import annotations

import numpy as np

#: ``np.transpose`` / ONNX ``Transpose(perm=...)`` from ``(N, H, W, C)`` to ``(N, C, H, W)``.
NHWC_TO_NCHW = (0, 3, 1, 2)
#: ``np.transpose`` / ONNX ``Transpose(perm=...)`` from ``(N, C, H, W)`` to ``(N, H, W, C)``.
NCHW_TO_NHWC = (0, 2, 3, 1)


class OnnxError(ValueError):
    """A network cannot be written as ONNX, or an ONNX file cannot be read as a convnp network (one line: what
    and why)."""


def conv_weight_to_onnx(weight: np.ndarray) -> np.ndarray:
    """convnp's Conv2D weight ``(kH, kW, C_in, C_out)`` -> ONNX ``Conv``'s ``W`` ``(C_out, C_in, kH, kW)``.

    A contiguous copy, so it can be written as a tensor as it is.
    """
    return np.ascontiguousarray(weight.transpose(3, 2, 0, 1))  # (C_out, C_in, kH, kW)


def conv_weight_from_onnx(weight: np.ndarray) -> np.ndarray:
    """ONNX ``Conv``'s ``W`` ``(C_out, C_in, kH, kW)`` -> convnp's Conv2D weight ``(kH, kW, C_in, C_out)``
    (contiguous); the inverse of :func:`conv_weight_to_onnx`."""
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0))  # (kH, kW, C_in, C_out)


def conv_pads_to_onnx(pads) -> list[int]:
    """convnp's explicit padding ``((top, bottom), (left, right))`` (:func:`convnp.ops.windows.resolve_padding`)
    -> ONNX's ``pads`` attribute ``[top, left, bottom, right]`` (all the begins, then all the ends).

    convnp's ``"same"`` puts the odd pixel at the bottom and right, so its pads may be asymmetric; ONNX's ``Conv``
    takes each side separately, which keeps them exact (no ``auto_pad``, whose ``SAME_UPPER`` is the same rule but
    depends on the input size at run time).
    """
    (top, bottom), (left, right) = pads
    return [int(top), int(left), int(bottom), int(right)]


def conv_pads_from_onnx(pads) -> tuple[tuple[int, int], tuple[int, int]]:
    """ONNX's ``pads`` ``[top, left, bottom, right]`` -> convnp's ``((top, bottom), (left, right))``; the inverse
    of :func:`conv_pads_to_onnx`. Raises :class:`OnnxError` unless ``pads`` is four non-negative ints."""
    pads = [int(p) for p in pads]
    if len(pads) != 4 or min(pads) < 0:
        raise OnnxError(f"pads must be four non-negative ints [top, left, bottom, right], got {pads}")
    top, left, bottom, right = pads
    return (top, bottom), (left, right)


def channels_first_rows(height: int, width: int, channels: int) -> np.ndarray:
    """Row order that turns a channels-last flatten into a channels-first one.

    Returns ``order`` of shape ``(H * W * C,)`` with ``order[(c * H + h) * W + w] = (h * W + w) * C + c``: for a
    Dense weight ``w`` whose rows follow convnp's ``(h, w, c)`` flatten, ``w[order]`` has its rows in the ``(c, h, w)``
    order of ONNX's ``Flatten`` of ``(N, C, H, W)`` (and ``x_nhwc_flat[:, order] == x_nchw_flat``).
    """
    return np.arange(height * width * channels).reshape(height, width, channels).transpose(2, 0, 1).ravel()


def channels_last_rows(height: int, width: int, channels: int) -> np.ndarray:
    """The inverse of :func:`channels_first_rows`: ``order`` of shape ``(C * H * W,)`` with
    ``order[(h * W + w) * C + c] = (c * H + h) * W + w``.

    For a dense weight ``w`` whose rows follow a channels-first flatten (PyTorch's ``Linear`` after ``Flatten``,
    transposed to ``(in_features, out_features)``), ``w[order]`` is the weight convnp's channels-last
    :class:`~convnp.layers.Flatten` needs.
    """
    return np.arange(channels * height * width).reshape(channels, height, width).transpose(1, 2, 0).ravel()


def dense_weight_from_onnx(b: np.ndarray, trans_b: int) -> np.ndarray:
    """ONNX ``Gemm``'s ``B`` -> convnp's Dense weight ``(in_features, out_features)`` (contiguous).

    ``trans_b = 1`` (what PyTorch writes: ``B`` is ``Linear.weight``, ``(out_features, in_features)``) transposes it;
    ``trans_b = 0`` (what convnp writes, and ``MatMul``'s second input) takes it as it is.
    """
    if b.ndim != 2:
        raise OnnxError(f"a dense weight must be a matrix, got shape {b.shape}")
    return np.ascontiguousarray(b.T if trans_b else b)
