"""The benchmarks' PyTorch copies compute what the convnp networks compute.

``benchmarks/bench.py``, ``time_to_accuracy.py`` and ``profile_layers.py --torch`` put convnp side by side with
``benchmarks/twins.py``'s copies; a copy that computed something else would make every ratio meaningless.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from convnp.models import MODELS, get_model

torch = pytest.importorskip("torch", reason="PyTorch not installed: the twins are not checked")

pytestmark = pytest.mark.torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from twins import torch_layers, torch_twin  # noqa: E402


def _batch(model, n: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *model.input_shape)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_twin_gives_the_same_logits_in_evaluation(name):
    model = get_model(name, rng=np.random.default_rng(0))
    # Running statistics away from their initial (0, 1), so that copying them is tested too.
    for layer in model.layers:
        if "running_mean" in layer.state:
            layer.state["running_mean"][:] = np.linspace(-0.5, 0.5, layer.state["running_mean"].size)
            layer.state["running_var"][:] = np.linspace(0.5, 2.0, layer.state["running_var"].size)
    x = _batch(model)
    twin = torch_twin(model).eval()
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x, training=False), theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if n != "convnet"])  # convnet: dropout masks differ
def test_twin_trains_alike(name):
    """One training step's loss gradient on every parameter, BatchNorm on batch statistics (best's dropout off)."""
    model = get_model(name, rng=np.random.default_rng(0))
    for layer in model.layers:
        if type(layer).__name__ == "Dropout":
            layer.p = 0.0
    x, y = _batch(model), np.arange(6) % 10
    twin = torch_twin(model).train()
    for module in twin.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    from convnp.losses import SoftmaxCrossEntropy

    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())
    ours = model.gradients()
    conv_dense = [m for m in twin.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    convnp_layers = [layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense")]
    assert len(conv_dense) == len(convnp_layers) > 0
    names = {id(layer): name for name, layer in model.named_layers()}
    for layer, module in zip(convnp_layers, conv_dense):
        grad = ours[f"{names[id(layer)]}.weight"]
        theirs = module.weight.grad.numpy()
        theirs = theirs.transpose(2, 3, 1, 0) if theirs.ndim == 4 else theirs.T  # back to convnp's layout
        np.testing.assert_allclose(grad, theirs, rtol=1e-3, atol=1e-5)


def test_layers_are_one_module_per_convnp_layer():
    model = get_model("best", rng=np.random.default_rng(0))
    to_nchw, modules = torch_layers(model)
    assert len(modules) == len(model.layers)
    h = to_nchw(torch.from_numpy(_batch(model)))
    with torch.no_grad():
        for module in modules:
            module.eval()
            h = module(h)
        direct = torch_twin(model).eval()(torch.from_numpy(_batch(model)))
    np.testing.assert_array_equal(h.numpy(), direct.numpy())


def test_profile_layers_times_both_frameworks_layer_by_layer():
    """``profile_layers.py --torch``: a time for every layer of both frameworks, in one table."""
    import profile_layers

    model = get_model("notebook", rng=np.random.default_rng(0))
    ours = profile_layers.medians(model, *profile_layers.samples(model, 8, 2))
    theirs = profile_layers.medians(model, *profile_layers.torch_samples(model, 8, 2))
    assert len(ours) == len(theirs) == len(model.layers) + 1  # and the loss
    assert all(f > 0 for _, f, _ in theirs) and all(b > 0 for _, _, b in theirs[:-1])
    table = profile_layers.side_by_side("notebook", 8, ours, theirs)
    assert table.count("\n| ") == len(model.layers) + 3  # header, rule, layers, loss, total
    assert "Conv2D(in_channels=1, out_channels=8" in table


def test_profile_layers_inference_times_forward_passes_only():
    """``profile_layers.py --torch --inference``: forward times for every layer of both, no backward, no loss."""
    import profile_layers

    model = get_model("best", rng=np.random.default_rng(0))  # BatchNorm and Dropout: eval mode matters
    before = {k: v.copy() for k, v in model.state_dict().items()}
    for run in (profile_layers.samples, profile_layers.torch_samples):
        rows = profile_layers.medians(model, *run(model, 8, 2, inference=True))
        assert len(rows) == len(model.layers) + 1
        assert all(f > 0 for _, f, _ in rows[:-1]) and all(b == 0 for _, _, b in rows) and rows[-1][1] == 0
    # Inference mode: BatchNorm's running statistics are read, never updated
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    table = profile_layers.side_by_side("best", 8, rows, rows, "pass")
    assert "ms per pass" in table
