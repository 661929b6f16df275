"""Where a training step's time goes: each layer's forward and backward, timed separately.

    python benchmarks/profile_layers.py                       # the zoo's networks and the LeNet-style net, batch 128
    python benchmarks/profile_layers.py --model lenet-style --batch 128 --repeats 30

One thread, one BLAS thread (set before NumPy loads); the layers run in the order Sequential runs them (a ReLU
that feeds a max-pool runs after it), and are listed in the model's order. Each layer is timed over ``--repeats`` whole steps (forward
through every layer, loss, backward through every layer); the table gives each layer's median milliseconds and its
share of the step. Profile before optimising: this is the tool that says which kernel matters.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from bench import convnp_net  # noqa: E402
from convnp._malloc import keep_freed_memory  # noqa: E402
from convnp.losses import SoftmaxCrossEntropy  # noqa: E402
from convnp.models import get_model  # noqa: E402


def profile(model, batch: int, repeats: int, seed: int = 0) -> list[tuple[str, float, float]]:
    """Median forward and backward milliseconds of each layer over ``repeats`` training steps.

    Returns ``(layer repr, forward ms, backward ms)`` per layer, plus a last row for the loss.
    """
    keep_freed_memory()  # as training does: freed blocks are reused, not returned to the system
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    loss = SoftmaxCrossEntropy()
    layers = list(model.layers)
    fwd = [[] for _ in layers]
    bwd = [[] for _ in layers]
    loss_t = []
    for step in range(repeats + 2):  # two warm-up steps fill the workspaces
        h = x
        order = model._order()  # as Sequential runs them: ReLU after a max-pool that follows it
        for position, i in enumerate(order):
            layer = layers[i]
            t = time.perf_counter()
            h = layer.run(layer.check_input(h, finite=position == 0), training=True)  # as Sequential.forward checks
            fwd[i].append(time.perf_counter() - t)
        t = time.perf_counter()
        loss.forward(h, y)
        d = loss.backward()
        loss_t.append(time.perf_counter() - t)
        for position in range(len(order) - 1, -1, -1):
            i = order[position]
            t = time.perf_counter()
            d = layers[i].backward(d, input_grad=position > 0)
            bwd[i].append(time.perf_counter() - t)
    ms = lambda v: 1e3 * statistics.median(v[2:])  # noqa: E731
    rows = [(repr(layer), ms(f), ms(b)) for layer, f, b in zip(layers, fwd, bwd)]
    rows.append(("loss (softmax cross-entropy)", ms(loss_t), 0.0))
    return rows


def table(name: str, batch: int, rows) -> str:
    total = sum(f + b for _, f, b in rows)
    out = [f"### {name}, batch {batch}: {total:.2f} ms per step, {1e3 * batch / total:,.0f} images/s", "",
           "| layer | forward ms | backward ms | share |", "|---|---|---|---|"]
    for label, f, b in rows:
        out.append(f"| {label} | {f:.3f} | {b:.3f} | {100 * (f + b) / total:.0f}% |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="a zoo model or 'lenet-style' (repeatable)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    for name in args.model or ["notebook", "lenet-style", "lenet5", "convnet", "best"]:
        model = convnp_net(name) if name == "lenet-style" else get_model(name, rng=np.random.default_rng(0))
        print(table(name, args.batch, profile(model, args.batch, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
