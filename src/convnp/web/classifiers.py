"""The model behind the page: a checkpoint loaded once, classifying one decoded picture per request.

Two kinds, chosen by the model's input (:func:`load`):

- :class:`DigitClassifier`, for models of :data:`~convnp.inference.MNIST_SHAPE` (28x28x1): each picture is
  prepared as MNIST's digits were (:func:`~convnp.data.images.preprocess_digit`), as ``convnp predict`` prepares
  files for them; the page is the drawing pad. It also reads a number, several digits in a row
  (:meth:`DigitClassifier.read`, through :func:`convnp.reading.read_number` as ``convnp read`` does).
- :class:`ImageClassifier`, for any other model of grey or RGB input: each picture is brought to the model's
  channels, scaled to cover its input keeping the aspect ratio and centre-cropped
  (:func:`~convnp.data.images.preprocess_image`), again as ``convnp predict`` prepares files; the page is the
  upload page.

Both answer with a :class:`~convnp.web.schemas.Prediction` computed by a :class:`~convnp.inference.Classifier`
(the checkpoint's standardisation, one replica of the model per thread), so concurrent requests are safe.
"""

from __future__ import annotations

import base64

import numpy as np

from convnp.checkpoint import load_checkpoint
from convnp.data.images import WORK_SIDE, preprocess_digit, preprocess_image
from convnp.inference import MNIST_SHAPE, Classifier
from convnp.layers import Conv2D, ReLU
from convnp.ops.activations import softmax
from convnp.reading import read_number
from convnp.web.schemas import DigitRead, FeatureMaps, Health, Prediction, PreparedImage, Reading, TopClass

__all__ = ["TOP_K", "DigitClassifier", "ImageClassifier", "ServedModel", "load"]

#: How many of the most probable classes an answer lists (all of them for a model with fewer).
TOP_K = 5


class ServedModel:
    """A checkpoint for the web app; :meth:`prepare` (a subclass's) turns a decoded picture into the model's input.

    Parameters
    ----------
    checkpoint : str, Path or Checkpoint
        A ``.npz`` file, a run folder (its ``best.npz``, else ``last.npz``), or a loaded checkpoint.

    Attributes
    ----------
    kind : {"digits", "images"}
        Which page and which preparation.
    rgb : bool
        Whether pictures are decoded in colour (a 3-channel model) rather than grey.
    max_side : int or None
        Pictures are decoded at most about twice this large (a digit model's, as ``convnp predict`` reads them:
        :data:`~convnp.data.images.WORK_SIDE`), or at full size (None).
    """

    kind = ""
    max_side: int | None = None

    def __init__(self, checkpoint):
        self.classifier = Classifier.from_checkpoint(checkpoint)
        checkpoint = self.classifier.checkpoint
        self._check_input(self.classifier.input_shape, checkpoint.path)
        self.name = str(checkpoint.meta.get("model_name") or checkpoint.path.stem)
        self.n_params = int(self.classifier.model.n_params)
        self.rgb = self.classifier.input_shape[2] == 3
        self.n_top = min(TOP_K, self.classifier.n_classes)
        # Feature maps: the first Conv2D's output, after its ReLU when one follows (so black means "not found here").
        layers = self.classifier.model.layers
        conv = next((i for i, layer in enumerate(layers) if isinstance(layer, Conv2D)), None)
        if conv is not None and conv + 1 < len(layers) and isinstance(layers[conv + 1], ReLU):
            conv += 1
        self.maps_index = conv

    def _check_input(self, input_shape: tuple, path) -> None:
        """Raise ValueError, naming ``path``, for a model this kind cannot serve."""

    def prepare(self, picture: np.ndarray) -> np.ndarray:
        """A decoded picture ``(h, w)`` or ``(h, w, 3)`` in 0..255 -> the model's pixels ``(H, W, C)``."""
        raise NotImplementedError

    def health(self) -> Health:
        return Health(status="ok", model=self.name, parameters=self.n_params, kind=self.kind,
                      input_shape=list(self.classifier.input_shape), classes=list(self.classifier.class_names))

    def classify(self, picture: np.ndarray, feature_maps: bool) -> Prediction:
        """A decoded picture (see :meth:`prepare`) -> the prediction; raises DataError when it cannot be prepared
        (a digit model's picture holding no ink)."""
        pixels = self.prepare(picture)  # (H, W, C), 0..255
        outputs = self.classifier.activations(pixels[None])  # every layer's, for a batch of one
        maps = None
        if feature_maps and self.maps_index is not None:
            layer = self.classifier.model.layers[self.maps_index]
            maps = _encode_maps(outputs[self.maps_index][0], f"{self.maps_index}: {layer!r}")  # (H', W', C')
        probs = softmax(np.asarray(outputs[-1], dtype=np.float64), axis=1)[0]  # (K,)
        names = self.classifier.class_names
        order = np.argsort(-probs, kind="stable")[: self.n_top]  # stable: ties keep the lower label first
        top = [TopClass(label=int(k), class_name=names[k], probability=float(probs[k])) for k in order]
        label = int(order[0])
        return Prediction(label=label, class_name=names[label], probabilities=[float(p) for p in probs], top=top,
                          feature_maps=maps, prepared=_encode_prepared(pixels))


class DigitClassifier(ServedModel):
    """A 28x28x1 digit model: each picture (grey) prepared as MNIST's digits were, as ``convnp predict`` does."""

    kind = "digits"
    max_side = WORK_SIDE  # a phone photo decoded small, as convnp predict reads it

    def _check_input(self, input_shape: tuple, path) -> None:
        if input_shape != MNIST_SHAPE:
            raise ValueError(
                f"{path}: the page draws 28x28 digits, but this model takes images of shape {input_shape} (H, W, C); "
                "serve a model trained on MNIST"
            )

    def prepare(self, picture: np.ndarray) -> np.ndarray:
        return preprocess_digit(picture)[..., None]  # (28, 28) -> (28, 28, 1), float64

    def read(self, picture: np.ndarray, size: tuple[int, int]) -> Reading:
        """A decoded picture of several digits `(h, w)`, decoded from one of ``size`` `(H, W)` -> the number read
        (:func:`convnp.reading.read_number`, as ``convnp read`` reads files), boxes in ``size``'s pixels; raises
        DataError when no digit is found."""
        digits = read_number(self.classifier, picture, size=size)
        names = self.classifier.class_names
        return Reading(
            number="".join(names[d.label] for d in digits),
            digits=[DigitRead(label=d.label, class_name=names[d.label], probability=float(d.probabilities[d.label]),
                              probabilities=[float(p) for p in d.probabilities], box=list(d.box),
                              prepared=_encode_prepared(d.image[..., None]))  # (28, 28, 1)
                    for d in digits],
            size=[int(n) for n in size],
        )


class ImageClassifier(ServedModel):
    """Any model of grey or RGB input: each picture brought to its channels, scaled to cover its input keeping the
    aspect ratio and centre-cropped, as ``convnp predict`` does."""

    kind = "images"

    def _check_input(self, input_shape: tuple, path) -> None:
        if input_shape[2] not in (1, 3):
            raise ValueError(
                f"{path}: the page sends grey or RGB pictures, but this model takes images of shape {input_shape} "
                "(H, W, C) with C neither 1 nor 3"
            )

    def prepare(self, picture: np.ndarray) -> np.ndarray:
        return preprocess_image(picture, self.classifier.input_shape)  # (H, W, C), float32


def load(checkpoint) -> ServedModel:
    """The served model for ``checkpoint`` (a ``.npz`` file or a run folder): a :class:`DigitClassifier` for a
    model of :data:`~convnp.inference.MNIST_SHAPE`, else an :class:`ImageClassifier`.

    Raises :class:`~convnp.errors.CheckpointError` (a ``ValueError``) for a checkpoint that cannot be loaded, and
    ``ValueError`` for a model whose input has neither 1 nor 3 channels.
    """
    loaded = load_checkpoint(checkpoint)
    shape = Classifier.from_checkpoint(loaded).input_shape
    return DigitClassifier(loaded) if shape == MNIST_SHAPE else ImageClassifier(loaded)


def _encode_prepared(pixels: np.ndarray) -> PreparedImage:
    """The model's input ``pixels`` `(H, W, C)`, 0..255, as whole-pixel bytes."""
    data = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)  # (H, W, C)
    return PreparedImage(shape=list(data.shape), data=base64.b64encode(data.tobytes()).decode("ascii"))


def _encode_maps(a: np.ndarray, layer: str) -> FeatureMaps:
    """Each channel of ``a`` `(H, W, C)` min-max scaled to 0..255 on its own (a flat map is all 0)."""
    a = a.astype(np.float64)
    low = a.min(axis=(0, 1), keepdims=True)  # (1, 1, C)
    span = a.max(axis=(0, 1), keepdims=True) - low
    scaled = np.where(span > 0, (a - low) / np.where(span > 0, span, 1.0), 0.0) * 255.0
    data = np.round(scaled).astype(np.uint8)  # (H, W, C)
    return FeatureMaps(layer=layer, shape=list(data.shape), data=base64.b64encode(data.tobytes()).decode("ascii"))
