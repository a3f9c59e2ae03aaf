"""`memory`: how far back a model remembers, measured on its own inputs.

The influence of the input `k` steps back on the output is the size of the gradient

    influence(k) = mean over sequences of ‖∂ŷ / ∂x_{t−k}‖

(the Frobenius norm over the output's units and the input step's features), normalised to its
peak. The memory horizon is the largest lag `k` whose influence is still at least `threshold`
(1%) of the peak: the output depends on the last `horizon + 1` steps. For a linear RNN with
`U = a·I` the influence is `a^k`, and the horizon `floor(log(threshold) / log(a))`.

    >>> import numpy as np
    >>> from rnnkit import Input, Sequential
    >>> from rnnkit.layers import Dense, GRU
    >>> model = Sequential([Input((20, 3)), GRU(8), Dense(1)])
    >>> m = memory(model, np.random.rand(16, 20, 3).astype("float32"))
    >>> float(m.influence.max()), len(m.lags), 0 <= m.horizon < 20
    (1.0, 20, True)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.explain import _figure
from rnnkit.explain._recorded import embeds, find_recurrences, left_as_it_was, sequences
from rnnkit.layers._base import shape_str
from rnnkit.layers._embedding import Embedding
from rnnkit.layers._rnn import RNN, _check_mask

# Rows of one forward and backward pass: the sequences, repeated once for each output unit
# differentiated in the same pass. Bounds the memory a pass takes, not the result.
ROWS = 2048


@dataclass
class Memory:
    """The influence of each lag on the output, and the memory horizon (see `memory`).

    Attributes:
        lags: `0, 1, ..., T-1`: steps back from the output's step.
        influence: the influence at each lag, normalised to a peak of 1.
        raw: the mean gradient norms before normalising.
        horizon: the largest lag whose influence is at least `threshold`; -1 when the output
            does not depend on the input at all.
        threshold: the share of the peak that counts as influence (0.01: 1%).
        output: the output step differentiated (-1: the last).
        sequences: how many sequences the means are over.
    """

    lags: np.ndarray
    influence: np.ndarray
    raw: np.ndarray
    horizon: int
    threshold: float
    output: int
    sequences: int

    @property
    def steps(self) -> int:
        """How many of the most recent steps the output depends on: `horizon + 1`."""
        return self.horizon + 1

    def __str__(self) -> str:
        if self.horizon < 0:
            return "the output does not depend on the input (its gradient is zero at every step)"
        plural = "" if self.steps == 1 else "s"
        return (
            f"the output depends on the last {self.steps} step{plural} "
            f"(influence ≥ {self.threshold * 100:g}% of its peak)"
        )

    def __repr__(self) -> str:
        return f"<Memory horizon={self.horizon} lags={len(self.lags)} sequences={self.sequences}>"

    def to_dict(self) -> dict:
        """The numbers, JSON-ready (lists and plain floats)."""
        return {
            "lags": self.lags.tolist(),
            "influence": [float(v) for v in self.influence],
            "raw": [float(v) for v in self.raw],
            "horizon": self.horizon,
            "steps": self.steps,
            "threshold": self.threshold,
            "output": self.output,
            "sequences": self.sequences,
        }

    def plot(self, path=None):
        """Influence against lag on a log axis, the threshold and the horizon marked; returns
        the matplotlib Figure, and writes it to `path` (PNG or SVG, by the suffix)."""
        _figure.check_path(path, "memory")
        figure = _figure.new_figure(6.4, 3.9)
        ax = figure.add_subplot()
        shown = self.influence > 0  # a log axis cannot show zero influence
        ax.semilogy(self.lags[shown], self.influence[shown], marker="o", markersize=3.5)
        label = f"threshold: {self.threshold * 100:g}% of the peak"
        ax.axhline(self.threshold, color="grey", linestyle=":", label=label)
        if self.horizon >= 0:
            ax.axvline(
                self.horizon, color="C3", linestyle="--", label=f"horizon: lag {self.horizon}"
            )
        ax.set_xlabel("lag k: steps back from the output's step")
        ax.set_ylabel(r"influence $\|\partial\hat y / \partial x_{t-k}\|$ (peak = 1)")
        ax.set_title(f"Memory: {self}", fontsize=10)
        ax.set_xlim(-0.5, max(len(self.lags) - 0.5, 1))
        _figure.integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper right", fontsize=9)
        if path is not None:
            _figure.save(figure, path)
        return figure

    def _repr_html_(self) -> str:
        return _figure.html(f"Memory: {self}", self.plot())


def memory(model, x, output=-1, threshold=0.01, units=None) -> Memory:
    """How far back `model`'s output depends on its input: the influence of each lag.

    Args:
        model: a model (or layer) with recurrent layers. One that reads token ids through an
            Embedding is differentiated with respect to the Embedding's output, the vectors
            the first recurrent layer reads.
        x: the sequences to average over, `(batch, timesteps, features)`, or `(batch,
            timesteps)` token ids.
        output: the output step `ŷ` is taken at, for a model whose output has a time axis
            (`return_sequences=True`): an index, negative counting from the end, where the
            end is each sequence's last unmasked step. Lags count back from that step when
            the output's time axis is the input's, else from the last input step. A model
            with one output per sequence takes only -1.
        threshold: the share of the peak influence the horizon keeps (0.01: 1%).
        units: which output units `ŷ` is (an index or a list); None: all.

    Masked (padded) steps have no influence: the layers skip them. Lags count back from
    each sequence's last unmasked step, and each lag is averaged over the sequences whose
    step at that lag is real (neither before the start nor masked); a lag no sequence has
    gets 0.
    The model runs as in `predict` (no dropout) on its own kernels, the GPU's included;
    its weights, gradients and carried states are left as they were.

    Returns:
        A `Memory`: `.lags`, `.influence`, `.raw`, `.horizon` (and `.steps`, its count of
        recent steps), `.plot()`, `.to_dict()`; `str()` says it in a sentence.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"memory: threshold must be a number in (0, 1]; got {threshold!r}.")
    if not 0 < threshold <= 1:
        raise ValueError(
            f"memory: threshold is the share of the peak influence that still counts and must "
            f"be in (0, 1]; got {threshold}. For 1% of the peak, threshold=0.01."
        )
    if isinstance(output, bool) or not isinstance(output, (int, np.integer)):
        raise TypeError(f"memory: output is the index of an output step; got {output!r}.")
    recurrences = find_recurrences(model, "memory")
    x = sequences(model, x, "memory", recurrences[0].layer.dtype)
    with left_as_it_was(model):
        norms, anchors, real = _gradient_norms(model, x, int(output), units)
    raw = _by_lag(norms, anchors, real)
    peak = raw.max()
    influence = raw / peak if peak > 0 else np.zeros_like(raw)
    above = np.flatnonzero(influence >= threshold)
    return Memory(
        lags=np.arange(len(raw)),
        influence=influence,
        raw=raw,
        horizon=int(above[-1]) if above.size else -1,
        threshold=float(threshold),
        output=int(output),
        sequences=int((anchors >= 0).sum()),
    )


def _gradient_norms(model, x, output, units):
    """`(norms, anchors, real)`: `‖∂ŷ/∂x_s‖` for each sequence and input step `s`, `(B, T)`;
    the step each sequence's lags count back from, `(B,)` (-1: a sequence with nothing to
    count); and which steps are real (unmasked), `(B, T)`.

    One forward and backward pass takes a group of output units at once: the batch is
    repeated once per unit, and the sum of unit `j` over the `j`-th copy is differentiated,
    which gives every sequence's and every step's gradient of that unit in the same pass.
    """
    carried = [(m, m.states) for m in model.modules() if isinstance(m, RNN) and m.stateful]
    with torch.no_grad():
        y, mask = _run(model, x, carried, 1, [])
    real = mask if mask is not None else torch.ones(x.shape[:2], dtype=torch.bool)
    real = real.to(x.device)
    steps_out, anchors = _anchors(model, y, real, output)
    chosen = _units(model, units, _flat(y, steps_out).shape[-1])
    group = max(1, ROWS // x.shape[0])
    squares = torch.zeros(x.shape[:2], dtype=torch.float64, device=x.device)
    for start in range(0, len(chosen), group):
        squares += _squared_gradients(model, x, carried, steps_out, chosen[start : start + group])
    return squares.sqrt().cpu(), anchors.cpu(), real.cpu()


def _run(model, x, carried, copies: int, leaves: list):
    """The model's output on `copies` stacked copies of `x`, and the mask its first recurrent
    layer got (None: none). The inputs differentiated are appended to `leaves`: the Embedding
    outputs of a model that embeds ids, else the input itself."""
    for layer, states in carried:  # each copy starts from the layer's carried states
        layer.states = None if states is None else [s.repeat(copies, 1) for s in states]
    inputs = x.repeat(copies, *[1] * (x.dim() - 1))  # (copies * B, T, ...)
    masks = []

    def keep_mask(layer, args, kwargs):
        if not masks and kwargs.get("mask") is not None:
            mask = _check_mask(layer, kwargs["mask"], args[0])
            if tuple(mask.shape) == tuple(inputs.shape[:2]):  # on the input's time axis
                masks.append(mask)

    def as_leaf(layer, args, out):
        leaf = out.detach().requires_grad_(True)
        leaves.append(leaf)
        return leaf  # the model continues from the leaf, with the Embedding's mask on it

    handles = [
        m.register_forward_pre_hook(keep_mask, with_kwargs=True)
        for m in model.modules()
        if isinstance(m, RNN)
    ]
    if embeds(model):
        handles += [
            m.register_forward_hook(as_leaf) for m in model.modules() if isinstance(m, Embedding)
        ]
    elif torch.is_grad_enabled():
        inputs = inputs.detach().requires_grad_(True)
        leaves.append(inputs)
    try:
        y = model(inputs, training=False)
    finally:
        for handle in handles:
            handle.remove()
    if isinstance(y, (list, tuple)):
        raise ValueError(
            f"memory: '{model.name}' returns {len(y)} tensors; memory explains a model with one "
            "output. Wrap the part to explain in a Model with one output (without "
            "return_state=True)."
        )
    return y, masks[0] if masks else None


def _anchors(model, y, real, output):
    """`(steps_out, anchors)`: the output step taken for each sequence (None: the output has
    no time axis) and the input step its lags count back from (-1: none)."""
    steps = real.shape[1]
    # each sequence's last unmasked step (-1 when all of it is masked)
    last = torch.where(real.any(1), steps - 1 - real.flip(1).int().argmax(1), -1)
    if y.dim() <= 2:
        if output != -1:
            raise ValueError(
                f"memory: '{model.name}' gives one output per sequence, shape "
                f"{shape_str(tuple(y.shape))}, computed at its last step; output={output} "
                "picks a step of an output with a time axis (return_sequences=True). Leave "
                "output=-1."
            )
        return None, last
    length = y.shape[1]
    if not -length <= output < length:
        raise ValueError(
            f"memory: output={output} is out of range for '{model.name}''s output of "
            f"{length} steps, shape {shape_str(tuple(y.shape))}; use -1 for the last step."
        )
    aligned = length == steps  # the output's time axis is the input's
    if output >= 0:
        steps_out = torch.full_like(last, output)
    else:
        steps_out = last + 1 + output if aligned else torch.full_like(last, length + output)
    anchors = steps_out if aligned else last
    anchors = torch.where((steps_out >= 0) & (last >= 0), anchors, -1)
    return steps_out.clamp(min=0), anchors


def _flat(y, steps_out):
    """The output at each sequence's step, units flattened: `(B, units)`."""
    if steps_out is None:
        return y.reshape(y.shape[0], -1)
    rows = torch.arange(y.shape[0], device=y.device)
    return y[rows, steps_out.repeat(y.shape[0] // len(steps_out))].reshape(y.shape[0], -1)


def _units(model, units, width: int) -> list[int]:
    if units is None:
        return list(range(width))
    chosen = [units] if isinstance(units, (int, np.integer)) else list(units)
    bad = [u for u in chosen if isinstance(u, bool) or not -width <= u < width]
    if bad or not chosen:
        raise ValueError(
            f"memory: units picks output units of '{model.name}', which has {width}; got "
            f"{units!r}. Pass indices in 0..{width - 1}, or None for all of them."
        )
    return [int(u) % width for u in chosen]


def _squared_gradients(model, x, carried, steps_out, chosen: list[int]):
    """`Σ_j ‖∂ŷ_j/∂x_s‖²` over the units `chosen`, for each sequence and step `(B, T)`."""
    copies, batch = len(chosen), x.shape[0]
    leaves = []
    y, _ = _run(model, x, carried, copies, leaves)
    flat = _flat(y, steps_out).view(copies, batch, -1)  # (copies, B, units)
    rows = torch.arange(copies, device=y.device)
    picked = flat[rows, :, torch.tensor(chosen, device=y.device)]  # (copies, B): unit j of copy j
    squares = torch.zeros(x.shape[:2], dtype=torch.float64, device=x.device)
    if not picked.requires_grad:  # the output does not depend on anything differentiated
        return squares
    grads = torch.autograd.grad(picked.sum(), leaves, allow_unused=True)
    for grad in grads:
        if grad is not None:  # (copies * B, T, features) -> (B, T)
            squares += grad.double().view(copies, batch, x.shape[1], -1).pow(2).sum((0, 3))
    return squares


def _by_lag(norms: torch.Tensor, anchors: torch.Tensor, real: torch.Tensor) -> np.ndarray:
    """The mean norm at each lag `(T,)`, over the sequences whose step at that lag is real."""
    steps = norms.shape[1]
    positions = anchors[:, None] - torch.arange(steps)[None, :]  # (B, T): the step at lag k
    at = positions.clamp(min=0)
    valid = (positions >= 0) & real.gather(1, at)
    values = norms.gather(1, at) * valid
    return (values.sum(0) / valid.sum(0).clamp(min=1)).numpy()
