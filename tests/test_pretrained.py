"""The pretrained models shipped in the package: every file as the manifest's sha256 says, each model's accuracy on
the 10,000 MNIST test images measured again here (inference only), and the name accepted wherever a checkpoint is:
the library, evaluate, predict, export, plot, serve, models; a real path of the same name wins; a wheel carries them.
"""

import hashlib
import io
import json
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import convnp
from convnp import pretrained
from convnp.checkpoint import load_checkpoint
from convnp.cli.main import main
from convnp.errors import CheckpointError
from convnp.inference import Classifier

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("mnist-best", "mnist-notebook")
#: The accuracy the issue asks of mnist-best (the best recipe's, benchmarks/ZOO.md).
BEST_AT_LEAST = 0.996


def test_the_manifest_names_both_models_and_the_command_that_made_each():
    assert pretrained.names() == NAMES
    assert pretrained.info("mnist-best")["command"] == "convnp train --model best --seed 1"
    assert pretrained.info("mnist-notebook")["command"] == "convnp train --model notebook --seed 1"
    for name in NAMES:
        entry = pretrained.info(name)
        assert entry["test_images"] == 10_000 and entry["machine"] and entry["trained"]
        # The script that remakes them names the same command.
        assert entry["command"] in (ROOT / "scripts" / "make_pretrained.py").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_every_bundled_file_has_the_manifests_sha256(name):
    folder = pretrained.folder(name)
    files = pretrained.info(name)["files"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # nothing missing, nothing extra
    for file, digest in files.items():
        assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest, file


@pytest.mark.parametrize("name", NAMES)
def test_a_bundled_checkpoint_is_small_and_holds_no_optimizer_state(name):
    path = pretrained.folder(name) / "last.npz"
    checkpoint = load_checkpoint(name)
    assert checkpoint.path == path and checkpoint.optimizer_arrays == {} and checkpoint.optimizer() is None
    n_bytes = sum(a.nbytes for a in checkpoint.model.state_dict().values())
    assert path.stat().st_size < n_bytes + 64_000  # the weights (float32) and the JSON, nothing else
    assert checkpoint.model.n_params == pretrained.info(name)["params"]


@pytest.mark.mnist
@pytest.mark.parametrize("name", NAMES)
def test_each_model_has_its_manifests_test_accuracy(name, mnist):
    x_test, y_test = mnist[2], mnist[3]
    predicted = Classifier.from_checkpoint(name).predict(x_test[..., None])  # (N,) from (N, 28, 28, 1) uint8
    accuracy = float(np.mean(predicted == y_test))
    # Another BLAS may round a near-tie the other way: two images of 10,000 either side.
    assert abs(accuracy - pretrained.info(name)["test_accuracy"]) <= 2e-4, accuracy
    if name == "mnist-best":
        assert accuracy >= BEST_AT_LEAST, accuracy


def test_the_library_loads_one_by_name_and_refuses_an_unknown_one():
    checkpoint = convnp.load_pretrained("mnist-notebook")
    assert checkpoint.meta["model_name"] == "notebook" and checkpoint.model.input_shape == (28, 28, 1)
    with pytest.raises(CheckpointError, match=r"unknown pretrained model 'mnist'; expected one of mnist-best, "):
        convnp.load_pretrained("mnist")
    with pytest.raises(CheckpointError, match=r"mnist-bst: no such checkpoint file \(nor a pretrained model: mnist-b"):
        load_checkpoint("mnist-bst")


@pytest.mark.mnist
def test_a_pretrained_model_fine_tunes(mnist):
    """The shipped weights train on: a few steps on digits it gets wrong lower their loss."""
    from convnp.losses import SoftmaxCrossEntropy
    from convnp.optim import SGD
    from convnp.train import fit

    checkpoint = convnp.load_pretrained("mnist-notebook")
    x, y = mnist[0][:2000, ..., None], mnist[1][:2000].astype(np.int64)  # (N, 28, 28, 1)
    inputs = checkpoint.prepare(x)
    wrong = checkpoint.model.predict(inputs).argmax(axis=1) != y
    before = SoftmaxCrossEntropy().forward(checkpoint.model.predict(inputs[wrong]), y[wrong])
    fit(checkpoint.model, inputs[wrong], y[wrong], optimizer=SGD(0.01), epochs=3, batch_size=8,
        rng=np.random.default_rng(0))
    after = SoftmaxCrossEntropy().forward(checkpoint.model.predict(inputs[wrong]), y[wrong])
    assert after < before, (before, after)


@pytest.mark.mnist
def test_train_fine_tunes_a_pretrained_model_by_name(tmp_path, capsys):
    """``convnp train --init mnist-notebook``: the run starts from the shipped weights (98% before its first step, where
    new weights give 10%) and writes its own folder, leaving the package's untouched."""
    out = tmp_path / "fine-tuned"
    assert main(["train", "--init", "mnist-notebook", "--epochs", "1", "--limit", "1000", "--lr", "0.001",
                 "--out", str(out), "--no-report"]) == 0
    assert "fine-tuning mnist-notebook" in capsys.readouterr().out
    history = (out / "metrics.csv").read_text().splitlines()
    accuracy = float(history[1].split(",")[history[0].split(",").index("accuracy")])
    assert accuracy > 0.95, accuracy  # the first epoch's running accuracy on its training images
    assert load_checkpoint(out).meta["model_name"] == "notebook"
    files = pretrained.info("mnist-notebook")["files"]
    assert sorted(p.name for p in pretrained.folder("mnist-notebook").iterdir()) == sorted(files)


def test_without_the_manifest_paths_still_load(digits_checkpoint, monkeypatch):
    monkeypatch.setattr(pretrained, "MANIFEST", pretrained.MANIFEST.with_name("absent.json"))
    assert pretrained.names() == ()
    assert load_checkpoint(digits_checkpoint).path == digits_checkpoint
    with pytest.raises(CheckpointError, match=r"^mnist-best: no such checkpoint file$"):
        load_checkpoint("mnist-best")


def test_a_real_path_of_the_same_name_wins(digits_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist-best").mkdir()
    shutil.copy(digits_checkpoint, tmp_path / "mnist-best" / "best.npz")
    assert load_checkpoint("mnist-best").path == Path("mnist-best/best.npz")
    assert pretrained.resolve("mnist-notebook") == pretrained.folder("mnist-notebook")  # no such folder here


@pytest.mark.mnist
def test_evaluate_and_predict_take_a_name(mnist, tmp_path, capsys):
    from PIL import Image

    assert main(["evaluate", "mnist-notebook", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(pretrained.info("mnist-notebook")["test_accuracy"], abs=2e-4)
    digits = mnist[2][:4]  # (4, 28, 28) uint8
    files = []
    for k, digit in enumerate(digits):
        files.append(str(tmp_path / f"digit{k}.png"))
        Image.fromarray(digit).save(files[-1])
    assert main(["predict", "mnist-best", *files, "--json"]) == 0
    labels = [r["label"] for r in json.loads(capsys.readouterr().out)]
    assert labels == Classifier.from_checkpoint("mnist-best").predict(digits[..., None]).tolist()


def test_export_takes_a_name(tmp_path, capsys):
    pytest.importorskip("onnx")
    import onnx

    assert main(["export", "mnist-notebook", str(tmp_path / "notebook.onnx")]) == 0
    graph = onnx.load(str(tmp_path / "notebook.onnx")).graph
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    conv = load_checkpoint("mnist-notebook").model[0].params["weight"]  # (kH, kW, C_in, C_out)
    assert any(w.shape == (8, 1, 3, 3) and np.array_equal(w, conv.transpose(3, 2, 0, 1)) for w in weights.values())


@pytest.mark.mnist
def test_plot_takes_a_name_and_writes_beside_the_caller(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "mnist-notebook"]) == 0
    report = tmp_path / "mnist-notebook-report" / "report.html"
    assert report.is_file() and "data:image/png;base64," in report.read_text()
    assert sorted(p.name for p in pretrained.folder("mnist-notebook").iterdir()) == sorted(
        pretrained.info("mnist-notebook")["files"])  # nothing written into the package


def test_serve_takes_a_name(monkeypatch, capsys):
    pytest.importorskip("fastapi")
    pytest.importorskip("python_multipart")
    pytest.importorskip("httpx")
    import uvicorn

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient
    served = {}

    def run(server, sockets):  # instead of serving forever: ask the app it was given what it serves
        with TestClient(server.config.app) as client:
            served.update(client.get("/api/health").json())

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert main(["serve", "mnist-best", "--port", "0"]) == 0
    assert capsys.readouterr().out.startswith("convnp: serving mnist-best on http://127.0.0.1:")
    assert served["model"] == "best" and served["kind"] == "digits"
    assert served["parameters"] == pretrained.info("mnist-best")["params"]


def test_models_lists_them_with_accuracy_and_command(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        entry = pretrained.info(name)
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{entry['test_accuracy']:.2%}" in line and line.endswith(entry["command"])
    assert main(["models", "mnist-best"]) == 0
    out = capsys.readouterr().out
    assert "convnp train --model best --seed 1" in out and "total parameters: 218,714" in out
    assert main(["models", "--pretrained", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {name: pretrained.info(name) for name in NAMES}


@pytest.mark.timeout(600)
def test_a_wheel_carries_the_pretrained_models(tmp_path):
    """Built from a copy of the source (pip builds in place), the wheel holds every bundled file. The build backend
    comes from PyPI, as pip fetches it for any user (the venv's own setuptools may predate bdist_wheel)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for file in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / file, source / file)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
                    "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True)
    wheel, = (tmp_path / "dist").glob("convnp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = json.load(io.BytesIO(archive.read("convnp/pretrained/manifest.json")))
    assert manifest == pretrained.manifest()
    for name in NAMES:
        for file in pretrained.info(name)["files"]:
            assert f"convnp/pretrained/{name}/{file}" in names


def test_the_manifest_is_valid_json_with_sha256_digests():
    data = json.loads(pretrained.MANIFEST.read_text())
    assert data["format"] == "convnp-pretrained" and data["format_version"] == 1
    for entry in data["models"].values():
        assert all(len(d) == 64 and int(d, 16) >= 0 for d in entry["files"].values())

