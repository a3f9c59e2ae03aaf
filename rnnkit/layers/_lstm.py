"""LSTM: a cell state `c_t` that gates let through, so memories last longer than in a SimpleRNN."""

from __future__ import annotations

import torch

from rnnkit import activations
from rnnkit.kernels import by_hand, compiled
from rnnkit.kernels.lstm import LSTMRecurrence, lstm_states
from rnnkit.kernels.members import MembersLSTM
from rnnkit.kernels.torch_rnn import lstm_sequence
from rnnkit.layers import _direct
from rnnkit.layers._rnn import (
    CellLayer,
    DenseRNNCell,
    loop_only_reason,
    masked_outputs,
    time_loop,
    torch_kernel_blocker,
)


class LSTMCell(DenseRNNCell):
    """One step of a Long Short-Term Memory network:

        i = σ(x_t W_i + h_{t-1} U_i + b_i)        input gate
        f = σ(x_t W_f + h_{t-1} U_f + b_f)        forget gate
        g = tanh(x_t W_c + h_{t-1} U_c + b_c)     candidate
        o = σ(x_t W_o + h_{t-1} U_o + b_o)        output gate
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    `σ` is `recurrent_activation` (sigmoid), `tanh` is `activation`. The gate
    blocks sit side by side in Keras' order i, f, c, o: kernel `(input_dim, 4*units)`,
    recurrent_kernel `(units, 4*units)`, bias `(4*units,)`. States are `[h, c]`.

    Args:
        units, activation, use_bias, initializers, regularizers, constraints,
        dropout, recurrent_dropout, seed: as for `DenseRNNCell`.
        recurrent_activation: the gates' squashing function (`'sigmoid'`).
        unit_forget_bias: start the forget gate's bias at 1 (remember by default).

    Example:
        >>> import torch
        >>> cell = LSTMCell(3)
        >>> h, (h_state, c_state) = cell(torch.ones(2, 5), [torch.zeros(2, 3)] * 2)
        >>> tuple(c_state.shape)
        (2, 3)
    """

    gates = 4
    recurrent_activation = activations.Attribute()
    # The activations torch's own kernel computes (its fast path on a GPU: cuDNN).
    torch_activations = (("tanh", "sigmoid"),)
    state_names = ("h", "c")  # the order of `states`, named in error messages

    @property
    def transposed_weights(self) -> bool:
        """torch's LSTM kernel reads W and U as (4*units, in): stored so, they pass as they are.
        Where the compiled loops are built (they run on CPU instead), U stays (in, 4*units),
        as they read it."""
        return compiled.LIBRARY is None

    def __init__(self, units, recurrent_activation="sigmoid", unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.recurrent_activation = recurrent_activation
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, units = self.bias_initializer, self.units

        def forget_gate_starts_at_one(shape, dtype=torch.float32):
            return torch.cat(
                [
                    base((units,), dtype=dtype),
                    torch.ones(units, dtype=dtype),
                    base((2 * units,), dtype=dtype),
                ]
            )

        return forget_gate_starts_at_one

    def call(self, x_t, states, training=False):
        h_prev, c_prev = states
        x_t, h_in = self.drop(x_t, h_prev)
        z = x_t @ self.kernel + h_in @ self.recurrent_kernel
        if self.bias is not None:
            z = z + self.bias
        i, f, g, o = z.chunk(4, dim=-1)
        sigma, tanh = self.recurrent_activation, self.activation
        c = sigma(f) * c_prev + sigma(i) * tanh(g)
        h = sigma(o) * tanh(c)
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config.update(
            recurrent_activation=activations.serialize(self.recurrent_activation),
            unit_forget_bias=self.unit_forget_bias,
        )
        return config


class LSTM(CellLayer):
    """Long Short-Term Memory layer: `LSTMCell` run over time (Keras' `LSTM`).

    Args:
        units: size of the hidden and cell states.
        return_sequences, return_state, go_backwards, stateful, unroll: how the
            loop runs (see `RNN`); `return_state=True` returns `[output, h, c]`.
        **kwargs: the cell's arguments (see `LSTMCell`) and the layer's.

    Weights (`get_weights()` order): kernel `(input_dim, 4*units)`,
    recurrent_kernel `(units, 4*units)`, bias `(4*units,)`, gates in order i, f, c, o.

    Example:
        >>> import numpy as np
        >>> tuple(LSTM(8)(np.random.rand(4, 10, 3)).shape)
        (4, 8)
    """

    cell_class = LSTMCell

    def choose_path(self, training, mask=None, batch=None):
        why = loop_only_reason(self, LSTMCell, training, ("activation", "recurrent_activation"))
        if why:
            return None, f"reference loop ({why})"
        in_c, loop = time_loop(self)
        if in_c:
            # Measured on a 2-core CPU: the compiled loop trains and predicts faster than
            # torch's C++ LSTM (oneDNN) at the benchmark sizes, batch 1 included.
            return self._fused_recurrence, f"fused LSTM recurrence (hand-written backward; {loop})"
        blocker = torch_kernel_blocker(self, mask, batch)
        if not blocker:
            return self._torch_recurrence, "torch's fused LSTM (oneDNN on CPU, cuDNN on GPU)"
        why = f"{blocker}; {loop}"
        return self._fused_recurrence, f"fused LSTM recurrence (hand-written backward; {why})"

    def _torch_recurrence(self, x, states, mask, training):
        cell = self.cell
        x = cell.drop_inputs(x)
        outputs, h, c = lstm_sequence(
            x, states[0], states[1], cell.kernel, cell.recurrent_kernel, cell.bias
        )
        return outputs, h, [h, c]

    def _fused_recurrence(self, x, states, mask, training):
        """Same results as the reference loop, masks included: one GEMM for `x W + b`, the
        fused loop, one GEMM each for `dW` and `dU`."""
        cell = self.cell
        x = cell.drop_inputs(x)
        h, c = lstm_states(
            x,
            states[0],
            states[1],
            cell.kernel,
            cell.recurrent_kernel,
            cell.bias,
            mask,
            activations.serialize(cell.activation),
            activations.serialize(cell.recurrent_activation),
        )  # (B, T, H), (B, H)
        outputs = masked_outputs(self, h, mask)
        return outputs, outputs[:, -1], [h[:, -1], c]

    def _direct_recurrence(self, x, states, needs_input_grad):
        cell = self.cell
        w, u, b = cell.kernel, cell.recurrent_kernel, cell.bias
        trains_b = b is not None and b.requires_grad
        needs = (needs_input_grad, w.requires_grad, trains_b, False, False, u.requires_grad)
        run = by_hand.run(
            LSTMRecurrence,
            (*needs, False, False, False),
            *(x.transpose(0, 1).contiguous(), w, b, *states, u, None, *_names(cell)),
        )

        def assign(dw, du, db):
            for param, grad in ((w, dw), (u, du), (b, db)):
                if param is not None:
                    _direct.add_gradient(param, grad)

        return _by_hand_output(run, self.return_sequences, assign)

    @staticmethod
    def _stacked_recurrence(layers, x, states, needs_input_grad):
        cells = [layer.cell for layer in layers]
        ws, us = [c.kernel for c in cells], [c.recurrent_kernel for c in cells]
        bs = [c.bias for c in cells] if cells[0].bias is not None else None
        b = _direct.stack(bs) if bs is not None else None
        trains_b = bs is not None and _direct.trains(bs)
        needs = (needs_input_grad, _direct.trains(ws), trains_b, False, False, _direct.trains(us))
        x_t = x.transpose(0, 1).contiguous()  # time-major, as the LSTM kernels take it
        run = by_hand.run(
            MembersLSTM,
            (*needs, False, False, False),
            *(x_t, _direct.stack(ws), b, *states, _direct.stack(us), None, *_names(cells[0])),
        )

        def assign(dw, du, db):
            for params, grad in ((ws, dw), (us, du), (bs, db)):
                if params is not None:
                    _direct.give(params, grad)

        return _by_hand_output(run, layers[0].return_sequences, assign)


def _names(cell) -> tuple[str, str]:
    return (
        activations.serialize(cell.activation),
        activations.serialize(cell.recurrent_activation),
    )


def _by_hand_output(run, sequences: bool, assign):
    """`(output, backward)` from an LSTM kernel run by hand (`by_hand.run`'s `((h, c_T),
    backward)`): every step's output or the last's; `backward(dy)` hands the weights'
    gradients to `assign(dW, dU, db)` and returns the input's (batch-major)."""
    (h, c_last), recurrence_backward = run  # (T, B, H), (B, H)

    def backward(dy):
        if sequences:
            grad_h = dy.transpose(0, 1)
        else:  # the last step's output is a view of every step's, as in the layer
            grad_h = h.new_zeros(h.shape)
            grad_h[-1] = dy
        dx, dw, db, _, _, du, *_ = recurrence_backward(grad_h, torch.zeros_like(c_last))
        assign(dw, du, db)
        return None if dx is None else dx.transpose(0, 1)

    return (h.transpose(0, 1) if sequences else h[-1]), backward
