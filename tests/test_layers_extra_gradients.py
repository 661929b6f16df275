"""Finite-difference gradient checks (float64) for BatchNorm1D/2D, Dropout, AvgPool2D, GlobalAvgPool2D, Tanh,
Sigmoid and LeakyReLU, each on its own and all together in one model.

Same method and tolerance as ``test_gradients.py``: central differences with ``eps = 1e-6`` through
:func:`convnp.gradcheck.check_layer`, relative error below 1e-6 for the input and every parameter. Configurations
come from seeded generators; each test id spells its configuration out.

Two layers need care to be differentiable functions at all:

- BatchNorm in training mode normalises with the batch's statistics, so every forward of ``check_layer`` is the
  same function of ``x`` (the running averages it updates do not enter the output). ``BatchNorm1D`` gets at least 3
  samples: with 2, ``xhat = +-1`` whatever ``x`` is, and the input gradient shrinks to an ``eps``-sized residue
  that finite differences cannot resolve to 1e-6.
- Dropout draws a new mask on every forward; :class:`FixedMaskDropout` rewinds its Generator to one saved state
  first, so ``check_layer``'s repeated forwards all see the same mask.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import away_from_zero, describe, pool_cases

from convnp.gradcheck import check_layer, check_model, numerical_gradient, rel_error
from convnp.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    GlobalAvgPool2D,
    LeakyReLU,
    Sigmoid,
    Tanh,
)
from convnp.sequential import Sequential
from convnp.ops.batchnorm import batchnorm_backward, batchnorm_forward

TOL = 1e-6
MAX_COORDS = 400  # per array; small arrays are checked in full


class FixedMaskDropout(Dropout):
    """Dropout that draws the same mask on every forward: its Generator is rewound to one saved state first."""

    def __init__(self, p: float, seed: int):
        super().__init__(p, np.random.default_rng(seed))
        self._saved = self.rng.bit_generator.state

    def _forward(self, x, training):
        self.rng.bit_generator.state = self._saved
        return super()._forward(x, training)


def assert_layer_gradients(layer, x, cfg, *, max_coords=MAX_COORDS):
    """check_layer on the input and every parameter; on failure say which array and by how much."""
    errors = check_layer(layer, x, np.random.default_rng(cfg["seed"]), max_coords=max_coords)
    assert set(errors) == {"input", *layer.params}, f"{layer!r}: checked {sorted(errors)}"
    bad = {k: f"{e:.2e}" for k, e in errors.items() if not e < TOL}
    assert not bad, f"{layer!r} on x{x.shape} ({describe(cfg)}): rel errors above {TOL}: {bad}"


def _cases(n: int, seed: int, **draws) -> list[dict]:
    """``n`` configurations; each keyword is a function ``rng -> value`` drawn once per case, in keyword order."""
    rng = np.random.default_rng(seed)
    return [dict(seed=seed + i, **{k: draw(rng) for k, draw in draws.items()}) for i in range(n)]


def _odd(low: int, high: int):
    """A draw of an odd size in ``[low, high]``."""
    return lambda rng: int(rng.choice(np.arange(low | 1, high + 1, 2)))


def _pick(options):
    return lambda rng: options[int(rng.integers(len(options)))]


# ---- BatchNorm ----------------------------------------------------------------------------------------------------
BN2D = _cases(
    12, 100,
    N=lambda r: int(r.integers(1, 5)), H=_odd(1, 7), W=_odd(3, 9), C=lambda r: int(r.integers(1, 6)),
    eps=_pick([1e-5, 1e-3, 0.1]), momentum=_pick([0.1, 0.5, 1.0, 0.0]),
    scale=_pick([0.1, 1.0, 5.0]), shift=_pick([0.0, -3.0, 10.0]),
)  # fmt: skip
BN1D = _cases(
    10, 200,
    N=lambda r: int(r.integers(3, 7)), C=lambda r: int(r.integers(1, 6)),
    eps=_pick([1e-5, 1e-3, 0.1]), momentum=_pick([0.1, 0.5]),
    scale=_pick([0.1, 1.0, 5.0]), shift=_pick([0.0, -3.0, 10.0]),
)  # fmt: skip


def _batchnorm(cls, cfg, rng):
    """A float64 BatchNorm with random gamma and beta (not the ones and zeros of the initialiser)."""
    layer = cls(cfg["C"], eps=cfg["eps"], momentum=cfg["momentum"], dtype=np.float64)
    layer.params["weight"][:] = rng.uniform(0.5, 2.0, cfg["C"]) * rng.choice([-1.0, 1.0], cfg["C"])
    layer.params["bias"][:] = rng.standard_normal(cfg["C"])
    return layer


@pytest.mark.parametrize("cfg", BN2D, ids=describe)
def test_batchnorm2d_gradients(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = _batchnorm(BatchNorm2D, cfg, rng)
    x = rng.standard_normal((cfg["N"], cfg["H"], cfg["W"], cfg["C"])) * cfg["scale"] + cfg["shift"]
    assert_layer_gradients(layer, x, cfg)


@pytest.mark.parametrize("cfg", BN1D, ids=describe)
def test_batchnorm1d_gradients(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = _batchnorm(BatchNorm1D, cfg, rng)
    x = rng.standard_normal((cfg["N"], cfg["C"])) * cfg["scale"] + cfg["shift"]
    assert_layer_gradients(layer, x, cfg)


@pytest.mark.parametrize("shape", [(3, 4), (2, 5, 3, 2), (1, 3, 5, 4), (4, 1, 1, 3)], ids=str)
def test_batchnorm_eval_mode_backward(shape):
    """With fixed (running) statistics the op is a per-channel affine map; its backward is checked through the op,
    since a layer keeps a cache only after a training forward (which uses batch statistics)."""
    rng = np.random.default_rng(sum(shape))
    C = shape[-1]
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    mean, var = rng.standard_normal(C), rng.uniform(0.2, 3.0, C)
    out, cache = batchnorm_forward(x, gamma, beta, 1e-5, mean, var)
    np.testing.assert_allclose(out, gamma * (x - mean) / np.sqrt(var + 1e-5) + beta, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(shape)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)

    def f():
        return float(np.sum(batchnorm_forward(x, gamma, beta, 1e-5, mean, var)[0] * dout))

    for name, analytic, target in [("input", dx, x), ("weight", dgamma, gamma), ("bias", dbeta, beta)]:
        err = rel_error(analytic, numerical_gradient(f, target))
        assert err < TOL, f"eval-mode BatchNorm {name} gradient on {shape}: rel error {err:.2e}"
    np.testing.assert_allclose(dx, dout * gamma / np.sqrt(var + 1e-5), rtol=1e-12)
    # The training-mode gradient of the same input is a different function: the batch statistics depend on x.
    _, train_cache = batchnorm_forward(x, gamma, beta, 1e-5)
    assert not np.allclose(batchnorm_backward(dout, train_cache)[0], dx)


# ---- Dropout ------------------------------------------------------------------------------------------------------
DROPOUT = _cases(
    10, 300,
    p=_pick([0.0, 0.1, 0.3, 0.5, 0.9]),
    shape=_pick([(4, 7), (2, 5, 5, 3), (3, 4, 6), (1, 9, 7, 2), (2, 3, 2, 2, 3), (4, 30)]),
)  # fmt: skip


@pytest.mark.parametrize("cfg", DROPOUT, ids=describe)
def test_dropout_gradients_with_a_fixed_mask(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = FixedMaskDropout(cfg["p"], seed=cfg["seed"])
    x = away_from_zero(cfg["shape"], rng)  # a dropped x is 0 in the output; a kept one never is
    out = layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.forward(x, training=True), out, err_msg="FixedMaskDropout drew a new mask")
    dropped = out == 0
    if cfg["p"] == 0:
        assert not dropped.any()
    elif x.size >= 40 and cfg["p"] >= 0.3:
        assert dropped.any() and not dropped.all(), "the test needs both kept and dropped elements"
    assert_layer_gradients(layer, x, cfg)
    dx = layer.backward(np.ones_like(out))
    assert (dx[dropped] == 0).all(), "a dropped element passed gradient"
    np.testing.assert_allclose(dx[~dropped], 1 / (1 - cfg["p"]), rtol=1e-15)


# ---- average pooling -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", pool_cases(18, seed=5150), ids=describe)
def test_avgpool2d_gradients(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = AvgPool2D(cfg["kernel_size"], cfg["stride"])
    x = rng.standard_normal((cfg["N"], cfg["H"], cfg["W"], cfg["C"]))
    assert_layer_gradients(layer, x, cfg)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 5, 7, 3), (4, 3, 3, 5), (3, 1, 9, 2), (2, 8, 1, 4)], ids=str)
def test_global_avgpool2d_gradients(shape):
    cfg = {"seed": 7 * sum(shape), "shape": shape}
    x = np.random.default_rng(cfg["seed"]).standard_normal(shape)
    assert_layer_gradients(GlobalAvgPool2D(), x, cfg)


# ---- activations ---------------------------------------------------------------------------------------------------
ACT_SHAPES = [(1, 1), (3, 7), (2, 5, 6, 3), (4, 3, 3, 1), (3, 4, 8), (2, 3, 2, 2, 2), (4, 20)]
SCALES = {"1": 1.0, "4": 4.0}


@pytest.mark.parametrize("scale", SCALES.values(), ids=SCALES.keys())
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=str)
@pytest.mark.parametrize("cls", [Tanh, Sigmoid], ids=lambda c: c.__name__)
def test_tanh_and_sigmoid_gradients(cls, shape, scale):
    cfg = {"seed": 900 + len(shape) * 10 + shape[-1], "shape": shape, "scale": scale}
    x = np.random.default_rng(cfg["seed"]).standard_normal(shape) * scale
    assert_layer_gradients(cls(), x, cfg)


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.0, -0.5, 1.5, 3.0])
@pytest.mark.parametrize("shape", ACT_SHAPES[1:5], ids=str)
def test_leaky_relu_gradients(shape, slope):
    cfg = {"seed": 1300 + sum(shape), "shape": shape, "slope": slope}
    x = away_from_zero(shape, np.random.default_rng(cfg["seed"]))  # clear of the kink at 0
    assert (x > 0).any() and (x < 0).any()
    assert_layer_gradients(LeakyReLU(slope), x, cfg)


# ---- every new layer in one model ----------------------------------------------------------------------------------
def test_check_model_passes_on_a_model_with_every_new_layer():
    """Each layer alone, the loss, then every parameter end to end through BatchNorm, dropout, pools, activations."""
    rng = np.random.default_rng(42)
    kw = dict(rng=rng, dtype=np.float64)
    model = Sequential(
        [
            # No bias before a BatchNorm: the mean subtraction cancels it, so its gradient is exactly 0.
            Conv2D(2, 4, 3, padding="same", bias=False, **kw),
            BatchNorm2D(4, dtype=np.float64),
            LeakyReLU(0.1),
            AvgPool2D(3, 2),
            Conv2D(4, 5, 2, bias=False, **kw),
            BatchNorm2D(5, momentum=0.3, dtype=np.float64),
            Tanh(),
            GlobalAvgPool2D(),
            Dense(5, 6, bias=False, **kw),
            BatchNorm1D(6, dtype=np.float64),
            Sigmoid(),
            FixedMaskDropout(0.3, seed=1),
            Dense(6, 3, **kw),
        ],
        input_shape=(9, 8, 2),  # -> (9, 8, 4) -> (4, 3, 4) -> (3, 2, 5) -> 5 -> 6 -> 3
    )
    for layer in model.layers:
        if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
            layer.params["weight"][:] = rng.uniform(0.5, 1.5, layer.num_features)
            layer.params["bias"][:] = rng.standard_normal(layer.num_features) * 0.5
    rows = check_model(model, np.random.default_rng(43), batch_size=4, max_coords=80)
    failed = [(r.component, r.where, f"{r.worst:.2e}") for r in rows if not r.passed]
    assert not failed, f"check_model rows failed: {failed}"
    assert len(rows) == len(model.layers) + 2

