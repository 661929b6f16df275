"""The web app (``convnp serve``) of models that do not take digits: the upload page, a health check that says
which kind of model it is, answers with class names and the top 5, the same preparation and the very same
probabilities as ``convnp predict`` for the same file, grey and colour models, 3 and 100 classes, every bad request a
4xx, and the OpenAPI schema fuzzed with schemathesis. The digit model's app: tests/test_web.py."""

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")
pytest.importorskip("PIL")
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette nudges towards httpx2; httpx works here
    from fastapi.testclient import TestClient  # noqa: E402
from colour_model import COLOURS, NAMES, framed, noisy, png_bytes, train_colour_model  # noqa: E402
from PIL import Image  # noqa: E402
from schema_fuzz import schema_test  # noqa: E402
from test_predict_images import by_hand, dense_checkpoint  # noqa: E402

from convnp.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from convnp.cli.main import main  # noqa: E402
from convnp.data.transforms import Standardize  # noqa: E402
from convnp.layers import Dense, Flatten  # noqa: E402
from convnp.sequential import Sequential  # noqa: E402
from convnp.web.app import MAX_BODY_BYTES, MAX_IMAGE_BODY_BYTES, create_app  # noqa: E402


# ---- fixtures and helpers ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """sprint trained on 32x32 pictures of twelve named colours (tests/colour_model.py)."""
    return train_colour_model(tmp_path_factory.mktemp("web-colours"))


@pytest.fixture(scope="module")
def client(colour_run):
    with TestClient(create_app(colour_run)) as c:
        yield c


def upload(client, data: bytes, name: str = "picture.png", **params):
    return client.post("/api/predict", files={"file": (name, data, "application/octet-stream")},
                       params={"feature_maps": "false", **params})


def predict_cli(capsys, checkpoint, path) -> dict:
    """``convnp predict CHECKPOINT PATH --json --top 5``'s entry for the file."""
    assert main(["predict", str(checkpoint), str(path), "--json", "--top", "5"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    return result


def assert_same_as_predict(body: dict, cli: dict) -> None:
    """The server's answer and convnp predict's for the same file: the same label, name and probabilities (to the
    bit), and the same top 5 with the same names."""
    assert body["probabilities"] == cli["probabilities"]
    assert (body["label"], body["class"]) == (cli["label"], cli["class"])
    assert [[t["label"], t["probability"]] for t in body["top"]] == cli["top"]
    assert [t["class"] for t in body["top"]] == cli["top_classes"]


# ---- the happy paths -------------------------------------------------------------------------------------------------
def test_health_says_which_kind_of_model(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "images" and body["input_shape"] == [32, 32, 3] and body["classes"] == NAMES
    assert body["status"] == "ok" and body["model"] == "sprint" and body["parameters"] > 0


def test_the_upload_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    for needle in ['<input type="file" id="file" accept="image/*"', 'id="preview"', 'id="crop"', 'id="top"',
                   '"drop"', '"paste"', "/api/predict?feature_maps=false", "/api/health", 'aria-busy="false"']:
        assert needle in html, needle
    assert 'id="pad"' not in html  # not the drawing pad
    assert "http://" not in html and "https://" not in html  # no external resources


@pytest.mark.parametrize("centre, margin", [("red", "blue"), ("yellow", "black"), ("cyan", "magenta")])
def test_a_wide_picture_is_named_by_its_centre(client, centre, margin):
    """Scaled to cover 32x32 and cut from the centre, the picture is its centre's colour; squashed, it would be
    mostly the margin's. The answer names it, and the top 5 are named, most probable first."""
    body = upload(client, png_bytes(framed(centre, margin))).json()
    assert body["class"] == centre and body["label"] == NAMES.index(centre)
    assert body["probabilities"][body["label"]] > 0.5
    assert len(body["top"]) == 5 and body["top"][0] == {"label": body["label"], "class": centre,
                                                        "probability": body["probabilities"][body["label"]]}
    assert [t["class"] for t in body["top"]] == [NAMES[t["label"]] for t in body["top"]]
    assert [t["probability"] for t in body["top"]] == sorted(body["probabilities"], reverse=True)[:5]


def test_the_same_file_gets_convnp_predicts_answer(client, colour_run, tmp_path, capsys):
    """A PNG, a JPEG, a grey PNG, a tall picture with transparency: uploaded (multipart or raw body) or given to
    convnp predict, the same probabilities to the bit."""
    rng = np.random.default_rng(8)
    files = {"wide.png": framed("orange", "green"), "noisy.jpg": noisy(["purple"], rng, 48)[0],
             "grey.png": noisy(["grey"], rng)[0].mean(axis=2).astype(np.uint8),  # 32x32: its noise kept
             "tall.png": framed("brown", "white").transpose(1, 0, 2)}
    for name, pixels in files.items():
        Image.fromarray(pixels).save(tmp_path / name)
    rgba = Image.fromarray(framed("red", "grey", 40, 40)).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.where(np.arange(40)[:, None] < 30, 255, 0).repeat(40, 1).astype(np.uint8)))
    rgba.save(tmp_path / "alpha.png")
    answers = {}
    for name in [*files, "alpha.png"]:
        data = (tmp_path / name).read_bytes()
        cli = predict_cli(capsys, colour_run, tmp_path / name)
        assert_same_as_predict(upload(client, data, name).json(), cli)
        raw = client.post("/api/predict", content=data, headers={"content-type": "image/png"},
                          params={"feature_maps": "false"})
        assert raw.status_code == 200 and raw.json() == upload(client, data, name).json()
        answers[name] = cli["class"]
    assert answers == {"wide.png": "orange", "noisy.jpg": "purple", "grey.png": "grey", "tall.png": "brown",
                       "alpha.png": "red"}


def test_grey_files_for_colour_models_and_colour_files_for_grey_ones(tmp_path, capsys):
    """The answer is the model's for the file's pixels converted, rounded, scaled and cut as convnp predict does,
    computed by hand (a Flatten + Dense model), for a grey model and a colour one."""
    from convnp.data.image_files import fit_image

    rng = np.random.default_rng(9)
    colour, grey = rng.integers(0, 256, (30, 70, 3), dtype=np.uint8), rng.integers(0, 256, (70, 30), dtype=np.uint8)
    for channels, pixels, by_step in [
        (1, colour, np.rint(colour @ [0.299, 0.587, 0.114])[..., None]),  # BT.601 luma, whole grey levels
        (3, grey, np.repeat(grey[..., None], 3, axis=2)),
    ]:
        path, model = dense_checkpoint(tmp_path / f"m{channels}.npz", (12, 16, channels), NAMES[:7])
        expected = by_hand(model, load_checkpoint(path).standardize.to_dict(),
                           fit_image(by_step.astype(np.uint8), (12, 16)).astype(np.float64))
        with TestClient(create_app(path)) as c:
            assert c.get("/api/health").json()["input_shape"] == [12, 16, channels]
            body = upload(c, png_bytes(pixels)).json()
        np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
        assert body["label"] == int(np.argmax(expected)) and body["class"] == NAMES[body["label"]]
        Image.fromarray(pixels).save(tmp_path / "file.png")
        assert_same_as_predict(body, predict_cli(capsys, path, tmp_path / "file.png"))


@pytest.mark.parametrize("n_classes", [3, 43, 100])
def test_few_and_many_classes(tmp_path, n_classes):
    """The top list has 5 entries, or all the classes of a model with fewer; 100 names come back in health."""
    names = [f"sign {k:03d}" for k in range(n_classes)]
    model = Sequential([Flatten(), Dense(8 * 8 * 3, n_classes, rng=np.random.default_rng(n_classes))],
                       input_shape=(8, 8, 3))
    standardize = Standardize(1 / 255, [0.5] * 3, [0.25] * 3)
    meta = {"classes": names, "preprocessing": standardize.to_dict()}
    path = save_checkpoint(tmp_path / "many.npz", model, meta=meta)
    with TestClient(create_app(path)) as c:
        health = c.get("/api/health").json()
        body = upload(c, png_bytes(framed("red", "blue", 20, 30))).json()
    assert health["classes"] == names and health["kind"] == "images"
    assert len(body["probabilities"]) == n_classes and abs(sum(body["probabilities"]) - 1) < 1e-6
    assert len(body["top"]) == min(5, n_classes)
    order = np.argsort(-np.array(body["probabilities"]), kind="stable")[: min(5, n_classes)]
    assert [(t["label"], t["class"]) for t in body["top"]] == [(int(k), names[k]) for k in order]


def test_feature_maps_of_a_colour_picture(client):
    """?feature_maps=true (the default) gives the first convolution's output, as for a digit model."""
    body = client.post("/api/predict", files={"file": ("p.png", png_bytes(framed("red", "blue")), "image/png")}).json()
    assert body["feature_maps"]["shape"] == [32, 32, 16] and body["feature_maps"]["encoding"] == "base64-uint8"


def test_a_photo_over_the_digit_limit_is_accepted(client):
    """An image model takes bodies up to 16 MiB (a phone's photo), not the digit page's 1 MiB."""
    data = png_bytes(np.random.default_rng(10).integers(0, 256, (700, 700, 3), dtype=np.uint8))  # noise: ~1.5 MB
    assert MAX_BODY_BYTES < len(data) < MAX_IMAGE_BODY_BYTES
    r = upload(client, data)
    assert r.status_code == 200, r.text
    assert len(r.json()["probabilities"]) == len(NAMES)


# ---- bad requests: always a 4xx with a JSON detail -------------------------------------------------------------------
def bomb_header(width: int, height: int) -> bytes:
    from hostile_images import png_header_only

    return png_header_only(width, height)


BAD_REQUESTS = {
    "json pixels": (lambda c: c.post("/api/predict", json={"pixels": [[0] * 28] * 28}), 415, "not json pixels"),
    "text/plain": (lambda c: c.post("/api/predict", content=b"7", headers={"content-type": "text/plain"}), 415,
                   "text/plain"),
    "not an image": (lambda c: upload(c, b"hello, not a png"), 400, "not an image"),
    "empty upload": (lambda c: upload(c, b""), 400, "empty"),
    "empty body": (lambda c: c.post("/api/predict"), 400, "empty"),
    "multipart without file": (lambda c: c.post("/api/predict", data={"other": "1"},
                                                files={"x": ("a.png", b"1", "image/png")}), 422, "file"),
    "bad query": (lambda c: upload(c, b"x", feature_maps="maybe"), 422, "feature_maps"),
    "body over 16 MiB": (lambda c: c.post("/api/predict", content=b"\0" * (MAX_IMAGE_BODY_BYTES + 1),
                                          headers={"content-type": "image/png"}), 413, "16,777,217 bytes is over"),
    "bomb header 5000x4000": (lambda c: upload(c, bomb_header(5000, 4000)), 413, "5000x4000"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_with_a_detail(client, case):
    send, status, phrase = BAD_REQUESTS[case]
    r = send(client)
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert phrase.lower() in detail.lower() and "\n" not in detail and "Traceback" not in detail, detail
    assert client.get("/api/health").status_code == 200  # still serving


def test_the_openapi_document_describes_the_image_app(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/predict"]["post"]
    assert set(op["requestBody"]["content"]) == {"multipart/form-data", "image/*"}  # no JSON pixels
    assert f"{MAX_IMAGE_BODY_BYTES:,} bytes" in op["responses"]["413"]["description"]
    assert "cover" in op["description"] and "centre" in op["description"]
    schemas = spec["components"]["schemas"]
    assert "top" in schemas["Prediction"]["required"]
    assert set(schemas["TopClass"]["required"]) == {"label", "class", "probability"}
    assert set(schemas["Health"]["properties"]["kind"]["enum"]) == {"digits", "images"}


# ---- convnp serve ---------------------------------------------------------------------------------------------------
def test_serve_refuses_a_model_of_four_channels_in_one_line(tmp_path, capsys, monkeypatch):
    """The page sends grey or RGB pictures: a 4-channel model is refused before anything listens."""
    import convnp.web.server as server

    monkeypatch.setattr(server, "listen", lambda *a, **k: pytest.fail("convnp serve went on to listen"))
    model = Sequential([Flatten(), Dense(4 * 4 * 4, 2, rng=np.random.default_rng(0))], input_shape=(4, 4, 4))
    path = save_checkpoint(tmp_path / "rgba.npz", model,
                           meta={"preprocessing": Standardize(1 / 255, [0.5] * 4, [0.25] * 4).to_dict()})
    assert main(["serve", str(path), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "takes images of shape (4, 4, 4) (H, W, C) with C neither 1 nor 3" in err, err


# ---- the OpenAPI schema of an image model's app, fuzzed --------------------------------------------------------------
def _untrained_colour_app():
    """An untrained sprint of 32x32x3 with named classes: only that every answer is documented matters."""
    from convnp.models import get_model

    folder = tempfile.TemporaryDirectory(prefix="convnp-web-images-schema-")
    path = Path(folder.name) / "untrained.npz"
    model = get_model("sprint", input_shape=(32, 32, 3), num_classes=12, rng=np.random.default_rng(0))
    save_checkpoint(path, model, meta={"model_name": "sprint", "classes": NAMES,
                                       "preprocessing": Standardize(1 / 255, [0.5] * 3, [0.25] * 3).to_dict()})
    app = create_app(path)
    app.state.tmp = folder  # removed with the app
    return app


test_openapi_schema_holds = schema_test(_untrained_colour_app)


def test_the_colours_are_the_training_names(colour_run):
    """The fixture's model stores the names its data gave, in sorted order, as every test above assumes."""
    assert load_checkpoint(colour_run / "best.npz").meta["classes"] == NAMES == sorted(COLOURS)
