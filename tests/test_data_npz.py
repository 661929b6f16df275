"""load_npz: users' own data sets, validated, never unpickled."""

import os
import pickle

import numpy as np
import pytest

from convnp.data import load_npz
from convnp.errors import DataError, DataNotFoundError


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def save(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def test_grayscale_gets_a_channel_axis_and_keeps_dtype(tmp_path, rng):
    x = rng.integers(0, 256, size=(5, 8, 6), dtype=np.uint8)
    y = np.array([0, 3, 1, 2, 3], dtype=np.uint8)

    x_out, y_out = load_npz(save(tmp_path, x=x, y=y))

    assert x_out.shape == (5, 8, 6, 1)
    assert x_out.dtype == np.uint8
    np.testing.assert_array_equal(x_out[..., 0], x)
    assert y_out.dtype == np.int64
    np.testing.assert_array_equal(y_out, [0, 3, 1, 2, 3])


def test_channels_last_float_is_returned_as_is(tmp_path, rng):
    x = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    x_out, y_out = load_npz(save(tmp_path, x=x, y=np.arange(4)))
    assert x_out.dtype == np.float32
    np.testing.assert_array_equal(x_out, x)
    np.testing.assert_array_equal(y_out, np.arange(4))


def test_falls_back_to_x_train_y_train(tmp_path, rng):
    x = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    path = save(tmp_path, x_train=x, y_train=np.array([7, 8, 9]), x_test=x[:1], y_test=np.array([1]))
    x_out, y_out = load_npz(path)
    assert x_out.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(y_out, [7, 8, 9])


def test_x_y_preferred_over_x_train(tmp_path):
    path = save(tmp_path, x=np.zeros((2, 2, 2)), y=np.array([1, 1]), x_train=np.zeros((5, 2, 2)), y_train=np.zeros(5))
    x_out, y_out = load_npz(path)
    assert len(x_out) == 2
    np.testing.assert_array_equal(y_out, [1, 1])


class Tripwire:
    """Unpickling it creates the folder ``marker`` (``os.mkdir`` is pickled by reference, so it really runs)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_tripwire_fires_when_unpickled(tmp_path):
    """The wire is live: read with allow_pickle=True, the same kind of file creates the marker."""
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([Tripwire(tmp_path / "UNPICKLED")], dtype=object), y=np.array([0]))
    with np.load(path, allow_pickle=True) as archive:
        archive["x"]
    assert (tmp_path / "UNPICKLED").is_dir()


@pytest.mark.parametrize("key", ["x", "y"])
def test_object_array_is_refused_without_unpickling(tmp_path, key):
    path = tmp_path / "evil.npz"
    arrays = {"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0, 1])}
    arrays[key] = np.array([Tripwire(tmp_path / "UNPICKLED"), None], dtype=object)
    np.savez(path, **arrays)

    with pytest.raises(DataError) as info:
        load_npz(path)
    # The marker first: whatever load_npz then said, an unpickled object has already run code.
    assert not (tmp_path / "UNPICKLED").exists(), "load_npz unpickled the object array"
    assert f"evil.npz: array '{key}' holds Python objects (dtype=object)" in str(info.value)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((10, 28)), np.zeros(10, int), r"x has shape \(10, 28\) but expected \(N, H, W\) or \(N, H, W, C\)"),
        (np.zeros((2, 2, 2, 2, 2)), np.zeros(2, int), r"x has shape \(2, 2, 2, 2, 2\) but expected"),
        (np.zeros((0, 4, 4)), np.zeros(0, int), r"x has shape \(0, 4, 4\); every dimension must be at least 1"),
        (np.zeros((2, 4, 4), bool), np.zeros(2, int), r"x has dtype bool but expected a real number type"),
        (np.zeros((2, 4, 4), complex), np.zeros(2, int), r"x has dtype complex128"),
        (np.full((2, 4, 4), "a"), np.zeros(2, int), r"x has dtype <U1"),
        (np.zeros((3, 4, 4)), np.zeros((3, 1), int), r"y has shape \(3, 1\) but expected \(N,\)"),
        (np.zeros((3, 4, 4)), np.zeros(3), r"y has dtype float64 but expected integer.*astype\(np.int64\)"),
        (np.zeros((3, 4, 4)), np.zeros(3, bool), r"y has dtype bool but expected integer"),
        (np.zeros((3, 4, 4)), np.zeros(2, int), r"inconsistent numbers of samples: x has 3 images but y has 2"),
        (np.zeros((3, 4, 4)), np.array([0, -1, 2]), r"y must be >= 0.*found -1 at index 1"),
    ],
)
def test_invalid_arrays_are_named(tmp_path, x, y, match):
    path = save(tmp_path, x=x, y=y)
    with pytest.raises(DataError, match=match) as info:
        load_npz(path)
    assert str(path) in str(info.value)


def test_non_finite_pixels_are_refused(tmp_path):
    x = np.zeros((2, 3, 3), dtype=np.float32)
    x[1, 2, 0] = np.nan
    x[1, 2, 1] = np.inf
    with pytest.raises(DataError, match=r"x has 2 non-finite values.*first at index \(1, 2, 0\)"):
        load_npz(save(tmp_path, x=x, y=np.array([0, 1])))


def test_missing_arrays(tmp_path):
    with pytest.raises(DataError, match=r"expected arrays 'x' and 'y' \(or 'x_train' and 'y_train'\), found a, b"):
        load_npz(save(tmp_path, a=np.zeros(1), b=np.zeros(1)))
    with pytest.raises(DataError, match=r"has array 'x' but no 'y'"):
        load_npz(save(tmp_path, x=np.zeros((1, 2, 2))))


def test_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"absent\.npz: no such file"):
        load_npz(tmp_path / "absent.npz")


def test_not_an_npz(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(DataError, match=r"notes\.npz: is not an \.npz archive"):
        load_npz(text)

    pickled = tmp_path / "data.pkl"
    pickled.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(DataError, match=r"is not an \.npz archive"):
        load_npz(pickled)

    with pytest.raises(DataError, match=r"is not a file"):
        load_npz(tmp_path)
