"""Optimizers and schedules: hand-computed steps, PyTorch's optimizers as oracle, state round trips."""

import math

import numpy as np
import pytest

from convnp.optim import SGD, Adam, AdamW, clip_grad_norm
from convnp.schedules import Constant, Cosine, Step


def test_adam_first_step_by_hand():
    # After one step the bias-corrected moments are g and g^2, so the step is lr * g / (|g| + eps) ~ lr * sign(g).
    p = {"w": np.array([1.0, 1.0])}
    Adam(0.1).step(p, {"w": np.array([0.5, -2.0])})
    np.testing.assert_allclose(p["w"], [0.9, 1.1], rtol=1e-6)


def test_adamw_decays_weights_without_gradient():
    p = {"w": np.array([2.0])}
    AdamW(0.1, weight_decay=0.5).step(p, {"w": np.array([0.0])})  # 2 - 0.1 * 0.5 * 2 = 1.9, Adam step 0
    np.testing.assert_allclose(p["w"], [1.9])


@pytest.mark.parametrize(
    "make, torch_name, kwargs",
    [
        (lambda: SGD(0.1), "SGD", {"lr": 0.1}),
        (lambda: SGD(0.1, momentum=0.9), "SGD", {"lr": 0.1, "momentum": 0.9}),
        (lambda: SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01), "SGD",
         {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        (lambda: Adam(0.01), "Adam", {"lr": 0.01}),
        (lambda: Adam(0.01, betas=(0.8, 0.99), weight_decay=0.1), "Adam",
         {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
        (lambda: AdamW(0.01, weight_decay=0.1), "AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ],
)
def test_optimizers_match_torch(make, torch_name, kwargs):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the oracle comparison is skipped")
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    theirs = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = make()
    torch_opt = getattr(torch.optim, torch_name)(list(theirs.values()), **kwargs)
    for _ in range(6):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.step(params, grads)
        for k, t in theirs.items():
            t.grad = torch.tensor(grads[k])
        torch_opt.step()
    for k in params:
        np.testing.assert_allclose(params[k], theirs[k].detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"{torch_name} {kwargs}: mine vs torch differ on {k}")


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the oracle comparison is skipped")
    rng = np.random.default_rng(1)
    grads = {"a": rng.standard_normal((4, 4)) * 3, "b": rng.standard_normal(7)}
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g.copy())
    norm_theirs = torch.nn.utils.clip_grad_norm_(tensors, 1.5)
    norm = clip_grad_norm(grads, 1.5)
    assert norm == pytest.approx(float(norm_theirs))
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)
    small = {"a": np.array([0.1, 0.2])}
    clip_grad_norm(small, 10.0)
    np.testing.assert_array_equal(small["a"], [0.1, 0.2])  # under the limit: untouched


@pytest.mark.parametrize("make", [lambda: SGD(0.05, momentum=0.9), lambda: Adam(0.01), lambda: AdamW(0.01)])
def test_state_round_trip_continues_identically(make):
    rng = np.random.default_rng(2)
    grads = [{"w": rng.standard_normal(6)} for _ in range(6)]
    p1, opt1 = {"w": np.ones(6)}, make()
    for g in grads:
        opt1.step(p1, g)
    p2, opt2 = {"w": np.ones(6)}, make()
    for g in grads[:3]:
        opt2.step(p2, g)
    opt3 = make()
    opt3.load_state_dict(opt2.state_dict(), opt2.step_count)
    for g in grads[3:]:
        opt3.step(p2, g)
    np.testing.assert_array_equal(p1["w"], p2["w"])


def test_optimizer_rejects_mismatched_names_and_bad_settings():
    with pytest.raises(ValueError, match=r"parameter and gradient names differ: \['b'\]"):
        SGD(0.1).step({"a": np.zeros(1)}, {"a": np.zeros(1), "b": np.zeros(1)})
    with pytest.raises(ValueError, match="betas must be a pair"):
        Adam(0.1, betas=0.9)
    with pytest.raises(ValueError, match=r"eps must be a number in \(0.0, inf\)"):
        Adam(0.1, eps=0)


def test_schedules_by_hand():
    constant = Constant(0.1, total_steps=100)
    assert constant(0) == constant(99) == 0.1
    step = Step(1.0, total_steps=100, step_size=10, gamma=0.5)
    assert [step(s) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cosine = Cosine(1.0, total_steps=100)
    assert cosine(0) == 1.0 and cosine(50) == pytest.approx(0.5) and cosine(100) == pytest.approx(0.0)
    assert cosine(25) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    warm = Cosine(1.0, total_steps=110, warmup_steps=10)
    assert [warm(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert warm(10) == 1.0 and warm(60) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="warmup_steps must be in"):
        Constant(0.1, total_steps=5, warmup_steps=6)
