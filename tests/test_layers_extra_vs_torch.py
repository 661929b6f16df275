"""The new layers against PyTorch, the oracle: BatchNorm (training, evaluation, running statistics), average and
global average pooling, tanh, sigmoid, leaky ReLU, all in float64 to 1e-8, forward and every gradient.

Layouts are converted once, at the boundary, by ``to_torch``/``from_torch`` ((N, H, W, C) <-> (N, C, H, W)). Dropout
masks cannot match torch's (different generators), so Dropout is checked by its statistics instead, and against
torch only for the scale of the kept units.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import describe, pool_cases

from convnp.layers import AvgPool2D, BatchNorm1D, BatchNorm2D, Dropout, GlobalAvgPool2D, LeakyReLU, Sigmoid, Tanh
from convnp.ops.batchnorm import batchnorm_backward, batchnorm_forward

torch = pytest.importorskip("torch", reason="PyTorch not installed: the oracle comparison is skipped")
F = torch.nn.functional

pytestmark = pytest.mark.torch

TOL = dict(rtol=1e-8, atol=1e-8)


def to_torch(a: np.ndarray, requires_grad: bool = False):
    """A float64 torch tensor; feature maps ``(N, H, W, C)`` become ``(N, C, H, W)``, other ranks are unchanged."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 4:
        a = a.transpose(0, 3, 1, 2)
    return torch.tensor(np.ascontiguousarray(a), dtype=torch.float64, requires_grad=requires_grad)


def from_torch(t) -> np.ndarray:
    """Back to NumPy in convnp's layout (the inverse of :func:`to_torch`)."""
    a = t.detach().numpy()
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def assert_close(mine, theirs, what, cfg=None):
    context = f" ({describe(cfg)})" if cfg else ""
    np.testing.assert_allclose(mine, theirs, **TOL, err_msg=f"{what}: mine vs torch{context}")


def test_layout_helpers_round_trip():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    assert tuple(to_torch(x).shape) == (2, 5, 3, 4)
    assert to_torch(x)[1, 4, 2, 3].item() == x[1, 2, 3, 4]
    np.testing.assert_array_equal(from_torch(to_torch(x)), x)
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(from_torch(to_torch(v)), v)


# ---- BatchNorm ----------------------------------------------------------------------------------------------------
def _bn_cases(n, seed, ranks):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        rank = ranks[i % len(ranks)]
        N = int(rng.integers(2, 6))
        shape = (N, int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 6))) if rank == 4 else (
            N, int(rng.integers(1, 9)))  # fmt: skip
        momentum = [0.1, 0.3, 1.0, 0.0][i % 4]
        cases.append(dict(seed=seed + i, shape=shape, eps=[1e-5, 1e-3][i % 2], momentum=momentum))
    return cases


BN_CASES = _bn_cases(16, 8080, ranks=[4, 2])


def _bn_layer(cfg, rng):
    cls = BatchNorm2D if len(cfg["shape"]) == 4 else BatchNorm1D
    C = cfg["shape"][-1]
    layer = cls(C, eps=cfg["eps"], momentum=cfg["momentum"], dtype=np.float64)
    layer.params["weight"][:] = rng.standard_normal(C)
    layer.params["bias"][:] = rng.standard_normal(C)
    return layer


@pytest.mark.parametrize("cfg", BN_CASES, ids=describe)
def test_batchnorm_training_steps_match_torch(cfg):
    """Three training steps on different batches: outputs, all gradients and the running statistics after each."""
    rng = np.random.default_rng(cfg["seed"])
    layer = _bn_layer(cfg, rng)
    C = cfg["shape"][-1]
    running_mean, running_var = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    for step in range(3):
        x = rng.standard_normal(cfg["shape"]) * (step + 1) + step
        out = layer.forward(x, training=True)
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)

        xt = to_torch(x, requires_grad=True)
        wt, bt = to_torch(layer.params["weight"], True), to_torch(layer.params["bias"], True)
        out_t = F.batch_norm(
            xt, running_mean, running_var, wt, bt, training=True, momentum=cfg["momentum"], eps=cfg["eps"]
        )  # updates running_mean and running_var in place
        out_t.backward(to_torch(dout))

        what = f"step {step}"
        assert_close(out, from_torch(out_t), f"{what} output", cfg)
        assert_close(dx, from_torch(xt.grad), f"{what} input gradient", cfg)
        assert_close(layer.grads["weight"], from_torch(wt.grad), f"{what} weight gradient", cfg)
        assert_close(layer.grads["bias"], from_torch(bt.grad), f"{what} bias gradient", cfg)
        assert_close(layer.state["running_mean"], running_mean.numpy(), f"{what} running_mean", cfg)
        assert_close(layer.state["running_var"], running_var.numpy(), f"{what} running_var", cfg)


@pytest.mark.parametrize("cfg", BN_CASES[:8], ids=describe)
def test_batchnorm_eval_matches_torch(cfg):
    """After two training steps: the layer's evaluation forward, and the op's evaluation backward (an affine map)."""
    rng = np.random.default_rng(cfg["seed"] + 1000)
    layer = _bn_layer(cfg, rng)
    for _ in range(2):
        layer.forward(rng.standard_normal(cfg["shape"]) * 3 - 1, training=True)
    rm, rv = layer.state["running_mean"].copy(), layer.state["running_var"].copy()
    x = rng.standard_normal(cfg["shape"])
    out = layer.forward(x, training=False)
    np.testing.assert_array_equal(layer.state["running_mean"], rm, err_msg="evaluation changed the running mean")
    np.testing.assert_array_equal(layer.state["running_var"], rv, err_msg="evaluation changed the running var")

    gamma, beta = layer.params["weight"], layer.params["bias"]
    out_op, cache = batchnorm_forward(x, gamma, beta, layer.eps, rm, rv)
    np.testing.assert_array_equal(out_op, out)
    dout = rng.standard_normal(out.shape)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)

    xt, wt, bt = to_torch(x, True), to_torch(gamma, True), to_torch(beta, True)
    out_t = F.batch_norm(xt, torch.tensor(rm), torch.tensor(rv), wt, bt, training=False, eps=layer.eps)
    out_t.backward(to_torch(dout))
    assert_close(out, from_torch(out_t), "eval output", cfg)
    assert_close(dx, from_torch(xt.grad), "eval input gradient", cfg)
    assert_close(dgamma, from_torch(wt.grad), "eval weight gradient", cfg)
    assert_close(dbeta, from_torch(bt.grad), "eval bias gradient", cfg)


def test_batchnorm2d_matches_torch_module_over_a_few_steps():
    """Against ``torch.nn.BatchNorm2d`` itself (defaults eps=1e-5, momentum=0.1), train then eval."""
    rng = np.random.default_rng(3)
    layer = BatchNorm2D(4, dtype=np.float64)
    module = torch.nn.BatchNorm2d(4).double()
    for _ in range(4):
        x = rng.standard_normal((3, 5, 6, 4)) * 2 + 0.5
        out = layer.forward(x, training=True)
        assert_close(out, from_torch(module.train()(to_torch(x))), "training output")
    assert_close(layer.state["running_mean"], module.running_mean.numpy(), "running_mean")
    assert_close(layer.state["running_var"], module.running_var.numpy(), "running_var")
    x = rng.standard_normal((2, 5, 6, 4))
    assert_close(layer.forward(x), from_torch(module.eval()(to_torch(x))), "eval output")


# ---- average pooling -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", pool_cases(18, seed=6262), ids=describe)
def test_avgpool2d_matches_torch(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = AvgPool2D(cfg["kernel_size"], cfg["stride"])
    x = rng.standard_normal((cfg["N"], cfg["H"], cfg["W"], cfg["C"]))
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    xt = to_torch(x, requires_grad=True)
    out_t = F.avg_pool2d(xt, layer.kernel_size, layer.stride)
    out_t.backward(to_torch(dout))
    assert_close(out, from_torch(out_t), "output", cfg)
    assert_close(dx, from_torch(xt.grad), "input gradient", cfg)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 5, 7, 3), (4, 13, 13, 8), (3, 1, 9, 2), (2, 8, 1, 4)], ids=str)
def test_global_avgpool2d_matches_torch(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape)
    layer = GlobalAvgPool2D()
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    xt = to_torch(x, requires_grad=True)
    out_t = torch.flatten(F.adaptive_avg_pool2d(xt, 1), 1)  # (N, C, 1, 1) -> (N, C)
    out_t.backward(to_torch(dout))
    assert_close(out, from_torch(out_t), f"output {shape}")
    assert_close(out, from_torch(xt.mean(dim=(2, 3))), f"output vs mean {shape}")
    assert_close(dx, from_torch(xt.grad), f"input gradient {shape}")


# ---- activations ---------------------------------------------------------------------------------------------------
ACTIVATIONS = {
    "Tanh": (Tanh, torch.tanh),
    "Sigmoid": (Sigmoid, torch.sigmoid),
    "LeakyReLU": (LeakyReLU, lambda t: F.leaky_relu(t, 0.01)),
    "LeakyReLU(0.2)": (lambda: LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)),
    "LeakyReLU(-0.5)": (lambda: LeakyReLU(-0.5), lambda t: F.leaky_relu(t, -0.5)),
}


@pytest.mark.parametrize("shape", [(4, 9), (1, 1), (3, 6, 5, 2), (2, 7, 7, 4), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_torch(name, shape):
    make, torch_fn = ACTIVATIONS[name]
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    x = rng.standard_normal(shape) * 3
    x.reshape(-1)[:: max(x.size // 4, 1)] = 0.0  # exact zeros: leaky ReLU's kink, both take negative_slope there
    layer = make()
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(shape)
    dx = layer.backward(dout)
    xt = to_torch(x, requires_grad=True)
    out_t = torch_fn(xt)
    out_t.backward(to_torch(dout))
    assert_close(out, from_torch(out_t), f"{name} output {shape}")
    assert_close(dx, from_torch(xt.grad), f"{name} input gradient {shape}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_sigmoid_and_tanh_at_extreme_inputs(dtype):
    """No overflow, exact 0/1 limits, and full relative precision of small sigmoids (``s(-40) = 4.2e-18``).

    Torch flushes results below the smallest normal number to 0 (``s(-710) = 4.5e-309`` in float64, ``s(-100) =
    3.7e-44`` in float32) where convnp keeps the subnormal, so torch is matched up to that (``tiny``); the precise
    check is against ``exp(-log(1 + exp(-x)))``, computed in float64 with ``logaddexp``.
    """
    x = np.array([[-1000.0, -710.0, -100.0, -40.0, -20.0, -1e-8, 0.0, 1e-8, 20.0, 40.0, 100.0, 710.0, 1000.0]], dtype)
    dout = np.ones_like(x)
    tiny = np.finfo(dtype).smallest_normal
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    exact = np.exp(-np.logaddexp(0.0, -x.astype(np.float64))).astype(dtype)
    subnormal_step = np.finfo(dtype).smallest_subnormal
    for cls, fn in [(Sigmoid, torch.sigmoid), (Tanh, torch.tanh)]:
        layer = cls()
        with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is the right answer
            out = layer.forward(x, training=True)
            dx = layer.backward(dout)
        assert out.dtype == dtype and dx.dtype == dtype and np.isfinite(out).all() and np.isfinite(dx).all()
        xt = torch.tensor(x, requires_grad=True)
        out_t = fn(xt)
        out_t.backward(torch.tensor(dout))
        what = f"{cls.__name__} ({np.dtype(dtype)})"
        np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=rtol, atol=tiny, err_msg=f"{what} output")
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=tiny, err_msg=f"{what} gradient")
        if cls is Sigmoid:
            # Relative precision all the way down; subnormals are exact to one step of their spacing.
            np.testing.assert_allclose(out, exact, rtol=rtol, atol=2 * subnormal_step, err_msg=f"{what} vs exact")
            assert out[0, 3] > 0 and out[0, 0] == 0 and out[0, -1] == 1 and out[0, 6] == 0.5


# ---- Dropout: statistics, since the masks cannot match -------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p, dtype):
    """On 10^6 ones: dropped fraction ~ p, kept units scaled by exactly 1/(1-p), the mean preserved (5 sigma)."""
    n = 1_000_000
    x = np.ones((1000, 1000), dtype)
    out = Dropout(p, rng=np.random.default_rng(int(p * 10))).forward(x, training=True)
    assert out.dtype == dtype
    dropped = out == 0
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(dropped.mean() - p) < 5 * sigma, f"dropped {dropped.mean():.5f}, expected {p} +- {5 * sigma:.5f}"
    np.testing.assert_allclose(out[~dropped], 1 / (1 - p), rtol=1e-7 if dtype == np.float32 else 1e-15)
    mean_sigma = np.sqrt(p / (1 - p) / n)  # std of one output unit is sqrt(p / (1 - p)) for inputs of 1
    assert abs(out.mean(dtype=np.float64) - 1) < 5 * mean_sigma, f"mean {out.mean():.5f}, expected 1"

    with torch.random.fork_rng():  # torch draws from its global generator: seed it without leaking the change
        torch.manual_seed(int(p * 10))
        theirs = F.dropout(torch.ones(1000, 1000, dtype=torch.float64), p, training=True).numpy()
    np.testing.assert_allclose(np.unique(theirs[theirs != 0]), 1 / (1 - p), rtol=1e-15, err_msg="torch's kept scale")
    assert abs((theirs == 0).mean() - p) < 5 * sigma, f"torch dropped {(theirs == 0).mean():.5f}"


def test_dropout_is_the_identity_at_evaluation_like_torch():
    x = np.random.default_rng(0).standard_normal((4, 5, 5, 3))
    out = Dropout(0.5, rng=np.random.default_rng(1)).forward(x, training=False)
    np.testing.assert_array_equal(out, from_torch(F.dropout(to_torch(x), 0.5, training=False)))
