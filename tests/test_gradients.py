"""Finite-difference gradient checks (float64) for every layer and the loss; max-pool ties; float32 vs float64.

Central differences with ``eps = 1e-6`` through :mod:`convnp.gradcheck` must agree with the analytic gradients to a
relative error below 1e-6 (the error measure is ``max|a - n| / max(max|a|, max|n|)``, see
:func:`convnp.gradcheck.rel_error`). Configurations are drawn from seeded generators in :mod:`helpers`; each test
id spells its configuration out.

Finite differences are not derivatives where the function has a kink: at tied maxima of a pool window and at
ReLU's zero. Random inputs here keep clear of both (see ``helpers.distinct_values`` / ``away_from_zero``); the
tie rule itself (the first maximum in row-major window order takes the whole gradient) is tested directly.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    away_from_zero,
    conv_cases,
    dense_cases,
    describe,
    distinct_values,
    loss_cases,
    pair,
    pool_cases,
    reference_maxpool_backward,
    reference_maxpool_forward,
)

from convnp.gradcheck import (
    check_layer,
    check_loss,
    check_model,
    check_model_params,
    numerical_gradient,
    rel_error,
)
from convnp.layers import Conv2D, Dense, Flatten, MaxPool2D, NotebookMaxPool2D, ReLU
from convnp.losses import SoftmaxCrossEntropy
from convnp.sequential import Sequential
from convnp.models import notebook

TOL = 1e-6
MAX_COORDS = 600  # per array; the larger inputs are sampled, every small array is checked in full


def _worst_element(layer, x, name, seed):
    """'mine vs numeric' at the worst element of one gradient (only computed when a check has failed)."""
    rng = np.random.default_rng(seed)
    x = x.copy()
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    mine = layer.backward(dout) if name == "input" else (layer.backward(dout), layer.grads[name].copy())[1]
    target = x if name == "input" else layer.params[name]
    numeric = numerical_gradient(lambda: float(np.sum(layer.forward(x, training=True) * dout)), target)
    where = np.unravel_index(np.argmax(np.abs(mine - numeric)), mine.shape)
    return f"worst at {tuple(int(i) for i in where)}: mine {mine[where]!r} vs numeric {numeric[where]!r}"


def assert_layer_gradients(layer, x, cfg, *, max_coords=MAX_COORDS):
    """check_layer on input and every parameter; on failure say which, by how much, and mine vs numeric."""
    errors = check_layer(layer, x, np.random.default_rng(cfg["seed"]), max_coords=max_coords)
    assert set(errors) == {"input", *layer.params}, f"{layer!r}: checked {sorted(errors)}"
    bad = {k: e for k, e in errors.items() if not e < TOL}
    if bad:
        details = "; ".join(f"{k}: rel error {e:.2e}, {_worst_element(layer, x, k, cfg['seed'])}" for k, e in bad.items())
        pytest.fail(f"{layer!r} on x{x.shape} ({describe(cfg)}): gradient mismatch, {details}")


# ---- the oracle itself ---------------------------------------------------------------------------------------------
# Every check below trusts convnp.gradcheck; these tests make sure it measures what it claims and that TOL separates a
# right gradient from one that is only slightly wrong.
def test_numerical_gradient_of_a_known_function():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    before = x.copy()
    numeric = numerical_gradient(lambda: float(np.sum(np.sin(x) * w)), x)
    np.testing.assert_allclose(numeric, np.cos(before) * w, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(x, before)  # every perturbation was undone
    some = numerical_gradient(lambda: float(np.sum(x**3)), x, indices=[0, 5])
    np.testing.assert_allclose(some.reshape(-1)[[0, 5]], 3 * before.reshape(-1)[[0, 5]] ** 2, atol=1e-8)
    assert np.isnan(np.delete(some.reshape(-1), [0, 5])).all()  # entries not asked for are not made up


def test_rel_error_is_the_documented_measure():
    assert rel_error(np.array([1.0, -2.0]), np.array([1.0, -2.5])) == pytest.approx(0.5 / 2.5, rel=1e-15)
    assert rel_error(np.array([0.0, 4.0]), np.array([1.0, 4.0])) == pytest.approx(1 / 4, rel=1e-15)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.zeros(3), np.array([0.0, 1e-3, 0.0])) == 1.0
    assert np.isnan(rel_error(np.array([np.nan]), np.array([1.0])))  # and `not nan < TOL` fails the checks


class _SlightlyWrongDense(Dense):
    """A Dense layer whose gradient of one array is off by a factor ``1 + 1e-4``: a bug TOL must not let through."""

    def __init__(self, which, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.which = which

    def _backward(self, dout, cache):
        dx = super()._backward(dout, cache)
        if self.which in self.grads:
            self.grads[self.which] *= 1 + 1e-4
        return dx * (1 + 1e-4) if self.which == "input" and dx is not None else dx


@pytest.mark.parametrize("which", ["input", "weight", "bias"])
def test_check_layer_catches_a_gradient_off_by_one_part_in_ten_thousand(which):
    rng = np.random.default_rng(1)
    layer = _SlightlyWrongDense(which, 6, 4, rng=rng, dtype=np.float64)
    layer.params["bias"][:] = rng.standard_normal(4)
    x = rng.standard_normal((3, 6))
    errors = check_layer(layer, x, np.random.default_rng(2))
    assert errors[which] > 10 * TOL, errors
    assert all(e < TOL for k, e in errors.items() if k != which), errors
    layer.which = None  # the same layer with its true gradients passes
    assert all(e < TOL for e in check_layer(layer, x, np.random.default_rng(2)).values())


def test_check_loss_and_check_model_params_catch_a_slightly_wrong_gradient(monkeypatch):
    rng = np.random.default_rng(3)
    logits, y = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    assert check_loss(logits, y) < TOL
    model = Sequential([Flatten(), _SlightlyWrongDense("weight", 12, 3, rng=rng, dtype=np.float64)])
    errors = check_model_params(model, rng.standard_normal((2, 2, 2, 3)), np.array([0, 2]), rng)
    assert errors["1.weight"] > 10 * TOL and errors["1.bias"] < TOL, errors
    plain_backward = SoftmaxCrossEntropy.backward
    monkeypatch.setattr(SoftmaxCrossEntropy, "backward", lambda self: plain_backward(self) * (1 + 1e-4))
    assert check_loss(logits, y) > 10 * TOL


# ---- each layer on its own ---------------------------------------------------------------------------------------
CONV = conv_cases(20)
POOL = pool_cases(18)
DENSE = dense_cases(16)
LOSS = loss_cases(16)


@pytest.mark.parametrize("cfg", CONV, ids=describe)
def test_conv2d_gradients(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = Conv2D(
        cfg["C_in"], cfg["C_out"], cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["bias"],
        rng=rng, dtype=np.float64,
    )  # fmt: skip
    if cfg["bias"]:
        layer.params["bias"][:] = rng.standard_normal(cfg["C_out"])  # not the zeros of the initialiser
    x = rng.standard_normal((cfg["N"], cfg["H"], cfg["W"], cfg["C_in"]))
    assert_layer_gradients(layer, x, cfg)


@pytest.mark.parametrize("cfg", POOL, ids=describe)
def test_maxpool2d_gradients(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = MaxPool2D(cfg["kernel_size"], cfg["stride"])
    x = distinct_values((cfg["N"], cfg["H"], cfg["W"], cfg["C"]), rng)
    assert_layer_gradients(layer, x, cfg)


@pytest.mark.parametrize("cfg", DENSE, ids=describe)
def test_dense_gradients(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = Dense(cfg["in_features"], cfg["out_features"], cfg["bias"], rng=rng, dtype=np.float64)
    if cfg["bias"]:
        layer.params["bias"][:] = rng.standard_normal(cfg["out_features"])
    x = rng.standard_normal((cfg["N"], cfg["in_features"]))
    assert_layer_gradients(layer, x, cfg)


RELU_SHAPES = [(1, 1), (3, 7), (4, 20), (2, 5, 6, 3), (1, 7, 9, 1), (4, 5, 5, 5), (3, 11, 6, 2), (2, 3), (1, 2, 2, 4),
               (2, 9), (3, 4, 8), (2, 3, 2, 2, 2), (4, 1), (1, 30), (2, 6, 6, 1), (3, 5, 7, 4)]  # fmt: skip


@pytest.mark.parametrize("shape", RELU_SHAPES, ids=str)
def test_relu_gradients(shape):
    cfg = {"seed": 500 + RELU_SHAPES.index(shape), "shape": shape}
    x = away_from_zero(shape, np.random.default_rng(cfg["seed"]))
    assert (x > 0).any() and (x < 0).any() or x.size < 4
    assert_layer_gradients(ReLU(), x, cfg)


@pytest.mark.parametrize("shape", [(1, 4), (3, 5, 2), (2, 5, 7, 3), (4, 3, 3, 1), (2, 2, 3, 2, 2), (1, 6, 5, 4)], ids=str)
def test_flatten_gradients(shape):
    cfg = {"seed": sum(shape) * 7919, "shape": shape}
    assert_layer_gradients(Flatten(), np.random.default_rng(cfg["seed"]).standard_normal(shape), cfg)


@pytest.mark.parametrize("cfg", LOSS, ids=describe)
def test_softmax_cross_entropy_gradient(cfg):
    rng = np.random.default_rng(cfg["seed"])
    logits = rng.standard_normal((cfg["N"], cfg["K"])) * cfg["scale"]
    y = rng.integers(0, cfg["K"], size=cfg["N"])
    err = check_loss(logits, y)
    if not err < TOL:
        loss = SoftmaxCrossEntropy()
        loss.forward(logits, y)
        mine = loss.backward()
        numeric = numerical_gradient(lambda: loss.forward(logits, y), logits.copy())
        pytest.fail(f"SoftmaxCrossEntropy ({describe(cfg)}): rel error {err:.2e}\nmine\n{mine}\nvs numeric\n{numeric}")


def test_conv_cases_cover_every_option():
    """The seeded decks really deal every kernel, stride, padding and bias option (guards the helpers)."""
    from helpers import CONV_KERNELS, CONV_PADDINGS, CONV_STRIDES, POOL_SHAPES

    for key, options in [("kernel_size", CONV_KERNELS), ("stride", CONV_STRIDES), ("padding", CONV_PADDINGS)]:
        missing = [o for o in options if o not in [c[key] for c in CONV]]
        assert not missing, f"conv cases never use {key} {missing}"
    assert {c["bias"] for c in CONV} == {True, False}
    assert {c["bias"] for c in DENSE} == {True, False}
    pool_shapes = [(c["kernel_size"], c["stride"]) for c in POOL]
    assert all(s in pool_shapes for s in POOL_SHAPES)


# ---- whole models ------------------------------------------------------------------------------------------------
def _assert_all_below(errors, what):
    bad = {k: f"{e:.2e}" for k, e in errors.items() if not e < TOL}
    assert not bad, f"{what}: rel errors above {TOL}: {bad} (all: { {k: f'{e:.1e}' for k, e in errors.items()} })"


@pytest.mark.parametrize("init", ["he", "notebook"])
def test_notebook_model_parameters_end_to_end(init):
    rng = np.random.default_rng(11)
    model = notebook(init=init, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 28, 28, 1))
    y = rng.integers(0, 10, size=2)
    errors = check_model_params(model, x, y, rng, max_coords=120)
    assert set(errors) == {"0.weight", "0.bias", "4.weight", "4.bias"}
    _assert_all_below(errors, f"notebook(init={init!r})")


def test_check_model_all_rows_pass_on_notebook_model():
    model = notebook(rng=np.random.default_rng(3))  # float32: check_model casts it to float64
    rows = check_model(model, np.random.default_rng(4), max_coords=128)
    assert model.dtype == np.float64
    assert len(rows) == len(model.layers) + 2  # every layer, the loss, the whole model
    failed = [(r.component, r.where, f"{r.worst:.2e}") for r in rows if not r.passed]
    assert not failed, f"check_model rows failed: {failed}"
    assert all(r.worst < TOL for r in rows)


def test_check_model_all_rows_pass_on_a_deeper_model():
    rng = np.random.default_rng(5)
    kw = dict(rng=rng, dtype=np.float64)
    model = Sequential(
        [
            Conv2D(2, 3, (3, 2), stride=(1, 2), padding="same", **kw),
            ReLU(),
            MaxPool2D(3, 2),
            Conv2D(3, 4, 2, stride=1, padding=(1, 0), bias=False, **kw),
            ReLU(),
            MaxPool2D(2, 1),
            Flatten(),
            Dense(4 * 1 * 4, 7, **kw),
            ReLU(),
            Dense(7, 5, bias=False, **kw),
        ],
        input_shape=(9, 15, 2),  # -> (9, 8, 3) -> (4, 3, 3) -> (5, 2, 4) -> (4, 1, 4) -> 16 -> 7 -> 5
    )
    rows = check_model(model, np.random.default_rng(6), max_coords=100)
    failed = [(r.component, r.where, f"{r.worst:.2e}") for r in rows if not r.passed]
    assert not failed, f"check_model rows failed: {failed}"
    assert len(rows) == len(model.layers) + 2


def test_notebook_maxpool_fails_the_gradient_check():
    """The notebook's backward spreads max(window) * dout over the window: a finite-difference check must catch it."""
    rng = np.random.default_rng(8)
    x = distinct_values((2, 6, 6, 3), rng)
    wrong = check_layer(NotebookMaxPool2D(2), x, np.random.default_rng(9))
    right = check_layer(MaxPool2D(2), x, np.random.default_rng(9))
    assert right["input"] < TOL
    assert wrong["input"] > 0.1, f"NotebookMaxPool2D passed the check: rel error {wrong['input']:.2e}"
    # Its forward is the correct one: only the backward is wrong.
    np.testing.assert_array_equal(NotebookMaxPool2D(2).forward(x), MaxPool2D(2).forward(x))


def test_check_model_flags_the_notebook_maxpool():
    model = notebook(rng=np.random.default_rng(3), notebook_maxpool=True)
    rows = check_model(model, np.random.default_rng(4), max_coords=64)
    verdicts = {r.component.split()[0]: r.passed for r in rows}
    assert not verdicts["2"], "the NotebookMaxPool2D row should FAIL"
    assert not rows[-1].passed, "the whole-model row should FAIL with the wrong pool backward"
    assert verdicts["0"] and verdicts["1"] and verdicts["3"] and verdicts["4"], rows


# ---- max pooling with tied maxima ---------------------------------------------------------------------------------
TIE_POOL = pool_cases(12, seed=777)


def _pool_forward_backward(kernel_size, stride, x, dout):
    layer = MaxPool2D(kernel_size, stride)
    out = layer.forward(x, training=True)
    return out, layer.backward(dout)


@pytest.mark.parametrize("cfg", TIE_POOL, ids=describe)
def test_maxpool_ties_go_to_the_first_maximum(cfg):
    """Integer values in {0, 1, 2}: most windows hold tied maxima. The result must match the loop reference exactly."""
    rng = np.random.default_rng(cfg["seed"])
    k, s = cfg["kernel_size"], cfg["stride"] or cfg["kernel_size"]
    x = rng.integers(0, 3, size=(cfg["N"], cfg["H"], cfg["W"], cfg["C"])).astype(np.float64)
    out_shape = (cfg["N"], *MaxPool2D(k, s).output_shape(x.shape[1:]))
    dout = rng.integers(-5, 6, size=out_shape).astype(np.float64)  # integers: every sum below is exact
    out, dx = _pool_forward_backward(k, s, x, dout)
    np.testing.assert_array_equal(out, reference_maxpool_forward(x, k, s), err_msg=describe(cfg))
    expected = reference_maxpool_backward(x, dout, k, s)
    np.testing.assert_array_equal(dx, expected, err_msg=f"mine vs first-maximum reference ({describe(cfg)})")
    assert dx.sum() == dout.sum(), f"gradient total {dx.sum()} vs dout total {dout.sum()}"


@pytest.mark.parametrize(("kernel_size", "stride"), [(2, 2), (3, 2), (2, 1), ((2, 3), (1, 2)), (3, 3)])
def test_maxpool_each_window_sends_its_gradient_to_exactly_one_input(kernel_size, stride):
    """One output element at a time: a unit dout lands as a single 1 on the window's first maximum."""
    rng = np.random.default_rng(21)
    (kH, kW), (sH, sW) = pair(kernel_size), pair(stride)
    x = rng.integers(0, 2, size=(1, 7, 7, 2)).astype(np.float64)
    layer = MaxPool2D(kernel_size, stride)
    out = layer.forward(x, training=True)
    for idx in np.ndindex(out.shape):
        dout = np.zeros_like(out)
        dout[idx] = 1.0
        dx = layer.backward(dout)
        _, i, j, c = idx
        window = x[0, i * sH : i * sH + kH, j * sW : j * sW + kW, c]
        first = np.argwhere(window == window.max())[0]  # argwhere lists positions in row-major order
        expected = np.zeros_like(x)
        expected[0, i * sH + first[0], j * sW + first[1], c] = 1.0
        assert np.count_nonzero(dx) == 1, f"window {idx} spread its gradient over {np.count_nonzero(dx)} inputs"
        np.testing.assert_array_equal(dx, expected, err_msg=f"window {idx} of\n{window}")


@pytest.mark.parametrize(("kernel_size", "stride"), [(2, 2), (3, 3), (2, 1), (3, 2)])
def test_maxpool_all_equal_windows(kernel_size, stride):
    """A constant input: every window's gradient goes to its top-left input."""
    x = np.full((2, 7, 8, 3), 0.25)
    layer = MaxPool2D(kernel_size, stride)
    out = layer.forward(x, training=True)
    dout = np.random.default_rng(2).integers(1, 9, size=out.shape).astype(np.float64)
    dx = layer.backward(dout)
    expected = np.zeros_like(x)
    H_out, W_out = out.shape[1:3]
    expected[:, : stride * H_out : stride, : stride * W_out : stride, :] += dout  # top-left corners
    np.testing.assert_array_equal(dx, expected)
    assert dx.sum() == dout.sum()


@pytest.mark.parametrize(("kernel_size", "stride"), [(2, 2), (3, 2), (2, 1)])
def test_maxpool_after_relu_zeros(kernel_size, stride):
    """Zeros after ReLU tie everywhere; the chain rule through ReLU then sends nothing to negative inputs."""
    rng = np.random.default_rng(31)
    x = rng.standard_normal((3, 9, 9, 2)) - 1.2  # mostly negative: ReLU gives mostly zeros
    relu, pool = ReLU(), MaxPool2D(kernel_size, stride)
    a = relu.forward(x, training=True)
    out = pool.forward(a, training=True)
    assert (out == 0).mean() > 0.3, "the test needs many all-zero windows"
    dout = rng.integers(-4, 5, size=out.shape).astype(np.float64)
    da = pool.backward(dout)
    np.testing.assert_array_equal(da, reference_maxpool_backward(a, dout, kernel_size, stride))
    assert da.sum() == dout.sum()
    dx = relu.backward(da)
    np.testing.assert_array_equal(dx, np.where(x > 0, da, 0.0))


def test_maxpool_overlapping_windows_accumulate_a_shared_maximum():
    # 3x3, kernel 2, stride 1: the centre is the maximum of all four windows.
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 1, 0] = 5.0
    dout = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    _, dx = _pool_forward_backward(2, 1, x, dout)
    expected = np.zeros_like(x)
    expected[0, 1, 1, 0] = 10.0
    np.testing.assert_array_equal(dx, expected)

    # Tied maxima shared by all four windows: (1, 1) is the FIRST maximum in each of them.
    x = np.array([[0, 0, 0], [0, 5, 5], [0, 5, 5]], dtype=np.float64).reshape(1, 3, 3, 1)
    _, dx = _pool_forward_backward(2, 1, x, dout)
    np.testing.assert_array_equal(dx, expected)

    # 5x5, kernel 3, stride 2: the centre (2, 2) lies in all four windows.
    x = np.random.default_rng(0).uniform(-1, 0, size=(1, 5, 5, 1))
    x[0, 2, 2, 0] = 1.0
    _, dx = _pool_forward_backward(3, 2, x, dout)
    expected = np.zeros_like(x)
    expected[0, 2, 2, 0] = 10.0
    np.testing.assert_array_equal(dx, expected)


# ---- float32 agrees with float64 -----------------------------------------------------------------------------------
F32_TOL = 1e-4


def _twins(make, **kw):
    """The same layer in float64 and float32, with identical (float32-representable) weights."""
    hi = make(dtype=np.float64, **kw)
    lo = make(dtype=np.float32, **kw)
    rng = np.random.default_rng(99)
    for k in hi.params:
        hi.params[k][:] = rng.standard_normal(hi.params[k].shape).astype(np.float32)
        lo.params[k][:] = hi.params[k]
    return hi, lo


def _compare_precisions(hi, lo, x64, name):
    x32 = x64.astype(np.float32)
    out64, out32 = hi.forward(x64, training=True), lo.forward(x32, training=True)
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    dout64 = np.random.default_rng(7).standard_normal(out64.shape).astype(np.float32).astype(np.float64)
    dx64, dx32 = hi.backward(dout64), lo.backward(dout64.astype(np.float32))
    assert dx32.dtype == np.float32
    pairs = {"output": (out32, out64), "input grad": (dx32, dx64)}
    pairs.update({f"grad {k}": (lo.grads[k], hi.grads[k]) for k in hi.grads})
    for what, (mine32, ref64) in pairs.items():
        assert mine32.dtype == np.float32, f"{name} {what} is {mine32.dtype}"
        err = rel_error(mine32, ref64)
        assert err < F32_TOL, f"{name} {what}: float32 vs float64 rel error {err:.2e}"


@pytest.mark.parametrize("cfg", CONV[:6], ids=describe)
def test_conv2d_float32_matches_float64(cfg):
    make = lambda dtype: Conv2D(cfg["C_in"], cfg["C_out"], cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["bias"], dtype=dtype)  # noqa: E731
    hi, lo = _twins(make)
    x = np.random.default_rng(cfg["seed"]).standard_normal((cfg["N"], cfg["H"], cfg["W"], cfg["C_in"]))
    _compare_precisions(hi, lo, x, repr(hi))


def test_dense_float32_matches_float64():
    hi, lo = _twins(lambda dtype: Dense(30, 7, dtype=dtype))
    _compare_precisions(hi, lo, np.random.default_rng(1).standard_normal((5, 30)), "Dense")


@pytest.mark.parametrize(
    "make, shape",
    [(lambda: MaxPool2D(2), (2, 8, 8, 3)), (lambda: MaxPool2D(3, 2), (2, 9, 7, 2)), (ReLU, (3, 5, 5, 2)), (ReLU, (4, 9)), (Flatten, (2, 3, 4, 5))],
    ids=["pool2", "pool3s2", "relu4d", "relu2d", "flatten"],
)
def test_parameter_free_layers_float32_match_float64(make, shape):
    x = distinct_values(shape, np.random.default_rng(3))  # distinct and away from 0: same argmax / mask in float32
    x[np.abs(x) < 1e-3] = 0.5
    _compare_precisions(make(), make(), x, repr(make()))


def test_loss_and_notebook_model_float32_match_float64():
    rng = np.random.default_rng(12)
    m32 = notebook(rng=np.random.default_rng(1), dtype=np.float32)
    m64 = notebook(rng=np.random.default_rng(2), dtype=np.float64)
    m64.load_state_dict(m32.state_dict())  # the same float32-representable weights in both
    np.testing.assert_array_equal(m64.parameters()["0.weight"], m32.parameters()["0.weight"].astype(np.float64))
    x = rng.standard_normal((4, 28, 28, 1))
    y = rng.integers(0, 10, size=4)
    results = {}
    for name, model, dtype in [("64", m64, np.float64), ("32", m32, np.float32)]:
        loss = SoftmaxCrossEntropy()
        logits = model.forward(x.astype(dtype), training=True)
        value = loss.forward(logits, y)
        dlogits = loss.backward()
        model.backward(dlogits)
        assert logits.dtype == dtype and dlogits.dtype == dtype
        results[name] = (logits, value, dlogits, {k: v.copy() for k, v in model.gradients().items()})
    (l64, v64, d64, g64), (l32, v32, d32, g32) = results["64"], results["32"]
    assert rel_error(l32, l64) < F32_TOL
    assert abs(v32 - v64) / abs(v64) < F32_TOL, f"loss float32 {v32} vs float64 {v64}"
    assert rel_error(d32, d64) < F32_TOL
    for k in g64:
        assert g32[k].dtype == np.float32
        assert rel_error(g32[k], g64[k]) < F32_TOL, f"grad {k}: rel error {rel_error(g32[k], g64[k]):.2e}"
