"""`states`: the hidden state of each recurrent layer over time, and how saturated its gates are.

The hidden state `h_t` is the network's memory (the notes call it so): a heatmap of one
sequence's `h_t` (units × steps) shows which units switch on when, and which hold a value
for many steps. For LSTM and GRU layers, the gates say how the memory is managed: a gate
near 0 or 1 is *saturated*, a switch rather than a dial (a forget gate near 1 keeps the
cell state; near 0 it wipes it), and it passes almost no gradient. Per unit, the share of
steps (of all the sequences given) at which each sigmoid gate is below 0.1 or above 0.9:

    LSTM   i, f, o = σ(x_t W_k + h_{t-1} U_k + b_k)
    GRU    z, r    = σ(x_t W_k + b_k + h_{t-1} U_k + b'_k)

    >>> import numpy as np
    >>> from rnnkit import Input, Sequential
    >>> from rnnkit.layers import Dense, LSTM
    >>> model = Sequential([Input((12, 3)), LSTM(6, name="lstm"), Dense(1)])
    >>> s = states(model, np.random.rand(8, 12, 3))
    >>> s["lstm"].states.shape, sorted(s["lstm"].saturation)
    ((12, 6), ['f', 'i', 'o'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.explain import _figure
from rnnkit.explain._recorded import (
    Recurrence,
    Steps,
    find_recurrences,
    left_as_it_was,
    recording,
    sequences,
)
from rnnkit.layers._gru import GRUCell
from rnnkit.layers._lstm import LSTMCell

LOW, HIGH = 0.1, 0.9  # a gate below LOW or above HIGH counts as saturated


@dataclass
class LayerStates:
    """One recurrence's hidden states for the sample, and its gates' saturation.

    Attributes:
        name, kind: the layer's name ('<layer>/<cell>' in a StackedRNNCells) and its cell
            type ('SimpleRNN', 'LSTM', 'GRU' or a custom cell's).
        states: `(T, units)`, `h_t` after each step of the sample, in the order the layer
            reads it (what its `return_sequences` output holds); a masked step keeps the
            state it had.
        real: `(T,)`, whether the sample's step was really taken (not masked).
        saturation: `{gate: {'low': (units,), 'high': (units,)}}`, the share of the steps of
            all sequences at which the gate was below 0.1 / above 0.9; `{}` for a cell
            without gates (SimpleRNN) or of unknown math (a custom cell).
        go_backwards: whether the layer reads the sequence backwards (its step 1 is the
            input's last step).
    """

    name: str
    kind: str
    states: np.ndarray
    real: np.ndarray
    saturation: dict[str, dict[str, np.ndarray]]
    go_backwards: bool

    def summary(self) -> str:
        units, steps = self.states.shape[1], self.states.shape[0]
        text = (
            f"{self.name} ({self.kind}, {units} units, {steps} steps): h in "
            f"[{self.states.min():.3g}, {self.states.max():.3g}]"
        )
        if self.saturation:
            shares = ", ".join(
                f"{gate} {float(np.mean(s['low'] + s['high'])):.0%}"
                for gate, s in self.saturation.items()
            )
            text += f"; gates saturated (<{LOW} or >{HIGH}): {shares}"
        return text


@dataclass
class States:
    """The hidden states of each recurrence for one sequence (see `states`); `s[name]` gives
    a layer's `LayerStates`."""

    layers: list[LayerStates]
    sample: int
    sequences: int  # how many sequences the saturation is over

    def __getitem__(self, name: str) -> LayerStates:
        for layer in self.layers:
            if layer.name == name:
                return layer
        have = ", ".join(repr(layer.name) for layer in self.layers)
        raise KeyError(f"states: no recurrent layer {name!r}; there are {have}.")

    def __str__(self) -> str:
        lines = [f"hidden states of sequence {self.sample} (of {self.sequences})"]
        return "\n".join(lines + [f"  {layer.summary()}" for layer in self.layers])

    def __repr__(self) -> str:
        return f"<States sample={self.sample} layers={[layer.name for layer in self.layers]}>"

    def to_dict(self) -> dict:
        """The numbers, JSON-ready: `states` is a list of steps, each a list of units."""
        return {
            "sample": self.sample,
            "sequences": self.sequences,
            "low": LOW,
            "high": HIGH,
            "layers": [
                {
                    "name": layer.name,
                    "kind": layer.kind,
                    "units": int(layer.states.shape[1]),
                    "steps": int(layer.states.shape[0]),
                    "go_backwards": layer.go_backwards,
                    "states": layer.states.tolist(),
                    "real": layer.real.tolist(),
                    "saturation": {
                        gate: {key: values.tolist() for key, values in shares.items()}
                        for gate, shares in layer.saturation.items()
                    },
                }
                for layer in self.layers
            ],
        }

    def plot(self, path=None):
        """Per layer, a heatmap of the sample's states (units × steps, red above 0, blue below)
        and, for LSTM/GRU, its gates' saturation per unit; returns the matplotlib Figure, and
        writes it to `path` (PNG or SVG, by the suffix)."""
        _figure.check_path(path, "states")
        heights = [max(2.2, 0.9 + 0.16 * layer.states.shape[1]) for layer in self.layers]
        figure = _figure.new_figure(9.0, sum(heights) + 0.4)
        grid = figure.add_gridspec(
            len(self.layers), 2, width_ratios=(4, 1.4), height_ratios=heights
        )
        for row, layer in enumerate(self.layers):
            _draw_heatmap(figure, figure.add_subplot(grid[row, 0]), layer, self.sample)
            if layer.saturation:
                _draw_saturation(figure, figure.add_subplot(grid[row, 1]), layer)
        if path is not None:
            _figure.save(figure, path)
        return figure

    def _repr_html_(self) -> str:
        return _figure.html(str(self), self.plot())


def states(model, x, sample=0) -> States:
    """The hidden states over time of each recurrent layer of `model`, for sequence `sample`
    of `x`, and (LSTM, GRU) the saturation of their gates over all of `x`.

    Args:
        model: a model (or layer) with recurrent layers.
        x: `(batch, timesteps, features)`, or `(batch, timesteps)` token ids.
        sample: the sequence of `x` whose states are kept (negative counts from the end).

    The layers run their reference loop on `x` as in `predict` (no dropout); their fast
    paths compute the same states. The model's carried states are left as they were.

    Returns:
        A `States`: `.layers` (each with `.states`, `.saturation`), `.plot()`, `.to_dict()`.
    """
    recurrences = find_recurrences(model, "states")
    x = sequences(model, x, "states", recurrences[0].layer.dtype)
    count = x.shape[0]
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)):
        raise TypeError(f"states: sample is the position of a sequence in x; got {sample!r}.")
    if not -count <= sample < count:
        raise ValueError(
            f"states: sample={sample} is out of range: x holds {count} sequence(s), so sample "
            f"must be in 0..{count - 1}."
        )
    sample = int(sample) % count
    # no_grad last: left_as_it_was turns gradients on
    with left_as_it_was(model, True), recording(recurrences) as kept, torch.no_grad():
        model(x, training=False)
    layers = [_layer_states(r, kept[r.name], sample) for r in recurrences]
    return States(layers, sample, count)


def _layer_states(r: Recurrence, steps: Steps, sample: int) -> LayerStates:
    real = steps.real()  # (B, T)
    held = _held(steps, real)  # (B, T, units)
    return LayerStates(
        name=r.name,
        kind=r.kind,
        states=held[sample].double().cpu().numpy(),
        real=real[sample].cpu().numpy(),
        saturation=_saturation(r.cell, steps, real),
        go_backwards=r.layer.go_backwards,
    )


def _held(steps: Steps, real: torch.Tensor) -> torch.Tensor:
    """`h` after each step `(B, T, units)`: the state the next step starts from, and after
    the last step the new one (the old one where that step is masked)."""
    after = [states[0] for states in steps.states_in[1:]]  # h_1 .. h_{T-1}
    keep = real[:, -1:]  # (B, 1)
    after.append(torch.where(keep, steps.states_out[-1][0], steps.states_in[-1][0]))
    return torch.stack(after, dim=1)


def _saturation(cell, steps: Steps, real: torch.Tensor) -> dict[str, dict[str, np.ndarray]]:
    """Per gate, the share of the really taken steps (of every sequence) at which each unit's
    gate is below LOW / above HIGH."""
    if not real.any():
        return {}
    x = torch.stack(steps.x, dim=1)[real]  # (N, features): every real step of every sequence
    h_prev = torch.stack([states[0] for states in steps.states_in], dim=1)[real]  # (N, units)
    with torch.no_grad():
        gates = _gates(cell, x, h_prev)
    return {
        name: {
            "low": (g < LOW).double().mean(0).cpu().numpy(),
            "high": (g > HIGH).double().mean(0).cpu().numpy(),
        }
        for name, g in gates.items()
    }


def _gates(cell, x, h_prev) -> dict[str, torch.Tensor]:
    """The sigmoid gates of an LSTM (i, f, o) or GRU (z, r) cell, `(N, units)` each, by the
    cell's own math (see `LSTMCell.call`, `GRUCell.call`) for rows of `x_t` and `h_{t-1}`;
    `{}` for other cells. (The trace's `_trace_steps` takes one sequence's step apart in
    numpy; this is the same math for many rows at once.)"""
    cls = type(cell).call
    if cls is LSTMCell.call:
        z = x @ cell.kernel + h_prev @ cell.recurrent_kernel
        if cell.bias is not None:
            z = z + cell.bias
        i, f, _, o = z.chunk(4, dim=-1)
        sigma = cell.recurrent_activation
        return {"i": sigma(i), "f": sigma(f), "o": sigma(o)}
    if cls is GRUCell.call:
        units = cell.units
        z = x @ cell.kernel[:, : 2 * units] + h_prev @ cell.recurrent_kernel[:, : 2 * units]
        for bias in cell._biases():  # input bias, and the recurrent one with reset_after
            if bias is not None:
                z = z + bias[: 2 * units]
        z_gate, r_gate = cell.recurrent_activation(z).chunk(2, dim=-1)
        return {"z": z_gate, "r": r_gate}
    return {}


def _draw_heatmap(figure, ax, layer: LayerStates, sample: int) -> None:
    values = layer.states.T  # (units, T)
    limit = max(float(np.abs(values).max()), 1e-12)  # centred at 0: red up, blue down
    steps, units = values.shape[1], values.shape[0]
    image = ax.imshow(
        values,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        interpolation="nearest",
        extent=(0.5, steps + 0.5, units - 0.5, -0.5),
    )
    for t in np.flatnonzero(~layer.real):  # masked steps: the state is only carried
        ax.axvspan(t + 0.5, t + 1.5, color="grey", alpha=0.35, linewidth=0)
    backwards = " (reads backwards: step 1 is the last input)" if layer.go_backwards else ""
    ax.set_title(f"{layer.name} ({layer.kind}): h_t of sequence {sample}{backwards}", fontsize=10)
    ax.set_xlabel("step t" + (", grey: masked" if not layer.real.all() else ""))
    ax.set_ylabel("unit")
    _figure.integer_ticks(ax.xaxis)
    _figure.integer_ticks(ax.yaxis)  # units are counted too (a 2-unit layer showed 0.5)
    figure.colorbar(image, ax=ax, label="$h_t$", fraction=0.05, pad=0.02)


def _draw_saturation(figure, ax, layer: LayerStates) -> None:
    columns = [(gate, key) for gate in layer.saturation for key in ("low", "high")]
    shares = np.stack([layer.saturation[gate][key] for gate, key in columns], axis=1)
    units = shares.shape[0]
    image = ax.imshow(
        shares, aspect="auto", cmap="Purples", vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(
        [f"{gate}<{LOW}" if key == "low" else f"{gate}>{HIGH}" for gate, key in columns],
        rotation=90,
        fontsize=8,
    )
    if units <= 8:  # small enough to write each share on its square (text is slow to draw)
        ax.set_yticks(range(units))
        for (unit, column), share in np.ndenumerate(shares):
            colour = "white" if share > 0.6 else "black"
            ax.text(
                column, unit, f"{share:.0%}", ha="center", va="center", fontsize=7, color=colour
            )
    ax.set_ylabel("unit")
    ax.set_title("gate saturation", fontsize=10)
    figure.colorbar(image, ax=ax, fraction=0.08, pad=0.03, label="share of steps")
