"""Shapes, weight counts, configs, caches, dtypes, initialisers, Sequential bookkeeping and the loss's stability.

Most checks go through one harness, :func:`run_layer_test`, in the spirit of Keras's
``run_layer_test(cls, init_kwargs, input_shape, expected_output_shape, expected_num_params)``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import conv_cases, describe, pair, pool_cases

from convnp import init as initialisers
from convnp.layers import Conv2D, Dense, Flatten, MaxPool2D, NotebookMaxPool2D, ReLU
from convnp.losses import SoftmaxCrossEntropy
from convnp.sequential import Sequential
from convnp.models import notebook
from convnp.models.notebook import notebook_weights


def run_layer_test(cls, init_kwargs, input_shape, expected_output_shape, expected_num_params, *, dtype=np.float32):
    """Build ``cls(**init_kwargs)``, run it forward and backward on random input, and check everything shape-like.

    Returns the layer for further checks.
    """
    layer = cls(**init_kwargs)
    name = f"{cls.__name__}(**{init_kwargs}) on {input_shape}"
    # weights
    assert layer.n_params == expected_num_params, f"{name}: {layer.n_params} parameters, expected {expected_num_params}"
    assert sum(p.size for p in layer.params.values()) == expected_num_params
    assert set(layer.grads) == set(layer.params), f"{name}: grads {sorted(layer.grads)} vs params {sorted(layer.params)}"
    for k, p in layer.params.items():
        assert p.dtype == dtype, f"{name}: param {k} is {p.dtype}"
        assert layer.grads[k].shape == p.shape
    # shapes
    assert tuple(layer.output_shape(tuple(input_shape[1:]))) == tuple(expected_output_shape[1:]), name
    x = np.random.default_rng(0).standard_normal(input_shape).astype(dtype)
    out = layer.forward(x)
    assert out.shape == tuple(expected_output_shape), f"{name}: output {out.shape}, expected {expected_output_shape}"
    assert out.dtype == dtype, f"{name}: output dtype {out.dtype}"
    with pytest.raises(RuntimeError, match="backward needs a preceding forward"):
        layer.backward(np.ones_like(out))  # inference kept no cache
    out_train = layer.forward(x, training=True)
    np.testing.assert_array_equal(out_train, out, err_msg=f"{name}: training and inference outputs differ")
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dx = layer.backward(dout)
    assert dx.shape == x.shape and dx.dtype == dtype, f"{name}: dx {dx.shape} {dx.dtype}"
    grads = {k: g.copy() for k, g in layer.grads.items()}
    for k, g in grads.items():
        assert g.shape == layer.params[k].shape and g.dtype == dtype, f"{name}: grad {k} {g.shape} {g.dtype}"
    # grads are overwritten by backward, not accumulated
    np.testing.assert_array_equal(layer.backward(dout), dx)
    for k, g in grads.items():
        np.testing.assert_array_equal(layer.grads[k], g, err_msg=f"{name}: grad {k} changed on a second backward")
    # an inference pass after training leaves the training cache in place: backward still gives the same grads
    layer.forward(np.random.default_rng(2).standard_normal(input_shape).astype(dtype), training=False)
    np.testing.assert_array_equal(layer.backward(dout), dx, err_msg=f"{name}: inference in between broke backward")
    # config and repr
    config = layer.get_config()
    rebuilt = cls(**json.loads(json.dumps(config)), **({"dtype": dtype} if layer.dtype is not None else {}))
    assert rebuilt.get_config() == config, f"{name}: get_config does not round-trip through JSON"
    assert rebuilt.n_params == expected_num_params
    assert repr(layer).startswith(f"{cls.__name__}(") and repr(layer).endswith(")")
    assert repr(rebuilt) == repr(layer)
    return layer


# ---- hand-written cases -------------------------------------------------------------------------------------------
CASES = [
    # cls, kwargs, input shape, expected output shape, expected number of parameters
    (Conv2D, dict(in_channels=1, out_channels=8, kernel_size=3), (2, 28, 28, 1), (2, 26, 26, 8), 80),
    (Conv2D, dict(in_channels=3, out_channels=16, kernel_size=5, stride=2, padding="same"), (1, 32, 32, 3), (1, 16, 16, 16), 1216),
    (Conv2D, dict(in_channels=3, out_channels=4, kernel_size=(3, 1), stride=(2, 1), padding=(1, 0), bias=False), (2, 7, 5, 3), (2, 4, 5, 4), 36),
    (Conv2D, dict(in_channels=2, out_channels=5, kernel_size=2, stride=2, padding="valid"), (3, 9, 8, 2), (3, 4, 4, 5), 45),
    (Conv2D, dict(in_channels=4, out_channels=2, kernel_size=(2, 4), padding="same"), (1, 6, 7, 4), (1, 6, 7, 2), 66),
    (Conv2D, dict(in_channels=1, out_channels=1, kernel_size=1), (1, 1, 1, 1), (1, 1, 1, 1), 2),
    (Conv2D, dict(in_channels=2, out_channels=3, kernel_size=3, stride=3, padding=2), (2, 5, 5, 2), (2, 3, 3, 3), 57),
    (MaxPool2D, dict(kernel_size=2), (2, 26, 26, 8), (2, 13, 13, 8), 0),
    (MaxPool2D, dict(kernel_size=3, stride=2), (1, 7, 7, 2), (1, 3, 3, 2), 0),
    (MaxPool2D, dict(kernel_size=2), (1, 5, 5, 1), (1, 2, 2, 1), 0),  # the odd row and column are dropped
    (MaxPool2D, dict(kernel_size=(2, 3), stride=(1, 2)), (2, 4, 9, 3), (2, 3, 4, 3), 0),
    (MaxPool2D, dict(kernel_size=2, stride=1), (1, 3, 3, 1), (1, 2, 2, 1), 0),
    (NotebookMaxPool2D, dict(kernel_size=2), (2, 6, 6, 3), (2, 3, 3, 3), 0),
    (ReLU, {}, (3, 4), (3, 4), 0),
    (ReLU, {}, (2, 5, 5, 3), (2, 5, 5, 3), 0),
    (Flatten, {}, (2, 13, 13, 8), (2, 1352), 0),
    (Flatten, {}, (3, 4, 5), (3, 20), 0),
    (Flatten, {}, (4, 7), (4, 7), 0),
    (Dense, dict(in_features=1352, out_features=10), (2, 1352), (2, 10), 13530),
    (Dense, dict(in_features=5, out_features=3, bias=False), (4, 5), (4, 3), 15),
    (Dense, dict(in_features=1, out_features=1), (1, 1), (1, 1), 2),
]


def _case_id(v):
    return v.__name__ if isinstance(v, type) else str(v).replace(" ", "")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("cls", "kwargs", "in_shape", "out_shape", "n_params"), CASES, ids=_case_id)
def test_layer_harness(cls, kwargs, in_shape, out_shape, n_params, dtype):
    if cls in (Conv2D, Dense):
        kwargs = {**kwargs, "dtype": dtype, "rng": np.random.default_rng(0)}
    run_layer_test(cls, kwargs, in_shape, out_shape, n_params, dtype=dtype)


def _expected_conv_out(cfg):
    """Output size by the textbook formulas, independently of convnp.ops.windows."""
    (kH, kW), (sH, sW) = pair(cfg["kernel_size"]), pair(cfg["stride"])
    pad = cfg["padding"]
    if pad == "same":
        return math.ceil(cfg["H"] / sH), math.ceil(cfg["W"] / sW)
    pH, pW = (0, 0) if pad == "valid" else pair(pad)
    return (cfg["H"] + 2 * pH - kH) // sH + 1, (cfg["W"] + 2 * pW - kW) // sW + 1


@pytest.mark.parametrize("cfg", conv_cases(24, seed=77), ids=describe)
def test_conv2d_random_configs_through_the_harness(cfg):
    kH, kW = pair(cfg["kernel_size"])
    H_out, W_out = _expected_conv_out(cfg)
    kwargs = dict(
        in_channels=cfg["C_in"], out_channels=cfg["C_out"], kernel_size=cfg["kernel_size"], stride=cfg["stride"],
        padding=cfg["padding"], bias=cfg["bias"], rng=np.random.default_rng(cfg["seed"]),
    )  # fmt: skip
    n_params = kH * kW * cfg["C_in"] * cfg["C_out"] + (cfg["C_out"] if cfg["bias"] else 0)
    run_layer_test(
        Conv2D, kwargs, (cfg["N"], cfg["H"], cfg["W"], cfg["C_in"]), (cfg["N"], H_out, W_out, cfg["C_out"]), n_params
    )


@pytest.mark.parametrize("cfg", pool_cases(12, seed=78), ids=describe)
def test_maxpool2d_random_configs_through_the_harness(cfg):
    (kH, kW) = pair(cfg["kernel_size"])
    (sH, sW) = pair(cfg["stride"] or cfg["kernel_size"])
    out = (cfg["N"], (cfg["H"] - kH) // sH + 1, (cfg["W"] - kW) // sW + 1, cfg["C"])
    kwargs = dict(kernel_size=cfg["kernel_size"], stride=cfg["stride"])
    run_layer_test(MaxPool2D, kwargs, (cfg["N"], cfg["H"], cfg["W"], cfg["C"]), out, 0)


def test_same_padding_gives_ceil_of_size_over_stride():
    seen = 0
    for k in (1, 2, 3, 4, 5):
        for s in (1, 2, 3):
            for H in range(1, 13):
                layer = Conv2D(1, 1, k, stride=s, padding="same", rng=np.random.default_rng(0))
                W = H + 2
                out = layer.forward(np.zeros((1, H, W, 1), np.float32))
                expected = (math.ceil(H / s), math.ceil(W / s))
                assert out.shape[1:3] == expected, f"k={k} s={s} H={H} W={W}: got {out.shape[1:3]}, want {expected}"
                assert layer.output_shape((H, W, 1))[:2] == expected
                seen += 1
    assert seen == 180


def test_conv2d_forward_matches_a_loop_reference():
    """Direct sum over windows (cross-correlation), stride (2, 1), padding (1, 2), so the layer is right without torch."""
    rng = np.random.default_rng(4)
    layer = Conv2D(3, 2, (3, 2), stride=(2, 1), padding=(1, 2), rng=rng, dtype=np.float64)
    layer.params["bias"][:] = [0.5, -1.0]
    x = rng.standard_normal((2, 6, 5, 3))
    out = layer.forward(x)
    xp = np.pad(x, ((0, 0), (1, 1), (2, 2), (0, 0)))
    w, b = layer.params["weight"], layer.params["bias"]
    expected = np.zeros(out.shape)
    for n, i, j, k in np.ndindex(out.shape):
        expected[n, i, j, k] = np.sum(xp[n, 2 * i : 2 * i + 3, j : j + 2, :] * w[:, :, :, k]) + b[k]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


# ---- repr and get_config ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("layer", "text"),
    [
        (Conv2D(1, 8, 3), "Conv2D(in_channels=1, out_channels=8, kernel_size=3, stride=1, padding=0, bias=True)"),
        (
            Conv2D(2, 3, (2, 3), stride=(1, 2), padding="same", bias=False),
            "Conv2D(in_channels=2, out_channels=3, kernel_size=(2, 3), stride=(1, 2), padding='same', bias=False)",
        ),
        (Conv2D(2, 3, 3, padding=(1, 2)), "Conv2D(in_channels=2, out_channels=3, kernel_size=3, stride=1, padding=(1, 2), bias=True)"),
        (MaxPool2D(2), "MaxPool2D(kernel_size=2, stride=2)"),
        (MaxPool2D(3, 2), "MaxPool2D(kernel_size=3, stride=2)"),
        (Dense(1352, 10), "Dense(in_features=1352, out_features=10, bias=True)"),
        (ReLU(), "ReLU()"),
        (Flatten(), "Flatten()"),
        (SoftmaxCrossEntropy(), "SoftmaxCrossEntropy()"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_repr(layer, text):
    assert repr(layer) == text


def test_get_config_values():
    assert Conv2D(1, 8, 3, stride=2, padding="valid", bias=False).get_config() == {
        "in_channels": 1, "out_channels": 8, "kernel_size": (3, 3), "stride": (2, 2), "padding": "valid", "bias": False,
    }  # fmt: skip
    assert Conv2D(1, 8, 3, padding=1).get_config()["padding"] == (1, 1)
    assert MaxPool2D(3).get_config() == {"kernel_size": (3, 3), "stride": (3, 3)}
    assert Dense(4, 2, bias=False).get_config() == {"in_features": 4, "out_features": 2, "bias": False}
    assert ReLU().get_config() == {} and Flatten().get_config() == {}


# ---- dtypes ------------------------------------------------------------------------------------------------------------
def test_float64_end_to_end_through_the_notebook_model():
    rng = np.random.default_rng(0)
    model = notebook(rng=rng, dtype=np.float64)
    assert model.dtype == np.float64
    x = rng.standard_normal((3, 28, 28, 1))
    loss = SoftmaxCrossEntropy()
    logits = model.forward(x, training=True)
    value = loss.forward(logits, np.array([1, 2, 3]))
    dx = model.backward(loss.backward())
    assert logits.dtype == np.float64 and dx.dtype == np.float64 and np.isfinite(value)
    for k, g in model.gradients().items():
        assert g.dtype == np.float64, k
    for k, p in model.parameters().items():
        assert p.dtype == np.float64, k


def test_astype_casts_a_float32_model_to_float64():
    model = notebook(rng=np.random.default_rng(0))
    assert model.dtype == np.float32
    before = {k: v.copy() for k, v in model.parameters().items()}
    model.astype(np.float64)
    assert model.dtype == np.float64
    for k, v in model.parameters().items():
        assert v.dtype == np.float64 and model.gradients()[k].dtype == np.float64
        np.testing.assert_array_equal(v, before[k].astype(np.float64))
    x = np.random.default_rng(1).standard_normal((2, 28, 28, 1))
    assert model.forward(x).dtype == np.float64


def test_float_input_of_the_other_precision_is_cast_by_the_model():
    model = notebook(rng=np.random.default_rng(0))  # float32
    x = np.random.default_rng(1).standard_normal((2, 28, 28, 1))  # float64
    out = model.forward(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, model.forward(x.astype(np.float32)))


# ---- initialisers ------------------------------------------------------------------------------------------------------
MAKERS = {
    "Conv2D": lambda rng: Conv2D(3, 4, 3, rng=rng),
    "Conv2D-glorot": lambda rng: Conv2D(3, 4, (2, 3), weight_init="glorot", rng=rng),
    "Dense": lambda rng: Dense(20, 7, rng=rng),
    "Dense-glorot": lambda rng: Dense(20, 7, weight_init="glorot", rng=rng),
    "notebook": lambda rng: notebook(rng=rng),
}


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
def test_initialisers_draw_from_the_given_generator(make):
    def weights(seed):
        obj = make(np.random.default_rng(seed))
        params = obj.parameters() if isinstance(obj, Sequential) else obj.params
        return {k: v.copy() for k, v in params.items()}

    a, b, c = weights(0), weights(0), weights(1)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k}: same seed, different weights")
    assert any(not np.array_equal(a[k], c[k]) for k in a if "weight" in k), "different seeds gave the same weights"
    for k in a:
        if k.endswith("bias"):
            assert not a[k].any(), f"{k} should start at zero"


def test_initialisers_never_touch_the_global_random_state():
    np.random.seed(12345)
    before = np.random.get_state()
    Conv2D(3, 4, 3, rng=np.random.default_rng(0))
    Conv2D(3, 4, 3)  # rng=None: a fresh Generator, still not the global state
    Dense(5, 2, weight_init="glorot")
    notebook(rng=np.random.default_rng(0))
    notebook(init="notebook")  # the notebook's seed-1 weights come from a private RandomState
    notebook_weights()
    initialisers.he_normal((3, 3), np.random.default_rng(0), fan_in=3)
    initialisers.glorot_uniform((3, 3), np.random.default_rng(0), fan_in=3, fan_out=3)
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_notebook_init_reproduces_the_notebook_weights():
    legacy = np.random.RandomState(1)  # what the notebook's np.random.seed(1) then randn(...) drew
    conv = legacy.randn(3, 3, 8) / 3
    dense = legacy.randn(1352, 10) / 135
    model = notebook(init="notebook", dtype=np.float64)
    np.testing.assert_array_equal(model.parameters()["0.weight"][:, :, 0, :], conv)
    np.testing.assert_array_equal(model.parameters()["4.weight"], dense)


@pytest.mark.parametrize(
    ("make", "fan_in"),
    [(lambda rng: Conv2D(64, 64, 3, rng=rng), 3 * 3 * 64), (lambda rng: Dense(1000, 300, rng=rng), 1000)],
    ids=["Conv2D(64,64,3)", "Dense(1000,300)"],
)
def test_he_init_standard_deviation(make, fan_in):
    w = make(np.random.default_rng(0)).params["weight"].astype(np.float64)
    want = math.sqrt(2 / fan_in)
    assert abs(w.std() / want - 1) < 0.02, f"He std {w.std():.5f}, expected sqrt(2/{fan_in}) = {want:.5f}"
    assert abs(w.mean()) < 4 * want / math.sqrt(w.size)


def test_glorot_init_bounds_and_spread():
    layer = Dense(600, 400, weight_init="glorot", rng=np.random.default_rng(0))
    w = layer.params["weight"].astype(np.float64)
    limit = math.sqrt(6 / (600 + 400))
    assert np.abs(w).max() <= limit
    assert abs(w.std() / (limit / math.sqrt(3)) - 1) < 0.02


# ---- Sequential --------------------------------------------------------------------------------------------------------
NOTEBOOK_KEYS = {"0.weight", "0.bias", "4.weight", "4.bias"}


def test_state_dict_round_trip():
    source, target = notebook(rng=np.random.default_rng(0)), notebook(rng=np.random.default_rng(1))
    x = np.random.default_rng(2).standard_normal((2, 28, 28, 1)).astype(np.float32)
    assert not np.array_equal(source.forward(x), target.forward(x))
    state = source.state_dict()
    assert set(state) == NOTEBOOK_KEYS
    target.load_state_dict(state)
    for k, v in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[k], v)
    np.testing.assert_array_equal(target.forward(x), source.forward(x))
    # the state dict holds copies: editing it later changes neither model
    state["0.bias"][:] = 7.0
    assert not target.parameters()["0.bias"].any() and not source.parameters()["0.bias"].any()


def test_load_state_dict_casts_to_the_model_dtype():
    model = notebook(rng=np.random.default_rng(0))  # float32
    model.load_state_dict(notebook_weights(np.float64))
    assert all(v.dtype == np.float32 for v in model.parameters().values())


def _assert_unchanged(model, before):
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"{k} changed although loading failed")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop("4.bias"), r"missing key\(s\) \['4\.bias'\]"),
        (lambda s: (s.pop("0.weight"), s.pop("4.bias")), r"missing key\(s\) \['0\.weight', '4\.bias'\]"),
        (lambda s: s.update({"5.weight": np.zeros(3)}), r"unexpected key\(s\) \['5\.weight'\]"),
        (lambda s: (s.pop("0.bias"), s.update({"0.beta": np.zeros(8)})), r"missing key\(s\) \['0\.bias'\].*unexpected key\(s\) \['0\.beta'\]"),
        (lambda s: s.update({"4.weight": np.zeros((10, 1352))}), r"4\.weight has shape \(10, 1352\).*\(1352, 10\)"),
        (lambda s: s.update({"0.bias": np.zeros(7)}), r"0\.bias has shape \(7,\)"),
        (lambda s: s["4.bias"].__setitem__(3, np.nan), r"4\.bias.*non-finite"),
        (lambda s: s.update({"4.bias": np.array(["a"] * 10)}), r"4\.bias must hold numbers"),
    ],
    ids=["missing", "two-missing", "unexpected", "missing+unexpected", "transposed", "short-bias", "nan", "strings"],
)
def test_load_state_dict_rejects_bad_states_and_changes_nothing(edit, match):
    model = notebook(rng=np.random.default_rng(0))
    before = model.state_dict()
    state = {k: v + 1.0 for k, v in before.items()}  # every value differs, so a partial load would show
    edit(state)
    with pytest.raises(ValueError, match=match):
        model.load_state_dict(state)
    _assert_unchanged(model, before)


def test_summary_of_the_notebook_model():
    model = notebook(rng=np.random.default_rng(0))
    text = model.summary()
    for layer in model.layers:
        assert repr(layer) in text, f"summary misses {layer!r}"
    for shape in ["(N, 26, 26, 8)", "(N, 13, 13, 8)", "(N, 1352)", "(N, 10)"]:
        assert shape in text, f"summary misses output shape {shape}"
    assert "13,530" in text and "80" in text
    assert "13,610" in text
    assert model.n_params == 13610
    # one row per layer, in order
    rows = [line for line in text.splitlines() if line[:1].isdigit()]
    assert [r.split()[0] for r in rows] == ["0", "1", "2", "3", "4"]
    assert model.shapes() == [(26, 26, 8), (26, 26, 8), (13, 13, 8), (1352,), (10,)]


def test_summary_needs_an_input_shape():
    model = Sequential([Flatten(), Dense(12, 3)])
    with pytest.raises(ValueError, match="input_shape"):
        model.summary()
    assert "total parameters: 39" in model.summary((2, 2, 3))


def test_parameters_and_gradients_share_keys_and_shapes():
    model = notebook(rng=np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 28, 28, 1))
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(x, training=True), np.array([3, 4]))
    model.backward(loss.backward())
    params, grads = model.parameters(), model.gradients()
    assert set(params) == set(grads) == NOTEBOOK_KEYS
    for k in params:
        assert params[k].shape == grads[k].shape, k
    assert any(grads[k].any() for k in grads), "backward left every gradient at zero"
    # parameters() hands out the live arrays: an optimizer step in place changes the model
    before = model.forward(x)
    params["4.bias"] += 1.0
    np.testing.assert_allclose(model.forward(x), before + 1.0, rtol=1e-12)


def test_sequential_backward_without_training_forward_raises():
    model = notebook(rng=np.random.default_rng(0))
    out = model.forward(np.zeros((1, 28, 28, 1), np.float32))
    with pytest.raises(RuntimeError, match="backward needs a preceding forward"):
        model.backward(np.ones_like(out))


# ---- the loss -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_with_huge_logits_is_finite_and_exact(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 0.0, 1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    y = np.array([0, 0, 1])
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, y)
    grad = loss.backward()
    # Row by row: -log p = 0, 2e4 and log 2; softmax = onehot(0), onehot(2), (1/2, 1/2, 0).
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert value == pytest.approx((0.0 + 2e4 + math.log(2)) / 3, rel=1e-6)
    expected = np.array([[0, 0, 0], [-1, 0, 1], [0.5, -0.5, 0]]) / 3
    np.testing.assert_allclose(grad, expected, atol=1e-7)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-7)
    assert grad.dtype == dtype


def test_loss_gradient_rows_sum_to_zero():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 10)) * 50
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, rng.integers(0, 10, size=6))
    grad = loss.backward()
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)
    assert (grad.min(axis=1) < 0).all()  # the true class pulls down in every row


def test_loss_value_on_uniform_logits():
    loss = SoftmaxCrossEntropy()
    assert loss.forward(np.zeros((4, 10)), np.arange(4)) == pytest.approx(math.log(10), rel=1e-12)
