"""Pure NumPy kernels with no state.

Each ``*_forward(...)`` returns ``(out, cache)`` and each ``*_backward(dout, cache)`` returns the gradients, in the
style of the CS231n layer functions, so every kernel can be gradient-checked on its own. Activations are
channels-last ``(N, H, W, C)``; convolution weights are ``(kH, kW, C_in, C_out)``.
"""

from convnp.ops.activations import log_softmax, relu_backward, relu_forward, softmax
from convnp.ops.conv import conv2d_backward, conv2d_forward
from convnp.ops.linear import linear_backward, linear_forward
from convnp.ops.pool import maxpool2d_backward, maxpool2d_forward
from convnp.ops.windows import conv_output_size, resolve_padding, sliding_windows

__all__ = [
    "conv2d_backward",
    "conv2d_forward",
    "conv_output_size",
    "linear_backward",
    "linear_forward",
    "log_softmax",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "relu_backward",
    "relu_forward",
    "resolve_padding",
    "sliding_windows",
    "softmax",
]

# ---- batch norm, dropout, average pooling and more activations ------------------------------------------------------
from convnp.ops.activations_extra import (  # noqa: E402
    leaky_relu_backward,
    leaky_relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from convnp.ops.avgpool import (  # noqa: E402
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
)
from convnp.ops.batchnorm import batchnorm_backward, batchnorm_forward  # noqa: E402
from convnp.ops.dropout import dropout_backward, dropout_forward  # noqa: E402

__all__ += [
    "avgpool2d_backward",
    "avgpool2d_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "dropout_backward",
    "dropout_forward",
    "global_avgpool2d_backward",
    "global_avgpool2d_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "tanh_backward",
    "tanh_forward",
]
