"""What a convnp ONNX file says about itself: the names of its tensors and the keys of its ``metadata_props``.

The exporter writes these and the importer reads them; both use the constants below, so the format is written
down once. Every value is a string (ONNX's ``StringStringEntryProto``); structured values are JSON.

============================== =================================================================================
key                            value
============================== =================================================================================
``convnp.version``             the convnp version that wrote the file (:data:`convnp.version.__version__`)
``convnp.classes``             JSON list of the ``K`` class names, in logit order (``["0", ..., "9"]`` for digits)
``convnp.input``               one sentence for people: what the graph's input is (dtype, range, shape, layout)
``convnp.input_layout``        ``"NHWC"``: the graph's input is channels-last, as convnp's arrays are
``convnp.preprocessing``       JSON ``{"scale": s, "mean": [C floats], "std": [C floats]}``: the checkpoint's
                               :class:`~convnp.data.transforms.Standardize`, ``(x * s - mean[c]) / std[c]``
``convnp.preprocessing_in_graph``  ``"true"``: the graph starts with that preparation (input = stored pixels);
                               ``"false"`` (``convnp export --raw``): the input is already standardised
``convnp.architecture``        JSON of :meth:`convnp.sequential.Sequential.get_config`: informative only (the
                               graph is what runs); it keeps what a graph cannot hold, such as Dropout's ``p`` and
                               BatchNorm's ``momentum``, for fine-tuning an imported model
``convnp.model_name``          the zoo name or architecture the checkpoint was trained as, when it names one
============================== =================================================================================

The readers take the properties as a plain ``dict[str, str]`` and trust nothing in them: each value is bounded in
size, parsed, and checked for the right types and lengths, or refused with :class:`~convnp.onnx.layout.OnnxError`.
"""

from __future__ import annotations

import json
import math

from convnp.data.transforms import Standardize
from convnp.onnx.layout import OnnxError

#: The graph's input when the preparation is inside it: float32 pixels as stored (0..255), ``(N, H, W, C)``.
INPUT_PIXELS = "pixels"
#: The graph's input for ``--raw`` exports: the standardised network input, ``(N, H, W, C)``.
INPUT_STANDARDIZED = "standardized"
#: The outputs, both ``(N, K)`` float32.
OUTPUT_LOGITS = "logits"
OUTPUT_PROBABILITIES = "probabilities"
#: The symbolic batch dimension of the input and outputs.
BATCH_DIM = "N"
#: ``ModelProto.producer_name`` of convnp's files.
PRODUCER = "convnp"

VERSION = "convnp.version"
CLASSES = "convnp.classes"
INPUT = "convnp.input"
INPUT_LAYOUT = "convnp.input_layout"
PREPROCESSING = "convnp.preprocessing"
PREPROCESSING_IN_GRAPH = "convnp.preprocessing_in_graph"
ARCHITECTURE = "convnp.architecture"
MODEL_NAME = "convnp.model_name"

#: The longest value the readers parse (characters); a larger one is refused rather than decoded.
MAX_VALUE_CHARS = 1 << 20


def write_props(*, classes, standardize: Standardize | None, in_graph: bool, description: str, architecture: dict,
                version: str, model_name: str | None = None) -> dict[str, str]:
    """The ``metadata_props`` of an export, as ``{key: string}``.

    Parameters
    ----------
    classes : sequence of K labels
        Written as their ``str``.
    standardize : Standardize or None
        The input preparation, ``C`` channels; None (a bare network exported raw) leaves ``convnp.preprocessing``
        out.
    in_graph : bool
        Whether the graph applies it (``False`` for ``--raw``).
    description : str
        The input's description for people.
    architecture : dict
        ``Sequential.get_config()``.
    version : str
    model_name : str, optional
    """
    props = {
        VERSION: version,
        CLASSES: json.dumps([str(c) for c in classes]),
        INPUT: description,
        INPUT_LAYOUT: "NHWC",
        PREPROCESSING_IN_GRAPH: "true" if in_graph else "false",
        ARCHITECTURE: json.dumps(architecture),
    }
    if standardize is not None:
        props[PREPROCESSING] = json.dumps(standardize.to_dict())
    if model_name:
        props[MODEL_NAME] = str(model_name)
    return props


def _json(props: dict, key: str):
    """The JSON value of ``props[key]`` (None when absent), or an OnnxError naming the key."""
    text = props.get(key)
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > MAX_VALUE_CHARS:
        raise OnnxError(f"metadata {key!r}: expected a JSON string of at most {MAX_VALUE_CHARS:,} characters")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise OnnxError(f"metadata {key!r} is not valid JSON ({type(err).__name__})") from None


def read_classes(props: dict, n_classes: int) -> list[str] | None:
    """The class names of ``convnp.classes`` (None when absent): a JSON list of ``n_classes`` strings, else
    OnnxError."""
    names = _json(props, CLASSES)
    if names is None:
        return None
    if not isinstance(names, list) or len(names) != n_classes or not all(isinstance(n, str) for n in names):
        raise OnnxError(f"metadata {CLASSES!r}: expected a JSON list of {n_classes} class names (the model's logits)")
    return names


def read_standardize(props: dict, channels: int) -> Standardize | None:
    """The :class:`Standardize` of ``convnp.preprocessing`` (None when absent), for ``channels`` input channels.

    Refused with OnnxError unless ``scale`` is a finite number > 0 and ``mean``/``std`` are lists of ``channels``
    finite numbers, every ``std`` > 0.
    """
    spec = _json(props, PREPROCESSING)
    if spec is None:
        return None
    wanted = f"metadata {PREPROCESSING!r}: expected {{\"scale\": s > 0, \"mean\": [{channels} numbers], " \
             f"\"std\": [{channels} numbers > 0]}}"
    if not isinstance(spec, dict) or not {"scale", "mean", "std"} <= spec.keys():
        raise OnnxError(wanted)
    scale, mean, std = spec["scale"], spec["mean"], spec["std"]
    if not (_finite(scale) and scale > 0 and isinstance(mean, list) and isinstance(std, list)
            and len(mean) == len(std) == channels and all(map(_finite, mean))
            and all(_finite(s) and s > 0 for s in std)):
        raise OnnxError(wanted)
    return Standardize(scale, mean, std, pixels=spec.get("pixels") is True)


def read_in_graph(props: dict) -> bool | None:
    """``convnp.preprocessing_in_graph`` as a bool (None when absent); any value but "true"/"false" is refused."""
    value = props.get(PREPROCESSING_IN_GRAPH)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise OnnxError(f"metadata {PREPROCESSING_IN_GRAPH!r}: expected 'true' or 'false', got {str(value)[:40]!r}")
    return value == "true"


def _finite(value) -> bool:
    """Whether ``value`` is a JSON number (not a bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
