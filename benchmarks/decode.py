"""A folder of image files at scale: decode rate, the cache's reopening, and memory while training on it.

    python benchmarks/decode.py [--images 100000] [--size 64] [--folder DIR] [--no-write]

Makes (once; kept in ``--folder`` for the next run) a folder of ``--images`` colour PNGs of ``--size`` x ``--size``
in 10 classes, each a smooth random background with its class's shape drawn on it in a random colour and place,
then, each in a fresh process so its memory is its own:

1. decodes the folder into a cache (:func:`convnp.data.folder.load_image_folder`) with 1 and with 2 worker
   processes: images per second, and the peak resident memory of the parent and of the largest worker;
2. opens the cache again (nothing decoded): seconds;
3. trains one epoch of a small network (``convnp train --data DIR``) holding out 90% and then 10% of the images as
   the test split (10,000 and 90,000 training images): the peak anonymous and file-backed resident memory, sampled
   from ``/proc`` every 0.2 s. Anonymous memory is what the process allocated itself; file-backed is pages of the
   memory-mapped uint8 cache, which the kernel may drop at any time. The two anonymous peaks should be alike:
   training holds a batch and a bounded sample for the standardisation statistics, never the data set.

Writes the figures, with the machine (CPU, vector instruction sets, cores, BLAS), as the "Image folders at scale"
section of ``benchmarks/RESULTS.md``. There is no PyTorch twin: torchvision's ``ImageFolder`` does not import
beside the PyTorch this project's tests use; the 1-process decode is a plain Pillow loop's rate.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from load import machine, write_section  # noqa: E402 - the same machine line and results file as the others

SECTION = "## Image folders at scale"
CLASSES = ["circle", "square", "triangle", "cross", "ring", "bar", "diamond", "dots", "stripes", "corner"]
NET = [{"type": "Conv2D", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": "same"}, {"type": "ReLU"},
       {"type": "MaxPool2D", "kernel_size": 4}, {"type": "Flatten"}, {"type": "Dense", "out_features": 10}]


# ---- the folder --------------------------------------------------------------------------------------------------------
def _mask(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean ``(size, size)`` mask of shape ``kind`` (an index into CLASSES), of random size and place."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r = rng.uniform(0.15, 0.3) * size
    cy, cx = rng.uniform(r, size - r, 2)
    dy, dx = yy - cy, xx - cx
    shapes = [
        dy**2 + dx**2 < r**2, np.maximum(abs(dy), abs(dx)) < r, (dy > -r) & (abs(dx) < (dy + r) / 2),
        (abs(dy) < r / 4) & (abs(dx) < r) | (abs(dx) < r / 4) & (abs(dy) < r),
        abs(np.hypot(dy, dx) - r * 0.8) < r / 5, (abs(dy) < r / 3) & (abs(dx) < r), abs(dy) + abs(dx) < r,
        (np.hypot((dy % (r / 2)) - r / 4, (dx % (r / 2)) - r / 4) < r / 8) & (np.maximum(abs(dy), abs(dx)) < r),
        ((yy // max(2, int(r / 3))) % 2 == 0) & (np.maximum(abs(dy), abs(dx)) < r), (dy > 0) & (dx > 0) & (dy + dx < r),
    ]
    return shapes[kind]


def _write_images(job: tuple) -> None:
    folder, size, start, stop = job
    from PIL import Image

    for i in range(start, stop):
        rng = np.random.default_rng(i)
        kind = i % len(CLASSES)
        t = np.linspace(0, 1, size)
        corners = rng.uniform(0, 160, (2, 2, 3))
        background = (corners[0, 0] * (1 - t)[:, None, None] * (1 - t)[None, :, None]
                      + corners[0, 1] * (1 - t)[:, None, None] * t[None, :, None]
                      + corners[1, 0] * t[:, None, None] * (1 - t)[None, :, None]
                      + corners[1, 1] * t[:, None, None] * t[None, :, None])  # (size, size, 3)
        background[_mask(kind, size, rng)] = rng.uniform(120, 255, 3)
        pixels = np.clip(background + rng.normal(0, 4, background.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / CLASSES[kind] / f"{i:06d}.png")


def make_folder(folder: Path, n: int, size: int) -> float:
    """Write the folder (unless a complete one is there); returns the seconds it took (0 when reused)."""
    marker = folder / ".complete.json"
    want = {"images": n, "size": size}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return 0.0
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    step = 2000
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        pool.map(_write_images, [(folder, size, a, min(a + step, n)) for a in range(0, n, step)])
    marker.write_text(json.dumps(want))
    return time.perf_counter() - start


# ---- the measurements, each in its own process ---------------------------------------------------------------------------
def decode_child(folder: str, cache: str, processes: int) -> dict:
    from convnp.data.folder import load_image_folder

    start, cpu = time.perf_counter(), _cpu_seconds()
    decoded = load_image_folder(folder, cache_dir=cache, processes=processes)
    seconds = time.perf_counter() - start
    return {"images": len(decoded.y), "seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu,
            "shape": list(decoded.x.shape),
            "parent_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def _cpu_seconds() -> float:
    """CPU time of this process and its ended children (the decode's workers), user and system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def reopen_child(folder: str, cache: str) -> dict:
    from convnp.data.folder import load_image_folder

    start = time.perf_counter()
    decoded = load_image_folder(folder, cache_dir=cache)
    return {"seconds": time.perf_counter() - start, "images": len(decoded.y),
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(*args: str) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.splitlines()[-1])


def _memory(pid: int) -> dict[str, int]:
    """``RssAnon`` and ``RssFile`` of process ``pid``, in KiB (empty once it has ended)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in lines) if k in ("RssAnon", "RssFile")}


def train_memory(folder: Path, data_home: Path, test_split: float, total: int, work: Path) -> dict:
    """One epoch of ``NET`` on the folder (its cache in ``data_home/folders``, filled by the decode before); the
    peak anonymous and file-backed memory seen, in MiB."""
    net = work / "net.json"
    net.write_text(json.dumps(NET))
    out = work / f"run-{test_split}"
    command = [sys.executable, "-m", "convnp", "train", "--data", str(folder), "--test-split", str(test_split),
               "--model", str(net), "--epochs", "1", "--batch-size", "128", "--val-split", "0", "--threads", "1",
               "--no-report", "--out", str(out)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "CONVNP_DATA": str(data_home)}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = {"RssAnon": 0, "RssFile": 0}
    while process.poll() is None:
        for key, value in _memory(process.pid).items():
            peak[key] = max(peak[key], value)
        time.sleep(0.2)
    output = process.stdout.read()
    if process.returncode:
        raise RuntimeError(f"convnp train failed:\n{output[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    return {"train_images": total - results["test"]["n_samples"],
            "test_accuracy": results["test"]["accuracy"], "seconds": time.perf_counter() - start,
            "anon_peak_mib": peak["RssAnon"] / 1024, "file_peak_mib": peak["RssFile"] / 1024}


# ---- the report ------------------------------------------------------------------------------------------------------------
def report(args, made_s: float, decodes: dict, reopen: dict, trains: list[dict]) -> str:
    n, size = args.images, args.size
    cache_mib = n * size * size * 3 / 2**20
    lines = [SECTION, "",
             f"Measured {time.strftime('%Y-%m-%d')} with `python benchmarks/decode.py --images {n} --size {size}` on "
             f"{machine()}; load average before the run {args.load_before:.2f} (another job's processes make the "
             "rates lower and the CPU seconds a little higher).", "",
             f"A folder of {n:,} colour PNGs of {size}x{size} in 10 classes (made in {made_s:.0f} s"
             + (" by this run" if made_s else " by an earlier run") + f"); its uint8 cache is {cache_mib:,.0f} MiB.",
             "", "| decode | images/s | seconds | CPU seconds | peak memory, parent | peak memory, largest worker |",
             "|---|---:|---:|---:|---:|---:|"]
    for p, d in decodes.items():
        worker = f"{d['worker_peak_mib']:,.0f} MiB" if p > 1 else "(none: decoded in the parent)"
        lines.append(f"| {p} process{'es' if p > 1 else ''} | {d['images'] / d['seconds']:,.0f} | {d['seconds']:.1f} "
                     f"| {d['cpu_seconds']:.1f} | {d['parent_peak_mib']:,.0f} MiB | {worker} |")
    one, two = decodes.get(1), decodes.get(2)
    if one and two:
        lines += ["", f"Two processes decode {one['seconds'] / two['seconds']:.2f}x as fast as one."]
    lines += ["", f"Opening the cache again (nothing decoded): {reopen['seconds']:.2f} s, peak memory "
              f"{reopen['peak_mib']:,.0f} MiB.", "",
              "| one epoch of a small network (`--batch-size 128`) | training images | seconds | test accuracy "
              "| peak anonymous memory | peak file-backed (the cache's pages) |", "|---|---:|---:|---:|---:|---:|"]
    for t in trains:
        lines.append(f"| `--test-split {t['test_split']}` | {t['train_images']:,} | {t['seconds']:.0f} | "
                     f"{t['test_accuracy']:.1%} | {t['anon_peak_mib']:,.0f} MiB | {t['file_peak_mib']:,.0f} MiB |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "convnp-decode-bench")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--no-write", action="store_true", help="print the figures only")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        result = decode_child(rest[0], rest[1], int(rest[2])) if kind == "decode" else reopen_child(*rest)
        print(json.dumps(result))
        return 0
    args.load_before = os.getloadavg()[0]
    folder = args.folder / f"{args.images}x{args.size}"
    made = make_folder(folder, args.images, args.size)
    with tempfile.TemporaryDirectory(prefix="convnp-decode-") as tmp:
        work = Path(tmp)
        decodes = {}
        for processes in (1, 2):
            cache = work / ("data/folders" if processes == 2 else "one")  # the 2-process cache serves what follows
            decodes[processes] = run_child("decode", str(folder), str(cache), str(processes))
            print(f"decode, {processes} process(es): {decodes[processes]}", flush=True)
        reopen = run_child("reopen", str(folder), str(work / "data/folders"))
        print(f"reopen: {reopen}", flush=True)
        trains = []
        for split in (0.9, 0.1):
            trains.append({"test_split": split,
                           **train_memory(folder, work / "data", split, decodes[2]["images"], work)})
            print(f"train: {trains[-1]}", flush=True)
    text = report(args, made, decodes, reopen, trains)
    print(text)
    if not args.no_write:
        write_section(args.results, text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
