"""Named data sets for the command line: ``mnist``, a path to a user's ``.npz``, or a folder of image files.

Messages name the command line's options (``--mnist-dir``, ``--data``), since that is where the values came from.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convnp.data.folder import held_out, load_image_folder, relative_name
from convnp.data.mnist import load_mnist, mnist_cache_dir, named_mnist_folder, read_mnist_folder
from convnp.data.npz import load_npz
from convnp.data.views import Rows
from convnp.errors import DataError


@dataclass
class Dataset:
    """Training and (optional) test arrays, and the names of the classes.

    Attributes
    ----------
    name : str
    x_train : ndarray of shape `(N, H, W, C)`, in its stored dtype (for a folder, a memory map or
        :class:`~convnp.data.views.Rows`: index it to read images)
    y_train : ndarray of shape `(N,)`, int64
    x_test : ndarray of shape `(M, H, W, C)`, or None
    y_test : ndarray of shape `(M,)`, int64, or None
    classes : list of K str
        ``classes[i]`` names label ``i``. Default (None given): ``"0" .. "K-1"``, K one more than the largest
        label of either split.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    classes: list[str] | None = None

    def __post_init__(self):
        if self.classes is None:
            top = int(self.y_train.max()) if len(self.y_train) else -1
            if self.y_test is not None and len(self.y_test):
                top = max(top, int(self.y_test.max()))
            self.classes = [str(i) for i in range(top + 1)]
        self.classes = [str(c) for c in self.classes]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def class_names(self, n_outputs: int) -> list[str]:
        """The names of a model's ``n_outputs`` classes: :attr:`classes`, then ``"K" .. "n_outputs-1"`` for the
        outputs no label of this data set uses (a 10-output digit model trained on 4 classes)."""
        return self.classes + [str(i) for i in range(self.n_classes, n_outputs)]


def load_dataset(spec: str = "mnist", *, mnist_dir=None, image_size=None, channels=None,
                 test_split: float = 0.0, progress=None) -> Dataset:
    """Load ``"mnist"``, a ``.npz`` file or a folder of images (one sub-folder per class).

    ``"mnist"`` comes from the folder of IDX files named by ``mnist_dir`` (else ``$CONVNP_MNIST_DIR``), which is
    read or refused, never replaced (:func:`~convnp.data.mnist.read_mnist_folder`); with no folder named, from
    :func:`load_mnist`'s cache or downloads. The data set's name says which folder served, e.g.
    ``"mnist from data/mnist"``.

    A ``.npz`` supplies its training set as ``x``/``y`` (or ``x_train``/``y_train``) and, if present, a test set
    as ``x_test``/``y_test``; see :func:`convnp.data.load_npz` for the checks. Its classes are named by its
    ``classes`` array, or by its string labels (sorted by name: label ``i`` is the i-th name), else ``"0" ..
    "K-1"``; the test split is numbered by the training split's names, and a test label not among them is
    refused. MNIST's classes are ``"0" .. "9"``. An ``mnist_dir`` with a ``.npz`` is refused (it would be ignored).

    A folder is read by :func:`load_image_folder`, its sub-folders' names, sorted, the classes, and cached (in
    ``folders/`` of :func:`~convnp.data.mnist_cache_dir`). Its ``train/`` and ``test/``, when both exist, are the
    splits (the test images brought to the training images' size and channels); otherwise ``test_split`` > 0 holds
    out that fraction of its files, chosen by name (:func:`~convnp.data.folder.held_out`), else there is no test
    split. ``image_size`` `(height, width)` and ``channels`` (1 or 3) fix the images' size and channels (default:
    the most common); they are refused with data that is not a folder. A folder is decoded on every core, with a
    progress bar to ``progress`` (a file; None: silent), into a cache its ``x_train`` and ``x_test`` read as
    they are indexed (read-only memory maps, or :class:`~convnp.data.views.Rows` of one).
    """
    _folder_options_need_a_folder(spec, image_size, channels, test_split)
    if spec == "mnist":
        named = named_mnist_folder(mnist_dir, "--mnist-dir")
        if named is None:
            x_train, y_train, x_test, y_test = load_mnist()
            name = "mnist"
        else:
            x_train, y_train, x_test, y_test = read_mnist_folder(named[0], name=named[1])
            name = f"mnist from {named[0]}"
        return Dataset(name, x_train[..., None], y_train.astype(np.int64), x_test[..., None], y_test.astype(np.int64),
                       classes=[str(i) for i in range(10)])
    if mnist_dir is not None:
        raise DataError(
            f"--mnist-dir {mnist_dir}: names a folder of MNIST IDX files, but --data is {spec!r}, which does not "
            "read it; pass --data mnist to use the folder, or leave out --mnist-dir"
        )
    path = Path(spec)
    if path.is_dir():
        return _load_folder(path, image_size, channels, test_split, progress)
    x_train, y_train, classes = load_npz(path, return_classes=True)
    x_test = y_test = None
    with zipfile.ZipFile(path) as archive:  # load_npz has checked that it is one
        members = set(archive.namelist())
    if {"x_test.npy", "y_test.npy"} <= members:
        # The training split's names number the test split too; a test label without one is refused.
        x_test, y_test, test_classes = load_npz(path, keys=("x_test", "y_test"), classes=classes,
                                                return_classes=True)
        if classes is None and test_classes is not None:
            raise DataError(f"{path}: y_test holds class names but y holds unnamed integers; label both splits "
                            "the same way (or name the integers with a 'classes' array)")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise ValueError(
                f"{path}: x_test images have shape {x_test.shape[1:]} but the training images {x_train.shape[1:]}"
            )
    return Dataset(str(path), x_train, y_train, x_test, y_test, classes)


def _folder_options_need_a_folder(spec: str, image_size, channels, test_split) -> None:
    if (image_size is not None or channels is not None or test_split) and not Path(spec).is_dir():
        raise DataError(f"--image-size, --channels and --test-split apply to a folder of images (--data DIR), "
                        f"not to {spec!r}")


def _load_folder(path: Path, image_size, channels, test_split: float, progress) -> Dataset:
    """A folder of class sub-folders, or of ``train/`` and ``test/`` each holding them -> a Dataset.

    The images stay in the folder's memory-mapped cache; a held-out split is a :class:`~convnp.data.views.Rows`
    of it, never a copy.
    """
    train_dir, test_dir = path / "train", path / "test"
    options = {"cache_dir": mnist_cache_dir() / "folders", "progress": progress}
    if train_dir.is_dir() != test_dir.is_dir():
        have, lacks = ("train", "test") if train_dir.is_dir() else ("test", "train")
        raise DataError(f"{path}: has {have}/ but no {lacks}/; give it both (each with one sub-folder per class), "
                        f"or point --data at {path / have} itself")
    if not train_dir.is_dir():
        train = load_image_folder(path, image_size=image_size, channels=channels, **options)
        if not test_split:
            return Dataset(str(path), train.x, train.y, classes=train.classes)
        test = held_out([relative_name(f) for f in train.files], test_split)  # (N,) bool
        return Dataset(str(path), Rows(train.x, np.flatnonzero(~test)), train.y[~test],
                       Rows(train.x, np.flatnonzero(test)), train.y[test], train.classes)
    if test_split:
        raise DataError(f"--test-split {test_split:g}: {path} has its own test/ folder, which is the test split; "
                        "leave out --test-split")
    train = load_image_folder(train_dir, image_size=image_size, channels=channels, **options)
    test = load_image_folder(test_dir, image_size=train.x.shape[1:3], channels=train.x.shape[3],
                             classes=train.classes, **options)
    return Dataset(str(path), train.x, train.y, test.x, test.y, classes=train.classes)
