"""The Winograd trial in benchmarks/winograd.py: its figures in docs/performance.md stand only if it computes what
convnp's convolution computes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from convnp import Conv2D, Sequential
from convnp.ops.reference import conv2d_backward_reference, conv2d_forward_reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import winograd  # noqa: E402


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("n, hw, c_in, c_out, pads", [
    (3, (26, 26), 32, 64, ((0, 0), (0, 0))),  # LeNet-style's second layer, in two chunks
    (2, (14, 10), 3, 5, ((1, 1), (1, 1))),  # "same", not square
    (1, (7, 9), 2, 4, ((1, 0), (0, 1))),  # uneven padding
])
def test_winograd_matches_the_reference(n, hw, c_in, c_out, pads, dtype, tol, monkeypatch):
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1 << 16)  # several chunks even for small maps
    rng = np.random.default_rng(c_out)
    x = rng.standard_normal((n, *hw, c_in)).astype(dtype)
    weight, bias = rng.standard_normal((3, 3, c_in, c_out)).astype(dtype), rng.standard_normal(c_out).astype(dtype)
    out, cache = winograd.conv_forward(x, weight, bias, pads, {})
    ref, ref_cache = conv2d_forward_reference(x, weight, bias, (1, 1), pads)
    assert out.dtype == dtype and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol * np.abs(ref).max())
    dout = rng.standard_normal(out.shape).astype(dtype)
    for got, want in zip(winograd.conv_backward(dout, cache), conv2d_backward_reference(dout, ref_cache)):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())
    assert winograd.conv_backward(dout, cache, input_grad=False)[0] is None


def test_the_transforms_are_each_others_adjoints():
    """<B^T d B, v> = <d, B v B^T> over whole maps, and likewise for A: what backward relies on."""
    rng = np.random.default_rng(1)
    x_p, dV = rng.standard_normal((2, 10, 8, 3)), rng.standard_normal((4, 4, 2, 4, 3, 3))
    dx_p = np.empty_like(x_p)
    winograd.input_transform_adjoint(dV, dx_p)
    assert np.isclose(np.vdot(winograd.input_transform(x_p), dV), np.vdot(x_p, dx_p))
    M, dout = rng.standard_normal((4, 4, 2, 4, 3, 5)), rng.standard_normal((2, 8, 6, 5))
    out = np.empty_like(dout)
    winograd.output_transform(M, out)
    assert np.isclose(np.vdot(out, dout), np.vdot(M, winograd.output_transform_adjoint(dout)))


def test_route_sends_qualifying_layers_through_the_trial_and_back():
    rng = np.random.default_rng(2)
    model = Sequential([Conv2D(4, 6, 3, rng=rng), Conv2D(6, 2, 3, stride=2, rng=rng)], input_shape=(10, 10, 4))
    x = rng.standard_normal((2, 10, 10, 4)).astype(np.float32)
    plain = model.forward(x)
    route = winograd.Route(min_in_channels=4)
    try:
        route.on = True
        routed = model.forward(x, training=True)
        assert isinstance(model.layers[0]._cache, tuple) and model.layers[0]._cache[0] == "winograd"
        assert not isinstance(model.layers[1]._cache[0], str)  # stride 2: im2col
        np.testing.assert_allclose(routed, plain, rtol=1e-4, atol=1e-5)
    finally:
        route.undo()
    assert not isinstance(model.forward(x, training=True), tuple) and not isinstance(model.layers[0]._cache[0], str)
