"""Load test of ``convnp serve`` on loopback: many concurrent clients posting drawn digits, as the page does.

    python benchmarks/load.py [--checkpoint RUN_DIR_OR_NPZ] [--clients 50] [--requests 20] [--no-write]

Starts ``convnp serve --port 0`` (uvicorn) on 127.0.0.1 in a subprocess and uses it once it prints the line saying
it accepts connections (``serve`` in tests/helpers.py, the one the web tests use), then starts ``--clients`` threads
at once, each with its own keep-alive connection sending ``--requests`` requests one after another:
``POST /api/predict?feature_maps=true`` with a 280x280 PNG of an MNIST test digit drawn dark on white, as multipart
field ``file`` (what the page's canvas sends). The digits are the first test image of each class, ten different
pictures, and client ``i`` sends digit ``(i + j) % 10`` as its ``j``-th request, so different digits are in flight at
once. The model's own answer for each picture is computed here, in this process, without the server. An answer is an
error unless it is a 200 holding ten probabilities, with the label of the model's own answer for that picture and
each probability within 1e-4 of it: a server that mixed up or corrupted answers under concurrency cannot report 0
errors. It reports throughput and the p50/p90/p99/max latency, and writes them as the "Web server under load"
section of ``benchmarks/RESULTS.md`` (the other sections are left alone), naming the machine (CPU, vector
instruction sets, cores, BLAS) and the time.

Without ``--checkpoint`` it first trains the notebook model for one epoch on 2,000 MNIST images (a few seconds).
This is a benchmark, not a test: its figures depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import http.client
import json
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from helpers import drawn_png, multipart, serve  # noqa: E402  (tests/helpers.py: what the web tests send and run)

SECTION = "## Web server under load"
PROBABILITY_TOLERANCE = 1e-4  # an answer's probabilities may differ from the model's by float rounding, no more


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


def digits() -> list[np.ndarray]:
    """The first MNIST test image of each class, 0 to 9: ten different pictures, (28, 28) uint8 each."""
    from convnp.data import load_mnist

    x_test, y_test = load_mnist()[2:]
    return [x_test[int(np.flatnonzero(y_test == label)[0])] for label in range(10)]


def model_answers(checkpoint: Path, pngs: list[bytes]) -> list[tuple[int, np.ndarray]]:
    """``(label, probabilities)`` of the model's own answer for each PNG, computed in this process: the server's
    code path (decode, prepare, classify) without the server."""
    from convnp.data.image_files import read_image_bytes
    from convnp.web.app import DigitClassifier

    classifier = DigitClassifier(checkpoint)
    answers = [classifier.classify(read_image_bytes(png), feature_maps=False) for png in pngs]
    return [(a.label, np.array(a.probabilities)) for a in answers]


def check(status: int, payload: bytes, expected: tuple[int, np.ndarray]) -> str:
    """Why an answer is wrong ("" when it is right): not a 200, no ten probabilities, or not the model's answer."""
    if status != 200:
        return f"HTTP {status}: {payload[:100]!r}"
    body = json.loads(payload)
    label, probabilities = body["label"], np.array(body["probabilities"], dtype=np.float64)
    if probabilities.shape != (10,):
        return f"{probabilities.size} probabilities, not 10"
    want_label, want = expected
    if label != want_label:
        return f"wrong answer: label {label}, the model's is {want_label}"
    off = float(np.abs(probabilities - want).max())
    if off > PROBABILITY_TOLERANCE:
        return f"wrong answer: label {label} right, but a probability is {off:.2g} off the model's"
    return ""


def client(address, i: int, bodies: list, expected: list, n: int, start: threading.Barrier, out: list) -> None:
    """Client ``i``: ``n`` requests on one keep-alive connection, its ``j``-th carrying picture
    ``(i + j) % len(bodies)``; appends (latency_s, error) per request to ``out``, error "" when the answer is right."""
    start.wait()
    conn = http.client.HTTPConnection(*address, timeout=120)
    for j in range(n):
        k = (i + j) % len(bodies)
        body, content_type = bodies[k]
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/predict?feature_maps=true", body=body,
                         headers={"Content-Type": content_type, "Content-Length": str(len(body))})
            response = conn.getresponse()
            payload = response.read()
            error = check(response.status, payload, expected[k])
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as err:
            error = f"{type(err).__name__}: {err}"
            conn.close()
            conn = http.client.HTTPConnection(*address, timeout=120)
        out.append((time.perf_counter() - t0, f"picture {k}: {error}" if error else ""))
    conn.close()


def run_load(address, checkpoint: Path, clients: int, requests: int) -> dict:
    pngs = [drawn_png(d) for d in digits()]
    bodies = [multipart(png) for png in pngs]
    expected = model_answers(checkpoint, pngs)
    load_average = os.getloadavg()[0]
    results: list = []
    start = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=client, args=(address, i, bodies, expected, requests, start, results))
               for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies = np.array([r[0] for r in results]) * 1000  # ms
    errors = [r[1] for r in results if r[1]]
    sizes = [len(body) for body, _ in bodies]
    return {
        "clients": clients, "requests_per_client": requests, "requests": len(results), "errors": len(errors),
        "wrong_answers": sum("wrong answer" in e for e in errors), "first_errors": errors[:3],
        "wall_s": wall, "throughput": len(results) / wall,
        **{f"p{q}_ms": float(np.percentile(latencies, q)) for q in (50, 90, 99)},
        "max_ms": float(latencies.max()), "pictures": len(bodies),
        "distinct_labels": len({label for label, _ in expected}), "body_bytes": (min(sizes), max(sizes)),
        "load_average": load_average,
    }


def machine() -> str:
    """The CPU (model, vector instruction sets, cores) and the BLAS NumPy uses, in a few words."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())  # the first processor's
    except OSError:
        pass
    cpu = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        cpu += f" (family {info['cpu family']}, model {info['model']})"
    flags = set(info.get("flags", "").split())
    simd = [name for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AMX", "amx_tile")) if flag in flags]
    where = ", a virtual machine" if "hypervisor" in flags else ""
    return f"{cpu}{where}, {os.cpu_count()} cores, {'/'.join(simd) or 'no AVX2'}; BLAS: {blas()}"


def blas() -> str:
    """NumPy's BLAS by name and version, and the kernels OpenBLAS chose for this CPU when it says."""
    try:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{config['name']} {config['version']}"
    except Exception:  # noqa: BLE001 - an older NumPy: say less
        return "unknown"
    try:  # OpenBLAS names its kernels (threadpoolctl asks the same way)
        path = next(line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                    if "openblas" in line.lower() and line.split()[-1].startswith("/"))
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
            if hasattr(lib, symbol):
                getattr(lib, symbol).restype = ctypes.c_char_p
                return f"{name}, {getattr(lib, symbol)().decode()} kernels"
    except (OSError, StopIteration):
        pass
    return name


def section(r: dict, command: str, model: str) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    threads = os.environ.get("CONVNP_NUM_THREADS", "1")
    low, high = r["body_bytes"]
    wrong = f" ({r['wrong_answers']} wrong answers)" if r["errors"] else ""
    tolerance = f"{PROBABILITY_TOLERANCE:.0e}".replace("e-0", "e-")
    return f"""{SECTION}

`{command}`, {now}; the load generator runs on the same machine, shared with other jobs (load average
{r["load_average"]:.1f} at the start).
Machine: {machine()}.
Python {platform.python_version()}, NumPy {np.__version__}, one uvicorn worker, `CONVNP_NUM_THREADS={threads}`, serving
{model}.

{r["clients"]} concurrent clients on loopback, each sending {r["requests_per_client"]} requests one after another on its
own keep-alive connection; each request is `POST /api/predict?feature_maps=true` with a 280x280 PNG of a drawn digit
({low:,}-{high:,}-byte multipart bodies), what the page sends. The {r["pictures"]} pictures are the first MNIST test
digit of each class, all in flight at once; the model gives them {r["distinct_labels"]} different labels. An error is
an answer that is not a 200 or differs from the model's own answer for that picture, computed by the benchmark
without the server: another label, or a probability more than {tolerance} off.

| requests | errors | wall time | throughput | p50 latency | p90 latency | p99 latency | max latency |
|---|---|---|---|---|---|---|---|
| {r["requests"]:,} | {r["errors"]}{wrong} | {r["wall_s"]:.2f} s | {r["throughput"]:,.0f} req/s | \
{r["p50_ms"]:,.0f} ms | {r["p90_ms"]:,.0f} ms | {r["p99_ms"]:,.0f} ms | {r["max_ms"]:,.0f} ms |

The server decodes, prepares and classifies each request in a thread of Starlette's pool, each thread with its own
replica of the model (`convnp.parallel.replicate(model)`: the weights shared, the convolution's scratch buffers its own), so
latency under this load is mostly queueing: about clients / throughput.

Figures written here before 2026-12-02 (the last, of 2026-11-28: 111 req/s and "0 errors") were measured on a server
that could give wrong answers under concurrency: its threads shared one model, and concurrent requests overwrote
each other's Conv2D scratch buffers. The benchmark then sent one picture and counted only non-200s and malformed
bodies as errors, so its "0 errors" did not mean right answers.
"""


def write_section(path: Path, text: str, section: str = SECTION) -> None:
    """Replace ``section`` in ``path`` (from its heading up to the next ``## `` heading) by ``text``, or append it;
    the rest is kept as it is."""
    old = path.read_text() if path.exists() else ""
    if section in old:
        head, rest = old.split(section, 1)
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
    env = {**os.environ, "CONVNP_NUM_THREADS": os.environ.get("CONVNP_NUM_THREADS", "1")}
    with tempfile.TemporaryDirectory(prefix="convnp-load-") as tmp:
        checkpoint = Path(args.checkpoint) if args.checkpoint else quick_checkpoint(Path(tmp))
        with serve(checkpoint, env=env) as (url, served):
            address = urllib.parse.urlsplit(url)
            result = run_load((address.hostname, address.port), checkpoint, args.clients, args.requests)
            if result["errors"]:
                print(f"convnp serve's output (the end):\n{served.tail()}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    command = "python benchmarks/load.py" + (f" --clients {args.clients}" if args.clients != 50 else "") + (
        f" --requests {args.requests}" if args.requests != 20 else "")
    if not args.no_write:
        model = (f"`{args.checkpoint}`" if args.checkpoint
                 else "the notebook net after one epoch on 2,000 MNIST training images")
        write_section(args.results, section(result, command, model))
        print(f"wrote the '{SECTION[3:]}' section of {args.results}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
