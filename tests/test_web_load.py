"""``convnp serve`` under load, as the README states it: a real uvicorn server in its own process on loopback, 50
concurrent clients each sending 20 requests on its own keep-alive connection, what the page sends (a 280x280 PNG
drawing as multipart field ``file``, with feature maps). Every one of the 1,000 answers is a 200 with a valid body,
and every answer for the same image is the same, byte for byte, and the model's own answer for it.

Ten different digits are in flight at once, so answers mixed up between concurrent requests would show. Nothing
waits for a length of time: the server is used once it prints the line saying it accepts connections, and the 50
clients start together at a barrier. The deadlines only bound how long a failure takes to show.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
import urllib.parse

import numpy as np
import pytest
from helpers import drawn_png, multipart, serve

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")
pytest.importorskip("PIL")

from convnp.data.image_files import read_image_bytes  # noqa: E402
from convnp.web.app import DigitClassifier, Prediction  # noqa: E402

CLIENTS, REQUESTS = 50, 20  # the README's figures
N_IMAGES = 10
FAILURE_DEADLINE_S = 120  # how long a broken server may take to be reported; never waited when all is well
# uvicorn closes a keep-alive connection left idle this long (its default; convnp serve keeps it).
KEEP_ALIVE_S = uvicorn.Config(app=None).timeout_keep_alive


@pytest.fixture(scope="module")
def server(digits_checkpoint):
    """``convnp serve --port 0`` in its own process, used once it prints that it accepts connections
    (tests/helpers.py); yields ``((host, port), server)``, ``server.tail()`` being its output for failure messages."""
    with serve(digits_checkpoint, deadline_s=FAILURE_DEADLINE_S) as (url, served):
        address = urllib.parse.urlsplit(url)
        yield (address.hostname, address.port), served


class Client:
    """One keep-alive connection sending requests one after another, as one page would."""

    def __init__(self, address):
        self.conn = http.client.HTTPConnection(*address, timeout=FAILURE_DEADLINE_S)
        self.sent_at = self.idle = self.request = None

    def send(self, body: bytes, content_type: str) -> None:
        now = time.monotonic()
        self.idle = None if self.sent_at is None else now - self.sent_at
        self.sent_at, self.request = now, (body, content_type)
        try:
            self._send()
        except (ConnectionResetError, BrokenPipeError) as err:
            self._reconnect_if_stale(err)
            self._send()

    def receive(self) -> tuple[int, bytes]:
        try:
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as err:
            self._reconnect_if_stale(err)
            self._send()
            response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()

    def _send(self) -> None:
        body, content_type = self.request
        self.conn.request("POST", "/api/predict?feature_maps=true", body=body, headers={"Content-Type": content_type})

    def _reconnect_if_stale(self, err: Exception) -> None:
        """uvicorn closes a keep-alive connection idle for KEEP_ALIVE_S; a client then reconnects and sends again,
        as browsers do. The server's idle time is at most the time since this client's previous request went out,
        so a connection dropped sooner than that is the server's failure and is raised."""
        if self.idle is None or self.idle < KEEP_ALIVE_S:
            raise err
        self.conn.close()  # the next request opens a new connection


@pytest.mark.mnist
def test_50_concurrent_clients_times_20_requests_all_answered_alike(server, digits_checkpoint, mnist):
    address, served = server
    images = [drawn_png(d) for d in mnist[2][:N_IMAGES]]
    bodies = [multipart(png) for png in images]
    # The model's answers computed here, without the server.
    classifier = DigitClassifier(digits_checkpoint)
    expected = [classifier.classify(read_image_bytes(png), feature_maps=True) for png in images]
    assert len({e.label for e in expected}) > 1  # different answers, so a mix-up between requests would show

    answers: list[list[tuple[int, int, bytes]]] = [[] for _ in range(CLIENTS)]  # per client: (image, status, body)
    errors: list[str] = []
    start = threading.Barrier(CLIENTS)

    def client(i: int) -> None:
        c = Client(address)
        try:
            for j in range(REQUESTS):
                k = (i + j) % N_IMAGES  # clients cycle through the images from different starts
                c.send(*bodies[k])
                if j == 0:
                    # Every client has its first request out before any reads an answer: 50 requests outstanding at
                    # once, whatever the machine's speed.
                    start.wait(timeout=FAILURE_DEADLINE_S)
                status, payload = c.receive()
                answers[i].append((k, status, payload))
        except Exception as err:  # noqa: BLE001 - reported below, with the client it happened to
            errors.append(f"client {i}: {type(err).__name__}: {err}")
            start.abort()  # the others stop waiting for this one
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()  # bounded: each socket operation times out after FAILURE_DEADLINE_S
    wall = time.monotonic() - t0

    assert errors == [], (errors[:5], served.tail())
    flat = [a for per_client in answers for a in per_client]
    assert len(flat) == CLIENTS * REQUESTS
    bad = [(k, status, payload[:200]) for k, status, payload in flat if status != 200]
    assert bad == [], (len(bad), bad[:3], served.tail())

    by_image: dict[int, set[bytes]] = {}
    for k, _, payload in flat:
        by_image.setdefault(k, set()).add(payload)
    assert sorted(by_image) == list(range(N_IMAGES))
    for k, payloads in by_image.items():
        assert len(payloads) == 1, f"image {k}: {len(payloads)} different answers"
        body = json.loads(next(iter(payloads)))
        Prediction.model_validate(body)  # the documented schema
        want = expected[k]
        assert body["label"] == want.label == int(np.argmax(body["probabilities"])), (k, body["label"], want.label)
        assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1, abs=1e-9)
        np.testing.assert_allclose(body["probabilities"], want.probabilities, rtol=1e-6, atol=0, err_msg=f"image {k}")
        maps = body["feature_maps"]
        assert maps["shape"] == want.feature_maps.shape
        assert len(base64.b64decode(maps["data"])) == int(np.prod(maps["shape"]))
        assert maps["data"] == want.feature_maps.data, f"image {k}: feature maps differ from the model's"
    print(f"{CLIENTS * REQUESTS} requests from {CLIENTS} clients in {wall:.1f} s")
