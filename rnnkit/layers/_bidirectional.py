"""`Bidirectional`: read the sequence both ways and merge what the two passes saw."""

from __future__ import annotations

import logging

import torch

from rnnkit import _tree
from rnnkit.kernels.torch_rnn import bidirectional_lstm_sequence
from rnnkit.layers._base import Layer
from rnnkit.layers._lstm import LSTM
from rnnkit.layers._rnn import RNN, _check_mask

logger = logging.getLogger("rnnkit.kernels")

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards, then merges the outputs.

    At step t the merged output sees the whole sequence: the forward pass
    summarises `x_1..x_t`, the backward pass `x_t..x_T`. The backward outputs
    are flipped back into time order before merging.

    Args:
        layer: the recurrent layer to run forwards, e.g. `LSTM(64, return_sequences=True)`.
            It is copied (as `forward_<name>`), not used itself.
        merge_mode: `'concat'` (default, features doubled), `'sum'`, `'mul'`,
            `'ave'`, or `None` to return `[forward, backward]`.
        backward_layer: the layer for the backward pass; by default a copy of
            `layer` with `go_backwards=True` (named `backward_<name>`).

    With `return_state=True` the result is `[output, *forward_states, *backward_states]`.
    `initial_state` takes the forward states then the backward ones.

    Example:
        >>> import numpy as np
        >>> from rnnkit.layers import LSTM
        >>> layer = Bidirectional(LSTM(8, return_sequences=True))
        >>> tuple(layer(np.random.rand(2, 5, 3)).shape)
        (2, 5, 16)
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, weights=None, **kwargs):
        from rnnkit.layers import deserialize, serialize

        if not isinstance(layer, RNN):
            raise TypeError(
                "Bidirectional wraps a recurrent layer such as LSTM(32) or SimpleRNN(8); got "
                f"{layer!r}."
            )
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"Bidirectional: merge_mode must be one of 'concat', 'sum', 'mul', 'ave' or None; "
                f"got {merge_mode!r}."
            )
        super().__init__(**kwargs)
        config = serialize(layer)
        config["config"]["name"] = "forward_" + layer.name.removeprefix("forward_")
        self.forward_layer = deserialize(config)
        if backward_layer is None:
            config = serialize(layer)
            config["config"].update(
                go_backwards=not layer.go_backwards,
                name="backward_" + layer.name.removeprefix("backward_"),
            )
            backward_layer = deserialize(config)
        elif not isinstance(backward_layer, RNN):
            raise TypeError(
                f"Bidirectional: backward_layer must be a recurrent layer; got {backward_layer!r}."
            )
        self.backward_layer = backward_layer
        self._check_pair()
        for direction in (self.forward_layer, self.backward_layer):
            # Keras zeroes the outputs of padded steps on both passes, so they merge cleanly.
            direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.stateful = layer.stateful
        self._initial_weights = weights

    def _check_pair(self):
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(
                "Bidirectional: the backward layer must read in the other direction; both have "
                f"go_backwards={forward.go_backwards}. Create it with go_backwards=True."
            )
        for attr in ("stateful", "return_sequences", "return_state"):
            if getattr(forward, attr) != getattr(backward, attr):
                raise ValueError(
                    f"Bidirectional: forward and backward layers need the same {attr}; got "
                    f"{getattr(forward, attr)} and {getattr(backward, attr)}."
                )

    def check_input_shape(self, shape):
        self.forward_layer.check_input_shape(shape)

    def build(self, input_shape):
        self.forward_layer._maybe_build(input_shape)
        self.backward_layer._maybe_build(input_shape)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, inputs, initial_state=None, mask=None, training=False):
        forward_state = backward_state = None
        if initial_state is not None:
            forward_state, backward_state = self._split_states(initial_state, "initial states")
        if mask is not None:
            mask = _check_mask(self, mask, inputs)
        together, why = self.choose_path(training, mask, batch=inputs.shape[0])
        if why != getattr(self, "_logged_path", None):
            self._logged_path = why
            logger.debug("Bidirectional '%s' runs %s", self.name, why)
        if together:
            return self._both_ways_in_one_call(inputs, forward_state, backward_state)
        y = self.forward_layer(inputs, initial_state=forward_state, mask=mask, training=training)
        y_rev = self.backward_layer(
            inputs, initial_state=backward_state, mask=mask, training=training
        )
        states = []
        if self.return_state:
            states = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)  # back into time order
        return self._output(_merge(self.merge_mode, y, y_rev), states)

    def _output(self, output, states):
        if self.return_state:
            return [*output, *states] if self.merge_mode is None else [output, *states]
        return output

    # -------------------------------------------------------------- paths
    @property
    def kernel_path(self) -> str:
        """Which implementation runs when training, and why (see `RNN.kernel_path`)."""
        return self.choose_path(training=True)[1]

    def choose_path(self, training, mask=None, batch=None) -> tuple[bool, str]:
        """`(True, why)` when both directions run in one call of torch's bidirectional LSTM
        kernel (no flipped copies of the input and output, no concatenation); else
        `(False, why)`, and each direction runs on its own path."""
        forward, backward = self.forward_layer, self.backward_layer
        why_not = _why_not_one_call(forward, backward, training, mask, batch)
        if why_not is None:
            return True, "torch's bidirectional LSTM, both directions in one call"
        paths = [layer.choose_path(training, mask, batch)[1] for layer in (forward, backward)]
        why_not = f" ({why_not})" if why_not else ""
        return False, f"each direction on its own{why_not}: {paths[0]}; {paths[1]}"

    def _both_ways_in_one_call(self, x, forward_state, backward_state):
        forward, backward = self.forward_layer, self.backward_layer
        batch, units = x.shape[0], forward.cell.units
        outputs, (h, c), (h_rev, c_rev) = bidirectional_lstm_sequence(
            x,
            forward._start_states(forward_state, batch, x.device),
            backward._start_states(backward_state, batch, x.device),
            (forward.cell.kernel, forward.cell.recurrent_kernel, forward.cell.bias),
            (backward.cell.kernel, backward.cell.recurrent_kernel, backward.cell.bias),
        )
        if self.return_sequences:
            if self.merge_mode == "concat":
                return self._output(outputs, [h, c, h_rev, c_rev])
            y, y_rev = outputs[..., :units], outputs[..., units:]
        else:
            y, y_rev = h, h_rev
        return self._output(_merge(self.merge_mode, y, y_rev), [h, c, h_rev, c_rev])

    def compute_output_shape(self, input_shape, initial_state=None):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            shape = (*shape[:-1], shape[-1] * 2)
        outputs = [shape, shape] if self.merge_mode is None else [shape]
        if self.return_state:
            return outputs + states + states
        return outputs if self.merge_mode is None else shape

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        outputs = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            states = self.forward_layer.compute_mask(inputs, mask)[1:]  # None, nested as states
            return outputs + states + states
        return outputs if self.merge_mode is None else output_mask

    @property
    def states(self):
        if self.forward_layer.states is None or self.backward_layer.states is None:
            return None
        return [*self.forward_layer.states, *self.backward_layer.states]

    @states.setter
    def states(self, value):
        """Set (or with None, drop) the carried states: forward's, then backward's."""
        if value is None:
            self.forward_layer.states = self.backward_layer.states = None
            return
        self.forward_layer.states, self.backward_layer.states = self._split_states(value, "states")

    def reset_states(self, states=None):
        """Forget (or set) the carried states of both directions: forward's, then backward's."""
        if not self.stateful:
            raise ValueError(f"Bidirectional '{self.name}' is not stateful; nothing to reset.")
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        forward_states, backward_states = self._split_states(states, "states")
        self.forward_layer.reset_states(forward_states)
        self.backward_layer.reset_states(backward_states)

    reset_state = reset_states

    def _split_states(self, states, what) -> tuple[list, list]:
        """`(forward's, backward's)` from one flat list: forward's states, then backward's."""
        states = _tree.flatten(states)  # stacked cells' states may come nested per cell
        n_forward = len(self.forward_layer.state_sizes)
        n_backward = len(self.backward_layer.state_sizes)
        if len(states) != n_forward + n_backward:
            raise ValueError(
                f"Bidirectional '{self.name}' takes {n_forward + n_backward} {what}: the "
                f"forward layer's {n_forward} then the backward layer's {n_backward} (for an "
                f"LSTM, [h_fwd, c_fwd, h_bwd, c_bwd]); got {len(states)}."
            )
        return states[:n_forward], states[n_forward:]

    def get_config(self):
        from rnnkit.layers import serialize

        config = super().get_config()
        config.update(
            merge_mode=self.merge_mode,
            layer=serialize(self.forward_layer),
            backward_layer=serialize(self.backward_layer),
        )
        return config

    @classmethod
    def from_config(cls, config):
        from rnnkit.layers import deserialize

        config = dict(config, layer=deserialize(config["layer"]))
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"])
        return cls(**config)


def _why_not_one_call(forward, backward, training, mask, batch) -> str | None:
    """Why the pair cannot run as one bidirectional call of torch's LSTM kernel ('' when the
    directions' own paths say why), or None when it can."""
    if not (type(forward) is LSTM and type(backward) is LSTM):
        return ""
    for layer in (forward, backward):
        if layer.choose_path(training, mask, batch)[0] != layer._torch_recurrence:
            return ""
        if layer.stateful or layer.activity_regularizer is not None:
            return "stateful or activity_regularizer"
        if training and layer.cell.dropout:
            return "each direction drops its own inputs"
    if forward.go_backwards or forward.cell.units != backward.cell.units:
        return "not a mirrored pair"
    if forward.cell.use_bias != backward.cell.use_bias:
        return "one direction has no bias"
    return None


def _merge(mode, y, y_rev):
    if mode == "concat":
        return torch.cat([y, y_rev], dim=-1)
    if mode == "sum":
        return y + y_rev
    if mode == "mul":
        return y * y_rev
    if mode == "ave":
        return (y + y_rev) / 2
    return [y, y_rev]
