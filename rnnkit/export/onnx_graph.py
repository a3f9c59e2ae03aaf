"""`export_onnx`: walk an rnnkit model layer by layer and write it as an ONNX graph.

The graph's input is batch-first like rnnkit's, `(batch, time, features)` (or
`(batch, time)` token ids), with both axes dynamic: one file serves any batch size and
sequence length. Each layer becomes the ONNX operators that compute the same numbers
(`rnnkit.export._layers`, `rnnkit.export._recurrent`); a layer without an exact ONNX form
is refused with a ValueError naming it.

Masks: a mask (from `Embedding(mask_zero=True)` or `Masking`) becomes the count of real
steps per sequence, ONNX's `sequence_lens`. That equals rnnkit's mask for right-padded
batches (padding after the last real step), which is what the export supports. A batch
with padding before or between real steps is read as if its first `count` steps were the
real ones, so its outputs differ from `model.predict`: pad on the right (e.g.
`pad_sequences(..., padding="post")`) before running the exported model.
"""

from __future__ import annotations

import os

import torch

from rnnkit import _tree
from rnnkit.export import _layers, _recurrent
from rnnkit.export._builder import GraphBuilder, Value
from rnnkit.layers import RNN, Bidirectional, InputLayer, Layer

_ELEM_TYPE = {torch.float32: 1, torch.int32: 6, torch.int64: 7}  # onnx.TensorProto's codes


def export_onnx(model, filepath) -> str:
    """Write `model` (Sequential, or functional) as an ONNX file at `filepath`; returns the path.

    Args:
        model: a built rnnkit model, float32.
        filepath: where to write, e.g. `"model.onnx"`.

    The graph's inputs and outputs are named after the model's (`input_1`, ...); run it with
    `onnxruntime.InferenceSession(path).run(None, {name: x})`, `x` shaped as for
    `model.predict`.

    Example:
        >>> import tempfile, os
        >>> from rnnkit.layers import GRU, Dense, Input
        >>> from rnnkit.models import Sequential
        >>> model = Sequential([Input(shape=(14, 6)), GRU(16), Dense(1)])
        >>> path = export_onnx(model, os.path.join(tempfile.mkdtemp(), "m.onnx"))
    """
    from rnnkit.saving import atomic_write

    data = onnx_model(model).SerializeToString()  # built first: a refusal writes nothing
    path = os.fspath(filepath)
    atomic_write(path, data)  # the whole file or none, even on a full disk
    return path


def onnx_model(model):
    """The `onnx.ModelProto` of `model` (see `export_onnx`)."""
    from onnx import helper

    if not model.built or not model.inputs:
        raise ValueError(
            f"Model '{model.name}' is not built, so it has no graph to export. Give it an "
            "Input(shape=...) first, or call it (or model.build((None, T, D))) once."
        )
    g = GraphBuilder()
    inputs, names = [], []
    for t in model.inputs:
        if t.dtype not in _ELEM_TYPE:
            raise ValueError(
                f"Model '{model.name}': input {t.name!r} is {t.dtype}; the ONNX export takes "
                "float32 inputs or int32/int64 token ids."
            )
        shape = ["batch", *(("time" if i == 1 else s) for i, s in enumerate(t.shape[1:], 1))]
        inputs.append(helper.make_tensor_value_info(t.name, _ELEM_TYPE[t.dtype], shape))
        names.append(Value(t.name))
    outs = _walk(g, model, names)
    outputs = []
    for value, t in zip(outs, _tree.flatten(model.outputs)):
        shape = ["batch", *[None] * (len(t.shape) - 2), t.shape[-1]]
        name = t.node.layer.name  # the output is named after the layer that gives it
        if name in (o.name for o in outputs) or name in (t.name for t in model.inputs):
            name = f"{name}_{len(outputs) + 1}"
        g.nodes.append(helper.make_node("Identity", [value.name], [name]))
        outputs.append(helper.make_tensor_value_info(name, 1, shape))
    return g.model(inputs, outputs, model.name)


def _walk(g, model, inputs: list[Value]) -> list[Value]:
    """The output Values of `model` on `inputs`: Sequential layer by layer, a functional
    model node by node (as `Model.call` replays them)."""
    if not getattr(model, "_nodes", None):  # Sequential
        (value,) = inputs
        for layer in model.layers:
            value = _layer(g, layer, value)
        return value if isinstance(value, list) else [value]
    values = {id(t): v for t, v in zip(model.inputs, inputs)}
    for node in model._nodes:
        extra = [k for k, v in node.kwargs.items() if k != "training" and v is not None]
        if extra:
            raise ValueError(
                f"{type(node.layer).__name__} '{node.layer.name}' is called with "
                f"{', '.join(extra)}=..., which the ONNX export does not handle. Export a model "
                "whose layers take only their input tensor."
            )
        args = [values[id(t)] for t in node.input_tensors]
        out = _layer(g, node.layer, args[0] if len(args) == 1 else args)
        for sym, val in zip(node.output_tensors, out if isinstance(out, list) else [out]):
            values[id(sym)] = val
    return [values[id(t)] for t in _tree.flatten(model.outputs)]


def _layer(g, layer: Layer, x):
    """One layer's nodes; returns its output Value (a list of two for Bidirectional with
    merge_mode=None)."""
    from rnnkit.models import Model

    if isinstance(layer, Model):
        out = _walk(g, layer, x if isinstance(x, list) else [x])
        return out[0] if len(out) == 1 else out
    if isinstance(layer, InputLayer):
        return x
    if isinstance(layer, Bidirectional):
        return _recurrent.bidirectional(g, layer, x)
    if isinstance(layer, RNN):
        return _recurrent.recurrent(g, layer, x)
    translate = _layers.TRANSLATORS.get(type(layer))
    if translate is None:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' has no ONNX translation. Exportable: "
            "SimpleRNN, LSTM, GRU, Bidirectional, Embedding, Masking, Dense, Activation, "
            "Dropout, TimeDistributed(Dense), RepeatVector, Flatten, Concatenate, Add, "
            "Average; export this model with torch.export.export instead."
        )
    return translate(g, layer, x)
