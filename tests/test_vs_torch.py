"""PyTorch as an oracle: forward outputs and every gradient agree to 1e-8 in float64.

convnp is channels-last, ``(N, H, W, C)`` with conv weights ``(kH, kW, C_in, C_out)`` and dense weights
``(in, out)``; PyTorch is ``(N, C, H, W)``, ``(C_out, C_in, kH, kW)`` and ``(out, in)``. The two helpers
``to_torch``/``from_torch`` are the only place that permutes, at the boundary. Gradients on the torch side come
from autograd with the same random upstream gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import conv_cases, dense_cases, describe, loss_cases, pool_cases

from convnp.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from convnp.losses import SoftmaxCrossEntropy
from convnp.models import notebook
from convnp.ops.windows import resolve_padding

torch = pytest.importorskip("torch", reason="PyTorch not installed: the oracle comparison is skipped")
F = torch.nn.functional

pytestmark = pytest.mark.torch

TOL = dict(rtol=1e-8, atol=1e-8)

# kind -> axes permutation from convnp's layout to torch's
_TO_TORCH = {
    "act": (0, 3, 1, 2),  # (N, H, W, C) -> (N, C, H, W)
    "conv_weight": (3, 2, 0, 1),  # (kH, kW, C_in, C_out) -> (C_out, C_in, kH, kW)
    "dense_weight": (1, 0),  # (in, out) -> (out, in)
    "plain": None,
}


def to_torch(a: np.ndarray, kind: str = "plain", requires_grad: bool = False):
    """A float64 torch tensor in torch's layout (a contiguous copy)."""
    perm = _TO_TORCH[kind]
    a = np.asarray(a, dtype=np.float64)
    a = a if perm is None else a.transpose(perm)
    return torch.tensor(np.ascontiguousarray(a), dtype=torch.float64, requires_grad=requires_grad)


def from_torch(t, kind: str = "plain") -> np.ndarray:
    """Back to a NumPy array in convnp's layout."""
    perm = _TO_TORCH[kind]
    a = t.detach().numpy()
    return a if perm is None else a.transpose(np.argsort(perm))


def assert_close(mine, theirs, what, cfg=None):
    context = f" ({describe(cfg)})" if cfg else ""
    np.testing.assert_allclose(mine, theirs, **TOL, err_msg=f"{what}: mine vs torch{context}")


def test_layout_helpers_round_trip():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    assert tuple(to_torch(x, "act").shape) == (2, 5, 3, 4)
    np.testing.assert_array_equal(from_torch(to_torch(x, "act"), "act"), x)
    w = rng.standard_normal((3, 2, 4, 6))
    assert tuple(to_torch(w, "conv_weight").shape) == (6, 4, 3, 2)
    assert to_torch(w, "conv_weight")[5, 1, 2, 0].item() == w[2, 0, 1, 5]
    np.testing.assert_array_equal(from_torch(to_torch(w, "conv_weight"), "conv_weight"), w)


# ---- convolution ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", conv_cases(20, seed=31337), ids=describe)
def test_conv2d_matches_torch(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = Conv2D(
        cfg["C_in"], cfg["C_out"], cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["bias"],
        rng=rng, dtype=np.float64,
    )  # fmt: skip
    if cfg["bias"]:
        layer.params["bias"][:] = rng.standard_normal(cfg["C_out"])
    x = rng.standard_normal((cfg["N"], cfg["H"], cfg["W"], cfg["C_in"]))
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)

    (top, bottom), (left, right) = resolve_padding(layer.padding, layer.kernel_size, layer.stride, x.shape[1:3])
    xt = to_torch(x, "act", requires_grad=True)
    wt = to_torch(layer.params["weight"], "conv_weight", requires_grad=True)
    bt = to_torch(layer.params["bias"], requires_grad=True) if cfg["bias"] else None
    # Explicit padding: torch's padding="same" refuses stride > 1 and pads symmetrically otherwise.
    out_t = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=layer.stride)
    out_t.backward(to_torch(dout, "act"))

    assert_close(out, from_torch(out_t, "act"), "output", cfg)
    assert_close(dx, from_torch(xt.grad, "act"), "input gradient", cfg)
    assert_close(layer.grads["weight"], from_torch(wt.grad, "conv_weight"), "weight gradient", cfg)
    if cfg["bias"]:
        assert_close(layer.grads["bias"], from_torch(bt.grad), "bias gradient", cfg)
    else:
        assert "bias" not in layer.grads


@pytest.mark.parametrize("padding", [0, 1, 2, (1, 2)])
def test_symmetric_padding_matches_torch_padding_argument(padding):
    """Symmetric numeric padding agrees with torch's own ``padding=`` argument, not just with F.pad."""
    rng = np.random.default_rng(5)
    layer = Conv2D(3, 4, 3, stride=2, padding=padding, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 9, 8, 3))
    theirs = F.conv2d(to_torch(x, "act"), to_torch(layer.params["weight"], "conv_weight"), stride=2, padding=padding)
    assert_close(layer.forward(x), from_torch(theirs, "act"), f"padding={padding}")


def _tf_same_padding(size, k, s):
    """TensorFlow's "same" rule written out: total = max((ceil(size/s) - 1) * s + k - size, 0), odd pixel at the end."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("cfg", [c for c in conv_cases(40, seed=606) if c["padding"] == "same"], ids=describe)
def test_same_padding_follows_the_tensorflow_rule(cfg):
    (kH, kW), (sH, sW) = [(v, v) if isinstance(v, int) else v for v in (cfg["kernel_size"], cfg["stride"])]
    pads = resolve_padding("same", (kH, kW), (sH, sW), (cfg["H"], cfg["W"]))
    assert pads == (_tf_same_padding(cfg["H"], kH, sH), _tf_same_padding(cfg["W"], kW, sW)), describe(cfg)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("kernel_size", [2, 4, (2, 3), (4, 1), 3, 5])
def test_same_padding_matches_torch_same_at_stride_1(kernel_size):
    """Even kernels need an odd total padding: both libraries put the extra row/column at the bottom/right."""
    rng = np.random.default_rng(17)
    layer = Conv2D(2, 3, kernel_size, padding="same", rng=rng, dtype=np.float64)
    layer.params["bias"][:] = rng.standard_normal(3)
    x = rng.standard_normal((2, 7, 6, 2))
    wt = to_torch(layer.params["weight"], "conv_weight")
    theirs = F.conv2d(to_torch(x, "act"), wt, to_torch(layer.params["bias"]), padding="same")
    assert_close(layer.forward(x), from_torch(theirs, "act"), f"padding='same', kernel_size={kernel_size}")


# ---- max pooling --------------------------------------------------------------------------------------------------
def _torch_pool(x, dout, kernel_size, stride, memory_format=torch.contiguous_format):
    xt = to_torch(x, "act").contiguous(memory_format=memory_format).requires_grad_(True)
    out_t = F.max_pool2d(xt, kernel_size, stride)
    out_t.backward(to_torch(dout, "act").contiguous(memory_format=memory_format))
    return from_torch(out_t, "act"), from_torch(xt.grad, "act")


@pytest.mark.parametrize("cfg", pool_cases(18, seed=4242), ids=describe)
def test_maxpool2d_matches_torch(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = MaxPool2D(cfg["kernel_size"], cfg["stride"])
    x = rng.standard_normal((cfg["N"], cfg["H"], cfg["W"], cfg["C"]))
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    out_t, dx_t = _torch_pool(x, dout, layer.kernel_size, layer.stride)
    assert_close(out, out_t, "output", cfg)
    assert_close(dx, dx_t, "input gradient", cfg)


@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
@pytest.mark.parametrize("cfg", pool_cases(10, seed=999), ids=describe)
def test_maxpool2d_tied_maxima_match_torch(cfg, memory_format):
    """Integer inputs in {0, 1, 2}: tied maxima everywhere. Torch's CPU kernels (both memory formats) also send each
    window's gradient to its first maximum, so the results agree exactly."""
    from helpers import reference_maxpool_backward

    rng = np.random.default_rng(cfg["seed"])
    layer = MaxPool2D(cfg["kernel_size"], cfg["stride"])
    x = rng.integers(0, 3, size=(cfg["N"], cfg["H"], cfg["W"], cfg["C"])).astype(np.float64)
    out = layer.forward(x, training=True)
    dout = rng.integers(1, 10, size=out.shape).astype(np.float64)
    dx = layer.backward(dout)
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    out_t, dx_t = _torch_pool(x, dout, layer.kernel_size, layer.stride, fmt)
    assert_close(out, out_t, "output", cfg)
    reference = reference_maxpool_backward(x, dout, layer.kernel_size, layer.stride)
    np.testing.assert_array_equal(dx_t, reference, err_msg=f"torch ({memory_format}) does not pick the first maximum")
    np.testing.assert_array_equal(dx, dx_t, err_msg=f"input gradient with ties: mine vs torch ({describe(cfg)})")


def test_maxpool2d_all_equal_and_shared_maxima_match_torch():
    x = np.full((1, 5, 5, 2), 3.0)
    x[0, 2, 2, 1] = 7.0  # channel 1: one maximum shared by all four 3x3/2 windows
    dout = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)
    layer = MaxPool2D(3, 2)
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    _, dx_t = _torch_pool(x, dout, 3, 2)
    np.testing.assert_array_equal(dx, dx_t)
    assert dx[0, 2, 2, 1] == dout[..., 1].sum()


# ---- dense, relu, flatten, loss --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", dense_cases(16, seed=1717), ids=describe)
def test_dense_matches_torch(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = Dense(cfg["in_features"], cfg["out_features"], cfg["bias"], rng=rng, dtype=np.float64)
    if cfg["bias"]:
        layer.params["bias"][:] = rng.standard_normal(cfg["out_features"])
    x = rng.standard_normal((cfg["N"], cfg["in_features"]))
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)

    xt = to_torch(x, requires_grad=True)
    wt = to_torch(layer.params["weight"], "dense_weight", requires_grad=True)
    bt = to_torch(layer.params["bias"], requires_grad=True) if cfg["bias"] else None
    out_t = F.linear(xt, wt, bt)
    out_t.backward(to_torch(dout))
    assert_close(out, from_torch(out_t), "output", cfg)
    assert_close(dx, from_torch(xt.grad), "input gradient", cfg)
    assert_close(layer.grads["weight"], from_torch(wt.grad, "dense_weight"), "weight gradient", cfg)
    if cfg["bias"]:
        assert_close(layer.grads["bias"], from_torch(bt.grad), "bias gradient", cfg)


@pytest.mark.parametrize("shape", [(4, 9), (1, 1), (3, 6, 5, 2), (2, 7, 7, 4), (2, 3, 4)], ids=str)
def test_relu_matches_torch(shape):
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    x = rng.standard_normal(shape)
    x.reshape(-1)[:: max(x.size // 4, 1)] = 0.0  # exact zeros: both take the subgradient 0 there
    layer = ReLU()
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(shape)
    dx = layer.backward(dout)
    xt = to_torch(x, requires_grad=True)
    out_t = F.relu(xt)
    out_t.backward(to_torch(dout))
    assert_close(out, from_torch(out_t), f"ReLU output {shape}")
    assert_close(dx, from_torch(xt.grad), f"ReLU input gradient {shape}")
    assert (dx[x == 0] == 0).all()


def test_flatten_matches_torch_flatten_of_nhwc():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5, 6))
    layer = Flatten()
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    xt = to_torch(x, "act", requires_grad=True)
    out_t = torch.flatten(xt.permute(0, 2, 3, 1), 1)  # channels-last order, as convnp flattens
    out_t.backward(to_torch(dout))
    assert_close(out, from_torch(out_t), "Flatten output")
    assert_close(layer.backward(dout), from_torch(xt.grad, "act"), "Flatten input gradient")


@pytest.mark.parametrize("cfg", loss_cases(16, seed=2718), ids=describe)
def test_softmax_cross_entropy_matches_torch(cfg):
    rng = np.random.default_rng(cfg["seed"])
    logits = rng.standard_normal((cfg["N"], cfg["K"])) * cfg["scale"]
    y = rng.integers(0, cfg["K"], size=cfg["N"])
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, y)
    dlogits = loss.backward()
    lt = to_torch(logits, requires_grad=True)
    value_t = F.cross_entropy(lt, torch.from_numpy(y), reduction="mean")
    value_t.backward()
    assert_close(value, value_t.item(), "loss", cfg)
    assert_close(dlogits, from_torch(lt.grad), "logits gradient", cfg)


def test_softmax_cross_entropy_extreme_logits_match_torch():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [5.0, 5.0, 5.0]])
    y = np.array([1, 2, 0])
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, y)
    dlogits = loss.backward()
    lt = to_torch(logits, requires_grad=True)
    value_t = F.cross_entropy(lt, torch.from_numpy(y))
    value_t.backward()
    assert np.isfinite(value)
    assert_close(value, value_t.item(), "loss with logits of +-1e4")
    assert_close(dlogits, from_torch(lt.grad), "gradient with logits of +-1e4")


# ---- the whole notebook model -----------------------------------------------------------------------------------------
class TorchTwin:
    """The notebook network written directly in torch functional ops, with convnp's weights in torch's layout."""

    def __init__(self, model):
        p = model.parameters()
        self.params = {
            "0.weight": to_torch(p["0.weight"], "conv_weight", requires_grad=True),
            "0.bias": to_torch(p["0.bias"], requires_grad=True),
            "4.weight": to_torch(p["4.weight"], "dense_weight", requires_grad=True),
            "4.bias": to_torch(p["4.bias"], requires_grad=True),
        }
        self.kinds = {"0.weight": "conv_weight", "4.weight": "dense_weight"}

    def __call__(self, xt):
        p = self.params
        h = F.max_pool2d(F.relu(F.conv2d(xt, p["0.weight"], p["0.bias"])), 2)  # (N, 8, 13, 13)
        h = torch.flatten(h.permute(0, 2, 3, 1), 1)  # NHWC order, as convnp's Flatten: (N, 1352)
        return F.linear(h, p["4.weight"], p["4.bias"])  # (N, 10)

    def gradients(self):
        return {k: from_torch(t.grad, self.kinds.get(k, "plain")) for k, t in self.params.items()}


@pytest.mark.parametrize("init", ["he", "notebook"])
def test_notebook_model_matches_torch_twin(init):
    rng = np.random.default_rng(123)
    model = notebook(init=init, rng=rng, dtype=np.float64)
    model.parameters()["0.bias"][:] = rng.standard_normal(8) * 0.1
    model.parameters()["4.bias"][:] = rng.standard_normal(10) * 0.1
    x = rng.uniform(-0.5, 0.5, size=(5, 28, 28, 1))
    y = rng.integers(0, 10, size=5)

    loss = SoftmaxCrossEntropy()
    logits = model.forward(x, training=True)
    value = loss.forward(logits, y)
    dx = model.backward(loss.backward())

    twin = TorchTwin(model)
    xt = to_torch(x, "act", requires_grad=True)
    logits_t = twin(xt)
    value_t = F.cross_entropy(logits_t, torch.from_numpy(y))
    value_t.backward()

    assert_close(logits, from_torch(logits_t), f"notebook({init!r}) logits")
    assert_close(value, value_t.item(), f"notebook({init!r}) loss")
    assert_close(dx, from_torch(xt.grad, "act"), f"notebook({init!r}) input gradient")
    theirs = twin.gradients()
    mine = model.gradients()
    assert set(mine) == set(theirs)
    for k in theirs:
        assert_close(mine[k], theirs[k], f"notebook({init!r}) gradient {k}")
