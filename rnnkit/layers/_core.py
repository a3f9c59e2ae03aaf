"""Feed-forward layers that sit around the recurrent ones."""

from __future__ import annotations

import math

import torch

from rnnkit import activations, constraints, initializers, regularizers
from rnnkit.layers import _direct
from rnnkit.layers._base import Layer, shape_str, to_tensor


class Dense(Layer):
    """A fully connected layer on the last axis: `y = activation(x W + b)`.

    Args:
        units: output size.
        activation: name or callable; `None` (default) for a linear layer.
        use_bias: whether to add `b`.
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, kernel_constraint, bias_constraint: as in Keras.

    Shapes: `(..., input_dim) -> (..., units)`; weights kernel `(input_dim, units)`,
    bias `(units,)`.

    Example:
        >>> import numpy as np
        >>> tuple(Dense(1)(np.ones((2, 3))).shape)
        (2, 1)
    """

    supports_masking = True
    activation = activations.Attribute()

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"Dense: units must be a positive integer; got {units!r}.")
        self.units = units
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def check_input_shape(self, shape):
        if not isinstance(shape, tuple) or len(shape) < 2:
            raise ValueError(
                f"Dense '{self.name}' expects input (batch, ..., features); got "
                f"{shape_str(shape) if isinstance(shape, tuple) else shape}. Add a batch axis, "
                "e.g. x.reshape(1, -1) for one sample."
            )
        if self.built and shape[-1] is not None and shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"Dense '{self.name}' expects input (batch, ..., features={self.kernel.shape[0]}); "
                f"got shape {shape_str(shape)}. It was built for {self.kernel.shape[0]} features."
            )
        if shape[-1] is None:
            raise ValueError(
                f"Dense '{self.name}' needs a known last axis to create its kernel; got "
                f"{shape_str(shape)}. Give Input(...) a fixed feature size."
            )

    def build(self, input_shape):
        self.kernel = self.add_weight(
            "kernel",
            (input_shape[-1], self.units),
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
        )
        self.bias = (
            self.add_weight(
                "bias",
                (self.units,),
                self.bias_initializer,
                self.bias_regularizer,
                self.bias_constraint,
            )
            if self.use_bias
            else None
        )

    def call(self, inputs):
        y = inputs @ self.kernel
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)

    def direct_blocker(self, training):
        return _direct.common_blocker(self, Dense)

    def direct_call(self, inputs, training, needs_input_grad):
        kernel, bias = self.kernel, self.bias
        z = inputs @ kernel
        if bias is not None:
            z += bias
        y, activation_backward = _direct.activate(self.activation, z)

        def backward(dy):
            dz = activation_backward(dy)
            rows = dz.reshape(-1, dz.shape[-1])  # (samples [x steps], units)
            if kernel.requires_grad:
                _direct.add_gradient(kernel, inputs.reshape(-1, inputs.shape[-1]).t() @ rows)
            if bias is not None and bias.requires_grad:
                _direct.add_gradient(bias, rows.sum(0))
            return dz @ kernel.t() if needs_input_grad else None

        return y, backward

    def stacked_blocker(self):
        return None

    @staticmethod
    def stacked_call(layers, inputs, needs_input_grad):
        """Each member's Dense on its rows: one batched product for all of them."""
        count, first = len(layers), layers[0]
        kernels = [layer.kernel for layer in layers]
        biases = [layer.bias for layer in layers] if first.bias is not None else None
        w = _direct.stack(kernels)  # (M, K, U)
        rows = inputs.reshape(count, -1, inputs.shape[-1])  # (M, N, K)
        z = torch.bmm(rows, w)
        if biases is not None:
            z += _direct.stack(biases).unsqueeze(1)
        y, activation_backward = _direct.activate(first.activation, z)

        def backward(dy):
            dz = activation_backward(dy.reshape(z.shape))
            if _direct.trains(kernels):
                _direct.give(kernels, torch.bmm(rows.transpose(1, 2), dz))
            if biases is not None and _direct.trains(biases):
                _direct.give(biases, dz.sum(1))
            if not needs_input_grad:
                return None
            return torch.bmm(dz, w.transpose(1, 2)).reshape(inputs.shape)

        return y.reshape(*inputs.shape[:-1], w.shape[-1]), backward

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            kernel_constraint=constraints.serialize(self.kernel_constraint),
            bias_constraint=constraints.serialize(self.bias_constraint),
        )
        return config


class Activation(Layer):
    """Applies an activation function: `Activation('relu')`."""

    supports_masking = True
    built_at_init = True  # no weights to make, as Keras' Activation
    activation = activations.Attribute()

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation

    def call(self, inputs):
        return self.activation(inputs)

    def direct_blocker(self, training):
        return _direct.common_blocker(self, Activation)

    def direct_call(self, inputs, training, needs_input_grad):
        y, backward = _direct.activate(self.activation, inputs)
        return y, backward

    def stacked_blocker(self):
        return None

    @staticmethod
    def stacked_call(layers, inputs, needs_input_grad):
        return layers[0].direct_call(inputs, True, needs_input_grad)  # element-wise: as one

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Dropout(Layer):
    """Zeroes a fraction `rate` of inputs while training and scales the rest by `1/(1-rate)`.

    Args:
        rate: fraction dropped, in `[0, 1)`.
        noise_shape: shape of the keep/drop mask, `None` entries taken from the
            input, e.g. `(batch, 1, features)` drops the same features at every step.
        seed: seed for the mask.
    """

    supports_masking = True
    built_at_init = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1); got {rate}.")
        self.rate = float(rate)
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None
        self.seed = seed
        self._generator = None

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        return inputs * self._keep(inputs) / (1.0 - self.rate)

    def _keep(self, inputs):
        """A fresh keep mask for `inputs`: 1 for the kept values, 0 for the dropped."""
        shape = (
            inputs.shape
            if self.noise_shape is None
            else tuple(n if n is not None else s for n, s in zip(self.noise_shape, inputs.shape))
        )
        if self.seed is not None and self._generator is None:
            self._generator = torch.Generator(device=inputs.device).manual_seed(int(self.seed))
        keep = torch.rand(shape, generator=self._generator, device=inputs.device) >= self.rate
        return keep.to(inputs.dtype)

    def direct_blocker(self, training):
        return _direct.common_blocker(self, Dropout)

    def direct_call(self, inputs, training, needs_input_grad):
        if not training or self.rate == 0.0:
            return inputs, lambda dy: dy
        keep, scale = self._keep(inputs), 1.0 - self.rate
        return inputs * keep / scale, lambda dy: dy / scale * keep  # as autograd orders it

    def stacked_blocker(self):
        return "Dropout draws each member's own masks" if self.rate else None

    @staticmethod
    def stacked_call(layers, inputs, needs_input_grad):
        return inputs, lambda dy: dy  # rate 0 (`stacked_blocker`)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
        }


class Flatten(Layer):
    """Flattens every axis but the batch: `(batch, a, b) -> (batch, a*b)`."""

    def call(self, inputs):
        return inputs.reshape(inputs.shape[0], -1)

    def direct_blocker(self, training):
        return _direct.common_blocker(self, Flatten)

    def direct_call(self, inputs, training, needs_input_grad):
        shape = inputs.shape
        return inputs.reshape(shape[0], -1), lambda dy: dy.reshape(shape)

    def stacked_blocker(self):
        return None

    @staticmethod
    def stacked_call(layers, inputs, needs_input_grad):
        return layers[0].direct_call(inputs, True, needs_input_grad)  # row by row: as one

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(s is None for s in rest) else math.prod(rest)
        return (input_shape[0], size)


class RepeatVector(Layer):
    """Repeats a vector `n` times: `(batch, features) -> (batch, n, features)`.

    The bridge to one-to-many models: a single encoding feeds every step of a
    recurrent decoder.
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"RepeatVector: n must be a positive integer; got {n!r}.")
        self.n = n

    def check_input_shape(self, shape):
        if not isinstance(shape, tuple) or len(shape) != 2:
            raise ValueError(
                f"RepeatVector '{self.name}' expects input (batch, features); got "
                f"{shape_str(shape) if isinstance(shape, tuple) else shape}."
            )

    def call(self, inputs):
        return inputs.unsqueeze(1).expand(-1, self.n, -1)  # (B, n, D)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Masking(Layer):
    """Marks time steps whose features all equal `mask_value` as padding.

    The output is the input with those steps zeroed, and it carries a
    `(batch, timesteps)` mask that recurrent layers after it honour: masked
    steps leave their state unchanged.
    """

    supports_masking = True
    built_at_init = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value

    def compute_mask(self, inputs, mask=None):
        return (to_tensor(inputs) != self.mask_value).any(dim=-1)

    def call(self, inputs):
        keep = (inputs != self.mask_value).any(dim=-1, keepdim=True)
        return inputs * keep.to(inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


class Concatenate(Layer):
    """Joins a list of tensors along `axis` (default: the last)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def check_input_shape(self, shape):
        if not isinstance(shape, list) or len(shape) < 2:
            raise ValueError(f"Concatenate '{self.name}' takes a list of at least two tensors.")
        ranks = {len(s) for s in shape}
        if len(ranks) != 1:
            raise ValueError(
                f"Concatenate '{self.name}': all inputs need the same rank; got shapes "
                f"{', '.join(shape_str(s) for s in shape)}."
            )

    def call(self, inputs):
        return torch.cat(list(inputs), dim=self.axis)

    def compute_mask(self, inputs, mask=None):
        """A step is kept if any input keeps it; an unmasked input keeps every step."""
        if mask is None or all(m is None for m in mask):
            return None
        full = []
        for x, m in zip(inputs, mask):
            if m is None:
                m = torch.ones_like(x, dtype=torch.bool)
            elif m.dim() < x.dim():
                m = m.unsqueeze(-1).expand_as(x)
            full.append(m)
        return torch.cat(full, dim=self.axis).any(dim=-1)

    def compute_output_shape(self, input_shape):
        axis = self.axis % len(input_shape[0])
        sizes = [s[axis] for s in input_shape]
        out = list(input_shape[0])
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Add(Layer):
    """Adds a list of tensors of the same shape."""

    def check_input_shape(self, shape):
        if not isinstance(shape, list) or len(shape) < 2:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' takes a list of at least two tensors."
            )

    def call(self, inputs):
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total

    def compute_mask(self, inputs, mask=None):
        """Kept where any input keeps the step (unknown if some input has no mask)."""
        if mask is None or any(m is None for m in mask):
            return None
        out = mask[0]
        for m in mask[1:]:
            out = out | m
        return out

    def compute_output_shape(self, input_shape):
        return input_shape[0]


class Average(Add):
    """The element-wise mean of a list of tensors of the same shape (an ensemble's output)."""

    def call(self, inputs):
        return super().call(inputs) / len(inputs)
