"""``Sequential``: a stack of layers run in order, forward and backward; the container every zoo model is.

It holds the layers and what concerns them all: running them (forward, backward, predict), their parameters and
state by name (``state_dict``), their architecture as JSON (``get_config``) and a summary. Splitting a batch across
threads or processes, and the replicas that takes, is :mod:`convnp.parallel`'s; :meth:`Sequential.predict` uses it.
"""

from __future__ import annotations

import inspect

import numpy as np

from convnp._checks import FLOAT_DTYPES, check_finite, float_dtype
from convnp.errors import CheckpointError
from convnp.layers.activations import ReLU
from convnp.layers.base import Layer
from convnp.layers.pooling import MaxPool2D
from convnp.parallel.threads import DataParallel, get_num_threads


class Sequential:
    """Layers applied one after the other.

    Parameters
    ----------
    layers : list of Layer
    input_shape : tuple (H, W, C), optional
        The shape of one input sample. When given, the layers are checked to fit together now, and
        :meth:`summary` needs no argument.

    Parameter names follow PyTorch's ``state_dict``: ``"<layer index>.<name>"``, e.g. ``"0.weight"``.

    One reordering happens when running: a ``ReLU`` directly followed by a ``MaxPool2D`` runs after it instead. The
    two commute exactly (``max`` of ``max(x, 0)`` is ``max(0, max x)``, and the gradient reaches the same input: a
    window whose maximum is positive routes it to the same first maximum either way, one whose maximum is not gets
    zero either way), and pooling first leaves ReLU a quarter of the values. Outputs and gradients are the same
    bits; each layer's cache holds what it actually saw. Set ``pool_before_relu = False`` to run in list order.
    """

    #: Run ReLU -> MaxPool2D pairs as MaxPool2D -> ReLU (see above).
    pool_before_relu = True

    def __init__(self, layers, input_shape: tuple | None = None):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layer {i} must be a convnp Layer, got {type(layer).__name__}")
        if not layers:
            raise ValueError("Sequential: expected at least one layer, got none")
        dtypes = {layer.dtype for layer in layers if layer.dtype is not None}
        if len(dtypes) > 1:
            raise ValueError(f"Sequential: all layers must share one dtype, got {sorted(str(d) for d in dtypes)}")
        self.layers = layers
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        if self.input_shape is not None:
            self.shapes()  # fails early if the layers do not fit together

    # ---- running -------------------------------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The parameters' dtype (float32 unless the model was built or cast otherwise)."""
        for layer in self.layers:
            if layer.dtype is not None:
                return layer.dtype
        return np.dtype(np.float32)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Run every layer; ``training=True`` keeps the caches for :meth:`backward`.

        ``x`` of shape ``(N, H, W, C)`` (or whatever the first layer takes; ``(N, *input_shape)`` when the model has
        an ``input_shape``). A float32/float64 array of the other precision is cast to the model's dtype; integer
        images are refused (scale them to floats first).

        Not for several threads at once: the layers keep scratch buffers between calls (Conv2D reuses its im2col
        matrix, inference included), so two threads running one model concurrently overwrite each other's and can
        get wrong outputs, with no error raised. Give each thread its own :func:`convnp.parallel.replicate` of the
        model, made once and reused: it shares the weights and has its own buffers, caches and gradients.
        """
        order = self._order()
        x = self.layers[order[0]].run(self.check_batch(x), training)
        for i in order[1:]:
            # Shapes only: the values were produced by the layer before, so one finite scan at the door suffices.
            layer = self.layers[i]
            x = layer.run(layer.check_input(x, finite=False), training)
        return x

    def check_batch(self, x) -> np.ndarray:
        """``x`` as :meth:`forward` takes it: cast to the model's float precision if it is the other one, checked by
        the first layer (shape, dtype, finite values) and against ``input_shape``; ValueError or TypeError if not."""
        if isinstance(x, np.ndarray) and x.dtype in FLOAT_DTYPES and x.dtype != self.dtype:
            x = x.astype(self.dtype)
        x = self.layers[self._order()[0]].check_input(x)
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            raise ValueError(
                f"Sequential: expected input of shape (N, {', '.join(map(str, self.input_shape))}) (the model's "
                f"input_shape), got {x.shape}"
            )
        return x

    def _order(self) -> list[int]:
        """The layer indices in the order they run: list order, each ReLU -> MaxPool2D pair swapped (see the class)."""
        order = list(range(len(self.layers)))
        if self.pool_before_relu:
            for i in range(len(order) - 1):
                if order[i] == i and type(self.layers[i]) is ReLU and type(self.layers[i + 1]) is MaxPool2D:
                    order[i], order[i + 1] = i + 1, i
        return order

    __call__ = forward

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate ``dL/dout`` through every layer; fills each layer's ``grads``, returns ``dL/dx``.

        ``input_grad=False`` (what training uses) lets the first layer skip ``dL/dx`` and returns None.
        """
        order = self._order()
        for position in range(len(order) - 1, -1, -1):
            dout = self.layers[order[position]].backward(dout, input_grad=input_grad or position > 0)
        return dout

    def predict(self, x: np.ndarray, batch_size: int = 1000, threads: int | None = None) -> np.ndarray:
        """Logits for ``x`` in inference mode, ``batch_size`` samples at a time to bound memory, each batch split
        across ``threads`` threads (default :func:`convnp.parallel.get_num_threads`).

        Those threads each run their own replica, but the first of them is this model itself, so, as with
        :meth:`forward`, one model must not be used from several threads at once: a program calling ``predict``
        from several threads gives each thread its own :func:`convnp.parallel.replicate` of the model.
        """
        parallel = DataParallel(self, threads or get_num_threads())
        try:
            return np.concatenate([parallel.predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        finally:
            parallel.close()

    # ---- parameters and state ------------------------------------------------------------------------------------
    def named_layers(self):
        """``(prefix, layer)`` pairs; the prefix is the layer's index as a string."""
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def parameters(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name (the live arrays, not copies: an optimizer updates them in place)."""
        return {f"{p}.{k}": v for p, layer in self.named_layers() for k, v in layer.params.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradients by the same names as :meth:`parameters`, as left by the last :meth:`backward`."""
        return {f"{p}.{k}": v for p, layer in self.named_layers() for k, v in layer.grads.items()}

    @property
    def n_params(self) -> int:
        """Number of trainable scalars."""
        return sum(layer.n_params for layer in self.layers)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and state array, keyed ``"<index>.<name>"``."""
        out = {}
        for prefix, layer in self.named_layers():
            for store in (layer.params, layer.state):
                out.update({f"{prefix}.{k}": v.copy() for k, v in store.items()})
        return out

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays into the model. Missing or unexpected keys, wrong shapes and non-finite values are refused.

        Nothing is changed unless every array fits.
        """
        targets = {}
        for prefix, layer in self.named_layers():
            for store in (layer.params, layer.state):
                targets.update({f"{prefix}.{k}": (store, k) for k in store})
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing key(s) {missing}")
            if unexpected:
                parts.append(f"unexpected key(s) {unexpected}")
            raise CheckpointError(f"load_state_dict: the state does not fit this model: {'; '.join(parts)}")
        staged = {}
        for key, (store, name) in targets.items():
            value = np.asarray(state[key])
            if value.shape != store[name].shape:
                raise CheckpointError(
                    f"load_state_dict: {key} has shape {value.shape}, but this model's is {store[name].shape}"
                )
            if value.dtype.kind not in "fiu":
                raise CheckpointError(f"load_state_dict: {key} must hold numbers, got dtype {value.dtype}")
            try:
                check_finite(value, key, "load_state_dict")
            except ValueError as err:
                raise CheckpointError(str(err)) from None
            staged[key] = value
        for key, (store, name) in targets.items():
            store[name] = staged[key].astype(store[name].dtype)
        for layer in self.layers:
            layer._cache = None

    def rng_states(self) -> dict[str, dict]:
        """The state of every layer's own Generator (Dropout's), by layer index, JSON-serialisable."""
        return {p: layer.rng.bit_generator.state for p, layer in self.named_layers() if hasattr(layer, "rng")}

    def set_rng_states(self, states: dict[str, dict]) -> None:
        """Restore what :meth:`rng_states` returned, so a resumed run draws the same dropout masks."""
        for prefix, layer in self.named_layers():
            if prefix in states and hasattr(layer, "rng"):
                layer.rng.bit_generator.state = states[prefix]

    @property
    def shardable(self) -> bool:
        """Whether a training batch may be split into shards with results changed by float rounding only: whether
        every layer says so (its ``shardable`` hook, see :mod:`convnp.parallel.shard`).

        True for every built-in layer: BatchNorm adds its sums over the shards and Dropout draws the whole batch's
        mask. A custom layer that looks across samples without reading its ``shard`` attribute should set
        ``shardable = False``; its models then train unsplit.
        """
        return all(layer.shardable for layer in self.layers)

    def astype(self, dtype) -> "Sequential":
        """Cast every layer's parameters and state to float32 or float64, in place; returns the model."""
        dtype = float_dtype(dtype, "Sequential")
        for layer in self.layers:
            layer.astype(dtype)
        return self

    # ---- architecture as JSON -----------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture as JSON-serialisable data: input shape and each layer's class and arguments."""
        return {
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "layers": [{"class": type(layer).__name__, "config": _jsonable(layer.get_config())} for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config: dict, dtype=np.float32) -> "Sequential":
        """Rebuild a model (with fresh zero-seeded weights, to be overwritten) from :meth:`get_config`'s output."""
        from convnp.layers import LAYERS

        try:
            specs = list(config["layers"])
            input_shape = config.get("input_shape")
        except (KeyError, TypeError):
            raise ValueError("Sequential.from_config: expected a dict with a 'layers' list") from None
        layers = []
        for i, spec in enumerate(specs):
            name = spec.get("class") if isinstance(spec, dict) else None
            if name not in LAYERS:
                raise ValueError(f"Sequential.from_config: layer {i} has unknown class {name!r}; known: {sorted(LAYERS)}")
            kwargs = dict(spec.get("config") or {})
            layer_cls = LAYERS[name]
            accepted = inspect.signature(layer_cls.__init__).parameters
            if "rng" in accepted:  # the weights are overwritten by the checkpoint; Dropout's state is restored
                kwargs["rng"] = np.random.default_rng(0)
            if "dtype" in accepted:
                kwargs["dtype"] = dtype
            try:
                layers.append(layer_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}))
            except TypeError as err:
                raise ValueError(f"Sequential.from_config: layer {i} ({name}) has bad arguments: {err}") from None
        return cls(layers, input_shape=None if input_shape is None else tuple(input_shape))

    # ---- description ---------------------------------------------------------------------------------------------
    def shapes(self, input_shape: tuple | None = None) -> list[tuple]:
        """The output shape (batch axis excluded) after each layer, for one sample of ``input_shape``."""
        shape = input_shape or self.input_shape
        if shape is None:
            raise ValueError("Sequential: pass input_shape (H, W, C) here or to the constructor")
        shapes = []
        for i, layer in enumerate(self.layers):
            try:
                shape = tuple(layer.output_shape(tuple(shape)))
            except (ValueError, TypeError) as err:
                raise ValueError(f"Sequential: layer {i} {layer!r} cannot take input of shape {shape}: {err}") from None
            shapes.append(shape)
        return shapes

    def summary(self, input_shape: tuple | None = None) -> str:
        """A table of each layer, its output shape ``(N, ...)`` and parameter count, with the total."""
        shapes = self.shapes(input_shape)
        rows = [("#", "layer", "output shape", "params")]
        for i, (layer, shape) in enumerate(zip(self.layers, shapes)):
            rows.append((str(i), repr(layer), str(("N", *shape)).replace("'", ""), f"{layer.n_params:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        text = [line]
        for j, row in enumerate(rows):
            text.append("  ".join(cell.ljust(w) if c < 3 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))))
            if j == 0:
                text.append(line)
        text += [line, f"total parameters: {self.n_params:,} ({self.dtype})"]
        return "\n".join(text)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


def _jsonable(config: dict) -> dict:
    """Tuples become lists, so a config survives a JSON round trip unchanged."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}

