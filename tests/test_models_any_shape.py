"""Networks for any images: the zoo at any input shape and class count, and architecture files (models/spec.py)."""

import hashlib
import json

import numpy as np
import pytest

from convnp.checkpoint import load_checkpoint
from convnp.cli.main import main
from convnp.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout
from convnp.losses import SoftmaxCrossEntropy
from convnp.models import MODELS, build_model, get_model
from convnp.models.spec import build_network, read_architecture, smallest_side
from convnp.optim import SGD

NAMES = list(MODELS)

# sha256 of each zoo model at its defaults, seed 0 (get_model(name, rng=np.random.default_rng(0))), computed by
# _fingerprint below from the code as it was BEFORE the builders took input_shape and num_classes (commit 89a6981):
# the defaults must keep giving those networks bit for bit (weights, Dropout Generators, architecture).
FINGERPRINTS = {
    "notebook": "a967f3d1e7fe659a6a3f8718d8c31471de9eb85d16eec90ec6288f97d8a20540",
    "sprint": "a13681719d6cb353b8630df13c5ff155897de71b5ed472365f849292978e813c",
    "lenet5": "8c8037542b063209d49910b8a6b8e513148599ba2de781185e000337633f5398",
    "convnet": "270be4c8fd815e320ccd49dd8db9c098ec05f58ce083cbd53d45c994512c1de1",
    "best": "d925323915b127776f207d6a16c0989d00ba474881b390d9c261ce004692c562",
}
# The same, for the variants: notebook(init="notebook"), notebook's NotebookMaxPool2D, best in float64 (seed 0).
FINGERPRINT_NOTEBOOK_INIT = "b2fadd8eb47aa99a7aa83646146b4426ee4d0c91c7bff882bbc2ee1196200279"
FINGERPRINT_NOTEBOOK_MAXPOOL = "a1e8dc3e1ce4fb89d155283189896c6fdc603bcab8d7e46b7e3510e6e7bbf1e3"
FINGERPRINT_BEST_FLOAT64 = "588ab44bf5bbe81478d69698484d5553543a1030c9d43b7b4cb49f7ea612313a"

# The smallest square image each zoo model takes (worked out by hand from its kernels and pools).
SMALLEST = {"notebook": 4, "sprint": 2, "lenet5": 12, "convnet": 6, "best": 4}

NET = [
    {"type": "Conv2D", "out_channels": 4, "kernel_size": 3, "padding": "same"},
    {"type": "BatchNorm2D"},
    {"type": "ReLU"},
    {"type": "MaxPool2D", "kernel_size": 2},
    {"type": "Flatten"},
    {"type": "Dropout", "p": 0.25},
    {"type": "Dense", "out_features": 3},
]


def _fingerprint(model) -> str:
    """sha256 over the sorted state_dict (name, dtype, shape, bytes), the Dropout Generators' states, the config."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(str(value.dtype).encode())
        digest.update(str(value.shape).encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    digest.update(json.dumps(model.rng_states(), sort_keys=True).encode())
    digest.update(json.dumps(model.get_config(), sort_keys=True).encode())
    return digest.hexdigest()


# ---- the zoo at any shape ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_todays_networks_bit_for_bit(name):
    assert _fingerprint(get_model(name, rng=np.random.default_rng(0))) == FINGERPRINTS[name]
    explicit = get_model(name, rng=np.random.default_rng(0), input_shape=(28, 28, 1), num_classes=10)
    assert _fingerprint(explicit) == FINGERPRINTS[name]


def test_variants_are_todays_networks_bit_for_bit():
    assert _fingerprint(get_model("notebook", init="notebook")) == FINGERPRINT_NOTEBOOK_INIT
    maxpool = get_model("notebook", rng=np.random.default_rng(0), notebook_maxpool=True)
    assert _fingerprint(maxpool) == FINGERPRINT_NOTEBOOK_MAXPOOL
    assert _fingerprint(get_model("best", rng=np.random.default_rng(0), dtype=np.float64)) == FINGERPRINT_BEST_FLOAT64


@pytest.mark.parametrize("name", NAMES)
def test_every_zoo_model_takes_colour_images_and_any_class_count_and_trains(name):
    model = get_model(name, input_shape=(32, 32, 3), num_classes=7, rng=np.random.default_rng(0))
    assert model.input_shape == (32, 32, 3) and model.shapes()[-1] == (7,)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    y = np.array([0, 6, 3, 1])
    loss = SoftmaxCrossEntropy()
    before = {k: v.copy() for k, v in model.parameters().items()}
    logits = model.forward(x, training=True)
    assert logits.shape == (4, 7) and np.isfinite(logits).all()
    first = loss.forward(logits, y)
    model.backward(loss.backward(), input_grad=False)
    SGD(0.01).step(model.parameters(), model.gradients())
    after = model.parameters()
    assert all(np.isfinite(v).all() for v in after.values())
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert np.isfinite(first)


def test_the_first_dense_layer_follows_from_the_image_size():
    model = get_model("sprint", input_shape=(20, 12, 2), num_classes=5, rng=np.random.default_rng(0))
    dense = [layer for layer in model if isinstance(layer, Dense)]
    assert dense[0].in_features == 10 * 6 * 16 and dense[-1].out_features == 5
    assert model[0].in_channels == 2


@pytest.mark.parametrize("name", NAMES)
def test_an_image_too_small_is_one_error_with_the_smallest_size(name):
    side = SMALLEST[name]
    get_model(name, input_shape=(side, side, 3), num_classes=2, rng=np.random.default_rng(0))  # fits
    for shape in [(side - 1, side - 1, 3), (40, side - 1, 1)]:
        if min(shape[:2]) < 1:
            continue
        with pytest.raises(ValueError) as err:
            get_model(name, input_shape=shape, num_classes=2, rng=np.random.default_rng(0))
        message = str(err.value)
        assert message == (f"model {name!r} cannot take input of shape {shape} (H, W, C): its kernels and pools "
                           f"need images of at least {side}x{side} pixels")
        assert "\n" not in message


def test_the_smallest_size_is_searched_not_written_down():
    layers = [{"type": "Conv2D", "out_channels": 2, "kernel_size": 5}, {"type": "MaxPool2D", "kernel_size": 3},
              {"type": "Conv2D", "out_channels": 2, "kernel_size": 2, "stride": 2}, {"type": "Flatten"},
              {"type": "Dense", "out_features": 2}]
    # By hand: the 2x2 kernel needs a 2x2 pool output, so (s - 4 - 3) // 3 + 1 >= 2, s >= 10.
    assert smallest_side(layers, channels=1) == 10
    build_network(layers, (10, 10, 1), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"need images of at least 10x10 pixels"):
        build_network(layers, (9, 30, 1), np.random.default_rng(0), name="mine")
    assert smallest_side([{"type": "Dense", "out_features": 2}], channels=1) is None  # no size fits: no Flatten


def test_notebook_weights_only_at_the_notebook_shape():
    with pytest.raises(ValueError, match="init='notebook' loads the notebook's own weights"):
        get_model("notebook", init="notebook", input_shape=(32, 32, 3))


# ---- layer descriptions and architecture files --------------------------------------------------------------------
def test_counts_are_inferred_from_the_input():
    model = build_network(NET, (8, 8, 5), np.random.default_rng(0), num_classes=3)
    conv, bn, dense = model[0], model[1], model[6]
    assert isinstance(conv, Conv2D) and conv.in_channels == 5
    assert isinstance(bn, BatchNorm2D) and bn.num_features == 4
    assert isinstance(dense, Dense) and dense.in_features == 4 * 4 * 4 and dense.out_features == 3
    assert isinstance(model[5], Dropout) and model.shapes()[-1] == (3,)
    flat = build_network([{"type": "Flatten"}, {"type": "Dense", "out_features": 6, "bias": False},
                          {"type": "BatchNorm1D"}, {"type": "Dense", "out_features": 2}], (3, 3, 1))
    assert isinstance(flat[2], BatchNorm1D) and flat[2].num_features == 6 and flat[1].in_features == 9


def test_the_same_seed_gives_the_same_network_and_dropout_its_own_generator():
    rng = np.random.default_rng(3)
    a = build_network(NET, (8, 8, 1), rng)
    b = build_network(NET, (8, 8, 1), np.random.default_rng(3))
    assert _fingerprint(a) == _fingerprint(b)
    assert a[5].rng is not rng
    c = build_network(NET, (8, 8, 1), np.random.default_rng(4))
    assert _fingerprint(a) != _fingerprint(c)


@pytest.mark.parametrize(
    "layers, message",
    [
        ([{"type": "Conv"}],
         "net: layer 0 has unknown type 'Conv'; allowed: AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D,"),
        ([{"out_channels": 3}], "net: layer 0 has unknown type None; allowed: "),
        ([{"type": "MaxPool2D", "size": 2}], "net: layer 0 (MaxPool2D) has unknown argument(s) size; allowed: "
                                             "kernel_size, stride"),
        ([{"type": "Dense", "out_features": 2, "rng": 1}], "net: layer 0 (Dense) has unknown argument(s) rng; allowed: "
                                                           "in_features, out_features, bias, weight_init"),
        ([{"type": "Flatten"}, {"type": "Dense", "out_features": 10}],
         "net: the last Dense has out_features=10, but there are 3 classes; set it to 3"),
        ([{"type": "Conv2D", "out_channels": 3, "kernel_size": 1}],
         "net: the network ends in outputs of shape (N, 8, 8, 3), but a classifier of 3 classes must end in (N, 3)"),
        ([{"type": "Dense", "out_features": 3}], "net: layer 0 (Dense) cannot take input of shape (8, 8, 1): it takes "
                                                 "(F,) feature vectors; put a Flatten (or GlobalAvgPool2D) before it"),
        ([{"type": "Conv2D", "in_channels": 3, "out_channels": 3, "kernel_size": 1}],
         "net: layer 0 (Conv2D): in_channels=3 was given, but its input of shape (8, 8, 1) has 1"),
        ([{"type": "Conv2D", "out_channels": 3, "kernel_size": 0}], "net: layer 0 (Conv2D): Conv2D: kernel_size"),
        ([{"type": "Flatten"}, {"type": "Dense", "out_features": 10**13}],
         "net: layer 1 (Dense) is too large for this machine's memory: Unable to allocate"),
        ([], "net: expected a non-empty list of layers, each an object {\"type\": ..., ...}, got an empty list"),
        ({"type": "ReLU"},
         "net: expected a non-empty list of layers, each an object {\"type\": ..., ...}, got dict"),
        ([{"type": "ReLU"}, "Flatten"],
         "net: expected a non-empty list of layers, each an object {\"type\": ..., ...}, got layer 1 as str 'Flatten'"),
    ],
)
def test_a_bad_description_is_one_line_naming_it(layers, message):
    with pytest.raises(ValueError) as err:
        build_network(layers, (8, 8, 1), np.random.default_rng(0), num_classes=3, name="net")
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_read_architecture_refuses_what_is_not_a_list_of_layers(tmp_path):
    good = tmp_path / "net.json"
    good.write_text(json.dumps(NET))
    assert read_architecture(good) == NET
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"type\": \"ReLU\"},]")
    with pytest.raises(ValueError, match=r"^bad.json: not valid JSON: .*\(line 1, column"):
        read_architecture(bad)
    with pytest.raises(FileNotFoundError, match="architecture file .*missing.json not found"):
        read_architecture(tmp_path / "missing.json")
    model = build_model(str(good), input_shape=(6, 6, 2), num_classes=3, rng=np.random.default_rng(0))
    assert model.input_shape == (6, 6, 2) and model[0].in_channels == 2


# ---- the command line ----------------------------------------------------------------------------------------------
def _grey_npz(path, side=8, classes=3, n=60):
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = rng.integers(0, 60, (n, side, side), dtype=np.uint8)
    x[np.arange(n), y, :] = 250  # class k: a bright row k, so the network has something to learn
    np.savez(path, x=x, y=y, x_test=x[:15], y_test=y[:15])
    return path


def test_train_with_an_architecture_file_then_evaluate_and_resume_without_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _grey_npz(tmp_path / "grey8.npz")
    (tmp_path / "net.json").write_text(json.dumps(NET))
    run = tmp_path / "run"
    common = ["--threads", "1", "--no-report", "--batch-size", "16"]
    assert main(["train", "--model", "net.json", "--data", str(data), "--epochs", "1", *common, "--out", str(run)]) == 0
    checkpoint = load_checkpoint(run / "last.npz")
    model = checkpoint.model
    assert model.input_shape == (8, 8, 1) and model.shapes()[-1] == (3,) and model[0].in_channels == 1
    assert [layer["class"] for layer in model.get_config()["layers"]] == [spec["type"] for spec in NET]
    (tmp_path / "net.json").unlink()  # the checkpoint keeps the architecture
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(data)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert load_checkpoint(run / "last.npz").meta["epoch"] == 2


def test_a_run_of_an_architecture_file_is_named_after_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = _grey_npz(tmp_path / "grey8.npz")
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "small.json").write_text(json.dumps(NET))
    assert main(["train", "--model", "nets/small.json", "--data", str(data), "--epochs", "1", "--threads", "1",
                 "--no-report"]) == 0
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("small-") and (runs[0] / "last.npz").exists()


def test_train_a_zoo_model_on_colour_images_of_five_classes(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(40) % 5
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", x=x, y=y)
    run = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "rgb.npz"), "--model", "sprint", "--epochs", "1", "--threads", "1",
            "--no-report", "--out", str(run)]
    assert main(argv) == 0
    model = load_checkpoint(run / "last.npz").model
    assert model.input_shape == (32, 32, 3) and model.shapes()[-1] == (5,)


def test_train_refuses_a_file_whose_last_dense_disagrees_with_the_data(tmp_path, capsys):
    data = _grey_npz(tmp_path / "grey8.npz", classes=4)
    net = tmp_path / "net.json"
    net.write_text(json.dumps(NET))
    assert main(["train", "--model", str(net), "--data", str(data), "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err.strip() == (
        "convnp: error: net.json: the last Dense has out_features=3, but there are 4 classes; set it to 4"
    )
    tiny = _grey_npz(tmp_path / "tiny.npz", side=3, classes=3)
    assert main(["train", "--model", "lenet5", "--data", str(tiny), "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err.strip() == (
        "convnp: error: model 'lenet5' cannot take input of shape (3, 3, 1) (H, W, C): its kernels and pools need "
        "images of at least 12x12 pixels"
    )


def test_train_refuses_a_model_that_is_neither_a_name_nor_a_json_file(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--model", "vgg"])
    assert stop.value.code == 2
    assert "expected one of notebook, sprint, lenet5, convnet, best or an architecture file PATH.json, got 'vgg'" in (
        capsys.readouterr().err
    )


def test_models_describes_an_architecture_file_at_a_shape(tmp_path, capsys):
    net = tmp_path / "net.json"
    net.write_text(json.dumps(NET))
    assert main(["models", str(net), "--input-shape", "32", "32", "3"]) == 0
    out = capsys.readouterr().out
    # conv 3*3*3*4 + 4 = 112; BatchNorm 2 * 4 = 8; dense 16*16*4*3 + 3 = 3,075
    assert "total parameters: 3,195" in out
    assert "Conv2D(in_channels=3, out_channels=4" in out and "(N, 16, 16, 4)" in out
    assert "MFLOP per image" in out and "recommended training" not in out
    assert main(["models", str(net), "--input-shape", "32", "32", "3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 3_195 and info["config"]["input_shape"] == [32, 32, 3]
    assert sum(r["train"] for r in info["flops_by_layer"]) == info["train_flops"]
    assert main(["models", str(net), "--num-classes", "5"]) == 1
    assert "the last Dense has out_features=3, but there are 5 classes" in capsys.readouterr().err


def test_models_shows_a_zoo_model_at_a_shape(capsys):
    assert main(["models", "best", "--input-shape", "32", "32", "3", "--num-classes", "43"]) == 0
    out = capsys.readouterr().out
    assert "Dense(in_features=2048, out_features=128" in out and "(N, 43)" in out
    assert "total parameters: 284,699" in out and "recommended training" in out
    assert main(["models", "lenet5", "--input-shape", "8", "8", "1"]) == 1
    assert "need images of at least 12x12 pixels" in capsys.readouterr().err
