"""Networks from a list of layer descriptions, sized for any input: what the zoo and architecture files build with.

A description is a dict ``{"type": <layer class name>, <constructor argument>: <value>, ...}``, for example
``{"type": "Conv2D", "out_channels": 16, "kernel_size": 3, "padding": "same"}``. The counts that follow from the
input (``in_channels`` of Conv2D, ``in_features`` of Dense, ``num_features`` of BatchNorm) are inferred layer by
layer, so one list of descriptions gives a network for ``(28, 28, 1)`` digits or ``(32, 32, 3)`` photos. JSON lists
become tuples (``"kernel_size": [3, 5]``). :func:`read_architecture` reads such a list from a ``.json`` file.

Randomness: every layer that draws weights draws them from the one ``rng``, in list order; each Dropout gets its own
Generator spawned from it (``rng.spawn(1)[0]``), so the same seed gives the same weights and masks.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np

from convnp.init import default_rng
from convnp.layers import LAYERS, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Layer
from convnp.sequential import Sequential

#: The argument each layer class takes from the shape of its input, and the axis of ``(H, W, C)`` or ``(F,)`` it is.
INFERRED = {Conv2D: "in_channels", Dense: "in_features", BatchNorm2D: "num_features", BatchNorm1D: "num_features"}
#: Arguments a description never gives: the builder passes them.
_PASSED = ("self", "rng", "dtype")
#: The largest side tried when looking for the smallest input a network takes.
_LARGEST_SIDE = 1 << 16


class _DoesNotFit(ValueError):
    """Layer ``index`` cannot take an input of ``shape``."""

    def __init__(self, index: int, layer_type: str, shape: tuple, reason: str):
        super().__init__(f"layer {index} ({layer_type}) cannot take input of shape {shape}: {reason}")
        self.index = index


def allowed_arguments(layer_cls) -> list[str]:
    """The arguments a description of ``layer_cls`` may give, in the constructor's order (inferred ones included)."""
    params = inspect.signature(layer_cls.__init__).parameters
    return [name for name in params if name not in _PASSED and params[name].kind is not inspect.Parameter.VAR_KEYWORD]


def build_network(
    layers: list[dict],
    input_shape: tuple,
    rng: np.random.Generator | None = None,
    dtype=np.float32,
    *,
    num_classes: int | None = None,
    name: str = "network",
    types: dict | None = None,
) -> Sequential:
    """A :class:`Sequential` from layer descriptions, its counts inferred from ``input_shape``.

    Parameters
    ----------
    layers : list of dict
        One ``{"type": ..., **arguments}`` per layer (see the module's docstring).
    input_shape : tuple of int
        One sample, ``(H, W, C)`` for images.
    rng : np.random.Generator, optional
        Source of every initial weight and of the Dropouts' Generators; ``None`` draws a fresh unseeded one.
    dtype : float32 (default) or float64
    num_classes : int, optional
        When given, the network must end in ``(N, num_classes)`` logits.
    name : str
        What error messages call the network (a zoo name or a file name).
    types : dict, optional
        The layer classes allowed by name (default: every class of :data:`convnp.layers.LAYERS`).

    Returns
    -------
    Sequential
        Input ``(N, *input_shape)``, its ``input_shape`` set.

    Raises
    ------
    ValueError
        One line naming ``name``: an unknown type or argument (and what is allowed), an argument the layer refuses,
        an input too small for the kernels and pools (with the smallest ``H x W`` it takes), or an output that is not
        ``num_classes`` logits.
    """
    rng = default_rng(rng)
    input_shape = _check_shape(input_shape, name)
    entries = [_entry(i, spec, types or LAYERS, name) for i, spec in enumerate(_as_list(layers, name))]
    try:
        built, shape = _build(entries, input_shape, rng, dtype)
    except _DoesNotFit as err:
        raise ValueError(_not_fitting(entries, input_shape, err, name)) from None
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    _check_output(entries, shape, num_classes, name)
    return Sequential(built, input_shape=input_shape)


def smallest_side(layers: list[dict], channels: int, types: dict | None = None) -> int | None:
    """The smallest ``s`` such that the network takes ``(s, s, channels)`` inputs (None: no size up to 65,536 fits).

    Each layer's output size grows with its input's, so a binary search finds it; layers from the first flat
    ``(F,)`` output on are not built, as a feature count of any size fits them.
    """
    entries = [_entry(i, spec, types or LAYERS, "network") for i, spec in enumerate(layers)]

    def fits(side: int) -> bool:
        try:
            _build(entries, (side, side, channels), np.random.default_rng(0), np.float32, until_flat=True)
        except _DoesNotFit:
            return False
        return True

    if not fits(_LARGEST_SIDE):
        return None
    low, high = 1, _LARGEST_SIDE  # fits(high) holds
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    return low


def read_architecture(path) -> list[dict]:
    """The layer descriptions in the JSON file at ``path``: a list of ``{"type": ..., ...}`` objects.

    Raises ValueError (one line, naming the file) when it is not valid JSON or not such a list; OSError when it
    cannot be read.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"architecture file {path} not found") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path.name}: expected a JSON text file, got bytes that are not UTF-8") from None
    try:
        layers = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path.name}: not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
    return _as_list(layers, path.name)


def _check_shape(input_shape, name: str) -> tuple:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(d < 1 for d in shape) or tuple(input_shape) != shape:
        raise ValueError(f"{name}: input_shape must be a tuple of positive ints such as (H, W, C), got {input_shape!r}")
    return shape


def _as_list(layers, name: str) -> list:
    if not isinstance(layers, list) or not layers or not all(isinstance(spec, dict) for spec in layers):
        if isinstance(layers, list) and layers:
            i, item = next((i, item) for i, item in enumerate(layers) if not isinstance(item, dict))
            got = f"layer {i} as {type(item).__name__} {item!r}"[:120]
        else:
            got = "an empty list" if isinstance(layers, list) else type(layers).__name__
        raise ValueError(f'{name}: expected a non-empty list of layers, each an object {{"type": ..., ...}}, got {got}')
    return layers


def _entry(index: int, spec: dict, types: dict, name: str) -> tuple:
    """``(class, arguments)`` of one description, or a ValueError naming what is unknown and what is allowed."""
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in types:
        raise ValueError(f"{name}: layer {index} has unknown type {kind!r}; allowed: {', '.join(sorted(types))}")
    cls = types[kind]
    allowed = allowed_arguments(cls)
    unknown = sorted(set(spec) - {"type", *allowed})
    if unknown:
        raise ValueError(f"{name}: layer {index} ({kind}) has unknown argument(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(allowed) or 'none'}")
    return cls, {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k != "type"}


def _build(entries: list, shape: tuple, rng, dtype, *, until_flat: bool = False) -> tuple[list, tuple]:
    """The layers, built one after the other from ``shape``, and the output shape; _DoesNotFit where one cannot."""
    layers = []
    for i, (cls, kwargs) in enumerate(entries):
        if until_flat and len(shape) == 1:
            break
        kwargs = dict(kwargs)
        inferred = INFERRED.get(cls)
        if inferred is not None:
            count = _count(cls, shape)
            if count is None:
                raise _DoesNotFit(i, cls.__name__, shape, _wants(cls))
            if kwargs.setdefault(inferred, count) != count:
                raise ValueError(f"layer {i} ({cls.__name__}): {inferred}={kwargs[inferred]!r} was given, but its "
                                 f"input of shape {shape} has {count}; leave it out to have it inferred")
        params = inspect.signature(cls.__init__).parameters
        if "rng" in params:
            kwargs["rng"] = rng.spawn(1)[0] if cls is Dropout else rng
        if "dtype" in params and cls.__init__ is not Layer.__init__:  # layers with parameters; the rest take any
            kwargs["dtype"] = dtype
        try:
            layer = cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"layer {i} ({cls.__name__}): {err}") from None
        except MemoryError as err:  # e.g. a Dense of a huge image's features: NumPy says how much it asked for
            raise ValueError(f"layer {i} ({cls.__name__}) is too large for this machine's memory: {err}") from None
        try:
            shape = tuple(layer.output_shape(shape))
        except (TypeError, ValueError) as err:
            raise _DoesNotFit(i, cls.__name__, shape, str(err)) from None
        layers.append(layer)
    return layers, shape


def _count(cls, shape: tuple) -> int | None:
    """The inferred count of ``cls`` for an input of ``shape``: channels of a map, features of a vector."""
    if cls in (Conv2D, BatchNorm2D):
        return shape[-1] if len(shape) == 3 else None
    return shape[0] if len(shape) == 1 else None


def _wants(cls) -> str:
    if cls in (Conv2D, BatchNorm2D):
        return "it takes (H, W, C) feature maps"
    return "it takes (F,) feature vectors; put a Flatten (or GlobalAvgPool2D) before it"


def _not_fitting(entries: list, input_shape: tuple, err: _DoesNotFit, name: str) -> str:
    """The one-line message for a network that cannot take ``input_shape``: too small, or layers that do not fit."""
    if len(input_shape) == 3:
        side = smallest_side([{"type": c.__name__, **k} for c, k in entries], input_shape[2],
                             types={c.__name__: c for c, _ in entries})
        if side is not None and min(input_shape[:2]) < side:
            return (f"model {name!r} cannot take input of shape {input_shape} (H, W, C): its kernels and pools need "
                    f"images of at least {side}x{side} pixels")
    return f"{name}: {err}"


def _check_output(entries: list, shape: tuple, num_classes: int | None, name: str) -> None:
    if num_classes is None or shape == (num_classes,):
        return
    cls, kwargs = entries[-1]
    if cls is Dense:
        raise ValueError(f"{name}: the last Dense has out_features={kwargs.get('out_features')!r}, but there are "
                         f"{num_classes} classes; set it to {num_classes}")
    raise ValueError(f"{name}: the network ends in outputs of shape (N, {', '.join(map(str, shape))}), but a "
                     f"classifier of {num_classes} classes must end in (N, {num_classes}): end it with a Dense layer")


__all__ = ["INFERRED", "allowed_arguments", "build_network", "read_architecture", "smallest_side"]
