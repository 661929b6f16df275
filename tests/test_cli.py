"""The command line, driven through ``main([...])`` and once as a real process."""

import subprocess
import sys
from pathlib import Path

import pytest

import convnp
from convnp.cli.main import main


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
        (["train", "--model", "resnet"], "invalid choice"),
        (["gradcheck", "--tolerance", "abc"], "expected a positive finite number"),
    ],
)
def test_bad_options_exit_2_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert pytest.importorskip("re").search(message, capsys.readouterr().err)


def test_known_errors_print_one_line_and_exit_1(capsys, monkeypatch, tmp_path):
    import convnp.train.run as train_run_module
    from convnp.errors import DataNotFoundError

    def fail(*args, **kwargs):
        raise DataNotFoundError("MNIST not found: tried the cache, the mirrors")

    monkeypatch.setattr(train_run_module, "load_dataset", fail)
    monkeypatch.delenv("CONVNP_DEBUG", raising=False)
    assert main(["train", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("convnp: error: MNIST not found")
    assert "Traceback" not in "".join(err)


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
