"""``load``: an ONNX file read as a convnp model, its input preparation and class names (``convnp import``).

The file is read by :func:`convnp.onnx.read.read_model` (bounded, protobuf only, nothing executed), its graph
walked into a chain of layers by :func:`convnp.onnx.walk.walk` with the operator tables of
:mod:`convnp.onnx.import_ops`, and the layers built as a :class:`~convnp.sequential.Sequential` with their
weights in convnp's channels-last layout (``docs/onnx.md``).

The input preparation, a :class:`~convnp.data.transforms.Standardize` from stored pixels to the network's input:

- a file written by ``convnp export`` carries its checkpoint's in its metadata; it is used as it is, after checking
  that the graph's own preparation (its first nodes, unless exported ``--raw``) computes the same;
- otherwise it is ``(x * scale - mean[c]) / std[c]`` from the arguments (default: pixels divided by 255, mean 0,
  std 1), followed by any per-channel arithmetic the graph does before its first layer, folded in.

A convnp file's ``convnp.architecture`` metadata, when it describes the same layers as the graph, gives back what
a graph does not hold: the Dropout layers (gone at inference) and BatchNorm's momentum, for fine-tuning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convnp.checkpoint import save_checkpoint
from convnp.data.transforms import Standardize
from convnp.onnx import metadata
from convnp.onnx.import_ops import LAYER_OPS, fold
from convnp.onnx.layout import OnnxError
from convnp.onnx.read import read_model
from convnp.onnx.walk import Chain, LayerSpec, walk
from convnp.ops.windows import resolve_padding
from convnp.sequential import Sequential

#: Layer classes whose forward passes are the same (the notebook's max pool differs in its backward only).
SAME_FORWARD = ({"MaxPool2D", "NotebookMaxPool2D"},)


@dataclass
class ImportedModel:
    """What :func:`load` returns; unpacks as ``model, standardize, classes = load(path)``.

    Attributes
    ----------
    model : Sequential
        The network, channels-last, ``input_shape`` ``(H, W, C)``; it outputs class scores ``(N, K)`` (a final
        Softmax or LogSoftmax of the graph is dropped: the softmax of these scores is the graph's probabilities).
    standardize : Standardize
        Stored pixels ``(N, H, W, C)`` -> the model's input.
    classes : list of K str, or None
        The class names, from the argument or a convnp file's metadata; None: ``"0" .. "K-1"``.
    source : dict
        What the checkpoint records about the file: its name, producer, opset, what the graph ended with.
    notes : list of str
        What the user should know (metadata that was not used, and why).
    """

    model: Sequential
    standardize: Standardize
    classes: list[str] | None
    source: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter((self.model, self.standardize, self.classes))

    def checkpoint_meta(self) -> dict:
        """The checkpoint's metadata: preparation, classes, model name and the file's description."""
        meta = {"model_name": self.source.get("model_name") or f"onnx:{self.source.get('file', '')}",
                "preprocessing": self.standardize.to_dict(), "onnx": dict(self.source)}
        if self.classes is not None:
            meta["classes"] = list(self.classes)
        return meta

    def save(self, path) -> Path:
        """Write a convnp checkpoint (``.npz``) that ``convnp evaluate``, ``predict`` and ``serve`` read."""
        return save_checkpoint(path, self.model, meta=self.checkpoint_meta())


def load(path, *, scale: float | None = None, mean=None, std=None, classes=None) -> ImportedModel:
    """Read the ONNX file ``path`` as a convnp model.

    Parameters
    ----------
    path : str or Path
    scale, mean, std : optional
        The preparation of stored pixels for the graph's input, ``(x * scale - mean[c]) / std[c]``: ``mean`` and
        ``std`` one number, or one per channel. Default (and for what is not given): ``scale = 1/255``, mean 0,
        std 1; a convnp file's own metadata when none of the three is given.
    classes : sequence of K str, optional
        The class names, in the order of the model's outputs (default: a convnp file's, else none).

    Returns
    -------
    ImportedModel

    Raises
    ------
    OnnxError
        A ``ValueError`` with one line naming the file (and the node) and the reason: not an ONNX file, too large,
        external data, a tensor too large, an unknown opset or domain, an operator or attribute convnp cannot
        express, a graph that is not a chain, metadata that disagrees with the graph.
    """
    path = Path(path)
    proto, opset = read_model(path)
    chain = walk(proto, opset, path, LAYER_OPS, fold)
    props = {entry.key: entry.value for entry in proto.metadata_props}
    specs, notes = _with_architecture(chain, props)
    model = _build(chain, specs)
    n_classes = model.shapes()[-1][0]
    source = {"file": path.name, "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
              "opset": opset, "ends_with": chain.final_op or "scores"}
    if props.get(metadata.MODEL_NAME):
        source["model_name"] = props[metadata.MODEL_NAME][:200]
    try:
        standardize = _preparation(chain, props, scale, mean, std)
        names = _classes(chain, props, classes, n_classes)
    except OnnxError as err:  # the metadata readers' messages name the key, not the file
        raise OnnxError(str(err) if str(err).startswith(str(path)) else f"{path}: {err}") from None
    return ImportedModel(model, standardize, names, source, notes)


def _build(chain: Chain, specs: list[LayerSpec]) -> Sequential:
    """The Sequential of ``specs`` with their arrays, for the graph's input shape and dtype."""
    config = {"input_shape": list(chain.input_shape), "layers": [{"class": s.cls, "config": s.config} for s in specs]}
    try:
        model = Sequential.from_config(config, dtype=chain.dtype)
        model.load_state_dict({f"{i}.{k}": v for i, s in enumerate(specs) for k, v in {**s.params, **s.state}.items()})
    except ValueError as err:
        raise OnnxError(f"{chain.path}: its layers do not make a convnp model: {err}") from None
    return model


def _with_architecture(chain: Chain, props: dict) -> tuple[list[LayerSpec], list[str]]:
    """The layers, as a convnp file's architecture metadata describes them when it agrees with the graph."""
    text = props.get(metadata.ARCHITECTURE)
    if text is None:
        return chain.specs, []
    try:
        arch = json.loads(text) if len(text) <= metadata.MAX_VALUE_CHARS else None
        entries = list(arch["layers"])
        same_input = list(arch.get("input_shape") or []) == list(chain.input_shape)
    except (ValueError, TypeError, KeyError, RecursionError):
        return chain.specs, [f"metadata {metadata.ARCHITECTURE!r} is not readable; the layers come from the graph"]
    core = [e for e in entries if not (isinstance(e, dict) and e.get("class") == "Dropout")]
    specs = [s for s in chain.specs if s.cls != "Dropout"]
    if not same_input or len(core) != len(specs) or not all(map(_same_layer, specs, core)):
        return chain.specs, [f"metadata {metadata.ARCHITECTURE!r} describes other layers than the graph's; the "
                             "layers come from the graph"]
    out, mine = [], iter(specs)
    for entry in entries:
        config = dict(entry.get("config") or {})
        if entry["class"] == "Dropout":
            out.append(LayerSpec("Dropout", {"p": config.get("p")}))
            continue
        spec = next(mine)
        out.append(LayerSpec(entry["class"], config, spec.params, spec.state, spec.node, spec.in_shape))
    return out, []


def _same_layer(spec: LayerSpec, entry) -> bool:
    """Whether an architecture entry ``{"class", "config"}`` is the layer ``spec`` read from the graph: the same
    class (or one of the same forward pass), and the same value for every argument the graph holds."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict):
        return False
    cls, config = entry.get("class"), entry.get("config") or {}
    if cls != spec.cls and not any({cls, spec.cls} <= group for group in SAME_FORWARD):
        return False
    if set(config) - set(spec.config) - {"momentum"}:
        return False
    for key, mine in spec.config.items():
        theirs = config.get(key)
        if key == "momentum":  # a graph holds it in one direction only; the architecture's is the one trained
            continue
        if key == "padding":
            same = _explicit_pads(mine, spec) == _explicit_pads(theirs, spec)
        elif isinstance(mine, float):
            same = isinstance(theirs, (int, float)) and np.float32(theirs) == np.float32(mine)
        else:
            same = theirs == mine
        if not same:
            return False
    return True


def _explicit_pads(padding, spec: LayerSpec):
    """A Conv2D padding argument as ``((top, bottom), (left, right))`` for the layer's input, or None if invalid."""
    try:
        pair = padding if isinstance(padding, str) else tuple(int(p) for p in padding)
        return resolve_padding(pair, tuple(spec.config["kernel_size"]), tuple(spec.config["stride"]),
                               spec.in_shape[:2])
    except (TypeError, ValueError):
        return None


def _preparation(chain: Chain, props: dict, scale, mean, std) -> Standardize:
    """The Standardize from stored pixels to the network's input (see the module docstring)."""
    channels = chain.input_shape[-1]
    a, b = chain.prefix or (np.ones(channels), np.zeros(channels))
    given = scale is not None or mean is not None or std is not None
    saved = metadata.read_standardize(props, channels)
    if saved is not None and not given:
        in_graph = metadata.read_in_graph(props)
        want_a = saved.scale / np.asarray(saved.std) if in_graph else np.ones(channels)
        want_b = -np.asarray(saved.mean) / np.asarray(saved.std) if in_graph else np.zeros(channels)
        if not (np.allclose(a, want_a, rtol=1e-5) and np.allclose(b, want_b, rtol=1e-5, atol=1e-6)):
            raise OnnxError(f"{chain.path}: the graph's own input preparation (x * {a.tolist()} + {b.tolist()}) "
                            f"disagrees with its metadata {metadata.PREPROCESSING!r}")
        return saved
    options = _options(chain, scale, mean, std, channels)
    if chain.prefix is None:
        return options
    if np.any(a <= 0):
        raise OnnxError(f"{chain.path}: the graph's input preparation multiplies a channel by {a.min():g}; convnp's "
                        "preparation divides each channel by a positive std")
    sigma, mu = np.asarray(options.std), np.asarray(options.mean)
    # prefix(options(x)) = (x * scale - mu) / sigma * a + b = (x * scale - mu') / sigma'
    return Standardize(options.scale, (mu - b * sigma / a).tolist(), (sigma / a).tolist(), pixels=True)


def _options(chain: Chain, scale, mean, std, channels: int) -> Standardize:
    """``Standardize(scale, mean, std)`` from the arguments, each checked (``mean``/``std``: 1 or C numbers)."""
    scale = 1 / 255 if scale is None else float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise OnnxError(f"scale must be a finite number > 0, got {scale}")
    values = {}
    for name, given, default in (("mean", mean, 0.0), ("std", std, 1.0)):
        given = [default] if given is None else [float(v) for v in np.atleast_1d(given)]
        if len(given) not in (1, channels) or not all(np.isfinite(given)):
            raise OnnxError(f"{name} must be 1 or {channels} finite numbers (the model takes {channels} channel(s)), "
                            f"got {given}")
        values[name] = given * channels if len(given) == 1 else given
    if min(values["std"]) <= 0:
        raise OnnxError(f"std must be > 0, got {values['std']}")
    return Standardize(scale, values["mean"], values["std"], pixels=True)  # the options' scale takes pixels


def _classes(chain: Chain, props: dict, classes, n_classes: int) -> list[str] | None:
    """The class names: the argument's, else a convnp file's metadata, else None."""
    if classes is not None:
        classes = [str(c) for c in classes]
        if len(classes) != n_classes:
            raise OnnxError(f"classes: {len(classes)} names given, but {chain.path.name} has {n_classes} outputs")
        return classes
    return metadata.read_classes(props, n_classes)
