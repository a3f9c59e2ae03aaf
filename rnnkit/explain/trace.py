"""`trace`: one sequence through each recurrent layer, step by step, every number kept.

For each step the trace holds `x_t`, the terms of each pre-activation (`x_t W`, `h_{t-1} U`,
`b`), their sum, each gate after its activation, and the new states, computed by taking the
cell's own step apart in float64 (`_trace_steps`). A model is run on the sequence first, so
each recurrent layer is traced on the input, mask and starting states it really gets.

    >>> import numpy as np
    >>> from rnnkit.layers import SimpleRNN
    >>> rnn = SimpleRNN(1, activation="relu")
    >>> rnn.build((None, 2, 1))
    >>> rnn.set_weights([np.array([[1.8]]), np.array([[-0.5]]), np.zeros(1)])
    >>> t = trace(rnn, np.array([[[0.5], [1.0]]]))
    >>> print(t.layers[0].directions[0].steps[0].h.round(4))
    [0.9]
    >>> "h_1 = max(0, 0.5 × 1.8 + 0 × (−0.5) + 0.0) = 0.9" in str(t)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnkit import _tree, activations
from rnnkit.explain import _trace_diagram, _trace_html, _trace_text
from rnnkit.explain._trace_steps import Step, custom_step, decomposition, weights_of
from rnnkit.layers._bidirectional import Bidirectional, _merge
from rnnkit.layers._rnn import RNN, _check_mask

RECURRENT = (RNN, Bidirectional)


@dataclass
class DirectionTrace:
    """The steps of one recurrent layer reading one sequence (one direction of a Bidirectional).

    `steps` are in the order the layer reads them: `t = T-1` first when `go_backwards`.
    `kind` is 'SimpleRNN', 'LSTM' or 'GRU' when the cell's math was taken apart, None for a
    custom cell (its states come from its own `call`, without the parts). `start` says where
    the states began: 'zeros', 'initial_state', or 'carried' (a stateful layer's).
    """

    name: str  # the layer that ran: 'lstm', or 'forward_lstm' / 'backward_lstm'
    cell: str  # the cell's class name
    kind: str | None
    units: int
    go_backwards: bool
    state_names: tuple[str, ...]  # ('h',) or ('h', 'c')
    activations: dict[str, str]  # {'activation': 'tanh', 'recurrent_activation': 'sigmoid'}
    weights: dict[str, np.ndarray | None]  # W, U, b (float64), {} for a custom cell
    steps: list[Step]
    start: str = "zeros"
    reset_after: bool | None = None  # GRU only

    @property
    def direction(self) -> str:
        return "backward" if self.go_backwards else "forward"

    @property
    def decomposed(self) -> bool:
        return self.kind is not None

    @property
    def note(self) -> str:
        """What a reader should know about how this direction was traced."""
        notes = []
        if not self.decomposed:
            notes.append(
                f"{self.cell} is not SimpleRNNCell, LSTMCell or GRUCell: its outputs and states "
                "come from its own call(), not taken apart"
            )
        if self.go_backwards:
            notes.append("go_backwards: steps in the order the layer reads them, last t first")
        if self.start != "zeros":
            notes.append(f"starts from the {self.start} state")
        return "; ".join(notes)

    @property
    def outputs(self) -> np.ndarray:
        """`(T, units)`: the output at each step in reading order, as the layer's
        `return_sequences=True` output gives it."""
        return np.stack([s.output for s in self.steps])


@dataclass
class LayerTrace:
    """One recurrent layer: one direction, or two for a `Bidirectional`."""

    name: str
    class_name: str
    directions: list[DirectionTrace]
    merge_mode: str | None = None  # a Bidirectional's

    @property
    def bidirectional(self) -> bool:
        return len(self.directions) == 2

    @property
    def outputs(self):
        """The layer's `return_sequences=True` output for this sequence, `(T, features)`: the
        backward direction flipped into time order and merged, for a Bidirectional (a list of
        the two with `merge_mode=None`)."""
        if not self.bidirectional:
            return self.directions[0].outputs
        forward, backward = (torch.from_numpy(d.outputs) for d in self.directions)
        merged = _merge(self.merge_mode, forward, backward.flip(0))
        return [m.numpy() for m in merged] if self.merge_mode is None else merged.numpy()


class Trace:
    """A traced sequence: `layers`, one `LayerTrace` per recurrent layer, in model order.

    `str(trace)` (or `trace.show()`) writes it out step by step, with each number's arithmetic
    for layers of at most 4 units; `to_frame()`, `to_dict()` and `_repr_html_()` give it as a
    table, as JSON-ready data and as HTML; `plot()` draws the unrolled network.
    """

    def __init__(self, layers: list[LayerTrace], sample: int):
        self.layers = layers
        self.sample = sample

    def __getitem__(self, key) -> LayerTrace:
        """A layer's trace by its name or position: `trace['lstm']`, `trace[0]`."""
        if isinstance(key, str):
            for layer in self.layers:
                if layer.name == key:
                    return layer
            names = ", ".join(repr(layer.name) for layer in self.layers)
            raise KeyError(f"This trace has no layer {key!r}; it has {names}.")
        return self.layers[key]

    def __repr__(self) -> str:
        names = ", ".join(f"{layer.name} ({layer.class_name})" for layer in self.layers)
        return f"<Trace of sample {self.sample}: {names}>"

    def __str__(self) -> str:
        return self.to_text()

    def to_text(self, max_steps: int | None = 12, digits: int = 4) -> str:
        """Plain text: per step a table of the parts, and for layers of at most 4 units each
        number's arithmetic (`h_1 = max(0, 0.5 × 1.8 + 0 × (−0.5) + 0.0) = 0.9`). Sequences
        longer than `max_steps` show their first and last steps (None: all)."""
        return _trace_text.render(self, max_steps, digits)

    def show(self, max_steps: int | None = 12, digits: int = 4) -> None:
        """Print `to_text(max_steps, digits)`."""
        print(self.to_text(max_steps, digits))

    def _repr_html_(self) -> str:
        """A self-contained HTML table per layer direction (inline style, no external file)."""
        return _trace_html.render(self)

    def plot(self, path=None, max_steps: int = 12):
        """Draw the unrolled network (one cell per step, `x_t` below, `h_t` carried right,
        outputs above) and return the matplotlib Figure; with `path`, also write it as PNG or
        SVG (by the suffix)."""
        return _trace_diagram.plot(self, path, max_steps)

    def to_frame(self):
        """A pandas DataFrame, one row per layer, direction, step and unit.

        Columns: `layer`, `direction`, `step` (reading order, 0-based), `t` (index into the
        sequence), `skipped`, `unit`; then each part of each gate (`xW`, `hU`, `b`, `sum` for a
        SimpleRNN; `xW_i`, ..., `sum_i`, `i`, ... for an LSTM; GRU's `h̃` is `h_tilde`), the
        states before (`h_prev`, `c_prev`) and after (`h`, `c`), and `output`.
        """
        import pandas as pd

        rows = [
            row
            for layer in self.layers
            for direction in layer.directions
            for row in _frame_rows(layer.name, direction)
        ]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        """The trace as plain lists, numbers and strings (`json.dumps` takes it)."""
        return {
            "sample": self.sample,
            "layers": [
                {
                    "name": layer.name,
                    "class_name": layer.class_name,
                    "merge_mode": layer.merge_mode,
                    "directions": [_direction_dict(d) for d in layer.directions],
                }
                for layer in self.layers
            ],
        }


def _frame_rows(layer_name: str, direction: DirectionTrace):
    for position, step in enumerate(direction.steps):
        columns = {}
        single = len(step.gates) == 1
        for gate in step.gates:
            suffix = "" if single else f"_{gate.key}"
            for part in gate.parts:
                columns[part.key + suffix] = part.value
            columns["sum" + suffix] = gate.sum
            if not single:
                columns[gate.key] = gate.value
        for name, value in zip(direction.state_names, step.states_in):
            columns[f"{name}_prev"] = value
        columns.update(zip(direction.state_names, step.states))
        columns["output"] = step.output
        for unit in range(direction.units):
            yield {
                "layer": layer_name,
                "direction": direction.direction,
                "step": position,
                "t": step.t,
                "skipped": step.skipped,
                "unit": unit,
                **{key: float(value[unit]) for key, value in columns.items()},
            }


def _direction_dict(d: DirectionTrace) -> dict:
    def floats(v):
        return None if v is None else np.asarray(v, dtype=float).tolist()

    return {
        "name": d.name,
        "direction": d.direction,
        "cell": d.cell,
        "kind": d.kind,
        "units": d.units,
        "go_backwards": d.go_backwards,
        "reset_after": d.reset_after,
        "start": d.start,
        "note": d.note,
        "activations": d.activations,
        "state_names": list(d.state_names),
        "steps": [
            {
                "t": s.t,
                "skipped": s.skipped,
                "x": floats(s.x),
                "states_in": {n: floats(v) for n, v in zip(d.state_names, s.states_in)},
                "states": {n: floats(v) for n, v in zip(d.state_names, s.states)},
                "output": floats(s.output),
                "gates": [
                    {
                        "name": g.name,
                        "key": g.key,
                        "activation": g.activation,
                        "parts": {p.name: floats(p.value) for p in g.parts},
                        "sum": floats(g.sum),
                        "value": floats(g.value),
                    }
                    for g in s.gates
                ],
            }
            for s in d.steps
        ],
    }


# ---------------------------------------------------------------------------- tracing
def trace(model_or_layer, x, sample=0, layer=None, *, mask=None, initial_state=None) -> Trace:
    """Trace sequence `x[sample]` through each recurrent layer of a model, step by step.

    Args:
        model_or_layer: a model (Sequential, functional or subclassed) or a recurrent layer
            (SimpleRNN, LSTM, GRU, RNN, Bidirectional).
        x: the model's input, `(batch, timesteps, features)` (or token ids for an Embedding);
            a list or dict of arrays for a model with several inputs.
        sample: which sequence of the batch to trace.
        layer: trace only this recurrent layer: its name, its position among the recurrent
            layers (0 = the first), or the layer itself. None traces all of them.
        mask, initial_state: as the layer's call takes them, when tracing a layer directly
            (a model's masks come from its Embedding(mask_zero=True) or Masking layers).

    Each layer is traced on the input its model really gives it, with its mask and starting
    states (a stateful layer's carried ones; the model's states are left as they were).

    Example:
        >>> import numpy as np
        >>> from rnnkit import Sequential
        >>> from rnnkit.layers import LSTM, Dense
        >>> model = Sequential([LSTM(3, input_shape=(5, 2)), Dense(1)])
        >>> t = trace(model, np.random.rand(4, 5, 2), sample=1)
        >>> [g.name for g in t.layers[0].directions[0].steps[0].gates]
        ['i', 'f', 'g', 'o']
    """
    chosen = _choose(model_or_layer, layer)
    is_model = not isinstance(model_or_layer, RECURRENT)
    if is_model and (mask is not None or initial_state is not None):
        raise ValueError(
            "trace: mask= and initial_state= are for tracing a recurrent layer directly; a "
            "model makes its own masks (Embedding(mask_zero=True), Masking). Trace the layer: "
            "trace(model.get_layer('name'), its_input, mask=..., initial_state=...)."
        )
    if isinstance(x, (np.ndarray, torch.Tensor)):  # judged whole, so a message names its shape
        model_or_layer.check_input_shape(tuple(x.shape))
    count = _count_samples(x)
    sample = _check_sample(sample, count)
    stateful = any(getattr(m, "stateful", False) for m in model_or_layer.modules())
    row = sample
    if not stateful:  # run only the traced sequence (a stateful model needs its whole batch)
        x, mask, initial_state = _rows((x, mask, initial_state), sample)
        row = 0
    calls = _capture(model_or_layer, x, chosen, mask, initial_state)
    return Trace([_trace_layer(r, calls[r], row) for r in chosen], sample)


def recurrent_layers(model_or_layer) -> list:
    """The recurrent layers (RNN and its subclasses, Bidirectional) of a model, in order;
    `[layer]` for a recurrent layer itself."""
    if isinstance(model_or_layer, RECURRENT):
        return [model_or_layer]
    children = getattr(model_or_layer, "layers", None)
    if children is None:
        children = list(model_or_layer.children()) if hasattr(model_or_layer, "children") else []
    return [r for child in children for r in recurrent_layers(child)]


def _choose(model_or_layer, layer) -> list:
    from rnnkit.explain._recorded import no_recurrent_layer  # here: it imports this module

    found = recurrent_layers(model_or_layer)
    name = getattr(model_or_layer, "name", type(model_or_layer).__name__)
    if not found:
        raise no_recurrent_layer(model_or_layer, "trace")
    if layer is None:
        return found
    for i, candidate in enumerate(found):
        if candidate is layer or candidate.name == layer or (_is_index(layer) and i == layer):
            return [candidate]
    if _is_index(layer) and -len(found) <= layer < 0:
        return [found[layer]]
    have = ", ".join(f"{i}: '{r.name}' ({type(r).__name__})" for i, r in enumerate(found))
    raise ValueError(
        f"trace: no recurrent layer {layer!r} in '{name}'; it has {have}. Pass layer= one of "
        "these names or positions."
    )


def _is_index(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _count_samples(x) -> int:
    leaves = _tree.flatten(x) if _is_structure(x) else [x]
    shape = getattr(leaves[0], "shape", None)
    if shape is None:
        shape = np.shape(leaves[0])
    if not shape:
        raise ValueError(
            f"trace: x must be a batch of sequences, (batch, timesteps, features); got a "
            f"scalar {leaves[0]!r}. For one sequence, x[None]."
        )
    return int(shape[0])


def _is_structure(x) -> bool:
    """Several inputs (a dict, or a list of arrays), rather than one nested-list array."""
    if isinstance(x, dict):
        return True
    return isinstance(x, (list, tuple)) and all(
        isinstance(v, (np.ndarray, torch.Tensor)) for v in x
    )


def _check_sample(sample, count: int) -> int:
    if not _is_index(sample):
        raise TypeError(f"trace: sample is the position of a sequence in x; got {sample!r}.")
    if count == 0:
        raise ValueError("trace: x holds no sequences; give at least one, (1, timesteps, ...).")
    if not -count <= sample < count:
        raise ValueError(
            f"trace: sample={sample} is out of range: x holds {count} sequence(s), so sample "
            f"must be in 0..{count - 1}."
        )
    return int(sample) % count


def _rows(values, sample: int):
    """Each array in `values` cut to the one sequence `sample` (batch of one)."""

    def cut(v):
        if v is None:
            return None
        if not isinstance(v, (np.ndarray, torch.Tensor)):
            v = np.asarray(v)
        return v[sample : sample + 1]

    x, mask, initial_state = values
    x = _tree.map_structure(cut, x) if _is_structure(x) else cut(x)
    return x, cut(mask), _tree.map_structure(cut, initial_state)


@dataclass
class _Call:
    """What a recurrent layer got when the model called it: its input `(B, T, D)`, the
    normalised mask `(B, T)` or None, and the states each direction starts from."""

    x: torch.Tensor
    mask: torch.Tensor | None
    states: list[list[torch.Tensor]]  # per direction
    start: str


def _capture(model_or_layer, x, chosen, mask, initial_state) -> dict:
    """Run the model once (no gradients, inference mode) and record each chosen layer's call;
    stateful layers' carried states are put back afterwards."""
    calls = {}

    def hook(module, args, kwargs):
        if module not in calls:
            calls[module] = _call_of(module, args[0], kwargs)

    handles = [r.register_forward_pre_hook(hook, with_kwargs=True) for r in chosen]
    carried = [(m, m.states) for m in model_or_layer.modules() if isinstance(m, RNN)]
    kwargs = {} if mask is None else {"mask": mask}
    if initial_state is not None:
        kwargs["initial_state"] = initial_state
    try:
        with torch.no_grad():
            model_or_layer(x, training=False, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
        for module, states in carried:
            module.states = states
    missing = [r.name for r in chosen if r not in calls]
    if missing:
        raise ValueError(
            f"trace: layer(s) {missing} did not run when the model was called on x, so there "
            "is nothing to trace; is the layer in the model's graph?"
        )
    return calls


def _call_of(layer, x, kwargs) -> _Call:
    mask = kwargs.get("mask")
    mask = None if mask is None else _check_mask(layer, mask, x)
    initial = kwargs.get("initial_state")
    batch, device = x.shape[0], x.device
    if isinstance(layer, Bidirectional):
        splits = layer._split_states(initial, "initial states") if initial is not None else None
        directions = (layer.forward_layer, layer.backward_layer)
        states = [
            d._start_states(None if splits is None else s, batch, device)
            for d, s in zip(directions, splits or (None, None))
        ]
        stateful = layer.stateful and layer.forward_layer.states is not None
    else:
        states = [layer._start_states(initial, batch, device)]
        stateful = layer.stateful and layer.states is not None
    start = "initial_state" if initial is not None else "carried" if stateful else "zeros"
    return _Call(x.detach(), mask, states, start)


def _trace_layer(layer, call: _Call, row: int) -> LayerTrace:
    x = call.x[row].detach().to("cpu", torch.float64).numpy()  # (T, D)
    mask = None if call.mask is None else call.mask[row].cpu().numpy()  # (T,)
    if isinstance(layer, Bidirectional):
        directions = [layer.forward_layer, layer.backward_layer]
        merge_mode = layer.merge_mode
    else:
        directions, merge_mode = [layer], None
    traced = [
        _trace_direction(d, x, mask, [s[row] for s in states], call.start)
        for d, states in zip(directions, call.states)
    ]
    return LayerTrace(layer.name, type(layer).__name__, traced, merge_mode)


def _trace_direction(rnn, x, mask, states, start) -> DirectionTrace:
    """Step the cell over `x` `(T, D)` in the order `rnn` reads it, as its reference loop does."""
    cell = rnn.cell
    kind, step_of = decomposition(cell)
    weights = weights_of(cell) if kind else {}
    states = [s.detach().to("cpu", torch.float64).numpy() for s in states]
    order = range(len(x) - 1, -1, -1) if rnn.go_backwards else range(len(x))
    steps, last = [], None
    for t in order:
        if mask is not None and not mask[t]:
            held = np.zeros(rnn.units) if rnn.zero_output_for_mask or last is None else last
            step = Step(t, x[t], states, states, held, skipped=True)
        elif kind:
            gates, new = step_of(cell, weights, x[t], states)
            step = Step(t, x[t], states, new, new[0], gates)
        else:
            y, new = custom_step(cell, x[t], states)
            step = Step(t, x[t], states, new, y)
        steps.append(step)
        states, last = step.states, step.output
    return DirectionTrace(
        name=rnn.name,
        cell=type(cell).__name__,
        kind=kind,
        units=rnn.units,
        go_backwards=rnn.go_backwards,
        state_names=_state_names(cell, len(states)),
        activations=_activation_names(cell),
        weights=weights,
        steps=steps,
        start=start,
        reset_after=getattr(cell, "reset_after", None) if kind == "GRU" else None,
    )


def _state_names(cell, count: int) -> tuple[str, ...]:
    names = getattr(cell, "state_names", None)
    if names and len(names) == count:
        return tuple(names)
    return ("h",) if count == 1 else tuple(f"state{i}" for i in range(count))


def _activation_names(cell) -> dict[str, str]:
    return {
        arg: activations.serialize(getattr(cell, arg))
        for arg in ("activation", "recurrent_activation")
        if callable(getattr(cell, arg, None))
    }
