"""``POST /api/read``, the page's multi-digit mode: rows of real MNIST test digits are read right, with the very
answer ``convnp read --json`` gives for the same file (number, probabilities, boxes), boxes in the upload's own
pixels (a large photo decoded small, a phone photo stored sideways); a blank picture is "no ink found" and every bad
upload a one-line 4xx, as for ``POST /api/predict``; the endpoint is documented in the OpenAPI schema and served for
digit models only. The schema fuzzed: tests/test_web_fuzz.py; the page in a browser: tests/test_web_read_browser.py.
"""

import base64
import io
import json
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")
pytest.importorskip("PIL")
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette nudges towards httpx2; httpx works here
    from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from test_web import assert_error, png, png_header_only  # noqa: E402

from convnp.cli.main import main  # noqa: E402
from convnp.web.app import MAX_BODY_BYTES, create_app  # noqa: E402

CELL = 110  # each digit's square in a row picture, in pixels


@pytest.fixture(scope="module")
def client():
    """The shipped ``mnist-best`` (99.6% on MNIST's test set): rows are read right, every digit."""
    with TestClient(create_app("mnist-best")) as c:
        yield c


def row(digits: np.ndarray, cell: int = CELL, margin: int = 40) -> np.ndarray:
    """MNIST ``digits`` `(n, 28, 28)` written large in a row, dark ink on light paper: a grey picture `(H, W)`
    uint8, digit ``j`` in the square of side ``cell`` whose left edge is ``margin + cell * j``."""
    canvas = np.zeros((20 + cell + 40, cell * len(digits) + 2 * margin))
    for j, digit in enumerate(digits):
        big = np.asarray(Image.fromarray(digit).resize((cell, cell), Image.Resampling.BICUBIC), float) / 255
        canvas[20 : 20 + cell, margin + cell * j : margin + cell * (j + 1)] = big
    return np.clip(240 - 215 * canvas, 0, 255).astype(np.uint8)


def post(client, data: bytes, raw: bool = False, name: str = "row.png", mime: str = "image/png"):
    if raw:
        return client.post("/api/read", content=data, headers={"content-type": mime})
    return client.post("/api/read", files={"file": (name, data, mime)})


@pytest.fixture(scope="module")
def rows(mnist):
    """Three rows of MNIST test digits (4, 5 and 6 of them) as PNG bytes, and the numbers they show."""
    x, y = mnist[2], mnist[3]
    out = []
    for picks in ([3, 2, 1, 18], [0, 7, 8, 11, 4], [5, 6, 9, 12, 13, 15]):
        out.append((png(row(x[picks])), "".join(str(int(y[i])) for i in picks)))
    return out


def assert_reading(body: dict, number: str, size: list[int], cell: int = CELL, margin: int = 40,
                   scale: float = 1.0) -> None:
    """``body`` is a complete answer reading ``number``, each box inside its digit's square (scaled by ``scale``,
    give or take ``2 * scale`` pixels) and each prepared image 28x28 bytes."""
    assert body["number"] == number == "".join(d["class"] for d in body["digits"])
    assert body["size"] == size
    for j, d in enumerate(body["digits"]):
        assert d["label"] == int(d["class"]) and d["probability"] == max(d["probabilities"])
        assert abs(sum(d["probabilities"]) - 1) < 1e-6 and len(d["probabilities"]) == 10
        top, left, bottom, right = d["box"]
        slack = 2 * scale
        assert (margin + cell * j) * scale - slack <= left < right <= (margin + cell * (j + 1)) * scale + slack, d
        assert 20 * scale - slack <= top < bottom <= (20 + cell) * scale + slack, d
        assert d["prepared"]["shape"] == [28, 28, 1] and d["prepared"]["encoding"] == "base64-uint8"
        pixels = np.frombuffer(base64.b64decode(d["prepared"]["data"]), np.uint8)
        assert pixels.size == 784 and pixels.max() == 255


# ---- rows read right -------------------------------------------------------------------------------------------------
@pytest.mark.mnist
def test_rows_of_mnist_digits_are_read_right(client, rows):
    for data, number in rows:
        image = Image.open(io.BytesIO(data))
        for raw in (False, True):
            r = post(client, data, raw)
            assert r.status_code == 200, r.text
            assert_reading(r.json(), number, [image.height, image.width])


@pytest.mark.mnist
def test_the_same_answer_as_convnp_read(client, rows, tmp_path, capsys):
    """The page and the command line read through the same function: the same number, probabilities and boxes."""
    data, number = rows[1]
    (tmp_path / "row.png").write_bytes(data)
    assert main(["read", "mnist-best", str(tmp_path / "row.png"), "--json"]) == 0
    (cli,) = json.loads(capsys.readouterr().out)
    body = post(client, data).json()
    assert body["number"] == cli["number"] == number
    for mine, theirs in zip(body["digits"], cli["digits"], strict=True):
        assert mine["box"] == theirs["box"] and mine["class"] == theirs["class"]
        np.testing.assert_allclose(mine["probabilities"], theirs["probabilities"], rtol=1e-12, atol=0)


@pytest.mark.mnist
def test_a_large_jpeg_is_read_with_boxes_in_its_own_pixels(client, mnist):
    """A 2340x765 JPEG (the row 4.5 times as large) is decoded small, and the boxes come back in the upload's
    pixels."""
    picks = [3, 2, 1, 18]
    picture = Image.fromarray(row(mnist[2][picks])).resize((2340, 765), Image.Resampling.BICUBIC)  # from 520x170
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=60)
    assert len(buf.getvalue()) < MAX_BODY_BYTES
    r = post(client, buf.getvalue(), name="row.jpg", mime="image/jpeg")
    assert r.status_code == 200, r.text
    assert_reading(r.json(), "".join(str(int(mnist[3][i])) for i in picks), [765, 2340], scale=4.5)


@pytest.mark.mnist
def test_a_photo_stored_sideways_is_read_upright(client, mnist):
    """A phone photo stored sideways with an EXIF note: read upright, the size and boxes those of the upright
    picture."""
    picks = [0, 7, 8]
    upright = Image.fromarray(row(mnist[2][picks]))
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show": stored turned the other way
    buf = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, format="JPEG", quality=95, exif=exif)
    r = post(client, buf.getvalue(), name="sideways.jpg", mime="image/jpeg")
    assert r.status_code == 200, r.text
    assert_reading(r.json(), "".join(str(int(mnist[3][i])) for i in picks), [upright.height, upright.width])


# ---- refused ---------------------------------------------------------------------------------------------------------
BAD = {
    "blank page": (lambda c: post(c, png(np.full((150, 500), 240, np.uint8))), 400, "no ink found",
                   "expected digits written in a row"),
    "blank, raw body": (lambda c: post(c, png(np.full((150, 500), 240, np.uint8)), raw=True), 400, "no ink found"),
    "not an image": (lambda c: post(c, b"hello, not a png"), 400, "not an image"),
    "damaged png": (lambda c: post(c, png(np.zeros((30, 30), np.uint8))[:60]), 400, "image"),
    "empty upload": (lambda c: post(c, b""), 400, "empty"),
    "empty body": (lambda c: c.post("/api/read"), 400, "empty"),
    "json pixels": (lambda c: c.post("/api/read", json={"pixels": [[0] * 28] * 28}), 415, "not json pixels",
                    "/api/predict"),
    "text/plain": (lambda c: c.post("/api/read", content=b"2026", headers={"content-type": "text/plain"}), 415,
                   "text/plain"),
    "multipart without file": (lambda c: c.post("/api/read", data={"other": "1"},
                                                files={"x": ("a.png", b"1", "image/png")}), 422, "file"),
    "body over 1 MiB": (lambda c: post(c, b"\0" * (MAX_BODY_BYTES + 1)), 413, "bytes"),
    "bomb header 5000x4000": (lambda c: post(c, png_header_only(5000, 4000)), 413, "5000x4000"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_uploads_get_a_one_line_4xx(client, case):
    send, status, *words = BAD[case]
    r = send(client)
    assert_error(r, status, *words)
    assert "\n" not in r.json()["detail"]
    assert client.get("/api/health").status_code == 200  # still serving


def test_documented_for_digit_models_only(client, tmp_path):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/read"]["post"]
    assert {"200", "400", "413", "415", "422"} <= set(op["responses"])
    assert set(op["requestBody"]["content"]) == {"multipart/form-data", "image/*"}  # image files, no JSON
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Reading"}
    reading = spec["components"]["schemas"]["Reading"]
    assert {"number", "digits", "size"} <= set(reading["properties"])
    assert {"label", "class", "probability", "probabilities", "box", "prepared"} <= set(
        spec["components"]["schemas"]["DigitRead"]["properties"])

    from convnp.checkpoint import save_checkpoint
    from convnp.data.transforms import Standardize
    from convnp.layers import Dense, Flatten
    from convnp.sequential import Sequential

    model = Sequential([Flatten(), Dense(8 * 8 * 3, 2, rng=np.random.default_rng(0))], input_shape=(8, 8, 3))
    path = save_checkpoint(tmp_path / "colour.npz", model,
                           meta={"preprocessing": Standardize(1 / 255, [0.5] * 3, [0.25] * 3).to_dict()})
    with TestClient(create_app(path)) as images:
        assert "/api/read" not in images.get("/openapi.json").json()["paths"]
        assert images.post("/api/read", content=png(np.zeros((8, 8), np.uint8)),
                           headers={"content-type": "image/png"}).status_code in (404, 405)
