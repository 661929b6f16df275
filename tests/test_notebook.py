"""The seed notebook's numbers, reproduced from its own initial weights on real MNIST."""

import numpy as np
import pytest

from convnp.layers import NotebookMaxPool2D
from convnp.losses import SoftmaxCrossEntropy
from convnp.metrics import accuracy
from convnp.models.notebook import notebook, notebook_normalize, notebook_weights
from convnp.replay import format_epoch, replay_notebook

# The notebook's printed output (first 100 training images, full batch, lr 0.1, its wrong max-pool backward).
NOTEBOOK_PRINTOUT = [(17.00, 2.30219), (41.00, 2.10387), (58.00, 1.94948), (75.00, 1.79744), (80.00, 1.64556),
                     (83.00, 1.48968)]


def test_notebook_weights_are_the_notebooks_random_stream():
    state = np.random.get_state()
    weights = notebook_weights()
    assert np.random.get_state()[1].tolist() == state[1].tolist(), "global NumPy random state was touched"
    legacy = np.random.RandomState(1)
    conv = legacy.randn(3, 3, 8) / 3
    dense = legacy.randn(1352, 10) / 135
    np.testing.assert_array_equal(weights["0.weight"][:, :, 0, :], conv)
    np.testing.assert_array_equal(weights["4.weight"], dense)
    assert not weights["0.bias"].any() and not weights["4.bias"].any()


def test_notebook_init_ignores_rng_and_he_init_uses_it():
    a = notebook(init="notebook", rng=np.random.default_rng(1)).state_dict()
    b = notebook(init="notebook", rng=np.random.default_rng(2)).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = notebook(init="he", rng=np.random.default_rng(1)).state_dict()
    d = notebook(init="he", rng=np.random.default_rng(1)).state_dict()
    e = notebook(init="he", rng=np.random.default_rng(2)).state_dict()
    assert all(np.array_equal(c[k], d[k]) for k in c)
    assert not np.array_equal(c["0.weight"], e["0.weight"])
    with pytest.raises(ValueError, match="init must be 'he' or 'notebook'"):
        notebook(init="xavier")


@pytest.mark.mnist
@pytest.mark.parametrize("n, acc, loss", [(20, 15.00, 2.31577), (100, 17.00, 2.30219)])
def test_forward_matches_notebook(mnist, n, acc, loss):
    x_train, y_train, _, _ = mnist
    model = notebook(init="notebook", dtype=np.float64)
    logits = model.forward(notebook_normalize(x_train[:n]))
    y = y_train[:n].astype(np.int64)
    assert f"{accuracy(logits, y) * 100:.2f}" == f"{acc:.2f}"
    assert f"{SoftmaxCrossEntropy()(logits, y):.5f}" == f"{loss:.5f}"


@pytest.mark.mnist
def test_replay_with_notebook_maxpool_matches_printout(mnist):
    x_train, y_train, _, _ = mnist
    results = replay_notebook(x_train[:100], y_train[:100], notebook_maxpool=True)
    printed = [(f"{a:.2f}", f"{l:.5f}") for a, l in results]
    assert printed == [(f"{a:.2f}", f"{l:.5f}") for a, l in NOTEBOOK_PRINTOUT]


@pytest.mark.mnist
def test_replay_with_correct_gradients_differs_after_first_step(mnist):
    x_train, y_train, _, _ = mnist
    correct = replay_notebook(x_train[:100], y_train[:100])
    legacy = replay_notebook(x_train[:100], y_train[:100], notebook_maxpool=True)
    assert f"{correct[0][1]:.5f}" == f"{legacy[0][1]:.5f}"  # same start
    assert all(abs(c[1] - l[1]) > 1e-5 for c, l in zip(correct[1:], legacy[1:]))
    assert correct[-1][1] < correct[0][1] - 0.5  # it learns
    # The README's figure for the run with the correct max-pool backward.
    assert (f"{correct[-1][0]:.2f}", f"{correct[-1][1]:.5f}") == ("83.00", "1.54765")


def test_format_epoch_is_the_notebooks_print():
    assert format_epoch(3, 75.0, 1.797441) == "Epoch 3 \n Accuracy:75.00, Avg Loss: 1.79744 \n --- \n"


def test_notebook_maxpool_variant_uses_legacy_layer():
    model = notebook(notebook_maxpool=True)
    assert isinstance(model[2], NotebookMaxPool2D)
    assert not isinstance(notebook()[2], NotebookMaxPool2D)


def test_legacy_backward_spreads_max_times_grad():
    """The notebook's rule, checked on one window: every input gets max(window) * dout."""
    layer = NotebookMaxPool2D(2)
    x = np.array([[1.0, 3.0], [2.0, -1.0]]).reshape(1, 2, 2, 1)
    layer.forward(x, training=True)
    dx = layer.backward(np.full((1, 1, 1, 1), 0.5))
    np.testing.assert_array_equal(dx.reshape(2, 2), np.full((2, 2), 1.5))
