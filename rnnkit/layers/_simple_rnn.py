"""SimpleRNN: the recurrence of the notes, `h_t = tanh(x_t W + h_{t-1} U + b)`."""

from __future__ import annotations

from rnnkit import activations
from rnnkit.kernels import by_hand
from rnnkit.kernels.members import MembersSimpleRNN
from rnnkit.kernels.simple_rnn import SimpleRNNRecurrence, simple_rnn_states
from rnnkit.kernels.torch_rnn import rnn_sequence
from rnnkit.layers import _direct
from rnnkit.layers._rnn import (
    CellLayer,
    DenseRNNCell,
    loop_only_reason,
    outputs_of_fused,
    time_loop,
    torch_kernel_blocker,
)


class SimpleRNNCell(DenseRNNCell):
    """One step of a fully connected RNN:

        h_t = activation(x_t W + h_{t-1} U + b)

    with `W = kernel` `(input_dim, units)`, `U = recurrent_kernel` `(units, units)`
    and `b = bias` `(units,)`; the output is `h_t` itself. Arguments are those of
    `DenseRNNCell` (units, activation, initializers, regularizers, constraints,
    dropout, recurrent_dropout, seed).

    Shapes: `x_t` is `(batch, input_dim)`, `h_{t-1}` and `h_t` are `(batch, units)`.

    Example:
        >>> import torch
        >>> cell = SimpleRNNCell(3)
        >>> h, [state] = cell(torch.ones(2, 5), [torch.zeros(2, 3)])
        >>> tuple(h.shape)
        (2, 3)
    """

    gates = 1
    # The activations torch's own kernel computes (its fast path on a GPU: cuDNN).
    torch_activations = (("tanh",), ("relu",))

    def call(self, x_t, states, training=False):
        x_t, h_prev = self.drop(x_t, states[0])
        z = x_t @ self.kernel + h_prev @ self.recurrent_kernel
        if self.bias is not None:
            z = z + self.bias
        h = self.activation(z)
        return h, [h]


class SimpleRNN(CellLayer):
    """A fully connected RNN layer: `SimpleRNNCell` run over time.

    Each step computes `h_t = activation(x_t W + h_{t-1} U + b)` and the layer
    returns the last `h_T` (or all of them with `return_sequences=True`).

    Args:
        units: size of the hidden state.
        return_sequences, return_state, go_backwards, stateful, unroll: how the
            loop runs (see `RNN`).
        **kwargs: the cell's arguments (see `SimpleRNNCell`: `activation`,
            `use_bias`, initializers, regularizers, constraints, `dropout`,
            `recurrent_dropout`, `seed`) and the layer's (`name`,
            `activity_regularizer`, `input_shape`, ...), as in Keras.

    The cell is `layer.cell`. Weights (`get_weights()` order): kernel
    `(input_dim, units)`, recurrent_kernel `(units, units)`, bias `(units,)`.

    Example:
        >>> import numpy as np
        >>> rnn = SimpleRNN(4, activation="relu", return_sequences=True)
        >>> tuple(rnn(np.random.rand(32, 10, 8)).shape)
        (32, 10, 4)
    """

    cell_class = SimpleRNNCell

    def choose_path(self, training, mask=None, batch=None):
        why = loop_only_reason(self, SimpleRNNCell, training)
        if why:
            return None, f"reference loop ({why})"
        in_c, loop = time_loop(self)
        if self._on_gpu():
            blocker = torch_kernel_blocker(self, mask, batch)
            if not blocker:
                # One cuDNN call, where the fused loop would launch its kernels at every step.
                name = activations.serialize(self.cell.activation)
                return self._torch_recurrence, f"torch's fused RNN (torch.rnn_{name}: cuDNN)"
            loop = f"{blocker}; {loop}"
        return self._fused_recurrence, f"fused SimpleRNN recurrence (hand-written backward; {loop})"

    def _torch_recurrence(self, x, states, mask, training):
        cell = self.cell
        x = cell.drop_inputs(x)
        activation = activations.serialize(cell.activation)
        outputs, h = rnn_sequence(
            x, states[0], cell.kernel, cell.recurrent_kernel, cell.bias, activation
        )
        return outputs, h, [h]

    def _fused_recurrence(self, x, states, mask, training):
        """Same results as the reference loop: `x W + b` and the recurrence in one fused node."""
        cell = self.cell
        activation = activations.serialize(cell.activation)
        x = cell.drop_inputs(x)
        h, last = simple_rnn_states(
            x, states[0], cell.kernel, cell.recurrent_kernel, cell.bias, mask, activation
        )  # (B, T, H), (B, H)
        return outputs_of_fused(self, h, last, mask)

    def _direct_recurrence(self, x, states, needs_input_grad):
        cell = self.cell
        w, u, b = cell.kernel, cell.recurrent_kernel, cell.bias
        needs = (needs_input_grad, w.requires_grad, b is not None and b.requires_grad, False)
        args = (x, w, b, states[0], u, None, activations.serialize(cell.activation))
        run = by_hand.run(SimpleRNNRecurrence, (*needs, u.requires_grad, False, False), *args)

        def assign(grads):  # (dx, dW, db, dh0, dU, ...)
            for param, grad in ((w, grads[1]), (b, grads[2]), (u, grads[4])):
                _direct.add_gradient(param, grad)

        return _direct.recurrence_output(run, self.return_sequences, assign)

    @staticmethod
    def _stacked_recurrence(layers, x, states, needs_input_grad):
        cells = [layer.cell for layer in layers]
        ws, us = [c.kernel for c in cells], [c.recurrent_kernel for c in cells]
        bs = [c.bias for c in cells] if cells[0].bias is not None else None
        b = _direct.stack(bs) if bs is not None else None
        trains_b = bs is not None and _direct.trains(bs)
        needs = (needs_input_grad, _direct.trains(ws), trains_b, False, _direct.trains(us))
        args = (x, _direct.stack(ws), b, states[0], _direct.stack(us), None)
        run = by_hand.run(
            MembersSimpleRNN,
            (*needs, False, False),
            *args,
            activations.serialize(cells[0].activation),
        )

        def assign(grads):  # (dx, dW, db, dh0, dU, ...), stacked by member
            for params, grad in ((ws, grads[1]), (bs, grads[2]), (us, grads[4])):
                if params is not None:
                    _direct.give(params, grad)

        return _direct.recurrence_output(run, layers[0].return_sequences, assign)
