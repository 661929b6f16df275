"""Run by tests/test_distributed.py under ``mpirun`` (and imported by it for the one-process reference).

``python tests/_mpi_worker.py MODE OUT_DIR``:

- ``train``: trains :func:`tiny_model` in float64 with :class:`DistributedDataParallel` (model checked identical on
  every process before every step) and writes each process's final weights, optimizer buffers and losses to
  ``OUT_DIR/rank<r>.npz``;
- ``diverge``: process 1 nudges one weight after two steps; the next step's check must fail on every process, and
  each writes the error it got to ``OUT_DIR/rank<r>.txt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from convnp import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential
from convnp.optim import SGD
from convnp.train import Trainer

# 100 samples in batches of 33: shards of 16 and 17 rows, and a last batch of 1, smaller than 2 processes.
N_SAMPLES, BATCH_SIZE, EPOCHS = 100, 33, 3


def tiny_model() -> Sequential:
    """Conv, BatchNorm, pool, dense, Dropout, dense on (N, 12, 12, 1), in float64: every layer that shards."""
    rng = np.random.default_rng(7)
    init = {"rng": rng, "dtype": np.float64}
    return Sequential([
        Conv2D(1, 4, 3, **init), BatchNorm2D(4, dtype=np.float64), ReLU(), MaxPool2D(2),  # (N, 5, 5, 4)
        Flatten(), Dense(100, 16, **init), ReLU(), Dropout(0.3, rng=np.random.default_rng(8)), Dense(16, 3, **init),
    ], input_shape=(12, 12, 1))


def tiny_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    y = rng.integers(0, 3, N_SAMPLES)
    x = rng.normal(size=(N_SAMPLES, 12, 12, 1))
    for k in range(3):  # a bright block whose place says the class
        x[y == k, 4 * k : 4 * k + 4, 2:6] += 3.0
    return x, y


def train(parallel=None, threads: int = 1, on_step=None) -> tuple[Sequential, SGD, list[float]]:
    """Train :func:`tiny_model`; ``parallel`` replaces the threads (a DistributedDataParallel)."""
    model = tiny_model()
    optimizer = SGD(0.05, momentum=0.9)
    if parallel is not None:
        parallel = parallel(model)
    losses = []

    class Record:
        def on_batch_end(self, batch, logs):
            losses.append(logs["loss"])
            if on_step is not None:
                on_step(model, len(losses))

    trainer = Trainer(model, optimizer, threads=threads, parallel=parallel, callbacks=[Record()])
    x, y = tiny_data()
    trainer.fit(x, y, epochs=EPOCHS, batch_size=BATCH_SIZE, rng=np.random.default_rng(10))
    return model, optimizer, losses


def arrays(model, optimizer, losses) -> dict[str, np.ndarray]:
    out = {f"model/{k}": v for k, v in model.state_dict().items()}
    out.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
    out["losses"] = np.array(losses)
    return out


def main(mode: str, out_dir: str) -> None:
    from convnp.parallel.mpi import Distributed, DistributedDataParallel, ReplicasDiverged

    dist = Distributed()
    out = Path(out_dir)
    if mode == "train":
        result = train(lambda m: DistributedDataParallel(m, dist, check_every=1))
        np.savez(out / f"rank{dist.rank}.npz", **arrays(*result))
    elif mode == "diverge":
        def nudge(model, step):
            if step == 2 and dist.rank == 1:
                model.parameters()["0.weight"].flat[0] += 1e-9

        try:
            train(lambda m: DistributedDataParallel(m, dist, check_every=1), on_step=nudge)
            message = "no error"
        except ReplicasDiverged as err:
            message = str(err)
        (out / f"rank{dist.rank}.txt").write_text(message)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
