"""Bad input is refused with a clear message: who complains, what was expected, what came.

Data errors are ``ValueError`` (``TypeError`` for something that is not an array at all) and name the layer by its
``repr``, e.g. ``Conv2D(in_channels=3, ...)``. Constructor errors are ``ValueError`` naming the argument.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from convnp.layers import Conv2D, Dense, Flatten, MaxPool2D, NotebookMaxPool2D, ReLU
from convnp.losses import SoftmaxCrossEntropy
from convnp.sequential import Sequential
from convnp.models import notebook


def esc(text: str) -> str:
    return re.escape(text)


# name -> (factory, a valid input shape, the layout in messages)
LAYERS = {
    "Conv2D": (lambda: Conv2D(3, 4, 3, rng=np.random.default_rng(0)), (2, 8, 8, 3), "(N, H, W, C)"),
    "MaxPool2D": (lambda: MaxPool2D(2), (2, 8, 8, 3), "(N, H, W, C)"),
    "NotebookMaxPool2D": (lambda: NotebookMaxPool2D(2), (2, 8, 8, 3), "(N, H, W, C)"),
    "ReLU": (ReLU, (2, 5, 5, 3), "(N, ...)"),
    "Flatten": (Flatten, (2, 5, 5, 3), "(N, ...)"),
    "Dense": (lambda: Dense(6, 2, rng=np.random.default_rng(0)), (3, 6), "(N, in_features)"),
}
NAMES = list(LAYERS)


def _layer(name):
    make, shape, layout = LAYERS[name]
    return make(), shape, layout


def test_every_layer_accepts_its_valid_input():
    """The baseline the tests below perturb: each valid input passes."""
    for name in NAMES:
        layer, shape, _ = _layer(name)
        assert layer.forward(np.zeros(shape, np.float32)).dtype == np.float32


# ---- layers: rank, shape, channels ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_wrong_rank(name):
    layer, shape, layout = _layer(name)
    bad = np.zeros(shape[1:], np.float32) if layer.input_ndim is not None else np.array(1.0, np.float32)
    rank = layer.input_ndim or 1
    with pytest.raises(ValueError, match=esc(f"{layer!r}: expected input of rank {rank} with shape {layout}, got shape {bad.shape}")):
        layer.forward(bad)


@pytest.mark.parametrize(
    ("name", "bad_shape", "axis", "want"),
    [("Conv2D", (2, 8, 8, 4), 3, 3), ("Conv2D", (2, 8, 8, 1), 3, 3), ("Dense", (3, 5), 1, 6), ("Dense", (3, 60), 1, 6)],
)
def test_wrong_channel_or_feature_count(name, bad_shape, axis, want):
    layer, _, layout = _layer(name)
    with pytest.raises(
        ValueError, match=esc(f"{layer!r}: expected input of shape {layout} with axis {axis} = {want}, got shape {bad_shape}")
    ):
        layer.forward(np.zeros(bad_shape, np.float32))


def test_dense_given_feature_maps_is_told_the_rank():
    layer = Dense(6, 2)
    with pytest.raises(ValueError, match=esc("Dense(in_features=6, out_features=2, bias=True): expected input of rank 2")):
        layer.forward(np.zeros((2, 1, 2, 3), np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch(name):
    layer, shape, _ = _layer(name)
    with pytest.raises(ValueError, match=esc(f"{layer!r}: expected a batch of at least one sample, got shape {(0, *shape[1:])}")):
        layer.forward(np.zeros((0, *shape[1:]), np.float32))


# ---- layers: dtypes and non-arrays --------------------------------------------------------------------------------------
BAD_DTYPES = [np.int64, np.int32, np.uint8, np.float16, np.complex128, object, bool]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_wrong_dtype(name, dtype):
    layer, shape, _ = _layer(name)
    x = np.zeros(shape, dtype=dtype)
    if layer.dtype is None:  # parameter-free layers take either float precision
        expected = f"{layer!r}: expected float32 or float64 input, got {np.dtype(dtype)}; cast it with x.astype(np.float32)"
    else:
        expected = f"{layer!r}: expected float32 input to match the layer's parameters, got {np.dtype(dtype)}; cast it"
    with pytest.raises(ValueError, match=esc(expected)):
        layer.forward(x)


@pytest.mark.parametrize("name", ["Conv2D", "Dense"])
def test_layer_with_parameters_refuses_the_other_float_precision(name):
    layer, shape, _ = _layer(name)
    with pytest.raises(ValueError, match=esc(f"{layer!r}: expected float32 input to match the layer's parameters, got float64")):
        layer.forward(np.zeros(shape, np.float64))


@pytest.mark.parametrize("kind", ["list", "tuple", "scalar", "None"])
@pytest.mark.parametrize("name", NAMES)
def test_not_an_array(name, kind):
    layer, shape, layout = _layer(name)
    value = {"list": np.zeros(shape).tolist(), "tuple": tuple(np.zeros(shape[0])), "scalar": 1.0, "None": None}[kind]
    with pytest.raises(TypeError, match=esc(f"{layer!r}: expected a NumPy array of shape {layout}, got {type(value).__name__}")):
        layer.forward(value)


# ---- layers: non-finite values --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", NAMES)
def test_non_finite_input(name, value):
    layer, shape, _ = _layer(name)
    x = np.ones(shape, np.float32)
    where = (1,) + (0,) * (len(shape) - 2) + (2,)
    x[where] = value
    with pytest.raises(ValueError, match=esc(f"{layer!r}: input holds 1 non-finite value(s) (NaN or inf), the first at index {where}")):
        layer.forward(x)


def test_non_finite_count_and_first_position():
    layer = ReLU()
    x = np.zeros((3, 4), np.float64)
    x[2, 3], x[1, 1], x[1, 2] = np.inf, np.nan, -np.inf
    with pytest.raises(ValueError, match=esc("ReLU(): input holds 3 non-finite value(s) (NaN or inf), the first at index (1, 1)")):
        layer.forward(x)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_huge_but_finite_input_is_accepted():
    """Values whose sum overflows are still finite: the fast sum test must not raise on them."""
    x = np.full((2, 3), 1e308)
    np.testing.assert_array_equal(ReLU().forward(x), x)


def test_huge_but_finite_input_raises_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ReLU().forward(np.full((2, 3), 1e308))


# ---- layers: input too small ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("layer", "shape", "detail"),
    [
        (Conv2D(1, 1, 5), (1, 3, 3, 1), "a 5x5 kernel does not fit in 3x3 with padding (0, 0)"),
        (Conv2D(1, 1, (2, 5), padding=(0, 0)), (2, 4, 4, 1), "a 2x5 kernel does not fit in 4x4"),
        (Conv2D(2, 1, 3, stride=2, padding="valid"), (1, 2, 9, 2), "a 3x3 kernel does not fit in 2x9 with padding 'valid'"),
        (MaxPool2D(3), (1, 2, 2, 1), "a 3x3 pooling window does not fit in 2x2"),
        (MaxPool2D((2, 4), stride=1), (1, 5, 3, 2), "a 2x4 pooling window does not fit in 5x3"),
    ],
    ids=repr,
)
def test_input_too_small_for_the_kernel(layer, shape, detail):
    with pytest.raises(ValueError, match=esc(f"{layer!r}: input of shape {shape} is too small: {detail}")):
        layer.forward(np.zeros(shape, np.float32))


def test_padding_can_make_a_small_input_fit():
    out = Conv2D(1, 1, 5, padding=1).forward(np.zeros((1, 3, 3, 1), np.float32))
    assert out.shape == (1, 1, 1, 1)


# ---- backward: a wrong dout -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_backward_with_wrong_dout(name):
    layer, shape, _ = _layer(name)
    out = layer.forward(np.ones(shape, np.float32), training=True)
    wrong = out.shape[:-1] + (out.shape[-1] + 1,)
    with pytest.raises(ValueError, match=esc(f"{layer!r}: backward expected dout of shape {out.shape} (the forward output), got {wrong}")):
        layer.backward(np.ones(wrong, np.float32))
    with pytest.raises(ValueError, match=esc(f"{layer!r}: backward expected dout of shape {out.shape}")):
        layer.backward(np.ones(out.shape[1:], np.float32))  # batch axis forgotten
    with pytest.raises(ValueError, match=esc(f"{layer!r}: backward expected float32 dout, got float64")):
        layer.backward(np.ones(out.shape, np.float64))
    with pytest.raises(TypeError, match=esc(f"{layer!r}: backward expected a NumPy array, got list")):
        layer.backward(np.ones(out.shape).tolist())
    assert layer.backward(np.ones(out.shape, np.float32)).shape == shape  # the right dout still works


def test_sequential_backward_with_wrong_dout():
    model = notebook(rng=np.random.default_rng(0))
    model.forward(np.zeros((2, 28, 28, 1), np.float32), training=True)
    with pytest.raises(ValueError, match=esc("Dense(in_features=1352, out_features=10, bias=True): backward expected dout of shape (2, 10)")):
        model.backward(np.zeros((2, 9), np.float32))


# ---- the loss ---------------------------------------------------------------------------------------------------------------------
LOSS = "SoftmaxCrossEntropy(): "


@pytest.mark.parametrize(
    ("logits", "error", "message"),
    [
        (np.zeros(10), ValueError, "expected input of rank 2 with shape (N, n_classes), got shape (10,)"),
        (np.zeros((2, 3, 4)), ValueError, "expected input of rank 2 with shape (N, n_classes), got shape (2, 3, 4)"),
        (np.zeros((3, 10), np.int64), ValueError, "expected float32 or float64 input, got int64"),
        (np.zeros((3, 10), np.uint8), ValueError, "expected float32 or float64 input, got uint8"),
        (np.zeros((3, 10), np.float16), ValueError, "expected float32 or float64 input, got float16"),
        (np.zeros((3, 10), object), ValueError, "expected float32 or float64 input, got object"),
        (np.zeros((3, 10)).tolist(), TypeError, "expected a NumPy array of shape (N, n_classes), got list"),
        (np.where(np.eye(3, 10) > 0, np.nan, 0.0), ValueError, "input holds 3 non-finite value(s) (NaN or inf), the first at index (0, 0)"),
        (np.where(np.eye(3, 10) > 0, np.inf, 0.0), ValueError, "input holds 3 non-finite value(s)"),
        (np.zeros((0, 10)), ValueError, "expected a batch of at least one sample"),
    ],
    ids=["rank1", "rank3", "int64", "uint8", "float16", "object", "list", "nan", "inf", "empty"],
)
def test_loss_rejects_bad_logits(logits, error, message):
    y = np.zeros(3, np.int64)
    with pytest.raises(error, match=esc(LOSS + message)):
        SoftmaxCrossEntropy().forward(logits, y)


@pytest.mark.parametrize(
    ("y", "error", "message"),
    [
        (np.array([0, 1, 10]), ValueError, "labels must lie in [0, 9] for 10 classes, got 10 (1 out of range)"),
        (np.array([-1, 1, 2]), ValueError, "labels must lie in [0, 9] for 10 classes, got -1 (1 out of range)"),
        (np.array([12, -3, 11]), ValueError, "labels must lie in [0, 9] for 10 classes, got 12 (3 out of range)"),
        (np.array([0.0, 1.0, 2.0]), ValueError, "labels must be integers (class indices), got dtype float64"),
        (np.array([True, False, True]), ValueError, "labels must be integers (class indices), got dtype bool"),
        (np.array([0, 1]), ValueError, "labels must have shape (3,) to match the logits, got (2,)"),
        (np.array([0, 1, 2, 3]), ValueError, "labels must have shape (3,) to match the logits, got (4,)"),
        (np.zeros((3, 10), np.int64), ValueError, "labels must have shape (3,) to match the logits, got (3, 10)"),
        ([0, 1, 2], TypeError, "labels must be a NumPy integer array of shape (N,), got list"),
    ],
    ids=["too-big", "negative", "several", "float", "bool", "short", "long", "one-hot", "list"],
)
def test_loss_rejects_bad_labels(y, error, message):
    with pytest.raises(error, match=esc(LOSS + message)):
        SoftmaxCrossEntropy().forward(np.zeros((3, 10)), y)


def test_loss_accepts_unsigned_labels_and_backward_needs_forward():
    loss = SoftmaxCrossEntropy()
    with pytest.raises(RuntimeError, match=esc("SoftmaxCrossEntropy(): backward needs a preceding forward")):
        loss.backward()
    assert loss.forward(np.zeros((3, 4)), np.array([0, 3, 1], np.uint8)) == pytest.approx(np.log(4))


# ---- the Sequential model ------------------------------------------------------------------------------------------------------------
CONV0 = "Conv2D(in_channels=1, out_channels=8, kernel_size=3, stride=1, padding=0, bias=True)"


@pytest.fixture(scope="module")
def model():
    return notebook(rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (np.zeros((2, 28, 28), np.float32), ValueError, f"{CONV0}: expected input of rank 4 with shape (N, H, W, C), got shape (2, 28, 28)"),
        (np.zeros((28, 28), np.float32), ValueError, f"{CONV0}: expected input of rank 4"),
        (np.zeros((2, 28, 28, 3), np.float32), ValueError, f"{CONV0}: expected input of shape (N, H, W, C) with axis 3 = 1, got shape (2, 28, 28, 3)"),
        (np.zeros((2, 28, 28, 1), np.int64), ValueError, f"{CONV0}: expected float32 input to match the layer's parameters, got int64"),
        (np.zeros((2, 28, 28, 1), np.uint8), ValueError, f"{CONV0}: expected float32 input to match the layer's parameters, got uint8"),
        (np.zeros((2, 28, 28, 1), object), ValueError, f"{CONV0}: expected float32 input to match the layer's parameters, got object"),
        (np.zeros((2, 28, 28, 1)).tolist(), TypeError, f"{CONV0}: expected a NumPy array of shape (N, H, W, C), got list"),
        (np.full((2, 28, 28, 1), np.nan, np.float32), ValueError, f"{CONV0}: input holds 1568 non-finite value(s) (NaN or inf), the first at index (0, 0, 0, 0)"),
        (np.full((1, 28, 28, 1), np.inf, np.float32), ValueError, f"{CONV0}: input holds 784 non-finite value(s)"),
        (np.zeros((2, 2, 2, 1), np.float32), ValueError, f"{CONV0}: input of shape (2, 2, 2, 1) is too small"),
        # a wrong image size is caught at the door, against the model's input_shape
        (np.zeros((2, 27, 28, 1), np.float32), ValueError, "Sequential: expected input of shape (N, 28, 28, 1) (the model's input_shape), got (2, 27, 28, 1)"),
    ],
    ids=["rank3", "rank2", "channels", "int64", "uint8", "object", "list", "nan", "inf", "too-small", "27x28"],
)
def test_sequential_rejects_bad_input(model, x, error, message):
    with pytest.raises(error, match=esc(message)):
        model.forward(x)


def test_sequential_rejects_float16_input(model):
    with pytest.raises(ValueError, match=esc(f"{CONV0}: expected float32") + "|float16"):
        model.forward(np.zeros((2, 28, 28, 1), np.float16))


# ---- constructor arguments -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: Conv2D(1, 8, 0), ValueError, "Conv2D: kernel_size must be >= 1, got 0"),
        (lambda: Conv2D(1, 8, (3, 0)), ValueError, "Conv2D: kernel_size must be >= 1, got (3, 0)"),
        (lambda: Conv2D(1, 8, -3), ValueError, "Conv2D: kernel_size must be >= 1, got -3"),
        (lambda: Conv2D(1, 8, 2.5), ValueError, "Conv2D: kernel_size must be an int or a pair of ints, got 2.5"),
        (lambda: Conv2D(1, 8, (3, 3, 3)), ValueError, "Conv2D: kernel_size must be an int or a pair of ints, got (3, 3, 3)"),
        (lambda: Conv2D(1, 8, "3"), ValueError, "Conv2D: kernel_size must be an int or a pair of ints, got '3'"),
        (lambda: Conv2D(1, 8, 3, stride=0), ValueError, "Conv2D: stride must be >= 1, got 0"),
        (lambda: Conv2D(1, 8, 3, stride=(1, True)), ValueError, "Conv2D: stride must be an int or a pair of ints, got (1, True)"),
        (lambda: Conv2D(1, 8, 3, padding=-1), ValueError, "Conv2D: padding must be >= 0, got -1"),
        (lambda: Conv2D(1, 8, 3, padding=(1, -2)), ValueError, "Conv2D: padding must be >= 0, got (1, -2)"),
        (lambda: Conv2D(1, 8, 3, padding="full"), ValueError, "Conv2D: padding must be an int, a pair of ints, 'valid' or 'same', got 'full'"),
        (lambda: Conv2D(1, 8, 3, padding="SAME"), ValueError, "Conv2D: padding must be an int, a pair of ints, 'valid' or 'same', got 'SAME'"),
        (lambda: Conv2D(1, 8, 3, padding=1.5), ValueError, "Conv2D: padding must be an int or a pair of ints, got 1.5"),
        (lambda: Conv2D("3", 8, 3), ValueError, "Conv2D: in_channels must be a positive integer, got '3'"),
        (lambda: Conv2D(0, 8, 3), ValueError, "Conv2D: in_channels must be a positive integer, got 0"),
        (lambda: Conv2D(3.0, 8, 3), ValueError, "Conv2D: in_channels must be a positive integer, got 3.0"),
        (lambda: Conv2D(True, 8, 3), ValueError, "Conv2D: in_channels must be a positive integer, got True"),
        (lambda: Conv2D(1, -8, 3), ValueError, "Conv2D: out_channels must be a positive integer, got -8"),
        (lambda: Conv2D(1, 8, 3, bias="yes"), ValueError, "Conv2D: bias must be True or False, got 'yes'"),
        (lambda: Conv2D(1, 8, 3, bias=1), ValueError, "Conv2D: bias must be True or False, got 1"),
        (lambda: Conv2D(1, 8, 3, weight_init="xavier"), ValueError, "Conv2D: weight_init must be one of ['glorot', 'he'], got 'xavier'"),
        (lambda: Conv2D(1, 8, 3, dtype=np.float16), ValueError, "Conv2D: dtype must be float32 or float64, got float16"),
        (lambda: Conv2D(1, 8, 3, dtype="int32"), ValueError, "Conv2D: dtype must be float32 or float64, got int32"),
        (lambda: Conv2D(1, 8, 3, rng=42), TypeError, "rng must be a numpy.random.Generator (np.random.default_rng(seed)), got int"),
        (lambda: Conv2D(1, 8, 3, rng=np.random.RandomState(0)), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: MaxPool2D(0), ValueError, "MaxPool2D: kernel_size must be >= 1, got 0"),
        (lambda: MaxPool2D(2, stride=0), ValueError, "MaxPool2D: stride must be >= 1, got 0"),
        (lambda: MaxPool2D("2"), ValueError, "MaxPool2D: kernel_size must be an int or a pair of ints, got '2'"),
        (lambda: MaxPool2D((2, 2, 2)), ValueError, "MaxPool2D: kernel_size must be an int or a pair of ints, got (2, 2, 2)"),
        (lambda: Dense(0, 3), ValueError, "Dense: in_features must be a positive integer, got 0"),
        (lambda: Dense(3, "4"), ValueError, "Dense: out_features must be a positive integer, got '4'"),
        (lambda: Dense(3, 4, bias="yes"), ValueError, "Dense: bias must be True or False, got 'yes'"),
        (lambda: Dense(3, 4, weight_init="uniform"), ValueError, "Dense: weight_init must be one of ['glorot', 'he'], got 'uniform'"),
        (lambda: Dense(3, 4, dtype=np.int64), ValueError, "Dense: dtype must be float32 or float64, got int64"),
        (lambda: notebook(init="xavier"), ValueError, "notebook: init must be 'he' or 'notebook', got 'xavier'"),
    ],
    ids=lambda v: None if callable(v) or isinstance(v, type) else v[:60],
)
def test_constructor_arguments(build, error, message):
    with pytest.raises(error, match=esc(message)):
        build()


def test_sequential_construction_errors():
    with pytest.raises(ValueError, match=esc("Sequential: expected at least one layer, got none")):
        Sequential([])
    with pytest.raises(TypeError, match=esc("Sequential: layer 1 must be a convnp Layer, got str")):
        Sequential([ReLU(), "relu"])
    with pytest.raises(ValueError, match=esc("Sequential: all layers must share one dtype, got ['float32', 'float64']")):
        Sequential([Dense(3, 3), Dense(3, 3, dtype=np.float64)])
    with pytest.raises(ValueError, match=esc("Sequential: layer 0") + ".*does not fit in 2x2"):
        Sequential([Conv2D(1, 1, 3)], input_shape=(2, 2, 1))
    with pytest.raises(ValueError, match=esc("Sequential: dtype must be float32 or float64, got float16")):
        Sequential([ReLU()]).astype(np.float16)


def test_sequential_input_shape_catches_a_dense_feature_mismatch():
    with pytest.raises(ValueError, match=esc("Sequential: layer 1 Dense(in_features=10, out_features=2, bias=True) cannot take input of shape (12,)")):
        Sequential([Flatten(), Dense(10, 2)], input_shape=(2, 2, 3))


def test_sequential_input_shape_catches_a_conv_channel_mismatch():
    with pytest.raises(ValueError, match=esc("Sequential: layer 0 Conv2D(in_channels=3") + ".*cannot take input of shape \\(8, 8, 1\\)"):
        Sequential([Conv2D(3, 4, 3)], input_shape=(8, 8, 1))
