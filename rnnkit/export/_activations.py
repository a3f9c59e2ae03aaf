"""Activations in ONNX: as operators after a Dense, and as the names ONNX's RNN, LSTM and
GRU operators take in their `activations` attribute.

Only exact equivalents are listed. Anything else is refused by name, so an exported model
never computes different numbers from rnnkit's.
"""

from __future__ import annotations

import numpy as np

from rnnkit import activations

# rnnkit's name -> the name in ONNX's recurrent operators, for those that take no
# alpha/beta (ONNX Runtime reads those per function, which we keep out of the way).
RECURRENT = {
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "relu": "Relu",
    "softsign": "Softsign",
    "softplus": "Softplus",
}

# rnnkit's name -> (ONNX operator, its attributes), one operator each.
_ONE_OP = {
    "relu": ("Relu", {}),
    "tanh": ("Tanh", {}),
    "sigmoid": ("Sigmoid", {}),
    "softmax": ("Softmax", {"axis": -1}),
    "log_softmax": ("LogSoftmax", {"axis": -1}),
    "softplus": ("Softplus", {}),
    "softsign": ("Softsign", {}),
    "elu": ("Elu", {"alpha": 1.0}),
    "selu": ("Selu", {}),  # ONNX's default alpha and gamma are torch's, to float32
    "leaky_relu": ("LeakyRelu", {"alpha": 0.2}),
    "hard_sigmoid": ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}),  # Keras 3's slope
    "exponential": ("Exp", {}),
}
STANDALONE = ("linear", "relu6", "silu", *_ONE_OP)


def recurrent_name(fn, layer, arg: str) -> str:
    """The ONNX name of a recurrent cell's activation `fn` (its argument `arg`), or a
    ValueError naming the layer."""
    name = activations.serialize(fn)
    if name not in RECURRENT:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': {arg}={name!r} has no exact form in ONNX's "
            f"recurrent operators; exportable: {', '.join(RECURRENT)}. Train with one of "
            f"those (e.g. {arg}='tanh') to export to ONNX."
        )
    return RECURRENT[name]


def apply(g, x: str, fn, layer) -> str:
    """Add the nodes computing activation `fn` on tensor `x`; returns the result's name."""
    name = activations.serialize(fn)
    if name == "linear":
        return x
    if name == "relu6":
        return g.op("Clip", [x, g.const(np.float32(0.0)), g.const(np.float32(6.0))])
    if name == "silu":  # x * sigmoid(x)
        return g.op("Mul", [x, g.op("Sigmoid", [x])])
    if name not in _ONE_OP:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': activation {name!r} has no exact ONNX "
            f"form here; exportable: {', '.join(STANDALONE)}. Use one of those to export."
        )
    op_type, attrs = _ONE_OP[name]
    return g.op(op_type, [x], **attrs)
