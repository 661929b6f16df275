"""Speed and memory of convnp against PyTorch (CPU) on the same networks, measured side by side.

    python benchmarks/bench.py                 # full run, writes its CPU class's section of benchmarks/RESULTS.md
    python benchmarks/bench.py --quick         # fewer repeats and batch sizes, prints the table only
    python benchmarks/bench.py --isa avx2      # both frameworks capped to AVX2: the other CPU class, same machine

Each thread count runs in its own worker process, because BLAS reads its thread count when NumPy loads
(OPENBLAS_NUM_THREADS and friends are set for the worker; PyTorch gets torch.set_num_threads; convnp splits each
batch across that many workers, as its Trainer does, with one BLAS thread in each: processes forked from the worker
by default, threads with ``--backend threads``). Inside a worker,
convnp and PyTorch are timed in alternation, repeat after repeat, so a noisy neighbour slows both; the table gives
medians and the spread (min-max) of the repeats. PyTorch is optional: without it only convnp's figures appear.

Peak memory of a training step is the growth of the process's peak RSS over three steps, measured in a fresh
process per framework and network so that nothing else inflates it.

Every table names its machine as the worker process saw it: the CPU, its vector instruction sets, the BLAS with the
kernels it chose, PyTorch's CPU capability, and the matmul peak measured beside the repeats. ``--isa avx2`` starts
every worker with both frameworks capped to AVX2 (:data:`ISA_CAPS`), so an AVX-512 machine also measures the AVX2
class; each class has its own section of RESULTS.md, and a run replaces only its own.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
#: The variables that cap each framework's instruction sets, read when the libraries load (so set for the worker):
#: OpenBLAS's kernel choice, oneDNN's (PyTorch's convolutions) and ATen's own vectorised kernels.
ISA_CAPS = {"native": {}, "avx2": {"OPENBLAS_CORETYPE": "Haswell", "ONEDNN_MAX_CPU_ISA": "AVX2",
                                   "ATEN_CPU_CAPABILITY": "avx2"}}
sys.path.insert(0, str(HERE))
from load import machine, write_section  # noqa: E402 - one machine line and results file for every benchmark


# ---- the networks ---------------------------------------------------------------------------------------------------
#: The two networks written out for both frameworks; any other name is a zoo model, and PyTorch gets its twin.
HAND_WRITTEN = ("notebook", "lenet-style")


def convnp_net(name: str):
    import numpy as np

    from convnp import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
    from convnp.models import notebook

    rng = np.random.default_rng(0)
    if name == "notebook":
        return notebook(rng=rng)
    if name == "lenet-style":  # conv 32@3x3, conv 64@3x3, pool, dense 128, dense 10 (PyTorch's MNIST example)
        return Sequential(
            [Conv2D(1, 32, 3, rng=rng), ReLU(), Conv2D(32, 64, 3, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
             Dense(12 * 12 * 64, 128, rng=rng), ReLU(), Dense(128, 10, rng=rng)],
            input_shape=(28, 28, 1),
        )
    from convnp.models import MODELS

    if name in MODELS:  # the other zoo networks, as `convnp train --model NAME` builds them
        return MODELS[name](rng=rng)
    raise ValueError(f"unknown net {name!r}: 'notebook', 'lenet-style' or a zoo model {sorted(MODELS)}")


def torch_net(name: str):
    import torch.nn as nn

    if name not in HAND_WRITTEN:  # a zoo network: its exact copy, fed channels-last batches
        from twins import torch_twin

        return torch_twin(convnp_net(name))
    if name == "notebook":
        return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1352, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10))


# ---- timing inside a worker -----------------------------------------------------------------------------------------
def convnp_steps(name: str, batch: int, threads: int = 1, backend: str = "auto"):
    """convnp's training step and inference, as the Trainer runs them: the batch split across ``threads`` workers
    (threads or processes, :func:`convnp.parallel.resolve_backend`)."""
    import numpy as np

    from convnp.optim import SGD
    from convnp.parallel import data_parallel

    model = convnp_net(name)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    parallel, opt = data_parallel(model, threads, backend), SGD(0.01, momentum=0.9)

    def train():
        parallel.train_step(x, y)
        opt.step(model.parameters(), model.gradients())

    def infer():
        parallel.predict(x)

    return train, infer


def torch_steps(name: str, batch: int):
    import torch

    model = torch_net(name)
    twin = name not in HAND_WRITTEN  # twins take (N, H, W, C) like convnp and permute inside
    x = torch.randn(batch, 28, 28, 1) if twin else torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    loss, opt = torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train():
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(x)

    return train, infer


def images_per_second(step, batch: int, min_time: float) -> float:
    for _ in range(3):  # warm-up: buffers, caches, and each worker process's first steps
        step()
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and n >= 3:
            return n * batch / elapsed


@functools.cache
def _square():
    """The 2048x2048 float32 matrix that :func:`matmul_peak_gflops` squares, made once per process."""
    import numpy as np

    return np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)


#: Seconds to stay idle after sampling the matmul peak. OpenBLAS's worker threads keep spinning for about 0.1 s
#: after a product before they sleep; with 2 threads that took a core from whatever ran next (convnp's training on
#: 2 processes measured 15-20% slower in the first 0.3 s after a sample, level after 0.1 s idle; docs/performance.md).
BLAS_SPIN_S = 0.3


def matmul_peak_gflops(samples: int = 1) -> float:
    """The best of ``samples`` float32 2048x2048 matrix products, in GFLOP/s, on this process's BLAS threads; then
    :data:`BLAS_SPIN_S` idle, so that the BLAS threads are asleep before anything else is timed."""
    a = _square()
    best = 0.0
    for _ in range(samples):
        start = time.perf_counter()
        a @ a
        best = max(best, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    time.sleep(BLAS_SPIN_S)
    return best


def worker(threads: int, nets, batches, repeats: int, min_time: float, backend: str = "auto") -> dict:
    have_torch = True
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        have_torch = False
    from convnp.flops import model_flops

    # The ceiling is sampled between the repeats and its best kept: a few products in a row at the end could all
    # land in a busy minute (one run put two cores at 114 GFLOP/s where others measured 139-144).
    rows, peaks = [], [matmul_peak_gflops(3)]
    for name in nets:
        flops = model_flops(convnp_net(name))["train"]
        for batch in batches:
            ours_train, ours_infer = convnp_steps(name, batch, threads, backend)
            theirs = torch_steps(name, batch) if have_torch else None
            samples = {k: [] for k in ("convnp_train", "torch_train", "convnp_infer", "torch_infer")}
            for _ in range(repeats):  # interleaved: a slow moment hits both frameworks
                samples["convnp_train"].append(images_per_second(ours_train, batch, min_time))
                if theirs:
                    samples["torch_train"].append(images_per_second(theirs[0], batch, min_time))
                samples["convnp_infer"].append(images_per_second(ours_infer, batch, min_time))
                if theirs:
                    samples["torch_infer"].append(images_per_second(theirs[1], batch, min_time))
                peaks.append(matmul_peak_gflops())
            rows.append({"net": name, "batch": batch, "threads": threads, "train_flops": flops,
                         **{k: v for k, v in samples.items() if v}})
    from convnp.parallel import resolve_backend

    return {"threads": threads, "peak_gflops": max(peaks), "rows": rows, "torch": have_torch,
            "backend": resolve_backend(backend, threads), "machine": machine(),
            "torch_isa": torch.backends.cpu.get_cpu_capability() if have_torch else None}


# ---- memory and the notebook, each in a fresh process ---------------------------------------------------------------
def memory_worker(framework: str, name: str, batch: int) -> float:
    """MiB by which three training steps raise the process's peak RSS."""
    train, _ = (convnp_steps if framework == "convnp" else torch_steps)(name, batch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        train()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def notebook_worker(n_images: int, repeats: int = 3) -> float:
    """Training images/s of the seed notebook's own loops (its code cells run as they are, prints silenced): the
    median of ``repeats`` timings of a forward and backward pass over ``n_images`` images."""
    import contextlib
    import io

    import numpy as np

    text = (ROOT.parent / "shared" / "seed" / "cnn-notebook.md").read_text()
    cells = re.findall(r"```\n(.*?)```", text, flags=re.S)
    namespace = {"np": np}
    for cell in cells:
        if cell.lstrip().startswith("def "):  # the function definitions only: no data download, no training run
            exec(cell, namespace)  # noqa: S102 - our own shared seed file, run to time it
    rng = np.random.default_rng(0)
    x, y = rng.random((n_images, 28, 28)) - 0.5, rng.integers(0, 10, n_images)
    rates = []
    with contextlib.redirect_stdout(io.StringIO()):
        params = namespace["initialize_parameters"]()
        for _ in range(repeats):
            start = time.perf_counter()
            out, cache = namespace["forward_prop"](x, *params)
            namespace["backward_prop"](x, y, out, cache, 0.1)
            rates.append(n_images / (time.perf_counter() - start))
    return statistics.median(rates)


def epoch_worker() -> dict:
    """Training seconds of the default `convnp train`'s epochs (54,000 images, batch 64, notebook net, its recipe's
    optimizer, the default thread rule), random data: five epochs, each timed alone (no validation). The first
    includes forking the workers and the first touch of every buffer."""
    import numpy as np

    from convnp.models import notebook
    from convnp.optim import SGD
    from convnp.train import Trainer

    rng = np.random.default_rng(0)
    x = rng.standard_normal((54000, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 54000)
    trainer = Trainer(notebook(rng=rng), SGD(0.02, momentum=0.9))
    history = trainer.fit(x, y, epochs=5, batch_size=64, rng=rng)
    return {"seconds": [h["time"] for h in history], "threads": trainer.threads, "backend": trainer.backend}


def run_in_subprocess(args: list[str], threads: int, isa: str = "native") -> dict:
    env = {**os.environ, **{v: str(threads) for v in THREAD_VARS}, **ISA_CAPS[isa]}
    out = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the report -----------------------------------------------------------------------------------------------------
def median_spread(values) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def section_heading(result: dict, isa: str) -> str:
    """The RESULTS.md heading of a run's CPU class: the instruction sets used and the CPU, e.g.
    ``## convnp vs PyTorch, AVX-512: Intel(R) Xeon(R) Processor (family 6, model 207)``."""
    machine = result["machine"]
    # The CPU's name is all before the first ", " outside parentheses: "... Processor (family 6, model 207)".
    depth, end = 0, len(machine)
    for i, ch in enumerate(machine):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and machine.startswith(", ", i):
            end = i
            break
    cpu = machine[:end]
    used = "AVX2 (capped)" if isa == "avx2" else ("AVX-512" if "AVX-512" in result["machine"] else "AVX2")
    return f"## convnp vs PyTorch, {used}: {cpu}"


def report(results: list[dict], memory: dict, notebook_ips: float | None, epoch_s: float | None, args) -> str:
    cap = ISA_CAPS[args.isa]
    lines = [
        section_heading(results[0], args.isa),
        "",
        f"Machine: {results[0]['machine']}; PyTorch's CPU capability {results[0]['torch_isa'] or '-'}"
        + (f"; capped by {' '.join(f'{k}={v}' for k, v in cap.items())}" if cap else "")
        + f". Python {platform.python_version()}, NumPy {__import__('numpy').__version__}"
        + (f", PyTorch {__import__('torch').__version__}" if results[0]["torch"] else ", PyTorch not installed")
        + f". Command: `python benchmarks/bench.py{' --quick' if args.quick else ''}"
        + (f" --isa {args.isa}" if args.isa != "native" else "") + f"`; {args.repeats} interleaved "
        "repeats per cell, median (min-max). Written " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + ".",
        "",
        "PyTorch runs on as many threads as the threads column says; convnp splits each batch across as many "
        "workers, threads or processes as given in brackets (one BLAS thread each). The matmul peak is the fastest "
        "float32 2048x2048 product sampled between the repeats, on as many BLAS threads; both frameworks' GFLOP/s "
        "count the network's training FLOPs (`convnp.flops`).",
        "",
        "| net | threads | batch | convnp train | PyTorch train | ratio | convnp infer | PyTorch infer | ratio | "
        "train GFLOP/s (% of matmul peak) | PyTorch train GFLOP/s (%) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for row in result["rows"]:
            ours_t = statistics.median(row["convnp_train"])
            ours_i = statistics.median(row["convnp_infer"])
            peak = result["peak_gflops"]
            gflops = ours_t * row["train_flops"] / 1e9
            workers = str(row["threads"]) + (f" ({result['backend']})" if row["threads"] > 1 else "")
            cells = [row["net"], workers, str(row["batch"]), median_spread(row["convnp_train"])]
            if "torch_train" in row:
                cells += [median_spread(row["torch_train"]), f"{ours_t / statistics.median(row['torch_train']):.2f}x"]
            else:
                cells += ["-", "-"]
            cells.append(median_spread(row["convnp_infer"]))
            if "torch_infer" in row:
                cells += [median_spread(row["torch_infer"]), f"{ours_i / statistics.median(row['torch_infer']):.2f}x"]
            else:
                cells += ["-", "-"]
            cells.append(f"{gflops:.1f} ({100 * gflops / peak:.0f}% of {peak:.0f})")
            if "torch_train" in row:  # the same network's FLOPs, so the same share of the same peak
                theirs = statistics.median(row["torch_train"]) * row["train_flops"] / 1e9
                cells.append(f"{theirs:.1f} ({100 * theirs / peak:.0f}%)")
            else:
                cells.append("-")
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Peak memory of a training step (batch 128, growth of peak RSS over three steps, fresh process):", "",
              "| net | convnp MiB | PyTorch MiB | ratio |", "|---|---|---|---|"]
    for name, pair in memory.items():
        theirs = pair.get("torch")
        ratio = f"{pair['convnp'] / theirs:.2f}x" if theirs else "-"
        lines.append(f"| {name} | {pair['convnp']:.1f} | {'-' if theirs is None else f'{theirs:.1f}'} | {ratio} |")
    if notebook_ips is not None:
        nb = next(r for r in results[0]["rows"] if r["net"] == "notebook" and r["batch"] == 128)
        ours = statistics.median(nb["convnp_train"])
        lines += ["", f"The seed notebook's own loops train at {notebook_ips:.1f} images/s (1 thread); convnp's "
                  f"notebook net at batch 128 trains at {ours:,.0f} images/s: **{ours / notebook_ips:,.0f}x**."]
    if epoch_s is not None:
        times = ", ".join(f"{t:.1f}" for t in epoch_s["seconds"])
        lines += ["", f"Epochs of the default `convnp train` (54,000 images, batch 64, notebook net, "
                  f"{epoch_s['threads']} worker(s), {epoch_s['backend']}, by the default rule), training "
                  f"time alone: {times} s, median "
                  f"**{statistics.median(epoch_s['seconds']):.1f} s**."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="batch 128 only, 3 repeats, shorter timings")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats per cell")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="BLAS / PyTorch thread counts")
    p.add_argument("--nets", nargs="+", default=["notebook", "lenet-style"], help="networks to measure: notebook, lenet-style, or any zoo model (lenet5, convnet, best)")
    p.add_argument("--backend", choices=("auto", "threads", "processes"), default="auto",
                   help="what convnp splits batches across (default auto: processes on Linux)")
    p.add_argument("--isa", choices=tuple(ISA_CAPS), default="native",
                   help="instruction sets: the CPU's own, or both frameworks capped to AVX2")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"), help="Markdown file to write ('-' prints only)")
    p.add_argument("--worker", choices=("speed", "memory", "notebook", "epoch"), help=argparse.SUPPRESS)
    p.add_argument("--framework", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    batches = [128] if args.quick else [32, 128, 512]
    min_time = 0.3 if args.quick else 1.0
    if args.quick and args.repeats == 5:
        args.repeats = 3
    if args.worker == "speed":
        print(json.dumps(worker(int(os.environ["OPENBLAS_NUM_THREADS"]), args.nets, batches, args.repeats, min_time,
                                args.backend)))
        return 0
    if args.worker == "memory":
        print(json.dumps(memory_worker(args.framework, args.nets[0], 128)))
        return 0
    if args.worker == "notebook":
        print(json.dumps(notebook_worker(8)))
        return 0
    if args.worker == "epoch":
        print(json.dumps(epoch_worker()))
        return 0

    base = ["--repeats", str(args.repeats), "--nets", *args.nets, "--backend", args.backend] + (
        ["--quick"] if args.quick else [])
    results = []
    for threads in args.threads:
        print(f"timing with {threads} thread(s) ...", file=sys.stderr, flush=True)
        results.append(run_in_subprocess(["--worker", "speed", *base], threads, args.isa))
    memory = {}
    for name in args.nets:
        memory[name] = {framework: run_in_subprocess(["--worker", "memory", "--framework", framework, "--nets", name],
                                                     1, args.isa)
                        for framework in (("convnp", "torch") if results[0]["torch"] else ("convnp",))}
    seed = ROOT.parent / "shared" / "seed" / "cnn-notebook.md"
    notebook_ips = (run_in_subprocess(["--worker", "notebook"], 1, args.isa)
                    if seed.exists() and "notebook" in args.nets else None)
    epoch_s = None if args.quick else run_in_subprocess(["--worker", "epoch"], 1, args.isa)
    text = report(results, memory, notebook_ips, epoch_s, args)
    print(text)
    if args.out != "-" and not args.quick:
        write_results(Path(args.out), text)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


def write_results(path: Path, text: str) -> None:
    """Put ``text``, a section headed by its CPU class (:func:`section_heading`), in ``path`` in place of that
    class's previous section, or after the others: another CPU class's figures, and the other benchmarks' sections
    (load.py, distributed.py, ...), are kept as they are."""
    heading = text.splitlines()[0]
    write_section(path, text, heading)


if __name__ == "__main__":
    sys.exit(main())
