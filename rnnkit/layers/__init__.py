"""rnnkit layers: the Keras 3 layer API on PyTorch.

from rnnkit.layers import SimpleRNN, Dense, Embedding, Input
"""

from __future__ import annotations

import contextvars

from rnnkit.layers._base import Layer, unsaved_arguments
from rnnkit.layers._bidirectional import Bidirectional
from rnnkit.layers._core import (
    Activation,
    Add,
    Average,
    Concatenate,
    Dense,
    Dropout,
    Flatten,
    Masking,
    RepeatVector,
)
from rnnkit.layers._embedding import Embedding
from rnnkit.layers._graph import SymbolicTensor
from rnnkit.layers._gru import GRU, GRUCell
from rnnkit.layers._input import Input, InputLayer
from rnnkit.layers._lstm import LSTM, LSTMCell
from rnnkit.layers._rnn import RNN, DenseRNNCell, RNNCell, StackedRNNCells
from rnnkit.layers._simple_rnn import SimpleRNN, SimpleRNNCell
from rnnkit.layers._wrappers import TimeDistributed

__all__ = [
    "Activation",
    "Add",
    "Average",
    "Bidirectional",
    "DenseRNNCell",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "StackedRNNCells",
    "Concatenate",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "Masking",
    "RNN",
    "RNNCell",
    "RepeatVector",
    "SimpleRNN",
    "SimpleRNNCell",
    "SymbolicTensor",
    "TimeDistributed",
    "deserialize",
    "serialize",
]


def _registry() -> dict[str, type]:
    from rnnkit import models

    classes = {
        name: obj
        for name, obj in globals().items()
        if isinstance(obj, type) and issubclass(obj, Layer)
    }
    classes.update(Sequential=models.Sequential, Functional=models.Functional, Model=models.Model)
    return classes


def serialize(layer: Layer) -> dict:
    """`{"class_name": ..., "config": ...}`, the form `deserialize` (and saving) reads."""
    config = layer.get_config()
    missing = unsaved_arguments(layer, config) if isinstance(layer, Layer) else []
    starred = [m for m in missing if m.startswith("*")]
    if starred:
        raise TypeError(
            f"{type(layer).__name__} '{layer.name}' cannot be saved: it was given arguments "
            f"through {starred[0]}, which a config cannot pass back by name. Name them in "
            "__init__, e.g. def __init__(self, units, **kwargs), or write get_config()."
        )
    if missing:
        name = type(layer).__name__
        raise TypeError(
            f"{name} '{layer.name}' cannot be saved: its constructor argument(s) "
            f"{', '.join(repr(m) for m in missing)} are not numbers, strings, booleans, None "
            "or lists/dicts of them, so a config cannot hold them. Write "
            f"{name}.get_config() to return what rebuilds them (and from_config(config) to "
            "turn that back into objects), or pass such values as plain numbers and lists."
        )
    return {"class_name": type(layer).__name__, "config": config}


# Classes of the user's own, visible to nested deserialize() calls (an RNN's custom cell, a
# wrapped layer) while an outer deserialize(config, custom_objects) runs.
_custom_objects: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "custom_objects", default=None
)


def deserialize(config: dict, custom_objects: dict | None = None) -> Layer:
    """Rebuild a layer from `serialize(layer)`; `custom_objects` maps names of your own classes.

    The custom classes also reach the layers nested inside (an `RNN`'s cell, the
    layer inside `TimeDistributed` or `Bidirectional`, a model's layers).
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"A layer config is a dict with 'class_name' and 'config'; got {config!r}."
        )
    custom = {**(_custom_objects.get() or {}), **(custom_objects or {})}
    token = _custom_objects.set(custom)
    try:
        return _deserialize(config, custom)
    finally:
        _custom_objects.reset(token)


def _deserialize(config: dict, custom: dict) -> Layer:
    classes = {**_registry(), **custom}
    name = config["class_name"]
    if name not in classes:
        raise ValueError(
            f"Unknown layer class {name!r}. Known: {', '.join(sorted(classes))}. For a layer "
            "of your own, pass custom_objects={'" + name + "': YourClass}."
        )
    return classes[name].from_config(dict(config.get("config", {})))
