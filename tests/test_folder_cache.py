"""A folder decoded on every core into a memory-mapped cache, and training that reads it a batch at a time.

convnp.data.folder_decode (worker processes, progress), convnp.data.folder_cache (the streamed .npy and its index),
convnp.data.views (rows read on demand) and their use by convnp train and convnp evaluate.
"""

import io
import json
import logging

import numpy as np
import pytest

from convnp.cli.main import main
from convnp.data import folder_cache, folder_decode
from convnp.data.datasets import load_dataset
from convnp.data.folder import load_image_folder
from convnp.data.transforms import Standardize
from convnp.data.views import Rows, StandardizedImages

Image = pytest.importorskip("PIL.Image")
CLASSES = ["circle", "cross", "square"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("CONVNP_DATA", str(cache))
    return cache / "folders"


def shapes_folder(root, n, size=10, seed=0, damaged=()):
    """``n`` colour images of ``size`` x ``size`` in three classes (a shape drawn in the class's channel), some of
    them (by index) written as damaged files that are skipped."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = i % 3
        pixels = (rng.random((size, size, 3)) * 60).astype(np.uint8)
        pixels[2:-2, 2:-2, label] = 200 + label * 20
        path = root / CLASSES[label] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        if i in damaged:
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # the header reads, the pixels do not
    return root


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    """More files than two chunks of each pass, so two processes each get work; two damaged files in between."""
    n = 2 * folder_decode.HEADER_CHUNK + 37
    return shapes_folder(tmp_path_factory.mktemp("big") / "shapes", n, damaged=(5, folder_decode.PIXEL_CHUNK + 3))


def test_two_processes_decode_exactly_what_one_does_in_the_same_order(big_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="convnp.data"):
        one = load_image_folder(big_folder, processes=1)
        skipped_one = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
        caplog.clear()
        two = load_image_folder(big_folder, processes=2)
        skipped_two = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    n = 2 * folder_decode.HEADER_CHUNK + 37
    assert one.x.shape == (n - 2, 10, 10, 3) and one.x.dtype == np.uint8
    np.testing.assert_array_equal(two.x, one.x)
    np.testing.assert_array_equal(two.y, one.y)
    assert two.files == one.files and two.skipped == one.skipped
    assert skipped_two == skipped_one and len(skipped_one) == 2  # the same lines, in the files' order
    # Labels follow the files: every image's bright channel is its class.
    assert np.array_equal(one.x[:, 5, 5].argmax(axis=1), one.y)


def test_the_cache_is_a_read_only_memory_map_of_the_same_pixels(big_folder, private_cache, monkeypatch):
    in_memory = load_image_folder(big_folder)
    decoded = load_image_folder(big_folder, cache_dir=private_cache, processes=2)
    assert isinstance(decoded.x, np.memmap) and not decoded.x.flags.writeable
    (cache,) = private_cache.glob("*-*")
    assert sorted(p.name for p in cache.iterdir()) == ["index.npz", "x.npy"]
    seen = []
    monkeypatch.setattr(folder_decode, "read_image", lambda *a, **k: seen.append(a) or None)
    again = load_image_folder(big_folder, cache_dir=private_cache)
    assert seen == [] and isinstance(again.x, np.memmap)
    assert not isinstance(in_memory.x, np.memmap)
    np.testing.assert_array_equal(again.x, in_memory.x)
    assert again.skipped == decoded.skipped and again.files == decoded.files


def test_the_streamed_npy_header_is_rewritten_with_the_count(tmp_path):
    writer = folder_cache.PixelWriter(tmp_path / "x.npy", (2, 3, 1))
    chunks = [np.full((k, 2, 3, 1), k, dtype=np.uint8) for k in (4, 0, 7)]
    for chunk in chunks:
        writer.append(chunk)
    writer.close()
    back = np.load(tmp_path / "x.npy", allow_pickle=False)
    np.testing.assert_array_equal(back, np.concatenate(chunks))
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(k, \*\(2, 3, 1\)\), got float64"):
        folder_cache.PixelWriter(tmp_path / "y.npy", (2, 3, 1)).append(np.zeros((1, 2, 3, 1)))
    big = (10**12, 4096, 4096, 3)  # any shape fits the fixed header
    assert len(folder_cache._npy_header(big)) == 128


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_a_bar_on_a_terminal_and_one_line_elsewhere(big_folder):
    log = io.StringIO()
    load_image_folder(big_folder, processes=2, progress=log)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"decoded {2 * folder_decode.HEADER_CHUNK + 35:,} image(s) of ")
    assert lines[0].endswith("files/s, 2 processes, 2 skipped)")
    tty = FakeTerminal()
    load_image_folder(big_folder, processes=1, progress=tty)
    text = tty.getvalue()
    assert text.count("\rdecoding ") >= 1 and "[" + "#" * 30 + "]" in text  # the bar is drawn full at the end
    assert text.endswith("1 process, 2 skipped)\n")


def test_a_decoder_that_kills_its_process_is_one_line(big_folder, monkeypatch):
    import os
    import signal

    monkeypatch.setattr(folder_decode, "read_image", lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
    from convnp.errors import DataError

    with pytest.raises(DataError, match="a process decoding images ended abruptly"):
        load_image_folder(big_folder, processes=2)


def test_views_read_only_the_rows_asked_for():
    base = np.arange(5 * 2 * 2 * 1, dtype=np.uint8).reshape(5, 2, 2, 1)
    rows = Rows(base, [4, 0, 2])
    assert rows.shape == (3, 2, 2, 1) and len(rows) == 3 and rows.dtype == np.uint8
    np.testing.assert_array_equal(rows[1:], base[[0, 2]])
    np.testing.assert_array_equal(rows.take([2, 0])[:], base[[2, 4]])
    standardize = Standardize(1 / 255, [0.5], [0.25])
    view = StandardizedImages(rows, standardize, np.float32)
    np.testing.assert_array_equal(view[np.array([2, 0])], standardize(base[[2, 4]], np.float32))
    np.testing.assert_array_equal(view[1], standardize(base[[0]], np.float32)[0])
    np.testing.assert_array_equal(np.asarray(view), standardize(base[[4, 0, 2]], np.float32))


def test_standardize_fit_samples_every_class_and_bounds_its_copy():
    x = np.zeros((3000, 4, 4, 1), dtype=np.uint8)
    x[1500:] = 255  # stored class by class: the first half dark, the second bright
    fitted = Standardize.fit(x, max_samples=100)
    assert fitted.mean[0] == pytest.approx(0.5, abs=0.01)  # both halves sampled, not the first 100 rows
    small = Standardize.fit(x[:10])
    assert small.mean == [0.0]
    capped = Standardize.fit(x, max_values=16 * 10)  # 10 images' worth of values
    assert capped.mean[0] == pytest.approx(0.5, abs=0.06)


def test_training_standardises_a_batch_at_a_time_from_the_cache(tmp_path, monkeypatch, capsys):
    """convnp train on a folder never converts more than a batch (or an evaluation batch of 1000) to floats, and the
    data it reads is the memory-mapped cache: memory does not grow with the data set beyond that uint8 file."""
    root = shapes_folder(tmp_path / "shapes", 2400, size=8)
    calls = []
    real = Standardize.__call__

    def spy(self, x, dtype=np.float32):
        calls.append(len(x))
        return real(self, x, dtype)

    monkeypatch.setattr(Standardize, "__call__", spy)
    loads = []
    real_load = load_dataset

    def spy_load(*args, **kwargs):
        loads.append(real_load(*args, **kwargs))
        return loads[-1]

    monkeypatch.setattr("convnp.train.run.load_dataset", spy_load)
    net = tmp_path / "net.json"
    net.write_text(json.dumps([{"type": "Conv2D", "out_channels": 4, "kernel_size": 3, "padding": "same"},
                               {"type": "ReLU"}, {"type": "MaxPool2D", "kernel_size": 2}, {"type": "Flatten"},
                               {"type": "Dense", "out_features": 3}]))
    assert main(["train", "--data", str(root), "--test-split", "0.25", "--model", str(net), "--epochs", "1",
                 "--batch-size", "50", "--no-report", "--out", str(tmp_path / "run")]) == 0
    (data,) = loads
    assert isinstance(data.x_train, Rows) and isinstance(data.x_train.base, np.memmap)
    assert len(data.x_train) > 1000 and len(data.x_test) > 300
    assert calls and max(calls) <= 1000, calls
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test"]["n_samples"] == len(data.x_test) and results["test"]["accuracy"] > 0.9
    capsys.readouterr()
    calls.clear()
    # No --test-split: the run's own, read from the checkpoint, since it trained on this folder.
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(root), "--batch-size", "200", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_samples"] == len(data.x_test) and max(calls) <= 200
    assert report["accuracy"] == pytest.approx(results["test"]["accuracy"])


def test_a_folder_with_train_but_no_test_says_what_to_do(tmp_path):
    from convnp.errors import DataError

    shapes_folder(tmp_path / "d" / "train", 6)
    with pytest.raises(DataError, match=r"has train/ but no test/; give it both .* or point --data at .*train"):
        load_dataset(str(tmp_path / "d"))


def test_an_image_of_another_shape_is_cropped_to_the_common_one_not_squashed(tmp_path):
    """The common size is 8x8; a 8x16 picture, red at both ends and green in its middle half, keeps its aspect
    ratio: scaled to cover 8x8 (here not at all) and cut from the centre, it comes out green, as convnp predict
    would prepare it."""
    from convnp.data.image_files import read_image
    from convnp.data.images import preprocess_image

    shapes_folder(tmp_path / "d", 6, size=8)  # 8x8 images, the common size
    wide = np.zeros((8, 16, 3), dtype=np.uint8)
    wide[:, :, 0] = 255
    wide[:, 4:12] = (0, 255, 0)
    Image.fromarray(wide).save(tmp_path / "d" / "circle" / "wide.png")
    decoded = load_image_folder(tmp_path / "d")
    (index,) = [i for i, f in enumerate(decoded.files) if f.name == "wide.png"]
    np.testing.assert_array_equal(decoded.x[index], np.broadcast_to([0, 255, 0], (8, 8, 3)))
    expected = preprocess_image(read_image(tmp_path / "d" / "circle" / "wide.png", rgb=True), (8, 8, 3))
    np.testing.assert_array_equal(decoded.x[index], expected)


def test_a_class_left_empty_by_damaged_pixels_is_one_line_and_leaves_no_half_cache(tmp_path, private_cache):
    """Every file of one class has a readable header and damaged pixels: the folder is refused naming the class,
    and the cache folder holds nothing (no temporary folder of the decode)."""
    from convnp.errors import DataError

    root = shapes_folder(tmp_path / "d", 6, size=8, damaged=(2, 5))  # indices 2 and 5: both of class "square"
    with pytest.raises(DataError, match=r"square: class folder 'square' holds no readable image"):
        load_image_folder(root, cache_dir=private_cache)
    assert not private_cache.exists() or list(private_cache.iterdir()) == []
