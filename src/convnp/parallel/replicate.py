"""Replicas: twins of a model for other threads, sharing its weights, each with buffers of its own.

A model must not run in two threads at once: its layers keep scratch buffers between calls (Conv2D reuses its
im2col matrix, inference included), so two threads running one model overwrite each other's and can get wrong
outputs, with no error raised. :func:`replicate` makes the twin a thread runs instead. The model stays what it is;
replication lives here, as in PyTorch (``torch.nn.parallel.replicate``), not on the model.

A replica shares the layers' ``params`` dicts, so weights trained in place or put in with ``load_state_dict``
after it was made are the replica's too (and a replica running while the model trains reads weights mid-update).
It has its own gradients, caches and scratch buffers, its own copy of ``state`` (BatchNorm's running statistics)
unless asked to share the model's, and its own copy of a layer's Generator (the ``rng`` attribute, Dropout's: a
Generator is not thread-safe). No weights are copied: one replica per thread, made once and reused, is the way to
use a model from several threads.
"""

from __future__ import annotations

import copy

import numpy as np


def replicate_layer(layer, share_state: bool = False):
    """A twin of ``layer`` that shares its parameter arrays but has its own gradients, cache and buffers, a copy
    of its Generator (``rng``), and a copy of its ``state`` (``share_state=True``: the layer's own dict)."""
    twin = copy.copy(layer)
    twin.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
    twin.state = layer.state if share_state else {k: v.copy() for k, v in layer.state.items()}
    twin.workspace = {}
    twin._cache = None
    twin.shard = None
    if hasattr(layer, "rng"):
        twin.rng = copy.deepcopy(layer.rng)
    return twin


def replicate(model, share_state: bool = False):
    """A twin of the Sequential ``model`` for running in another thread (see the module).

    ``share_state=True`` points the replica's running statistics at the model's own, for inference, which only
    reads them: statistics trained or loaded into the model later are then the replica's too.
    """
    twin = copy.copy(model)  # the same input_shape and settings (pool_before_relu)
    twin.layers = [replicate_layer(layer, share_state) for layer in model.layers]
    return twin


def sync_state(replica, model) -> None:
    """Give ``replica`` copies of ``model``'s state (running statistics) and Generator states.

    Before a split training step, so that every replica updates the same running statistics and draws the same
    dropout masks as ``model``.
    """
    for mine, theirs in zip(replica.layers, model.layers):
        mine.state = {k: v.copy() for k, v in theirs.state.items()}
        if hasattr(theirs, "rng"):
            mine.rng.bit_generator.state = theirs.rng.bit_generator.state


def share_state(replica, model) -> None:
    """Point each of ``replica``'s layers' ``state`` at ``model``'s (read-only use, for parallel inference)."""
    for mine, theirs in zip(replica.layers, model.layers):
        mine.state = theirs.state
