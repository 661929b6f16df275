"""Reading a row of digits: the steps of :mod:`convnp.data.digit_row` on their own, :func:`read_row` on drawn rows
(separate, touching, broken, photographed), and ``convnp read`` on rows of real MNIST test digits."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image, ImageDraw  # noqa: E402

from convnp.cli.main import main  # noqa: E402
from convnp.data.digit_photo import label_components, measure_components  # noqa: E402
from convnp.data.digit_row import cut_columns, cut_options, group_columns, read_row, row_parts  # noqa: E402
from convnp.errors import DataError  # noqa: E402


# ---- steps -------------------------------------------------------------------------------------------------------
def test_cut_columns_finds_the_thinnest_columns():
    profile = np.ones(30)
    profile[[10, 21]] = 0.0
    assert cut_columns(profile, 3) == [0, 10, 21]
    assert cut_columns(profile, 1) == [0]
    assert cut_columns(np.ones(12), 4) == [0, 3, 6, 9]  # no ink to follow: even pieces
    # A dip far from the middle loses to evenness when it is shallow, and wins when it is deep.
    shallow, deep = np.ones(40), np.ones(40)
    shallow[8], deep[8] = 0.9, 0.0
    assert abs(cut_columns(shallow, 2)[1] - 20) <= 1 and cut_columns(deep, 2)[1] == 8


def parts_of(mask: np.ndarray):
    labels, n = label_components(mask)
    return measure_components(labels, n, mask.astype(float)), labels


def test_row_parts_and_groups():
    mask = np.zeros((60, 200), bool)
    mask[15:45, 20:26] = True  # a 1
    mask[15:45, 50:70] = True  # a wide digit's body ...
    mask[10:14, 55:80] = True  # ... and its flag above, overlapping its columns less than half: a fragment
    mask[15:45, 100:112] = True  # another digit
    mask[50, 150] = True  # a speck
    mask[0:60, 195:200] = True  # a page edge
    mask[2:6, 120:130] = True  # a mark above the line of writing
    parts, labels = parts_of(mask)
    keep = row_parts(parts, mask.shape)
    kept = {tuple(np.argwhere(labels == i + 1)[0]) for i in np.flatnonzero(keep)}
    assert kept == {(15, 20), (15, 50), (10, 55), (15, 100)}
    groups = group_columns(parts, keep)
    assert [sorted(int(parts.left[j]) for j in g) for g in groups] == [[20], [50, 55], [100]]


def test_cut_options_for_a_wide_group():
    mask = np.zeros((40, 80), bool)
    for left in (5, 30, 55):  # three digits 18 wide and 30 tall, joined by a thin bar
        mask[5:35, left : left + 18] = True
    mask[20, 5:73] = True
    parts, labels = parts_of(mask)
    (group, options), = cut_options(parts, group_columns(parts, np.ones(len(parts), bool)), mask * 1.0, labels)
    assert [len(o) for o in options] == [3, 2]  # 68 / (0.7 x 30): three likeliest, then one fewer
    (a, _), (b, _), (c, _) = options[0]
    assert a == 5 and 23 <= b <= 30 and 48 <= c <= 55  # each cut in a gap, through the bar alone
    mask[20, :] = False
    parts, labels = parts_of(mask)
    assert [o for _, o in cut_options(parts, group_columns(parts, np.ones(3, bool)), mask * 1.0, labels)] == [
        [[(5, 22)]], [[(30, 47)]], [[(55, 72)]]]  # apart, each is one digit, uncut


# ---- whole rows --------------------------------------------------------------------------------------------------
def row_picture(shapes, size=(420, 140), width=9, paper=235, ink=30) -> np.ndarray:
    """A grey row of drawn digits: ``shapes`` of ``("line" | "ring", x0, x1)``, ink on paper."""
    img = Image.new("L", size, paper)
    pen = ImageDraw.Draw(img)
    for kind, x0, x1 in shapes:
        if kind == "line":
            pen.line([((x0 + x1) / 2, 30), ((x0 + x1) / 2, 110)], fill=ink, width=width)
        else:
            pen.ellipse([(x0, 30), (x1, 110)], outline=ink, width=width)
    return np.asarray(img, dtype=np.float64)


def test_read_row_finds_each_digit_left_to_right():
    grey = row_picture([("line", 40, 60), ("ring", 100, 160), ("line", 200, 220), ("ring", 260, 320)])
    digits = read_row(grey)
    assert len(digits) == 4
    lefts = [d.box[1] for d in digits]
    assert lefts == sorted(lefts)
    for d, (x0, x1) in zip(digits, [(40, 60), (100, 160), (200, 220), (260, 320)]):
        top, left, bottom, right = d.box
        assert x0 - 6 <= left and right <= x1 + 6 and 25 <= top and bottom <= 115, d.box
        assert d.image.shape == (28, 28) and d.image.max() == 255


def test_read_row_splits_touching_digits_and_keeps_a_broken_one():
    touching = row_picture([("ring", 60, 118), ("ring", 114, 172), ("ring", 168, 226)])  # three 0s, touching
    assert len(read_row(touching)) == 3
    broken = row_picture([("ring", 100, 160), ("line", 250, 270)])
    broken[70:76, :] = 235  # a gap across every stroke: the 0 in two pieces, the 1 in two
    assert len(read_row(broken)) == 2


def test_read_row_on_squared_paper():
    """The paper's printed squares are divided out: four digits, each boxed alone, not one box of grid."""
    shapes = [("ring", 60, 120), ("line", 160, 180), ("ring", 220, 280), ("line", 320, 340)]
    grey = row_picture(shapes, ink=90)  # a soft pencil
    lines = np.zeros(grey.shape, bool)
    lines[3::18] = lines[4::18] = True
    lines[:, 7::18] = lines[:, 8::18] = True
    grey = np.where(lines & (grey > 200), grey * 0.7, grey)  # printed under the ink
    digits = read_row(grey)
    assert len(digits) == 4
    for d, (_, x0, x1) in zip(digits, shapes):
        top, left, bottom, right = d.box
        assert x0 - 6 <= left and right <= x1 + 6 and 25 <= top and bottom <= 115, d.box


def test_read_row_in_a_photo_and_a_blank_one():
    grey = row_picture([("ring", 60, 120), ("line", 160, 180), ("ring", 220, 280), ("line", 320, 340)])
    yy, xx = np.mgrid[0:140, 0:420]
    lit = grey * (1 - 0.35 * xx / 420) * np.where(xx + 2 * yy < 120, 0.55, 1.0)  # light falling, a dark corner
    noisy = np.clip(lit + np.random.default_rng(0).normal(0, 5, lit.shape), 0, 255)
    digits = read_row(noisy)
    assert len(digits) == 4 and [d.box[1] for d in digits] == sorted(d.box[1] for d in digits)
    with pytest.raises(DataError, match="no ink found") as refused:
        read_row(np.clip(235 * (1 - 0.35 * xx / 420) + np.random.default_rng(1).normal(0, 5, lit.shape), 0, 255))
    assert str(refused.value).endswith("expected digits written in a row")  # not "one digit": this reads a number
    with pytest.raises(DataError, match="flat.*expected digits written in a row$"):
        read_row(np.full((140, 420), 200.0))
    with pytest.raises(ValueError, match=r"read_row: expected a finite grey image of shape \(H, W\)"):
        read_row(np.zeros((4, 4, 3)))


# ---- convnp read ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def number_files(mnist, tmp_path_factory):
    """Two photos of MNIST test digits written in a row, and the numbers they show."""
    x, y = mnist[2], mnist[3]
    folder = tmp_path_factory.mktemp("rows")
    files, numbers = [], []
    for name, picks in (("a.png", [3, 2, 1, 18, 4]), ("b.jpg", [0, 7, 8, 11])):
        canvas = np.zeros((150, 110 * len(picks) + 80))
        for j, i in enumerate(picks):
            canvas[20:132, 40 + 110 * j : 152 + 110 * j] = np.asarray(
                Image.fromarray(x[i]).resize((112, 112), Image.Resampling.BICUBIC), float) / 255
        Image.fromarray(np.clip(240 - 215 * canvas, 0, 255).astype(np.uint8)).save(folder / name)
        files.append(str(folder / name))
        numbers.append("".join(str(int(y[i])) for i in picks))
    return files, numbers


@pytest.mark.mnist
def test_cli_reads_the_numbers(digits_checkpoint, number_files, capsys):
    files, numbers = number_files
    assert main(["read", str(digits_checkpoint), *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line, path, number in zip(lines, files, numbers):
        m = re.fullmatch(rf"{re.escape(path)}: (\d+)  \(p = ([01]\.\d{{3}}(?: [01]\.\d{{3}})*)\)", line)
        assert m, line
        assert len(m.group(1)) == len(number) == len(m.group(2).split())
        assert sum(a == b for a, b in zip(m.group(1), number)) >= len(number) - 1, (line, number)

    assert main(["read", str(digits_checkpoint), *files, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    for entry, path, number in zip(entries, files, numbers):
        assert entry["file"] == path and len(entry["number"]) == len(number) == len(entry["digits"])
        assert entry["number"] == "".join(d["class"] for d in entry["digits"])
        boxes = [d["box"] for d in entry["digits"]]
        assert [b[1] for b in boxes] == sorted(b[1] for b in boxes)  # left to right
        for j, (d, box) in enumerate(zip(entry["digits"], boxes)):
            assert abs(sum(d["probabilities"]) - 1) < 1e-6 and d["probability"] == max(d["probabilities"])
            assert 40 + 110 * j - 2 <= box[1] and box[3] <= 152 + 110 * j + 2  # inside the digit's own square


@pytest.mark.mnist
def test_cli_read_errors(digits_checkpoint, number_files, tmp_path, capsys):
    Image.new("L", (200, 80), 250).save(tmp_path / "blank.png")
    (tmp_path / "notes.txt").write_text("not an image")
    argv = ["read", str(digits_checkpoint), number_files[0][0], str(tmp_path / "blank.png"),
            str(tmp_path / "notes.txt")]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{number_files[0][0]}: ") and len(captured.out.splitlines()) == 1
    assert "blank.png: no ink found" in captured.err and "notes.txt: not an image" in captured.err
    assert "2 of 3 files could not be read" in captured.err
    assert main([*argv, "--json"]) == 1
    assert ["error" in e for e in json.loads(capsys.readouterr().out)] == [False, True, True]


def test_cli_read_needs_a_digit_model(tmp_path, capsys):
    from convnp.checkpoint import save_checkpoint
    from convnp.data.transforms import Standardize
    from convnp.layers import Dense, Flatten
    from convnp.sequential import Sequential

    model = Sequential([Flatten(), Dense(8 * 8 * 3, 2, rng=np.random.default_rng(0))], input_shape=(8, 8, 3))
    path = save_checkpoint(tmp_path / "colour.npz", model,
                           meta={"preprocessing": Standardize(1 / 255, [0.5] * 3, [0.25] * 3).to_dict()})
    Image.new("L", (20, 20), 0).save(tmp_path / "x.png")
    assert main(["read", str(path), str(tmp_path / "x.png")]) == 1
    assert "convnp read needs a digit model (input (28, 28, 1))" in capsys.readouterr().err


# ---- convnp.reading: boxes in the file's pixels, a large photo decoded small -----------------------------------------
def test_scale_box_covers_the_same_pixels():
    from convnp.reading import scale_box

    assert scale_box((3, 4, 10, 20), (50, 60), (50, 60)) == (3, 4, 10, 20)
    assert scale_box((3, 4, 10, 20), (50, 60), (200, 240)) == (12, 16, 43, 83)  # 4x: pixel 10 covers 40..43
    assert scale_box((0, 0, 49, 59), (50, 60), (101, 119)) == (0, 0, 100, 118)  # the whole picture stays whole


def test_upright_size_turns_with_the_exif_orientation(tmp_path):
    from convnp.data.image_files import read_image, upright_size

    img = Image.new("L", (300, 120), 200)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned a quarter
    img.save(tmp_path / "turned.jpg", exif=exif)
    img.save(tmp_path / "plain.png")
    np.save(tmp_path / "array.npy", np.zeros((30, 40), np.uint8))
    assert upright_size(tmp_path / "turned.jpg") == read_image(tmp_path / "turned.jpg").shape == (300, 120)
    assert upright_size((tmp_path / "turned.jpg").read_bytes()) == (300, 120)
    assert upright_size(tmp_path / "plain.png") == (120, 300)
    assert upright_size(tmp_path / "array.npy") == (30, 40)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="notes.txt: not an image"):
        upright_size(tmp_path / "notes.txt")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty.png: empty file \(0 bytes\)"):
        upright_size(tmp_path / "empty.png")


def big_photo(digits: np.ndarray, path, side: int = 4000) -> list[tuple[int, int, int, int]]:
    """A ``side`` x 3/4 ``side`` JPEG (12 megapixels at 4000) of MNIST ``digits`` `(n, 28, 28)` written large in a
    row on unevenly lit paper; returns each digit's square (top, left, bottom, right) in the file's pixels."""
    height, cell = side * 3 // 4, side // (len(digits) + 2)
    paper = np.linspace(230, 170, side)[None, :] * np.ones((height, 1))  # (H, W): light falling to the right
    squares = []
    for j, digit in enumerate(digits):
        big = np.asarray(Image.fromarray(digit).resize((cell, cell), Image.Resampling.BICUBIC), float) / 255
        top, left = height // 2 - cell // 2, cell * (j + 1)
        window = paper[top : top + cell, left : left + cell]
        window[...] = window * (1 - 0.85 * big)
        squares.append((top, left, top + cell - 1, left + cell - 1))
    Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).convert("RGB").save(path, quality=85)
    return squares


@pytest.mark.mnist
def test_a_12_megapixel_jpeg_is_read_from_a_small_decode(digits_checkpoint, mnist, tmp_path, monkeypatch):
    """A 4000x3000 JPEG is decoded at a quarter (Pillow's draft mode: no full-size decode), read right, and each box
    is given in the file's own pixels, around the digit's square."""
    from convnp.data import image_files
    from convnp.inference import Classifier
    from convnp.reading import read_number_file

    picks = [3, 2, 1, 18]
    squares = big_photo(mnist[2][picks], tmp_path / "house.jpg")
    decoded = []
    real = image_files._pillow_to_arrays
    monkeypatch.setattr(image_files, "_pillow_to_arrays", lambda img: decoded.append(img.size) or real(img))
    digits = read_number_file(Classifier.from_checkpoint(digits_checkpoint), tmp_path / "house.jpg")
    assert decoded == [(1000, 750)]  # the JPEG's 1/4 scale, not its 4000x3000
    assert "".join(str(d.label) for d in digits) == "".join(str(int(mnist[3][i])) for i in picks)
    cell = squares[0][2] - squares[0][0] + 1
    for d, (top, left, bottom, right) in zip(digits, squares):
        t, l, b, r = d.box
        # Inside the digit's square (MNIST leaves a margin of 4 of 28 around the ink), give or take one pixel of
        # the 1/4-scale decode scaled to 512 (8 file pixels).
        assert top - 8 <= t < b <= bottom + 8 and left - 8 <= l < r <= right + 8, (d.box, (top, left, bottom, right))
        assert b - t > cell // 2  # the digit's height, not a fragment
        assert d.image.shape == (28, 28)
