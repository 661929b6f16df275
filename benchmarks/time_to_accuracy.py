"""Time to a test accuracy (default 99.0% on MNIST): convnp and PyTorch training the same recipe on this machine.

    python benchmarks/time_to_accuracy.py                       # the recipe below, both frameworks, 2 threads
    python benchmarks/time_to_accuracy.py --frameworks convnp   # without PyTorch

Both frameworks train the same network from the same initial weights (PyTorch's copy is made by
``benchmarks/twins.py``) on the same 60,000 standardised training images in the same order (one permutation per
epoch from ``--seed``), with the same optimizer and the same learning rate at every step (convnp's schedule,
written into PyTorch's optimizer before each step). Only dropout masks differ. Every ``--eval-every`` epochs the
clock stops and the 10,000 test images are scored; the first time the accuracy reaches ``--target``, the training
seconds so far are the result. Each framework runs in its own process (thread settings must precede the imports):
convnp splits batches across ``--threads`` workers as ``convnp train`` does (``--backend``: processes by default on
Linux, or threads), PyTorch gets
``torch.set_num_threads(--threads)``. With ``--repeats`` above 1 the frameworks alternate, run after run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def prepare(args):
    """Data, model, optimizer and schedule, identical for both frameworks."""
    import numpy as np

    from convnp.data import load_mnist
    from convnp.data.transforms import Standardize
    from convnp.models import MODELS
    from convnp.optim import SGD, Adam
    from convnp.schedules import Cosine, OneCycle

    x_train, y_train, x_test, y_test = load_mnist()  # uint8 images (N, 28, 28)
    x_train, x_test = x_train[..., None], x_test[..., None]  # (N, 28, 28, 1)
    standardize = Standardize.fit(x_train)
    x_train, x_test = standardize(x_train), standardize(x_test)
    model = MODELS[args.model](rng=np.random.default_rng(args.seed))
    steps_per_epoch = -(-len(y_train) // args.batch_size)
    total = steps_per_epoch * args.epochs
    schedule = (OneCycle if args.schedule == "onecycle" else Cosine)(args.lr, total)
    if args.optimizer == "adam":
        optimizer = Adam(args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = SGD(args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), model, optimizer, schedule


def batches(n: int, batch_size: int, epochs: int, seed: int):
    """``(epoch, step, indices)`` for every step: one permutation per epoch from a seeded Generator."""
    import numpy as np

    rng, step = np.random.default_rng(seed), 0
    for epoch in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield epoch, step, order[start : start + batch_size]
            step += 1


def run_convnp(args) -> dict:
    import numpy as np

    from convnp.parallel import data_parallel

    x, y, x_test, y_test, model, optimizer, schedule = prepare(args)
    parallel = data_parallel(model, args.threads, args.backend)

    def accuracy():
        logits = [parallel.predict(x_test[i : i + 1000]) for i in range(0, len(x_test), 1000)]
        return float(np.mean(np.concatenate(logits).argmax(axis=1) == y_test))

    return _train(args, x, y, accuracy, lambda xb, yb, step: _convnp_step(parallel, model, optimizer, schedule,
                                                                          xb, yb, step))


def _convnp_step(parallel, model, optimizer, schedule, xb, yb, step):
    optimizer.lr = schedule(step)
    parallel.train_step(xb, yb)
    optimizer.step(model.parameters(), model.gradients())


def run_torch(args) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    from twins import torch_twin

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y, x_test, y_test, model, _, schedule = prepare(args)
    net = torch_twin(model)
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                                    weight_decay=args.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt, xt_test = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x_test)

    def step_fn(idx, step):
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        index = torch.from_numpy(idx)
        optimizer.zero_grad()
        loss_fn(net(xt[index]), yt[index]).backward()
        optimizer.step()

    def accuracy():
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(xt_test[i : i + 1000]).argmax(1) for i in range(0, len(xt_test), 1000)])
        net.train()
        return float((pred.numpy() == y_test).mean())

    net.train()
    return _train(args, x, y, accuracy, lambda idx, _y, step: step_fn(idx, step), pass_indices=True)


def _train(args, x, y, accuracy, step_fn, pass_indices: bool = False) -> dict:
    """Run the steps, scoring the test set every ``eval_every`` epochs with the clock stopped."""
    steps_per_epoch = -(-len(y) // args.batch_size)
    eval_steps = max(1, round(args.eval_every * steps_per_epoch))
    trained, curve, reached = 0.0, [], None
    for epoch, step, idx in batches(len(y), args.batch_size, args.epochs, args.seed):
        start = time.perf_counter()
        if pass_indices:
            step_fn(idx, None, step)
        else:
            step_fn(x[idx], y[idx], step)
        trained += time.perf_counter() - start
        if (step + 1) % eval_steps == 0 or step + 1 == steps_per_epoch * args.epochs:
            acc = accuracy()
            curve.append(((step + 1) / steps_per_epoch, trained, acc))
            print(f"  {args.framework}: epoch {(step + 1) / steps_per_epoch:.2f}  {trained:6.1f} s  "
                  f"test {100 * acc:.2f}%", file=sys.stderr, flush=True)
            if reached is None and acc >= args.target:
                reached = trained
                if not args.full:
                    break
    images = min(len(curve) and curve[-1][0], args.epochs) * len(y)
    return {"seconds_to_target": reached, "curve": curve, "images_per_second": images / trained}


def parser() -> argparse.ArgumentParser:
    """The command line; its defaults are ``sprint``'s recipe (``convnp.models.recipes.RECIPES["sprint"]``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sprint", help="zoo network (default: sprint)")
    p.add_argument("--target", type=float, default=0.99, help="test accuracy to reach (default 0.99)")
    p.add_argument("--epochs", type=int, default=10, help="most epochs to train (the schedule spans them)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", choices=("adam", "nesterov"), default="nesterov")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=("onecycle", "cosine"), default="onecycle")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backend", choices=("auto", "threads", "processes"), default="auto",
                   help="what convnp splits batches across (default auto: processes on Linux)")
    p.add_argument("--eval-every", type=float, default=0.25, help="epochs between test scorings")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--full", action="store_true", help="train all epochs even after reaching the target")
    p.add_argument("--frameworks", nargs="+", choices=("convnp", "torch"), default=["convnp", "torch"])
    p.add_argument("--framework", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    if args.framework:  # a worker process
        result = (run_convnp if args.framework == "convnp" else run_torch)(args)
        print(json.dumps(result))
        return 0

    results: dict[str, list[dict]] = {f: [] for f in args.frameworks}
    for _ in range(args.repeats):
        for framework in args.frameworks:
            env = dict(os.environ, **{v: "1" if framework == "convnp" else str(args.threads) for v in THREAD_VARS})
            out = subprocess.run([sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]),
                                  "--framework", framework], env=env, capture_output=True, text=True)
            sys.stderr.write(out.stderr)
            if out.returncode:
                raise SystemExit(f"the {framework} worker failed (exit {out.returncode})")
            results[framework].append(json.loads(out.stdout.strip().splitlines()[-1]))

    recipe = (f"`{args.model}`, {args.optimizer} lr {args.lr} {args.schedule} over {args.epochs} epoch(s), batch "
              f"{args.batch_size}, weight decay {args.weight_decay}, {args.threads} thread(s), seed {args.seed}")
    print(f"\nTime to {100 * args.target:.1f}% test accuracy: {recipe}\n")
    print("| framework | seconds to target (each run) | images/s | test accuracy at each scoring |")
    print("|---|---|---|---|")
    for framework, runs in results.items():
        times = [r["seconds_to_target"] for r in runs]
        shown = ", ".join("not reached" if t is None else f"{t:.1f}" for t in times)
        ips = statistics.median(r["images_per_second"] for r in runs)
        curve = ", ".join(f"{100 * a:.2f}" for _, _, a in runs[-1]["curve"])
        print(f"| {framework} | {shown} | {ips:,.0f} | {curve} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
