"""Digits in photos: each step of :mod:`convnp.data.digit_photo` on its own (against plain loops written here), and
:func:`~convnp.data.images.preprocess_digit` on pictures with uneven light, shadows, noise, coloured ink and paper,
and on blank photos, which must still say "no ink found"; ruled and squared paper's lines divided out; large photos
read small (:func:`read_image`'s ``max_side``).
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from convnp.data.digit_photo import (
    block_mean,
    box_blur,
    choose_digit,
    closing,
    dilate,
    ink_strength,
    label_components,
    measure_components,
    otsu_threshold,
    paper_brightness,
    remove_ruling,
    sliding_max,
    straight_lines,
)
from convnp.errors import DataError


# ---- filters against plain loops -------------------------------------------------------------------------------------
def loop_window(x: np.ndarray, radius: int, reduce) -> np.ndarray:
    """``reduce`` over each pixel's clipped ``(2r+1)`` square, pixel by pixel."""
    H, W = x.shape
    out = np.empty((H, W))
    for i in range(H):
        for j in range(W):
            out[i, j] = reduce(x[max(0, i - radius) : i + radius + 1, max(0, j - radius) : j + radius + 1])
    return out


@pytest.mark.parametrize("radius", [0, 1, 2, 5])
def test_box_blur_is_the_mean_of_the_clipped_window(radius, rng):
    x = rng.uniform(0, 255, (9, 13))
    np.testing.assert_allclose(box_blur(x, radius), loop_window(x, radius, np.mean), rtol=1e-12)
    flat = np.full((7, 11), 173.0)
    assert np.array_equal(box_blur(flat, radius), flat)  # whole numbers sum exactly: a flat sheet stays flat


@pytest.mark.parametrize("size", [1, 3, 5, 7, 9, 15, 31])
@pytest.mark.parametrize("axis", [0, 1])
def test_sliding_max_matches_a_loop(size, axis, rng):
    x = rng.normal(size=(11, 23))
    n = x.shape[axis]
    expected = np.stack([x.take(range(max(0, i - size // 2), min(n, i + size // 2 + 1)), axis=axis).max(axis=axis)
                         for i in range(n)], axis=axis)
    np.testing.assert_array_equal(sliding_max(x, size, axis), expected)


def test_dilate_and_closing(rng):
    x = rng.uniform(0, 255, (12, 17))
    np.testing.assert_array_equal(dilate(x, 2), loop_window(x, 2, np.max))
    assert (closing(x, 2) >= x).all()
    # A dark stroke 3 pixels wide is filled with the paper: exactly on an even sheet, and on a ramp of light to
    # within what the light changes across the stroke (the window's bright corner may fall on the stroke). A ramp
    # alone and a dark region wider than the square come back unchanged (away from the picture's edge, where the
    # square is cut short).
    yy, xx = np.mgrid[0:40, 0:60]
    sheet = np.full((40, 60), 200.0)
    sheet[10:30, 20:23] = 20.0
    np.testing.assert_array_equal(closing(sheet, 2), 200.0)
    ramp = 100.0 + 2.0 * xx + 0.5 * yy
    stroked = ramp.copy()
    stroked[10:30, 20:23] = 20.0
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(closing(stroked, 2) - ramp)[inner].max() <= 2.0 * 3 + 0.5 * 3
    np.testing.assert_allclose(closing(ramp, 2)[inner], ramp[inner])
    shadowed = np.full((40, 60), 200.0)
    shadowed[:, 40:] = 90.0  # a shadow 20 pixels wide: more than the 5-pixel square
    np.testing.assert_array_equal(closing(shadowed, 2), shadowed)
    wide = ramp.copy()
    wide[:, 40:] *= 0.5  # the same on a ramp: the light's slope in the shadow leaks across the square's width
    assert np.abs(closing(wide, 2) - wide)[inner].max() <= 1.0 * 4


def test_block_mean(rng):
    x = rng.uniform(0, 255, (7, 10))
    got = block_mean(x, 3)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got[0, 0], x[:3, :3].mean())
    np.testing.assert_allclose(got[2, 3], x[6, 9])  # the corner tile: the edge pixel repeated
    assert block_mean(x, 1) is not None and np.array_equal(block_mean(x, 1), x)


# ---- paper and ink ---------------------------------------------------------------------------------------------------
def lit_page(shape=(240, 300), gradient=90.0, shadow=0.0) -> np.ndarray:
    """The light on a page: falling by ``gradient`` grey levels (of 230) left to right, a corner in shadow."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    light = 1.0 - gradient / 230.0 * xx / (W - 1)
    if shadow:
        inside = 1.0 - (xx / (0.5 * W) + yy / (0.5 * H))  # > 0 in the top-left triangle
        light *= 1.0 - shadow / (1.0 + np.exp(-inside / 0.05))
    return light


def seven(shape=(240, 300), width=14) -> np.ndarray:
    """Ink coverage ``(H, W)`` of a drawn '7' (two strokes) in the middle of the page."""
    from PIL import Image, ImageDraw

    H, W = shape
    img = Image.new("L", (W, H), 0)
    pen = ImageDraw.Draw(img)
    pen.line([(W * 0.35, H * 0.25), (W * 0.65, H * 0.25), (W * 0.45, H * 0.8)], fill=255, width=width)
    return np.asarray(img, dtype=np.float64) / 255.0


def test_paper_brightness_follows_the_light_under_the_ink():
    pytest.importorskip("PIL")
    light = lit_page(shadow=0.5)
    picture = 230.0 * light * (1 - 0.85 * seven())  # dark ink on lit paper
    paper = paper_brightness(picture, stroke_radius=20)
    on_ink = seven() > 0.5
    # Under the strokes the estimate is the lit paper's brightness (a few per cent off where the shadow bends).
    np.testing.assert_allclose(paper[on_ink], 230.0 * light[on_ink], rtol=0.08)
    ink = ink_strength(picture, paper)
    # The ink keeps its strength; the paper, shadow and all, stays far below it (the shadow's soft rim, which a
    # closing partly fills, is the most that remains).
    assert np.median(ink[on_ink]) > 0.8 and np.percentile(ink[seven() == 0], 99) < 0.2
    assert np.median(ink[seven() == 0]) < 0.02


def test_ink_strength_is_the_same_in_shadow_and_in_light():
    paper = np.array([[200.0, 100.0]])
    picture = paper * 0.3  # the same ink, which takes 70% of the light
    np.testing.assert_allclose(ink_strength(picture, paper), [[0.7, 0.7]])
    assert ink_strength(np.array([[250.0]]), np.array([[200.0]]))[0, 0] == 0  # brighter than the paper: no ink
    assert ink_strength(np.array([[0.0]]), np.array([[0.0]]))[0, 0] == 0  # no light at all: nothing to say


def test_otsu_threshold(rng):
    two = np.array([0.1] * 90 + [0.8] * 10)
    assert 0.1 <= otsu_threshold(two) < 0.8
    assert ((two > otsu_threshold(two)) == (two == 0.8)).all()
    modes = np.concatenate([rng.normal(50, 5, 5000), rng.normal(180, 10, 1000)])
    assert 50 + 3 * 5 < otsu_threshold(modes) < 180 - 3 * 10  # between the modes, 3 sd clear of each
    assert otsu_threshold(np.full(10, 3.0)) == 3.0


# ---- connected components --------------------------------------------------------------------------------------------
def flood_fill_labels(mask: np.ndarray) -> np.ndarray:
    """8-connected labels by breadth-first flood fill, numbered in raster order of each region's first pixel."""
    H, W = mask.shape
    labels = np.zeros((H, W), int)
    n = 0
    for i in range(H):
        for j in range(W):
            if mask[i, j] and not labels[i, j]:
                n += 1
                labels[i, j] = n
                queue = [(i, j)]
                while queue:
                    y, x = queue.pop()
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            v, u = y + dy, x + dx
                            if 0 <= v < H and 0 <= u < W and mask[v, u] and not labels[v, u]:
                                labels[v, u] = n
                                queue.append((v, u))
    return labels


@pytest.mark.parametrize("density", [0.2, 0.45, 0.6])
def test_labels_match_a_flood_fill(density, rng):
    mask = rng.random((40, 57)) < density
    labels, n = label_components(mask)
    expected = flood_fill_labels(mask)
    np.testing.assert_array_equal(labels, expected)
    assert n == expected.max()


def test_labels_of_a_spiral_and_diagonal_touches():
    # A long winding path is one region however it winds; pixels touching only at corners are one region.
    spiral = np.zeros((21, 21), bool)
    top, left, bottom, right = 0, 0, 20, 20
    while top <= bottom and left <= right:
        spiral[top, left : right + 1] = spiral[top : bottom + 1, right] = True
        spiral[bottom, left : right + 1] = True
        spiral[top + 2 : bottom + 1, left] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
        if top <= bottom:
            spiral[top - 1, left] = True  # the step inwards
    labels, n = label_components(spiral)
    np.testing.assert_array_equal(labels, flood_fill_labels(spiral))
    assert label_components(np.eye(5, dtype=bool))[1] == 1
    assert label_components(np.zeros((3, 4), bool))[1] == 0


def test_measure_components():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:7] = True  # 3 x 4
    mask[7:10, 0] = True  # on the edge
    ink = mask * 0.5
    labels, n = label_components(mask)
    parts = measure_components(labels, n, ink)
    assert n == 2 and list(parts.area) == [12, 3]
    assert (parts.top[0], parts.bottom[0], parts.left[0], parts.right[0]) == (2, 4, 3, 6)
    np.testing.assert_allclose([parts.cy[0], parts.cx[0]], [3.0, 4.5])
    np.testing.assert_allclose(parts.mass, [6.0, 1.5])
    assert list(parts.border) == [False, True]
    assert len(measure_components(*label_components(np.zeros((3, 3), bool)), np.zeros((3, 3)))) == 0


def test_choose_digit_keeps_the_digit_and_its_pieces_only():
    mask = np.zeros((100, 100), bool)
    mask[30:70, 45:52] = True  # the digit's main stroke
    mask[25:29, 40:60] = True  # a separate bar just above it: part of the digit
    mask[90, 5] = True  # a speck far away
    mask[45, 60] = True  # a speck near: too small to count
    mask[0:100, 95:100] = True  # a band along the edge: a page edge or a shadow's rim
    ink = mask.astype(float)
    labels, n = label_components(mask)
    parts = measure_components(labels, n, ink)
    keep = choose_digit(parts, mask.shape)
    kept = np.concatenate([[False], keep])[labels]
    assert kept[30:70, 45:52].all() and kept[25:29, 40:60].all()
    assert not kept[90, 5] and not kept[45, 60] and not kept[:, 95:].any()
    assert choose_digit(measure_components(*label_components(np.zeros((4, 4), bool)), np.zeros((4, 4))),
                        (4, 4)).size == 0


# ---- ruled and squared paper ----------------------------------------------------------------------------------------
def ruled(shape=(100, 160), rows=(20, 60), cols=(), strength=0.25) -> np.ndarray:
    """An ink-strength picture of printed lines, 2 px wide, across the whole of it."""
    x = np.zeros(shape)
    for r in rows:
        x[r : r + 2] = strength
    for c in cols:
        x[:, c : c + 2] = strength
    return x


def test_straight_lines_keeps_long_lines_only(rng):
    x = ruled()
    x[40, 30:110] = 0.9  # a long pen stroke, but across half the picture only
    x[15:85, 80:83] = 0.9  # a vertical stroke crossing the lines, 70% of the picture's height
    lines = straight_lines(x, 1, length=40)
    np.testing.assert_allclose(lines[[20, 21, 60, 61]], 0.25)  # the line's strength, also where the stroke crosses
    # Beside the lines (a line turned a little may be there), only the stroke, and only the line's strength of it.
    beside = np.zeros(100, bool)
    beside[[19, 22, 59, 62]] = True
    assert not lines[~beside & ~np.isin(np.arange(100), [20, 21, 60, 61])].any()
    assert set(map(tuple, np.argwhere(lines[beside]))) <= {(i, c) for i in range(4) for c in (80, 81, 82)}
    assert lines[beside].max() == 0.25
    assert not straight_lines(x, 0, length=25).any()  # no vertical line: the stroke is not 80% as tall
    # Noisy and turned by one pixel across the picture, a line is still found.
    tilted = np.zeros((100, 160))
    tilted[20, :80] = tilted[21, 80:] = 0.25
    tilted = np.clip(tilted + rng.normal(0, 0.03, tilted.shape), 0, 1)
    assert {20, 21} <= set(np.flatnonzero(straight_lines(tilted, 1, length=40).any(axis=1))) <= {19, 20, 21, 22}


def test_remove_ruling_divides_out_repeated_lines_only():
    x = ruled(rows=range(5, 100, 20), cols=range(7, 160, 20))  # squared paper
    x[30:70, 40:46] = 0.9  # a stroke crossing two lines and a column
    out = remove_ruling(x)
    stroke = np.zeros_like(x, bool)
    stroke[30:70, 40:46] = True
    assert out[~stroke].max() == 0  # every line gone
    # The stroke keeps its strength away from the lines, and nearly all of it where one crosses (or passes a row
    # away, where a line turned a little could be): (0.9 - 0.25) / (1 - 0.25), the line divided out as paper is.
    crossed = [44, 45, 46, 47, 64, 65, 66, 67]  # the lines at rows 45-46 and 65-66, and a row either side
    np.testing.assert_allclose(out[30:70, 42], [0.65 / 0.75 if r in crossed else 0.9 for r in range(30, 70)])
    # Two lines are no ruling (a page edge, a long stroke of a 1): left as they are.
    two = ruled(rows=(20, 60))
    np.testing.assert_array_equal(remove_ruling(two), two)


def squared_paper(cover: np.ndarray, spacing: int = 20, darkness: float = 0.3, **kw) -> np.ndarray:
    """:func:`photo` of ``cover`` on squared paper: pale lines, 2 px wide, every ``spacing`` px both ways."""
    lines = np.zeros(cover.shape)
    lines[7::spacing] = lines[8::spacing] = 1.0
    lines[:, 5::spacing] = lines[:, 6::spacing] = 1.0
    return photo(coverage=cover, **kw) * (1 - darkness * lines * (1 - cover))


@pytest.mark.parametrize("case", [{"ink_rgb": (118, 118, 124)}, {"ink_rgb": (25, 25, 30), "darkness": 0.4},
                                  {"gradient": 90.0, "shadow": 0.5, "noise": 6.0}])
def test_a_digit_on_squared_paper_prepares_like_the_clean_drawing(case):
    """Without the lines divided out, pencil on squared paper (or dark lines under any ink) joins the grid into one
    region with the digit, and the network is shown the grid: a similarity of about 0.2."""
    pytest.importorskip("PIL")
    from convnp.data.images import preprocess_digit

    settings = {"gradient": 0.0, "shadow": 0.0, "noise": 2.0, **case}
    got = preprocess_digit(squared_paper(seven(), **settings))
    assert similarity(got, preprocess_digit(255 - 255 * seven())) > 0.9, case
    with pytest.raises(DataError, match="no ink found"):
        preprocess_digit(squared_paper(np.zeros((240, 300)), **settings))


# ---- whole photos ----------------------------------------------------------------------------------------------------
def photo(ink_rgb=(25, 25, 30), paper_rgb=(232, 230, 224), gradient=90.0, shadow=0.5, noise=6.0, seed=0,
          coverage=None) -> np.ndarray:
    """A grey photo ``(240, 300)`` of the drawn seven: coloured ink on coloured paper, uneven light, noise."""
    cover = seven() if coverage is None else coverage
    rgb = (np.asarray(paper_rgb, float) * (1 - cover[..., None]) + np.asarray(ink_rgb, float) * cover[..., None])
    rgb = rgb * lit_page(gradient=gradient, shadow=shadow)[..., None]
    rgb = rgb + np.random.default_rng(seed).normal(0, noise, rgb.shape)
    return np.clip(np.rint(rgb), 0, 255) @ np.array([0.299, 0.587, 0.114])


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.parametrize("case", [
    {}, {"ink_rgb": (30, 55, 165)}, {"ink_rgb": (185, 30, 40)}, {"ink_rgb": (118, 118, 124), "noise": 3.0},
    {"paper_rgb": (242, 226, 140)}, {"paper_rgb": (196, 164, 120), "ink_rgb": (30, 55, 165)},
    {"ink_rgb": (240, 240, 240), "paper_rgb": (40, 60, 50)},  # chalk on a blackboard
])
def test_a_photo_prepares_like_the_clean_drawing(case):
    pytest.importorskip("PIL")
    from convnp.data.images import preprocess_digit

    clean = preprocess_digit(255 - 255 * seven())  # black ink on white, even light
    got = preprocess_digit(photo(**case))
    assert got.shape == (28, 28) and got.max() == 255
    assert similarity(got, clean) > 0.9, case  # nothing of the shadow or the page comes along


def test_an_off_centre_turned_digit_is_found_and_centred():
    pytest.importorskip("PIL")
    from PIL import Image

    from convnp.data.images import preprocess_digit

    small = Image.fromarray((seven() * 255).astype(np.uint8)).resize((150, 120)).rotate(10)
    cover = np.zeros((240, 300))
    cover[110:230, 140:290] = np.asarray(small, float) / 255  # in the bottom-right corner
    got = preprocess_digit(photo(coverage=cover))
    rows, cols = np.nonzero(got)
    cy, cx = np.average(rows, weights=got[rows, cols]), np.average(cols, weights=got[rows, cols])
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


@pytest.mark.parametrize("case", [{"gradient": 90.0, "shadow": 0.5, "noise": 6.0}, {"gradient": 0, "shadow": 0,
                                                                                     "noise": 6.0}])
def test_a_blank_photo_has_no_ink(case):
    pytest.importorskip("PIL")
    from convnp.data.images import preprocess_digit

    with pytest.raises(DataError, match="no ink found"):
        preprocess_digit(photo(coverage=np.zeros((240, 300)), **case))


# ---- large photos --------------------------------------------------------------------------------------------------
def test_a_large_jpeg_is_read_small_and_prepared_the_same(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from convnp.data.image_files import read_image, read_image_bytes
    from convnp.data.images import WORK_SIDE, load_digits, preprocess_digit

    big = Image.fromarray(photo(noise=2.0).astype(np.uint8)).convert("RGB").resize((2400, 1920))
    big.save(tmp_path / "big.jpg", quality=90)
    small = read_image(tmp_path / "big.jpg", max_side=WORK_SIDE)
    assert WORK_SIDE <= max(small.shape) < 2 * WORK_SIDE and small.shape[0] * 2400 == small.shape[1] * 1920
    assert read_image(tmp_path / "big.jpg").shape == (1920, 2400)  # without max_side: the full picture
    data = (tmp_path / "big.jpg").read_bytes()
    np.testing.assert_array_equal(read_image_bytes(data, max_side=WORK_SIDE), small)
    full = preprocess_digit(read_image(tmp_path / "big.jpg"))
    assert similarity(load_digits([tmp_path / "big.jpg"])[0, ..., 0], full) > 0.97
    buf = io.BytesIO()
    big.save(buf, format="PNG")  # not a JPEG: decoded, then averaged down by a whole factor
    assert WORK_SIDE <= max(read_image_bytes(buf.getvalue(), max_side=WORK_SIDE).shape) < 2 * WORK_SIDE


@pytest.mark.mnist
def test_a_large_photo_on_the_page_gets_the_same_answer_as_predict(digits_checkpoint, tmp_path, capsys):
    """The page decodes an upload for a digit model as ``convnp predict`` reads the file (small, by JPEG draft
    mode), so a phone photo gets the same probabilities from both."""
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    Image = pytest.importorskip("PIL.Image")
    import json
    import warnings

    from convnp.cli.main import main
    from convnp.web.app import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient

    from PIL import ImageDraw

    scribble = Image.fromarray((seven() * 255).astype(np.uint8))
    ImageDraw.Draw(scribble).ellipse([(100, 90), (180, 200)], outline=255, width=10)  # a 7 and a 0: unsure
    cover = np.asarray(scribble, dtype=np.float64) / 255
    big = Image.fromarray(photo(noise=3.0, coverage=cover).astype(np.uint8)).convert("RGB").resize((1800, 1440))
    big.save(tmp_path / "phone.jpg", quality=85)
    assert main(["predict", str(digits_checkpoint), str(tmp_path / "phone.jpg"), "--json"]) == 0
    (expected,) = json.loads(capsys.readouterr().out)
    with TestClient(create_app(digits_checkpoint)) as client:
        answer = client.post("/api/predict?feature_maps=false",
                             files={"file": ("phone.jpg", (tmp_path / "phone.jpg").read_bytes(), "image/jpeg")})
    assert answer.status_code == 200, answer.text
    assert max(expected["probabilities"]) < 0.999  # unsure: a different preparation would show
    assert answer.json()["label"] == expected["label"]
    np.testing.assert_allclose(answer.json()["probabilities"], expected["probabilities"], atol=1e-9)
