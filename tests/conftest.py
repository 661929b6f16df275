"""Shared fixtures. BLAS is pinned to one thread before NumPy loads (scripts/test.sh sets the same)."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "CONVNP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest_plugins = ["suite_rules", "pytester"]

try:  # In CI the property tests replay the same examples every run, so a red build is always reproducible.
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")
except ImportError:
    pass


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST arrays from :func:`convnp.data.load_mnist` (fetched once, then read from the cache)."""
    from convnp.data import load_mnist

    return load_mnist()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def digits_checkpoint(mnist, tmp_path_factory):
    """The notebook model trained 2 epochs on 10,000 MNIST images (~97% test accuracy), saved once per session.

    Shared by the predict, evaluate and web tests, which need a model that reads digits, not a particular one.
    """
    from convnp.checkpoint import save_checkpoint
    from convnp.data.transforms import Standardize
    from convnp.models import notebook
    from convnp.optim import SGD
    from convnp.train import fit

    x_train, y_train = mnist[0][:10000, ..., None], mnist[1][:10000].astype(np.int64)  # (N, 28, 28, 1)
    std = Standardize.fit(x_train)
    rng = np.random.default_rng(0)
    model = notebook(rng=rng)
    fit(model, std(x_train), y_train, optimizer=SGD(0.02, momentum=0.9), epochs=2, batch_size=64, rng=rng)
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    save_checkpoint(path, model, meta={"preprocessing": std.to_dict(), "model_name": "notebook"})
    return path
