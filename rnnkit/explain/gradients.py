"""`gradient_flow`: the gradient of the loss at every step of each recurrent layer.

Backpropagation through time carries `∂L/∂h_t` from the last step back to the first, one
multiplication by the step's Jacobian `∂h_t/∂h_{t-1}` at a time. Its size at each step shows
whether the early steps still get a say in training:

    decay = ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖

is the factor by which the gradient shrinks (below 1) or grows (above 1) going back from the
last step to the first. The notes' arithmetic (seed 002): a recurrent weight of 0.5 over 50
steps gives 0.5^50 ≈ 9e-16, the gradient vanishes; a weight of 2 gives 2^50 ≈ 1e15, it
explodes. LSTM and GRU gates keep it near 1 when the model needs the early steps.

    >>> import numpy as np
    >>> from rnnkit import Input, Sequential
    >>> from rnnkit.layers import Dense, SimpleRNN
    >>> model = Sequential([Input((30, 2)), SimpleRNN(4, name="rnn"), Dense(1)])
    >>> flow = gradient_flow(model, np.ones((8, 30, 2)), np.zeros((8, 1)), loss="mse")
    >>> flow.norms["rnn"].shape
    (30,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnkit import losses
from rnnkit.explain import _figure
from rnnkit.explain._recorded import find_recurrences, left_as_it_was, recording, sequences
from rnnkit.layers._base import get_mask, to_tensor

# The gradient that reaches the weights is a sum over steps, and step 1's term is `decay`
# times step T's. Below 1e-4 the first steps add less than the fourth significant digit of an
# update: what the model could learn from them is lost among the recent steps' terms (Bengio,
# Simard & Frasconi, 1994). Above 1e4 it is the mirror image: the oldest steps' terms swamp
# the update, whose size then swings with them and overshoots (Pascanu, Mikolov & Bengio,
# 2013): the regime where gradient clipping helps. Over 30 steps these are per-step factors
# of 0.73 and 1.37.
VANISH_BELOW = 1e-4
EXPLODE_ABOVE = 1e4


@dataclass
class Flow:
    """`‖∂L/∂h_t‖` at each step of each recurrence (see `gradient_flow`).

    Attributes:
        norms: `{name: (T,) array}`, the norm at each step in the order the layer reads the
            sequence (a `go_backwards` layer, or a Bidirectional's backward half, reads the
            last input step first). A masked step's gradient is zero.
        decay: `{name: ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖}`, between the first and last steps any sequence
            really takes (inf when the last step's gradient is zero).
        kinds: `{name: 'SimpleRNN' | 'LSTM' | 'GRU' | custom cell}`.
        every_step: `{name: bool}`, whether what follows reads the layer at every step
            (`return_sequences=True`, a cell that feeds the next one in a stack). Such a
            layer's gradient enters at every step, so its decay mixes where the gradient
            enters with how it fades; `health` does not judge it.
        loss: the loss differentiated, as `fit` computes it (penalties included).
    """

    norms: dict[str, np.ndarray]
    decay: dict[str, float]
    kinds: dict[str, str]
    every_step: dict[str, bool]
    loss: float

    def health(self, vanish_below=VANISH_BELOW, explode_above=EXPLODE_ABOVE) -> dict[str, str]:
        """`{name: 'vanishing' | 'exploding' | 'healthy' | 'not judged'}` by each layer's
        decay; 'not judged' for a layer read at every step (see `every_step`) or one the
        loss does not reach."""
        return {
            name: "not judged"
            if self.every_step[name]
            else _health(decay, vanish_below, explode_above)
            for name, decay in self.decay.items()
        }

    def __str__(self) -> str:
        lines = [f"gradient flow (loss {self.loss:.4g}): ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ per layer"]
        health = self.health()
        for name, norms in self.norms.items():
            why = ", read at every step" if self.every_step[name] else ""
            lines.append(
                f"  {name} ({self.kinds[name]}, {len(norms)} steps): "
                f"{self.decay[name]:.2e} ({health[name]}{why})"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        decays = ", ".join(f"{name}={d:.2e}" for name, d in self.decay.items())
        return f"<Flow {decays}>"

    def to_dict(self) -> dict:
        """The numbers, JSON-ready; a decay that is not finite is None."""
        health = self.health()
        return {
            "loss": float(self.loss),
            "vanish_below": VANISH_BELOW,
            "explode_above": EXPLODE_ABOVE,
            "layers": [
                {
                    "name": name,
                    "kind": self.kinds[name],
                    "steps": len(norms),
                    "norms": [float(v) for v in norms],
                    "decay": _figure.json_float(self.decay[name]),
                    "every_step": self.every_step[name],
                    "health": health[name],
                }
                for name, norms in self.norms.items()
            ],
        }

    def plot(self, path=None):
        """`‖∂L/∂h_t‖` against the step, one curve per layer, on a log axis; returns the
        matplotlib Figure, and writes it to `path` (PNG or SVG, by the suffix)."""
        _figure.check_path(path, "gradient_flow")
        rows = (len(self.norms) + 1) // 2  # of the legend, two layers a row, under the plot
        figure = _figure.new_figure(7.2, 3.9 + 0.22 * rows)
        ax = figure.add_subplot()
        for name, norms in self.norms.items():
            steps = np.arange(1, len(norms) + 1)
            shown = norms > 0  # a log axis cannot show a zero gradient (masked steps)
            label = f"{name} ({self.kinds[name]}): decay {self.decay[name]:.1e}"
            if self.every_step[name]:
                label += ", read at every step"
            ax.semilogy(steps[shown], norms[shown], marker="o", markersize=3, label=label)
        ax.set_xlabel("step t, in the order the layer reads the sequence (T: its last)")
        ax.set_ylabel(r"$\|\partial L / \partial h_t\|$")
        ax.set_title(
            r"Gradient flow: decay = $\|\partial L/\partial h_1\|\,/\,\|\partial L/\partial h_T\|$",
            fontsize=10,
        )
        ax.grid(alpha=0.3, which="both")
        _figure.integer_ticks(ax.xaxis)
        figure.legend(loc="outside lower center", ncols=min(2, len(self.norms)), fontsize=8)
        if path is not None:
            _figure.save(figure, path)
        return figure

    def _repr_html_(self) -> str:
        return _figure.html(str(self), self.plot())


def gradient_flow(model, x, y, loss=None) -> Flow:
    """`‖∂L/∂h_t‖` at every step `t` of each recurrent layer of `model`, on the batch `(x, y)`.

    Args:
        model: a model (or layer) with recurrent layers.
        x: inputs, `(batch, timesteps, features)` or `(batch, timesteps)` token ids.
        y: the targets for `x`.
        loss: the loss `L` (a name such as 'mse', a Loss, or a function); None: the model's
            compiled loss. `L` is reduced over the batch as the loss defines (the mean, by
            default), so `∂L/∂h_t` is `(batch, units)` and its norm is over both.

    `h_t` is the state after step `t` as the layer's reference loop computes it (every layer
    runs its reference loop for this, which its fast paths equal), and `∂L/∂h_t` is the
    whole gradient backpropagation carries to it, through all later steps and layers. The
    model runs as in `predict` (no dropout); its weights, their `.grad` and carried states
    are left as they were.

    Returns:
        A `Flow`: `.norms`, `.decay`, `.health()`, `.plot()`, `.to_dict()`.
    """
    recurrences = find_recurrences(model, "gradient_flow")
    loss_fn = _loss_of(model, loss)
    if y is None:
        raise ValueError(
            "gradient_flow: y (the targets) is missing; the loss needs them: "
            "gradient_flow(model, x, y)."
        )
    x = sequences(model, x, "gradient_flow", recurrences[0].layer.dtype)
    y = to_tensor(y, device=x.device)
    if y.dim() == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"gradient_flow: y must have one target per sequence: x has {x.shape[0]}, y has "
            f"{'none (a scalar)' if y.dim() == 0 else y.shape[0]}."
        )
    with left_as_it_was(model, reference_loop=True), recording(recurrences) as kept:
        value = _loss_value(model, loss_fn, x, y)
        hs = [h for r in recurrences for h in kept[r.name].y]
        grads = _gradients(value, hs)
    flows, start = {}, 0
    for r in recurrences:
        steps = kept[r.name]
        count = len(steps.y)
        flows[r.name] = (grads[start : start + count], steps.real())
        start += count
    norms = {
        # float64: squaring an exploding float32 gradient would overflow to inf
        name: np.array([float(g.double().norm()) for g in gs])
        for name, (gs, _) in flows.items()
    }
    return Flow(
        norms=norms,
        decay={name: _decay(norms[name], real) for name, (_, real) in flows.items()},
        kinds={r.name: r.kind for r in recurrences},
        every_step={r.name: r.read_at_every_step for r in recurrences},
        loss=float(value.detach()),
    )


def _loss_of(model, loss):
    if loss is not None:
        return losses.get(loss)
    if getattr(model, "loss", None) is None:
        raise ValueError(
            f"gradient_flow: '{model.name}' is not compiled, so it has no loss to "
            "differentiate. Pass one, gradient_flow(model, x, y, loss='mse'), or compile the "
            "model first: model.compile(optimizer='adam', loss='mse')."
        )
    return model.loss


def _loss_value(model, loss_fn, x, y) -> torch.Tensor:
    """The loss as `fit` computes it, on predictions made without dropout."""
    y_pred = model(x, training=False)
    if isinstance(y_pred, (list, tuple)):
        raise ValueError(
            f"gradient_flow: '{model.name}' returns {len(y_pred)} tensors; the loss takes one "
            "output. Explain a model with one output (without return_state=True)."
        )
    value = loss_fn(y, y_pred, mask=get_mask(y_pred))
    penalties = model.losses  # regularization, as fit adds it
    if penalties:
        value = value + torch.stack([p.reshape(()) for p in penalties]).sum()
    return value


def _gradients(value, hs) -> list[torch.Tensor]:
    """`∂value/∂h` for each `h`, zeros where `value` does not depend on it."""
    grads = [None] * len(hs)
    if value.requires_grad:
        grads = torch.autograd.grad(value, hs, allow_unused=True)
    return [torch.zeros_like(h) if g is None else g.detach() for g, h in zip(grads, hs)]


def _decay(norms: np.ndarray, real: torch.Tensor) -> float:
    """`‖∂L/∂h_first‖ / ‖∂L/∂h_last‖` over the steps some sequence really takes."""
    taken = np.flatnonzero(real.any(0).cpu().numpy())
    if taken.size == 0:
        return float("nan")
    first, last = norms[taken[0]], norms[taken[-1]]
    if last == 0:
        return float("inf") if first > 0 else float("nan")
    return float(first / last)


def _health(decay: float, vanish_below: float, explode_above: float) -> str:
    if decay < vanish_below:
        return "vanishing"
    if decay > explode_above:
        return "exploding"
    return "healthy" if decay == decay else "not judged"  # NaN: no gradient reaches it
