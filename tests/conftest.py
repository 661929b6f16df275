"""Shared fixtures. BLAS is pinned to one thread before NumPy loads (scripts/test.sh sets the same)."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "CONVNP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST arrays from :func:`convnp.data.load_mnist` (fetched once, then read from the cache)."""
    from convnp.data import load_mnist

    return load_mnist()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
