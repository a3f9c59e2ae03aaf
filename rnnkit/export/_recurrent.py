"""SimpleRNN, LSTM, GRU and Bidirectional as ONNX's `RNN`, `LSTM` and `GRU` operators.

ONNX's recurrent operators are time-major: `X` is `(T, B, D)`, `Y` is
`(T, directions, B, H)`, `Y_h` is `(directions, B, H)`. Their weights are the
transposes of Keras' (`W` `(directions, gates*H, D)`), the biases `Wb` and `Rb`
side by side in `B` `(directions, 2*gates*H)`.

Gates: ONNX's LSTM orders them i, o, f, c where Keras has i, f, c, o; ONNX's GRU
orders them z, r, h as Keras does. Keras' GRU with `reset_after=True` is ONNX's
`linear_before_reset=1` (the reset gate multiplies `h U_h + b'_h`), with
`reset_after=False` it is `linear_before_reset=0`.

A mask becomes `sequence_lens` (the count of real steps): exact for right-padded
batches, whose real steps come first.
"""

from __future__ import annotations

import numpy as np

from rnnkit.export import _activations
from rnnkit.export._builder import Value
from rnnkit.layers import GRU, LSTM, RNN, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell

_OP = {SimpleRNNCell: "RNN", LSTMCell: "LSTM", GRUCell: "GRU"}
_LAYERS = (RNN, SimpleRNN, LSTM, GRU)
_KERAS_TO_ONNX_LSTM = [0, 3, 1, 2]  # ONNX block k is Keras block _KERAS_TO_ONNX_LSTM[k]


def recurrent(g, layer, x: Value) -> Value:
    """`layer` (SimpleRNN, LSTM, GRU, or RNN over one of their cells) on `x` `(B, T, D)`."""
    _check_layer(layer)
    direction = "reverse" if layer.go_backwards else "forward"
    x_tm = g.op("Transpose", [x.name], perm=[1, 0, 2])  # (T, B, D)
    y, y_h = _operator(g, [layer.cell], x_tm, x, direction, owner=layer)
    if not layer.return_sequences:
        return Value(g.op("Squeeze", [y_h, g.ints([0])]))  # (B, H)
    y = g.op("Squeeze", [y, g.ints([1])])  # (T, B, H)
    if x.lengths and not layer.go_backwards and not layer.zero_output_for_mask:
        # rnnkit repeats the last real output at padded steps; ONNX writes zeros there.
        y = g.op("Where", [_steps_kept(g, y, x.lengths), y, y_h])
    y = g.op("Transpose", [y], perm=[1, 0, 2])  # (B, T, H)
    if layer.go_backwards:  # rnnkit returns the sequence in the order it read it
        y = _flip_time(g, y)
    return Value(y, x.lengths)


def bidirectional(g, layer, x: Value):
    """`Bidirectional(...)` on `x` `(B, T, D)`: one `direction="bidirectional"` operator, its
    two outputs merged as `merge_mode` says (a list of two for `None`)."""
    forward, backward = layer.forward_layer, layer.backward_layer
    for one in (forward, backward):
        _check_layer(one, owner=layer)
    if forward.go_backwards or type(forward.cell) is not type(backward.cell):
        raise ValueError(
            f"Bidirectional '{layer.name}': ONNX's bidirectional operator runs one kind of cell "
            "forwards then backwards; got a forward layer "
            f"{type(forward).__name__}(go_backwards={forward.go_backwards}) and a backward "
            f"{type(backward).__name__}. Wrap one layer, e.g. Bidirectional(LSTM(8)), to export."
        )
    x_tm = g.op("Transpose", [x.name], perm=[1, 0, 2])  # (T, B, D)
    cells = [forward.cell, backward.cell]
    y, y_h = _operator(g, cells, x_tm, x, "bidirectional", owner=layer)
    if layer.return_sequences:
        # Both directions zero their padded steps (Bidirectional sets zero_output_for_mask),
        # as ONNX does; the backward outputs are already in time order.
        y = g.op("Transpose", [y], perm=[2, 0, 1, 3])  # (B, T, 2, H)
        axis, lengths = 2, x.lengths
    else:
        y, axis, lengths = y_h, 0, None  # (2, B, H)
    y_fw = g.op("Gather", [y, g.ints(0)], axis=axis)
    y_bw = g.op("Gather", [y, g.ints(1)], axis=axis)
    mode = layer.merge_mode
    if mode is None:
        return [Value(y_fw, lengths), Value(y_bw, lengths)]
    if mode == "concat":
        merged = g.op("Concat", [y_fw, y_bw], axis=-1)
    elif mode == "sum":
        merged = g.op("Add", [y_fw, y_bw])
    elif mode == "mul":
        merged = g.op("Mul", [y_fw, y_bw])
    else:  # "ave", as rnnkit computes it: (y + y_rev) / 2
        merged = g.op("Div", [g.op("Add", [y_fw, y_bw]), g.const(np.float32(2.0))])
    return Value(merged, lengths)


def _check_layer(layer, owner=None) -> None:
    who = owner or layer
    where = f"{type(who).__name__} '{who.name}'"
    if type(layer) not in _LAYERS or type(layer.cell) not in _OP:
        cell = type(layer.cell).__name__ if hasattr(layer, "cell") else "?"
        raise ValueError(
            f"{where}: ONNX has operators for SimpleRNN, LSTM and GRU cells only; got "
            f"{type(layer).__name__} over {cell}. A custom or stacked cell cannot be exported "
            "to ONNX exactly; export the model with torch.export instead."
        )
    if layer.stateful:
        raise ValueError(
            f"{where} is stateful: it carries its state from call to call, which an ONNX graph "
            "cannot keep. Rebuild the model with stateful=False and copy the weights "
            "(model.get_weights()) to export it."
        )
    if layer.return_state:
        raise ValueError(
            f"{where} has return_state=True, which the ONNX export does not handle yet. "
            "Export a model whose recurrent layers return only their outputs."
        )


def _operator(g, cells, x_tm, x: Value, direction, owner) -> tuple[str, str]:
    """One ONNX recurrent node for `cells` (one, or forward and backward) of layer `owner`;
    returns `(Y (T, dirs, B, H), Y_h (dirs, B, H))`."""
    first = cells[0]
    op_type = _OP[type(first)]
    who = owner
    acts, attrs = [], {}
    for cell in cells:
        if op_type == "GRU" and cell.reset_after != first.reset_after:
            raise ValueError(
                f"{type(who).__name__} '{who.name}': both directions need the same reset_after."
            )
        if cell.units != first.units:
            raise ValueError(f"{type(who).__name__} '{who.name}': both directions need one size.")
        acts += _cell_activations(cell, who)
    if op_type == "GRU":
        attrs["linear_before_reset"] = int(first.reset_after)
    weights = [_onnx_weights(cell) for cell in cells]
    w, r, b = (g.const(np.stack(parts), name) for parts, name in zip(zip(*weights), "WRB"))
    lengths = x.lengths or ""
    outputs = 3 if op_type == "LSTM" else 2
    y, y_h, *_ = g.op(
        op_type,
        [x_tm, w, r, b, lengths],
        outputs=outputs,
        hidden_size=first.units,
        direction=direction,
        activations=acts,
        **attrs,
    )
    return y, y_h


def _cell_activations(cell, who) -> list[str]:
    """The `activations` attribute for one direction: RNN (f), GRU (f, g), LSTM (f, g, h)."""
    act = _activations.recurrent_name(cell.activation, who, "activation")
    if isinstance(cell, SimpleRNNCell):
        return [act]
    gate = _activations.recurrent_name(cell.recurrent_activation, who, "recurrent_activation")
    return [gate, act, act] if isinstance(cell, LSTMCell) else [gate, act]


def _onnx_weights(cell) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One direction's `(W (G*H, D), R (G*H, H), B (2*G*H,))` in ONNX's layout and gate order."""
    _check_float32(cell)
    kernel = cell.kernel.detach().cpu().numpy()  # (D, G*H), Keras' blocks
    recurrent = cell.recurrent_kernel.detach().cpu().numpy()  # (H, G*H)
    width = kernel.shape[1]
    w_bias = r_bias = np.zeros(width, np.float32)
    if cell.bias is not None:
        bias = cell.bias.detach().cpu().numpy()
        if isinstance(cell, GRUCell) and cell.reset_after:
            w_bias, r_bias = bias[0], bias[1]  # input and recurrent biases
        else:
            w_bias = bias
    if isinstance(cell, LSTMCell):
        kernel, recurrent, w_bias = (_lstm_gates(a) for a in (kernel, recurrent, w_bias))
    return kernel.T, recurrent.T, np.concatenate([w_bias, r_bias])


def _lstm_gates(array: np.ndarray) -> np.ndarray:
    """Keras' gate blocks i, f, c, o on the last axis, reordered to ONNX's i, o, f, c."""
    blocks = np.split(array, 4, axis=-1)
    return np.concatenate([blocks[k] for k in _KERAS_TO_ONNX_LSTM], axis=-1)


def _check_float32(cell) -> None:
    import torch

    if cell.kernel.dtype != torch.float32:
        raise ValueError(
            f"{type(cell).__name__} '{cell.name}' has {cell.kernel.dtype} weights; ONNX "
            "Runtime's recurrent operators run float32. Export a float32 model "
            "(dtype='float32')."
        )


def _steps_kept(g, y_tm: str, lengths: str) -> str:
    """`(T, B, 1)` bool: step t of sequence b is real (t < lengths[b])."""
    steps = g.op("Gather", [g.op("Shape", [y_tm]), g.ints(0)])  # T, a scalar
    t = g.op("Range", [g.const(np.int64(0)), steps, g.const(np.int64(1))])  # (T,)
    kept = g.op(
        "Less",
        [
            g.op("Unsqueeze", [t, g.ints([1])]),  # (T, 1)
            g.op("Unsqueeze", [g.op("Cast", [lengths], to=7), g.ints([0])]),  # (1, B) int64
        ],
    )  # (T, B)
    return g.op("Unsqueeze", [kept, g.ints([2])])


def _flip_time(g, y: str) -> str:
    """`y` `(B, T, H)` read from the last step to the first."""
    big = np.iinfo(np.int64).max
    return g.op("Slice", [y, g.ints([-1]), g.ints([-big]), g.ints([1]), g.ints([-1])])
