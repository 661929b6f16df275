"""Optimizer steps by hand, batching, input scaling and the training loop."""

import numpy as np
import pytest

from convnp.data.batching import iterate_minibatches
from convnp.data.transforms import to_float_images
from convnp.models import get_model, notebook
from convnp.optim import SGD
from convnp.train import evaluate, fit


def test_sgd_plain_step_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    SGD(0.1).step(p, {"w": np.array([0.5, 1.0])})
    np.testing.assert_allclose(p["w"], [0.95, -2.1])


def test_sgd_momentum_nesterov_and_weight_decay_by_hand():
    # torch.optim.SGD's rule: v = m v + g; step = v (or g + m v with Nesterov)
    p, g = {"w": np.array([1.0])}, {"w": np.array([1.0])}
    opt = SGD(0.1, momentum=0.9)
    opt.step(p, g)  # v = 1, w = 0.9
    opt.step(p, g)  # v = 1.9, w = 0.71
    np.testing.assert_allclose(p["w"], [0.71])
    p = {"w": np.array([1.0])}
    opt = SGD(0.1, momentum=0.9, nesterov=True)
    opt.step(p, g)  # v = 1, step = 1 + 0.9 = 1.9, w = 0.81
    np.testing.assert_allclose(p["w"], [0.81])
    p = {"w": np.array([2.0])}
    SGD(0.1, weight_decay=0.5).step(p, {"w": np.array([0.0])})  # g = 0 + 0.5 * 2 = 1
    np.testing.assert_allclose(p["w"], [1.9])


@pytest.mark.parametrize(
    "kwargs, message",
    [({"lr": 0}, r"SGD: lr must be a number in \(0.0, inf\), got 0"), ({"lr": 0.1, "momentum": 1.0}, r"momentum must be a number in \[0.0, 1.0\), got 1.0"),
     ({"lr": 0.1, "nesterov": True}, "nesterov=True needs"), ({"lr": 0.1, "weight_decay": -1}, "weight_decay")],
)
def test_sgd_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD(**kwargs)


def test_minibatches_cover_every_sample_once(rng):
    x, y = np.arange(10)[:, None], np.arange(10)
    batches = list(iterate_minibatches(x, y, 4, rng))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen) == list(range(10)) and not np.array_equal(seen, np.arange(10))
    assert all(np.array_equal(b[0][:, 0], b[1]) for b in batches)  # x and y stay paired
    ordered = np.concatenate([b[1] for b in iterate_minibatches(x, y, 3)])
    np.testing.assert_array_equal(ordered, np.arange(10))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[10, 9\]"):
        list(iterate_minibatches(x, y[:9], 4))


def test_to_float_images_scales_and_adds_channel_axis():
    x = np.array([[[0, 255]]], dtype=np.uint8)  # (1, 1, 2)
    out = to_float_images(x, mean=0.5, std=0.5)
    assert out.shape == (1, 1, 2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [-1.0, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="expected uint8"):
        to_float_images(x.astype(np.float32))


def test_get_model_unknown_name():
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of: notebook"):
        get_model("vgg")


def _toy_data(rng, n=64):
    """Two classes separable by the mean brightness of the image."""
    y = rng.integers(0, 2, size=n)
    x = rng.standard_normal((n, 28, 28, 1)).astype(np.float32) * 0.5 + (y[:, None, None, None] * 2 - 1)
    return x.astype(np.float32), y


def test_fit_learns_and_is_deterministic():
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        x, y = _toy_data(rng)
        model = notebook(rng=rng)
        history = fit(model, x, y, optimizer=SGD(0.05, momentum=0.9), epochs=3, batch_size=16, rng=rng,
                      validation_data=(x, y))
        runs.append((history, model.state_dict()))
    (history, weights), (history2, weights2) = runs
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_accuracy"] > 0.9
    assert all(np.array_equal(weights[k], weights2[k]) for k in weights)  # same seed, same bits
    assert [h["loss"] for h in history] == [h["loss"] for h in history2]
    result = evaluate(model_for(weights), x, y, batch_size=10)
    assert result["accuracy"] == pytest.approx(history[-1]["val_accuracy"])


def model_for(weights):
    model = notebook(rng=np.random.default_rng(0))
    model.load_state_dict(weights)
    return model


@pytest.mark.mnist
def test_example_script_runs(mnist, monkeypatch, capsys):
    """examples/train_mnist.py, on 2,000 training images so it takes seconds."""
    import runpy
    from pathlib import Path

    import convnp.data

    x_train, y_train, x_test, y_test = mnist
    monkeypatch.setattr(convnp.data, "load_mnist", lambda: (x_train[:2000], y_train[:2000], x_test[:1000], y_test[:1000]))
    script = Path(__file__).resolve().parents[1] / "examples" / "train_mnist.py"
    assert len(script.read_text().splitlines()) < 50
    runpy.run_path(str(script), run_name="__main__")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("test accuracy") and float(line.split()[2].rstrip("%,")) > 80, line
