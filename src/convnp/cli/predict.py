"""``convnp predict``: classify image files with a saved model, one line (or one JSON entry) per file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from convnp.cli._args import add_threads, positive_int
from convnp.data.image_files import read_image, save_side_by_side
from convnp.inference import Classifier

# The input shown beside the prepared image is read at most this large (longest side): enough for a 224-pixel-high
# picture, and a 12-megapixel photo costs no more than a small one.
_SHOW_SIDE = 1024


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify image files (PNG, JPEG, .npy, ...) with a saved model",
        description="Load a checkpoint (a .npz file, or a run folder: its best.npz, else last.npz) and print, for "
        "each FILE, the predicted class (by the name the checkpoint gives it), its probability and the top-K classes. "
        "For a model taking 28x28x1 inputs, each file is prepared as MNIST's digits were, photos included: the "
        "paper's uneven light and shadows are divided out, the digit's ink is found (specks, page edges and a "
        "shadow's rim left out), cropped, scaled into a 20x20 box and centred by its centre of mass; --show-prep "
        "shows the result. For other models, "
        "each image takes the model's channels (colour to grey, grey to RGB) and is scaled, keeping its aspect ratio, "
        "to cover the model's input, whose size is then cut from its centre (nothing is squashed). A file that cannot "
        "be read (or holds no digit) is reported on stderr and skipped; the others are still classified, and the exit "
        "code is 1 if any file failed. Needs Pillow (pip install 'convnp[image]').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=parents,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="checkpoint file (.npz), run folder, or a pretrained model's name (mnist-best: convnp models)")
    p.add_argument("files", metavar="FILE", nargs="+",
                   help="image files (anything Pillow reads) or .npy arrays (H, W[, C]) of pixels 0..255 or 0..1")
    p.add_argument("--top", metavar="K", type=positive_int, default=3,
                   help="how many of the most probable classes to list per file (1 to the number of classes)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON list: per file its label and class name, all class probabilities and the top "
                   "K with their names (files that failed carry an 'error' instead)")
    p.add_argument("--show-prep", metavar="DIR", type=Path,
                   help="write, for each file classified, DIR/NAME.prep.png: the file beside the image the network "
                   "saw (for a digit model, the 28x28 digit as prepared), with the answer under them, to see why an "
                   "answer was wrong; with --json each entry names its picture as 'prep'")
    add_threads(p)
    p.set_defaults(run=run)


def run(args) -> int:
    classifier = Classifier.from_checkpoint(args.checkpoint, threads=args.threads)
    if args.top > classifier.n_classes:
        raise ValueError(
            f"--top must be between 1 and the model's {classifier.n_classes} classes, got --top {args.top}"
        )
    results = classifier.classify_files(args.files, k=args.top, errors="report")
    for r in results:
        if r.error is not None:
            print(f"convnp: error: {r.error}", file=sys.stderr)
    names = classifier.class_names  # the checkpoint's class names; "0" .. "K-1" without them
    preps = write_preps(classifier, results, args.show_prep) if args.show_prep is not None else {}
    if args.json:
        entries = [_as_json(r, names) for r in results]
        for i, prep in preps.items():
            entries[i]["prep"] = str(prep)
        print(json.dumps(entries, allow_nan=False))
    else:
        for r in results:
            if r.error is None:
                top = "  ".join(f"{names[k]}: {p:.3f}" for k, p in r.top)
                print(f"{r.file}: {names[r.label]}  (p={r.top[0][1]:.3f})  {top}")
    n_failed = sum(r.error is not None for r in results)
    if n_failed:
        if len(results) > 1:  # with one file, its own error line already says it all
            print(f"convnp: {n_failed} of {len(results)} files could not be classified", file=sys.stderr)
        return 1
    return 0


def write_preps(classifier: Classifier, results, folder: Path) -> dict[int, Path]:
    """For each classified file, ``folder/NAME.prep.png``: the file beside the image the network saw, the answer
    under them; a name met twice gets ``-2``, ``-3``, ... before ``.prep.png``. Returns ``{result index: path}``."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--show-prep must be a folder, got {folder}, which is a file")
    folder.mkdir(parents=True, exist_ok=True)
    written, taken = {}, set()
    for i, r in enumerate(results):
        if r.error is not None:
            continue
        prepared = classifier.read_images([r.file])[0]  # (H, W, C): what classify_files gave the network
        name, n = Path(r.file).name, 1
        while (name if n == 1 else f"{name}-{n}") in taken:
            n += 1
        stem = name if n == 1 else f"{name}-{n}"
        taken.add(stem)
        picture = read_image(r.file, rgb=True, max_side=_SHOW_SIDE)
        caption = f"{classifier.class_names[r.label]}  p={r.top[0][1]:.3f}"
        written[i] = save_side_by_side(folder / f"{stem}.prep.png", picture, prepared, caption=caption)
    return written


def _as_json(r, names) -> dict:
    """One file's entry of the --json list: its label and class name, every probability and the top K (with
    their names in ``top_classes``), or its error."""
    if r.error is not None:
        return {"file": str(r.file), "error": r.error}
    return {
        "file": str(r.file),
        "label": r.label,
        "class": names[r.label],
        "probabilities": [float(v) for v in r.probabilities],
        "top": [[k, p] for k, p in r.top],
        "top_classes": [names[k] for k, _ in r.top],
    }
