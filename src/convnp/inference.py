"""Prediction with a trained model: pixels in, class probabilities out, prepared exactly as the model was trained.

:class:`Classifier` holds a model with its input preparation (the checkpoint's
:class:`~convnp.data.transforms.Standardize`) and answers everything a user of a trained model asks: probabilities,
labels, the top k, every layer's output, and the answer for each of a list of image files. ``convnp predict``,
``convnp evaluate``, the web app and the HTML report all predict through it, so they prepare images the same way.
:func:`layer_outputs` runs a model layer by layer and keeps what each layer gives (feature maps).

A model must not run in several threads at once: its layers reuse scratch buffers from call to call (Conv2D's
``workspace``), inference included, so two concurrent forwards through one layer overwrite each other's work and
both get wrong answers. A Classifier therefore runs, in each thread, that thread's own
replica of the model (:func:`convnp.parallel.replicate`: parameters and running statistics shared and only
read, buffers its own), made on the thread's first call; one Classifier can serve many threads.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from convnp._checks import FLOAT_DTYPES
from convnp.checkpoint import Checkpoint, load_checkpoint
from convnp.data.images import load_digits, load_images
from convnp.data.transforms import MNIST_MEAN, MNIST_STD, Standardize
from convnp.errors import DataError
from convnp.sequential import Sequential
from convnp.ops.activations import softmax
from convnp.parallel.replicate import replicate

__all__ = ["MNIST_SHAPE", "Classifier", "FilePrediction", "layer_outputs"]

#: Models taking this input ``(H, W, C)`` are MNIST digit classifiers: image files are prepared as MNIST's digits
#: were (:func:`~convnp.data.images.preprocess_digit`), and a model built without an input shape is taken to be one.
MNIST_SHAPE = (28, 28, 1)

#: What :meth:`Classifier.classify_files` may do with a file it cannot read.
FILE_ERRORS = ("raise", "report")


def layer_outputs(model: Sequential, x: np.ndarray, *, upto: int | None = None) -> list[np.ndarray]:
    """Run ``model`` layer by layer in inference mode and keep every layer's output, up to layer ``upto``.

    Parameters
    ----------
    model : Sequential
    x : ndarray of shape `(N, H, W, C)`, float
        Prepared input, as the model's first layer takes it (:meth:`Classifier.prepare`). float32 and float64 are
        cast to the model's dtype, as :meth:`~convnp.sequential.Sequential.forward` casts them.
    upto : int, optional
        Index of the last layer to run (negative counts from the end); default: every layer.

    Returns
    -------
    list of ndarray
        ``outputs[i]`` is layer ``i``'s output, of shape `(N, ...)` (``model.shapes()[i]`` after the batch axis),
        for ``i`` from 0 to ``upto``. The layers run in list order, so each output is that layer's own; the last
        layer's is the same bits as ``model.forward(x)`` (whose ReLU -> MaxPool2D swap changes no value).

    Raises
    ------
    ValueError
        ``upto`` out of range, or an input the first layer (or the model's ``input_shape``) refuses.
    """
    layers = model.layers
    n = len(layers)
    if upto is None:
        upto = n - 1
    if not isinstance(upto, (int, np.integer)) or isinstance(upto, bool) or not -n <= upto < n:
        raise ValueError(f"layer_outputs: upto must be a layer index from {-n} to {n - 1} (or None for every "
                         f"layer), got {upto!r}")
    if isinstance(x, np.ndarray) and x.dtype in FLOAT_DTYPES and x.dtype != model.dtype:
        x = x.astype(model.dtype)
    x = layers[0].check_input(x)
    if model.input_shape is not None and x.shape[1:] != model.input_shape:
        raise ValueError(f"layer_outputs: expected input of shape (N, {', '.join(map(str, model.input_shape))}) "
                         f"(the model's input_shape), got {x.shape}")
    outputs = []
    for layer in layers[: upto % n + 1]:
        # Shapes only after the first layer: its output values were checked finite at the door.
        x = layer.run(x if not outputs else layer.check_input(x, finite=False), False)
        outputs.append(x)
    return outputs


@dataclass(frozen=True)
class FilePrediction:
    """One file's answer from :meth:`Classifier.classify_files`: the prediction, or why there is none.

    Attributes
    ----------
    file : str or PathLike
        The path as it was given.
    label : int or None
        The most probable class (an index into ``Classifier.classes``); None if the file failed.
    probabilities : ndarray of shape `(K,)`, float64, or None
        One per class, summing to 1.
    top : tuple of ``(class, probability)`` pairs
        The ``k`` most probable classes, most probable first (ties: lower class first).
    error : str or None
        Why the file could not be classified (with ``errors="report"``); None when it was.
    """

    file: str | os.PathLike
    label: int | None = None
    probabilities: np.ndarray | None = None
    top: tuple[tuple[int, float], ...] = ()
    error: str | None = None


class Classifier:
    """A trained model and its input preparation: pixels in, class probabilities out; safe to share by threads.

    Parameters
    ----------
    model : Sequential
        Outputs one score per class, shape `(N, K)`.
    standardize : Standardize, optional
        How the training images were prepared (a checkpoint's ``standardize``). Default: MNIST's statistics for
        uint8 pixels, what a checkpoint without a preprocessing entry means and what
        :func:`~convnp.data.transforms.to_float_images` does.
    input_shape : tuple (H, W, C), optional
        One image's shape, for a model built without one. Default: the model's, else :data:`MNIST_SHAPE`.
    classes : sequence of K labels, optional
        What each class index stands for (default ``0 .. K-1``); kept as given in ``classes``, and as str in
        ``class_names`` (``"0" .. "K-1"`` by default), the names every output shows.
    name : str, optional
        Names the model in messages (default: the checkpoint's path, else ``"Classifier"``).
    threads : int, optional
        Threads each batch is split across (default :func:`convnp.parallel.get_num_threads`, read at each call).

    Notes
    -----
    Every method taking ``images`` takes pixels: uint8, or floats in 0..255, of shape `(N, H, W, C)` or
    `(N, H, W)` (grey). With ``stored=True`` they take images as the training data set stored them instead (a data
    set's own arrays, e.g. floats in [0, 1]). The model is run by each thread's own replica, sharing the
    parameter arrays: replace them (``load_state_dict``) before the first call, not after.
    """

    def __init__(self, model: Sequential, standardize: Standardize | None = None, *, input_shape=None,
                 classes=None, name: str | None = None, threads: int | None = None):
        if not isinstance(model, Sequential):
            raise TypeError(f"Classifier: model must be a convnp Sequential, got {type(model).__name__}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ValueError(f"Classifier: threads must be a positive integer or None, got {threads!r}")
        self.model = model
        self.standardize = standardize if standardize is not None else Standardize(1 / 255, [MNIST_MEAN], [MNIST_STD])
        self.name = name or "Classifier"
        self.input_shape = _input_shape(model, input_shape, self.name)
        if len(self.standardize.mean) != self.input_shape[2]:
            raise ValueError(f"{self.name}: standardize has {len(self.standardize.mean)} channel(s), but the model "
                             f"takes images of shape {self.input_shape} (H, W, C)")
        self.n_classes = _n_classes(model, self.input_shape, self.name)
        self.classes = _classes(classes, self.n_classes, self.name)
        self.class_names = tuple(str(c) for c in self.classes)
        self.threads = threads
        self.checkpoint: Checkpoint | None = None
        self._local = threading.local()  # .model: this thread's replica

    @classmethod
    def from_checkpoint(cls, checkpoint, *, input_shape=None, threads: int | None = None) -> "Classifier":
        """A Classifier for a checkpoint: a ``.npz`` file, a run folder (its ``best.npz``, else ``last.npz``), or a
        loaded :class:`~convnp.checkpoint.Checkpoint`.

        Its ``standardize`` is the checkpoint's, its ``classes`` the checkpoint's ``"classes"`` entry if it has one
        (``convnp train`` stores the data set's class names there; an older checkpoint without one keeps ``0 ..
        K-1``), its ``name`` the checkpoint's path. Raises :class:`~convnp.errors.CheckpointError` (a ``ValueError``) for a
        checkpoint that cannot be loaded.
        """
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = load_checkpoint(checkpoint)
        classifier = cls(checkpoint.model, checkpoint.standardize, input_shape=input_shape,
                         classes=checkpoint.meta.get("classes"), name=str(checkpoint.path), threads=threads)
        classifier.checkpoint = checkpoint
        return classifier

    def __repr__(self) -> str:
        return f"Classifier({self.name!r}, input_shape={self.input_shape}, n_classes={self.n_classes})"

    # ---- arrays -------------------------------------------------------------------------------------------------
    def prepare(self, images, *, stored: bool = False) -> np.ndarray:
        """Images -> the model's input, standardised exactly as the training images were.

        Parameters
        ----------
        images : array of shape `(N, H, W, C)` or `(N, H, W)`
            Pixels 0..255 (uint8 or float); with ``stored=True``, images on the training data's stored scale.
        stored : bool

        Returns
        -------
        ndarray of shape `(N, H, W, C)`, the model's dtype

        Raises
        ------
        ValueError
            Naming ``images``, what was expected and what came: a wrong rank, size or channel count, values that
            are not numbers, or (pixels) values outside 0..255.
        """
        x = self._checked(images, stored)  # (N, H, W, C)
        standardize = self.standardize
        if not stored and not standardize.pixels and standardize.scale == 1.0 and max(standardize.mean) <= 1.0:
            # Trained on float images in [0, 1] (scale 1, per-channel means at most 1); float images stored as
            # 0..255 have means above 1, uint8 ones a scale of 1/255, and an imported network's preparation says
            # it takes pixels: all of these take pixels as they are.
            x = x / 255.0
        return self.standardize(x, self.model.dtype)

    def forward(self, inputs: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
        """Logits of prepared inputs ``(N, H, W, C)`` (from :meth:`prepare`) -> `(N, K)`, the model's dtype;
        ``batch_size`` images at a time (bounds memory, changes no result)."""
        inputs = np.asarray(inputs)
        if len(inputs) == 0:
            return np.zeros((0, self.n_classes), self.model.dtype)
        return self._thread_model().predict(inputs, batch_size=batch_size, threads=self.threads)

    def predict_proba(self, images, *, stored: bool = False, batch_size: int = 1000) -> np.ndarray:
        """Class probabilities: ``images`` `(N, H, W[, C])` -> ndarray of shape `(N, K)`, float64, rows summing
        to 1 (the softmax of the logits, computed in float64)."""
        logits = self.forward(self.prepare(images, stored=stored), batch_size=batch_size)  # (N, K)
        return softmax(logits.astype(np.float64), axis=1)

    def predict(self, images, *, stored: bool = False, batch_size: int = 1000) -> np.ndarray:
        """The most probable class of each image: ``images`` `(N, H, W[, C])` -> ndarray of shape `(N,)`, int64
        (ties: the lower class)."""
        return self.predict_proba(images, stored=stored, batch_size=batch_size).argmax(axis=1)

    def top_k(self, images, k: int = 3, *, stored: bool = False,
              batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable classes of each image, most probable first (ties: the lower class first).

        Returns
        -------
        classes : ndarray of shape `(N, k)`, int64
        probabilities : ndarray of shape `(N, k)`, float64
        """
        k = self._checked_k(k)
        return _top(self.predict_proba(images, stored=stored, batch_size=batch_size), k)

    def activations(self, images, *, upto: int | None = None, stored: bool = False) -> list[np.ndarray]:
        """Every layer's output for ``images`` `(N, H, W[, C])`, from layer 0 to layer ``upto`` (default: all);
        see :func:`layer_outputs`. The last layer's output, when run, is the logits `(N, K)`."""
        return layer_outputs(self._thread_model(), self.prepare(images, stored=stored), upto=upto)

    # ---- files --------------------------------------------------------------------------------------------------
    def read_images(self, paths) -> np.ndarray:
        """Read image files as this model's pixels: for a model of :data:`MNIST_SHAPE`, each digit prepared as
        MNIST's were (:func:`~convnp.data.images.load_digits`); for others, brought to the model's channels, scaled
        to cover its input keeping the aspect ratio and centre-cropped (:func:`~convnp.data.images.load_images`).

        Parameters
        ----------
        paths : list of str or Path

        Returns
        -------
        ndarray of shape `(N, H, W, C)`, float32 pixels in 0..255, ready for :meth:`predict_proba`

        Raises
        ------
        DataError
            For the first file that cannot be read (or holds no digit); the message starts with its path.
        """
        if self.input_shape == MNIST_SHAPE:
            return load_digits(paths)
        return load_images(paths, input_shape=self.input_shape)

    def classify_files(self, paths, *, k: int = 3, errors: str = "raise") -> list[FilePrediction]:
        """Classify image files (anything Pillow reads, or ``.npy`` arrays), one :class:`FilePrediction` each.

        Parameters
        ----------
        paths : list of str or Path
        k : int
            How many of the most probable classes each result's ``top`` lists (1 to K).
        errors : {"raise", "report"}
            For a file that cannot be read or holds no digit: raise its :class:`~convnp.errors.DataError`, or
            report it in that file's result (``error``) and classify the others.

        Returns
        -------
        list of FilePrediction, in the order of ``paths``
        """
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise TypeError(f"classify_files: expected a list of paths, got a single path {paths!r}; wrap it in a list")
        if errors not in FILE_ERRORS:
            raise ValueError(f"classify_files: errors must be one of {list(FILE_ERRORS)}, got {errors!r}")
        k = self._checked_k(k)
        paths = list(paths)
        # Each file read alone, so that one bad file is reported and the others still get their answer.
        images, failed = {}, {}
        for i, path in enumerate(paths):
            try:
                images[i] = self.read_images([path])[0]  # (H, W, C), 0..255
            except (DataError, OSError) as err:
                if errors == "raise":
                    raise
                failed[i] = str(err)
        answers = {}
        if images:
            probs = self.predict_proba(np.stack(list(images.values())))  # (N, K), one batch
            top_classes, top_probs = _top(probs, k)  # (N, k) each
            for j, i in enumerate(images):
                top = tuple((int(c), float(p)) for c, p in zip(top_classes[j], top_probs[j]))
                answers[i] = FilePrediction(paths[i], top[0][0], probs[j], top)
        return [answers[i] if i in answers else FilePrediction(path, error=failed[i]) for i, path in enumerate(paths)]

    # ---- helpers ------------------------------------------------------------------------------------------------
    def _thread_model(self) -> Sequential:
        """This thread's replica of the model, made on its first call (its buffers fit the batches it runs)."""
        model = getattr(self._local, "model", None)
        if model is None:
            model = replicate(self.model, share_state=True)  # running statistics read, never written, by inference
            self._local.model = model
        return model

    def _checked_k(self, k) -> int:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= self.n_classes:
            raise ValueError(f"{self.name}: k must be between 1 and the model's {self.n_classes} classes, got {k!r}")
        return int(k)

    def _checked(self, images, stored: bool) -> np.ndarray:
        """``images`` as an array of shape `(N, H, W, C)`, or a ValueError naming it, what was expected and got."""
        x = np.asarray(images)
        if x.dtype.kind not in "uif":
            raise ValueError(f"{self.name}: images must hold numbers (uint8 or float pixels), got dtype {x.dtype}")
        one_image = x.shape == self.input_shape  # (H, W, C) would otherwise read as a batch of H grey images
        if x.ndim == 3 and not one_image:
            x = x[..., None]  # (N, H, W) -> (N, H, W, 1)
        if x.ndim != 4:
            raise ValueError(f"{self.name}: images must be a batch of shape (N, H, W, C) or (N, H, W), got shape "
                             f"{np.shape(images)}; for one image, add the batch axis with images[None]")
        got, expected = tuple(x.shape[1:]), self.input_shape
        if got[:2] == expected[:2] and got[2] != expected[2]:
            raise ValueError(f"{self.name}: images have {got[2]} channel(s) but the model takes {expected[2]}: the "
                             f"model takes images of shape {expected} (H, W, C), got {got}")
        if got != expected:
            raise ValueError(f"{self.name}: images have the wrong size: the model takes images of shape {expected} "
                             f"(H, W, C), got {got}")
        if not stored and x.size:
            low, high = float(x.min()), float(x.max())
            if not (0.0 <= low and high <= 255.0):  # NaN fails both
                raise ValueError(f"{self.name}: images must hold pixels in 0..255, got values in [{low:g}, {high:g}]; "
                                 "pass stored=True for images on the scale the training images were stored in")
        return x


def _top(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest of each row of ``probs`` `(N, K)`: classes and probabilities, `(N, k)` each."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # (N, k); stable: ties keep the lower class first
    return order, np.take_along_axis(probs, order, axis=1)


def _input_shape(model: Sequential, input_shape, name: str) -> tuple[int, int, int]:
    if input_shape is None:
        return tuple(model.input_shape) if model.input_shape else MNIST_SHAPE
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3:
        raise ValueError(f"{name}: input_shape must be (H, W, C), got {tuple(input_shape)}")
    if model.input_shape is not None and shape != tuple(model.input_shape):
        raise ValueError(f"{name}: input_shape {shape} differs from the model's own {tuple(model.input_shape)}")
    return shape


def _n_classes(model: Sequential, input_shape: tuple, name: str) -> int:
    """How many classes the model scores, read from its output shape (no forward pass needed)."""
    out = model.shapes(input_shape)[-1]
    if len(out) != 1:
        raise ValueError(f"{name}: the model outputs shape {out} per image, expected (K,) class scores")
    return int(out[0])


def _classes(classes, n_classes: int, name: str) -> tuple:
    if classes is None:
        return tuple(range(n_classes))
    try:
        classes = tuple(classes)
    except TypeError:
        raise ValueError(f"{name}: classes must be a sequence of {n_classes} labels, got {classes!r}") from None
    if len(classes) != n_classes:
        raise ValueError(f"{name}: classes must give one label to each of the model's {n_classes} classes, "
                         f"got {len(classes)}")
    return classes
