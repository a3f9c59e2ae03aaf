"""Where Keras 3 keeps each weight of a model in `model.weights.h5`, for rnnkit's layers.

Keras walks its objects and names each group after the attribute that holds it (`cell`,
`forward_layer`, `layer`) or, for an item of a list (`layers`, `cells`), after its class in
snake case, numbered from the second on: `dense`, `dense_1`. A layer's own variables are the
datasets `vars/0`, `vars/1`, ... in the order it made them:

    layers/bidirectional/forward_layer/cell/vars/0     LSTM kernel, (features, 4 * units)
    layers/sequential/layers/gru/cell/vars/2           GRU bias, (2, 3 * units) if reset_after
    layers/rnn/cell/cells/simple_rnn_cell/vars/1       a stacked cell's recurrent kernel

A functional model's `layers` include its input layers; a Sequential's do not.
"""

from __future__ import annotations

import re

# rnnkit attribute -> Keras' group name, for layers that hold one layer each
_CHILDREN = {
    "Bidirectional": ("forward_layer", "backward_layer"),
    "TimeDistributed": ("layer",),
}


def snake_case(name: str) -> str:
    """Keras' group name for a class: "SimpleRNNCell" -> "simple_rnn_cell"."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_groups(model) -> list[tuple[str, object, list]]:
    """`(group path, layer, its own weights)` for the model and every layer inside, in the
    order Keras walks them; each weight appears exactly once."""
    groups: list[tuple[str, object, list]] = []
    _walk(model, "", groups)
    return groups


def weight_paths(model) -> list[tuple[str, object]]:
    """`(dataset path, weight)` for every weight of `model`, checked against `model.weights`."""
    pairs = [
        (f"{group}vars/{i}", weight)
        for group, _, own in keras_groups(model)
        for i, weight in enumerate(own)
    ]
    if sorted(map(id, (w for _, w in pairs))) != sorted(map(id, model.weights)):
        raise ValueError(
            f"Model '{model.name}' holds weights outside the layers Keras files know "
            "(a layer of your own with sub-modules?), so it cannot be saved as a Keras "
            "file. Save it to a '.rnnkit' file instead."
        )
    return pairs


def _walk(layer, prefix: str, groups: list) -> None:
    groups.append((prefix, layer, list(layer.parameters(recurse=False))))
    kind = type(layer).__name__
    if hasattr(layer, "layers") and kind != "TimeDistributed":
        from rnnkit.layers import InputLayer

        items = layer.layers
        if kind == "Sequential":
            items = [x for x in items if not isinstance(x, InputLayer)]
        _walk_list(items, f"{prefix}layers/", groups)
    if hasattr(layer, "cells"):
        _walk_list(layer.cells, f"{prefix}cells/", groups)
    elif hasattr(layer, "cell") and kind not in _CHILDREN:
        _walk(layer.cell, f"{prefix}cell/", groups)
    for attribute in _CHILDREN.get(kind, ()):
        _walk(getattr(layer, attribute), f"{prefix}{attribute}/", groups)


def _walk_list(items, prefix: str, groups: list) -> None:
    used: dict[str, int] = {}
    for item in items:
        name = snake_case(type(item).__name__)
        count = used.get(name, -1) + 1
        used[name] = count
        _walk(item, f"{prefix}{name}{f'_{count}' if count else ''}/", groups)
