"""Load test of ``convnp serve`` on loopback: many concurrent clients posting drawn digits, as the page does.

    python benchmarks/load.py [--checkpoint RUN_DIR_OR_NPZ] [--clients 50] [--requests 20] [--no-write]

Starts ``convnp serve`` (uvicorn) on 127.0.0.1 at a free port in a subprocess, waits for ``GET /api/health``, then
starts ``--clients`` threads at once, each with its own keep-alive connection sending ``--requests`` requests one
after another: ``POST /api/predict?feature_maps=true`` with a 280x280 PNG of an MNIST test digit drawn dark on
white, as multipart field ``file`` (what the page's canvas sends). Every answer must be a 200 holding ten
probabilities; anything else counts as an error. It reports throughput and the p50/p90/p99/max latency, and writes
them as the "Web server under load" section of ``benchmarks/RESULTS.md`` (the other sections are left alone).

Without ``--checkpoint`` it first trains the notebook model for one epoch on 2,000 MNIST images (a few seconds).
This is a benchmark, not a test: its figures depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SECTION = "## Web server under load"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quick_checkpoint(folder: Path) -> Path:
    """The notebook model after one epoch on 2,000 MNIST training images (it reads digits; speed is what counts)."""
    from convnp.checkpoint import save_checkpoint
    from convnp.data import load_mnist
    from convnp.data.transforms import Standardize
    from convnp.models import notebook
    from convnp.optim import SGD
    from convnp.train import fit

    x, y = load_mnist()[:2]
    x, y = x[:2000, ..., None], y[:2000].astype(np.int64)  # (N, 28, 28, 1)
    std = Standardize.fit(x)
    rng = np.random.default_rng(0)
    model = notebook(rng=rng)
    fit(model, std(x), y, optimizer=SGD(0.02, momentum=0.9), epochs=1, batch_size=64, rng=rng)
    return save_checkpoint(folder / "load-test.npz", model,
                           meta={"preprocessing": std.to_dict(), "model_name": "notebook"})


def drawn_digit_png() -> bytes:
    """An MNIST test digit as the page's canvas would send it: 280x280, dark ink on white, PNG."""
    from PIL import Image

    from convnp.data import load_mnist

    digit = load_mnist()[2][0]
    big = Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    Image.fromarray(255 - np.asarray(big)).save(buf, format="PNG")
    return buf.getvalue()


def multipart(png: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"digit.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def start_server(checkpoint: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "CONVNP_NUM_THREADS": os.environ.get("CONVNP_NUM_THREADS", "1")}
    server = subprocess.Popen([sys.executable, "-m", "convnp", "serve", str(checkpoint), "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"convnp serve exited with {server.returncode}: {server.stderr.read().decode()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/health")
            if conn.getresponse().status == 200:
                conn.close()
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("convnp serve did not answer /api/health within 60 s")


def client(port: int, body: bytes, content_type: str, n: int, start: threading.Barrier, out: list) -> None:
    """``n`` requests on one keep-alive connection; appends (latency_s, ok, note) per request to ``out``."""
    start.wait()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/predict?feature_maps=true", body=body,
                         headers={"Content-Type": content_type, "Content-Length": str(len(body))})
            response = conn.getresponse()
            payload = response.read()
            ok = response.status == 200 and len(json.loads(payload)["probabilities"]) == 10
            note = "" if ok else f"HTTP {response.status}: {payload[:100]!r}"
        except (OSError, http.client.HTTPException, ValueError, KeyError) as err:
            ok, note = False, f"{type(err).__name__}: {err}"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        out.append((time.perf_counter() - t0, ok, note))
    conn.close()


def run_load(port: int, clients: int, requests: int) -> dict:
    body, content_type = multipart(drawn_digit_png())
    load_average = os.getloadavg()[0]
    results: list = []
    start = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=client, args=(port, body, content_type, requests, start, results))
               for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies = np.array([r[0] for r in results]) * 1000  # ms
    errors = [r[2] for r in results if not r[1]]
    return {
        "clients": clients, "requests_per_client": requests, "requests": len(results), "errors": len(errors),
        "first_errors": errors[:3], "wall_s": wall, "throughput": len(results) / wall,
        **{f"p{q}_ms": float(np.percentile(latencies, q)) for q in (50, 90, 99)},
        "max_ms": float(latencies.max()), "body_bytes": len(body), "load_average": load_average,
    }


def section(r: dict, command: str) -> str:
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    threads = os.environ.get("CONVNP_NUM_THREADS", "1")
    return f"""{SECTION}

`{command}` ({now}, {os.cpu_count()} cores shared with other jobs: load average {r["load_average"]:.1f} at the start;
Python {platform.python_version()}, one uvicorn worker, `CONVNP_NUM_THREADS={threads}`;
the load generator runs on the same machine): {r["clients"]} concurrent clients on loopback, each
sending {r["requests_per_client"]} requests one after another on its own keep-alive connection;
each request is `POST /api/predict?feature_maps=true` with a 280x280 PNG of a drawn digit ({r["body_bytes"]:,}-byte
multipart body), what the page sends.

| requests | errors | wall time | throughput | p50 latency | p90 latency | p99 latency | max latency |
|---|---|---|---|---|---|---|---|
| {r["requests"]:,} | {r["errors"]} | {r["wall_s"]:.2f} s | {r["throughput"]:,.0f} req/s | {r["p50_ms"]:.0f} ms | \
{r["p90_ms"]:.0f} ms | {r["p99_ms"]:.0f} ms | {r["max_ms"]:.0f} ms |

The server decodes, prepares and classifies one request at a time per thread of Starlette's pool (the model itself
is shared and stateless at inference), so latency under this load is mostly queueing: about
clients / throughput.
"""


def write_section(path: Path, text: str) -> None:
    """Replace the section in ``path`` (up to the next ``## `` heading), or append it; the rest is kept as it is."""
    old = path.read_text() if path.exists() else ""
    if SECTION in old:
        head, rest = old.split(SECTION, 1)
        tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
        new = head + text.rstrip("\n") + "\n" + tail
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text
    path.write_text(new)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", help="checkpoint (.npz) or run folder to serve; default: train a quick one")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients")
    p.add_argument("--requests", type=int, default=20, help="requests per client")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print the figures only")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="convnp-load-") as tmp:
        checkpoint = Path(args.checkpoint) if args.checkpoint else quick_checkpoint(Path(tmp))
        port = free_port()
        server = start_server(checkpoint, port)
        try:
            result = run_load(port, args.clients, args.requests)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(result, indent=2))
    command = "python benchmarks/load.py" + (f" --clients {args.clients}" if args.clients != 50 else "") + (
        f" --requests {args.requests}" if args.requests != 20 else "")
    if not args.no_write:
        write_section(args.results, section(result, command))
        print(f"wrote the '{SECTION[3:]}' section of {args.results}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
