"""Symbolic tensors and graph nodes: what the functional API is made of.

`Input(shape=(T, D))` returns a `SymbolicTensor`: a shape and dtype with no data.
Calling a layer on symbolic tensors builds the layer, records a `Node` (which
layer ran on which tensors) and returns symbolic outputs. `Model(inputs,
outputs)` later walks those nodes back from the outputs to find the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from rnnkit import _tree


class SymbolicTensor:
    """A placeholder with a shape (`None` for unknown sizes) and a dtype.

    Example:
        >>> from rnnkit.layers import Input
        >>> x = Input(shape=(20, 3))
        >>> x.shape
        (None, 20, 3)
    """

    def __init__(self, shape, dtype=torch.float32, node=None, index=0, name=None):
        self.shape = tuple(None if s is None else int(s) for s in shape)
        self.dtype = dtype
        self.node = node  # the Node that produced this tensor
        self.index = index  # which of that node's outputs it is
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def layer(self):
        return self.node.layer

    def __repr__(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        return f"<SymbolicTensor shape={self.shape}, dtype={dtype}, name={self.name}>"

    def __bool__(self):
        raise TypeError(
            "A SymbolicTensor (from Input(...)) has no value, so it cannot be used as a "
            "Python bool. Build the model first, then call it on data."
        )


@dataclass(eq=False)
class Node:
    """One call of `layer` on symbolic `args`/`kwargs`, producing `outputs`."""

    layer: Any  # the Layer that ran
    args: tuple
    kwargs: dict
    outputs: Any = None
    index: int = 0  # position in layer.inbound_nodes
    parents: list = field(default_factory=list)

    @property
    def input_tensors(self) -> list:
        return [t for t in _tree.flatten((self.args, self.kwargs)) if isinstance(t, SymbolicTensor)]

    @property
    def output_tensors(self) -> list:
        return _tree.flatten(self.outputs)
