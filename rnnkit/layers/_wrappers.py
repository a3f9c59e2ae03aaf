"""`TimeDistributed`: apply one layer to every time step."""

from __future__ import annotations

from rnnkit.layers._base import Layer, _call_params, shape_str, to_tensor


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

    @property
    def casts_integer_inputs(self) -> bool:
        return self.layer.casts_integer_inputs  # TimeDistributed(Embedding(...)) reads ids

    def call(self, inputs, training=False, mask=None):
        batch, steps = inputs.shape[:2]
        flat = inputs.reshape(batch * steps, *inputs.shape[2:])  # (B*T, ...)
        self.layer.check_input_shape(tuple(flat.shape))
        kwargs = {"training": training} if "training" in _call_params(type(self.layer)) else {}
        if mask is not None:
            mask = self._check_mask(mask, inputs)
            if "mask" in _call_params(type(self.layer)):
                # Each step's slice of the mask goes with that step, as in Keras.
                kwargs["mask"] = mask.reshape(batch * steps, *mask.shape[2:])  # (B*T, ...)
        out = self.layer.call(flat, **kwargs)
        return out.reshape(batch, steps, *out.shape[1:])  # (B, T, ...)

    def _check_mask(self, mask, inputs):
        mask = to_tensor(mask, device=inputs.device)
        if tuple(mask.shape[:2]) != tuple(inputs.shape[:2]):
            raise ValueError(
                f"TimeDistributed '{self.name}': the mask must start with the input's (batch, "
                f"timesteps) = {shape_str(tuple(inputs.shape[:2]))}; got a mask of shape "
                f"{shape_str(tuple(mask.shape))}. Pass one flag per sample and step, e.g. the "
                "mask of the layer before, or none."
            )
        return mask.bool()

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
