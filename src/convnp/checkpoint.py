"""Checkpoints: one ``.npz`` file holding every array plus one JSON entry that describes them. No pickle.

Layout of the archive:

- ``model/<layer>.<name>``: weights and state, as :meth:`Sequential.state_dict` names them;
- ``optimizer/<layer>.<name>/<buffer>``: optimizer buffers (momentum, Adam moments);
- ``__meta__``: a uint8 array holding UTF-8 JSON: format and version, the architecture (``model``), the dtype, the
  optimizer's class, settings and step count, and whatever the caller adds (epoch, step, RNG states, metrics,
  preprocessing, library versions).

Reading uses ``np.load(..., allow_pickle=False)``, so an archive smuggling a pickled object array is refused rather
than executed. Writing is atomic: a temporary file in the same folder is written, flushed, fsynced and renamed over
the target, so a crash at any moment leaves either the old checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convnp import fault_points, pretrained
from convnp.version import __version__
from convnp.data.transforms import MNIST_MEAN, MNIST_STD, Standardize
from convnp.errors import CheckpointError
from convnp.sequential import Sequential

FORMAT = "convnp-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__meta__"


def library_versions() -> dict[str, str]:
    """The versions that produced a file, recorded for whoever reads it later."""

    return {"convnp": __version__, "numpy": np.__version__, "python": platform.python_version()}


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        fault_points.reached_write(path.name)
        os.replace(tmp, path)
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise
    # The rename itself is durable only once the folder's entry is on disk.
    with _suppress_oserror():
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _suppress_oserror:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, OSError)


def save_checkpoint(path, model: Sequential, *, optimizer=None, meta: dict | None = None) -> Path:
    """Write ``model`` (and optionally ``optimizer``) with ``meta`` to ``path`` atomically; returns the path."""
    path = Path(path)
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.get_config(),
        "dtype": str(model.dtype),
        "optimizer": None,
        "versions": library_versions(),
    }
    if optimizer is not None:
        arrays.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
        description["optimizer"] = {
            "class": type(optimizer).__name__,
            "config": optimizer.get_config(),
            "step_count": optimizer.step_count,
        }
    description.update(meta or {})
    arrays[META_KEY] = np.frombuffer(json.dumps(description).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model with its weights, the JSON description, and the optimizer buffers."""

    path: Path
    model: Sequential
    meta: dict
    optimizer_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def optimizer(self):
        """Rebuild the optimizer with its saved settings, buffers and step count (None if none was saved)."""
        from convnp.optim import OPTIMIZERS

        spec = self.meta.get("optimizer")
        if not spec:
            return None
        classes = {cls.__name__: cls for cls in OPTIMIZERS.values()}
        if spec.get("class") not in classes:
            raise CheckpointError(f"{self.path}: unknown optimizer class {spec.get('class')!r}")
        config = dict(spec.get("config") or {})
        if "betas" in config:
            config["betas"] = tuple(config["betas"])
        try:
            optimizer = classes[spec["class"]](**config)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{self.path}: bad optimizer settings: {err}") from None
        optimizer.load_state_dict(self.optimizer_arrays, spec.get("step_count", 0))
        return optimizer

    @property
    def standardize(self) -> Standardize:
        """The input preparation the model was trained with (MNIST's statistics if the checkpoint names none)."""
        spec = self.meta.get("preprocessing")
        if spec is None:
            return Standardize(1 / 255, [MNIST_MEAN], [MNIST_STD])
        try:
            return Standardize.from_dict(spec)
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{self.path}: bad preprocessing entry: {err}") from None

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Stored images ``(N, H, W, C)`` (uint8 pixels, or floats as trained) -> the model's standardised input."""
        expected = tuple(self.model.input_shape or x.shape[1:])
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"{self.path}: the model takes images of shape {expected} (H, W, C), got {tuple(x.shape[1:])}")
        return self.standardize(x, self.model.dtype)


def resolve_checkpoint(path) -> Path:
    """A checkpoint file, or a run folder (its ``best.npz``, else its ``last.npz``), or a pretrained model's name
    (``mnist-best``: :func:`convnp.pretrained.resolve`; a real path of that name wins)."""
    path = pretrained.resolve(path)
    if path.is_dir():
        for name in ("best.npz", "last.npz"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run folder holds no checkpoint (best.npz or last.npz)")
    return path


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`, rebuild its model and load the weights.

    Raises :class:`~convnp.errors.CheckpointError` (a ``ValueError``) with one line saying what is wrong: not a
    file, not an ``.npz`` archive, truncated, a pickled object array, no description, a newer format, an
    architecture that the arrays do not fit, missing or unexpected keys, non-finite weights.
    """
    path = resolve_checkpoint(path)
    if not path.exists():
        # A bare word (no folder, no suffix) may be a mistyped pretrained model's name: name the known ones.
        bare, known = path.name == str(path) and not path.suffix, pretrained.names()
        hint = f" (nor a pretrained model: {', '.join(known)})" if bare and known else ""
        raise CheckpointError(f"{path}: no such checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file (for a run folder, pass RUN_DIR/last.npz or RUN_DIR/best.npz)")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: is not a convnp checkpoint (not an .npz archive; empty or damaged?)")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                arrays[key] = archive[key]
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise CheckpointError(
                f"{path}: holds a pickled Python object array; convnp never unpickles files, refusing to load it"
            ) from None
        raise CheckpointError(f"{path}: could not be read ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path}: is damaged or truncated ({type(err).__name__}: {err})") from None

    meta = _read_meta(arrays.pop(META_KEY, None), path)
    try:
        dtype = np.dtype(meta.get("dtype", "float32"))
        model = Sequential.from_config(meta["model"], dtype=dtype)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its architecture description cannot be built: {err}") from None
    model_arrays = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    optimizer_arrays = {k[len("optimizer/") :]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    stray = sorted(k for k in arrays if not k.startswith(("model/", "optimizer/")))
    if stray:
        raise CheckpointError(f"{path}: unexpected entries {stray}")
    try:
        model.load_state_dict(model_arrays)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    return Checkpoint(path=path, model=model, meta=meta, optimizer_arrays=optimizer_arrays)


def load_pretrained(name: str) -> Checkpoint:
    """A model bundled with convnp, by name (:func:`convnp.pretrained.names`: ``"mnist-best"``, ...), loaded.

    Unlike :func:`load_checkpoint`, only a name is taken, never a path. Its ``model`` is ready for inference or
    fine-tuning (the optimizer's buffers are not shipped: start a new optimizer); ``meta`` holds its training
    history, ``standardize`` its input preparation. Raises :class:`~convnp.errors.CheckpointError` for an unknown
    name, naming the known ones.
    """
    return load_checkpoint(pretrained.folder(name))


def _read_meta(raw, path: Path) -> dict:
    if raw is None:
        raise CheckpointError(f"{path}: is not a convnp checkpoint (no {META_KEY} entry)")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: its {META_KEY} entry is malformed (expected UTF-8 JSON bytes)")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: its {META_KEY} entry is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: is not a convnp checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: was written by a newer convnp (checkpoint format {version}; this convnp reads up to "
            f"{FORMAT_VERSION}); upgrade convnp to load it"
        )
    return meta
