"""``convnp replay-notebook``: rerun the seed notebook's experiment and print its epoch lines."""

from __future__ import annotations

import argparse

from convnp.cli._args import add_mnist_dir, positive_float, positive_int
from convnp.data.datasets import load_dataset
from convnp.replay import format_epoch, replay_notebook


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "replay-notebook",
        help="replay the seed notebook's experiment with correct gradients (or its own max-pool bug)",
        description="Train the notebook's network from its initial weights on the first 100 MNIST training images, "
        "full batch, float64, and print the notebook's 'Epoch k / Accuracy, Avg Loss' lines.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument(
        "--notebook-maxpool",
        action="store_true",
        help="use a labelled copy of the notebook's WRONG max-pool backward; the output then matches the notebook's",
    )
    p.add_argument("--samples", type=positive_int, default=100, help="first N training images")
    p.add_argument("--epochs", type=positive_int, default=5, help="full-batch gradient steps")
    p.add_argument("--lr", type=positive_float, default=0.1, help="learning rate")
    add_mnist_dir(p)
    p.set_defaults(run=run)


def run(args) -> int:
    data = load_dataset("mnist", mnist_dir=args.mnist_dir)  # a named folder is read or refused, never replaced
    x_train, y_train = data.x_train[..., 0], data.y_train  # (N, 28, 28) uint8 as the notebook read them
    if args.samples > len(x_train):
        raise ValueError(f"--samples {args.samples}: expected at most the {len(x_train):,} training images of "
                         f"{data.name}, got {args.samples:,}")
    variant = "the notebook's max-pool backward (WRONG, kept to show its effect)" if args.notebook_maxpool else (
        "convnp's max-pool backward (gradient to each window's first maximum)")
    print(f"replaying the notebook: {args.samples} images of {data.name}, full batch, lr {args.lr}, float64, "
          f"with {variant}\n")
    results = replay_notebook(
        x_train[: args.samples], y_train[: args.samples], epochs=args.epochs, lr=args.lr,
        notebook_maxpool=args.notebook_maxpool,
    )
    for epoch, (acc, loss) in enumerate(results):
        print(format_epoch(epoch, acc, loss))
    return 0
