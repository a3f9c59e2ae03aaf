"""The recurrence: a cell computes one time step, `RNN` runs it over the sequence.

A cell is anything with `state_size` (an int, or a list for several states)
and `call(x_t, states) -> (y_t, new_states)`. `RNN` owns everything that is
about time rather than about one step: initial and carried (stateful) states,
masks, `go_backwards`, `return_sequences` and `return_state`.

The loop here is the reference implementation: plain Python over time steps,
one cell call per step. Faster paths must agree with it.
"""

from __future__ import annotations

import inspect
import logging

import torch

from rnnkit import _tree, activations, constraints, initializers, regularizers
from rnnkit._capture import in_graph
from rnnkit.kernels import compiled
from rnnkit.kernels.simple_rnn import ACTIVATIONS
from rnnkit.layers import _direct
from rnnkit.layers._base import Layer, shape_str, snake_case, to_tensor


class RNNCell(Layer):
    """Base for cells: dropout rates and the per-sequence dropout masks.

    Keras drops the *same* input and state units at every time step of a
    sequence (variational dropout), so the masks are drawn once per call of the
    layer (`start_sequence`) and reused by every step (`drop`).
    """

    def __init__(self, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(
                    f"{type(self).__name__}: {arg} is the fraction of units to drop and must "
                    f"be in [0, 1]; got {rate}."
                )
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self._generator = None
        self.input_mask = None  # dropout mask on x_t, (batch, features)
        self.state_mask = None  # dropout mask on h_{t-1}, (batch, units)

    def get_initial_state(self, batch_size: int, device=None) -> list[torch.Tensor]:
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [torch.zeros(batch_size, n, dtype=self.dtype, device=device) for n in sizes]

    def start_sequence(self, x_0: torch.Tensor, states: list, training: bool) -> None:
        """Draw this sequence's dropout masks (only when training), shaped like `x_0`
        and the first state."""
        if not training and self.input_mask is None and self.state_mask is None:
            return  # nothing to draw or clear (the common inference case, kept cheap)
        self.input_mask = self._dropout_mask(x_0, self.dropout) if training else None
        self.state_mask = (
            self._dropout_mask(states[0], self.recurrent_dropout) if training else None
        )

    def end_sequence(self) -> None:
        if self.input_mask is not None or self.state_mask is not None:
            self.input_mask = self.state_mask = None

    def drop(self, x_t, h_prev):
        """`x_t` and `h_{t-1}` with this sequence's dropout masks applied (if training)."""
        if self.input_mask is not None:
            x_t = x_t * self.input_mask
        if self.state_mask is not None:
            h_prev = h_prev * self.state_mask
        return x_t, h_prev

    def drop_inputs(self, x):
        """The whole sequence `x`, `(B, T, D)`, with this sequence's input dropout mask applied
        (the same dropped inputs at every step), as the fused and torch kernels take it."""
        return x if self.input_mask is None else x * self.input_mask.unsqueeze(1)

    def _dropout_mask(self, like: torch.Tensor, rate: float):
        if rate == 0.0:
            return None
        if rate == 1.0:
            return torch.zeros_like(like)
        if self.seed is not None and self._generator is None:
            self._generator = torch.Generator(device=like.device).manual_seed(int(self.seed))
        keep = torch.rand(like.shape, generator=self._generator, device=like.device) >= rate
        return keep.to(like.dtype) / (1.0 - rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            dropout=self.dropout, recurrent_dropout=self.recurrent_dropout, seed=self.seed
        )
        return config


class DenseRNNCell(RNNCell):
    """Base for the fully connected cells (SimpleRNN, LSTM, GRU).

    Each has an input kernel `W` `(input_dim, gates * units)`, a recurrent
    kernel `U` `(units, gates * units)` and a bias `b`, the gates' blocks side
    by side in Keras' order. Subclasses set `gates` and write `call`.

    Args:
        units: size of the hidden state `h_t`.
        activation: `'tanh'` (default), another name, or a callable; `None` for none.
        use_bias: whether to add `b`.
        kernel_initializer, recurrent_initializer, bias_initializer: how `W`,
            `U` and `b` start (`'glorot_uniform'`, `'orthogonal'`, `'zeros'`).
        kernel_regularizer, recurrent_regularizer, bias_regularizer: penalties.
        kernel_constraint, recurrent_constraint, bias_constraint: projections.
        dropout: fraction of the input units dropped while training.
        recurrent_dropout: fraction of the state units dropped while training.
        seed: seed for the dropout masks.
    """

    gates = 1
    activation = activations.Attribute()
    # Keep W and U transposed in memory (see `Layer.add_weight`), for a cell whose fused
    # kernel reads them so.
    transposed_weights = False

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.units = check_units(type(self).__name__, units)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.state_size = self.units
        self.output_size = self.units

    def bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def bias_init(self):
        return self.bias_initializer

    def build(self, input_shape):
        width = self.gates * self.units
        self.kernel = self.add_weight(
            "kernel",
            (input_shape[-1], width),
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
            transposed=self.transposed_weights,
        )
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel",
            (self.units, width),
            self.recurrent_initializer,
            self.recurrent_regularizer,
            self.recurrent_constraint,
            transposed=self.transposed_weights,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias",
                self.bias_shape(),
                self.bias_init(),
                self.bias_regularizer,
                self.bias_constraint,
            )
        else:
            self.bias = None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            recurrent_initializer=initializers.serialize(self.recurrent_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            recurrent_regularizer=regularizers.serialize(self.recurrent_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            kernel_constraint=constraints.serialize(self.kernel_constraint),
            recurrent_constraint=constraints.serialize(self.recurrent_constraint),
            bias_constraint=constraints.serialize(self.bias_constraint),
        )
        return config


logger = logging.getLogger("rnnkit")


def _state_sizes(cell) -> list[int]:
    """A cell's state sizes, flat: `[units]`, `[units, units]` (LSTM), or, for stacked cells,
    every cell's in turn."""
    return _tree.flatten(cell.state_size)


class StackedRNNCells(Layer):
    """Several cells run as one: at each step, each cell's output is the next cell's input.

    `RNN(StackedRNNCells([LSTMCell(8), LSTMCell(4)]))` is a two-layer LSTM in one loop.
    Its `state_size` is per cell, as in Keras (`[[8, 8], 4]`); the loop keeps the states flat,
    one cell's after another (`[h1, c1, h2]`), and `return_state` gives them per cell.

    Example:
        >>> import numpy as np
        >>> from rnnkit.layers import LSTMCell, SimpleRNNCell
        >>> layer = RNN(StackedRNNCells([SimpleRNNCell(8), LSTMCell(4)]))
        >>> tuple(layer(np.random.rand(2, 5, 3)).shape)
        (2, 4)
    """

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        if not cells:
            raise ValueError("StackedRNNCells needs a non-empty list of cells.")
        self.cells = torch.nn.ModuleList(cells)
        self.state_size = [cell.state_size for cell in cells]  # per cell, as in Keras
        last = cells[-1]
        self.output_size = getattr(last, "output_size", _state_sizes(last)[0])

    def build(self, input_shape):
        batch, width = input_shape[0], input_shape[-1]
        for cell in self.cells:
            if isinstance(cell, Layer):
                cell._maybe_build((batch, width))
            width = getattr(cell, "output_size", _state_sizes(cell)[0])

    def _split(self, states):
        out, start = [], 0
        for cell in self.cells:
            count = len(_state_sizes(cell))
            out.append(list(states[start : start + count]))
            start += count
        return out

    def get_initial_state(self, batch_size, device=None):
        states = []
        for cell in self.cells:
            if hasattr(cell, "get_initial_state"):
                states.extend(cell.get_initial_state(batch_size, device=device))
            else:
                dtype = getattr(cell, "dtype", self.dtype)
                states.extend(
                    torch.zeros(batch_size, n, dtype=dtype, device=device)
                    for n in _state_sizes(cell)
                )
        return states

    def start_sequence(self, x_0, states, training):
        for cell, cell_states in zip(self.cells, self._split(states)):
            if hasattr(cell, "start_sequence"):
                cell.start_sequence(x_0, cell_states, training)
            width = getattr(cell, "output_size", _state_sizes(cell)[0])
            x_0 = x_0.new_zeros(x_0.shape[0], width)

    def end_sequence(self):
        for cell in self.cells:
            if hasattr(cell, "end_sequence"):
                cell.end_sequence()

    def call(self, x_t, states, training=False):
        new_states = []
        for cell, cell_states in zip(self.cells, self._split(states)):
            x_t, cell_states = cell.call(x_t, cell_states, **_training_kwarg(cell, training))
            new_states.extend(
                cell_states if isinstance(cell_states, (list, tuple)) else [cell_states]
            )
        return x_t, new_states

    def get_config(self):
        from rnnkit.layers import serialize

        return {**super().get_config(), "cells": [serialize(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config):
        from rnnkit.layers import deserialize

        return cls(**dict(config, cells=[deserialize(c) for c in config["cells"]]))


def _training_kwarg(cell, training) -> dict:
    """`{"training": training}` if the cell's `call` takes it; a custom cell's
    `call(x_t, states)` need not."""
    params = inspect.signature(cell.call).parameters
    takes = "training" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    return {"training": training} if takes else {}


def cell_kwargs(cell_class, kwargs: dict) -> dict:
    """Take `cell_class`'s constructor arguments out of a layer's `kwargs`.

    `SimpleRNN(3, activation="relu", dropout=0.2)` passes `activation` and
    `dropout` on to its cell, so the layer need not repeat the cell's arguments.
    The cell shares the layer's `dtype` and `trainable`.
    """
    names = set()
    for klass in cell_class.__mro__:
        if klass is Layer:
            break
        if "__init__" in klass.__dict__:
            names |= set(inspect.signature(klass.__init__).parameters)
    names -= {"self", "units", "kwargs"}
    taken = {key: kwargs.pop(key) for key in list(kwargs) if key in names}
    taken.update(dtype=kwargs.get("dtype"), trainable=kwargs.get("trainable", True))
    return taken


def check_units(owner: str, units) -> int:
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(
            f"{owner}: units is the size of the hidden state and must be a positive integer; "
            f"got {units!r}."
        )
    return units


class RNN(Layer):
    """Runs a cell over the time axis of `(batch, timesteps, features)` inputs.

    Args:
        cell: the step; an `RNNCell` or any layer with `state_size` and
            `call(x_t, states, training=False) -> (y_t, new_states)`.
        return_sequences: return every step's output `(batch, timesteps, units)`
            instead of the last one `(batch, units)`.
        return_state: also return the final state(s): `[output, *states]`.
        go_backwards: read the sequence from the last step to the first (the
            returned sequence is in that reversed order, as in Keras).
        stateful: start each call from the previous call's final state; the
            batch size must stay the same; `reset_states()` goes back to zeros.
        unroll: accepted for Keras compatibility; the computation is the same.
        zero_output_for_mask: at masked steps output zeros instead of repeating
            the last unmasked output.

    Call arguments:
        inputs: `(batch, timesteps, features)`.
        initial_state: a tensor or list of tensors `(batch, state_size)`.
        mask: `(batch, timesteps)` booleans; `False` steps leave the state
            unchanged (e.g. padding after `Embedding(mask_zero=True)`).
        training: whether dropout is active.
    """

    supports_masking = True

    def __init__(
        self,
        cell,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(cell, (list, tuple)):  # RNN([cell_1, cell_2]) stacks them, as in Keras
            cell = StackedRNNCells(cell)
        if not hasattr(cell, "state_size") or not hasattr(cell, "call"):
            raise TypeError(
                f"RNN needs a cell with a state_size attribute and a call(x_t, states) method; "
                f"got {cell!r}."
            )
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states = None  # carried state of a stateful layer
        self.state_sizes = _state_sizes(cell)

    def _shape_from_input_dim(self, input_dim, input_length):
        return (input_length, input_dim)

    @property
    def units(self) -> int:
        return getattr(self.cell, "output_size", self.state_sizes[0])

    # ------------------------------------------------------------- shapes
    def check_input_shape(self, shape) -> None:
        kind = f"{type(self).__name__} '{self.name}'"
        if not isinstance(shape, tuple):
            raise TypeError(f"{kind} takes one tensor (batch, timesteps, features); got {shape}.")
        features = self._built_features()
        want = f"(batch, timesteps, features{'=' + str(features) if features else ''})"
        if len(shape) != 3:
            hint = ""
            if len(shape) == 2:
                hint = self._time_axis_hint(*shape)
            elif len(shape) == 4:
                hint = " Merge the extra axis into features, e.g. x.reshape(batch, timesteps, -1)."
            raise ValueError(f"{kind} expects input {want}; got shape {shape_str(shape)}.{hint}")
        if shape[1] == 0:
            raise ValueError(
                f"{kind} got a sequence with 0 time steps {shape_str(shape)}; each "
                "sequence needs at least one step."
            )
        if features is not None and shape[-1] is not None and shape[-1] != features:
            raise ValueError(
                f"{kind} expects input {want}; got shape {shape_str(shape)}. The layer was "
                f"built for {features} features per step; give it inputs with {features} "
                "features, or make a new layer for the new size."
            )

    def _time_axis_hint(self, b, d) -> str:
        """How to give 2-D data `(b, d)` the time axis this layer needs: windows of the length
        its model feeds it, when it is in one with a fixed number of steps."""
        graph_input = self.inbound_nodes[-1].args[0] if self.inbound_nodes else None
        steps = getattr(graph_input, "shape", (None, None))[1]
        if steps is None or d != self._built_features():
            return (
                f" Missing the time axis? Try x.reshape({b}, 1, {d}) for one step, or "
                f"x.reshape({b}, {d}, 1) for {d} steps of one feature."
            )
        rows = f"{b} rows make {b // steps} samples" if b % steps == 0 else "a multiple of it"
        return (
            f" Missing the time axis: each sample is {steps} steps of {d} features. For "
            f"back-to-back windows of {steps} rows, x.reshape(-1, {steps}, {d}) ({rows}); for "
            "sliding windows, rnnkit.data.timeseries_dataset_from_array(x, targets, "
            f"sequence_length={steps})."
        )

    def _built_features(self):
        if not self.built or self._build_input_shape is None:
            return None
        return self._build_input_shape[-1]

    def build(self, input_shape):
        if isinstance(self.cell, Layer):
            self.cell._maybe_build((input_shape[0], *input_shape[2:]))

    def compute_output_shape(self, input_shape, initial_state=None):
        batch, steps = input_shape[0], input_shape[1]
        output = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [output, *self.nest_states([(batch, n) for n in self.state_sizes])]
        return output

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask, *self.nest_states([None] * len(self.state_sizes))]
        return output_mask

    def nest_states(self, states: list) -> list:
        """The final states as `return_state` gives them: one entry per state, or, for stacked
        cells, one per cell (`[[h1, c1], h2]` for an LSTM cell then a GRU cell), as in Keras."""
        if not isinstance(self.cell, StackedRNNCells):
            return list(states)
        return [
            group if isinstance(cell.state_size, (list, tuple)) else group[0]
            for cell, group in zip(self.cell.cells, self.cell._split(states))
        ]

    # -------------------------------------------------------------- state
    def get_initial_state(self, batch_size, device=None):
        if hasattr(self.cell, "get_initial_state"):
            return list(self.cell.get_initial_state(batch_size, device=device))
        dtype = getattr(self.cell, "dtype", self.dtype)  # a plain-class cell has no dtype
        return [torch.zeros(batch_size, n, dtype=dtype, device=device) for n in self.state_sizes]

    def reset_states(self, states=None) -> None:
        """Forget the carried state of a stateful layer (or set it to `states`)."""
        if not self.stateful:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' is not stateful, so it carries no state "
                "between calls. Create it with stateful=True to keep states."
            )
        if states is None:
            self.states = None
            return
        batch = self.states[0].shape[0] if self.states is not None else None
        self.states = [s.detach() for s in self._check_states(states, batch)]

    reset_state = reset_states

    def _check_states(self, states, batch) -> list[torch.Tensor]:
        states = _tree.flatten(states)  # stacked cells' states may come nested per cell
        if len(states) != len(self.state_sizes):
            names = getattr(self.cell, "state_names", None)  # LSTM: ("h", "c")
            fix = f"initial_state=[{', '.join(names)}]" if names else "a list"
            raise ValueError(
                f"{type(self).__name__} '{self.name}' has {len(self.state_sizes)} state(s) of "
                f"size(s) {self.state_sizes}; initial_state has {len(states)} tensor(s). Pass "
                f"{fix} with one (batch, size) tensor per state."
            )
        out = []
        for i, (state, size) in enumerate(zip(states, self.state_sizes)):
            state = to_tensor(state, self.dtype, self._device())
            if not state.is_floating_point():  # integer or bool states, cast as inputs are
                state = state.to(self.dtype)
            want = (batch if batch is not None else state.shape[0], size)
            if state.dim() != 2 or tuple(state.shape) != want:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': state {i} must have shape "
                    f"(batch={want[0]}, units={size}); got {shape_str(tuple(state.shape))}. "
                    "Give one row per sequence in the batch."
                )
            out.append(state)
        return out

    def _device(self):
        return next((p.device for p in self.parameters()), None)

    def _on_gpu(self) -> bool:
        """Whether the weights are on a GPU (False before they exist: they start on the CPU)."""
        device = self._device()
        return device is not None and device.type != "cpu"

    def _start_states(self, initial_state, batch, device) -> list[torch.Tensor]:
        if initial_state is not None:
            return self._check_states(initial_state, batch)
        if self.stateful and self.states is not None:
            if self.states[0].shape[0] != batch:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}' is stateful and carries states for a "
                    f"batch of {self.states[0].shape[0]} sequences; got a batch of {batch}. "
                    "Keep the batch size fixed (e.g. batch_size= in fit/predict, or "
                    "Input(batch_size=...)), or call reset_states() before changing it."
                )
            # Carried states stay where they were made (the layer may have moved since).
            return [s.to(device) for s in self.states]
        return self.get_initial_state(batch, device=device)

    # --------------------------------------------------------------- loop
    def call(self, inputs, initial_state=None, mask=None, training=False):
        x = inputs  # (B, T, D)
        states = self._start_states(initial_state, x.shape[0], x.device)
        if mask is not None:
            mask = _check_mask(self, mask, x)
        if self.go_backwards:
            x = x.flip(1)
            mask = mask.flip(1) if mask is not None else None
        cell = self.cell
        starts = hasattr(cell, "start_sequence")
        if starts:
            cell.start_sequence(x[:, 0], states, training)
        fused, why = self.choose_path(training, mask, batch=x.shape[0])
        self._log_path(why)
        recur = fused or self._reference_loop
        sequence, y, states = recur(x, states, mask, training)
        if starts:
            cell.end_sequence()
        if self.stateful:
            self.states = [s.detach() for s in states]
        output = sequence if self.return_sequences else y
        if self.return_state:
            return [output, *self.nest_states(states)]
        return output

    def _reference_loop(self, x, states, mask, training):
        """The source of truth: one cell call per step. Returns (sequence, last output, states)."""
        cell = self.cell
        step_kwargs = _training_kwarg(cell, training)
        outputs = []
        y = None
        for t in range(x.shape[1]):
            y_t, new_states = cell.call(x[:, t], states, **step_kwargs)
            if not isinstance(new_states, (list, tuple)):
                new_states = [new_states]
            if mask is not None:
                keep = mask[:, t, None]  # (B, 1)
                fill = torch.zeros_like(y_t) if self.zero_output_for_mask or y is None else y
                y_t = torch.where(keep, y_t, fill)
                new_states = [torch.where(keep, new, old) for new, old in zip(new_states, states)]
            y, states = y_t, list(new_states)
            if self.return_sequences:
                outputs.append(y)
        sequence = torch.stack(outputs, dim=1) if self.return_sequences else None  # (B, T, units)
        return sequence, y, states

    # -------------------------------------------------------------- paths
    use_fused = True  # set False on a layer (or the class) to force the reference loop
    # On CPU, batch * units below which the loop beats starting torch's LSTM/GRU kernels.
    loop_below_work = 256

    def choose_path(self, training: bool, mask=None, batch=None):
        """`(fused recurrence or None, why)`: the implementation a call with this `training`
        flag and `mask` uses."""
        if not self.use_fused:
            return None, "reference loop (use_fused=False)"
        return None, f"reference loop (no fused kernel for {type(self.cell).__name__})"

    @property
    def kernel_path(self) -> str:
        """Which implementation runs when training, and why, e.g. 'fused ...' or 'reference loop
        (recurrent_dropout needs per-step masks)'."""
        return self.choose_path(training=True)[1]

    def _log_path(self, why: str) -> None:
        if why != getattr(self, "_logged_path", None):
            self._logged_path = why
            logger.debug("%s '%s' runs the %s", type(self).__name__, self.name, why)

    # ------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask,
        )
        if type(self) is RNN:
            from rnnkit.layers import serialize

            config["cell"] = serialize(self.cell)
        return config

    @classmethod
    def from_config(cls, config):
        if cls is RNN:
            from rnnkit.layers import deserialize

            config = dict(config, cell=deserialize(config["cell"]))
        return cls(**config)


def loop_only_reason(layer, cell_class, training, activation_args=("activation",)):
    """Why this call must run the reference loop (None if a fused path can run): the layer's
    `use_fused` is off, its cell is a custom one, an activation has no fused derivative, or
    recurrent dropout is on while training."""
    cell = layer.cell
    if not layer.use_fused:
        return "use_fused=False"
    if type(cell) is not cell_class:
        return f"custom cell {type(cell).__name__}"
    for arg in activation_args:
        name = activations.serialize(getattr(cell, arg))
        if name not in ACTIVATIONS:
            return f"{arg} {name!r} has no fused derivative; fused: {', '.join(ACTIVATIONS)}"
    if training and cell.recurrent_dropout:
        return "recurrent_dropout needs the state masked inside the loop"
    return None


def time_loop(layer) -> tuple[bool, str]:
    """`(compiled, words)`: whether the fused recurrence's time loop runs compiled for this
    layer's weights (CPU, float32 or float64, the loops built), and how `kernel_path` says it."""
    weight = getattr(layer.cell, "kernel", None)  # None before the layer is built: CPU then
    why = compiled.missing(weight)
    if why is None:
        return True, f"compiled time loop ({compiled.BUILD})"
    return False, f"time loop in Python: {why}"


def torch_kernel_blocker(layer, mask, batch=None) -> str | None:
    """Why torch's fused RNN/LSTM/GRU cannot run this call (None if it can), asked once
    `loop_only_reason` has found a fused path possible."""
    cell = layer.cell
    kinds = cell.torch_activations  # e.g. (("tanh", "sigmoid"),)
    args = ("activation", "recurrent_activation")[: len(kinds[0])]
    names = tuple(activations.serialize(getattr(cell, arg)) for arg in args)
    if names not in kinds:
        got = ", ".join(f"{arg}={name!r}" for arg, name in zip(args, names))
        has = " or ".join(" and ".join(kind) for kind in kinds)
        return f"{got}: torch's kernel has {has}"
    if mask is not None and (in_graph() or not bool(mask.all())):
        return "masked steps: torch's kernel has no per-step mask"
    tiny = layer.loop_below_work
    if not layer._on_gpu() and batch is not None and batch * cell.units < tiny:
        # Measured on a 2-core CPU: below this, starting torch's kernel costs more than the
        # whole Python loop (e.g. 6.8 ms against 0.7 ms for batch 16, 4 units).
        return (
            f"tiny on CPU: batch x units = {batch * cell.units} < {tiny}, where "
            "this loop beats starting torch's kernel"
        )
    return None


def masked_outputs(layer, states, mask):
    """The outputs of a masked sequence from its states `(B, T, H)`, as the reference loop
    gives them: a masked step repeats the last output (zeros before the first real step), or
    is zeros with `zero_output_for_mask`; the state is held either way."""
    if mask is None:
        return states
    shown = mask if layer.zero_output_for_mask else mask.cummax(dim=1).values
    return torch.where(shown.unsqueeze(-1), states, torch.zeros_like(states))


def outputs_of_fused(layer, states, last, mask):
    """`(sequence, last output, [last state])` of a fused recurrence from its states
    `(B, T, H)` and its separate last state `(B, H)`, as the reference loop gives them.

    The last output comes from `last`, not from the sequence, so a layer that returns only it
    never reads (nor sends a gradient through) the states of every step.
    """
    sequence = masked_outputs(layer, states, mask) if layer.return_sequences else None
    y = last
    if mask is not None:  # as masked_outputs gives it at the last step
        shown = mask[:, -1] if layer.zero_output_for_mask else mask.any(dim=1)
        y = torch.where(shown.unsqueeze(-1), last, torch.zeros_like(last))
    return sequence, y, [last]


def _check_mask(layer, mask, x) -> torch.Tensor:
    mask = to_tensor(mask, device=x.device)
    if mask.dim() == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': the mask must be (batch, timesteps) = "
            f"{shape_str(tuple(x.shape[:2]))}, one flag per step; got "
            f"{shape_str(tuple(mask.shape))}."
        )
    return mask.bool()


class CellLayer(RNN):
    """Base for SimpleRNN, LSTM and GRU: a loop over a cell the layer makes itself.

    The layer's own arguments are the loop's; every other keyword goes to the cell
    (`cell_kwargs`), so `LSTM(8, dropout=0.2)` needs no copy of LSTMCell's signature.
    """

    cell_class: type

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        kwargs.pop("use_cudnn", None)  # Keras' backend switches; rnnkit picks its own kernels
        kwargs.pop("implementation", None)
        cell_class = self.cell_class
        cell = cell_class(
            units, name=snake_case(cell_class.__name__), **cell_kwargs(cell_class, kwargs)
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            **kwargs,
        )

    # ------------------------------------------------------- fit's direct step
    def direct_blocker(self, training):
        why = _direct.common_blocker(self, RNN)
        if why:
            return why
        name = f"{type(self).__name__} '{self.name}'"
        for flag in ("stateful", "return_state", "go_backwards"):
            if getattr(self, flag):
                return f"{name} has {flag}=True"
        cell = self.cell
        if training and (getattr(cell, "dropout", 0) or getattr(cell, "recurrent_dropout", 0)):
            return f"{name} has dropout (its masks are drawn in the layer's loop)"
        fused, path = self.choose_path(training)
        if getattr(fused, "__func__", None) is not type(self)._fused_recurrence:
            return f"{name} runs the {path}"
        return None

    def direct_call(self, inputs, training, needs_input_grad):
        h0 = self.get_initial_state(inputs.shape[0], device=inputs.device)
        return self._direct_recurrence(inputs, h0, needs_input_grad)

    def _direct_recurrence(self, x, states, needs_input_grad):
        """The fused recurrence's forward pass run by hand (`rnnkit.kernels.by_hand`) from
        `states`: `(output, backward)` as `direct_call` returns them."""
        raise NotImplementedError

    def stacked_blocker(self):
        return None  # the members' kernels (`rnnkit.kernels.members`) run every cell

    @staticmethod
    def stacked_call(layers, inputs, needs_input_grad):
        """Each member's recurrence over its rows, in one call of the members' kernels."""
        first = layers[0]
        h0 = first.get_initial_state(inputs.shape[0], device=inputs.device)
        return type(first)._stacked_recurrence(layers, inputs, h0, needs_input_grad)

    @staticmethod
    def _stacked_recurrence(layers, x, states, needs_input_grad):
        """`_direct_recurrence` for the members at once, from the zero `states` of all rows."""
        raise NotImplementedError

    def get_config(self):
        """The cell's arguments sit beside the loop's, as in Keras' configs."""
        config = super().get_config()
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype", "batch_input_shape", "activity_regularizer"):
            cell_config.pop(key, None)
        config.update(cell_config)
        return config
