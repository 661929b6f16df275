"""Train the pretrained models and bundle them into src/convnp/pretrained/ with their manifest.

    .venv/bin/python scripts/make_pretrained.py                  # train both (about 15 min on 2 idle cores), bundle
    .venv/bin/python scripts/make_pretrained.py --runs /tmp/pre --no-train   # bundle runs trained before

Each model is trained by the exact ``convnp train`` command its entry in MODELS names (plus ``--out``), into
``RUNS/<name>``. Bundling keeps what a user needs of the run folder: ``last.npz`` rewritten without the optimizer's
buffers (half the size; the weights, architecture, preparation and history stay), ``config.json``, ``metrics.csv``
and ``results.json``. The checkpoint shipped is the run's last one, ``last.npz``: the end of the recipe's schedule,
which the run's test accuracy (results.json, benchmarks/ZOO.md) measures; choosing it needs no look at the test set.
It then measures each bundled checkpoint on the 10,000 MNIST test images and writes ``manifest.json``: every
file's sha256, that accuracy, the command, the machine, the date.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from convnp.checkpoint import load_checkpoint, save_checkpoint
from convnp.data import load_mnist
from convnp.inference import Classifier
from convnp.pretrained import MANIFEST

#: name -> the command that trains it (benchmarks/ZOO.md: seed 1 is best's best seed of three) and a description.
MODELS = {
    "mnist-best": {
        "command": "convnp train --model best --seed 1",
        "description": "the zoo's best network (BatchNorm, 218,714 parameters) trained with its recipe on MNIST",
    },
    "mnist-notebook": {
        "command": "convnp train --model notebook --seed 1",
        "description": "the seed notebook's network (conv 8@3x3, ReLU, max pool, dense; 13,610 parameters) on MNIST",
    },
}
FILES = ("last.npz", "config.json", "metrics.csv", "results.json")


def machine() -> str:
    """The machine, as every figure in this project names it: CPU, cores, whether virtual, BLAS."""
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line for line in text.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    extras = [word for word, flag in (("AVX-512", " avx512f"), ("a virtual machine", " hypervisor")) if flag in flags]
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return (f"{platform.machine()}, {os.cpu_count()} cores of {cpu}" + "".join(f", {e}" for e in extras)
            + f"; NumPy {np.__version__} with {blas.get('name')} {blas.get('version')}"
            + f"; Python {platform.python_version()}")


def train(name: str, runs: Path) -> None:
    """Run the model's command into ``runs/<name>`` (a folder left by an earlier try is replaced)."""
    out = runs / name
    shutil.rmtree(out, ignore_errors=True)
    command = shlex.split(MODELS[name]["command"]) + ["--out", str(out)]
    convnp = Path(sys.executable).with_name("convnp")
    command[0] = str(convnp) if convnp.exists() else command[0]
    print("$", shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundle(name: str, run: Path, dest: Path, test: tuple[np.ndarray, np.ndarray]) -> dict:
    """Copy run folder ``run`` into ``dest``, trimmed; return the model's manifest entry."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    checkpoint = load_checkpoint(run / "last.npz")
    meta = {k: v for k, v in checkpoint.meta.items() if k not in ("format", "format_version", "model", "dtype",
                                                                    "optimizer")}
    save_checkpoint(dest / "last.npz", checkpoint.model, meta=meta)  # no optimizer: its buffers are not shipped
    for file in ("config.json", "metrics.csv"):
        shutil.copyfile(run / file, dest / file)
    results = json.loads((run / "results.json").read_text())
    results["checkpoint"] = "last.npz"  # the bundled file, not the path where it was trained
    (dest / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    x_test, y_test = test
    predicted = Classifier.from_checkpoint(dest / "last.npz").predict(x_test[..., None])  # (N,) from (N, 28, 28, 1)
    config = json.loads((run / "config.json").read_text())
    metrics = (run / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    seconds = sum(float(row.split(",")[header.index("time")]) for row in metrics[1:])
    return {
        "description": MODELS[name]["description"],
        "model": checkpoint.meta.get("model_name"),
        "params": checkpoint.model.n_params,
        "command": MODELS[name]["command"],
        "test_accuracy": float(np.mean(predicted == y_test)),
        "test_images": int(len(y_test)),
        "epochs": len(metrics) - 1,
        "training_seconds": round(seconds, 1),
        "trained": config.get("written"),
        "machine": machine(),
        "versions": config.get("versions"),
        "files": {file: sha256(dest / file) for file in FILES},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", type=Path, default=None,
                        help="folder of the training runs, one sub-folder per model (default: a new temporary one)")
    parser.add_argument("--no-train", action="store_true", help="bundle the runs already in --runs")
    parser.add_argument("--only", choices=tuple(MODELS), action="append", default=None,
                        help="train and bundle this model only (repeatable); the others' entries are kept")
    parser.add_argument("--dest", type=Path, default=MANIFEST.parent,
                        help="folder to bundle into (its manifest.json, one sub-folder per model)")
    args = parser.parse_args(argv)
    if args.no_train and args.runs is None:
        parser.error("--no-train needs --runs, the folder holding the runs")
    runs = args.runs or Path(tempfile.mkdtemp(prefix="convnp-pretrained-"))
    names = args.only or list(MODELS)
    manifest_path = args.dest / MANIFEST.name
    entries = json.loads(manifest_path.read_text())["models"] if manifest_path.exists() else {}
    _, _, x_test, y_test = load_mnist()
    for name in names:
        if not args.no_train:
            train(name, runs)
        entries[name] = bundle(name, runs / name, args.dest / name, (x_test, y_test))
        print(f"{name}: test accuracy {entries[name]['test_accuracy']:.2%}", flush=True)
    manifest = {"format": "convnp-pretrained", "format_version": 1,
                "models": {name: entries[name] for name in MODELS if name in entries}}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
