"""The server under fuzz and hostile images: schemathesis sends at least 500 generated requests (valid and invalid,
to every operation of the served OpenAPI schema) and every answer must be a documented non-5xx matching the schema;
the odd and broken image files of ``convnp predict``'s tests get the same answers through ``POST /api/predict`` (the
broken ones the same refusals from ``POST /api/read``);
the size limits act before anything is decoded.

The server under load (50 concurrent clients on a real uvicorn) is tests/test_web_load.py.
"""

from __future__ import annotations

import collections
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")
pytest.importorskip("PIL")
schemathesis = pytest.importorskip("schemathesis")
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette nudges towards httpx2; httpx works here
    from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from convnp.checkpoint import save_checkpoint  # noqa: E402
from convnp.models import notebook  # noqa: E402
from convnp.web.app import MAX_BODY_BYTES, create_app  # noqa: E402

MIN_REQUESTS = 500


class CountStatuses:
    """ASGI wrapper counting the status of every response the app sends."""

    def __init__(self, app):
        self.app, self.statuses = app, collections.Counter()

    async def __call__(self, scope, receive, send):
        async def counting_send(message):
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] += 1
            await send(message)

        await self.app(scope, receive, counting_send)


@pytest.fixture(scope="module")
def untrained_app():
    """An untrained notebook model: the answers do not matter here, only that each is documented and not a 5xx."""
    with tempfile.TemporaryDirectory(prefix="convnp-fuzz-") as folder:
        path = Path(folder) / "untrained.npz"
        save_checkpoint(path, notebook(rng=np.random.default_rng(0)), meta={"model_name": "notebook"})
        yield create_app(path)


# (operation, generation mode, media type) -> examples. Generating a body costs far more than answering it (a valid
# 28x28 JSON array is 784 numbers; 50-130 ms an example here), so the 500 requests are spread over every media type,
# valid and invalid, weighted towards the cheaper ones, rather than left to chance. GET /api/health has one possible
# request and no invalid one; POST /api/read takes image files only (its JSON is refused as a 415, tests/
# test_web_read.py).
STRATA = {
    ("POST /api/predict", GenerationMode.POSITIVE, "application/json"): 60,
    ("POST /api/predict", GenerationMode.POSITIVE, "multipart/form-data"): 60,
    ("POST /api/predict", GenerationMode.POSITIVE, "image/png"): 90,
    ("POST /api/predict", GenerationMode.NEGATIVE, "application/json"): 140,
    ("POST /api/predict", GenerationMode.NEGATIVE, "multipart/form-data"): 140,
    ("POST /api/predict", GenerationMode.NEGATIVE, "image/png"): 20,
    ("POST /api/read", GenerationMode.POSITIVE, "multipart/form-data"): 40,
    ("POST /api/read", GenerationMode.POSITIVE, "image/png"): 40,
    ("POST /api/read", GenerationMode.NEGATIVE, "multipart/form-data"): 60,
    ("POST /api/read", GenerationMode.NEGATIVE, "image/png"): 20,
    ("GET /api/health", GenerationMode.POSITIVE, None): 1,
}


# 35-90 s on this 2-core machine, idle to busy (generating the bodies is the cost): pytest-timeout's 300 s default
# could cut it short on a slower or busier one, and this test cannot hang (it is bounded by its example counts).
@pytest.mark.timeout(1800)
def test_schemathesis_sends_500_requests_and_every_answer_is_documented(untrained_app):
    counted = CountStatuses(untrained_app)
    schema = schemathesis.openapi.from_asgi("/openapi.json", counted)
    operations = {result.ok().label: result.ok() for result in schema.get_all_operations()}
    assert set(operations) == {"POST /api/predict", "POST /api/read", "GET /api/health"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    sent = {}
    for (label, mode, media_type), n in STRATA.items():
        before = sum(counted.statuses.values())
        strategy = operations[label].as_strategy(generation_mode=mode, media_type=media_type)

        # Bounded by the number of examples, not by time; in CI the conftest's profile derandomises it.
        @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=strategy)
        def fuzz(case):
            case.call_and_validate(checks=checks)

        fuzz()
        sent[(label, mode.value, media_type)] = sum(counted.statuses.values()) - before
    assert sum(sent.values()) >= MIN_REQUESTS, sent
    assert not [s for s in counted.statuses if s >= 500], dict(counted.statuses)
    # Both kinds of answer were exercised: classified digits and refused requests.
    assert counted.statuses[200] >= 50 and sum(v for s, v in counted.statuses.items() if 400 <= s < 500) >= 200, \
        dict(counted.statuses)


# ---- the odd and broken images of test_hostile_input.py, through the server ------------------------------------------
@pytest.fixture(scope="module")
def client(digits_checkpoint):
    with TestClient(create_app(digits_checkpoint)) as c:
        yield c


def post(client, data: bytes, name: str, raw: bool):
    if raw:  # the bytes as the body, typed as an image
        return client.post("/api/predict", content=data, headers={"content-type": "image/png"},
                           params={"feature_maps": "false"})
    return client.post("/api/predict", files={"file": (name, data, "application/octet-stream")},
                       params={"feature_maps": "false"})


@pytest.mark.mnist
@pytest.mark.parametrize("raw", [False, True], ids=["multipart", "raw body"])
def test_odd_but_valid_images_get_the_plain_images_answer(client, mnist, raw):
    """The same label as the plain grey PNG for every variant, and for the lossless ones the same probabilities."""
    from hostile_images import LOSSLESS, valid_files

    answers = {}
    for name, data in valid_files(mnist[2][0], mnist[2][1]).items():
        r = post(client, data, name, raw)
        assert r.status_code == 200, (name, r.text)
        answers[name] = r.json()
    plain = answers["grey.png"]
    assert plain["label"] == int(mnist[3][0])  # the first MNIST test digit's true label
    for name, body in answers.items():
        assert body["label"] == plain["label"], name
        if name in LOSSLESS:
            # The same pixels: each probability, however small, within a relative 1e-6 (JPEG's few grey levels
            # move the small ones by about 2%, so this tells lossless from lossy).
            np.testing.assert_allclose(body["probabilities"], plain["probabilities"], rtol=1e-6, atol=0, err_msg=name)
        else:  # JPEG and 64-colour palette move pixels by a few grey levels: the same answer, nearly as sure
            np.testing.assert_allclose(body["probabilities"], plain["probabilities"], atol=0.1, err_msg=name)


@pytest.mark.mnist
@pytest.mark.parametrize("raw", [False, True], ids=["multipart", "raw body"])
def test_broken_images_get_a_4xx_with_a_one_line_reason(client, raw):
    from hostile_images import broken_files

    for name, (data, status, phrase) in broken_files().items():
        r = post(client, data, name, raw)
        assert r.status_code == status, (name, r.status_code, r.text)
        detail = r.json()["detail"]
        assert phrase in detail and "\n" not in detail and "Traceback" not in detail, (name, detail)
    assert client.get("/api/health").status_code == 200


@pytest.mark.parametrize("raw", [False, True], ids=["multipart", "raw body"])
def test_broken_images_get_the_same_4xx_from_read(client, raw):
    """POST /api/read decodes uploads as POST /api/predict does: each broken file, the same status and reason."""
    from hostile_images import broken_files

    for name, (data, status, phrase) in broken_files().items():
        if raw:
            r = client.post("/api/read", content=data, headers={"content-type": "image/png"})
        else:
            r = client.post("/api/read", files={"file": (name, data, "application/octet-stream")})
        assert r.status_code == status, (name, r.status_code, r.text)
        detail = r.json()["detail"]
        assert phrase in detail and "\n" not in detail and "Traceback" not in detail, (name, detail)
    assert client.get("/api/health").status_code == 200


# ---- limits act before decoding --------------------------------------------------------------------------------------
def test_limits_act_before_decoding(untrained_app, monkeypatch):
    """A body over the limit is refused by its Content-Length, before it is read; an image over the pixel limit is
    refused from its header, before a pixel is inflated (multipart or raw body alike)."""
    import convnp.data.image_files as decode
    from hostile_images import png_header_only

    monkeypatch.setattr(decode, "_pillow_to_arrays", lambda img: pytest.fail("decoded an image over the limit"))
    with TestClient(untrained_app) as c:
        for raw in (False, True):
            r = post(c, png_header_only(5000, 4000), "big.png", raw)
            assert r.status_code == 413 and "5000x4000 pixels" in r.json()["detail"]
        r = c.post("/api/predict", content=b"\0" * (MAX_BODY_BYTES + 1), headers={"content-type": "image/png"})
        assert r.status_code == 413 and f"{MAX_BODY_BYTES + 1:,} bytes is over" in r.json()["detail"]
    spec = untrained_app.openapi()["paths"]["/api/predict"]["post"]["responses"]
    assert "413" in spec and "pixels" in spec["413"]["description"] and "bytes" in spec["413"]["description"]
