"""Property tests (hypothesis): the digit preparation maps any image it accepts to a 28x28 float array in 0..255;
layers given random valid shapes return the shapes their docstrings state; invalid shapes raise ValueError.

Shapes stay small and examples few, so the file runs in seconds; in CI (``CI`` set) the conftest's ``ci`` profile
replays the same examples every run.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from convnp.data.images import preprocess_digit  # noqa: E402
from convnp.errors import DataError  # noqa: E402
from convnp.layers import (  # noqa: E402
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sides = st.integers(1, 12)
pairs = st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)))


def pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


# ---- image preparation ----------------------------------------------------------------------------------------------
def assert_mnist_like(digit: np.ndarray) -> None:
    """What :func:`preprocess_digit` documents: (28, 28) float64 in [0, 255], the brightest pixel exactly 255."""
    assert digit.shape == (28, 28) and digit.dtype == np.float64
    assert np.isfinite(digit).all() and digit.min() >= 0 and digit.max() == 255


pictures = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=64),
                      elements=st.floats(0, 255, allow_nan=False, width=32))


@FAST
@given(pictures)
def test_any_accepted_picture_becomes_an_mnist_like_digit(grey):
    try:
        digit = preprocess_digit(grey)
    except DataError as err:  # the only refusal: nothing that stands out from the paper
        assert "no ink found" in str(err) and "\n" not in str(err)
        return
    assert_mnist_like(digit)


@FAST
@given(st.integers(3, 60), st.integers(3, 60), st.integers(0, 255), st.integers(0, 255), st.data())
def test_a_stroke_on_any_paper_is_found(height, width, paper, ink, data):
    """A stroke inside the sheet (the paper is read from the outer ring) that differs from the paper by the 16 grey
    levels the preparation requires is always found, whatever the two shades."""
    if abs(ink - paper) < 16:
        ink = paper + 16 if paper < 128 else paper - 16
    grey = np.full((height, width), float(paper))
    row = data.draw(st.integers(1, height - 2))
    start = data.draw(st.integers(1, width - 2))
    grey[row, start : data.draw(st.integers(start + 1, width - 1))] = ink
    assert_mnist_like(preprocess_digit(grey))


MODES = ["L", "I;16", "P", "RGB", "RGBA", "LA", "CMYK", "1"]


@FAST
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40))), st.sampled_from(MODES),
       st.sampled_from(["PNG", "GIF", "JPEG", "TIFF", "BMP", "WEBP"]))
def test_any_image_file_decodes_to_grey_in_range_or_is_refused_in_one_line(pixels, mode, fmt):
    Image = pytest.importorskip("PIL.Image")
    from convnp.data.image_files import read_image_bytes

    img = Image.fromarray(pixels).convert(mode) if mode != "I;16" else Image.fromarray(pixels.astype(np.uint16) * 257)
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # a mode this format cannot store: nothing to decode
    grey = read_image_bytes(buf.getvalue())
    assert grey.shape == pixels.shape and grey.dtype == np.float64
    assert np.isfinite(grey).all() and grey.min() >= 0 and grey.max() <= 255
    try:
        assert_mnist_like(preprocess_digit(grey))
    except DataError as err:
        assert "\n" not in str(err) and "no ink found" in str(err)


# ---- layer output shapes ---------------------------------------------------------------------------------------------
def documented_conv_size(size: int, kernel: int, stride: int, padding) -> int:
    """Conv2D's docstring: ``floor((H + pad_top + pad_bottom - kH) / sH) + 1``; "same" gives ``ceil(H / sH)``."""
    if padding == "same":
        return math.ceil(size / stride)
    pad = 0 if padding == "valid" else padding
    return (size + 2 * pad - kernel) // stride + 1


@FAST
@given(st.integers(1, 3), sides, sides, st.integers(1, 4), st.integers(1, 4), pairs, pairs,
       st.sampled_from(["same", "valid", 0, 1, 2]))
def test_conv2d_output_shape_is_the_documented_one(n, h, w, c_in, c_out, kernel, stride, padding):
    (kH, kW), (sH, sW) = pair(kernel), pair(stride)
    H_out, W_out = documented_conv_size(h, kH, sH, padding), documented_conv_size(w, kW, sW, padding)
    layer = Conv2D(c_in, c_out, kernel, stride, padding, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((n, h, w, c_in)).astype(np.float32)
    if H_out < 1 or W_out < 1:  # the kernel does not fit: refused, saying so
        with pytest.raises(ValueError):
            layer.forward(x)
        return
    assert layer.forward(x).shape == (n, H_out, W_out, c_out)
    assert tuple(layer.output_shape((h, w, c_in))) == (H_out, W_out, c_out)


@FAST
@given(st.sampled_from([MaxPool2D, AvgPool2D]), st.integers(1, 3), sides, sides, st.integers(1, 4), pairs,
       st.one_of(st.none(), pairs))
def test_pooling_output_shape_is_the_documented_one(cls, n, h, w, c, kernel, stride):
    (kH, kW) = pair(kernel)
    (sH, sW) = pair(kernel if stride is None else stride)
    layer = cls(kernel, stride)
    x = np.random.default_rng(1).standard_normal((n, h, w, c)).astype(np.float32)
    if h < kH or w < kW:
        with pytest.raises(ValueError):
            layer.forward(x)
        return
    expected = (n, (h - kH) // sH + 1, (w - kW) // sW + 1, c)
    assert layer.forward(x).shape == expected
    assert tuple(layer.output_shape((h, w, c))) == expected[1:]


@FAST
@given(st.integers(1, 4), sides, sides, st.integers(1, 5))
def test_shape_keeping_and_reducing_layers(n, h, w, c):
    x = np.random.default_rng(1).standard_normal((n, h, w, c)).astype(np.float32)
    assert ReLU().forward(x).shape == x.shape
    assert BatchNorm2D(c).forward(x, training=n * h * w > 1).shape == x.shape  # training needs 2+ values
    assert Flatten().forward(x).shape == (n, h * w * c)
    assert GlobalAvgPool2D().forward(x).shape == (n, c)
    dense = Dense(h * w * c, 3, rng=np.random.default_rng(0))
    assert dense.forward(x.reshape(n, -1)).shape == (n, 3)


# ---- invalid shapes --------------------------------------------------------------------------------------------------
LAYERS_4D = {
    "Conv2D": lambda c: Conv2D(c, 2, 1, rng=np.random.default_rng(0)),
    "MaxPool2D": lambda c: MaxPool2D(1),
    "AvgPool2D": lambda c: AvgPool2D(1),
    "BatchNorm2D": lambda c: BatchNorm2D(c),
    "GlobalAvgPool2D": lambda c: GlobalAvgPool2D(),
}


@FAST
@given(st.sampled_from(sorted(LAYERS_4D)), st.integers(1, 3),
       hnp.array_shapes(min_dims=0, max_dims=6, min_side=1, max_side=4).filter(lambda s: len(s) != 4))
def test_feature_map_layers_refuse_any_other_rank(name, c, shape):
    with pytest.raises(ValueError, match="expected input of rank 4"):
        LAYERS_4D[name](c).forward(np.zeros(shape, np.float32))


@FAST
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6))
def test_wrong_channel_or_feature_counts_are_refused(n, c, features, other):
    c_wrong, f_wrong = c + other, features + other
    with pytest.raises(ValueError, match=f"axis 3 = {c}, got shape"):
        Conv2D(c, 2, 1, rng=np.random.default_rng(0)).forward(np.zeros((n, 3, 3, c_wrong), np.float32))
    with pytest.raises(ValueError, match=f"axis 3 = {c}, got shape"):
        BatchNorm2D(c).forward(np.zeros((n, 3, 3, c_wrong), np.float32))
    with pytest.raises(ValueError, match=f"axis 1 = {features}, got shape"):
        Dense(features, 2, rng=np.random.default_rng(0)).forward(np.zeros((n, f_wrong), np.float32))


@FAST
@given(hnp.array_shapes(min_dims=0, max_dims=5, min_side=1, max_side=4).filter(lambda s: len(s) != 2))
def test_dense_refuses_any_rank_but_2(shape):
    with pytest.raises(ValueError, match="expected input of rank 2"):
        Dense(4, 2, rng=np.random.default_rng(0)).forward(np.zeros(shape, np.float32))
