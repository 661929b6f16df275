"""Shared test helpers: seeded random layer configurations, tie-free inputs and a loop reference for max pooling.

Each ``*_cases(n)`` returns ``n`` configurations as plain dicts. The categorical options (kernel, stride,
padding, bias, ...) are dealt out from shuffled decks, so every option appears at least once whenever ``n`` is at
least the number of options; the sizes are drawn at random. Everything comes from ``np.random.default_rng`` with a
fixed seed: the cases are the same on every run, and each carries its own ``seed`` for its data.
"""

from __future__ import annotations

import contextlib
import io
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

CONV_KERNELS = [1, 2, 3, 5, (2, 3), (3, 1), (1, 5), (5, 2)]
CONV_STRIDES = [1, 2, (1, 2), (2, 1)]
CONV_PADDINGS = ["same", "valid", 0, 1, 2, (0, 2), (1, 0), (2, 1)]
POOL_SHAPES = [  # (kernel_size, stride): stride None means "= kernel_size"
    (2, None),
    (2, 2),
    (3, 2),  # overlapping
    (2, 1),  # overlapping
    (3, None),
    ((2, 3), (1, 2)),
    ((3, 2), (2, 1)),
    (1, None),
    (3, 1),
]


def _deck(options, n: int, rng: np.random.Generator) -> list:
    """``n`` draws that go through every option (in shuffled order) before repeating any."""
    out = []
    while len(out) < n:
        out.extend(options[i] for i in rng.permutation(len(options)))
    return out[:n]


def describe(cfg: dict) -> str:
    """A short test id for a configuration."""
    return "-".join(f"{k}={v}".replace(" ", "") for k, v in cfg.items())


def conv_cases(n: int, seed: int = 2024) -> list[dict]:
    rng = np.random.default_rng(seed)
    kernels, strides = _deck(CONV_KERNELS, n, rng), _deck(CONV_STRIDES, n, rng)
    paddings, biases = _deck(CONV_PADDINGS, n, rng), _deck([True, False], n, rng)
    return [
        dict(
            seed=seed + i,
            N=int(rng.integers(1, 5)),
            H=int(rng.integers(5, 12)),
            W=int(rng.integers(5, 12)),
            C_in=int(rng.integers(1, 6)),
            C_out=int(rng.integers(1, 6)),
            kernel_size=kernels[i],
            stride=strides[i],
            padding=paddings[i],
            bias=biases[i],
        )
        for i in range(n)
    ]


def pool_cases(n: int, seed: int = 4048) -> list[dict]:
    rng = np.random.default_rng(seed)
    shapes = _deck(POOL_SHAPES, n, rng)
    return [
        dict(
            seed=seed + i,
            N=int(rng.integers(1, 5)),
            H=int(rng.integers(5, 12)),
            W=int(rng.integers(5, 12)),
            C=int(rng.integers(1, 6)),
            kernel_size=shapes[i][0],
            stride=shapes[i][1],
        )
        for i in range(n)
    ]


def dense_cases(n: int, seed: int = 6072) -> list[dict]:
    rng = np.random.default_rng(seed)
    biases = _deck([True, False], n, rng)
    return [
        dict(
            seed=seed + i,
            N=int(rng.integers(1, 5)),
            in_features=int(rng.integers(1, 21)),
            out_features=int(rng.integers(1, 11)),
            bias=biases[i],
        )
        for i in range(n)
    ]


def loss_cases(n: int, seed: int = 8096) -> list[dict]:
    rng = np.random.default_rng(seed)
    scales = _deck([0.1, 1.0, 3.0, 10.0], n, rng)
    return [
        dict(seed=seed + i, N=int(rng.integers(1, 7)), K=int(rng.integers(2, 11)), scale=scales[i]) for i in range(n)
    ]


def pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def distinct_values(shape, rng: np.random.Generator) -> np.ndarray:
    """Float64 values in about [-2, 2], pairwise at least ``2 / size`` apart (>= 1e-4 for our sizes), shuffled.

    Max pooling is differentiable only where each window's maximum is unique; with such gaps a finite-difference
    step of 1e-6 never changes which input is a window's maximum.
    """
    size = int(np.prod(shape))
    values = np.arange(size) + rng.uniform(0.0, 0.5, size)  # gaps >= 0.5
    values = (values - values.mean()) / max(size / 4, 1.0)
    return rng.permutation(values).reshape(shape)


def away_from_zero(shape, rng: np.random.Generator, margin: float = 1e-2) -> np.ndarray:
    """Standard-normal values with ``|x| >= margin``, so a finite-difference step never crosses ReLU's kink."""
    x = rng.standard_normal(shape)
    small = np.abs(x) < margin
    x[small] = np.where(x[small] < 0, -margin, margin) * 2
    return x


def reference_maxpool_backward(x: np.ndarray, dout: np.ndarray, kernel_size, stride) -> np.ndarray:
    """Plain loops: each window's ``dout`` goes to its FIRST maximum in row-major order within the window."""
    (kH, kW), (sH, sW) = pair(kernel_size), pair(stride)
    N, H_out, W_out, C = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                for c in range(C):
                    window = x[n, i * sH : i * sH + kH, j * sW : j * sW + kW, c]
                    top = window.max()
                    first = next((a, b) for a in range(kH) for b in range(kW) if window[a, b] == top)
                    dx[n, i * sH + first[0], j * sW + first[1], c] += dout[n, i, j, c]
    return dx


def reference_maxpool_forward(x: np.ndarray, kernel_size, stride) -> np.ndarray:
    (kH, kW), (sH, sW) = pair(kernel_size), pair(stride)
    N, H, W, C = x.shape
    H_out, W_out = (H - kH) // sH + 1, (W - kW) // sW + 1
    out = np.empty((N, H_out, W_out, C), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            out[:, i, j, :] = x[:, i * sH : i * sH + kH, j * sW : j * sW + kW, :].max(axis=(1, 2))
    return out


# ---- small training runs (tests/test_run.py, tests/test_train_augment.py) -----------------------------------------
SMALL_RUN = dict(limit=1200, batch_size=50, val_split=0.25, lr=0.02)


def small_run(tmp_path, name: str, epochs: int, **overrides):
    """A quiet ``train_run`` of SMALL_RUN's size into ``tmp_path / name``; returns its RunResult."""
    import io

    from convnp.train.config import TrainConfig
    from convnp.train.run import train_run

    config = TrainConfig(epochs=epochs, **{**SMALL_RUN, **overrides})
    return train_run(config, tmp_path / name, stream=io.StringIO())


def run_weights(run_dir) -> dict:
    """The arrays of a run's ``last.npz`` (its JSON entry left out)."""
    with np.load(run_dir / "last.npz", allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k != "__meta__"}


def same_arrays(a: dict, b: dict) -> bool:
    """Same keys and bitwise-equal arrays."""
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def without_time(history: list[dict]) -> list[dict]:
    """Epoch logs with the wall-clock ``time`` removed, for exact comparison."""
    return [{k: v for k, v in row.items() if k != "time"} for row in history]


def toy_npz(path: Path, n: int, seed: int = 0, test: int = 60) -> Path:
    """3 classes of 28x28 uint8 images told apart by where a bright square is (the set test_run.py trains on)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n + test)
    x = (rng.random((n + test, 28, 28)) * 60).astype(np.uint8)
    for k in range(3):
        x[y == k, 4 + 7 * k : 10 + 7 * k, 4:10] = 255
    tests = {"x_test": x[n:], "y_test": y[n:]} if test else {}
    np.savez(path, x=x[:n], y=y[:n], **tests)
    return path


# ---- convnp serve in its own process (tests/test_web_load.py, tests/test_web_browser.py, benchmarks/load.py) -----
SERVE_FAILURE_DEADLINE_S = 120  # how long a broken server may take to be reported; never waited when all is well


class ServeError(RuntimeError):
    """``convnp serve`` did not start, exited while in use, or did not stop cleanly; the message holds its output."""


class _Serving:
    """What :func:`serve` yields besides the URL: the process and everything it has printed so far."""

    def __init__(self, process, output: list[str]):
        self.process, self.output = process, output

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the server printed (stdout and stderr), for a failure message."""
        return "".join(self.output[-lines:])


@contextlib.contextmanager
def serve(checkpoint, *extra_args, env=None, deadline_s: float = SERVE_FAILURE_DEADLINE_S):
    """``python -m convnp serve CHECKPOINT --port 0 [EXTRA_ARGS]`` in a subprocess, as a context manager.

    ``with serve(path) as (url, server):`` enters once the server has printed its line "convnp: serving ... on
    http://HOST:PORT/ (Ctrl+C stops)", which it prints only when connections are accepted, so the URL
    (``"http://127.0.0.1:PORT"``, no trailing slash) is usable at once, without polling. ``--port 0`` lets the system
    pick a free port, so no other process can take it first. ``server.process`` is the ``Popen``; ``server.output``
    the lines it has printed (a reader thread keeps draining them, so a server that logs a lot never blocks on a
    full pipe), ``server.tail()`` their end for a failure message.

    On leaving, the server gets SIGTERM and must exit by it: uvicorn closes its connections, then raises the signal
    again, so the status is ``-SIGTERM`` (0 is accepted too).
    :class:`ServeError`, holding the server's output, is raised when it exits before its line or while in use, or
    does not stop cleanly. Nothing waits for a length of time when all is well: ``deadline_s`` only bounds how long
    the line may take to come and the exit after SIGTERM.
    """
    ready = re.compile(r"^convnp: serving .* on (http://\S+)/ \(Ctrl\+C stops\)$")
    proc = subprocess.Popen(
        [sys.executable, "-m", "convnp", "serve", str(checkpoint), "--port", "0", *map(str, extra_args)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    served = _Serving(proc, [])
    lines: queue.Queue = queue.Queue()

    def drain():
        for line in proc.stdout:
            served.output.append(line)
            lines.put(line)
        lines.put(None)  # end of output: the server exited

    def failure(what: str) -> ServeError:
        return ServeError(f"convnp serve {what}; its output:\n{''.join(served.output)}")

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stopped = False
    try:
        deadline = time.monotonic() + deadline_s
        url = None
        while url is None:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise failure(f"printed no 'serving on' line in {deadline_s:g} s") from None
            if line is None:
                raise failure(f"exited with status {proc.wait()} before serving")
            match = ready.match(line.rstrip("\n"))
            url = match and match.group(1)
        yield url, served
        if proc.poll() is not None:
            raise failure(f"exited with status {proc.returncode} while in use")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=deadline_s)
            stopped = True
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join()
        proc.stdout.close()
    # Reached only when nothing above raised: a failed stop is reported, never hiding an earlier error.
    if not stopped:
        raise failure(f"did not exit within {deadline_s:g} s of SIGTERM (killed)")
    if proc.returncode not in (0, -signal.SIGTERM):
        raise failure(f"exited with status {proc.returncode} after SIGTERM (expected 0 or -{signal.SIGTERM:d})")


def drawn_png(digit: np.ndarray) -> bytes:
    """A 28x28 uint8 MNIST digit as the page's canvas sends it: 280x280 PNG, dark ink on white (the server finds the
    polarity)."""
    from PIL import Image

    big = Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    Image.fromarray(255 - np.asarray(big)).save(buf, format="PNG")
    return buf.getvalue()


def multipart(png: bytes) -> tuple[bytes, str]:
    """``(body, content_type)`` of a multipart/form-data upload of ``png`` as field ``file``, what the page posts."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"drawing.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
