"""A PyTorch copy of a convnp Sequential: the same layers, the same initial weights, for side-by-side benchmarks.

PyTorch works in (N, C, H, W); convnp in (N, H, W, C). The twin takes convnp's channels-last batches, permutes
them once at the input, and permutes back before ``Flatten`` so that the dense layers see the features in convnp's
order and take convnp's weights unchanged (transposed, as PyTorch stores ``(out, in)``).
"""

from __future__ import annotations

import numpy as np


def torch_twin(model):
    """``torch.nn.Sequential`` computing what ``model`` computes, initialised with its current weights."""
    import torch.nn as nn

    to_nchw, per_layer = torch_layers(model)
    return nn.Sequential(to_nchw, *per_layer)


def torch_layers(model):
    """The twin in pieces: ``(to_nchw, modules)``, ``modules[i]`` doing what ``model.layers[i]`` does.

    ``to_nchw`` permutes convnp's ``(N, H, W, C)`` batch for the first layer. Each piece is one PyTorch module, or a
    ``Sequential`` of two for ``Flatten`` (back to channels-last, then flatten), so that
    ``benchmarks/profile_layers.py --torch`` can time PyTorch layer by layer against convnp.
    """
    import torch
    import torch.nn as nn

    class NHWCtoNCHW(nn.Module):
        def forward(self, x):
            return x.permute(0, 3, 1, 2)

    class NCHWtoNHWC(nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1)

    def tensor(a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    modules = []
    shape = tuple(model.input_shape)  # one sample's shape entering each layer
    for layer in model.layers:
        kind, cfg, p = type(layer).__name__, layer.get_config(), layer.params
        in_shape, shape = shape, layer.output_shape(shape)
        if kind == "Conv2D":
            (top, bottom), (left, right) = layer._pads(*in_shape[:2])
            if top != bottom or left != right:
                raise ValueError(f"torch_twin: asymmetric padding of {layer!r} has no nn.Conv2d equivalent")
            conv = nn.Conv2d(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"], stride=cfg["stride"],
                             padding=(top, left), bias="bias" in p)
            conv.weight.data = tensor(p["weight"].transpose(3, 2, 0, 1))  # (kH, kW, Cin, Cout) -> (Cout, Cin, kH, kW)
            if "bias" in p:
                conv.bias.data = tensor(p["bias"])
            modules.append(conv)
        elif kind == "Dense":
            dense = nn.Linear(cfg["in_features"], cfg["out_features"], bias="bias" in p)
            dense.weight.data = tensor(p["weight"].T)  # (in, out) -> (out, in)
            if "bias" in p:
                dense.bias.data = tensor(p["bias"])
            modules.append(dense)
        elif kind in ("BatchNorm2D", "BatchNorm1D"):
            bn = (nn.BatchNorm2d if kind == "BatchNorm2D" else nn.BatchNorm1d)(
                cfg["num_features"], eps=cfg["eps"], momentum=cfg["momentum"])
            bn.weight.data, bn.bias.data = tensor(p["weight"]), tensor(p["bias"])
            bn.running_mean.data = tensor(layer.state["running_mean"])
            bn.running_var.data = tensor(layer.state["running_var"])
            modules.append(bn)
        elif kind == "Flatten":
            modules.append(nn.Sequential(NCHWtoNHWC(), nn.Flatten()))
        elif kind == "MaxPool2D":
            modules.append(nn.MaxPool2d(cfg["kernel_size"], cfg.get("stride")))
        elif kind == "AvgPool2D":
            modules.append(nn.AvgPool2d(cfg["kernel_size"], cfg.get("stride")))
        elif kind in ("ReLU", "Tanh", "Sigmoid"):
            modules.append(getattr(nn, kind)())
        elif kind == "Dropout":
            modules.append(nn.Dropout(cfg["p"]))
        else:
            raise ValueError(f"torch_twin: no PyTorch equivalent for {layer!r}")
    return NHWCtoNCHW(), modules
