"""One place MNIST may come from, as a record, and the one line that says why a source failed.

:func:`convnp.data.mnist.load_mnist` walks a list of :class:`Source` records; what each failed or skipped source
said ends up, one line each, in the error raised when none served.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convnp.errors import DataError

__all__ = ["Source", "describe"]


@dataclass(frozen=True)
class Source:
    """A source of the four MNIST arrays.

    Attributes
    ----------
    name : str
        What it is, for the log and the final error: ``"cache /home/me/.cache/convnp/mnist.npz"``, ``"mirrors ..."``.
    load : callable
        Returns the four arrays, checked, keyed ``x_train``, ``y_train``, ``x_test``, ``y_test``; raises on failure.
    skipped : str
        Why it is not tried (``"mirrors=False"``), or ``""`` when it is.
    fills_cache : bool
        Whether what it serves is written to the cache (not for the cache itself).
    """

    name: str
    load: Callable[[], dict[str, np.ndarray]]
    skipped: str = ""
    fills_cache: bool = True


def describe(exc: BaseException) -> str:
    """One line for a failure: convnp's own errors speak for themselves, others get their type name."""
    if isinstance(exc, DataError):
        return str(exc)
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return f"{type(exc).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
