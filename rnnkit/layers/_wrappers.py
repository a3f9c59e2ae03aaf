"""`TimeDistributed`: apply one layer to every time step."""

from __future__ import annotations

from rnnkit.layers._base import Layer, shape_str


class TimeDistributed(Layer):
    """Applies `layer` to each time step of `(batch, timesteps, ...)` with shared weights.

    `TimeDistributed(Dense(k))` after `SimpleRNN(..., return_sequences=True)` gives
    one prediction per step: the many-to-many shape (tagging, per-step forecasts).

    Example:
        >>> import numpy as np
        >>> from rnnkit.layers import Dense
        >>> tuple(TimeDistributed(Dense(2))(np.ones((4, 7, 3))).shape)
        (4, 7, 2)
    """

    supports_masking = True

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"TimeDistributed wraps an rnnkit layer, e.g. TimeDistributed(Dense(1)); got "
                f"{layer!r}."
            )
        super().__init__(**kwargs)
        self.layer = layer

    def check_input_shape(self, shape):
        if not isinstance(shape, tuple) or len(shape) < 3:
            raise ValueError(
                f"TimeDistributed '{self.name}' expects input (batch, timesteps, ...); got "
                f"{shape_str(shape) if isinstance(shape, tuple) else shape}. Use "
                "return_sequences=True on the recurrent layer before it."
            )

    def build(self, input_shape):
        self.layer._maybe_build((input_shape[0], *input_shape[2:]))

    def call(self, inputs, training=False):
        batch, steps = inputs.shape[:2]
        flat = inputs.reshape(batch * steps, *inputs.shape[2:])  # (B*T, ...)
        self.layer.check_input_shape(tuple(flat.shape))
        kwargs = {"training": training} if _takes_training(self.layer) else {}
        out = self.layer.call(flat, **kwargs)
        return out.reshape(batch, steps, *out.shape[1:])  # (B, T, ...)

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((input_shape[0], *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])

    def get_config(self):
        from rnnkit.layers import serialize

        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config):
        from rnnkit.layers import deserialize

        return cls(**dict(config, layer=deserialize(config["layer"])))


def _takes_training(layer) -> bool:
    from rnnkit.layers._base import _call_params

    return "training" in _call_params(type(layer))
