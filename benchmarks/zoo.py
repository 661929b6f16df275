"""Train every zoo model with its recipe on several seeds and tabulate test accuracy and training time.

    python benchmarks/zoo.py                                  # all models, seeds 0 1 2: a few hours on 2 cores
    python benchmarks/zoo.py --models notebook lenet5 --seeds 0
    python benchmarks/zoo.py --collect                        # only re-read finished runs into the table

Each run is exactly ``convnp train --model NAME --seed S --out RUNS/NAME-sS --no-report`` (the recipe's settings,
MNIST's 60,000 training images with 10% held out for validation, the 10,000 test images scored at the end), in a
fresh process, one after another so that runs do not compete for the cores. A run whose folder already holds
``results.json`` is not repeated. The table (mean, min-max and every seed's accuracy; training time is the sum of
the epochs' times in ``metrics.csv``, so data loading and the final evaluation are not counted) is printed and
written to ``benchmarks/ZOO.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("notebook", "sprint", "lenet5", "convnet", "best")


def run_one(model: str, seed: int, run_dir: Path, threads: int | None) -> None:
    command = [sys.executable, "-m", "convnp", "train", "--model", model, "--seed", str(seed), "--out", str(run_dir),
               "--no-report"]
    if threads is not None:
        command += ["--threads", str(threads)]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def read_run(run_dir: Path) -> dict | None:
    """Test accuracy and training seconds of a finished run, or None if it has not finished."""
    results, metrics = run_dir / "results.json", run_dir / "metrics.csv"
    if not results.is_file() or not metrics.is_file():
        return None
    results = json.loads(results.read_text())
    with metrics.open(newline="") as f:
        rows = list(csv.DictReader(f))
    settings = json.loads((run_dir / "config.json").read_text())["settings"]
    # The count the run used (results.json has it from convnp 2026-11-28 on), else the one asked for, if any.
    threads = results.get("threads") or settings.get("threads") or "default"
    if results.get("backend") == "processes":  # recorded from convnp's process backend on (2026-11-28)
        threads = f"{threads} processes"
    return {"accuracy": results["test"]["accuracy"], "seconds": sum(float(r["time"]) for r in rows),
            "epochs": len(rows), "threads": threads}


def table(runs: dict[str, dict[int, dict]]) -> str:
    from convnp.models import MODELS as BUILDERS

    lines = [
        "| model | params | seeds | test accuracy: mean (min-max) | each seed | training time per run | threads or processes | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, by_seed in runs.items():
        done = {s: r for s, r in sorted(by_seed.items()) if r is not None}
        if not done:
            continue
        acc = [100 * r["accuracy"] for r in done.values()]
        minutes = [r["seconds"] / 60 for r in done.values()]
        params = BUILDERS[model]().n_params
        threads = ", ".join(sorted({str(r["threads"]) for r in done.values()}))
        lines.append(
            f"| {model} | {params:,} | {', '.join(map(str, done))} | **{statistics.mean(acc):.2f}%** "
            f"({min(acc):.2f}-{max(acc):.2f}) | {', '.join(f'{a:.2f}' for a in acc)} | "
            f"{min(minutes):.1f}-{max(minutes):.1f} min | {threads} | `convnp train --model {model} --seed S` |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--runs", default="runs/zoo", help="folder of the run folders (default: runs/zoo)")
    p.add_argument("--threads", type=int, default=None, help="passed to convnp train (default: its default rule)")
    p.add_argument("--collect", action="store_true", help="train nothing; tabulate the finished runs")
    p.add_argument("--out", default=str(HERE / "ZOO.md"), help="Markdown file to write ('-' prints only)")
    args = p.parse_args(argv)

    runs: dict[str, dict[int, dict]] = {}
    for model in args.models:
        runs[model] = {}
        for seed in args.seeds:
            run_dir = Path(args.runs) / f"{model}-s{seed}"
            if not args.collect and read_run(run_dir) is None:
                if run_dir.exists():
                    raise SystemExit(f"{run_dir} holds an unfinished run: resume it with `convnp train --resume "
                                     f"{run_dir}`, or delete it")
                run_one(model, seed, run_dir, args.threads)
            runs[model][seed] = read_run(run_dir)

    text = table(runs)
    print(text)
    if args.out != "-":
        header = (f"# The model zoo on MNIST\n\nMachine: {platform.machine()}, {os.cpu_count()} "
                  f"cores, Python {platform.python_version()}. Command: `python benchmarks/zoo.py`. Written "
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Test accuracy on the 10,000 MNIST test "
                  "images after training with the model's recipe on 54,000 of the 60,000 training images; training "
                  "time is the sum of the epochs' times.\n\n")
        Path(args.out).write_text(header + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
