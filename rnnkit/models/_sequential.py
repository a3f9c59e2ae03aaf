"""`Sequential`: a plain stack of layers, each feeding the next."""

from __future__ import annotations

from torch import nn

from rnnkit.layers._base import Layer, unique_name
from rnnkit.layers._graph import SymbolicTensor
from rnnkit.layers._input import InputLayer
from rnnkit.models._model import Model, _how_to_build


class Sequential(Model):
    """A stack of layers: `Sequential([SimpleRNN(3, input_shape=(4, 5)), Dense(1)])`.

    The input shape comes from an `Input(...)` first, from `input_shape=` (or
    `batch_input_shape=`, `input_dim=`/`input_length=`) on the first layer, from
    `build((None, T, D))`, or from the first call on data.

    Example:
        >>> from rnnkit.layers import Dense, SimpleRNN
        >>> model = Sequential()
        >>> model.add(SimpleRNN(3, input_shape=(4, 5)))
        >>> model.add(Dense(1, activation="sigmoid"))
        >>> model.count_params()
        31
    """

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name or unique_name("sequential"), trainable=trainable)
        self._stack = nn.ModuleList()
        self.input_layer = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        """The layers, without the input layer (as in Keras)."""
        return list(self._stack)

    def add(self, layer) -> None:
        """Append a layer (or an `Input(...)`, as the first entry)."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential.add takes an rnnkit layer (e.g. SimpleRNN(3)) or Input(shape=...); "
                f"got {type(layer).__name__}."
            )
        if isinstance(layer, InputLayer):
            if self._stack or self.input_layer is not None:
                raise ValueError(
                    f"Sequential '{self.name}': an Input can only be the first entry; it already "
                    "has one, or has layers."
                )
            self.input_layer = layer
            return
        if not self._stack and self.input_layer is None and layer.batch_input_shape is not None:
            self.input_layer = InputLayer(batch_shape=layer.batch_input_shape)
        self._stack.append(layer)
        self.built = False
        self._forget_lookups()
        if self.input_layer is not None:
            self._build_graph()

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._stack:
            raise ValueError(f"Sequential '{self.name}' has no layers to pop.")
        layer = self._stack[-1]
        del self._stack[-1]
        self.built = False
        self._forget_lookups()
        if self.input_layer is not None and self._stack:
            self._build_graph()
        return layer

    def build(self, input_shape=None) -> None:
        """Create every layer's weights for inputs of `input_shape` (batch axis included)."""
        if input_shape is None:
            if self.input_layer is None:
                raise ValueError(
                    f"Sequential '{self.name}'.build() needs an input shape. " + _how_to_build()
                )
        else:
            input_shape = tuple(input_shape)
            if self.input_layer is None or tuple(self.input_layer.batch_shape) != input_shape:
                self.input_layer = InputLayer(batch_shape=input_shape)
        self._build_graph()

    def _build_graph(self) -> None:
        x = self.input_layer.output
        for layer in self._stack:
            x = layer(x)
        self.inputs, self.outputs = [self.input_layer.output], [x]
        self._input_struct, self._output_struct = self.input_layer.output, x
        self._build_input_shape = self.input_layer.batch_shape
        self.built = True

    def _maybe_build(self, input_shape) -> None:
        if not self.built:
            # Keras keeps the first batch's size in the built shape; inputs of other batch
            # sizes are still accepted.
            self.build(input_shape if self.input_layer is None else None)

    def _convert_inputs(self, inputs):
        if self.input_layer is not None:  # the Input's dtype, as a functional model keeps it
            return super()._convert_inputs(inputs)
        return Layer._convert_inputs(self, inputs)

    def check_input_shape(self, shape) -> None:
        if not self._stack:
            raise ValueError(f"Sequential '{self.name}' has no layers; add some first.")
        if self.input_layer is not None:
            super().check_input_shape(shape)

    def call(self, inputs, training=False):
        x = inputs
        for layer in self._stack:
            x = layer(x, training=training)
        return x

    def get_config(self) -> dict:
        from rnnkit.layers import serialize

        layers = [serialize(layer) for layer in self._stack]
        if self.input_layer is not None:
            layers.insert(0, serialize(self.input_layer))
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from rnnkit.layers import deserialize

        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for entry in config["layers"]:
            model.add(deserialize(entry, custom_objects))
        return model
