"""Hostile and broken input at the command line: each case prints one line on stderr and exits 1, with no
traceback and nothing else changed (no file written or removed, the input left as it was). A checkpoint or data
file holding a pickled object is refused without ever being unpickled.

The library-level errors behind these lines are tested where they are raised: test_checkpoint.py (checkpoints),
test_data_npz.py (.npz data), test_data_idx.py and test_data_mnist.py (IDX files: truncated, wrong magic numbers,
labels out of range, label files whose length disagrees with the images; test_cli.py runs the same folders through
the command line), test_predict.py (image files).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from convnp.checkpoint import META_KEY, save_checkpoint
from convnp.cli.main import main
from convnp.models import notebook
from convnp.optim import SGD


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
        for p in sorted(folder.rglob("*"))
    }


def run_cli(argv: list[str], folder: Path, capsys) -> tuple[int, str, str]:
    """Run ``convnp ARGV`` and check that nothing under ``folder`` changed."""
    before = snapshot(folder)
    code = main(argv)
    out, err = capsys.readouterr()
    assert snapshot(folder) == before, "the command changed files"
    return code, out, err


def assert_one_line_error(result, *phrases: str) -> None:
    code, out, err = result
    assert code == 1, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("convnp: error: "), err
    assert "Traceback" not in err and out == ""
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


class Tripwire:
    """Unpickling it creates the folder ``marker``: proof that a file's pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def rewrite(path: Path, out: Path, *, meta=None, add=None) -> Path:
    """A copy of a checkpoint with its JSON replaced or entries added (np.savez: pickles only object arrays)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    if meta is not None:
        arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    arrays.update(add or {})
    np.savez(out, **arrays)
    return out


# ---- checkpoints ----------------------------------------------------------------------------------------------------
def bad_checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    """Name -> (a broken checkpoint file, a phrase its error must hold)."""
    model = notebook(rng=np.random.default_rng(0))
    good = save_checkpoint(folder / "good.npz", model, optimizer=SGD(0.1, momentum=0.9),
                           meta={"model_name": "notebook"})
    data = good.read_bytes()
    with np.load(good, allow_pickle=False) as archive:
        meta = json.loads(archive[META_KEY].tobytes())
        weight = archive["model/4.weight"].copy()
    (folder / "truncated.npz").write_bytes(data[: len(data) // 2])
    (folder / "empty.npz").write_bytes(b"")
    (folder / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    rewrite(good, folder / "pickle.npz", add={"model/0.weight": np.array([Tripwire(folder / "PWNED")], dtype=object)})
    other = json.loads(json.dumps(meta))
    other["model"]["layers"][0]["config"]["out_channels"] = 16  # another architecture than the arrays
    other["model"]["layers"][4]["config"]["in_features"] = 13 * 13 * 16
    rewrite(good, folder / "other-architecture.npz", meta=other)
    weight[3, 7] = np.nan
    rewrite(good, folder / "nan.npz", add={"model/4.weight": weight})
    rewrite(good, folder / "future.npz", meta={**meta, "format_version": 99})
    good.unlink()
    return {
        "truncated": (folder / "truncated.npz", "truncated.npz: is not a convnp checkpoint"),
        "zero bytes": (folder / "empty.npz", "empty.npz: is not a convnp checkpoint"),
        "random bytes": (folder / "random.npz", "random.npz: is not a convnp checkpoint"),
        "pickled object array": (folder / "pickle.npz", "convnp never unpickles files, refusing to load it"),
        "another architecture": (folder / "other-architecture.npz", "0.weight has shape (3, 3, 1, 8)"),
        "NaN weights": (folder / "nan.npz", "4.weight holds 1 non-finite value(s)"),
        "future format version": (folder / "future.npz", "newer convnp (checkpoint format 99"),
    }


CHECKPOINT_CASES = ["truncated", "zero bytes", "random bytes", "pickled object array", "another architecture",
                    "NaN weights", "future format version"]


@pytest.fixture(scope="module")
def checkpoint_folder(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("bad-checkpoints")
    cases = bad_checkpoints(folder)
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", x=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y=rng.integers(0, 10, 20))
    np.save(folder / "digit.npy", rng.integers(0, 256, (28, 28), dtype=np.uint8))
    return folder, cases


@pytest.mark.parametrize("command", ["evaluate", "predict", "serve"])
@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_bad_checkpoints_are_refused_in_one_line(checkpoint_folder, case, command, capsys, monkeypatch):
    folder, cases = checkpoint_folder
    path, phrase = cases[case]
    if command == "serve":
        pytest.importorskip("fastapi")
        uvicorn = pytest.importorskip("uvicorn")
        import convnp.web.server as server

        # The checkpoint must be refused before anything listens. Should that regress, fail here rather than serve
        # on port 1 forever (as root the bind would succeed).
        def fail(*args, **kwargs):
            pytest.fail(f"convnp serve went on to listen with the {case} checkpoint")

        monkeypatch.setattr(server, "listen", fail)  # where convnp serve binds its port
        monkeypatch.setattr(uvicorn.Server, "run", fail)  # and where it would serve, should it ever bind elsewhere
    argv = {"evaluate": ["evaluate", str(path), "--data", str(folder / "data.npz")],
            "predict": ["predict", str(path), str(folder / "digit.npy")],
            "serve": ["serve", str(path), "--port", "1"]}[command]
    assert_one_line_error(run_cli(argv, folder, capsys), phrase)
    assert not (folder / "PWNED").exists(), "the pickle was unpickled"


# ---- data files -----------------------------------------------------------------------------------------------------
def bad_data(folder: Path) -> dict[str, tuple[Path, str]]:
    """Name -> (a broken .npz data set, a phrase its error must hold)."""
    x, y = np.zeros((10, 28, 28), np.uint8), np.arange(10) % 10
    arrays = {
        "NaN pixels": (dict(x=np.full((10, 28, 28), np.nan, np.float32), y=y), "x has 7840 non-finite values"),
        "bool images": (dict(x=x.astype(bool), y=y), "x has dtype bool but expected a real number type"),
        "images of rank 2": (dict(x=x[:, 0], y=y), "x has shape (10, 28) but expected (N, H, W) or (N, H, W, C)"),
        "float labels": (dict(x=x, y=y + 0.5), "y has dtype float64 but expected integer class indices"),
        "negative labels": (dict(x=x, y=y - 1), "y must be >= 0 (class indices), found -1 at index 0"),
        "labels of rank 2": (dict(x=x, y=y[:, None]), "y has shape (10, 1) but expected (N,)"),
        "fewer labels than images": (dict(x=x, y=y[:9]), "x has 10 images but y has 9 labels"),
        # The network is built for the data's shape and classes, so only images too small for its pools are refused.
        "images too small for the model": (dict(x=np.zeros((10, 3, 3), np.uint8), y=y),
                                           "cannot take input of shape (3, 3, 1) (H, W, C): its kernels and pools "
                                           "need images of at least 4x4 pixels"),
        "no labels": (dict(x=x), "has array 'x' but no 'y'"),
        "pickled object images": (dict(x=np.array([Tripwire(folder / "PWNED")] * 10, dtype=object), y=y),
                                  "holds Python objects (dtype=object), which convnp will not unpickle"),
    }
    cases = {}
    for i, (name, (content, phrase)) in enumerate(arrays.items()):
        np.savez(folder / f"data{i}.npz", **content)
        cases[name] = (folder / f"data{i}.npz", phrase)
    (folder / "text.npz").write_text("x,y\n0,1\n")
    (folder / "empty.npz").write_bytes(b"")
    whole = (folder / "data0.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(whole[: len(whole) // 3])
    cases["not an archive"] = (folder / "text.npz", "is not an .npz archive (no zip signature)")
    cases["zero bytes"] = (folder / "empty.npz", "is not an .npz archive")
    cases["truncated archive"] = (folder / "truncated.npz", "truncated.npz")
    return cases


DATA_CASES = ["NaN pixels", "bool images", "images of rank 2", "float labels", "negative labels", "labels of rank 2",
              "fewer labels than images", "images too small for the model",
              "no labels", "pickled object images", "not an archive", "zero bytes", "truncated archive"]


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("bad-data")
    return folder, bad_data(folder)


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_training_data_is_refused_before_a_run_folder_exists(data_folder, case, capsys):
    folder, cases = data_folder
    path, phrase = cases[case]
    run = folder / "run"
    assert_one_line_error(run_cli(["train", "--data", str(path), "--out", str(run), "--no-report"], folder, capsys),
                          phrase)
    assert not run.exists() and not (folder / "PWNED").exists()


# ---- images for predict ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_folder(mnist, tmp_path_factory) -> Path:
    pytest.importorskip("PIL")
    from hostile_images import broken_files, valid_files

    folder = tmp_path_factory.mktemp("images")
    for name, data in valid_files(mnist[2][0], mnist[2][1]).items():
        (folder / name).write_bytes(data)
    for name, (data, _, _) in broken_files().items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.mnist
def test_odd_but_valid_images_get_the_plain_images_answer(digits_checkpoint, image_folder, mnist, capsys):
    """16-bit, palette, alpha, grey+alpha, CMYK, JPEG and an animated GIF (first frame) of the same digit: the same
    label as the plain grey PNG, and for the lossless variants the same probabilities."""
    from hostile_images import LOSSLESS, valid_files

    names = list(valid_files(np.zeros((28, 28), np.uint8), np.zeros((28, 28), np.uint8)))
    files = [str(image_folder / name) for name in names]
    code, out, err = run_cli(["predict", str(digits_checkpoint), *files, "--json"], image_folder, capsys)
    assert code == 0 and err == "", err
    results = {Path(r["file"]).name: r for r in json.loads(out)}
    assert set(results) == set(names)
    plain = results["grey.png"]
    assert plain["label"] == int(mnist[3][0])  # the first MNIST test digit's true label
    for name in names:
        assert results[name]["label"] == plain["label"], (name, results[name]["top"])
        if name in LOSSLESS:
            # The same pixels: each probability, however small, within a relative 1e-6 (JPEG's few grey levels
            # move the small ones by about 2%, so this tells lossless from lossy).
            np.testing.assert_allclose(results[name]["probabilities"], plain["probabilities"], rtol=1e-6, atol=0,
                                       err_msg=name)
        else:  # JPEG and 64-colour palette move pixels by a few grey levels: the same answer, nearly as sure
            np.testing.assert_allclose(results[name]["probabilities"], plain["probabilities"], atol=0.1,
                                       err_msg=name)


BROKEN_IMAGES = ["empty.png", "text.png", "truncated.png", "bomb.png", "big.png", "one-pixel.png", "blank.jpg"]


@pytest.mark.mnist
@pytest.mark.parametrize("name", BROKEN_IMAGES)
def test_broken_images_are_refused_in_one_line(digits_checkpoint, image_folder, name, capsys):
    from hostile_images import broken_files

    phrase = broken_files()[name][2]
    result = run_cli(["predict", str(digits_checkpoint), str(image_folder / name)], image_folder, capsys)
    assert_one_line_error(result, f"{name}: ", phrase)
