"""SoftmaxCrossEntropy with label smoothing: the definition, float64 finite differences, PyTorch, bad values."""

import numpy as np
import pytest

from convnp.gradcheck import numerical_gradient, rel_error
from convnp.losses import SoftmaxCrossEntropy


def _smoothed_loss_by_definition(logits, y, eps):
    """``-mean_n sum_k t_nk log softmax(z_n)_k`` with ``t = (1 - eps) onehot + eps / K``, written out directly."""
    N, K = logits.shape
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    target = np.full((N, K), eps / K)
    target[np.arange(N), y] += 1 - eps
    return -(target * logp).sum(axis=1).mean(), target


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 0.9])
def test_loss_and_gradient_match_the_definition(eps):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(7, 10))
    y = rng.integers(0, 10, 7)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=eps)
    expected, target = _smoothed_loss_by_definition(logits, y, eps)
    assert loss_fn.forward(logits, y) == pytest.approx(expected, rel=1e-13)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss_fn.backward(), (softmax - target) / 7, rtol=0, atol=1e-15)


@pytest.mark.parametrize("eps", [0.05, 0.3, 0.99])
@pytest.mark.parametrize("n, k", [(1, 2), (5, 10), (16, 3)])
def test_gradient_matches_finite_differences(eps, n, k):
    rng = np.random.default_rng(n * 100 + k)
    logits = rng.normal(scale=2.0, size=(n, k))
    y = rng.integers(0, k, n)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=eps)
    loss_fn.forward(logits, y)
    analytic = loss_fn.backward()
    numeric = numerical_gradient(lambda: SoftmaxCrossEntropy(label_smoothing=eps).forward(logits, y), logits)
    error = rel_error(analytic, numeric)
    assert error < 1e-6, f"mine vs finite differences: rel_error {error:.2e}\n{analytic}\n{numeric}"


def test_zero_smoothing_is_bitwise_the_plain_loss():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(9, 10)).astype(np.float32)
    y = rng.integers(0, 10, 9)
    plain, smooth0 = SoftmaxCrossEntropy(), SoftmaxCrossEntropy(label_smoothing=0.0)
    assert plain.forward(logits, y) == smooth0.forward(logits, y)
    np.testing.assert_array_equal(plain.backward(), smooth0.backward())


def test_float32_stays_float32_and_large_logits_stay_finite():
    logits = np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=0.1)
    loss = loss_fn.forward(logits, np.array([0, 2]))
    grad = loss_fn.backward()
    assert np.isfinite(loss) and grad.dtype == np.float32 and np.isfinite(grad).all()
    # Smoothing makes the confident, correct sample still cost something: the off-class mass it does not give.
    assert loss > 0


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.37, 0.8])
def test_matches_torch_cross_entropy(eps):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=4.0, size=(12, 10))
    y = rng.integers(0, 10, 12)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=eps)
    mine, dmine = loss_fn.forward(logits, y), loss_fn.backward()
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(z, torch.tensor(y), label_smoothing=eps)
    theirs.backward()
    assert abs(mine - theirs.item()) < 1e-10, f"mine {mine!r} vs torch {theirs.item()!r}"
    np.testing.assert_allclose(dmine, z.grad.numpy(), rtol=0, atol=1e-10, err_msg="gradient: mine vs torch")


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), True, "0.1", None])
def test_bad_label_smoothing_is_refused(bad):
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: label_smoothing must be a number in \[0, 1\), got"):
        SoftmaxCrossEntropy(label_smoothing=bad)


def test_repr_names_the_smoothing():
    assert repr(SoftmaxCrossEntropy()) == "SoftmaxCrossEntropy()"
    assert repr(SoftmaxCrossEntropy(0.1)) == "SoftmaxCrossEntropy(label_smoothing=0.1)"


@pytest.mark.parametrize("threads", [1, 2])
def test_trainer_reports_the_smoothed_training_loss_and_plain_validation_loss(threads):
    """Every replica of a split batch smooths; validation stays the plain cross-entropy."""
    from convnp.models import notebook
    from convnp.optim import SGD
    from convnp.train import Trainer

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((24, 28, 28, 1)), rng.integers(0, 10, 24)
    model = notebook(rng=np.random.default_rng(4), dtype=np.float64)
    before = SoftmaxCrossEntropy(label_smoothing=0.2).forward(model.forward(x, training=True), y)
    trainer = Trainer(model, SGD(0.01), threads=threads, label_smoothing=0.2)
    (logs,) = trainer.fit(x, y, epochs=1, batch_size=24, rng=np.random.default_rng(5), validation_data=(x, y))
    assert logs["loss"] == pytest.approx(before, rel=1e-10)  # one batch: its loss is taken before the update
    after = SoftmaxCrossEntropy().forward(model.forward(x), y)
    assert logs["val_loss"] == pytest.approx(after, rel=1e-10)


def test_trainer_refuses_bad_label_smoothing():
    from convnp.models import notebook
    from convnp.optim import SGD
    from convnp.train import Trainer

    with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\), got 1.0"):
        Trainer(notebook(rng=np.random.default_rng(0)), SGD(0.1), label_smoothing=1.0)
