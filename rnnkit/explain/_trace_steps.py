"""One time step of each cell, taken apart: every pre-activation term, the gates, the states.

Each function here is the cell's own `call` (see `SimpleRNNCell.call`, `LSTMCell.call`,
`GRUCell.call`) written out for one sequence in float64 numpy, keeping every intermediate:

    SimpleRNN   h_t = act(x_t W + h_{t-1} U + b)
    LSTM        i, f, g, o = σ(·), σ(·), tanh(·), σ(·)    each  x_t W_k + h_{t-1} U_k + b_k
                c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
    GRU         z = σ(x_t W_z + b_z + h_{t-1} U_z + b'_z),  r likewise
                h̃ = tanh(x_t W_h + b_h + r * (h_{t-1} U_h + b'_h))    reset_after=True
                h̃ = tanh(x_t W_h + (r * h_{t-1}) U_h + b_h)           reset_after=False
                h_t = z * h_{t-1} + (1 - z) * h̃

A cell of any other class is stepped by its own `call`, without the parts (`custom_step`).
Vectors are 1-D: `x_t` `(input_dim,)`, states `(units,)`; blocks of `W`, `U`, `b` sit side by
side in Keras' gate order (LSTM i, f, c, o; GRU z, r, h).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rnnkit import _tree, activations
from rnnkit.layers._gru import GRUCell
from rnnkit.layers._lstm import LSTMCell
from rnnkit.layers._rnn import _training_kwarg
from rnnkit.layers._simple_rnn import SimpleRNNCell


@dataclass
class Part:
    """One term of a pre-activation: `value = gate * (vector @ matrix + bias)`.

    A product has `vector` `(n,)` and `matrix` `(n, units)`; a bias has only `bias` `(units,)`;
    GRU's `r * (h_{t-1} U_h + b'_h)` has all three and `gate` `(units,)`. The operands are kept
    so the arithmetic of each number can be written out.
    """

    name: str  # as the equations write it: "x_t W", "h_{t-1} U", "b"
    key: str  # ASCII, for table columns: "xW", "hU", "b"
    value: np.ndarray  # (units,)
    vector: np.ndarray | None = None
    matrix: np.ndarray | None = None
    bias: np.ndarray | None = None
    gate: np.ndarray | None = None


@dataclass
class Gate:
    """A block of units: `value = activation(sum)`, `sum` the sum of the `parts`."""

    name: str  # "h" (SimpleRNN), "i", "f", "g", "o" (LSTM), "z", "r", "h̃" (GRU)
    key: str  # ASCII name for columns: "h_tilde" for "h̃"
    activation: str  # the activation's name: "tanh", "relu", "sigmoid", ...
    parts: list[Part]
    sum: np.ndarray  # (units,) the pre-activation
    value: np.ndarray  # (units,)


@dataclass
class Step:
    """One step of one sequence through one direction of a recurrent layer.

    `t` indexes the input sequence (0-based); a `go_backwards` layer reads `t = T-1` first.
    `states_in` are the states before the step (`[h_{t-1}]`, or `[h_{t-1}, c_{t-1}]` for an
    LSTM), `states` after it; a `skipped` (masked) step carries them unchanged and has no gates.
    `output` is what the layer emits at this step (`h_t`; at a skipped step the last output
    or zeros, as the layer does).
    """

    t: int
    x: np.ndarray  # (input_dim,)
    states_in: list[np.ndarray]
    states: list[np.ndarray]
    output: np.ndarray
    gates: list[Gate] = field(default_factory=list)
    skipped: bool = False

    @property
    def h(self) -> np.ndarray:
        return self.states[0]


def _apply(fn: Callable, z: np.ndarray) -> np.ndarray:
    """The cell's own activation (a torch function) on a float64 vector."""
    return fn(torch.from_numpy(z)).numpy()


def _gate(name, key, fn, parts) -> Gate:
    total = np.sum([p.value for p in parts], axis=0)
    return Gate(name, key, activations.serialize(fn), parts, total, _apply(fn, total))


def _product(name, key, vector, matrix, bias=None, gate=None) -> Part:
    value = vector @ matrix  # (units,)
    if bias is not None:
        value = value + bias
    if gate is not None:
        value = gate * value
    return Part(name, key, value, vector, matrix, bias, gate)


def _bias(name, key, bias) -> Part:
    return Part(name, key, bias, bias=bias)


def _blocks(matrix: np.ndarray | None, count: int) -> list:
    """`matrix` split along its last axis into the gates' blocks (`[None] * count` for none)."""
    return [None] * count if matrix is None else np.split(matrix, count, axis=-1)


def weights_of(cell) -> dict[str, np.ndarray | None]:
    """The cell's kernel `W`, recurrent kernel `U` and bias `b` as float64 numpy."""

    def arr(w):
        return None if w is None else w.detach().to("cpu", torch.float64).numpy()

    return {"W": arr(cell.kernel), "U": arr(cell.recurrent_kernel), "b": arr(cell.bias)}


def _pre_activation(x, h, W, U, b) -> list[Part]:
    """The three terms of `x_t W + h_{t-1} U + b` (two when there is no bias)."""
    parts = [_product("x_t W", "xW", x, W), _product("h_{t-1} U", "hU", h, U)]
    return parts if b is None else [*parts, _bias("b", "b", b)]


def simple_rnn_step(cell, w, x, states) -> tuple[list[Gate], list[np.ndarray]]:
    """`h_t = activation(x_t W + h_{t-1} U + b)`; returns `([gate h], [h_t])`."""
    gate = _gate("h", "h", cell.activation, _pre_activation(x, states[0], w["W"], w["U"], w["b"]))
    return [gate], [gate.value]


def lstm_step(cell, w, x, states) -> tuple[list[Gate], list[np.ndarray]]:
    """The gates i, f, g, o, then `c_t = f * c_{t-1} + i * g`, `h_t = o * tanh(c_t)`."""
    h_prev, c_prev = states
    sigma, tanh = cell.recurrent_activation, cell.activation
    blocks = zip(_blocks(w["W"], 4), _blocks(w["U"], 4), _blocks(w["b"], 4))
    gates = [
        _gate(name, name, fn, _pre_activation(x, h_prev, W, U, b))
        for name, fn, (W, U, b) in zip("ifgo", (sigma, sigma, tanh, sigma), blocks)
    ]
    i, f, g, o = (gate.value for gate in gates)
    c = f * c_prev + i * g
    h = o * _apply(tanh, c)
    return gates, [h, c]


def gru_step(cell, w, x, states) -> tuple[list[Gate], list[np.ndarray]]:
    """The gates z, r and the candidate h̃ in the cell's `reset_after` form, then
    `h_t = z * h_{t-1} + (1 - z) * h̃`."""
    h_prev = states[0]
    sigma = cell.recurrent_activation
    W, U = _blocks(w["W"], 3), _blocks(w["U"], 3)
    if cell.reset_after:
        b_in, b_rec = (None, None) if w["b"] is None else w["b"]
        parts = _gru_reset_after_parts(x, h_prev, W, U, _blocks(b_in, 3), _blocks(b_rec, 3))
    else:
        parts = _gru_reset_before_parts(x, h_prev, W, U, _blocks(w["b"], 3))
    z = _gate("z", "z", sigma, parts["z"])
    r = _gate("r", "r", sigma, parts["r"])
    candidate = _gate("h̃", "h_tilde", cell.activation, parts["h"](r.value))
    h = z.value * h_prev + (1 - z.value) * candidate.value
    return [z, r, candidate], [h]


def _gru_reset_after_parts(x, h, W, U, b_in, b_rec) -> dict:
    """`x_t W_k + b_k + h_{t-1} U_k + b'_k` for z and r; the candidate's with `r * (...)`."""

    def gate_parts(k):
        parts = [_product("x_t W", "xW", x, W[k])]
        if b_in[k] is not None:
            parts.append(_bias("b", "b", b_in[k]))
        parts.append(_product("h_{t-1} U", "hU", h, U[k]))
        if b_rec[k] is not None:
            parts.append(_bias("b'", "b_rec", b_rec[k]))
        return parts

    def candidate(r):
        parts = [_product("x_t W", "xW", x, W[2])]
        if b_in[2] is not None:
            parts.append(_bias("b", "b", b_in[2]))
        name = "r ⊙ (h_{t-1} U + b')" if b_rec[2] is not None else "r ⊙ (h_{t-1} U)"
        parts.append(_product(name, "r*(hU+b_rec)", h, U[2], bias=b_rec[2], gate=r))
        return parts

    return {"z": gate_parts(0), "r": gate_parts(1), "h": candidate}


def _gru_reset_before_parts(x, h, W, U, b) -> dict:
    """`x_t W_k + h_{t-1} U_k + b_k` for z and r; the candidate's with `(r * h_{t-1}) U_h`."""

    def candidate(r):
        parts = [
            _product("x_t W", "xW", x, W[2]),
            _product("(r ⊙ h_{t-1}) U", "(r*h)U", r * h, U[2]),
        ]
        return parts if b[2] is None else [*parts, _bias("b", "b", b[2])]

    return {
        "z": _pre_activation(x, h, W[0], U[0], b[0]),
        "r": _pre_activation(x, h, W[1], U[1], b[1]),
        "h": candidate,
    }


# A cell whose `call` is one of these is taken apart; any other is stepped by its own call.
STEPS = {
    SimpleRNNCell.call: ("SimpleRNN", simple_rnn_step),
    LSTMCell.call: ("LSTM", lstm_step),
    GRUCell.call: ("GRU", gru_step),
}


def decomposition(cell) -> tuple[str, Callable] | tuple[None, None]:
    """`(kind, step)` for a cell whose math is known (`kind` 'SimpleRNN', 'LSTM', 'GRU'),
    `(None, None)` for a custom cell (or one whose class overrides `call`)."""
    return STEPS.get(getattr(type(cell), "call", None), (None, None))


def custom_step(cell, x, states) -> tuple[np.ndarray, list[np.ndarray]]:
    """`(y_t, new states)` from the cell's own `call`, run on a batch of one in its dtype."""
    dtype = getattr(cell, "dtype", torch.float32)
    device = (
        next((p.device for p in cell.parameters()), None) if hasattr(cell, "parameters") else None
    )

    def tensor(v):
        return torch.as_tensor(v, dtype=dtype, device=device).unsqueeze(0)  # (1, n)

    with torch.no_grad():
        y, new = cell.call(tensor(x), [tensor(s) for s in states], **_training_kwarg(cell, False))

    def back(v):
        return v.detach().to("cpu", torch.float64).numpy()[0]

    return back(y), [back(s) for s in _tree.flatten(new)]
