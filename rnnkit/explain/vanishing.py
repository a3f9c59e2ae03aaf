"""`vanishing`: the notes' experiment, measured. How far back can each cell learn to remember?

The notes explain why a plain RNN forgets: the gradient that reaches a step `k` back has been
multiplied by the recurrent weight `k` times, so a weight of 2 over 50 steps gives
`2^50 ≈ 1.1e15` (exploding) and a weight of 0.5 gives `0.5^50 ≈ 8.9e-16` (vanishing), and
LSTM and GRU were made to carry memory further. This trains SimpleRNN, LSTM and GRU of the
same size on one task whose answer lies `k` steps back, for growing `k`:

    x: k + 1 numbers drawn uniformly from [-1, 1] (one feature per step)
    y: the first of them, x_0: the input k steps before the last

and reports, for each cell and `k`, the error left after training (the validation MSE as a
share of the target's variance, 1/3: 0 is perfect recall, 1 is no better than always
answering 0), the trained model's measured memory horizon (`rnnkit.explain.memory`), and
the notes' quantity itself before training: how much of the loss's gradient at the last step
is left at the first, `‖∂L/∂h_1‖ / ‖∂L/∂h_T‖` (`rnnkit.explain.gradient_flow`). A cell has
learned a `k` when its error is at most 10%.

    >>> result = vanishing(ks=(2, 4), cells=("SimpleRNN",), epochs=3, samples=128)
    >>> sorted(result.to_dict())
    ['cells', 'decays', 'errors', 'horizons', 'ks', 'learned_up_to', 'notes', 'settings']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from rnnkit.explain import _figure

CELLS = ("SimpleRNN", "LSTM", "GRU")
LEARNED = 0.1  # a k is learned when the error left is at most this share of the variance
TARGET_VARIANCE = 1 / 3  # of x_0 ~ U(-1, 1): what always answering 0 leaves


@dataclass
class Settings:
    """How `vanishing` trains: the same for every cell, so only the cell differs."""

    ks: tuple = (5, 10, 20, 40, 80)  # the lags tried; 80 is past what 40 epochs teach any
    cells: tuple = CELLS
    units: int = 16  # the notes' small layers; each cell gets the same hidden size
    epochs: int = 40  # ~20 s for the whole table on 2 cores; longer lags need more
    samples: int = 1024  # training sequences per k (another 256 validate)
    learning_rate: float = 0.01  # Adam; 1e-3 learns the short lags too slowly for 40 epochs
    seed: int = 0


@dataclass
class Vanishing:
    """What `vanishing` measured. `errors[cell][i]` and the others are for `ks[i]`.

    Attributes:
        ks: the lags tried.
        cells: the cells compared.
        errors: the validation error left after training, as a share of the variance.
        horizons: each trained model's memory horizon in steps (`Memory.steps`).
        decays: before training, the gradient left at the first step as a share of the
            last's, `‖∂L/∂h_1‖ / ‖∂L/∂h_T‖` (the notes' 0.5^50, measured).
        settings: how they were trained.
    """

    ks: list
    cells: list
    errors: dict
    horizons: dict
    decays: dict
    settings: Settings = field(default_factory=Settings)

    def learned_up_to(self, cell: str) -> int:
        """The largest `k` the cell learned (error ≤ 10%), 0 if none."""
        learned = [k for k, e in zip(self.ks, self.errors[cell]) if e <= LEARNED]
        return max(learned, default=0)

    def __str__(self) -> str:
        width = max(len(c) for c in self.cells) + 2
        head = "".join(f"{'k=' + str(k):>14}" for k in self.ks)
        lines = [
            "Remember the input k steps back: the error left after training "
            "(validation MSE / variance; learned when ≤ 10%) and the memory horizon (steps;",
            "in brackets where the task was not learned: a model that learned nothing still "
            "depends on every step a little)",
            f"{'':{width}}{head}   learned up to",
        ]
        for cell in self.cells:
            row = "".join(
                f"{f'{e:.0%} / {h}' if e <= LEARNED else f'{e:.0%} / ({h})':>14}"
                for e, h in zip(self.errors[cell], self.horizons[cell])
            )
            learned = self.learned_up_to(cell)
            lines.append(f"{cell:{width}}{row}   {f'k={learned}' if learned else 'none'}")
        lines += ["", *notes_arithmetic(), "", *self._decay_lines()]
        return "\n".join(lines)

    def _decay_lines(self) -> list[str]:
        k = self.ks[-1]
        lines = [
            f"Measured before training, over the {k + 1} steps of k={k}: the gradient left "
            "at the first step, as a share of the last's"
        ]
        for cell in self.cells:
            lines.append(f"  {cell}: {self.decays[cell][-1]:.3g}")
        return lines

    def __repr__(self) -> str:
        learned = ", ".join(f"{c}: k={self.learned_up_to(c)}" for c in self.cells)
        return f"<Vanishing learned up to {learned}>"

    def to_dict(self) -> dict:
        return {
            "ks": list(self.ks),
            "cells": list(self.cells),
            "errors": {c: [_figure.json_float(e) for e in self.errors[c]] for c in self.cells},
            "horizons": {c: list(self.horizons[c]) for c in self.cells},
            "decays": {c: [_figure.json_float(d) for d in self.decays[c]] for c in self.cells},
            "learned_up_to": {c: self.learned_up_to(c) for c in self.cells},
            "settings": dataclasses.asdict(self.settings),
            "notes": {"2^50": 2.0**50, "0.5^50": 0.5**50},
        }

    def plot(self, path=None):
        """Two panels against `k`: the error left (learned below the dashed line), and the
        memory horizon (on the diagonal: the model reaches exactly back to the answer)."""
        _figure.check_path(path, "vanishing")
        figure = _figure.new_figure(10, 4)
        errors, horizons = figure.subplots(1, 2)
        for cell in self.cells:
            errors.plot(self.ks, np.asarray(self.errors[cell]) * 100, marker="o", label=cell)
            line = horizons.plot(self.ks, self.horizons[cell], marker="o", label=cell)[0]
            unlearned = [
                (k, h)
                for k, h, e in zip(self.ks, self.horizons[cell], self.errors[cell])
                if e > LEARNED
            ]
            if unlearned:  # hollow: the task was not learned there (see the table)
                horizons.plot(*zip(*unlearned), "o", color="white", markersize=4, zorder=3)
                horizons.plot(
                    *zip(*unlearned), "o", color=line.get_color(), fillstyle="none", zorder=4
                )
        errors.axhline(LEARNED * 100, color="grey", linestyle="--", linewidth=1)
        errors.text(self.ks[0], LEARNED * 100, " learned below", va="bottom", color="grey")
        errors.set(
            xscale="log",
            xlabel="k: how many steps back the answer is",
            ylabel="error left (% of variance)",
            title="Can it learn to remember k steps back?",
        )
        whole = [k + 1 for k in self.ks]
        horizons.plot(self.ks, whole, color="grey", linestyle=":", linewidth=1, label="k + 1: all")
        horizons.set(
            xscale="log",
            yscale="log",
            xlabel="k: how many steps back the answer is",
            ylabel="memory horizon (steps)",
            title="How far back does the trained model depend?\n(hollow: task not learned)",
        )
        horizons.set_yticks(whole, [str(n) for n in whole])
        for axis in (errors, horizons):
            axis.set_xticks(self.ks, [str(k) for k in self.ks])
            axis.minorticks_off()
            axis.grid(alpha=0.3)
        horizons.legend()
        if path is not None:
            _figure.save(figure, path)
        return figure

    def _repr_html_(self) -> str:
        return _figure.html(str(self), self.plot())


def notes_arithmetic() -> list[str]:
    """The notes' own numbers: a recurrent weight of 2 or 0.5 multiplied over 50 steps."""
    return [
        "The notes' arithmetic: the gradient 50 steps back is multiplied by the recurrent "
        "weight 50 times:",
        f"  weight 2:   2^50   = {2.0**50:.3g}   (exploding)",
        f"  weight 0.5: 0.5^50 = {0.5**50:.3g}   (vanishing)",
    ]


def vanishing(progress=None, **settings) -> Vanishing:
    """Train each cell on the task `k` steps back for each `k`; see the module's docstring.

    Args:
        progress: called with a line of text after each model, e.g. `print`.
        **settings: fields of `Settings` (ks, cells, units, epochs, samples, learning_rate,
            seed).

    Returns:
        a `Vanishing` (print it for the table, `.plot(path)` for the picture).
    """
    unknown = set(settings) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(
            f"vanishing() got unknown setting(s) {', '.join(sorted(unknown))}; it takes "
            f"{', '.join(f.name for f in dataclasses.fields(Settings))}."
        )
    config = Settings(**settings)
    config.ks, config.cells = tuple(config.ks), tuple(config.cells)
    _check(config)
    errors, horizons, decays = ({cell: [] for cell in config.cells} for _ in range(3))
    for cell in config.cells:
        for k in config.ks:
            error, steps, decay = _train_and_measure(cell, k, config)
            errors[cell].append(error)
            horizons[cell].append(steps)
            decays[cell].append(decay)
            if progress is not None:
                progress(
                    f"{cell} k={k}: error {error:.0%}, memory horizon {steps} steps, "
                    f"gradient left at the first step before training {decay:.3g}"
                )
    return Vanishing(list(config.ks), list(config.cells), errors, horizons, decays, config)


def _check(config: Settings) -> None:
    bad = [c for c in config.cells if c not in CELLS]
    if bad:
        raise ValueError(
            f"vanishing(): cells are {', '.join(CELLS)}; got {', '.join(map(repr, bad))}."
        )
    if not config.ks or any(
        isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in config.ks
    ):
        raise ValueError(
            f"vanishing(): ks are the lags to try, positive integers such as (5, 10, 20); "
            f"got {config.ks!r}."
        )


def task(k: int, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """`n` sequences of `k + 1` numbers in [-1, 1], `(n, k + 1, 1)`, and their first, `(n, 1)`."""
    x = rng.uniform(-1.0, 1.0, size=(n, k + 1, 1)).astype(np.float32)
    return x, x[:, 0, :].copy()


def _train_and_measure(cell: str, k: int, config: Settings) -> tuple[float, int, float]:
    """Train one cell on lag `k`: `(validation error as a share of the variance, horizon,
    the gradient decay before training)`."""
    from rnnkit import Input, Sequential, layers, optimizers
    from rnnkit.explain.gradients import gradient_flow
    from rnnkit.explain.memory import memory
    from rnnkit.utils import set_random_seed

    set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    x, y = task(k, config.samples, rng)
    x_val, y_val = task(k, 256, rng)
    model = Sequential([Input((k + 1, 1)), getattr(layers, cell)(config.units), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(learning_rate=config.learning_rate), loss="mse")
    (decay,) = gradient_flow(model, x_val, y_val).decay.values()
    history = model.fit(
        x, y, epochs=config.epochs, batch_size=64, validation_data=(x_val, y_val), verbose=0
    )
    error = history.history["val_loss"][-1] / TARGET_VARIANCE  # the model measured below
    return error, memory(model, x_val).steps, decay
