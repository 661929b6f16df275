"""``convnp import`` / :func:`convnp.onnx.load`: ONNX files as convnp checkpoints, checked against PyTorch.

- CNNs trained briefly in PyTorch on MNIST and written by PyTorch's own exporter (``dynamo=False``, opset 20) import
  and give PyTorch's scores (1e-5 relative, float32) and its predictions on the 10,000 test digits, through
  ``convnp evaluate`` and ``convnp predict``; the imported model fine-tunes.
- convnp -> ONNX -> convnp gives bitwise the same weights, architecture and predictions, for every zoo model.
- Operators, attributes and graph shapes convnp cannot express, and damaged or hostile files, are refused in one
  line naming the node, with exit code 1, and nothing written.

"Relative", throughout: per image, ``max_k |convnp - torch| / max_k |torch|``, the worst image counting.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper  # noqa: E402

from convnp.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from convnp.cli.main import main  # noqa: E402
from convnp.data.transforms import Standardize  # noqa: E402
from convnp.inference import Classifier  # noqa: E402
from convnp.models import MODELS, build_model  # noqa: E402
from convnp.onnx import OnnxError  # noqa: E402
from convnp.onnx import read as onnx_read  # noqa: E402
from convnp.onnx.export import export  # noqa: E402
from convnp.onnx.load import load  # noqa: E402
from convnp.ops.activations import softmax  # noqa: E402
from convnp.optim import SGD  # noqa: E402
from convnp.train import fit  # noqa: E402

nn = torch.nn
F = torch.nn.functional

#: The issue's bound for a PyTorch network's outputs after import (float32).
RELATIVE = 1e-5
#: MNIST's statistics, as PyTorch's MNIST example normalises with them.
MEAN, STD = 0.1307, 0.3081


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The worst image's ``max_k |ours - theirs| / max_k |theirs|`` over ``(N, K)``."""
    return float((np.abs(ours - theirs).max(axis=1) / np.abs(theirs).max(axis=1)).max())


def nchw(x: np.ndarray) -> torch.Tensor:
    """convnp's ``(N, H, W, C)`` -> PyTorch's ``(N, C, H, W)`` tensor: the one permutation at the boundary."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def torch_export(net, path, input_shape=(1, 28, 28), dynamic: bool = True, **kwargs) -> None:
    """Write ``net`` (in eval mode) with PyTorch's legacy exporter, as users do: batch axis free when ``dynamic``."""
    net.eval()
    x = torch.zeros(2, *input_shape)
    axes = {"input": {0: "N"}, "output": {0: "N"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["input"], output_names=["output"],
                          dynamic_axes=axes, **kwargs)


# ---- PyTorch networks trained on MNIST -------------------------------------------------------------------------
class Scores(nn.Module):
    """A network whose ``scores`` are the class scores, and whose forward ends in a softmax variant."""

    final = "softmax"

    def forward(self, x):
        scores = self.scores(x)
        return F.log_softmax(scores, dim=1) if self.final == "log_softmax" else F.softmax(scores, dim=1)


class Chain(Scores):
    """Conv (stride 1, pad 1), ReLU, BatchNorm2d (after the ReLU, so the exporter cannot fold it into the conv),
    MaxPool; Conv (stride 2, pad 1), LeakyReLU, overlapping AvgPool (3, stride 2); Flatten; Linear, BatchNorm1d,
    Tanh, Dropout; Linear, Sigmoid; Linear -> LogSoftmax."""

    final = "log_softmax"

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.1), nn.AvgPool2d(3, stride=2),
            nn.Flatten(), nn.Linear(16 * 3 * 3, 64), nn.BatchNorm1d(64), nn.Tanh(), nn.Dropout(0.3),
            nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 10),
        )

    def scores(self, x):
        return self.body(x)


class Viewed(Scores):
    """Conv (5x5, no padding), BatchNorm2d folded into it by the exporter, ReLU, AvgPool, Conv, ReLU, then
    ``x.view(x.size(0), -1)`` (Shape, Gather, Unsqueeze, Concat, Reshape), ``x @ w + b`` (MatMul + Add), ReLU,
    Linear -> Softmax."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5), nn.BatchNorm2d(6), nn.ReLU(), nn.AvgPool2d(2),
                                      nn.Conv2d(6, 12, 3, stride=2), nn.ReLU())
        self.weight = nn.Parameter(torch.randn(12 * 5 * 5, 48) * 0.05)
        self.bias = nn.Parameter(torch.zeros(48))
        self.out = nn.Linear(48, 10)

    def scores(self, x):
        x = self.features(x).contiguous()  # a 1-channel input may leave PyTorch's maps channels-last in memory
        x = x.view(x.size(0), -1)
        return self.out(F.relu(x @ self.weight + self.bias))


def train_torch(net, x_train: np.ndarray, y_train: np.ndarray, steps: int = 300, batch_size: int = 64):
    """A short Adam run of ``net`` on MNIST (scaled and normalised as PyTorch's example does); returns it in eval
    mode."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    order = np.random.default_rng(0).permutation(len(x_train))
    net.train()
    for step in range(steps):
        rows = order[(step * batch_size) % len(order):][:batch_size]
        x = (nchw(x_train[rows].astype(np.float32)) / 255 - MEAN) / STD
        loss = F.cross_entropy(net.scores(x), torch.from_numpy(y_train[rows].astype(np.int64)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@pytest.fixture(scope="module", params=[Chain, Viewed], ids=["chain", "viewed"])
def torch_model(request, mnist, tmp_path_factory):
    """``(net, onnx_path, checkpoint_path)``: a PyTorch network trained on 9,600 MNIST digits, exported by PyTorch and
    imported by ``convnp import`` with MNIST's normalisation."""
    torch.manual_seed(0)
    net = train_torch(request.param(), mnist[0][:9600, ..., None], mnist[1][:9600])
    folder = tmp_path_factory.mktemp(request.param.__name__)
    onnx_path, checkpoint = folder / "net.onnx", folder / "net.npz"
    torch_export(net, onnx_path)
    assert main(["import", str(onnx_path), str(checkpoint), "--mean", str(MEAN), "--std", str(STD)]) == 0
    return net, onnx_path, checkpoint


@pytest.mark.mnist
@pytest.mark.torch
def test_a_pytorch_network_gives_pytorchs_outputs_and_test_accuracy(torch_model, mnist, capsys):
    net, onnx_path, checkpoint = torch_model
    graph_ops = {node.op_type for node in onnx.load(str(onnx_path)).graph.node}
    expected = {"Conv", "Relu", "AveragePool"} | ({"MaxPool", "BatchNormalization", "LeakyRelu", "Tanh", "Sigmoid",
                                                   "Flatten", "Gemm", "LogSoftmax"}
                                                  if isinstance(net, Chain) else {"Shape", "Reshape", "MatMul", "Add",
                                                                                  "Gemm", "Softmax"})
    assert expected <= graph_ops, graph_ops  # the exporter wrote what this test means to read
    x_test, y_test = mnist[2][..., None], mnist[3].astype(np.int64)
    classifier = Classifier.from_checkpoint(checkpoint)
    ours = classifier.forward(classifier.prepare(x_test, stored=True))  # (10000, 10) scores
    with torch.no_grad():
        x = (nchw(x_test.astype(np.float32)) / 255 - MEAN) / STD
        scores, outputs = net.scores(x).numpy(), net(x).numpy()
    assert relative_error(ours, scores) < RELATIVE
    theirs = np.log(softmax(ours.astype(np.float64), axis=1)) if net.final == "log_softmax" else \
        softmax(ours.astype(np.float64), axis=1)
    assert relative_error(theirs, outputs) < RELATIVE  # the graph's own output, from convnp's scores
    accuracy = float((scores.argmax(axis=1) == y_test).mean())
    assert accuracy > 0.9  # trained: the comparison is between two working classifiers
    assert int((ours.argmax(axis=1) != scores.argmax(axis=1)).sum()) <= 2
    capsys.readouterr()
    assert main(["evaluate", str(checkpoint), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_samples"] == 10000 and abs(report["accuracy"] - accuracy) <= 2e-4


@pytest.mark.mnist
@pytest.mark.torch
def test_convnp_predict_reads_the_imported_checkpoint(torch_model, mnist, tmp_path, capsys):
    from PIL import Image

    net, _, checkpoint = torch_model
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(mnist[2][i]).save(paths[-1])
    capsys.readouterr()
    assert main(["predict", str(checkpoint), *map(str, paths), "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    pixels = Classifier.from_checkpoint(checkpoint).read_images(paths)  # (3, 28, 28, 1) as predict prepared them
    with torch.no_grad():
        expected = net.scores((nchw(pixels) / 255 - MEAN) / STD).numpy().argmax(axis=1)
    assert [a["label"] for a in answers] == expected.tolist()
    assert all(abs(sum(a["probabilities"]) - 1) < 1e-6 for a in answers)


@pytest.mark.mnist
@pytest.mark.torch
def test_the_page_and_plot_take_the_imported_checkpoint(torch_model, mnist, tmp_path, capsys):
    """convnp serve's app answers with the class predict gives for the same file; convnp plot draws the network's
    filters and, on the MNIST test split, its confusion matrix."""
    from fastapi.testclient import TestClient
    from PIL import Image

    from convnp.web.app import create_app

    _, _, checkpoint = torch_model
    path = tmp_path / "digit.png"
    Image.fromarray(mnist[2][0]).save(path)
    capsys.readouterr()
    assert main(["predict", str(checkpoint), str(path), "--json"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    with TestClient(create_app(checkpoint)) as client:
        reply = client.post("/api/predict", files={"file": ("digit.png", path.read_bytes(), "image/png")})
    assert reply.status_code == 200 and reply.json()["label"] == answer["label"]
    assert main(["plot", str(checkpoint), "--data", "mnist", "--out", str(tmp_path / "report")]) == 0
    assert {"filters.png", "confusion.png", "report.html"} <= {p.name for p in (tmp_path / "report").iterdir()}


@pytest.mark.mnist
@pytest.mark.torch
def test_the_imported_checkpoint_fine_tunes(torch_model, mnist):
    _, _, checkpoint = torch_model
    loaded = load_checkpoint(checkpoint)
    model, standardize = loaded.model, loaded.standardize
    x = standardize(mnist[0][20000:20512, ..., None])
    y = mnist[1][20000:20512].astype(np.int64)
    before = {k: v.copy() for k, v in model.parameters().items()}
    history = fit(model, x, y, optimizer=SGD(0.01, momentum=0.9), epochs=2, batch_size=64,
                  rng=np.random.default_rng(0))
    assert all(np.isfinite(h["loss"]) for h in history)
    assert history[-1]["loss"] < history[0]["loss"] + 0.05  # already trained: it stays good while it learns
    assert any(not np.array_equal(before[k], v) for k, v in model.parameters().items())


# ---- convnp -> ONNX -> convnp ------------------------------------------------------------------------------------
def randomised(model, rng: np.random.Generator):
    """``model`` with BatchNorm weights and statistics far from the identity, so a misplaced one shows."""
    for layer in model.layers:
        for store in (layer.params, layer.state):
            for key in ("weight", "bias", "running_mean", "running_var"):
                if key in store and store[key].ndim == 1 and "num_features" in layer.get_config():
                    store[key][:] = rng.uniform(0.5, 2.0, store[key].shape)
    return model


@pytest.mark.parametrize("raw", [False, True], ids=["pixels", "raw"])
@pytest.mark.parametrize("name", list(MODELS))
def test_convnp_to_onnx_to_convnp_is_bitwise_the_same(name, raw, tmp_path):
    rng = np.random.default_rng(3)
    model = randomised(build_model(name, input_shape=(28, 28, 1), num_classes=10, rng=rng), rng)
    original = tmp_path / "original.npz"
    save_checkpoint(original, model, meta={"preprocessing": Standardize(1 / 255, [0.2], [0.35]).to_dict(),
                                           "classes": [f"class {k}" for k in range(10)], "model_name": name})
    export(original, tmp_path / "model.onnx", raw=raw)
    load(tmp_path / "model.onnx").save(tmp_path / "back.npz")
    a, b = load_checkpoint(original), load_checkpoint(tmp_path / "back.npz")
    assert b.model.get_config() == a.model.get_config()  # Dropout and momentum restored from the metadata
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    assert state_b.keys() == state_a.keys()
    for key in state_a:
        assert state_b[key].dtype == state_a[key].dtype and np.array_equal(state_b[key], state_a[key]), key
    assert b.standardize.to_dict() == a.standardize.to_dict()
    assert b.meta["classes"] == a.meta["classes"] and b.meta["model_name"] == name
    pixels = rng.integers(0, 256, (16, 28, 28, 1)).astype(np.uint8)
    ca, cb = Classifier.from_checkpoint(a), Classifier.from_checkpoint(b)
    assert np.array_equal(cb.forward(cb.prepare(pixels)), ca.forward(ca.prepare(pixels)))


def test_the_commands_round_trip_a_colour_model(tmp_path, capsys):
    rng = np.random.default_rng(4)
    model = randomised(build_model("convnet", input_shape=(20, 24, 3), num_classes=4, rng=rng), rng)
    save_checkpoint(tmp_path / "a.npz", model,
                    meta={"preprocessing": Standardize(1 / 255, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]).to_dict(),
                          "classes": ["cat", "dog", "bird", "fish"]})
    assert main(["export", str(tmp_path / "a.npz"), str(tmp_path / "a.onnx")]) == 0
    assert main(["import", str(tmp_path / "a.onnx"), str(tmp_path / "b.npz")]) == 0
    out = capsys.readouterr().out
    assert "4 classes (cat, dog, bird, fish)" in out and "(20, 24, 3)" in out
    a, b = load_checkpoint(tmp_path / "a.npz"), load_checkpoint(tmp_path / "b.npz")
    pixels = rng.integers(0, 256, (5, 20, 24, 3)).astype(np.uint8)
    ca, cb = Classifier.from_checkpoint(a), Classifier.from_checkpoint(b)
    assert np.array_equal(cb.predict_proba(pixels), ca.predict_proba(pixels))


def test_a_preparation_that_disagrees_with_the_metadata_is_refused(tmp_path):
    model = build_model("notebook", input_shape=(28, 28, 1), num_classes=10, rng=np.random.default_rng(0))
    save_checkpoint(tmp_path / "a.npz", model, meta={"preprocessing": Standardize(1 / 255, [0.1], [0.3]).to_dict()})
    export(tmp_path / "a.npz", tmp_path / "a.onnx")
    proto = onnx.load(str(tmp_path / "a.onnx"))
    factor = next(t for t in proto.graph.initializer if t.name == "preprocessing.factor")
    factor.CopyFrom(onnx.numpy_helper.from_array(np.array([0.5], np.float32), factor.name))
    onnx.save(proto, str(tmp_path / "b.onnx"))
    with pytest.raises(OnnxError, match="disagrees with its metadata"):
        load(tmp_path / "b.onnx")
    # Told how to prepare the pixels, the user's options and the graph's arithmetic are composed instead.
    imported = load(tmp_path / "b.onnx", scale=1.0)
    assert imported.standardize.scale == 1.0 and np.allclose(imported.standardize.std, [2.0])


# ---- what PyTorch writes, in smaller pieces --------------------------------------------------------------------
def scores_of(imported, x: np.ndarray) -> np.ndarray:
    """The imported model's scores for PyTorch's input ``x`` ``(N, C, H, W)`` (the graph's input, unprepared)."""
    return imported.model.forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))


@pytest.mark.torch
@pytest.mark.parametrize("dynamic", [True, False], ids=["free-batch", "fixed-batch"])
def test_a_view_with_a_fixed_or_free_batch_imports(dynamic, tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=(1, 0)), nn.Linear(4 * 6 * 4, 5)

        def forward(self, x):
            x = torch.relu(self.conv(x))
            return self.fc(x.view(x.size(0), -1) if dynamic else x.view(-1, 4 * 6 * 4))

    torch.manual_seed(1)
    net = Net().eval()
    torch_export(net, tmp_path / "net.onnx", input_shape=(3, 6, 6), dynamic=dynamic)
    imported = load(tmp_path / "net.onnx", scale=1.0)
    x = np.random.default_rng(0).normal(size=(7, 3, 6, 6)).astype(np.float32)  # another batch size than exported
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert relative_error(scores_of(imported, x), expected) < RELATIVE
    assert imported.model.layers[0].padding == (1, 0)


@pytest.mark.torch
@pytest.mark.parametrize("opset", [9, 11, 13, 17])
def test_older_opsets_import(opset, tmp_path):
    torch.manual_seed(opset)
    for net in (Chain(), Viewed()):  # opset 9 writes a Pad of nothing before AveragePool; older Unsqueeze, Softmax
        torch_export(net, tmp_path / "net.onnx", opset_version=opset)
        imported = load(tmp_path / "net.onnx", scale=1.0)
        x = np.random.default_rng(opset).normal(size=(6, 1, 28, 28)).astype(np.float32)
        with torch.no_grad():
            expected = net.scores(torch.from_numpy(x)).numpy()
        assert relative_error(scores_of(imported, x), expected) < RELATIVE


@pytest.mark.torch
@pytest.mark.parametrize("kernel_size", [3, 4])
def test_pytorchs_same_padding_imports(kernel_size, tmp_path):
    torch.manual_seed(kernel_size)
    net = Wrapped(nn.Conv2d(2, 3, kernel_size, padding="same"), 3 * 8 * 8).eval()
    torch_export(net, tmp_path / "net.onnx", input_shape=(2, 8, 8))
    imported = load(tmp_path / "net.onnx", scale=1.0)
    x = np.random.default_rng(0).normal(size=(4, 2, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert relative_error(scores_of(imported, x), expected) < RELATIVE


@pytest.mark.torch
def test_a_normalisation_inside_the_graph_joins_the_preparation(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pool, self.fc = nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Linear(6, 4)
            self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))

        def forward(self, x):
            x = (x - self.mean) / 0.25
            return torch.softmax(self.fc(torch.flatten(self.pool(torch.tanh(self.conv(x))), 1)), dim=1)

    torch.manual_seed(2)
    net = Net().eval()
    torch_export(net, tmp_path / "net.onnx", input_shape=(3, 9, 9))
    imported = load(tmp_path / "net.onnx")  # the graph takes pixels / 255
    assert [type(layer).__name__ for layer in imported.model.layers] == ["Conv2D", "Tanh", "GlobalAvgPool2D", "Dense"]
    pixels = np.random.default_rng(1).integers(0, 256, (6, 9, 9, 3)).astype(np.uint8)
    classifier = Classifier(imported.model, imported.standardize)
    with torch.no_grad():
        expected = net(nchw(pixels.astype(np.float32)) / 255).numpy()
    assert relative_error(classifier.predict_proba(pixels), expected) < RELATIVE
    assert np.allclose(imported.standardize.mean, [0.4, 0.5, 0.6]) and np.allclose(imported.standardize.std, 0.25)


def test_classes_come_from_names_a_list_or_a_file(tmp_path, capsys):
    model = build_model("notebook", input_shape=(28, 28, 1), num_classes=3, rng=np.random.default_rng(0))
    save_checkpoint(tmp_path / "a.npz", model, meta={"preprocessing": Standardize(1 / 255, [0.1], [0.3]).to_dict()})
    export(tmp_path / "a.npz", tmp_path / "a.onnx")
    names = tmp_path / "names.txt"
    names.write_text("zero\none\n\ntwo\n", encoding="utf-8")
    for option in (["zero", "one", "two"], ["zero,one,two"], [str(names)]):
        assert main(["import", str(tmp_path / "a.onnx"), str(tmp_path / "b.npz"), "--classes", *option]) == 0
        assert load_checkpoint(tmp_path / "b.npz").meta["classes"] == ["zero", "one", "two"]
    capsys.readouterr()
    assert main(["import", str(tmp_path / "a.onnx"), str(tmp_path / "c.npz"), "--classes", "x", "y"]) == 1
    assert "2 names given, but a.onnx has 3 outputs" in capsys.readouterr().err
    assert not (tmp_path / "c.npz").exists()


# ---- refusals: one line naming the node, exit 1, nothing written ---------------------------------------------------
@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("CONVNP_DEBUG", raising=False)


def refused(path, tmp_path, capsys) -> str:
    """Run ``convnp import path``; check it exits 1 with one error line and writes nothing; return the line."""
    capsys.readouterr()
    out = tmp_path / "out.npz"
    assert main(["import", str(path), str(out)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convnp: error: "), captured.err
    assert captured.out == "" and not out.exists()
    return lines[0]


class Wrapped(nn.Module):
    """``scores`` as a module: the body given, then flatten and a linear layer to 3 classes."""

    def __init__(self, body, features):
        super().__init__()
        self.body, self.fc = body, nn.Linear(features, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.body(x), 1))


class Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)  # a residual connection


class Grouped(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), 2, -1)  # (N, 2, 64): not a flatten


TORCH_REFUSALS = {
    "groups": (Wrapped(nn.Conv2d(2, 4, 3, groups=2), 4 * 6 * 6), ["(Conv)", "group=2"]),
    "dilation": (Wrapped(nn.Conv2d(2, 4, 3, dilation=2), 4 * 4 * 4), ["(Conv)", "dilations [2, 2]"]),
    "unknown-operator": (Wrapped(nn.ELU(), 2 * 8 * 8), ["(Elu)", "operator Elu is not one convnp imports"]),
    "padded-pool": (Wrapped(nn.MaxPool2d(2, padding=1), 2 * 5 * 5), ["(MaxPool)", "convnp's pools do not pad"]),
    "ceil-mode": (Wrapped(nn.MaxPool2d(3, stride=2, ceil_mode=True), 2 * 4 * 4), ["(MaxPool)", "ceil_mode=1"]),
    "skip-connection": (Wrapped(Skip(), 2 * 8 * 8), ["(Add)", "skip connection"]),
    "grouped-reshape": (Wrapped(Grouped(), 2 * 8 * 8), ["(Reshape)", "only as a flatten"]),
}


@pytest.mark.torch
@pytest.mark.parametrize("case", list(TORCH_REFUSALS))
def test_pytorch_graphs_convnp_cannot_express_are_refused_in_one_line(case, tmp_path, capsys):
    net, expected = TORCH_REFUSALS[case]
    torch_export(net, tmp_path / "net.onnx", input_shape=(2, 8, 8))
    line = refused(tmp_path / "net.onnx", tmp_path, capsys)
    assert all(part in line for part in expected), line
    assert "net.onnx: node " in line


def tiny_model(tmp_path, nodes, *, initializers=(), outputs=("y",), opset=17, name="tiny.onnx"):
    """Write a hand-made graph on input ``x`` ``(N, 1, 4, 4)``; returns its path. No checker: the files are bad on
    purpose."""
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def flat_end(source="a"):
    """Nodes turning ``source`` into class scores ``y`` (Flatten, then a Gemm of 16 features to 2)."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [16, 2], np.ones(32, np.float32).tolist())
    return [helper.make_node("Flatten", [source], ["f"], name="flatten"),
            helper.make_node("Gemm", ["f", "w"], ["y"], name="gemm")], [weight]


def test_a_branch_is_refused(tmp_path, capsys):
    end, weights = flat_end("c")
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="left"),
             helper.make_node("Sigmoid", ["x"], ["b"], name="right"),
             helper.make_node("Concat", ["a", "b"], ["c"], name="join", axis=1), *end]
    line = refused(tiny_model(tmp_path, nodes, initializers=weights), tmp_path, capsys)
    assert "node 'right' (Sigmoid)" in line and "the graph branches" in line


def test_padding_is_refused_unless_it_pads_nothing(tmp_path, capsys):
    end, weights = flat_end()
    pads = helper.make_tensor("pads", TensorProto.INT64, [8], [0] * 8)
    nodes = [helper.make_node("Pad", ["x", "pads"], ["a"], name="pad"), *end]
    assert load(tiny_model(tmp_path, nodes, initializers=[*weights, pads])).model.shapes()[-1] == (2,)
    pads = helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1])
    line = refused(tiny_model(tmp_path, nodes, initializers=[*weights, pads]), tmp_path, capsys)
    assert "node 'pad' (Pad): pads [0, 0, 1, 1, 0, 0, 1, 1]: convnp has no padding layer" in line


def test_an_output_in_the_middle_of_the_chain_is_refused(tmp_path, capsys):
    end, weights = flat_end()
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"), *end]
    line = refused(tiny_model(tmp_path, nodes, initializers=weights, outputs=("a", "y")), tmp_path, capsys)
    assert "output 'a' is not the end of the chain" in line


def test_an_unknown_opset_or_domain_is_refused(tmp_path, capsys):
    end, weights = flat_end()
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"), *end]
    assert "uses opset 99 of ONNX's default domain" in refused(
        tiny_model(tmp_path, nodes, initializers=weights, opset=99), tmp_path, capsys)
    nodes[0] = helper.make_node("FusedRelu", ["x"], ["a"], name="fused", domain="com.microsoft")
    line = refused(tiny_model(tmp_path, nodes, initializers=weights), tmp_path, capsys)
    assert "node 'fused' (FusedRelu): operator of domain 'com.microsoft'" in line


def test_a_tensor_claiming_a_trillion_elements_is_refused_before_allocating(tmp_path, capsys):
    end, _ = flat_end()
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[10**6, 10**6])  # no data at all
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"), *end]
    line = refused(tiny_model(tmp_path, nodes, initializers=[huge]), tmp_path, capsys)
    assert "initializer 'w': claims 1e+12 elements" in line
    short = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[16, 2], raw_data=b"\0" * 12)
    line = refused(tiny_model(tmp_path, nodes, initializers=[short]), tmp_path, capsys)
    assert "holds 12 bytes of data, but dims [16, 2] need 128" in line


@pytest.mark.parametrize("location", ["weights.bin", "../../etc/passwd", "/etc/passwd"])
def test_external_data_is_refused_without_opening_it(location, tmp_path, capsys, monkeypatch):
    end, _ = flat_end()
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[16, 2], data_location=TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value=location)
    (tmp_path / "weights.bin").write_bytes(np.ones(32, np.float32).tobytes())  # there, and still not read
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"), *end]
    path = tiny_model(tmp_path, nodes, initializers=[tensor])
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda file, *a, **k: opened.append(str(file)) or real_open(file, *a, **k))
    line = refused(path, tmp_path, capsys)
    assert "initializer 'w': keeps its data in an external file" in line
    assert not [name for name in opened if "passwd" in name or "weights.bin" in name]


def test_damaged_files_are_refused(tmp_path, capsys):
    end, weights = flat_end()
    good = tiny_model(tmp_path, [helper.make_node("Relu", ["x"], ["a"], name="relu"), *end], initializers=weights)
    assert load(good).model.shapes() == [(4, 4, 1), (16,), (2,)]  # whole, it imports
    data = good.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    assert "is not an ONNX model" in refused(truncated, tmp_path, capsys)
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "is not an ONNX model" in refused(noise, tmp_path, capsys)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert "it holds no graph nodes" in refused(empty, tmp_path, capsys)
    assert "no such ONNX file" in refused(tmp_path / "missing.onnx", tmp_path, capsys)


def test_a_huge_file_is_refused_before_reading(tmp_path, capsys):
    huge = tmp_path / "huge.onnx"
    with open(huge, "wb") as f:
        f.truncate(onnx_read.MAX_FILE_BYTES + 1)  # sparse: no disk space, no reading
    assert f"more than the {onnx_read.MAX_FILE_BYTES:,} convnp reads" in refused(huge, tmp_path, capsys)


def test_the_softmax_must_be_last_and_over_the_classes(tmp_path, capsys):
    end, weights = flat_end()
    nodes = [helper.make_node("Softmax", ["x"], ["a"], name="early", axis=1), *end]
    line = refused(tiny_model(tmp_path, nodes, initializers=weights), tmp_path, capsys)
    assert "node 'early' (Softmax)" in line and "only over the classes" in line
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"), *end,
             helper.make_node("Softmax", ["y"], ["p"], name="softmax"),
             helper.make_node("Relu", ["p"], ["q"], name="after")]
    line = refused(tiny_model(tmp_path, nodes, initializers=weights, outputs=("q",)), tmp_path, capsys)
    assert "node 'after' (Relu): follows the final Softmax" in line


def test_damaged_graphs_give_an_onnx_error_and_nothing_else(tmp_path):
    """Nodes with an input, their attributes or themselves removed, or another operator's name, or a few bytes of
    the file changed: each either imports or is refused with OnnxError (never another exception)."""
    model = build_model("convnet", input_shape=(12, 12, 1), num_classes=3, rng=np.random.default_rng(0))
    save_checkpoint(tmp_path / "a.npz", model, meta={"preprocessing": Standardize(1 / 255, [0.1], [0.3]).to_dict()})
    export(tmp_path / "a.npz", tmp_path / "a.onnx")
    base, rng = onnx.load(str(tmp_path / "a.onnx")), np.random.default_rng(0)
    outcomes = {"imported": 0, "refused": 0}
    for trial in range(100):
        proto = onnx.ModelProto()
        proto.CopyFrom(base)
        node = proto.graph.node[int(rng.integers(len(proto.graph.node)))]
        kind = trial % 5
        if kind == 0 and len(node.input):
            del node.input[int(rng.integers(len(node.input)))]
        elif kind == 1:
            del node.attribute[:]
        elif kind == 2:
            proto.graph.node.remove(node)
        elif kind == 3:
            node.op_type = str(rng.choice(["Conv", "Gemm", "Reshape", "MaxPool", "Gather", "Slice", "Softmax"]))
        data = bytearray(proto.SerializeToString())
        if kind == 4:
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
        (tmp_path / "damaged.onnx").write_bytes(bytes(data))
        try:
            load(tmp_path / "damaged.onnx")
            outcomes["imported"] += 1
        except OnnxError as err:
            assert "\n" not in str(err) and "damaged.onnx" in str(err)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 40  # most damage is noticed


def test_an_imported_preparation_takes_pixels_even_at_scale_1(tmp_path):
    """--scale 1 --mean 0 (a network that wants raw 0..255 pixels): predict must not divide the pixels by 255, as it
    does for a network trained on floats in [0, 1]; the flag survives the checkpoint and a convnp export."""
    import onnx

    from convnp.checkpoint import load_checkpoint
    from convnp.inference import Classifier
    from convnp.onnx import export, load

    from convnp import Conv2D, Dense, Flatten, Sequential
    from convnp.data.transforms import Standardize

    rng = np.random.default_rng(0)
    net = Sequential([Conv2D(1, 2, 1, rng=rng), Flatten(), Dense(8, 2, rng=rng)], input_shape=(2, 2, 1))

    path = tmp_path / "raw.onnx"
    export(net, path, standardize=Standardize(1.0, [0.0], [1.0]), raw=True)
    imported = load(path, scale=1.0, mean=[0.0], std=[1.0])
    assert imported.standardize.pixels and imported.standardize.to_dict()["pixels"] is True
    imported.save(tmp_path / "raw.npz")
    checkpoint = load_checkpoint(tmp_path / "raw.npz")
    classifier = Classifier.from_checkpoint(checkpoint)
    pixels = np.full((1, 2, 2, 1), 200.0)
    np.testing.assert_allclose(classifier.prepare(pixels), pixels)  # as they are, not /255
    export(checkpoint, tmp_path / "again.onnx")
    assert load(tmp_path / "again.onnx").standardize.pixels
    assert onnx.load(tmp_path / "again.onnx") is not None


def test_a_convnp_network_without_spatial_layers_round_trips(tmp_path):
    """Flatten first: the exported graph keeps its channels-last input with no Transpose, and its metadata says so;
    the importer reads it as channels-last (a 3-channel preparation, features in convnp's order), bit for bit."""
    from convnp import Dense, Flatten, ReLU, Sequential
    from convnp.data.transforms import Standardize
    from convnp.onnx import export, load

    rng = np.random.default_rng(1)
    net = Sequential([Flatten(), Dense(12, 5, rng=rng), ReLU(), Dense(5, 3, rng=rng)], input_shape=(2, 2, 3))
    standardize = Standardize(1 / 255, [0.1, 0.2, 0.3], [0.5, 0.4, 0.3])
    export(net, tmp_path / "mlp.onnx", standardize=standardize)
    imported = load(tmp_path / "mlp.onnx")
    assert tuple(imported.model.input_shape) == (2, 2, 3)
    assert imported.standardize.to_dict() == standardize.to_dict()
    x = standardize(rng.integers(0, 256, (6, 2, 2, 3)).astype(np.uint8))
    np.testing.assert_array_equal(imported.model.predict(x), net.predict(x))
