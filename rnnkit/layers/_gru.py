"""GRU: an update gate blends the old state with a candidate, with fewer weights than an LSTM."""

from __future__ import annotations

import torch

from rnnkit import activations
from rnnkit.kernels import by_hand
from rnnkit.kernels.gru import GRURecurrence, gru_states
from rnnkit.kernels.members import MembersGRU
from rnnkit.kernels.torch_rnn import gru_sequence
from rnnkit.layers import _direct
from rnnkit.layers._rnn import (
    CellLayer,
    DenseRNNCell,
    loop_only_reason,
    outputs_of_fused,
    time_loop,
    torch_kernel_blocker,
)


class GRUCell(DenseRNNCell):
    """One step of a Gated Recurrent Unit (Keras' form, `reset_after=True` by default):

        z = σ(x_t W_z + b_z + h_{t-1} U_z + b'_z)          update gate
        r = σ(x_t W_r + b_r + h_{t-1} U_r + b'_r)          reset gate
        ĥ = tanh(x_t W_h + b_h + r * (h_{t-1} U_h + b'_h))  candidate
        h_t = z * h_{t-1} + (1 - z) * ĥ

    With `reset_after=False` the reset gate is applied before the product,
    `ĥ = tanh(x_t W_h + (r * h_{t-1}) U_h + b_h)`, and there is one bias.
    Blocks are in Keras' order z, r, h: kernel `(input_dim, 3*units)`,
    recurrent_kernel `(units, 3*units)`, bias `(2, 3*units)` (input and
    recurrent biases) or `(3*units,)` when `reset_after=False`.

    Args:
        units, activation, use_bias, initializers, regularizers, constraints,
        dropout, recurrent_dropout, seed: as for `DenseRNNCell`.
        recurrent_activation: the gates' squashing function (`'sigmoid'`).
        reset_after: apply the reset gate after the recurrent product (the
            cuDNN / `torch.nn.GRU` form) or before it (the original paper's).

    Example:
        >>> import torch
        >>> h, _ = GRUCell(3)(torch.ones(2, 5), [torch.zeros(2, 3)])
        >>> tuple(h.shape)
        (2, 3)
    """

    gates = 3
    recurrent_activation = activations.Attribute()
    # The activations torch's own kernel computes (its fast path on a GPU: cuDNN).
    torch_activations = (("tanh", "sigmoid"),)

    def __init__(self, units, recurrent_activation="sigmoid", reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.recurrent_activation = recurrent_activation
        self.reset_after = bool(reset_after)

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def call(self, x_t, states, training=False):
        h_prev = states[0]
        x_t, h_in = self.drop(x_t, h_prev)
        sigma, units = self.recurrent_activation, self.units
        x_proj = x_t @ self.kernel  # (B, 3U)
        b_in, b_rec = self._biases()
        if b_in is not None:
            x_proj = x_proj + b_in
        x_z, x_r, x_h = x_proj.chunk(3, dim=-1)
        if self.reset_after:
            h_proj = h_in @ self.recurrent_kernel  # (B, 3U)
            if b_rec is not None:
                h_proj = h_proj + b_rec
            h_z, h_r, h_h = h_proj.chunk(3, dim=-1)
            z, r = sigma(x_z + h_z), sigma(x_r + h_r)
            candidate = self.activation(x_h + r * h_h)
        else:
            h_zr = h_in @ self.recurrent_kernel[:, : 2 * units]  # (B, 2U)
            h_z, h_r = h_zr.chunk(2, dim=-1)
            z, r = sigma(x_z + h_z), sigma(x_r + h_r)
            candidate = self.activation(x_h + (r * h_in) @ self.recurrent_kernel[:, 2 * units :])
        h = z * h_prev + (1 - z) * candidate
        return h, [h]

    def _biases(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(input bias, recurrent bias); the recurrent one exists only with reset_after."""
        if self.bias is None:
            return None, None
        if self.reset_after:
            return self.bias[0], self.bias[1]
        return self.bias, None

    def get_config(self):
        config = super().get_config()
        config.update(
            recurrent_activation=activations.serialize(self.recurrent_activation),
            reset_after=self.reset_after,
        )
        return config


class GRU(CellLayer):
    """Gated Recurrent Unit layer: `GRUCell` run over time (Keras' `GRU`).

    Args:
        units: size of the hidden state.
        return_sequences, return_state, go_backwards, stateful, unroll: how the
            loop runs (see `RNN`).
        **kwargs: the cell's arguments (see `GRUCell`, including `reset_after`)
            and the layer's.

    Weights (`get_weights()` order): kernel `(input_dim, 3*units)`, recurrent_kernel
    `(units, 3*units)`, bias `(2, 3*units)` (or `(3*units,)` with `reset_after=False`).

    Example:
        >>> import numpy as np
        >>> tuple(GRU(8, return_sequences=True)(np.random.rand(4, 10, 3)).shape)
        (4, 10, 8)
    """

    cell_class = GRUCell

    def choose_path(self, training, mask=None, batch=None):
        why = loop_only_reason(self, GRUCell, training, ("activation", "recurrent_activation"))
        if why:
            return None, f"reference loop ({why})"
        cell = self.cell
        in_c, loop = time_loop(self)
        if in_c and cell.reset_after:
            # Measured on a 2-core CPU: faster than torch's GRU, training and predicting.
            return self._fused_recurrence, f"fused GRU recurrence (hand-written backward; {loop})"
        if in_c:
            loop = "reset_after=False: time loop in Python"
        blocker = torch_kernel_blocker(self, mask, batch)
        if not blocker and not cell.reset_after:
            blocker = "reset_after=False"
        on_gpu = self._on_gpu()
        if not blocker and (on_gpu or not torch.is_grad_enabled()):
            # cuDNN on a GPU; torch's C++ loop when there is no backward pass to write.
            return self._torch_recurrence, "torch's fused GRU (oneDNN on CPU, cuDNN on GPU)"
        why = "masks, any reset_after" if on_gpu else "measured faster than torch's GRU on CPU"
        why = f"hand-written backward; {why}; {loop}"
        return self._fused_recurrence, f"fused GRU recurrence ({why})"

    def _torch_recurrence(self, x, states, mask, training):
        cell = self.cell
        x = cell.drop_inputs(x)
        outputs, h = gru_sequence(x, states[0], cell.kernel, cell.recurrent_kernel, cell.bias)
        return outputs, h, [h]

    def _fused_recurrence(self, x, states, mask, training):
        """Same results as the reference loop: `x W + b` and the recurrence in one fused node."""
        cell = self.cell
        x = cell.drop_inputs(x)
        b_in, b_rec = cell._biases()
        h, last = gru_states(
            x,
            states[0],
            cell.kernel,
            cell.recurrent_kernel,
            b_in,
            b_rec,
            mask,
            activations.serialize(cell.activation),
            activations.serialize(cell.recurrent_activation),
            cell.reset_after,
        )  # (B, T, H), (B, H)
        return outputs_of_fused(self, h, last, mask)

    def _direct_recurrence(self, x, states, needs_input_grad):
        cell = self.cell
        w, u, bias = cell.kernel, cell.recurrent_kernel, cell.bias
        b_in, b_rec = cell._biases()
        trains_bias = bias is not None and bias.requires_grad
        needs = (needs_input_grad, w.requires_grad, trains_bias, trains_bias and cell.reset_after)
        names = (
            activations.serialize(cell.activation),
            activations.serialize(cell.recurrent_activation),
            cell.reset_after,
        )
        run = by_hand.run(
            GRURecurrence,
            (*needs, False, u.requires_grad, False, False, False, False),
            *(x, w, b_in, b_rec, states[0], u, None, *names),
        )

        def assign(grads):  # (dx, dW, db, db', dh0, dU, ...)
            db = grads[2]
            if db is not None and cell.reset_after:  # the bias is (2, 3H): [b; b']
                db = torch.stack([db, grads[3]])
            for param, grad in ((w, grads[1]), (bias, db), (u, grads[5])):
                if param is not None:
                    _direct.add_gradient(param, grad)

        return _direct.recurrence_output(run, self.return_sequences, assign)

    def stacked_blocker(self):
        return None if self.cell.reset_after else "GRU(reset_after=False)"

    @staticmethod
    def _stacked_recurrence(layers, x, states, needs_input_grad):
        cells = [layer.cell for layer in layers]
        cell = cells[0]
        ws, us = [c.kernel for c in cells], [c.recurrent_kernel for c in cells]
        bs = [c.bias for c in cells] if cell.bias is not None else None
        b_in = b_rec = None
        if bs is not None:  # each member's (2, 3H) bias: [b; b']
            b_in, b_rec = _direct.stack([b[0] for b in bs]), _direct.stack([b[1] for b in bs])
        trains_b = bs is not None and _direct.trains(bs)
        needs = (needs_input_grad, _direct.trains(ws), trains_b, trains_b, False)
        names = (
            activations.serialize(cell.activation),
            activations.serialize(cell.recurrent_activation),
            True,
        )
        run = by_hand.run(
            MembersGRU,
            (*needs, _direct.trains(us), False, False, False, False),
            *(x, _direct.stack(ws), b_in, b_rec, states[0], _direct.stack(us), None, *names),
        )

        def assign(grads):  # (dx, dW, db, db', dh0, dU, ...), stacked by member
            _direct.give(ws, grads[1])
            _direct.give(us, grads[5])
            if bs is not None and grads[2] is not None:  # each member's (2, 3H) bias
                _direct.give(bs, torch.stack([grads[2], grads[3]], dim=1))

        return _direct.recurrence_output(run, layers[0].return_sequences, assign)
