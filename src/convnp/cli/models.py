"""``convnp models``: the model zoo at a glance (size, cost, recommended training), or one model (a zoo model or an
architecture file) in detail, for MNIST's images or those of ``--input-shape``."""

from __future__ import annotations

import argparse
import inspect
import json

import numpy as np

from convnp import pretrained
from convnp.checkpoint import load_pretrained
from convnp.flops import model_flops
from convnp.models import MODELS, RECIPES, build_model, get_model, is_architecture_file
from convnp.train.config import TrainConfig


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the model zoo: parameters, FLOPs per image, recommended training",
        description="Without NAME, one line per zoo model: parameters, forward and training MFLOP per image "
        "(see convnp.flops for the counting rules), number of layers, recommended epochs and optimizer, and a "
        "description; then the pretrained models bundled with convnp, with their accuracy on the MNIST test set and "
        "the command that trained them. With NAME, that model's layer table, its FLOPs layer by layer and its full "
        "training recipe (for a pretrained model: its manifest entry and layer table).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("name", metavar="NAME|PATH.json", nargs="?", default=None,
                   help=f"a model to describe in detail, one of: {', '.join(MODELS)}; or an architecture file, a "
                   ".json list of layers (see `convnp train --help`); or a pretrained model, one of: "
                   f"{', '.join(pretrained.names())}")
    p.add_argument("--input-shape", type=int, nargs=3, metavar=("H", "W", "C"), default=None,
                   help="the images the networks are built for (default: 28 28 1, MNIST's)")
    p.add_argument("--num-classes", type=int, metavar="K", default=None,
                   help="the number of classes the zoo networks are built for (default: 10); an architecture "
                   "file's last layer is checked against it when given")
    p.add_argument("--pretrained", action="store_true",
                   help="list only the pretrained models (with --json: their manifest entries)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=run)


def describe(name: str, model=None) -> dict:
    """Everything the listing shows about zoo model ``name``, JSON-serialisable.

    Keys: ``name``, ``description`` (the first docstring line of the model's module), ``params``, ``layers`` (count),
    ``forward_flops`` and ``train_flops`` (per image), ``recipe`` (the overrides in
    :data:`convnp.models.recipes.RECIPES`) and ``training`` (epochs, batch size, optimizer and learning rate after
    TrainConfig's defaults fill the rest). ``model``: the model already built, to save building it again.
    """
    if model is None:
        model = get_model(name, rng=np.random.default_rng(0))
    flops = model_flops(model)
    recipe = RECIPES.get(name, {})
    config = TrainConfig.resolve(model=name)
    # The module's docstring, not the builder's: each zoo module opens with a one-line summary of its network,
    # while a builder's first line may just say what it does ("Build the notebook's network.").
    doc = inspect.getdoc(inspect.getmodule(MODELS[name])) or inspect.getdoc(MODELS[name]) or ""
    return {
        "name": name,
        "description": doc.splitlines()[0] if doc else "",
        "params": model.n_params,
        "layers": len(model),
        "forward_flops": flops["forward"],
        "train_flops": flops["train"],
        "recipe": dict(recipe),
        "training": {
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "optimizer": config.optimizer,
            "lr": config.base_lr,
            "schedule": config.schedule,
        },
    }


def format_listing(rows: list[dict]) -> str:
    """The one-line-per-model table of :func:`describe` results."""
    table = [("model", "params", "fwd MFLOP", "train MFLOP", "layers", "epochs", "optimizer", "description")]
    for r in rows:
        table.append((
            r["name"],
            f"{r['params']:,}",
            f"{r['forward_flops'] / 1e6:.2f}",
            f"{r['train_flops'] / 1e6:.2f}",
            str(r["layers"]),
            str(r["training"]["epochs"]),
            r["training"]["optimizer"],
            r["description"],
        ))
    widths = [max(len(t[c]) for t in table) for c in range(len(table[0]))]
    numeric = {1, 2, 3, 4, 5}  # right-aligned columns
    lines = []
    for t in table:
        cells = [cell.rjust(w) if c in numeric else cell.ljust(w) for c, (cell, w) in enumerate(zip(t, widths))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("\nMFLOP per image; train = forward + weight and input gradients. `convnp models NAME` for details.")
    return "\n".join(lines)


def format_flops(rows: list[dict]) -> str:
    """The per-layer FLOP table of :func:`convnp.flops.model_flops`."""
    table = [("#", "layer", "forward", "train")]
    table += [(str(r["index"]), r["layer"], f"{r['forward']:,}", f"{r['train']:,}") for r in rows]
    widths = [max(len(t[c]) for t in table) for c in range(4)]
    lines = ["  ".join(cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in enumerate(zip(t, widths)))
             for t in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_pretrained() -> str:
    """The table of the bundled pretrained models: name, network, parameters, test accuracy, training command."""
    table = [("pretrained", "network", "params", "MNIST test", "trained by")]
    for name in pretrained.names():
        entry = pretrained.info(name)
        table.append((name, str(entry["model"]), f"{entry['params']:,}", f"{entry['test_accuracy']:.2%}",
                      entry["command"]))
    widths = [max(len(t[c]) for t in table) for c in range(len(table[0]))]
    lines = ["  ".join(cell.rjust(w) if c in (2, 3) else cell.ljust(w) for c, (cell, w) in enumerate(zip(t, widths)))
             .rstrip() for t in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("\nA name goes wherever a checkpoint does: convnp evaluate mnist-best, convnp predict mnist-best "
                 "digit.png,\nconvnp serve mnist-best, convnp plot mnist-best. `convnp models NAME` for details.")
    return "\n".join(lines)


def run(args) -> int:
    shape = {"input_shape": tuple(args.input_shape or (28, 28, 1)), "num_classes": args.num_classes or 10}
    if args.pretrained and args.name is None:
        entries = {name: pretrained.info(name) for name in pretrained.names()}
        print(json.dumps(entries, indent=2) if args.json else format_pretrained())
        return 0
    if args.name is None:
        rows = [describe(name, get_model(name, rng=np.random.default_rng(0), **shape)) for name in MODELS]
        print(json.dumps(rows, indent=2) if args.json else format_listing(rows) + "\n\n" + format_pretrained())
        return 0
    if args.name in pretrained.names() and not is_architecture_file(args.name):
        return _show_pretrained(args.name, args.json)
    if is_architecture_file(args.name):
        # num_classes=None: a file's network is shown as written unless --num-classes asks for a check.
        model = build_model(args.name, input_shape=shape["input_shape"], num_classes=args.num_classes,
                            rng=np.random.default_rng(0))
        info = describe_file(args.name, model)
    else:
        # An unknown name raises ValueError listing the known ones, which main() prints as one line (exit 1).
        model = get_model(args.name, rng=np.random.default_rng(0), **shape)
        info = describe(args.name, model)
    flops = model_flops(model)
    if args.json:
        print(json.dumps({**info, "flops_by_layer": flops["layers"], "config": model.get_config()}, indent=2))
        return 0
    _print_details(info, model, flops)
    return 0


def _show_pretrained(name: str, as_json: bool) -> int:
    """``convnp models mnist-best``: the manifest entry, then the layer table and FLOPs of the loaded network."""
    entry = pretrained.info(name)
    model = load_pretrained(name).model
    flops = model_flops(model)
    if as_json:
        print(json.dumps({"name": name, **entry, "flops_by_layer": flops["layers"], "config": model.get_config()},
                         indent=2))
        return 0
    print(f"{name}: {entry['description']}")
    print(f"test accuracy: {entry['test_accuracy']:.2%} on the {entry['test_images']:,} MNIST test images")
    print(f"trained by: {entry['command']} ({entry['epochs']} epochs, {entry['training_seconds']:.0f} s, "
          f"{entry['trained']}, on {entry['machine']})")
    print(f"files: {pretrained.folder(name)}")
    print()
    print(model.summary())
    print()
    print("FLOPs per image, by layer:")
    print(format_flops(flops["layers"]))
    return 0


def describe_file(path: str, model) -> dict:
    """What ``convnp models PATH.json`` shows of the network built from an architecture file (no recipe)."""
    flops = model_flops(model)
    return {
        "name": path,
        "description": f"architecture file, built for input {model.input_shape} (H, W, C)",
        "params": model.n_params,
        "layers": len(model),
        "forward_flops": flops["forward"],
        "train_flops": flops["train"],
    }


def _print_details(info: dict, model, flops: dict) -> None:
    """The layer table, FLOPs by layer and, for a zoo model, its recipe."""
    print(f"{info['name']}: {info['description']}")
    print()
    print(model.summary())
    print()
    print("FLOPs per image, by layer:")
    print(format_flops(flops["layers"]))
    print(f"forward: {flops['forward'] / 1e6:.2f} MFLOP per image; training step: {flops['train'] / 1e6:.2f} MFLOP")
    if "recipe" not in info:
        return
    print()
    overrides = ", ".join(f"{k}={v}" for k, v in info["recipe"].items()) or "none (TrainConfig's defaults)"
    print(f"recommended training (convnp.models.recipes): {overrides}")
    print("  which means: " + ", ".join(f"{k}={v}" for k, v in info["training"].items()))
