"""BatchNorm1D/2D, Dropout, AvgPool2D, GlobalAvgPool2D, Tanh, Sigmoid, LeakyReLU: shapes, parameter counts,
configs through JSON and ``Sequential.from_config``, training versus evaluation, running statistics as state,
reproducible dropout, and bad input refused with the layer named.

The deterministic layers go through the shared harness of ``test_layers.py`` (:func:`run_layer_test`); BatchNorm and
Dropout behave differently in training and evaluation, which that harness forbids, so they get their own checks.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import describe, pair, pool_cases
from test_layers import run_layer_test

from convnp.checkpoint import load_checkpoint, save_checkpoint
from convnp.layers import (
    LAYERS,
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Tanh,
)
from convnp.sequential import Sequential
from convnp.optim import SGD

NEW = [AvgPool2D, BatchNorm1D, BatchNorm2D, Dropout, GlobalAvgPool2D, LeakyReLU, Sigmoid, Tanh]


def esc(text: str) -> str:
    return re.escape(text)


def test_every_new_layer_is_registered_for_from_config():
    for cls in NEW:
        assert LAYERS[cls.__name__] is cls


# ---- the deterministic layers through the shared harness -------------------------------------------------------------
CASES = [
    # cls, kwargs, input shape, expected output shape, expected number of parameters
    (AvgPool2D, dict(kernel_size=2), (2, 26, 26, 8), (2, 13, 13, 8), 0),
    (AvgPool2D, dict(kernel_size=3, stride=2), (1, 7, 7, 2), (1, 3, 3, 2), 0),
    (AvgPool2D, dict(kernel_size=2), (1, 5, 5, 1), (1, 2, 2, 1), 0),  # the odd row and column are dropped
    (AvgPool2D, dict(kernel_size=(2, 3), stride=(1, 2)), (2, 4, 9, 3), (2, 3, 4, 3), 0),
    (AvgPool2D, dict(kernel_size=2, stride=1), (1, 3, 3, 1), (1, 2, 2, 1), 0),
    (AvgPool2D, dict(kernel_size=(5, 1)), (3, 5, 4, 2), (3, 1, 4, 2), 0),
    (GlobalAvgPool2D, {}, (2, 13, 13, 8), (2, 8), 0),
    (GlobalAvgPool2D, {}, (1, 1, 1, 1), (1, 1), 0),
    (GlobalAvgPool2D, {}, (3, 2, 7, 5), (3, 5), 0),
    (Tanh, {}, (3, 4), (3, 4), 0),
    (Tanh, {}, (2, 5, 5, 3), (2, 5, 5, 3), 0),
    (Sigmoid, {}, (3, 4), (3, 4), 0),
    (Sigmoid, {}, (2, 3, 4, 5, 1), (2, 3, 4, 5, 1), 0),
    (LeakyReLU, {}, (3, 4), (3, 4), 0),
    (LeakyReLU, dict(negative_slope=0.2), (2, 5, 5, 3), (2, 5, 5, 3), 0),
    (LeakyReLU, dict(negative_slope=-1.5), (4, 6, 2), (4, 6, 2), 0),
]


def _case_id(v):
    return v.__name__ if isinstance(v, type) else str(v).replace(" ", "")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("cls", "kwargs", "in_shape", "out_shape", "n_params"), CASES, ids=_case_id)
def test_layer_harness(cls, kwargs, in_shape, out_shape, n_params, dtype):
    run_layer_test(cls, kwargs, in_shape, out_shape, n_params, dtype=dtype)


@pytest.mark.parametrize("cfg", pool_cases(12, seed=91), ids=describe)
def test_avgpool2d_random_configs_through_the_harness(cfg):
    (kH, kW), (sH, sW) = pair(cfg["kernel_size"]), pair(cfg["stride"] or cfg["kernel_size"])
    out = (cfg["N"], (cfg["H"] - kH) // sH + 1, (cfg["W"] - kW) // sW + 1, cfg["C"])
    kwargs = dict(kernel_size=cfg["kernel_size"], stride=cfg["stride"])
    run_layer_test(AvgPool2D, kwargs, (cfg["N"], cfg["H"], cfg["W"], cfg["C"]), out, 0)


def test_avgpool2d_forward_and_backward_match_loop_references():
    """Overlapping 3x2 windows at stride (2, 1): plain loops over windows, so the layer is right without torch."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 8, 6, 3))  # rows 0-2, 2-4, 4-6: row 7 lies in no window
    layer = AvgPool2D((3, 2), (2, 1))
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    expected_out, expected_dx = np.zeros(out.shape), np.zeros(x.shape)
    for i, j in np.ndindex(out.shape[1:3]):
        expected_out[:, i, j] = x[:, 2 * i : 2 * i + 3, j : j + 2].mean(axis=(1, 2))
        expected_dx[:, 2 * i : 2 * i + 3, j : j + 2] += dout[:, i, j][:, None, None, :] / 6
    np.testing.assert_allclose(out, expected_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-12, atol=1e-12)
    assert not dx[:, 7].any(), "row 7 lies in no window and must get no gradient"


@pytest.mark.parametrize("channels", [3, 70])  # below and above PIXEL_WRITE_BELOW: whole pixels, floats
def test_avgpool2d_2x2_fast_path_matches_loop_references(channels):
    """2x2 windows at stride 2 take their own route; odd sizes leave the last row and column in no window."""
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((2, 7, 9, channels))
    layer = AvgPool2D(2)
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    expected_out, expected_dx = np.zeros(out.shape), np.zeros(x.shape)
    for i, j in np.ndindex(out.shape[1:3]):
        expected_out[:, i, j] = x[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean(axis=(1, 2))
        expected_dx[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] += dout[:, i, j][:, None, None, :] / 4
    np.testing.assert_allclose(out, expected_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(dx, expected_dx)
    assert not dx[:, 6].any() and not dx[:, :, 8].any()


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (1, 5, 7, 16), (3, 4, 4, 64)])
def test_avgpool2d_2x2_rows_first_on_views_and_odd_sizes(shape):
    """The 2x2 route adds each tile's rows first; a strided view or an odd size gives the windows' means all the same."""
    from convnp.ops.avgpool import avgpool2d_forward
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    for a in (x, x[:, ::-1], x[:, :, 1:]):  # contiguous, a reversed view, an odd width cut from a view
        out, _ = avgpool2d_forward(a, (2, 2), (2, 2))
        H, W = a.shape[1] // 2, a.shape[2] // 2
        expected = a[:, : 2 * H, : 2 * W].reshape(a.shape[0], H, 2, W, 2, a.shape[3]).mean(axis=(2, 4))
        assert out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_global_avgpool2d_is_the_mean_and_spreads_evenly():
    x = np.random.default_rng(1).standard_normal((3, 4, 5, 2))
    layer = GlobalAvgPool2D()
    np.testing.assert_allclose(layer.forward(x, training=True), x.mean(axis=(1, 2)), rtol=1e-13)
    dx = layer.backward(np.ones((3, 2)))
    np.testing.assert_allclose(dx, np.full(x.shape, 1 / 20), rtol=1e-15)


def test_activation_values():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_array_equal(LeakyReLU().forward(x), [[-0.02, -0.005, 0.0, 0.5, 2.0]])
    np.testing.assert_array_equal(LeakyReLU(0.0).forward(x), ReLU().forward(x))
    layer = LeakyReLU(0.25)
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), [[0.25, 0.25, 0.25, 1.0, 1.0]])  # slope at 0


@pytest.mark.parametrize(
    ("layer", "text"),
    [
        (AvgPool2D(2), "AvgPool2D(kernel_size=2, stride=2)"),
        (AvgPool2D((3, 2), 1), "AvgPool2D(kernel_size=(3, 2), stride=1)"),
        (GlobalAvgPool2D(), "GlobalAvgPool2D()"),
        (BatchNorm2D(8), "BatchNorm2D(num_features=8, eps=1e-05, momentum=0.1)"),
        (BatchNorm1D(16, eps=1e-3, momentum=0.01), "BatchNorm1D(num_features=16, eps=0.001, momentum=0.01)"),
        (Dropout(), "Dropout(p=0.5)"),
        (Dropout(0.25), "Dropout(p=0.25)"),
        (Tanh(), "Tanh()"),
        (Sigmoid(), "Sigmoid()"),
        (LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_repr(layer, text):
    assert repr(layer) == text


# ---- BatchNorm: parameters, state, shapes ---------------------------------------------------------------------------
BN = [(BatchNorm2D, (6, 5, 7, 3)), (BatchNorm1D, (6, 3))]
BN_IDS = ["BatchNorm2D", "BatchNorm1D"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("cls", "shape"), BN, ids=BN_IDS)
def test_batchnorm_parameters_state_and_shapes(cls, shape, dtype):
    C = shape[-1]
    layer = cls(C, dtype=dtype)
    assert layer.n_params == 2 * C
    assert set(layer.params) == set(layer.grads) == {"weight", "bias"}
    assert set(layer.state) == {"running_mean", "running_var"}
    np.testing.assert_array_equal(layer.params["weight"], np.ones(C))
    np.testing.assert_array_equal(layer.params["bias"], np.zeros(C))
    np.testing.assert_array_equal(layer.state["running_mean"], np.zeros(C))
    np.testing.assert_array_equal(layer.state["running_var"], np.ones(C))
    for store in (layer.params, layer.grads, layer.state):
        for k, v in store.items():
            assert v.dtype == dtype and v.shape == (C,), k
    assert layer.output_shape(shape[1:]) == shape[1:]
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out = layer.forward(x, training=True)
    assert out.shape == shape and out.dtype == dtype
    dout = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    dx = layer.backward(dout)
    assert dx.shape == shape and dx.dtype == dtype
    grads = {k: g.copy() for k, g in layer.grads.items()}
    np.testing.assert_array_equal(layer.backward(dout), dx)  # overwritten, not accumulated
    for k in grads:
        np.testing.assert_array_equal(layer.grads[k], grads[k])
        assert layer.grads[k].dtype == dtype
    layer.forward(x * 3 + 1)  # an evaluation pass in between leaves the training cache, and its gradients, alone
    np.testing.assert_array_equal(layer.backward(dout), dx)
    with pytest.raises(RuntimeError, match=esc(f"{layer!r}: backward needs a preceding forward(x, training=True)")):
        cls(C, dtype=dtype).backward(dout)
    rebuilt = cls(**json.loads(json.dumps(layer.get_config())), dtype=dtype)
    assert rebuilt.get_config() == layer.get_config() == {"num_features": C, "eps": 1e-5, "momentum": 0.1}
    assert repr(rebuilt) == repr(layer)


@pytest.mark.parametrize(("cls", "shape"), BN, ids=BN_IDS)
def test_batchnorm_training_normalises_each_channel(cls, shape):
    """gamma = 1, beta = 0: each channel of a training output has mean 0 and (biased) std sqrt(var / (var + eps))."""
    rng = np.random.default_rng(2)
    C = shape[-1]
    x = rng.standard_normal(shape) * np.array([0.5, 3.0, 10.0]) + np.array([-4.0, 0.0, 25.0])
    out = cls(C, dtype=np.float64).forward(x, training=True)
    axes = tuple(range(x.ndim - 1))
    np.testing.assert_allclose(out.mean(axis=axes), 0.0, atol=1e-12)
    var = x.var(axis=axes)
    np.testing.assert_allclose(out.std(axis=axes), np.sqrt(var / (var + 1e-5)), rtol=1e-12)
    # gamma and beta then scale and shift each channel
    layer = cls(C, dtype=np.float64)
    layer.params["weight"][:] = [2.0, -1.0, 0.5]
    layer.params["bias"][:] = [1.0, 0.0, -3.0]
    np.testing.assert_allclose(layer.forward(x, training=True), out * [2.0, -1.0, 0.5] + [1.0, 0.0, -3.0], rtol=1e-12)


@pytest.mark.parametrize(("cls", "shape"), BN, ids=BN_IDS)
def test_batchnorm_running_statistics_follow_pytorch_rule(cls, shape):
    """running = (1 - momentum) * running + momentum * batch, with the UNBIASED batch variance."""
    rng = np.random.default_rng(3)
    C = shape[-1]
    layer = cls(C, momentum=0.25, dtype=np.float64)
    axes = tuple(range(len(shape) - 1))
    mean, var = np.zeros(C), np.ones(C)
    for step in range(3):
        x = rng.standard_normal(shape) * (step + 2) + step
        layer.forward(x, training=True)
        mean = 0.75 * mean + 0.25 * x.mean(axis=axes)
        var = 0.75 * var + 0.25 * x.var(axis=axes, ddof=1)
        np.testing.assert_allclose(layer.state["running_mean"], mean, rtol=1e-12, err_msg=f"step {step}")
        np.testing.assert_allclose(layer.state["running_var"], var, rtol=1e-12, err_msg=f"step {step}")
    before = {k: v.copy() for k, v in layer.state.items()}
    layer.forward(x)  # evaluation: the running statistics are used, not updated
    for k in before:
        np.testing.assert_array_equal(layer.state[k], before[k])


def test_batchnorm_momentum_limits():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 4, 4, 2)) * 3 + 1
    frozen = BatchNorm2D(2, momentum=0.0, dtype=np.float64)
    frozen.forward(x, training=True)
    np.testing.assert_array_equal(frozen.state["running_mean"], [0.0, 0.0])
    np.testing.assert_array_equal(frozen.state["running_var"], [1.0, 1.0])
    last = BatchNorm2D(2, momentum=1.0, dtype=np.float64)
    last.forward(x, training=True)
    np.testing.assert_allclose(last.state["running_mean"], x.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(last.state["running_var"], x.var(axis=(0, 1, 2), ddof=1), rtol=1e-12)


def test_batchnorm_running_statistics_converge_to_the_data():
    rng = np.random.default_rng(5)
    layer = BatchNorm2D(3)  # float32, the default
    centre, spread = np.array([3.0, -1.0, 0.0]), np.array([2.0, 0.5, 1.0])
    for _ in range(100):
        layer.forward((rng.standard_normal((8, 6, 6, 3)) * spread + centre).astype(np.float32), training=True)
    np.testing.assert_allclose(layer.state["running_mean"], centre, atol=0.05)
    np.testing.assert_allclose(layer.state["running_var"], spread**2, rtol=0.05)
    assert layer.state["running_mean"].dtype == np.float32


@pytest.mark.parametrize(("cls", "shape"), BN, ids=BN_IDS)
def test_batchnorm_eval_uses_running_statistics_and_treats_samples_alone(cls, shape):
    rng = np.random.default_rng(6)
    C = shape[-1]
    layer = cls(C, dtype=np.float64)
    fresh = rng.standard_normal(shape) * 4 + 2
    # A fresh layer's running statistics are 0 and 1: evaluation is x / sqrt(1 + eps).
    np.testing.assert_allclose(layer.forward(fresh), fresh / np.sqrt(1 + 1e-5), rtol=1e-12)
    for _ in range(5):
        layer.forward(rng.standard_normal(shape) * 4 + 2, training=True)
    rm, rv = layer.state["running_mean"], layer.state["running_var"]
    x = rng.standard_normal(shape)
    out = layer.forward(x)
    np.testing.assert_allclose(out, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-12)
    # Evaluation: each sample's output is independent of the rest of the batch ...
    for n in range(shape[0]):
        np.testing.assert_allclose(layer.forward(x[n : n + 1]), out[n : n + 1], rtol=1e-13, atol=1e-15)
    # ... while in training the same sample's output changes when its batch does.
    train = layer.forward(x, training=True)
    assert not np.allclose(train, out)
    other = np.concatenate([x[:1], rng.standard_normal(x[1:].shape) + 5])
    assert not np.allclose(layer.forward(other, training=True)[0], train[0])


def test_model_in_eval_gives_batch_independent_outputs():
    rng = np.random.default_rng(7)
    model = _all_layers_model(rng)
    x = rng.standard_normal((6, 9, 9, 2)).astype(np.float32)
    for _ in range(3):
        model.forward(x + rng.standard_normal(x.shape).astype(np.float32), training=True)
    out = model.forward(x)
    singles = np.concatenate([model.forward(x[n : n + 1]) for n in range(6)])
    np.testing.assert_allclose(singles, out, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.forward(x[:3], training=True), model.forward(x, training=True)[:3], atol=1e-3)


def test_a_bias_before_batchnorm_gets_no_gradient():
    """The mean subtraction cancels any per-channel constant, so the bias of a layer feeding a BatchNorm is inert."""
    rng = np.random.default_rng(8)
    model = Sequential([Conv2D(2, 3, 3, rng=rng, dtype=np.float64), BatchNorm2D(3, dtype=np.float64)])
    out = model.forward(rng.standard_normal((4, 6, 6, 2)), training=True)
    model.backward(rng.standard_normal(out.shape))
    np.testing.assert_allclose(model.gradients()["0.bias"], 0.0, atol=1e-12)
    assert np.abs(model.gradients()["0.weight"]).max() > 1e-3


def test_batchnorm_astype_casts_state():
    layer = BatchNorm2D(3)
    layer.forward(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), training=True)
    running = layer.state["running_mean"].copy()
    layer.astype(np.float64)
    assert all(v.dtype == np.float64 for store in (layer.params, layer.grads, layer.state) for v in store.values())
    np.testing.assert_array_equal(layer.state["running_mean"], running.astype(np.float64))


# ---- BatchNorm state in a model: saved, not trained ------------------------------------------------------------------
def _all_layers_model(rng, dtype=np.float32):
    kw = dict(rng=rng, dtype=dtype)
    return Sequential(
        [
            Conv2D(2, 4, 3, padding="same", bias=False, **kw),
            BatchNorm2D(4, dtype=dtype),
            LeakyReLU(0.1),
            AvgPool2D(3, 2),
            Conv2D(4, 6, 3, **kw),
            Tanh(),
            GlobalAvgPool2D(),
            Dropout(0.3, rng=np.random.default_rng(1)),
            Dense(6, 5, bias=False, **kw),
            BatchNorm1D(5, momentum=0.2, dtype=dtype),
            Sigmoid(),
            Dense(5, 3, **kw),
        ],
        input_shape=(9, 9, 2),  # -> (9, 9, 4) -> (4, 4, 4) -> (2, 2, 6) -> 6 -> 5 -> 3
    )


STATE_KEYS = {"1.running_mean", "1.running_var", "9.running_mean", "9.running_var"}


def test_running_statistics_are_state_not_parameters():
    model = _all_layers_model(np.random.default_rng(0))
    assert model.shapes() == [(9, 9, 4), (9, 9, 4), (9, 9, 4), (4, 4, 4), (2, 2, 6), (2, 2, 6), (6,), (6,), (5,), (5,),
                              (5,), (3,)]  # fmt: skip
    params, state = model.parameters(), model.state_dict()
    assert not STATE_KEYS & set(params) and not STATE_KEYS & set(model.gradients())
    assert STATE_KEYS <= set(state)
    assert set(state) == set(params) | STATE_KEYS
    assert {"1.weight", "1.bias", "9.weight", "9.bias"} <= set(params)
    assert model.n_params == 2 * 3 * 3 * 4 + 2 * 4 + 4 * 3 * 3 * 6 + 6 + 6 * 5 + 2 * 5 + 5 * 3 + 3


def test_optimizer_steps_leave_running_statistics_to_the_forward():
    rng = np.random.default_rng(1)
    model = _all_layers_model(rng)
    x = rng.standard_normal((4, 9, 9, 2)).astype(np.float32)
    out = model.forward(x, training=True)
    after_forward = {k: v.copy() for k, v in model.state_dict().items() if k in STATE_KEYS}
    assert not np.array_equal(after_forward["1.running_mean"], np.zeros(4)), "a training forward updates them"
    model.backward(np.ones_like(out))
    optimizer = SGD(lr=0.5, momentum=0.9)
    for _ in range(3):
        optimizer.step(model.parameters(), model.gradients())
    assert optimizer.state_dict() and not any(k.split("/")[0] in STATE_KEYS for k in optimizer.state_dict())
    for k, v in after_forward.items():
        np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=f"the optimizer changed {k}")


def test_config_round_trip_through_json_and_from_config():
    rng = np.random.default_rng(2)
    model = _all_layers_model(rng)
    x = rng.standard_normal((5, 9, 9, 2)).astype(np.float32)
    for _ in range(2):
        model.forward(x, training=True)
    config = json.loads(json.dumps(model.get_config()))
    rebuilt = Sequential.from_config(config)
    assert rebuilt.get_config() == model.get_config()
    assert [repr(layer) for layer in rebuilt] == [repr(layer) for layer in model]
    assert rebuilt.n_params == model.n_params and rebuilt.dtype == np.float32
    assert isinstance(rebuilt[7].rng, np.random.Generator)
    rebuilt.load_state_dict(model.state_dict())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(rebuilt.state_dict()[k], v, err_msg=k)
    np.testing.assert_array_equal(rebuilt.forward(x), model.forward(x))  # evaluation: dropout off, running stats


def test_float64_config_round_trip():
    model = _all_layers_model(np.random.default_rng(3), dtype=np.float64)
    rebuilt = Sequential.from_config(json.loads(json.dumps(model.get_config())), dtype=np.float64)
    assert rebuilt.dtype == np.float64
    assert all(layer.dtype in (None, np.float64) for layer in rebuilt)


def test_checkpoint_round_trip_keeps_running_statistics(tmp_path):
    rng = np.random.default_rng(4)
    model = _all_layers_model(rng)
    x = rng.standard_normal((5, 9, 9, 2)).astype(np.float32)
    for _ in range(3):
        model.forward(x * 2 + 1, training=True)
    path = save_checkpoint(tmp_path / "bn.npz", model)
    loaded = load_checkpoint(path).model
    for k in STATE_KEYS:
        np.testing.assert_array_equal(loaded.state_dict()[k], model.state_dict()[k], err_msg=k)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


# ---- Dropout ------------------------------------------------------------------------------------------------------
def test_dropout_is_the_identity_at_evaluation():
    x = np.random.default_rng(0).standard_normal((4, 5, 5, 3)).astype(np.float32)
    layer = Dropout(0.5, rng=np.random.default_rng(1))
    state = layer.rng.bit_generator.state
    assert layer.forward(x) is x
    assert layer.rng.bit_generator.state == state, "evaluation must not draw from the Generator"
    with pytest.raises(RuntimeError, match=esc("Dropout(p=0.5): backward needs a preceding forward")):
        layer.backward(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_dropout_p_zero_is_the_identity_in_training(dtype):
    x = np.random.default_rng(0).standard_normal((3, 7)).astype(dtype)
    layer = Dropout(0.0, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(layer.forward(x, training=True), x)
    dout = np.random.default_rng(2).standard_normal((3, 7)).astype(dtype)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dx, dout)
    assert dx.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(8, 10), (2, 6, 6, 3), (4, 3, 5), (5,)], ids=str)
def test_dropout_backward_uses_the_forward_mask(shape, dtype):
    rng = np.random.default_rng(len(shape))
    x = (rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape)).astype(dtype)  # never 0: zeros mark drops
    layer = Dropout(0.4, rng=np.random.default_rng(3))
    out = layer.forward(x, training=True)
    assert out.shape == x.shape and out.dtype == dtype
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.6, rtol=1e-6)
    dout = rng.standard_normal(shape).astype(dtype)
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, np.where(kept, dout * dtype(1 / 0.6), 0))


def test_dropout_same_generator_state_gives_the_same_masks():
    x = np.ones((6, 5, 5, 4), np.float32)
    a, b = Dropout(0.5, rng=np.random.default_rng(7)), Dropout(0.5, rng=np.random.default_rng(7))
    masks_a = [a.forward(x, training=True) for _ in range(3)]
    masks_b = [b.forward(x, training=True) for _ in range(3)]
    for ma, mb in zip(masks_a, masks_b):
        np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(masks_a[0], masks_a[1]), "each training forward draws a new mask"
    other = Dropout(0.5, rng=np.random.default_rng(8)).forward(x, training=True)
    assert not np.array_equal(other, masks_a[0]), "another seed, another mask"
    # The Generator is the attribute rng: saving and restoring its state replays the masks.
    layer = Dropout(0.5, rng=np.random.default_rng(9))
    saved = layer.rng.bit_generator.state
    first = layer.forward(x, training=True)
    layer.rng.bit_generator.state = saved
    np.testing.assert_array_equal(layer.forward(x, training=True), first)


def test_dropout_keeps_the_generator_it_was_given_and_not_the_global_state():
    rng = np.random.default_rng(0)
    assert Dropout(rng=rng).rng is rng
    assert isinstance(Dropout().rng, np.random.Generator)
    np.random.seed(123)
    before = np.random.get_state()
    Dropout(0.5).forward(np.ones((10, 10)), training=True)
    after = np.random.get_state()
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_dropout_config_and_dtypes():
    layer = Dropout(0.2)
    assert layer.get_config() == {"p": 0.2}
    assert layer.dtype is None  # parameter-free: float32 and float64 inputs both pass
    assert layer.forward(np.ones((2, 2), np.float32), training=True).dtype == np.float32
    assert layer.forward(np.ones((2, 2), np.float64), training=True).dtype == np.float64
    assert Dropout(p=0).p == 0.0 and isinstance(Dropout(p=0).p, float)


# ---- bad input ------------------------------------------------------------------------------------------------------
# name -> (factory, a valid input shape, the layout in messages)
BAD_INPUT_LAYERS = {
    "BatchNorm2D": (lambda: BatchNorm2D(3), (2, 5, 5, 3), "(N, H, W, C)"),
    "BatchNorm1D": (lambda: BatchNorm1D(6), (3, 6), "(N, num_features)"),
    "Dropout": (lambda: Dropout(0.5, rng=np.random.default_rng(0)), (2, 5, 5, 3), "(N, ...)"),
    "AvgPool2D": (lambda: AvgPool2D(2), (2, 8, 8, 3), "(N, H, W, C)"),
    "GlobalAvgPool2D": (GlobalAvgPool2D, (2, 8, 8, 3), "(N, H, W, C)"),
    "Tanh": (Tanh, (2, 5, 5, 3), "(N, ...)"),
    "Sigmoid": (Sigmoid, (2, 5), "(N, ...)"),
    "LeakyReLU": (LeakyReLU, (2, 5, 5, 3), "(N, ...)"),
}
NAMES = list(BAD_INPUT_LAYERS)


def _layer(name):
    make, shape, layout = BAD_INPUT_LAYERS[name]
    return make(), shape, layout


@pytest.mark.parametrize("name", NAMES)
def test_valid_input_passes_in_training_and_evaluation(name):
    layer, shape, _ = _layer(name)
    for training in (False, True):
        assert layer.forward(np.ones(shape, np.float32), training=training).dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_wrong_rank(name):
    layer, shape, layout = _layer(name)
    bad = np.zeros(shape[1:], np.float32) if layer.input_ndim is not None else np.array(1.0, np.float32)
    rank = layer.input_ndim or 1
    with pytest.raises(ValueError, match=esc(f"{layer!r}: expected input of rank {rank} with shape {layout}, got shape {bad.shape}")):
        layer.forward(bad)


@pytest.mark.parametrize(
    ("name", "bad_shape", "axis", "want"),
    [("BatchNorm2D", (2, 5, 5, 4), 3, 3), ("BatchNorm2D", (2, 5, 5, 1), 3, 3), ("BatchNorm1D", (3, 5), 1, 6)],
)
def test_wrong_channel_count(name, bad_shape, axis, want):
    layer, _, layout = _layer(name)
    with pytest.raises(ValueError, match=esc(f"{layer!r}: expected input of shape {layout} with axis {axis} = {want}, got shape {bad_shape}")):
        layer.forward(np.zeros(bad_shape, np.float32))


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float16, bool], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_wrong_dtype(name, dtype):
    layer, shape, _ = _layer(name)
    if layer.dtype is None:
        expected = f"{layer!r}: expected float32 or float64 input, got {np.dtype(dtype)}"
    else:
        expected = f"{layer!r}: expected float32 input to match the layer's parameters, got {np.dtype(dtype)}"
    with pytest.raises(ValueError, match=esc(expected)):
        layer.forward(np.zeros(shape, dtype=dtype))


def test_batchnorm_refuses_the_other_float_precision():
    layer = BatchNorm2D(3)
    with pytest.raises(ValueError, match=esc(f"{layer!r}: expected float32 input to match the layer's parameters, got float64")):
        layer.forward(np.zeros((2, 4, 4, 3)))


@pytest.mark.parametrize("name", NAMES)
def test_not_an_array_empty_batch_and_non_finite(name):
    layer, shape, layout = _layer(name)
    with pytest.raises(TypeError, match=esc(f"{layer!r}: expected a NumPy array of shape {layout}, got list")):
        layer.forward(np.zeros(shape).tolist())
    with pytest.raises(ValueError, match=esc(f"{layer!r}: expected a batch of at least one sample, got shape {(0, *shape[1:])}")):
        layer.forward(np.zeros((0, *shape[1:]), np.float32))
    x = np.ones(shape, np.float32)
    x.reshape(-1)[-1] = np.nan
    with pytest.raises(ValueError, match=esc(f"{layer!r}: input holds 1 non-finite value(s) (NaN or inf)")):
        layer.forward(x, training=True)


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (AvgPool2D(3), (2, 2, 5, 1), "input of shape (2, 2, 5, 1) is too small: a 3x3 pooling window does not fit in 2x5"),
        (AvgPool2D((1, 4), 1), (1, 6, 3, 2), "input of shape (1, 6, 3, 2) is too small: a 1x4 pooling window does not fit in 6x3"),
    ],
)
def test_avgpool_window_larger_than_the_input(layer, shape, message):
    with pytest.raises(ValueError, match=esc(f"{layer!r}: {message}")):
        layer.forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize(
    ("layer", "shape"), [(BatchNorm1D(4), (1, 4)), (BatchNorm2D(2), (1, 1, 1, 2))], ids=["BatchNorm1D", "BatchNorm2D"]
)
def test_batchnorm_training_needs_two_values_per_channel(layer, shape):
    with pytest.raises(ValueError, match=esc(f"{layer!r}: training needs more than one value per channel to estimate a variance, got input of shape {shape}")):
        layer.forward(np.ones(shape, np.float32), training=True)
    assert layer.forward(np.ones(shape, np.float32)).shape == shape  # evaluation takes a single sample
    assert BatchNorm2D(2).forward(np.ones((1, 2, 1, 2), np.float32), training=True).shape == (1, 2, 1, 2)


@pytest.mark.parametrize(
    ("layers", "input_shape", "message"),
    [
        ([Conv2D(1, 4, 3), BatchNorm2D(3)], (8, 8, 1), "Sequential: layer 1 BatchNorm2D(num_features=3, eps=1e-05, momentum=0.1) cannot take input of shape (6, 6, 4)"),
        ([Flatten(), BatchNorm2D(3)], (2, 2, 3), "Sequential: layer 1 BatchNorm2D(num_features=3, eps=1e-05, momentum=0.1) cannot take input of shape (12,)"),
        ([Flatten(), BatchNorm1D(10)], (2, 2, 3), "Sequential: layer 1 BatchNorm1D(num_features=10, eps=1e-05, momentum=0.1) cannot take input of shape (12,): expected 10 input features"),
        ([Flatten(), GlobalAvgPool2D()], (2, 2, 3), "Sequential: layer 1 GlobalAvgPool2D() cannot take input of shape (12,): expected one (H, W, C) feature map"),
        ([AvgPool2D(5)], (4, 9, 1), "Sequential: layer 0 AvgPool2D(kernel_size=5, stride=5) cannot take input of shape (4, 9, 1): a 5x5 pooling window does not fit in 4x9"),
    ],
    ids=["bn2d-channels", "bn2d-vector", "bn1d-features", "gap-vector", "avgpool-small"],
)
def test_sequential_catches_layers_that_do_not_fit(layers, input_shape, message):
    with pytest.raises(ValueError, match=esc(message)):
        Sequential(layers, input_shape=input_shape)


# ---- constructor arguments ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: BatchNorm2D(0), ValueError, "BatchNorm2D: num_features must be a positive integer, got 0"),
        (lambda: BatchNorm2D("8"), ValueError, "BatchNorm2D: num_features must be a positive integer, got '8'"),
        (lambda: BatchNorm1D(2.0), ValueError, "BatchNorm1D: num_features must be a positive integer, got 2.0"),
        (lambda: BatchNorm2D(8, eps=0), ValueError, "BatchNorm2D: eps must be a finite number > 0, got 0"),
        (lambda: BatchNorm2D(8, eps=-1e-5), ValueError, "BatchNorm2D: eps must be a finite number > 0, got -1e-05"),
        (lambda: BatchNorm2D(8, eps=float("inf")), ValueError, "BatchNorm2D: eps must be a finite number > 0, got inf"),
        (lambda: BatchNorm1D(8, eps="1e-5"), ValueError, "BatchNorm1D: eps must be a finite number > 0, got '1e-5'"),
        (lambda: BatchNorm2D(8, momentum=1.5), ValueError, "BatchNorm2D: momentum must be a number in [0, 1], got 1.5"),
        (lambda: BatchNorm2D(8, momentum=-0.1), ValueError, "BatchNorm2D: momentum must be a number in [0, 1], got -0.1"),
        (lambda: BatchNorm1D(8, momentum=None), ValueError, "BatchNorm1D: momentum must be a number in [0, 1], got None"),
        (lambda: BatchNorm2D(8, momentum=float("nan")), ValueError, "BatchNorm2D: momentum must be a number in [0, 1], got nan"),
        (lambda: BatchNorm2D(8, dtype=np.float16), ValueError, "BatchNorm2D: dtype must be float32 or float64, got float16"),
        (lambda: Dropout(1.0), ValueError, "Dropout: p must be a number in [0, 1), got 1.0"),
        (lambda: Dropout(1), ValueError, "Dropout: p must be a number in [0, 1), got 1"),
        (lambda: Dropout(-0.1), ValueError, "Dropout: p must be a number in [0, 1), got -0.1"),
        (lambda: Dropout(True), ValueError, "Dropout: p must be a number in [0, 1), got True"),
        (lambda: Dropout("0.5"), ValueError, "Dropout: p must be a number in [0, 1), got '0.5'"),
        (lambda: Dropout(float("nan")), ValueError, "Dropout: p must be a number in [0, 1), got nan"),
        (lambda: Dropout(0.5, rng=42), TypeError, "rng must be a numpy.random.Generator (np.random.default_rng(seed)), got int"),
        (lambda: Dropout(0.5, rng=np.random.RandomState(0)), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: AvgPool2D(0), ValueError, "AvgPool2D: kernel_size must be >= 1, got 0"),
        (lambda: AvgPool2D(2, stride=0), ValueError, "AvgPool2D: stride must be >= 1, got 0"),
        (lambda: AvgPool2D("2"), ValueError, "AvgPool2D: kernel_size must be an int or a pair of ints, got '2'"),
        (lambda: AvgPool2D((2, 2, 2)), ValueError, "AvgPool2D: kernel_size must be an int or a pair of ints, got (2, 2, 2)"),
        (lambda: LeakyReLU("0.1"), ValueError, "LeakyReLU: negative_slope must be a finite number, got '0.1'"),
        (lambda: LeakyReLU(float("nan")), ValueError, "LeakyReLU: negative_slope must be a finite number, got nan"),
        (lambda: LeakyReLU(float("-inf")), ValueError, "LeakyReLU: negative_slope must be a finite number, got -inf"),
        (lambda: LeakyReLU(False), ValueError, "LeakyReLU: negative_slope must be a finite number, got False"),
    ],
    ids=lambda v: None if callable(v) or isinstance(v, type) else v[:60],
)
def test_constructor_arguments(build, error, message):
    with pytest.raises(error, match=esc(message)):
        build()
