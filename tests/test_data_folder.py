"""--data DIR: a folder of image files, one sub-folder per class, read into uint8 arrays with its class names."""

import json
import logging
import os

import numpy as np
import pytest

from convnp.cli.main import main
from convnp.data import folder_decode
from convnp.data import image_files
from convnp.data.datasets import load_dataset
from convnp.data.folder import load_image_folder, scan_image_folder
from convnp.errors import DataError

Image = pytest.importorskip("PIL.Image")

# Solid colours per class; grey images of a class have that colour's BT.601 luma (rounded).
COLOURS = {"apple": (200, 30, 40), "leaf": (20, 180, 60), "sky": (40, 90, 230)}
CLASSES = sorted(COLOURS)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Every test's folder caches go to a folder of its own, never the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("CONVNP_DATA", str(cache))
    return cache / "folders"


def luma(rgb):
    return int(np.rint(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]))


def solid(path, rgb, size=(8, 6), grey=False):
    """A solid-colour image file of ``size`` (width, height), RGB or grey."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, rgb)
    (img.convert("L") if grey else img).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """3 named classes; colour and grey mixed (colour most common); 8x6 most common, one 16x12, one 5x5 JPEG-free
    BMP; plus a hidden file, a text file and a truncated PNG, which are skipped."""
    root = tmp_path / "images"
    for name, rgb in COLOURS.items():
        solid(root / name / "a.png", rgb)
        solid(root / name / "b.png", rgb)
        solid(root / name / "c_grey.png", rgb, grey=True)
    solid(root / "leaf" / "d_big.png", COLOURS["leaf"], size=(16, 12))
    solid(root / "sky" / "e_small.bmp", COLOURS["sky"], size=(5, 5))
    (root / "apple" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "leaf" / "notes.txt").write_text("not an image\n")
    whole = solid(tmp_path / "whole.png", COLOURS["sky"], size=(32, 32)).read_bytes()
    (root / "sky" / "f_truncated.png").write_bytes(whole[: len(whole) // 2])
    return root


def test_classes_labels_and_pixels_are_exact(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="convnp.data"):
        result = load_image_folder(folder)
    assert result.classes == CLASSES
    assert result.x.dtype == np.uint8 and result.x.shape == (11, 6, 8, 3)  # (N, H, W, C): most common 8x6 colour
    names = [(f.parent.name, f.name) for f in result.files]
    assert names == [("apple", "a.png"), ("apple", "b.png"), ("apple", "c_grey.png"),
                     ("leaf", "a.png"), ("leaf", "b.png"), ("leaf", "c_grey.png"), ("leaf", "d_big.png"),
                     ("sky", "a.png"), ("sky", "b.png"), ("sky", "c_grey.png"), ("sky", "e_small.bmp")]
    np.testing.assert_array_equal(result.y, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    for image, (cls, name) in zip(result.x, names):
        rgb = COLOURS[cls]
        expected = (luma(rgb),) * 3 if "grey" in name else rgb  # grey files repeated onto three channels
        assert (image == np.array(expected, np.uint8)).all(), (cls, name)  # resizing a solid colour keeps it
    # The three skipped files: one line each, then a count.
    assert sorted(p.name for p in result.skipped) == [".DS_Store", "f_truncated.png", "notes.txt"]
    assert "not an image" in result.skipped[folder / "leaf" / "notes.txt"]
    assert "damaged" in result.skipped[folder / "sky" / "f_truncated.png"]
    lines = [r.getMessage() for r in caplog.records]
    assert sum(line.startswith("skipped ") for line in lines) == 3
    assert any("3 file(s) skipped, 11 image(s) read" in line for line in lines)


def test_size_and_channels_can_be_chosen(folder):
    result = load_image_folder(folder, image_size=(4, 3), channels=1)
    assert result.x.shape == (11, 4, 3, 1)
    assert (result.x[0] == luma(COLOURS["apple"])).all()  # a colour file converted to grey
    assert (result.x[-1] == luma(COLOURS["sky"])).all()
    with pytest.raises(DataError, match="channels: expected 1 .* or 3 .*, got 2"):
        load_image_folder(folder, channels=2)
    with pytest.raises(DataError, match=r"image_size: expected \(height, width\)"):
        load_image_folder(folder, image_size=(0, 4))


def test_grey_majority_gives_one_channel(tmp_path):
    for i in range(3):
        solid(tmp_path / "a" / f"{i}.png", (100, 100, 100), grey=True)
        solid(tmp_path / "b" / f"{i}.png", (10, 10, 10), grey=i > 0)
    result = load_image_folder(tmp_path)
    assert result.x.shape == (6, 6, 8, 1)
    np.testing.assert_array_equal(result.x[:, 0, 0, 0], [100] * 3 + [10] * 3)


def test_a_class_with_no_image_is_one_line_naming_it(tmp_path):
    solid(tmp_path / "cat" / "1.png", (1, 2, 3))
    (tmp_path / "dog").mkdir()
    with pytest.raises(DataError, match=r"dog: class folder 'dog' holds no image file$"):
        load_image_folder(tmp_path)
    (tmp_path / "dog" / "x.txt").write_text("text")
    (tmp_path / "dog" / ".hidden.png").write_bytes(solid(tmp_path / "p.png", (0, 0, 0)).read_bytes())
    with pytest.raises(DataError, match=r"dog: class folder 'dog' holds no readable image$") as err:
        load_image_folder(tmp_path)
    assert "\n" not in str(err.value)


def test_a_folder_without_class_folders_is_refused(tmp_path):
    solid(tmp_path / "1.png", (1, 2, 3))
    with pytest.raises(DataError, match="holds no class sub-folder"):
        scan_image_folder(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        scan_image_folder(tmp_path / "missing")


def test_hostile_entries_are_skipped_never_a_traceback(tmp_path, monkeypatch):
    solid(tmp_path / "a" / "ok.png", (9, 9, 9))
    solid(tmp_path / "b" / "ok.png", (99, 99, 99))
    (tmp_path / "a" / "sub.png").mkdir()  # a folder where a file should be
    os.symlink(tmp_path / "a" / "loop.png", tmp_path / "a" / "loop.png")  # a link to itself
    os.symlink(tmp_path / "nowhere.png", tmp_path / "a" / "dangling.png")
    (tmp_path / "a" / "empty.png").write_bytes(b"")
    # A decompression bomb: a header that claims more pixels than MAX_PIXELS (lowered here to keep the file small).
    monkeypatch.setattr(image_files, "MAX_PIXELS", 10 * 10)
    solid(tmp_path / "b" / "bomb.png", (0, 0, 0), size=(11, 11))
    result = load_image_folder(tmp_path)
    assert sorted(p.name for p in result.skipped) == ["bomb.png", "dangling.png", "empty.png", "loop.png",
                                                      "sub.png"]
    assert "more than the 100 (10x10) accepted" in result.skipped[tmp_path / "b" / "bomb.png"]
    assert "folder" in result.skipped[tmp_path / "a" / "sub.png"]
    np.testing.assert_array_equal(result.y, [0, 1])


def test_train_and_test_folders_are_the_splits(tmp_path):
    for split, n in (("train", 2), ("test", 1)):
        for name, rgb in COLOURS.items():
            for i in range(n):
                solid(tmp_path / split / name / f"{i}.png", rgb, size=(8, 6) if split == "train" else (4, 4))
    data = load_dataset(str(tmp_path))
    assert data.classes == CLASSES and data.name == str(tmp_path)
    assert data.x_train.shape == (6, 6, 8, 3) and data.x_test.shape == (3, 6, 8, 3)  # test brought to train's size
    np.testing.assert_array_equal(data.y_test, [0, 1, 2])
    assert (data.x_test[2] == np.array(COLOURS["sky"], np.uint8)).all()
    solid(tmp_path / "test" / "mud" / "0.png", (90, 60, 30))
    with pytest.raises(DataError, match=r"classes \['apple', 'leaf', 'mud', 'sky'\] differ from the training"):
        load_dataset(str(tmp_path))


def test_without_train_and_test_there_is_no_test_split(folder):
    data = load_dataset(str(folder))
    assert data.x_test is None and data.y_test is None
    assert data.classes == CLASSES and len(data.y_train) == 11


def test_train_then_evaluate_names_the_classes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for name, rgb in COLOURS.items():
            for i in range(n):
                noisy = np.clip(np.array(rgb) + rng.integers(-20, 21, (12, 12, 3)), 0, 255).astype(np.uint8)
                path = tmp_path / "data" / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(noisy).save(path)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--model", "sprint", "--epochs", "1", "--threads", "1",
                 "--no-report", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(tmp_path / "data"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"] == CLASSES and result["n_samples"] == 12
    assert [row["name"] for row in result["per_class"]] == CLASSES


def test_a_bad_folder_is_one_line_and_exit_1(tmp_path, capsys):
    solid(tmp_path / "cat" / "1.png", (1, 2, 3))
    (tmp_path / "dog").mkdir()
    assert main(["train", "--data", str(tmp_path), "--epochs", "1", "--no-report", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class folder 'dog' holds no image file" in err[0]


# ---- the cache ------------------------------------------------------------------------------------------------------
@pytest.fixture
def decodes(monkeypatch):
    """The files read_image decoded, in order (the folder module's reader, wrapped)."""
    seen = []
    real = folder_decode.read_image

    def counting(path, **kwargs):
        seen.append(path.name)
        return real(path, **kwargs)

    monkeypatch.setattr(folder_decode, "read_image", counting)
    return seen


def test_a_second_load_reads_the_cache_and_a_change_decodes_again(folder, decodes, private_cache, caplog):
    first = load_dataset(str(folder))
    assert len(decodes) == 12  # 11 images and the truncated PNG, whose header reads
    assert len(list(private_cache.glob("*-*"))) == 1
    decodes.clear()
    with caplog.at_level(logging.WARNING, logger="convnp.data"):
        second = load_dataset(str(folder))
    assert decodes == []
    np.testing.assert_array_equal(second.x_train, first.x_train)
    np.testing.assert_array_equal(second.y_train, first.y_train)
    assert second.x_train.dtype == np.uint8 and second.classes == CLASSES
    assert any("3 file(s) skipped, 11 image(s) read" in r.getMessage() for r in caplog.records)  # still counted
    # A changed file (new modification time), then a new file: decoded again, and only the newest cache is kept.
    changed = folder / "apple" / "a.png"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    load_dataset(str(folder))
    assert len(decodes) == 12
    solid(folder / "apple" / "z.png", COLOURS["apple"])
    third = load_dataset(str(folder))
    assert len(decodes) == 25 and len(third.y_train) == 12
    assert len(list(private_cache.glob("*-*"))) == 1


def test_a_damaged_cache_is_decoded_over(folder, decodes, private_cache, caplog):
    first = load_image_folder(folder, cache_dir=private_cache)
    first_x = np.array(first.x)  # first.x maps the file damaged next
    (cache,) = private_cache.glob("*-*")
    (cache / "x.npy").unlink()
    (cache / "x.npy").write_bytes(b"not an npy")
    decodes.clear()
    with caplog.at_level(logging.WARNING, logger="convnp.data"):
        again = load_image_folder(folder, cache_dir=private_cache)
    assert len(decodes) == 12 and any("unreadable" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(again.x, first_x)
    assert again.skipped == first.skipped and again.files == first.files
    decodes.clear()
    assert load_image_folder(folder, cache_dir=private_cache).skipped == first.skipped and decodes == []


def test_options_are_part_of_the_key(folder, decodes, private_cache):
    load_image_folder(folder, cache_dir=private_cache)
    grey = load_image_folder(folder, channels=1, cache_dir=private_cache)
    assert len(decodes) == 24 and grey.x.shape[-1] == 1


def test_evaluate_brings_another_folder_to_the_models_input(tmp_path, capsys):
    """A model trained on 12x12 colour images evaluates a folder of 20x16 grey ones: resized and coloured to fit."""
    for name, rgb in COLOURS.items():
        for i in range(4):
            solid(tmp_path / "data" / name / f"{i}.png", rgb, size=(12, 12))
            solid(tmp_path / "other" / name / f"{i}.png", rgb, size=(20, 16), grey=True)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--model", "sprint", "--epochs", "1", "--threads", "1",
                 "--no-report", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(tmp_path / "other"), "--split", "train", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_samples"] == 12 and result["classes"] == CLASSES
    assert main(["evaluate", str(run), "--data", str(tmp_path / "other")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no test split (test/ beside train/); pass --split train" in err[0]


def test_train_image_size_and_channels_choose_the_input(tmp_path, capsys):
    for name, rgb in COLOURS.items():
        for i in range(4):
            solid(tmp_path / "data" / name / f"{i}.png", rgb, size=(12, 12))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--image-size", "10", "6", "--channels", "1",
                 "--model", "sprint", "--epochs", "1", "--threads", "1", "--no-report", "--out", str(run)]) == 0
    from convnp.checkpoint import load_checkpoint

    assert load_checkpoint(run / "last.npz").model.input_shape == (10, 6, 1)
    assert json.loads((run / "config.json").read_text())["settings"]["channels"] == 1
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(tmp_path / "data"), "--split", "train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 12
    # Not a folder: refused in one line; a channel count other than 1 or 3: a bad option.
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 5, 5), np.uint8), y=np.arange(4))
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--image-size", "8", "8", "--epochs", "1",
                 "--no-report", "--out", str(tmp_path / "r2")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--image-size, --channels and --test-split apply to a folder of images" in err[0]
    with pytest.raises(SystemExit) as stop:
        main(["train", "--data", str(tmp_path / "data"), "--channels", "2"])
    assert stop.value.code == 2


def test_test_split_holds_out_files_by_name_and_evaluate_finds_them(tmp_path, capsys):
    from convnp.data.folder import held_out

    names = [f"c/{i}.png" for i in range(2000)]
    mask = held_out(names, 0.2)
    assert 0.17 < mask.mean() < 0.23  # about the fraction asked for
    np.testing.assert_array_equal(held_out(names[:1000], 0.2), mask[:1000])  # other files never move a file
    assert not held_out(names, 0.0).any()
    for name, rgb in COLOURS.items():
        for i in range(10):
            solid(tmp_path / "data" / name / f"{i}.png", rgb)
    data = load_dataset(str(tmp_path / "data"), test_split=0.3)
    rel = [f"{n}/{i}.png" for n in CLASSES for i in sorted(range(10), key=str)]  # the files' sorted order
    expected = held_out(rel, 0.3)
    assert len(data.y_test) == expected.sum() > 0 and len(data.y_train) == 30 - expected.sum()
    np.testing.assert_array_equal(data.y_test, np.repeat(np.arange(3), 10)[expected])
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--test-split", "0.3", "--model", "sprint", "--epochs",
                 "1", "--threads", "1", "--no-report", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(tmp_path / "data"), "--test-split", "0.3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == expected.sum()
    # With its own test/, or with data that is not a folder: refused in one line.
    for split in ("train", "test"):
        solid(tmp_path / "both" / split / "a" / "0.png", (1, 1, 1))
    with pytest.raises(DataError, match="has its own test/ folder"):
        load_dataset(str(tmp_path / "both"), test_split=0.2)
    with pytest.raises(DataError, match="--test-split apply to a folder of images"):
        load_dataset("mnist", test_split=0.2)
