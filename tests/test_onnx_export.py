"""``convnp export`` / :func:`convnp.onnx.export`, checked by ONNX Runtime: every zoo model trained briefly on MNIST
gives convnp's classes and logits on the 10,000 test digits; odd shapes, strides, "same" padding, overlapping pools,
BatchNorm, colour models, ``--raw``, the metadata, the checker, the command line and its refusals.

"Relative" difference of logits, throughout: per image, ``max_k |ort - convnp| / max_k |convnp|``, the worst image
counting (:func:`relative_error`).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from convnp.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from convnp.cli.main import main  # noqa: E402
from convnp.data.transforms import Standardize  # noqa: E402
from convnp.layers import LAYERS, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Flatten, Layer, ReLU  # noqa: E402
from convnp.models import MODELS, build_network, get_model  # noqa: E402
from convnp.onnx import OnnxError, export, metadata, to_onnx  # noqa: E402
from convnp.onnx.export import MIN_OPSET, OPS  # noqa: E402
from convnp.optim import SGD  # noqa: E402
from convnp.sequential import Sequential  # noqa: E402
from convnp.train import fit  # noqa: E402
from convnp.version import __version__  # noqa: E402

#: The issue's bounds: logits within this relative difference, classes equal on all but this many test digits.
RELATIVE = 1e-4
BORDERLINE = 2


def session(proto):
    """An ONNX Runtime session on one thread (the suite shares two cores)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_onnx(proto, x: np.ndarray, batch_size: int = 1000):
    """``(logits, probabilities)`` ``(N, K)`` of ONNX Runtime on ``x``, ``batch_size`` images per run."""
    sess = session(proto)
    name = sess.get_inputs()[0].name
    parts = [sess.run(["logits", "probabilities"], {name: x[i:i + batch_size]}) for i in range(0, len(x), batch_size)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The worst image's ``max_k |theirs - ours| / max_k |ours|`` over logits ``(N, K)``."""
    return float((np.abs(theirs - ours).max(axis=1) / np.abs(ours).max(axis=1)).max())


def props(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def randomise_batchnorm(model: Sequential, rng: np.random.Generator) -> None:
    """Give every BatchNorm weights and running statistics far from the identity, so a wrong one shows."""
    for layer in model.layers:
        if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
            C = layer.num_features
            layer.params["weight"][:] = rng.uniform(0.5, 2.0, C)
            layer.params["bias"][:] = rng.normal(0, 0.5, C)
            layer.state["running_mean"][:] = rng.normal(0, 0.5, C)
            layer.state["running_var"][:] = rng.uniform(0.2, 3.0, C)


# ---- every zoo model on the 10,000 MNIST test digits ---------------------------------------------------------------
@pytest.fixture(scope="module")
def test_pixels(mnist):
    """The 10,000 test digits as float32 pixels 0..255 ``(N, 28, 28, 1)``, and their labels ``(N,)``."""
    return mnist[2][..., None].astype(np.float32), mnist[3].astype(np.int64)


@pytest.mark.mnist
@pytest.mark.parametrize("name", list(MODELS))
def test_every_zoo_model_gives_convnps_classes_and_logits_on_the_mnist_test_set(name, mnist, test_pixels, tmp_path):
    # Trained briefly: one epoch of SGD over 1,024 training digits (16 steps) moves the weights and, for `best`, the
    # BatchNorm running statistics well away from their initial values.
    x_train, y_train = mnist[0][:1024, ..., None], mnist[1][:1024].astype(np.int64)
    std = Standardize.fit(x_train)
    rng = np.random.default_rng(0)
    model = get_model(name, rng=rng)
    fit(model, std(x_train), y_train, optimizer=SGD(0.02, momentum=0.9), epochs=1, batch_size=64, rng=rng, threads=1)
    path = save_checkpoint(tmp_path / f"{name}.npz", model, meta={"preprocessing": std.to_dict(), "model_name": name})

    proto = to_onnx(path)
    pixels, labels = test_pixels
    ours = load_checkpoint(path).model.predict(std(pixels), threads=1)  # (10000, 10)
    logits, probabilities = run_onnx(proto, pixels)

    assert (ours.argmax(axis=1) == labels).mean() > 0.5  # it did train: chance is 0.1
    differ = int(np.count_nonzero(logits.argmax(axis=1) != ours.argmax(axis=1)))
    assert differ <= BORDERLINE, f"{name}: {differ} of 10,000 digits classified differently"
    assert relative_error(ours, logits) <= RELATIVE, name
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), logits.argmax(axis=1))


def test_every_layer_class_has_an_onnx_form():
    # A layer added to convnp without an ONNX form fails here, not in a user's export.
    assert set(LAYERS.values()) - {cls for cls in OPS} == set()


# ---- shapes, strides, padding, pools, BatchNorm -------------------------------------------------------------------
def conv(out_channels, kernel_size, **kwargs):
    return {"type": "Conv2D", "out_channels": out_channels, "kernel_size": kernel_size, **kwargs}


def dense(out_features, **kwargs):
    return {"type": "Dense", "out_features": out_features, **kwargs}


#: Small networks covering every layer and awkward geometry, as layer descriptions (counts inferred by
#: convnp.models.spec): name -> (descriptions, input_shape (H, W, C)).
NETWORKS = {
    # convnp's "same" with stride 2 on odd sizes pads the odd pixel at the bottom/right (uneven pads).
    "same-stride2-odd": ([conv(4, 4, stride=2, padding="same"), {"type": "ReLU"}, {"type": "Flatten"}, dense(5)],
                         (17, 13, 3)),
    "same-nonsquare": ([conv(3, (3, 4), stride=(1, 3), padding="same"), {"type": "Tanh"},
                        conv(4, 2, padding="same", bias=False), {"type": "Sigmoid"}, {"type": "Flatten"},
                        dense(3, bias=False)], (11, 9, 2)),
    "explicit-pads": ([conv(5, 3, stride=(2, 1), padding=(2, 1)), {"type": "LeakyReLU", "negative_slope": 0.2},
                       {"type": "MaxPool2D", "kernel_size": 3, "stride": 2}, {"type": "Flatten"}, dense(4)],
                      (15, 10, 1)),
    "overlapping-pools": ([conv(6, 3), {"type": "BatchNorm2D", "eps": 1e-3}, {"type": "ReLU"},
                           {"type": "MaxPool2D", "kernel_size": 3, "stride": 1},
                           {"type": "AvgPool2D", "kernel_size": (3, 2), "stride": (2, 1)},
                           {"type": "NotebookMaxPool2D", "kernel_size": 2}, {"type": "Flatten"},
                           {"type": "Dropout", "p": 0.5}, dense(7)], (12, 11, 3)),
    "global-avgpool": ([conv(8, 3, padding="same"), {"type": "BatchNorm2D"}, {"type": "LeakyReLU"},
                        {"type": "AvgPool2D", "kernel_size": 2}, {"type": "GlobalAvgPool2D"},
                        {"type": "BatchNorm1D", "eps": 0.01}, {"type": "Tanh"}, dense(6)], (9, 7, 3)),
    "dense-only": ([{"type": "Flatten"}, dense(16), {"type": "BatchNorm1D"}, {"type": "Sigmoid"},
                    {"type": "Dropout", "p": 0.1}, dense(3)], (6, 5, 2)),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_layer_and_geometry_gives_convnps_logits(name):
    rng = np.random.default_rng(1)
    descriptions, input_shape = NETWORKS[name]
    model = build_network(descriptions, input_shape, rng)
    randomise_batchnorm(model, rng)
    C = input_shape[-1]
    std = Standardize(1 / 255, rng.uniform(0.2, 0.6, C), rng.uniform(0.1, 0.4, C))
    pixels = rng.integers(0, 256, (37, *input_shape)).astype(np.float32)  # an odd batch: N is free
    logits, _ = run_onnx(to_onnx(model, standardize=std), pixels, batch_size=10)
    ours = model.forward(std(pixels))
    assert logits.shape == ours.shape
    assert relative_error(ours, logits) <= RELATIVE, name


def test_a_network_of_feature_vectors():
    # Input (N, F): no transposes, the preparation per feature.
    rng = np.random.default_rng(7)
    model = build_network([dense(8), {"type": "Tanh"}, dense(3)], (5,), rng)
    std = Standardize(1.0, rng.normal(0, 1, 5), rng.uniform(0.5, 2, 5))
    x = rng.normal(0, 3, (11, 5)).astype(np.float32)
    proto = to_onnx(model, standardize=std)
    assert [n.op_type for n in proto.graph.node] == ["Mul", "Sub", "Gemm", "Tanh", "Gemm", "Softmax"]
    assert relative_error(model.forward(std(x)), run_onnx(proto, x)[0]) <= RELATIVE


def test_same_padding_is_uneven_where_convnps_is():
    model = Sequential([Conv2D(1, 2, 4, stride=2, padding="same"), Flatten(), Dense(2 * 5 * 4, 3)], input_shape=(9, 8, 1))
    conv = next(n for n in to_onnx(model, raw=True).graph.node if n.op_type == "Conv")
    pads = next(a for a in conv.attribute if a.name == "pads").ints
    # H: ceil(9/2) = 5 outputs need (5-1)*2 + 4 - 9 = 3 pixels, 1 on top and 2 below; W: 8 -> 4 needs 2, 1 and 1.
    assert list(pads) == [1, 1, 2, 1]


def test_the_flatten_sees_channels_last_maps():
    # The graph goes back to (N, H, W, C) before flattening, so the dense layer's rows are convnp's own.
    model = Sequential([Conv2D(2, 3, 3), Flatten(), Dense(3 * 3 * 4, 2)], input_shape=(5, 6, 2))
    nodes = to_onnx(model, raw=True).graph.node
    ops = [n.op_type for n in nodes]
    assert ops == ["Transpose", "Conv", "Transpose", "Flatten", "Gemm", "Softmax"]
    assert [list(n.attribute[0].ints) for n in nodes if n.op_type == "Transpose"] == [[0, 3, 1, 2], [0, 2, 3, 1]]


def test_a_colour_model_of_another_size_and_class_count(tmp_path):
    rng = np.random.default_rng(2)
    model = get_model("best", rng=rng, input_shape=(32, 32, 3), num_classes=43)
    randomise_batchnorm(model, rng)
    std = Standardize(1 / 255, [0.5, 0.45, 0.4], [0.25, 0.2, 0.22])
    classes = [f"sign {i}" for i in range(43)]
    path = save_checkpoint(tmp_path / "signs.npz", model, meta={"preprocessing": std.to_dict(), "classes": classes})
    proto = to_onnx(path)
    pixels = rng.integers(0, 256, (50, 32, 32, 3)).astype(np.float32)
    logits, probabilities = run_onnx(proto, pixels)
    assert logits.shape == probabilities.shape == (50, 43)
    assert relative_error(model.forward(std(pixels)), logits) <= RELATIVE
    assert json.loads(props(proto)[metadata.CLASSES]) == classes


def test_a_float64_model_exports_as_float32():
    rng = np.random.default_rng(3)
    model = get_model("lenet5", rng=rng, dtype=np.float64)
    std = Standardize(1 / 255, [0.13], [0.31])
    pixels = rng.integers(0, 256, (20, 28, 28, 1)).astype(np.float32)
    logits, _ = run_onnx(to_onnx(model, standardize=std), pixels)
    assert logits.dtype == np.float32
    assert relative_error(model.forward(std(pixels, np.float64)), logits) <= RELATIVE


# ---- --raw, metadata, opsets, checker -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """An untrained notebook model with a preparation, class names and a model name, saved once."""
    rng = np.random.default_rng(4)
    model = get_model("notebook", rng=rng)
    std = Standardize(1 / 255, [0.1307], [0.3081])
    path = tmp_path_factory.mktemp("onnx") / "digits.npz"
    meta = {"preprocessing": std.to_dict(), "model_name": "notebook", "classes": [f"digit {i}" for i in range(10)]}
    return save_checkpoint(path, model, meta=meta)


def test_the_preparation_is_in_the_graph_and_raw_leaves_it_out(small_checkpoint):
    checkpoint = load_checkpoint(small_checkpoint)
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (9, 28, 28, 1)).astype(np.float32)
    standardized = checkpoint.prepare(pixels)
    ours = checkpoint.model.forward(standardized)
    full, raw = to_onnx(small_checkpoint), to_onnx(small_checkpoint, raw=True)
    assert [i.name for i in full.graph.input] == [metadata.INPUT_PIXELS]
    assert [i.name for i in raw.graph.input] == [metadata.INPUT_STANDARDIZED]
    assert [n.op_type for n in full.graph.node][:2] == ["Mul", "Sub"]
    assert "Mul" not in [n.op_type for n in raw.graph.node]
    assert relative_error(ours, run_onnx(full, pixels)[0]) <= RELATIVE
    assert relative_error(ours, run_onnx(raw, standardized)[0]) <= RELATIVE
    # The preparation itself is the same float32 arithmetic: after it the graph's tensor is convnp's bit for bit.
    prepared = onnx.helper.make_tensor_value_info("preprocessing.standardized", onnx.TensorProto.FLOAT, None)
    full.graph.output.append(prepared)
    (out,) = session(full).run(["preprocessing.standardized"], {"pixels": pixels})
    np.testing.assert_array_equal(out, standardized)


def test_the_metadata_names_classes_version_input_and_preparation(small_checkpoint):
    proto = to_onnx(small_checkpoint)
    meta = props(proto)
    assert meta[metadata.VERSION] == __version__ and proto.producer_version == __version__
    assert proto.producer_name == "convnp"
    assert json.loads(meta[metadata.CLASSES]) == [f"digit {i}" for i in range(10)]
    assert metadata.read_classes(meta, 10) == [f"digit {i}" for i in range(10)]
    assert "0..255" in meta[metadata.INPUT] and "(N, 28, 28, 1)" in meta[metadata.INPUT]
    assert meta[metadata.INPUT_LAYOUT] == "NHWC" and meta[metadata.MODEL_NAME] == "notebook"
    assert metadata.read_standardize(meta, 1).to_dict() == load_checkpoint(small_checkpoint).standardize.to_dict()
    assert metadata.read_in_graph(meta) is True
    assert metadata.read_in_graph(props(to_onnx(small_checkpoint, raw=True))) is False
    assert json.loads(meta[metadata.ARCHITECTURE]) == load_checkpoint(small_checkpoint).model.get_config()
    # Tensor names follow the state_dict; the batch dimension is symbolic.
    assert {"0.weight", "0.bias", "4.weight", "4.bias"} <= {t.name for t in proto.graph.initializer}
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 28, 28, 1]


@pytest.mark.parametrize("opset", [MIN_OPSET, 17, onnx.defs.onnx_opset_version()])
def test_each_opset_passes_the_full_check_and_runs(small_checkpoint, opset):
    proto = to_onnx(small_checkpoint, opset=opset)
    assert [o.version for o in proto.opset_import] == [opset]
    onnx.checker.check_model(proto, full_check=True)
    pixels = np.random.default_rng(6).integers(0, 256, (3, 28, 28, 1)).astype(np.float32)
    checkpoint = load_checkpoint(small_checkpoint)
    assert relative_error(checkpoint.model.forward(checkpoint.prepare(pixels)), run_onnx(proto, pixels)[0]) <= RELATIVE


def test_export_writes_a_file_that_loads_and_checks(small_checkpoint, tmp_path):
    path = export(small_checkpoint, tmp_path / "digits.onnx")
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.SerializeToString() == to_onnx(small_checkpoint).SerializeToString()


# ---- refusals ----------------------------------------------------------------------------------------------------
class Square(Layer):
    """A layer convnp has no ONNX form for."""

    input_ndim = None

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def _forward(self, x, training):
        return x * x, x


class LoudReLU(ReLU):
    """A subclass may compute something else, so it is refused rather than exported as its parent."""


@pytest.mark.parametrize("layer, name", [(Square(), "Square"), (LoudReLU(), "LoudReLU")])
def test_a_layer_without_an_onnx_form_is_named_in_one_line(layer, name):
    model = Sequential([Flatten(), layer, Dense(16, 2)], input_shape=(4, 4, 1))
    with pytest.raises(OnnxError, match=rf"^export: layer 1 \({name}\) has no ONNX form; convnp exports AvgPool2D, ") as err:
        to_onnx(model, raw=True)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({}, r"a Sequential carries no input preparation"),
    ({"raw": True, "opset": 12}, r"opset must be an int from 13 to \d+"),
    ({"raw": True, "opset": "17"}, r"opset must be an int"),
    ({"raw": True, "classes": ["a", "b"]}, r"classes must name the model's 3 classes, got 2"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    model = Sequential([Flatten(), Dense(4, 3)], input_shape=(2, 2, 1))
    with pytest.raises(OnnxError, match=message):
        to_onnx(model, **kwargs)


def test_networks_it_cannot_express_are_refused():
    with pytest.raises(OnnxError, match=r"output must be \(N, K\) logits, got \(N, 4, 4, 2\)"):
        to_onnx(Sequential([Conv2D(1, 2, 3)], input_shape=(6, 6, 1)), raw=True)
    with pytest.raises(OnnxError, match=r"the model has no input_shape"):
        to_onnx(Sequential([Flatten(), Dense(4, 3)]), raw=True)
    with pytest.raises(TypeError, match=r"expected a Sequential, a Checkpoint or a checkpoint's path, got int"):
        to_onnx(3)


@pytest.mark.parametrize("key, value, message", [
    (metadata.CLASSES, "[1, 2]", "expected a JSON list of 2 class names"),
    (metadata.CLASSES, "not json", "is not valid JSON"),
    (metadata.CLASSES, "[" * 100_000 + "]" * 100_000, "is not valid JSON"),
    (metadata.PREPROCESSING, '{"scale": 1, "mean": [0], "std": [0]}', "expected"),
    (metadata.PREPROCESSING, '{"scale": -1, "mean": [0], "std": [1]}', "expected"),
    (metadata.PREPROCESSING, '{"scale": 1, "mean": [0, 1], "std": [1, 1]}', "expected"),
    (metadata.PREPROCESSING, '{"scale": 1, "mean": [NaN], "std": [1]}', "expected"),
    (metadata.PREPROCESSING, " " * (metadata.MAX_VALUE_CHARS + 1), "at most"),
    (metadata.PREPROCESSING_IN_GRAPH, "yes", "expected 'true' or 'false'"),
])
def test_the_metadata_readers_refuse_bad_values(key, value, message):
    read = {metadata.CLASSES: lambda p: metadata.read_classes(p, 2),
            metadata.PREPROCESSING: lambda p: metadata.read_standardize(p, 1),
            metadata.PREPROCESSING_IN_GRAPH: metadata.read_in_graph}[key]
    with pytest.raises(OnnxError, match=message):
        read({key: value})
    assert read({}) is None


# ---- the command line ----------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("CONVNP_DEBUG", raising=False)


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convnp: error: "), captured.err
    assert captured.out == ""
    return lines[0]


def test_convnp_export_writes_the_file(small_checkpoint, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "best.npz").write_bytes(small_checkpoint.read_bytes())  # a run folder exports its best.npz
    out = tmp_path / "digits.onnx"
    assert main(["export", str(run_dir), str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{out}: opset 17, 10 nodes, ")
    assert lines[1] == "input pixels float32 (N, 28, 28, 1) -> logits, probabilities (N, 10)"
    assert onnx.load(str(out)).SerializeToString() == to_onnx(small_checkpoint).SerializeToString()

    assert main(["export", str(small_checkpoint), str(out), "--raw", "--opset", "13"]) == 0
    assert "input standardized float32" in capsys.readouterr().out
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version == 13 and proto.graph.input[0].name == "standardized"


def test_convnp_export_refuses_an_unexportable_layer_in_one_line(tmp_path, capsys, monkeypatch):
    # Every layer convnp saves today has an ONNX form; one added without it must fail this way.
    monkeypatch.setitem(LAYERS, "Square", Square)
    path = save_checkpoint(tmp_path / "square.npz", Sequential([Flatten(), Square(), Dense(16, 2)], input_shape=(4, 4, 1)))
    out = tmp_path / "square.onnx"
    assert main(["export", str(path), str(out)]) == 1
    assert "layer 1 (Square) has no ONNX form" in _one_error_line(capsys)
    assert not out.exists()


def test_convnp_export_without_the_onnx_package_says_how_to_install_it(small_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError, as where it is missing
    assert main(["export", str(small_checkpoint), str(tmp_path / "x.onnx")]) == 1
    assert "pip install 'convnp[onnx]'" in _one_error_line(capsys)


@pytest.mark.parametrize("case, message", [
    ("missing", "no such checkpoint file"),
    ("not-a-checkpoint", "is not a convnp checkpoint"),
    ("no-folder", "does not exist"),
    ("opset", "opset must be an int from 13"),
])
def test_convnp_export_refusals_are_one_line(small_checkpoint, tmp_path, capsys, case, message):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    checkpoint = {"missing": tmp_path / "nope.npz", "not-a-checkpoint": junk}.get(case, small_checkpoint)
    out = tmp_path / "no-such-folder" / "x.onnx" if case == "no-folder" else tmp_path / "x.onnx"
    extra = ["--opset", "99"] if case == "opset" else []
    assert main(["export", str(checkpoint), str(out), *extra]) == 1
    assert message in _one_error_line(capsys)
    assert not out.exists()
