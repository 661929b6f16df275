"""Trained models shipped inside the package, found by name: ``convnp evaluate mnist-best``.

Each model is a small run folder next to this file, ``<name>/``, holding what ``convnp train`` wrote, trimmed to
what a user needs: ``last.npz`` (the weights at the end of training, without the optimizer's buffers),
``config.json`` (the run's settings), ``metrics.csv`` (its epochs) and ``results.json`` (its test metrics). So
every command that takes a checkpoint or a run folder takes a name too: :func:`convnp.checkpoint.resolve_checkpoint`
asks :func:`resolve`.

``manifest.json`` describes them: for each name, every file's sha256, the accuracy on the 10,000 MNIST test images
measured on the bundled file, the exact command that trained it, the machine and the date.
``scripts/make_pretrained.py`` trains and bundles them again. The library gets one with
:func:`convnp.load_pretrained`.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from convnp.errors import CheckpointError

__all__ = ["MANIFEST", "bundled_name", "folder", "info", "manifest", "names", "resolve"]

#: The description of every bundled model (written by scripts/make_pretrained.py).
MANIFEST = Path(__file__).with_name("manifest.json")


@functools.lru_cache(maxsize=1)
def manifest() -> dict:
    """The parsed ``manifest.json``: ``{"format", "format_version", "models": {name: {...}}}``."""
    try:
        data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{MANIFEST}: the pretrained models' manifest cannot be read ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise CheckpointError(f"{MANIFEST}: expected an object with a 'models' object, got {type(data).__name__}")
    return data


def names() -> tuple[str, ...]:
    """The bundled models' names, in the manifest's order (``("mnist-best", "mnist-notebook")``); none where the
    package was installed without its data files (paths then work as ever, names do not)."""
    if not MANIFEST.is_file():
        return ()
    return tuple(manifest()["models"])


def info(name: str) -> dict:
    """The manifest's entry for ``name``: ``files`` (name -> sha256), ``test_accuracy``, ``command``, ``machine``...

    Raises :class:`~convnp.errors.CheckpointError` (a ``ValueError``) naming the known models for any other name.
    """
    models = manifest()["models"]
    if name not in models:
        raise CheckpointError(f"unknown pretrained model {name!r}; expected one of {', '.join(models)}")
    return models[name]


def folder(name: str) -> Path:
    """The bundled run folder of model ``name`` (its ``last.npz``, ``config.json``, ``metrics.csv``...)."""
    info(name)  # an unknown name fails here, naming the known ones
    return MANIFEST.parent / name


def resolve(name_or_path: str | os.PathLike) -> Path:
    """``name_or_path`` as a Path: an existing file or folder as given, else a bundled model's folder by name.

    A real path wins: a folder named ``mnist-best`` in the working directory is read instead of the bundled model.
    Anything else comes back unchanged, for the caller to report as missing.
    """
    path = Path(name_or_path)
    if path.exists() or str(name_or_path) not in names():
        return path
    return folder(str(name_or_path))


def bundled_name(path: str | os.PathLike) -> str | None:
    """The name of the bundled model whose folder (or a file in it) ``path`` is, else None."""
    path = Path(path).resolve()
    for name in names():
        root = (MANIFEST.parent / name).resolve()
        if path == root or root in path.parents:
            return name
    return None
