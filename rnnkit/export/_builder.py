"""`GraphBuilder`: collects ONNX nodes and weights, then writes them as one model.

The translators in this package only say which operators to add; the builder names every
tensor uniquely, turns numpy arrays into initializers, and assembles the `ModelProto`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPSET = 17  # ONNX Runtime has run every operator used here since opset 14; 17 is widely read


@dataclass
class Value:
    """A tensor of the graph being built: its ONNX name, and where a mask travels with it,
    the name of its per-sequence lengths `(batch,)` int32 (the mask read as right padding)."""

    name: str
    lengths: str | None = None


class GraphBuilder:
    """Nodes and initializers of one ONNX graph, named `<hint>_<n>` so no two collide.

    Example:
        >>> g = GraphBuilder()
        >>> two = g.const(np.float32(2.0), "two")
        >>> g.op("Mul", ["x", two])
        'Mul_2'
    """

    def __init__(self):
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint: str = "const") -> str:
        """An initializer holding `array` (its dtype kept); returns its name."""
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def ints(self, values, hint: str = "ints") -> str:
        """A 1-D int64 initializer: the axes, shapes and indices that ops take as inputs."""
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs):
        """Add a node; returns its output name (or a list of `outputs` names).

        An empty string in `inputs` is an omitted optional input, as ONNX spells it.
        """
        from onnx import helper

        names = [self.fresh(op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attrs))
        return names[0] if outputs == 1 else names

    def model(self, inputs: list, outputs: list, name: str):
        """The checked `ModelProto` whose graph reads `inputs` and gives `outputs`
        (both lists of `onnx.ValueInfoProto`)."""
        import onnx
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rnnkit"
        )
        model.ir_version = 8  # what ONNX Runtime releases since 1.10 read
        onnx.checker.check_model(model)
        return model
