"""The layer protocol every convnp layer follows.

A layer holds three dicts of arrays:

- ``params``: trainable arrays, updated by an optimizer (``"weight"``, ``"bias"``, ...);
- ``grads``: same keys as ``params``, written by ``backward`` (overwritten, not accumulated);
- ``state``: saved but never trained (BatchNorm's running statistics).

``forward(x, training=False)`` checks the input, then runs the pure kernel from :mod:`convnp.ops`. With
``training=True`` it also keeps the cache that ``backward(dout)`` needs; inference keeps nothing (and leaves the
last training cache in place). ``backward`` returns the gradient with respect to the input.

A layer knows nothing of threads or processes (:mod:`convnp.parallel`), except through one hook, for training on a
shard of a split batch: it reads which rows it holds from its ``shard`` attribute, and its class says whether it
can train on a shard at all (``shardable``) and whether it sums across the shards (``collective``, BatchNorm).
"""

from __future__ import annotations

import numpy as np

from convnp._checks import check_dout, check_input, float_dtype


class Layer:
    """Base class: input checks, the cache, parameter bookkeeping. Subclasses implement ``_forward``/``_backward``."""

    #: Rank of the input, batch axis included.
    input_ndim = 4
    #: The input layout, for error messages.
    input_layout = "(N, H, W, C)"
    #: Whether a training batch can be split into shards without changing results beyond float rounding: False for
    #: a layer that looks across samples without reading ``shard`` (its models then train unsplit).
    shardable = True
    #: Whether a training forward or backward calls its shard's ``allreduce`` (a collective every shard must join).
    collective = False

    def __init__(self, dtype=None):
        # dtype is the parameters' dtype; None for layers without parameters, which accept float32 or float64.
        self.dtype = None if dtype is None else float_dtype(dtype, type(self).__name__)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self._cache = None
        self._out_shape: tuple | None = None
        self._out_dtype: np.dtype | None = None
        self.input_grad = True  # whether the current backward must compute dL/dx
        self.workspace: dict[str, np.ndarray] = {}  # scratch buffers reused between calls (see ops.conv)
        # Which rows of a split training batch this layer sees (a convnp.parallel.shard.Shard, set by the workers);
        # None: the whole batch. Only layers that look across samples (BatchNorm, Dropout's mask) read it.
        self.shard = None

    # ---- what subclasses provide -------------------------------------------------------------------------------
    def _expected_trailing(self) -> tuple | None:
        """Sizes the input must have after the batch axis (``None`` entries are free)."""
        return None

    def _forward(self, x: np.ndarray, training: bool):
        """Return ``(out, cache)``."""
        raise NotImplementedError

    def _backward(self, dout: np.ndarray, cache) -> np.ndarray:
        """Return ``dx`` and write ``self.grads``."""
        raise NotImplementedError

    def output_shape(self, input_shape: tuple) -> tuple:
        """Shape of one output sample for one input sample of ``input_shape`` (batch axis excluded)."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments, JSON-serialisable, from which the layer can be rebuilt."""
        return {}

    # ---- the public protocol -----------------------------------------------------------------------------------
    def check_input(self, x, *, finite: bool = True) -> np.ndarray:
        """Raise ``ValueError``/``TypeError`` naming this layer if ``x`` is not a valid input."""
        x = check_input(
            x,
            self,  # formatted into a message only on error: building the repr on every call cost ~3% of a step
            ndim=self.input_ndim,
            trailing=self._expected_trailing(),
            dtype=self.dtype,
            layout=self.input_layout,
            finite=finite,
        )
        try:
            self.output_shape(x.shape[1:])
        except ValueError as err:
            raise ValueError(f"{self!r}: input of shape {x.shape} is too small: {err}") from None
        return x

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Compute the layer's output; with ``training=True`` also keep what ``backward`` needs."""
        return self.run(self.check_input(x), training)

    def run(self, x: np.ndarray, training: bool) -> np.ndarray:
        """``forward`` without the input checks, for callers (like Sequential) that already made them."""
        out, cache = self._forward(x, training)
        if training:
            # Inference keeps nothing and leaves the last training cache alone, so evaluating between a training
            # forward and its backward is harmless.
            self._cache = cache
            self._out_shape, self._out_dtype = out.shape, out.dtype
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Given ``dL/dout``, fill ``self.grads`` and return ``dL/dx``.

        ``input_grad=False`` tells the layer that nobody needs ``dL/dx`` (it is the first layer); layers for which
        that saves work skip it and return None.
        """
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward needs a preceding forward(x, training=True)")
        dout = check_dout(dout, self._out_shape, self._out_dtype, self)
        self.input_grad = input_grad
        dx = self._backward(dout, self._cache)
        for name, grad in self.grads.items():
            assert grad.shape == self.params[name].shape, f"{self!r}: grad {name} {grad.shape} vs {self.params[name].shape}"
        return dx

    def astype(self, dtype) -> "Layer":
        """Cast parameters and state to ``dtype`` in place (float32 or float64); returns the layer."""
        if self.dtype is None:
            return self
        self.dtype = float_dtype(dtype, repr(self))
        for store in (self.params, self.state):
            for key in store:
                store[key] = store[key].astype(self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None
        return self

    @property
    def n_params(self) -> int:
        """Number of trainable scalars."""
        return int(sum(p.size for p in self.params.values()))

    def __repr__(self) -> str:
        # Square pairs print as one int, as they are usually written: kernel_size=3 rather than (3, 3).
        config = {k: v[0] if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] else v for k, v in self.get_config().items()}
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({args})"

