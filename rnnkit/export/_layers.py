"""The feed-forward layers as ONNX nodes: Embedding, Dense, Activation, Dropout,
TimeDistributed, RepeatVector, Flatten, Masking, Concatenate, Add, Average.

Each translator takes the builder, the layer and its input `Value`(s) and returns the
output `Value`; a mask travels as per-sequence lengths (see `Value`).
"""

from __future__ import annotations

import numpy as np
import torch
from onnx import TensorProto

from rnnkit.export import _activations
from rnnkit.export._builder import Value
from rnnkit.layers import (
    Activation,
    Add,
    Average,
    Concatenate,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Masking,
    RepeatVector,
    TimeDistributed,
)


def embedding(g, layer, ids: Value) -> Value:
    """`Gather` of the table's rows; with `mask_zero`, the lengths count the ids that are not 0."""
    ids_64 = g.op("Cast", [ids.name], to=TensorProto.INT64)
    table = g.const(_float32(layer, layer.embeddings), "embeddings")
    out = g.op("Gather", [table, ids_64], axis=0)  # (B, T, dim)
    if not layer.mask_zero:
        return Value(out)
    kept = g.op("Not", [g.op("Equal", [ids_64, g.const(np.int64(0))])])  # (B, T)
    return Value(out, _count_kept(g, kept))


def masking(g, layer, x: Value) -> Value:
    """Steps whose features all equal `mask_value` are zeroed and not counted as real."""
    value = g.const(np.float32(layer.mask_value))
    kept = g.op("Not", [g.op("Equal", [x.name, value])])  # (B, T, D)
    kept = g.op("Cast", [kept], to=TensorProto.FLOAT)
    kept = g.op("ReduceMax", [kept], axes=[-1], keepdims=1)  # (B, T, 1): any feature differs
    lengths = _count_kept(g, g.op("Squeeze", [kept, g.ints([-1])]))
    return Value(g.op("Mul", [x.name, kept]), lengths)


def dense(g, layer, x: Value) -> Value:
    """`activation(x W + b)` on the last axis, any rank."""
    y = g.op("MatMul", [x.name, g.const(_float32(layer, layer.kernel), "kernel")])
    if layer.bias is not None:
        y = g.op("Add", [y, g.const(_float32(layer, layer.bias), "bias")])
    return Value(_activations.apply(g, y, layer.activation, layer), x.lengths)


def activation(g, layer, x: Value) -> Value:
    return Value(_activations.apply(g, x.name, layer.activation, layer), x.lengths)


def dropout(g, layer, x: Value) -> Value:
    return x  # the identity at inference


def time_distributed(g, layer, x: Value) -> Value:
    """The step-wise layers act on the last axis, so they run on `(B, T, ...)` as it is."""
    inner = layer.layer
    if type(inner) not in (Dense, Activation, Dropout):
        raise ValueError(
            f"TimeDistributed '{layer.name}': exporting to ONNX handles Dense, Activation and "
            f"Dropout inside it; got {type(inner).__name__}."
        )
    return Value(TRANSLATORS[type(inner)](g, inner, x).name, x.lengths)


def repeat_vector(g, layer, x: Value) -> Value:
    """`(B, D)` -> `(B, n, D)`."""
    y = g.op("Unsqueeze", [x.name, g.ints([1])])  # (B, 1, D)
    return Value(g.op("Tile", [y, g.ints([1, layer.n, 1])]))


def flatten(g, layer, x: Value) -> Value:
    return Value(g.op("Reshape", [x.name, g.ints([0, -1])]))  # (B, everything else)


def concatenate(g, layer, xs: list[Value]) -> Value:
    _no_masks(layer, xs)
    return Value(g.op("Concat", [x.name for x in xs], axis=layer.axis))


def add(g, layer, xs: list[Value]) -> Value:
    _no_masks(layer, xs)
    total = xs[0].name
    for x in xs[1:]:
        total = g.op("Add", [total, x.name])
    if isinstance(layer, Average):
        total = g.op("Div", [total, g.const(np.float32(len(xs)))])
    return Value(total)


TRANSLATORS = {
    Embedding: embedding,
    Masking: masking,
    Dense: dense,
    Activation: activation,
    Dropout: dropout,
    TimeDistributed: time_distributed,
    RepeatVector: repeat_vector,
    Flatten: flatten,
    Concatenate: concatenate,
    Add: add,
    Average: add,
}


def _count_kept(g, kept: str) -> str:
    """`(B,)` int32 lengths from a `(B, T)` bool of kept steps (right padding assumed)."""
    counts = g.op("Cast", [kept], to=TensorProto.INT32)
    return g.op("ReduceSum", [counts, g.ints([1])], keepdims=0)


def _no_masks(layer, xs: list[Value]) -> None:
    if any(x.lengths for x in xs):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': merging masked inputs is not exported to "
            "ONNX. Merge after a recurrent layer with return_sequences=False, or drop the mask."
        )


def _float32(layer, weight: torch.Tensor) -> np.ndarray:
    if weight.dtype != torch.float32:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' has {weight.dtype} weights; the ONNX export "
            "writes float32. Export a float32 model (dtype='float32')."
        )
    return weight.detach().cpu().numpy()
