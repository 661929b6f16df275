"""Weight initialisers. Each takes the shape and an ``np.random.Generator``; none touches global random state.

References: He et al. 2015, "Delving Deep into Rectifiers" (``std = sqrt(2 / fan_in)`` for ReLU networks);
Glorot & Bengio 2010 (``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``).
"""

from __future__ import annotations

import numpy as np


def he_normal(shape: tuple, rng: np.random.Generator, *, fan_in: int, dtype=np.float32) -> np.ndarray:
    """Normal with mean 0 and standard deviation ``sqrt(2 / fan_in)``."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def glorot_uniform(shape: tuple, rng: np.random.Generator, *, fan_in: int, fan_out: int, dtype=np.float32) -> np.ndarray:
    """Uniform on ``[-a, a]`` with ``a = sqrt(6 / (fan_in + fan_out))``."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def zeros(shape: tuple, rng: np.random.Generator | None = None, *, dtype=np.float32) -> np.ndarray:
    """All zeros; ``rng`` is accepted for a uniform signature and unused."""
    return np.zeros(shape, dtype=dtype)


INITIALIZERS = {"he": he_normal, "glorot": glorot_uniform}


def init_weight(
    kind: str, shape: tuple, rng: np.random.Generator, *, fan_in: int, fan_out: int, dtype, owner: str
) -> np.ndarray:
    """Draw a weight with the initialiser named ``kind`` ("he" or "glorot")."""
    if kind == "he":
        return he_normal(shape, rng, fan_in=fan_in, dtype=dtype)
    if kind == "glorot":
        return glorot_uniform(shape, rng, fan_in=fan_in, fan_out=fan_out, dtype=dtype)
    raise ValueError(f"{owner}: weight_init must be one of {sorted(INITIALIZERS)}, got {kind!r}")


def default_rng(rng) -> np.random.Generator:
    """Check an ``rng`` argument; ``None`` gives a fresh, unseeded Generator (never the global NumPy state)."""
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng
