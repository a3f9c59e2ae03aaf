"""`Input` and `InputLayer`: where a functional model's data comes in."""

from __future__ import annotations

from rnnkit.layers._base import Layer, as_dtype
from rnnkit.layers._graph import Node, SymbolicTensor


class InputLayer(Layer):
    """The layer behind `Input(...)`: it holds the shape and passes data through."""

    def __init__(
        self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, **kwargs
    ):
        if shape is None and batch_shape is None:
            raise ValueError(
                "Input needs a shape without the batch axis, e.g. Input(shape=(timesteps, "
                "features)) for a sequence or Input(shape=(maxlen,), dtype='int64') for token ids."
            )
        if batch_shape is None:
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size, *shape)
        super().__init__(name=name, dtype=dtype or "float32", **kwargs)
        self.batch_shape = tuple(batch_shape)
        self.built = True
        tensor = SymbolicTensor(self.batch_shape, self.dtype, name=self.name)
        node = Node(self, args=(), kwargs={}, outputs=tensor)
        tensor.node = node
        self.inbound_nodes.append(node)
        self.output = tensor

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(batch_shape=self.batch_shape, dtype=_dtype_name(self.dtype))
        return config


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):  # noqa: N802
    """A symbolic input for the functional API; `shape` excludes the batch axis.

    Args:
        shape: per-sample shape, e.g. `(timesteps, features)`; `None` for a free size.
        batch_size: a fixed batch size (needed by `stateful=True` layers), else `None`.
        dtype: `'float32'` (default), `'int64'` for token ids, ...
        name: the input's name (also the key for dict inputs).
        batch_shape: the full shape including the batch axis, instead of `shape`.

    Example:
        >>> inputs = Input(shape=(20, 3))
        >>> inputs.shape
        (None, 20, 3)
    """
    layer = InputLayer(
        shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape
    )
    return layer.output


def _dtype_name(dtype) -> str:
    return str(as_dtype(dtype)).replace("torch.", "")
