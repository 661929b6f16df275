"""Training speed across MPI processes against threads: images/s and scaling efficiency on this machine.

    python benchmarks/distributed.py            # writes the "Distributed training (MPI)" section of RESULTS.md
    python benchmarks/distributed.py --out -    # prints it only

Three set-ups train each zoo model on the same global batch (default 128) with SGD + momentum, the whole step
(forward, backward, gradient all-reduce, optimizer update) timed, as ``convnp.train.Trainer.train_step`` runs it:

- 1 process, 1 thread (the baseline);
- 2 processes of 1 thread each (``mpirun -n 2``, :class:`convnp.parallel.mpi.DistributedDataParallel`);
- 1 process, 2 threads (:class:`convnp.parallel.DataParallel`).

Each set-up runs in its own worker process(es), with BLAS held to one thread; the set-ups take turns, round after
round, so a noisy neighbour on this shared machine slows all of them, and the table gives medians over the rounds.
Scaling efficiency is ``images/s with 2 workers / (2 x images/s of the baseline)``. The 2-process worker also times
one all-reduce of each model's whole gradient (the fastest of 10), the step's only traffic besides BatchNorm's few
numbers.
Needs the ``mpi`` extra (``pip install 'convnp[mpi]'``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("notebook", "lenet5", "best", "convnet")
SECTION = "## Distributed training (MPI)"
SETUPS = {"1 process x 1 thread": (1, 1), "2 processes x 1 thread": (2, 1), "1 process x 2 threads": (1, 2)}


# ---- the worker: one set-up, every model ----------------------------------------------------------------------------
def worker(args) -> None:
    import numpy as np

    from convnp.models import get_model
    from convnp.optim import SGD
    from convnp.train import Trainer

    dist = None
    if args.mpi:
        from convnp.parallel.mpi import Distributed

        dist = Distributed()
    rng = np.random.default_rng(0)
    # A few different batches, cycled, so no step sees the same data twice in a row.
    xs = rng.normal(size=(4, args.batch_size, 28, 28, 1)).astype(np.float32)
    ys = rng.integers(0, 10, size=(4, args.batch_size))
    results = {}
    for name in args.models:
        model = get_model(name, rng=np.random.default_rng(1))
        parallel = None if dist is None else dist.data_parallel(model, check_every=0)
        trainer = Trainer(model, SGD(0.01, momentum=0.9), threads=args.threads, parallel=parallel)
        for i in range(2):  # warm-up: buffers allocated, BLAS and MPI connections set up
            trainer.train_step(xs[i], ys[i])
        steps, start = 0, time.perf_counter()
        # Every process must run the same number of steps: process 0 decides when to stop and tells the others.
        while True:
            trainer.train_step(xs[steps % 4], ys[steps % 4])
            steps += 1
            done = np.array([steps >= 3 and time.perf_counter() - start >= args.seconds], dtype=np.int64)
            if dist is not None:
                dist.comm.Bcast(done, root=0)
            if done[0]:
                break
        elapsed = time.perf_counter() - start
        entry = {"images_per_s": steps * args.batch_size / elapsed, "steps": steps}
        if dist is not None:
            flat = parallel._flat.copy()
            times = []
            for _ in range(10):
                dist.comm.Barrier()
                t = time.perf_counter()
                dist.allreduce_in_place(flat)
                times.append(time.perf_counter() - t)
            entry["allreduce_ms"] = min(times) * 1e3  # the transfer itself, without a descheduled partner's delay
            entry["step_ms"] = elapsed / steps * 1e3
        results[name] = entry
    if dist is None or dist.is_root:
        print("RESULT " + json.dumps(results), flush=True)


# ---- the driver ------------------------------------------------------------------------------------------------------
def run_setup(processes: int, threads: int, args) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "CONVNP_NUM_THREADS": str(threads)}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--threads", str(threads),
               "--batch-size", str(args.batch_size), "--seconds", str(args.seconds), "--models", *args.models]
    if processes > 1:
        mpirun = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
        if mpirun is None:
            raise SystemExit("mpirun not found: pip install 'convnp[mpi]'")
        root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
        command = [mpirun, "-n", str(processes), "--oversubscribe", *root, *command, "--mpi"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"worker failed ({' '.join(command)}):\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def allreduce_table() -> list[str]:
    """Bytes each process sends per step, per zoo model: the float32 gradient, 4 bytes per parameter."""
    import numpy as np

    from convnp.models import get_model

    rows = ["| model | parameters | gradient all-reduced per step | BatchNorm all-reduces per step |",
            "|---|---|---|---|"]
    for name in MODELS:
        model = get_model(name, rng=np.random.default_rng(0))
        n_bn = sum(type(layer).__name__.startswith("BatchNorm") for layer in model.layers)
        rows.append(f"| {name} | {model.n_params:,} | {4 * model.n_params / 1e6:.3f} MB | {2 * n_bn} |")
    return rows


def busy_cores(seconds: float = 3.0) -> float | None:
    """How many cores other work kept busy over ``seconds`` (from /proc/stat; None where there is none)."""
    def sample():
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all jiffies, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (1 - (idle1 - idle0) / max(total1 - total0, 1)) * (os.cpu_count() or 1)


def section(medians: dict, spreads: dict, allreduce: dict, args, busy: tuple) -> str:
    base, procs, thr = SETUPS
    lines = [
        SECTION, "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other work (other jobs kept "
        f"{_cores(busy[0])} busy just before the run and {_cores(busy[1])} just after), "
        f"Python {platform.python_version()}, Open MPI over shared memory (one "
        f"machine). Command: `python benchmarks/distributed.py`; global batch {args.batch_size}, SGD with "
        f"momentum, whole training steps, {args.rounds} rounds with the set-ups taking turns, median (min-max) "
        f"images/s. Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
        f"| model | {base} | {procs} | efficiency | {thr} | efficiency | all-reduce of the gradient (2 processes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.models:
        one = medians[base][name]
        cells = [f"{medians[base][name]:,.0f} ({spreads[base][name]})"]
        for setup in (procs, thr):
            cells += [f"{medians[setup][name]:,.0f} ({spreads[setup][name]})", f"{medians[setup][name] / (2 * one):.0%}"]
        a = allreduce[name]
        cells.append(f"{a['allreduce_ms']:.2f} ms of a {a['step_ms']:.0f} ms step")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if None not in busy:
        free = max(min((os.cpu_count() or 1) - max(busy), 2.0), 0.0)
        lines += ["", f"The two workers of the last two set-ups had about {free:.1f} free cores between them, so "
                  f"{free / 2:.0%} is the most efficiency either could reach here; on an idle machine the ceiling is "
                  "100%."]
    lines += ["", "Traffic per training step and process, whatever the number of processes (computed):", "",
              *allreduce_table(), ""]
    return "\n".join(lines) + "\n"


def _cores(value: float | None) -> str:
    return "an unknown number of cores" if value is None else f"{value:.1f} of the cores"


def replace_section(path: Path, text: str) -> None:
    """Put ``text`` in place of the file's existing section of the same heading (or at the end); others untouched."""
    old = path.read_text() if path.exists() else ""
    start = old.find(SECTION + "\n")
    if start < 0:
        new = old.rstrip("\n") + ("\n\n" if old.strip() else "") + text
    else:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + ("" if end < 0 else "\n" + old[end + 1 :])
    path.write_text(new)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="zoo models to time")
    p.add_argument("--batch-size", type=int, default=128, help="global batch of every step")
    p.add_argument("--seconds", type=float, default=2.0, help="least time per model and round (3 steps at least)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the three set-ups, taking turns")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"), help="Markdown file whose section to write ('-' prints)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    before = busy_cores()
    samples = {setup: {name: [] for name in args.models} for setup in SETUPS}
    allreduce = {}
    for r in range(args.rounds):
        for setup, (processes, threads) in SETUPS.items():
            result = run_setup(processes, threads, args)
            for name, entry in result.items():
                samples[setup][name].append(entry["images_per_s"])
                if "allreduce_ms" in entry:
                    allreduce.setdefault(name, []).append(entry)
            print(f"round {r + 1}/{args.rounds} {setup}: "
                  + ", ".join(f"{n} {e['images_per_s']:,.0f}" for n, e in result.items()), flush=True)
    medians = {s: {n: statistics.median(v) for n, v in d.items()} for s, d in samples.items()}
    spreads = {s: {n: f"{min(v):,.0f}-{max(v):,.0f}" for n, v in d.items()} for s, d in samples.items()}
    allreduce = {n: {k: statistics.median(e[k] for e in entries) for k in ("allreduce_ms", "step_ms")}
                 for n, entries in allreduce.items()}
    text = section(medians, spreads, allreduce, args, (before, busy_cores()))
    print(text)
    if args.out != "-":
        replace_section(Path(args.out), text)
        print(f"wrote the section {SECTION!r} of {args.out}")


if __name__ == "__main__":
    main()
