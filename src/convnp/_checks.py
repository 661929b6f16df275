"""Argument and array checks shared by layers, losses and the model.

Errors follow one pattern: who complains, what was expected, what came, and where it helps, how to fix it.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_pair(value, name: str, owner: str, *, minimum: int = 1) -> tuple[int, int]:
    """Turn an int or a pair of ints into ``(h, w)``, each at least ``minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return pair


def positive_int(value, name: str, owner: str) -> int:
    """Check that ``value`` is an int >= 1."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def float_dtype(dtype, owner: str) -> np.dtype:
    """Check that ``dtype`` is float32 or float64, the two precisions every layer supports."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{owner}: dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{owner}: dtype must be float32 or float64, got {dt}")
    return dt


def check_finite(x: np.ndarray, what: str, owner) -> None:
    """Raise if ``x`` holds NaN or infinity.

    A sum is one fast vectorised pass and is non-finite whenever any element is; only then (or on overflow) is
    the element-wise test run to say where.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # huge but finite values may overflow the sum
        total = np.sum(x, dtype=np.float64)
    if np.isfinite(total):
        return
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{owner}: {what} holds {int(bad.sum())} non-finite value(s) (NaN or inf), the first at index {first}"
        )


def check_input(
    x, owner, *, ndim: int | None, trailing: tuple | None, dtype: np.dtype | None, layout: str, finite: bool = True
) -> np.ndarray:
    """Validate a layer's input array.

    Parameters
    ----------
    x : array
        The input; must already be an ``np.ndarray``.
    owner : object
        Who is checking (a layer, or its name); formatted with ``str`` into messages, so only when one is raised.
    ndim : int or None
        Expected rank, batch axis included; ``None`` accepts any rank of at least 1.
    trailing : tuple or None
        Expected sizes of the axes after the batch axis; ``None`` entries are free.
    dtype : np.dtype or None
        The layer's parameter dtype, which the input must match; ``None`` accepts float32 or float64.
    layout : str
        Human-readable shape such as ``"(N, H, W, C)"`` for messages.
    finite : bool
        Also scan the values for NaN and infinity (one pass over the data).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{owner}: expected a NumPy array of shape {layout}, got {type(x).__name__}")
    if ndim is None:
        ndim = max(x.ndim, 1)  # any rank with a batch axis
    if x.ndim != ndim:
        raise ValueError(f"{owner}: expected input of rank {ndim} with shape {layout}, got shape {x.shape}")
    if trailing is not None:
        for axis, (want, got) in enumerate(zip(trailing, x.shape[1:]), start=1):
            if want is not None and want != got:
                raise ValueError(
                    f"{owner}: expected input of shape {layout} with axis {axis} = {want}, got shape {x.shape}"
                )
    if x.shape[0] == 0:
        raise ValueError(f"{owner}: expected a batch of at least one sample, got shape {x.shape}")
    if dtype is None:
        if x.dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"{owner}: expected float32 or float64 input, got {x.dtype}; cast it with x.astype(np.float32)"
            )
    elif x.dtype != dtype:
        raise ValueError(
            f"{owner}: expected {dtype} input to match the layer's parameters, got {x.dtype}; "
            f"cast it with x.astype(np.{dtype})"
        )
    if finite:
        check_finite(x, "input", owner)
    return x


def check_dout(dout, expected_shape: tuple, dtype: np.dtype, owner) -> np.ndarray:
    """Validate the upstream gradient given to ``backward``: an array of the forward output's shape and dtype."""
    if not isinstance(dout, np.ndarray):
        raise TypeError(f"{owner}: backward expected a NumPy array, got {type(dout).__name__}")
    if dout.shape != tuple(expected_shape):
        raise ValueError(
            f"{owner}: backward expected dout of shape {tuple(expected_shape)} (the forward output), got {dout.shape}"
        )
    if dout.dtype != dtype:
        raise ValueError(f"{owner}: backward expected {dtype} dout, got {dout.dtype}")
    return dout
