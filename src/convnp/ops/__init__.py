"""Pure NumPy kernels with no state.

Each ``*_forward(...)`` returns ``(out, cache)`` and each ``*_backward(dout, cache)`` returns the gradients, in the
style of the CS231n layer functions, so every kernel can be gradient-checked on its own. A cache of more than one
item is a named tuple defined beside its kernel (``ConvCache``, ``MaxPoolCache``, ...). Activations are
channels-last ``(N, H, W, C)``; convolution weights are ``(kH, kW, C_in, C_out)``.
"""

from convnp.ops.activations import (
    leaky_relu_backward,
    leaky_relu_forward,
    log_softmax,
    relu,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax,
    tanh_backward,
    tanh_forward,
)
from convnp.ops.avgpool import (
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
)
from convnp.ops.batchnorm import batchnorm_backward, batchnorm_forward
from convnp.ops.conv import conv2d_backward, conv2d_forward
from convnp.ops.dropout import dropout_backward, dropout_forward
from convnp.ops.linear import linear_backward, linear_forward
from convnp.ops.pool import maxpool2d, maxpool2d_backward, maxpool2d_forward
from convnp.ops.windows import conv_output_size, resolve_padding, sliding_windows

__all__ = [
    "avgpool2d_backward",
    "avgpool2d_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "conv2d_backward",
    "conv2d_forward",
    "conv_output_size",
    "dropout_backward",
    "dropout_forward",
    "global_avgpool2d_backward",
    "global_avgpool2d_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "log_softmax",
    "maxpool2d",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "relu",
    "relu_backward",
    "relu_forward",
    "resolve_padding",
    "sigmoid_backward",
    "sigmoid_forward",
    "sliding_windows",
    "softmax",
    "tanh_backward",
    "tanh_forward",
]
