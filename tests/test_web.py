"""The web app (``convnp serve``) of a digit model: page, health, predictions on real digits, every bad request -> a
4xx, and the OpenAPI schema fuzzed with schemathesis (no 5xx, responses as documented). Models that do not take
digits: tests/test_web_images.py."""

import io
import json
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")
pytest.importorskip("PIL")
with warnings.catch_warnings():
    # Starlette nudges towards httpx2; httpx is what the test extra installs and what works here.
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from schema_fuzz import schema_test  # noqa: E402

from convnp.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from convnp.cli.main import main  # noqa: E402
from convnp.web.app import MAX_BODY_BYTES, create_app  # noqa: E402

N_DIGITS = 10


# ---- fixtures and helpers ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint_path(digits_checkpoint):
    """The shared trained notebook model (tests/conftest.py)."""
    return digits_checkpoint


@pytest.fixture(scope="module")
def client(checkpoint_path):
    with TestClient(create_app(checkpoint_path)) as c:
        yield c


@pytest.fixture(scope="module")
def digits(mnist, checkpoint_path):
    """The first test digits ``(N, 28, 28)`` uint8 and the checkpoint's own predictions on them as they are."""
    ck = load_checkpoint(checkpoint_path)
    d = mnist[2][:N_DIGITS]
    return d, ck.model.predict(ck.prepare(d[..., None])).argmax(axis=1)


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def drawn(digit: np.ndarray) -> bytes:
    """An MNIST digit as someone would draw it on the page: 10x larger, dark ink on white, off centre."""
    big = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC))
    canvas = np.zeros((360, 400), np.uint8)
    canvas[20:300, 90:370] = big
    return png(255 - canvas)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring ``width x height`` grey pixels with almost no data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def upload(client, data: bytes, **params):
    return client.post("/api/predict", files={"file": ("digit.png", data, "image/png")}, params=params)


def assert_error(response, status: int, *words: str):
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    assert "Traceback" not in detail
    for word in words:
        assert word.lower() in detail.lower(), detail


# ---- the happy paths -------------------------------------------------------------------------------------------------
def test_health(client, checkpoint_path):
    r = client.get("/api/health")
    assert r.status_code == 200
    model = load_checkpoint(checkpoint_path).model
    n_params = sum(a.size for layer in model.layers for a in layer.params.values())  # counted here, not by n_params
    assert r.json() == {"status": "ok", "model": "notebook", "parameters": n_params, "kind": "digits",
                        "input_shape": [28, 28, 1], "classes": [str(k) for k in range(10)]}


def test_page_is_served_with_the_canvas_and_ids(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<canvas id="pad" width="280" height="280"' in html
    for needle in ['id="prediction"', 'id="clear"', "prob-${k}", "/api/predict", "pointerdown", "aria-label"]:
        assert needle in html
    assert "http://" not in html and "https://" not in html  # no external resources


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/predict"]["post"]
    assert {"200", "400", "413", "415", "422"} <= set(op["responses"])
    assert {"application/json", "multipart/form-data", "image/*"} <= set(op["requestBody"]["content"])


@pytest.mark.mnist
def test_drawn_mnist_digits_get_the_models_own_answers(client, digits):
    d, expected = digits
    got, maps = [], None
    for digit in d:
        r = upload(client, drawn(digit))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["probabilities"]) == 10
        assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-6)
        assert body["label"] == int(np.argmax(body["probabilities"]))
        # The five most probable digits, by name (a digit model's names are its digits), most probable first.
        order = np.argsort(-np.array(body["probabilities"]), kind="stable")[:5]
        assert body["top"] == [{"label": int(k), "class": str(k), "probability": body["probabilities"][k]}
                               for k in order]
        got.append(body["label"])
        maps = body["feature_maps"]
    # Drawn 10x larger and prepared again, a digit's pixels change a little; one near the model's decision boundary
    # may change its answer, so nine of the ten must keep theirs.
    assert np.sum(np.array(got) == expected) >= 9, (got, expected.tolist())
    # The notebook model's first layer: Conv2D(1, 8, 3) -> (26, 26, 8) maps, each scaled to use 0..255.
    assert maps["shape"] == [26, 26, 8] and maps["encoding"] == "base64-uint8"
    import base64

    a = np.frombuffer(base64.b64decode(maps["data"]), np.uint8).reshape(26, 26, 8)
    assert a.max() == 255


@pytest.mark.mnist
def test_the_same_digit_as_raw_bytes_and_as_json(client, digits):
    d, expected = digits
    got = []
    for digit in d:
        r = client.post("/api/predict", json={"pixels": digit.tolist()}, params={"feature_maps": "false"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["feature_maps"] is None
        assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-6)
        got.append(body["label"])
    # The server prepares the array again (crop, 20x20 box, centre of mass), which moves an MNIST digit's pixels a
    # little; one near the model's decision boundary may change its answer, so nine of the ten must keep theirs.
    assert np.sum(np.array(got) == expected) >= 9, (got, expected.tolist())
    # The same PNG as the raw body and as a multipart upload: the same pixels, so the very same answer.
    raw = client.post("/api/predict", content=drawn(d[0]), headers={"content-type": "image/png"})
    assert raw.status_code == 200, raw.text
    assert raw.json() == upload(client, drawn(d[0])).json()


@pytest.mark.mnist
def test_float_pixels_and_a_tiny_jpeg(client):
    """Non-integer JSON pixels and a 28x28 JPEG (dark on white) are read, and read as the "1" they show."""
    pixels = np.zeros((28, 28))
    pixels[4:24, 13:15] = 200.5  # a "1": a bar two pixels wide, 20 tall, as MNIST's box makes them
    r = client.post("/api/predict", json={"pixels": pixels.tolist()})
    assert r.status_code == 200 and r.json()["label"] == 1, r.text
    buf = io.BytesIO()
    Image.fromarray((255 - pixels).astype(np.uint8)).save(buf, format="JPEG")
    r = upload(client, buf.getvalue())
    assert r.status_code == 200 and r.json()["label"] == 1, r.text


# ---- bad requests: always a 4xx with a JSON detail, and the app carries on ---------------------------------------------
BLANK = [[0] * 28 for _ in range(28)]


def _with(value, row=3, col=5):
    pixels = [r[:] for r in BLANK]
    pixels[row][col] = value
    return {"pixels": pixels}


BAD_REQUESTS = {
    "not an image": (lambda c: upload(c, b"hello, not a png"), 400, "not an image"),
    "damaged png": (lambda c: upload(c, png(np.zeros((30, 30), np.uint8))[:60]), 400, "image"),
    "empty upload": (lambda c: upload(c, b""), 400, "empty"),
    "empty json body": (lambda c: c.post("/api/predict", headers={"content-type": "application/json"}), 400, "empty"),
    "empty body, no type": (lambda c: c.post("/api/predict"), 400, "empty"),
    "no ink (png)": (lambda c: upload(c, png(np.full((40, 40), 255, np.uint8))), 400, "no ink"),
    "no ink (json)": (lambda c: c.post("/api/predict", json={"pixels": BLANK}), 400, "no ink"),
    "27 rows": (lambda c: c.post("/api/predict", json={"pixels": BLANK[:27]}), 422, "pixels"),
    "29 columns": (lambda c: c.post("/api/predict", json={"pixels": [r + [0] for r in BLANK]}), 422, "pixels[0]"),
    "flat list": (lambda c: c.post("/api/predict", json={"pixels": [0] * 784}), 422, "pixels"),
    "256": (lambda c: c.post("/api/predict", json=_with(256)), 422, "pixels[3][5]", "255"),
    "negative": (lambda c: c.post("/api/predict", json=_with(-1)), 422, "pixels[3][5]"),
    "string": (lambda c: c.post("/api/predict", json=_with("7")), 422, "pixels[3][5]"),
    "boolean": (lambda c: c.post("/api/predict", json=_with(True)), 422, "pixels[3][5]"),
    "null": (lambda c: c.post("/api/predict", json=_with(None)), 422, "pixels[3][5]"),
    "NaN": (lambda c: c.post("/api/predict", content=json.dumps(_with(float("nan"))),
                             headers={"content-type": "application/json"}), 422, "pixels[3][5]"),
    "no pixels key": (lambda c: c.post("/api/predict", json={"pixel": BLANK}), 422, "pixels"),
    "extra key": (lambda c: c.post("/api/predict", json={"pixels": BLANK, "x": 1}), 422, "x"),
    "not json": (lambda c: c.post("/api/predict", content=b"{pixels:",
                                  headers={"content-type": "application/json"}), 422, "json"),
    "json list": (lambda c: c.post("/api/predict", json=[1, 2]), 422, ""),
    "text/plain": (lambda c: c.post("/api/predict", content=b"7", headers={"content-type": "text/plain"}), 415, "text/plain"),
    "multipart without file": (lambda c: c.post("/api/predict", data={"other": "1"},
                                                files={"x": ("a.png", b"1", "image/png")}), 422, "file"),
    "multipart text field": (lambda c: c.post("/api/predict", data={"file": "hello"},
                                              files={"x": ("a.png", b"1", "image/png")}), 422, "file upload"),
    "bad query": (lambda c: upload(c, b"x", feature_maps="maybe"), 422, "feature_maps"),
    "body over 1 MiB": (lambda c: upload(c, b"\0" * (MAX_BODY_BYTES + 1)), 413, "bytes"),
    "chunked over 1 MiB": (lambda c: c.post("/api/predict", content=(b"\0" * 65536 for _ in range(17)),
                                            headers={"content-type": "image/png"}), 413, "bytes"),
    "header lies": (lambda c: c.post("/api/predict", content=(b"\0" * 65536 for _ in range(17)),
                                     headers={"content-type": "image/png", "content-length": "10"}), 413, "bytes"),
    "bomb header 100000x100000": (lambda c: upload(c, png_header_only(100_000, 100_000)), 413, "too large"),
    "bomb header 5000x4000": (lambda c: upload(c, png_header_only(5000, 4000)), 413, "5000x4000"),
    "bomb 5000x5000 (1-bit)": (lambda c: upload(c, png(np.zeros((5000, 5000), bool), "1")), 413, "5000x5000"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_with_a_detail(client, case):
    send, status, *words = BAD_REQUESTS[case]
    assert_error(send(client), status, *words)
    assert client.get("/api/health").status_code == 200  # still serving


def test_the_bomb_is_small_and_refused_before_decoding(client, monkeypatch):
    data = png(np.zeros((5000, 5000), bool), "1")
    assert len(data) < 100_000
    import convnp.data.image_files as decode

    monkeypatch.setattr(decode, "_pillow_to_arrays", lambda img: pytest.fail("decoded a bomb"))
    assert_error(upload(client, data), 413)


def test_an_unexpected_error_is_a_500_without_a_traceback(checkpoint_path):
    app = create_app(checkpoint_path)

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    app.state.classifier.classify = boom
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/predict", json=_with(255))
        assert r.status_code == 500
        assert r.json() == {"detail": "internal error; the server's log has the details"}
        assert "secret" not in r.text and c.get("/api/health").status_code == 200


# ---- convnp serve ---------------------------------------------------------------------------------------------------
@pytest.fixture
def must_not_listen(monkeypatch):
    """Fail the test at the moment ``convnp serve`` would start listening, instead of letting it serve forever:
    these tests prove that the command stops before that point, so reaching it is the regression."""
    import uvicorn

    import convnp.web.server as server

    def fail(*args, **kwargs):
        pytest.fail("convnp serve went on to listen; it should have stopped with an error first")

    monkeypatch.setattr(server, "listen", fail)  # where convnp serve binds its port
    monkeypatch.setattr(uvicorn.Server, "run", fail)  # and where it would serve, should it ever bind elsewhere


def test_serve_refuses_a_bad_checkpoint_in_one_line(tmp_path, capsys, must_not_listen):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    assert main(["serve", str(bad), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("convnp: error:") and "not a convnp checkpoint" in err and err.count("\n") == 1


def test_serve_says_how_to_install_the_web_extra(checkpoint_path, monkeypatch, capsys, must_not_listen):
    import builtins

    real_import = builtins.__import__

    def no_uvicorn(name, *args, **kwargs):
        if name == "uvicorn":
            raise ImportError("No module named 'uvicorn'", name="uvicorn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    assert main(["serve", str(checkpoint_path)]) == 1
    err = capsys.readouterr().err
    assert "pip install 'convnp[web]'" in err and "uvicorn" in err and err.count("\n") == 1


def test_serve_rejects_a_bad_port(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "x.npz", "--port", "70000"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--port: expected a port number 0..65535" in err and "'70000'" in err, err


def test_serve_refuses_a_port_in_use_in_one_line(checkpoint_path, capsys, monkeypatch):
    """A port another socket listens on is refused in one line naming it, before uvicorn starts."""
    import socket

    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("uvicorn started on a port in use"))
    with socket.create_server(("127.0.0.1", 0)) as taken:  # listening: the port is really in use
        port = taken.getsockname()[1]
        assert main(["serve", str(checkpoint_path), "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, (out, err)
    assert err.startswith(f"convnp: error: --host 127.0.0.1 --port {port}: cannot listen there") and "--port 0" in err


# ---- the OpenAPI schema, fuzzed (tests/schema_fuzz.py) ---------------------------------------------------------------
# An app of its own, made when this module is collected: an untrained notebook model.
def _untrained_app():
    from convnp.models import notebook

    folder = tempfile.TemporaryDirectory(prefix="convnp-web-schema-")
    path = Path(folder.name) / "untrained.npz"
    save_checkpoint(path, notebook(rng=np.random.default_rng(0)), meta={"model_name": "notebook"})
    app = create_app(path)
    app.state.tmp = folder  # removed with the app
    return app


test_openapi_schema_holds = schema_test(_untrained_app)
