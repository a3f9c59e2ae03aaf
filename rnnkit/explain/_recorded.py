"""What the views `memory`, `gradient_flow` and `states` share: finding the recurrences in a
model, checking the batch of sequences to explain, running the model without leaving a trace
on it, and keeping every step of its recurrent layers.

A *recurrence* is one cell run over time: a recurrent layer, each direction of a
`Bidirectional`, or each cell of a `StackedRNNCells`. To keep its hidden state `h_t` of every
step as a tensor of the forward pass (to read it, or to differentiate the loss with respect to
it), the layer runs its reference loop (`use_fused=False`), where each step is one call of the
cell, and the cell's `call` is wrapped to keep its arguments and result.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field

import torch

from rnnkit import _tree
from rnnkit.explain.trace import recurrent_layers
from rnnkit.layers._base import shape_str, to_tensor
from rnnkit.layers._bidirectional import Bidirectional
from rnnkit.layers._embedding import Embedding
from rnnkit.layers._rnn import RNN, StackedRNNCells, _check_mask

_UNSET = object()


@dataclass
class Recurrence:
    """One cell run over time; `name` is the layer's (`'lstm'`, `'forward_lstm'`) or, for a
    cell of a `StackedRNNCells`, `'<layer>/<cell>'`."""

    name: str
    layer: RNN  # the loop that runs the cell
    cell: object

    @property
    def kind(self) -> str:
        """'SimpleRNN', 'LSTM', 'GRU', or a custom cell's class name."""
        return type(self.cell).__name__.removesuffix("Cell")

    @property
    def units(self) -> int:
        return _tree.flatten(self.cell.state_size)[0]  # the size of h

    @property
    def read_at_every_step(self) -> bool:
        """Whether what follows reads every step's output (`return_sequences=True`, or a cell
        that feeds the next one in a stack), not only the last step's."""
        cells = getattr(self.layer.cell, "cells", [self.cell])
        return self.layer.return_sequences or self.cell is not cells[-1]


@dataclass
class Steps:
    """Every step of one call of a recurrence, in the order the layer reads the sequence
    (last input step first when `go_backwards`). Each entry is `(batch, size)`."""

    x: list = field(default_factory=list)  # x_t
    states_in: list = field(default_factory=list)  # [h_{t-1}] or [h_{t-1}, c_{t-1}]
    y: list = field(default_factory=list)  # the cell's output y_t: h_t for the built-in cells
    states_out: list = field(default_factory=list)  # the new states (before any mask)
    mask: torch.Tensor | None = None  # (batch, timesteps) in reading order; None: no mask

    def real(self) -> torch.Tensor:
        """`(batch, timesteps)` booleans: the steps the layer really took (not masked)."""
        if self.mask is not None:
            return self.mask
        return torch.ones(
            self.y[0].shape[0], len(self.y), dtype=torch.bool, device=self.y[0].device
        )


def find_recurrences(model, where: str) -> list[Recurrence]:
    """The recurrences of `model` (a model or a recurrent layer), in the model's layer order;
    a ValueError when it has none."""
    found = []
    for layer in recurrent_layers(model):
        directions = (
            [layer.forward_layer, layer.backward_layer]
            if isinstance(layer, Bidirectional)
            else [layer]
        )
        for rnn in directions:
            if isinstance(rnn.cell, StackedRNNCells):
                found += [Recurrence(f"{rnn.name}/{c.name}", rnn, c) for c in rnn.cell.cells]
            else:
                found.append(Recurrence(rnn.name, rnn, rnn.cell))
    if not found:
        raise no_recurrent_layer(model, where)
    return found


def no_recurrent_layer(model, where: str) -> ValueError:
    """The error for a model with nothing to explain, naming the layers it has."""
    layers = getattr(model, "layers", [])
    have = ", ".join(f"{x.name} ({type(x).__name__})" for x in layers) or "none"
    return ValueError(
        f"{where}: '{getattr(model, 'name', type(model).__name__)}' has no recurrent layer "
        f"(SimpleRNN, LSTM, GRU, RNN or Bidirectional) to explain; its layers: {have}. "
        "Pass a model built with one, e.g. Sequential([Input((T, D)), LSTM(16), Dense(1)])."
    )


def embeds(model) -> bool:
    """Whether the model reads token ids through an Embedding (then x is `(batch, timesteps)`)."""
    return any(isinstance(m, Embedding) for m in model.modules())


def sequences(model, x, where: str, dtype: torch.dtype) -> torch.Tensor:
    """`x` as a tensor on the model's device: `(batch, timesteps, features)` floats of `dtype`,
    or `(batch, timesteps)` ids for a model that embeds them. Raises what a wrong `x` needs."""
    if x is None:
        raise TypeError(f"{where}: x is missing; pass a batch of sequences, e.g. x_test[:64].")
    if isinstance(x, dict) or (
        isinstance(x, (list, tuple)) and x and all(hasattr(v, "shape") for v in x)
    ):
        raise TypeError(
            f"{where}: x must be one array of sequences; got a {type(x).__name__} of "
            f"{len(x)} arrays. Models with several inputs are not supported."
        )
    device = next(model.parameters(), torch.empty(0)).device
    x = to_tensor(x, device=device)
    ids = embeds(model)
    want = "(batch, timesteps) token ids" if ids else "(batch, timesteps, features)"
    if x.dim() != (2 if ids else 3):
        fix = f" For one sequence, pass x[None] (shape {shape_str((1, *x.shape))})."
        if x.dim() != (1 if ids else 2):
            fix = " Reshape it to that form."
        raise ValueError(f"{where}: x must be {want}; got shape {shape_str(tuple(x.shape))}.{fix}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{where}: x holds no steps to explain; got shape {shape_str(tuple(x.shape))}. "
            f"Give at least one sequence of at least one step, {want}."
        )
    return x if ids else x.to(dtype)


@contextlib.contextmanager
def left_as_it_was(model, reference_loop: bool = False):
    """Run the model inside with gradients on (even under the caller's `no_grad`) and leave it
    as it was: each recurrent layer's `use_fused` and a stateful layer's carried states are
    put back. With `reference_loop`, every recurrent layer runs its reference loop inside."""
    rnns = [m for m in model.modules() if isinstance(m, RNN)]
    fused = [(layer, vars(layer).get("use_fused", _UNSET)) for layer in rnns]
    carried = [(layer, layer.states) for layer in rnns]
    try:
        if reference_loop:
            for layer in rnns:
                layer.use_fused = False
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for layer, setting in fused:
            if setting is _UNSET:
                vars(layer).pop("use_fused", None)  # back to the class's setting
            else:
                layer.use_fused = setting
        for layer, states in carried:
            layer.states = states


@contextlib.contextmanager
def recording(recurrences: list[Recurrence]):
    """Keep every step of each recurrence while the model runs inside: yields
    `{name: Steps}`, filled by the model's next call (run it on the reference loop, see
    `left_as_it_was`). The cells' `call` are wrapped meanwhile, and restored after."""
    kept = {r.name: Steps() for r in recurrences}
    restore, handles = [], []
    for r in recurrences:
        restore.append((r.cell, vars(r.cell).get("call", _UNSET)))
        r.cell.call = _keeping(r.cell.call, kept[r.name])  # shadows the class's method
        hook = functools.partial(_start_call, kept[r.name])
        handles.append(r.layer.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield kept
    finally:
        for handle in handles:
            handle.remove()
        for cell, call in restore:
            if call is _UNSET:
                del cell.call
            else:
                cell.call = call


def _keeping(call, steps: Steps):
    # functools.wraps keeps the cell's signature visible, so the loop passes `training` only
    # to a cell whose call takes it, as it does unwrapped.
    @functools.wraps(call)
    def keeping(x_t, states, *args, **kwargs):
        y_t, new_states = call(x_t, states, *args, **kwargs)
        steps.x.append(x_t)
        steps.states_in.append(list(states))
        steps.y.append(y_t)
        steps.states_out.append(_tree.flatten(new_states))
        return y_t, new_states

    return keeping


def _start_call(steps: Steps, layer, args, kwargs):
    """A new call of the layer: forget an earlier call's steps, keep this one's mask."""
    steps.x, steps.states_in, steps.y, steps.states_out = [], [], [], []
    mask = kwargs.get("mask")
    if mask is not None:
        mask = _check_mask(layer, mask, args[0])
        mask = mask.flip(1) if layer.go_backwards else mask  # in reading order
    steps.mask = mask
