"""docs/how-it-works.md: every number of its worked example is recomputed with the library.

And every link in the docs resolves."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from convnp.layers import Conv2D, Dense, Flatten, MaxPool2D, NotebookMaxPool2D, ReLU
from convnp.losses import SoftmaxCrossEntropy
from convnp.sequential import Sequential
from convnp.ops.activations import softmax

DOC = Path(__file__).resolve().parents[1] / "docs" / "how-it-works.md"
BLOCK = re.compile(r"^```text worked-example\n(.*?)^```", re.S | re.M)


def doc_numbers() -> dict:
    """``name = literal`` lines of the doc's ``worked-example`` blocks."""
    numbers = {}
    for block in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        for line in block.strip().splitlines():
            name, _, value = line.partition(" = ")
            assert name.isidentifier() and name not in numbers, f"bad or repeated line in the doc: {line!r}"
            numbers[name] = ast.literal_eval(value)
    return numbers


def compute(x, conv_weight, dense_weight, label, notebook_maxpool=False) -> dict:
    """Run the doc's tiny network forward and backward with the library, in float64."""
    pool = NotebookMaxPool2D(2) if notebook_maxpool else MaxPool2D(2)
    model = Sequential(
        [Conv2D(1, 1, 3, dtype=np.float64), ReLU(), pool, Flatten(), Dense(1, 2, dtype=np.float64)],
        input_shape=(4, 4, 1),
    )
    conv, relu, _, _, dense = model.layers
    conv.params["weight"][...] = np.array(conv_weight, float)[:, :, None, None]  # (3, 3) -> (3, 3, 1, 1)
    dense.params["weight"][...] = dense_weight
    x = np.array(x, float)[None, :, :, None]  # (4, 4) -> (1, 4, 4, 1)
    y = np.array([label])
    conv_out = conv.forward(x, training=True)
    relu_out = relu.forward(conv_out, training=True)
    pool_out = model.layers[2].forward(relu_out, training=True)
    logits = dense.forward(model.layers[3].forward(pool_out, training=True), training=True)
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn.forward(logits, y)
    dlogits = loss_fn.backward()
    dflat = dense.backward(dlogits)
    dpool_out = model.layers[3].backward(dflat)
    dpool_in = model.layers[2].backward(dpool_out)
    drelu_in = relu.backward(dpool_in)
    conv_dx = conv.backward(drelu_in)
    return {
        "conv_out": conv_out[0, :, :, 0],
        "relu_out": relu_out[0, :, :, 0],
        "pool_out": pool_out[0, 0, 0, 0],
        "logits": logits[0],
        "probs": softmax(logits)[0],
        "loss": loss,
        "dlogits": dlogits[0],
        "dense_dweight": dense.grads["weight"],
        "dense_dbias": dense.grads["bias"],
        "dpool_out": dpool_out[0, 0, 0, 0],
        "dpool_in": dpool_in[0, :, :, 0],
        "drelu_in": drelu_in[0, :, :, 0],
        "conv_dweight": conv.grads["weight"][:, :, 0, 0],
        "conv_dbias": conv.grads["bias"][0],
        "conv_dx": conv_dx[0, :, :, 0],
        "_loss_of": lambda w: _loss_with_conv_weight(model, loss_fn, x, y, w),
    }


def _loss_with_conv_weight(model, loss_fn, x, y, w):
    saved = model.layers[0].params["weight"].copy()
    model.layers[0].params["weight"][...] = w
    try:
        return loss_fn.forward(model.forward(x), y)
    finally:
        model.layers[0].params["weight"][...] = saved


@pytest.fixture(scope="module")
def numbers():
    return doc_numbers()


@pytest.fixture(scope="module")
def computed(numbers):
    return compute(numbers["x"], numbers["conv_weight"], numbers["dense_weight"], numbers["label"])


def test_every_number_in_the_doc_is_what_the_library_computes(numbers, computed):
    inputs = {"x", "conv_weight", "dense_weight", "label"}
    notebook = compute(numbers["x"], numbers["conv_weight"], numbers["dense_weight"], numbers["label"],
                       notebook_maxpool=True)
    computed = {**computed, "dpool_in_notebook": notebook["dpool_in"]}
    checked = set(numbers) - inputs
    missing = sorted(k for k in computed if not k.startswith("_") and k not in numbers)
    assert not missing, f"computed but not in the doc: {missing}"
    unknown = sorted(checked - set(computed))
    assert not unknown, f"in the doc but not checked: {unknown}"
    for name in sorted(checked):
        doc, mine = np.asarray(numbers[name], float), np.asarray(computed[name], float)
        assert doc.shape == mine.shape, f"{name}: doc shape {doc.shape} vs computed {mine.shape}"
        # The doc rounds to 4 decimals.
        np.testing.assert_allclose(doc, mine, rtol=0, atol=5.01e-5, err_msg=f"{name}: doc vs library")


def test_the_examples_gradients_match_finite_differences(numbers):
    """Away from the pooling tie the library's conv weight gradient is the finite-difference one, and it tends to the
    doc's; the notebook's max-pool backward gives another.

    At the doc's exact input two pooling inputs tie for the maximum, where the maximum has no derivative (central
    differences there average the two one-sided slopes). Raising ``x[1, 2]`` by ``delta`` raises conv output (0, 1)
    and lowers (1, 0), so the first maximum wins strictly, as the routing assumes.
    """
    delta = 1e-3
    x = np.array(numbers["x"], float)
    x[1, 2] += delta
    computed = compute(x, numbers["conv_weight"], numbers["dense_weight"], numbers["label"])
    np.testing.assert_allclose(computed["conv_dweight"], numbers["conv_dweight"], atol=1e-2)
    w = np.array(numbers["conv_weight"], float)[:, :, None, None]
    numeric = np.zeros((3, 3))
    eps = 1e-6
    for a in range(3):
        for b in range(3):
            step = np.zeros_like(w)
            step[a, b] = eps
            numeric[a, b] = (computed["_loss_of"](w + step) - computed["_loss_of"](w - step)) / (2 * eps)
    np.testing.assert_allclose(computed["conv_dweight"], numeric, atol=1e-6)
    notebook = compute(x, numbers["conv_weight"], numbers["dense_weight"], numbers["label"], notebook_maxpool=True)
    assert not np.allclose(notebook["conv_dweight"], numeric, atol=1e-3)


@pytest.mark.parametrize("name", ["how-it-works.md", "parallel.md", "performance.md"])
def test_the_docs_links_resolve(name):
    doc = DOC.parent / name
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8"))
    assert any(link.startswith("../src/convnp/") for link in links)
    broken = [link for link in links if not link.startswith("http") and not (doc.parent / link).exists()]
    assert not broken, f"links to missing files: {broken}"
