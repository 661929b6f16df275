"""Where a training step's time goes: each layer's forward and backward, timed separately.

    python benchmarks/profile_layers.py                       # the zoo's networks and the LeNet-style net, batch 128
    python benchmarks/profile_layers.py --model lenet-style --batch 128 --repeats 30
    python benchmarks/profile_layers.py --model best --torch  # next to each layer, its PyTorch twin's times
    python benchmarks/profile_layers.py --model best --torch --inference  # forward only, in inference mode

One thread, one BLAS thread (set before NumPy loads); the layers run in the order Sequential runs them (a ReLU
that feeds a max-pool runs after it), and are listed in the model's order. Each layer is timed over ``--repeats``
whole steps (forward through every layer, loss, backward through every layer); the table gives each layer's median
milliseconds and its share of the step. Profile before optimising: this is the tool that says which kernel matters.

``--torch`` times the network's PyTorch copy (``benchmarks/twins.py``, one thread) layer by layer as well, in
alternation with convnp, round after round, inside whole training steps (module hooks stamp the clock; see
:func:`torch_samples`). The last column says how many times longer convnp takes than PyTorch on that layer.
``--inference`` times forward passes in inference mode instead (convnp's ``training=False``, PyTorch's ``eval()``
under ``no_grad``), as ``bench.py`` times inference; the backward columns are then zero.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from bench import convnp_net  # noqa: E402
from convnp.parallel.malloc import keep_freed_memory  # noqa: E402
from convnp.losses import SoftmaxCrossEntropy  # noqa: E402
from convnp.models import get_model  # noqa: E402


def medians(model, fwd, bwd, loss_t) -> list[tuple[str, float, float]]:
    """``(layer repr, median forward ms, median backward ms)`` per layer and a last row for the loss."""
    ms = lambda v: 1e3 * statistics.median(v)  # noqa: E731
    rows = [(repr(layer), ms(f), ms(b)) for layer, f, b in zip(model.layers, fwd, bwd)]
    rows.append(("loss (softmax cross-entropy)", ms(loss_t), 0.0))
    return rows


def samples(model, batch: int, repeats: int, seed: int = 0, inference: bool = False):
    """convnp's seconds per layer over ``repeats`` steps (after two warm-up steps that fill the workspaces).

    Returns ``(fwd, bwd, loss)``: ``fwd[i]`` and ``bwd[i]`` list layer ``i``'s times, ``loss`` the loss's. With
    ``inference`` each step is one forward pass in inference mode, and the backward and loss times are zero.
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
            h = layer.run(layer.check_input(h, finite=position == 0), training=not inference)  # as forward checks
            fwd[i].append(time.perf_counter() - t)
        if inference:
            for times in bwd + [loss_t]:
                times.append(0.0)
            continue
        t = time.perf_counter()
        loss.forward(h, y)
        d = loss.backward()
        loss_t.append(time.perf_counter() - t)
        for position in range(len(order) - 1, -1, -1):
            i = order[position]
            t = time.perf_counter()
            d = layers[i].backward(d, input_grad=position > 0)
            bwd[i].append(time.perf_counter() - t)
    return [f[2:] for f in fwd], [b[2:] for b in bwd], loss_t[2:]


def torch_samples(model, batch: int, repeats: int, seed: int = 0, inference: bool = False):
    """The same as :func:`samples` for ``model``'s PyTorch twin, timed inside whole training steps by module hooks
    (with ``inference``, forward passes in ``eval()`` mode under ``no_grad``).

    Forward hooks stamp the clock before and after each layer; full backward hooks stamp it when a layer's output
    gradient arrives and when its input gradient is done. The loss row is the loss's forward plus the time from
    ``backward()`` to the last layer's first stamp.
    """
    import torch
    import torch.nn.functional as F
    from twins import torch_twin

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *model.input_shape), dtype=np.float32)  # the batch samples() uses
    y = torch.from_numpy(rng.integers(0, 10, batch))
    net = torch_twin(model).train(not inference)
    modules = list(net)[1:]  # one per convnp layer, after the input's permute (twins.torch_layers)
    xt = torch.from_numpy(x)
    n = len(modules)
    stamps = {}

    def stamp(key):
        def hook(*_):
            stamps[key] = time.perf_counter()
        return hook

    for i, module in enumerate(modules):
        module.register_forward_pre_hook(stamp(("f0", i)))
        module.register_forward_hook(stamp(("f1", i)))
        module.register_full_backward_pre_hook(stamp(("b0", i)))
        module.register_full_backward_hook(stamp(("b1", i)))
    fwd = [[] for _ in modules]
    bwd = [[] for _ in modules]
    loss_t = []
    for _ in range(repeats + 2):
        net.zero_grad(set_to_none=True)
        stamps.clear()
        if inference:
            with torch.no_grad():
                net(xt)
            for i in range(n):
                fwd[i].append(stamps[("f1", i)] - stamps[("f0", i)])
                bwd[i].append(0.0)
            loss_t.append(0.0)
            continue
        logits = net(xt)
        t0 = time.perf_counter()
        loss = F.cross_entropy(logits, y)
        t1 = time.perf_counter()
        with warnings.catch_warnings():  # the first layer's input needs no gradient, which PyTorch remarks on
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss.backward()
        t2 = time.perf_counter()
        for i in range(n):
            fwd[i].append(stamps[("f1", i)] - stamps[("f0", i)])
            # With no input gradient to wait for, the first layer's hooks fire before its weight gradient is
            # computed; it is the last layer backward reaches, so it ends when backward() returns.
            bwd[i].append((t2 if i == 0 else stamps[("b1", i)]) - stamps[("b0", i)])
        loss_t.append((t1 - t0) + (stamps[("b0", n - 1)] - t1))
    return [f[2:] for f in fwd], [b[2:] for b in bwd], loss_t[2:]


def table(name: str, batch: int, rows) -> str:
    total = sum(f + b for _, f, b in rows)
    out = [f"### {name}, batch {batch}: {total:.2f} ms per step, {1e3 * batch / total:,.0f} images/s", "",
           "| layer | forward ms | backward ms | share |", "|---|---|---|---|"]
    for label, f, b in rows:
        out.append(f"| {label} | {f:.3f} | {b:.3f} | {100 * (f + b) / total:.0f}% |")
    return "\n".join(out) + "\n"


def side_by_side(name: str, batch: int, ours, theirs, what: str = "step") -> str:
    """A Markdown table of convnp's and PyTorch's per-layer medians (rows from :func:`medians`)."""
    total_ours, total_theirs = (sum(f + b for _, f, b in rows) for rows in (ours, theirs))
    heading = (f"### {name}, batch {batch}, one thread: convnp {total_ours:.2f} ms per {what} "
               f"({1e3 * batch / total_ours:,.0f} images/s), PyTorch {total_theirs:.2f} ms "
               f"({1e3 * batch / total_theirs:,.0f} images/s), summed over the layers")
    out = [heading, "",
           "| layer | convnp fwd ms | convnp bwd ms | PyTorch fwd ms | PyTorch bwd ms | convnp / PyTorch |",
           "|---|---|---|---|---|---|"]
    for (label, f, b), (_, tf, tb) in zip(ours, theirs):
        ratio = (f + b) / (tf + tb) if tf + tb > 0 else float("nan")
        out.append(f"| {label} | {f:.3f} | {b:.3f} | {tf:.3f} | {tb:.3f} | {ratio:.2f} |")
    out.append(f"| **total** | | | | | **{total_ours / total_theirs:.2f}** |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="a zoo model or 'lenet-style' (repeatable)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--torch", action="store_true", help="time the PyTorch twin of each layer too")
    parser.add_argument("--rounds", type=int, default=4,
                        help="with --torch: alternations of the two frameworks, repeats split among them")
    parser.add_argument("--inference", action="store_true",
                        help="time forward passes in inference mode instead of training steps")
    args = parser.parse_args(argv)
    for name in args.model or ["notebook", "lenet-style", "lenet5", "convnet", "best"]:
        model = convnp_net(name) if name == "lenet-style" else get_model(name, rng=np.random.default_rng(0))
        if not args.torch:
            print(table(name, args.batch, medians(model, *samples(model, args.batch, args.repeats,
                                                                   inference=args.inference))))
            continue
        # (forward times per layer, backward times per layer, loss times), for convnp and for PyTorch
        collected = {run: ([[] for _ in model.layers], [[] for _ in model.layers], [])
                     for run in (samples, torch_samples)}
        per_round = max(1, args.repeats // args.rounds)
        for _ in range(args.rounds):  # alternating, so a slow moment on this shared machine hits both
            for run, (fwd, bwd, loss_t) in collected.items():
                new_fwd, new_bwd, new_loss = run(model, args.batch, per_round, inference=args.inference)
                for per_layer, new in zip(fwd + bwd, new_fwd + new_bwd):
                    per_layer += new
                loss_t += new_loss
        print(side_by_side(name, args.batch, medians(model, *collected[samples]),
                           medians(model, *collected[torch_samples]), "pass" if args.inference else "step"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
