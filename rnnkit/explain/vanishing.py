"""`vanishing`: the notes' experiment, measured. How far back can each cell learn to remember?

The notes explain why a plain RNN forgets: the gradient that reaches a step `k` back has been
multiplied by the recurrent weight `k` times, so a weight of 2 over 50 steps gives
`2^50 ≈ 1.1e15` (exploding) and a weight of 0.5 gives `0.5^50 ≈ 8.9e-16` (vanishing), and
LSTM and GRU were made to carry memory further. This trains SimpleRNN, LSTM and GRU of the
same size, from several seeds, on one task whose answer lies `k` steps back, for growing `k`:

    x: k + 1 steps of two features: a number drawn uniformly from [-1, 1], and a marker
       that is 1 at the first step and 0 after it
    y: the first number, x_0: the input k steps before the last; the k numbers after it
       are distractors

It is the long-lag recall of Hochreiter & Schmidhuber (1997): the marker says which input to
keep, as in their adding problem, and only noise lies between the cue and the answer. Each
`(cell, k, seed)` trains in its own worker process (`workers` at a time, one torch thread each,
stopped after `timeout` seconds); the seed sets the weights and the data, and every cell sees
the same data for a given `(k, seed)`. The initialisers are Keras' defaults but for one, as the
long-lag literature sets it (Gers, Schmidhuber & Cummins 2000; Tallec & Ollivier 2018): the
LSTM's forget gate starts with a bias of 3 (`forget_bias`), not Keras' 1, so that it keeps 95%
of its cell state a step, not 73%. With Keras' 1 no seed's LSTM learned k=100. Each cell trains
with its own Adam learning rate, the better of 0.01 and 0.003 for it (`LEARNING_RATES`).

A gated cell learns a long lag suddenly, after a plateau whose length depends on the seed, so
one seed decides little: the report gives, for each cell and `k`, the share of seeds that
learned it, and the median error and memory horizon over the seeds. The error is the validation
MSE as a share of the target's variance, 1/3 (0 is perfect recall, 1 is no better than always
answering 0); a seed has learned a `k` when its error is at most 10%, and a cell has when more
than half of its seeds have. Beside them, the trained models' memory horizon
(`rnnkit.explain.memory`) and the notes' quantity itself before training: how much of the loss's
gradient at the last step is left at the first, `‖∂L/∂h_1‖ / ‖∂L/∂h_T‖`
(`rnnkit.explain.gradient_flow`).

In a script, call it under `if __name__ == "__main__":` (its workers are started fresh and
import the script again), or pass `workers=1`.

    >>> result = vanishing(ks=(2, 4), cells=("SimpleRNN",), seeds=2, epochs=3, samples=128,
    ...                    workers=1)
    >>> len(result.errors["SimpleRNN"]), len(result.errors["SimpleRNN"][0])  # ks, seeds
    (2, 2)
    >>> sorted(result.to_dict())  # doctest: +NORMALIZE_WHITESPACE
    ['cells', 'decays', 'errors', 'horizon', 'horizons', 'ks', 'learned', 'learned_up_to',
     'notes', 'settings']
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import time
from dataclasses import dataclass, field

import numpy as np

from rnnkit.explain import _figure

CELLS = ("SimpleRNN", "LSTM", "GRU")
LEARNED = 0.1  # a seed learned a k when the error left is at most this share of the variance
TARGET_VARIANCE = 1 / 3  # of x_0 ~ U(-1, 1): what always answering 0 leaves
# Each cell's better of Adam's 0.01 and 0.003: the one with more of seeds 0-4 learning k=100 in
# the search that set them (150 epochs, Keras' forget bias; an earlier draw of the data):
# SimpleRNN 1 of 5 at 0.003, 0 at 0.01; LSTM 3 and 0; GRU 0 and 5. Past its rate a cell fits
# the noise of its 1024 sequences instead, and its error on new ones goes above 100%.
LEARNING_RATES = {"SimpleRNN": 0.003, "LSTM": 0.003, "GRU": 0.01}


@dataclass
class Settings:
    """How `vanishing` trains: the same for every cell, so only the cell differs.

    The defaults are `rnnkit explain --vanishing`: 5 seeds x 3 cells x 4 lags, 60 models,
    about 2½ minutes on 2 idle cores. `QUICK` is the shorter run of `rnnkit explain`.
    """

    ks: tuple = (25, 50, 100, 200)  # SimpleRNN learns 25 and 50 too; the gated cells go further
    cells: tuple = CELLS
    seeds: int = 5  # learning a long lag is a lottery per seed: count the winners
    units: int = 16  # the notes' small layers; each cell gets the same hidden size
    epochs: int = 150  # a gated cell's plateau before it latches lasts up to ~100 epochs
    samples: int = 1024  # training sequences per (k, seed); another 256 validate
    batch_size: int = 32  # 32 steps an epoch: more updates than 64 for the same data
    # Adam's, per cell: each cell's better of 0.01 and 0.003 (see LEARNING_RATES); or one
    # number for all
    learning_rate: float | dict = field(default_factory=lambda: dict(LEARNING_RATES))
    # LSTM only: its forget gate's bias starts here, not at Keras' 1 (None: Keras' 1). With 1
    # the cell forgets 27% a step (0.73^100 ≈ 2.5e-14 is left) and learned k=100 in no seed.
    forget_bias: float | None = 3.0
    clipnorm: float = 1.0  # caps the rare exploding step (the notes' 2^50) without hiding it
    workers: int = 2  # processes training at once, one torch thread each: 2 cores
    timeout: float = 900.0  # seconds for the whole experiment; past it the workers are stopped


# `rnnkit explain` without arguments: a taste in ~35 s. 3 seeds are too few to tell the cells
# apart at k=100 (each learned it in 2 of seeds 0-2); the defaults' 5 seeds and k=200 do.
QUICK = {"ks": (25, 100), "seeds": 3}


@dataclass
class Vanishing:
    """What `vanishing` measured. `errors[cell][i][s]` and the others are for `ks[i]`, seed `s`.

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

    def learned(self, cell: str) -> list:
        """For each `k`, the share of seeds whose error is at most 10%."""
        return [float(np.mean(np.asarray(e) <= LEARNED)) for e in self.errors[cell]]

    def median(self, cell: str, what: str = "errors") -> list:
        """For each `k`, the median over the seeds of `errors`, `horizons` or `decays`."""
        return [float(np.median(v)) for v in getattr(self, what)[cell]]

    def learned_up_to(self, cell: str) -> int:
        """The largest `k` that more than half of the cell's seeds learned, 0 if none."""
        learned = [k for k, share in zip(self.ks, self.learned(cell)) if share > 0.5]
        return max(learned, default=0)

    def horizon(self, cell: str) -> int:
        """The median memory horizon, over the seeds that learned it, at `learned_up_to`;
        0 if the cell learned no `k`."""
        if not self.learned_up_to(cell):
            return 0
        i = self.ks.index(self.learned_up_to(cell))
        learned = np.asarray(self.errors[cell][i]) <= LEARNED
        return int(np.median(np.asarray(self.horizons[cell][i])[learned]))

    def __str__(self) -> str:
        seeds = len(self.errors[self.cells[0]][0])
        width = max(len(c) for c in self.cells) + 2
        column = max(17, 4 * seeds + 1)
        head = "".join(f"{'k=' + str(k):>{column}}" for k in self.ks)
        lines = [
            f"Remember the input k steps back, {seeds} seeds each: how many seeds learned it "
            "(error ≤ 10% of the variance), then the median error and median memory horizon",
            "(steps; in brackets where most seeds did not learn: a model that learned nothing "
            "still depends on every step a little)",
            f"{'':{width}}{head}   learned up to (its horizon)",
        ]
        for cell in self.cells:
            row = "".join(
                f"{_cell_text(share, seeds, e, h):>{column}}"
                for share, e, h in zip(
                    self.learned(cell), self.median(cell), self.median(cell, "horizons")
                )
            )
            learned = self.learned_up_to(cell)
            reach = f"k={learned} ({self.horizon(cell)} steps)" if learned else "none"
            lines.append(f"{cell:{width}}{row}   {reach}")
        lines += ["", f"Each seed's error (% of the variance), seeds 0 to {seeds - 1}:"]
        for cell in self.cells:
            row = "".join(
                f"{' '.join(f'{e:.0%}'.rstrip('%') for e in errors):>{column}}"
                for errors in self.errors[cell]
            )
            lines.append(f"{cell:{width}}{row}")
        lines += ["", *notes_arithmetic(), "", *self._decay_lines()]
        return "\n".join(lines)

    def _decay_lines(self) -> list[str]:
        k = self.ks[-1]
        lines = [
            f"Measured before training, over the {k + 1} steps of k={k}: the gradient left "
            "at the first step, as a share of the last's (median over the seeds)"
        ]
        for cell in self.cells:
            lines.append(f"  {cell}: {self.median(cell, 'decays')[-1]:.3g}")
        return lines

    def __repr__(self) -> str:
        learned = ", ".join(f"{c}: k={self.learned_up_to(c)}" for c in self.cells)
        return f"<Vanishing learned up to {learned}>"

    def to_dict(self) -> dict:
        def floats(table):
            return {
                c: [[_figure.json_float(v) for v in seeds] for seeds in table[c]] for c in table
            }

        return {
            "ks": list(self.ks),
            "cells": list(self.cells),
            "errors": floats(self.errors),
            "horizons": {
                c: [[int(h) for h in seeds] for seeds in self.horizons[c]] for c in self.cells
            },
            "decays": floats(self.decays),
            "learned": {c: self.learned(c) for c in self.cells},
            "learned_up_to": {c: self.learned_up_to(c) for c in self.cells},
            "horizon": {c: self.horizon(c) for c in self.cells},
            "settings": dataclasses.asdict(self.settings),
            "notes": {"2^50": 2.0**50, "0.5^50": 0.5**50},
        }

    def plot(self, path=None):
        """Three panels against `k`: the share of seeds that learned it, each seed's error
        (the line: the median), and each seed's memory horizon (hollow: that seed did not
        learn; the line: the median of those that did; on the grey diagonal the model reaches
        exactly back to the answer)."""
        _figure.check_path(path, "vanishing")
        figure = _figure.new_figure(14, 4.2)
        shares, errors, horizons = figure.subplots(1, 3)
        seeds = len(self.errors[self.cells[0]][0])
        # Apart, not on top of each other: each cell a little to the side on the log axis, and
        # within it each seed.
        cells = np.linspace(-0.08, 0.08, len(self.cells)) if len(self.cells) > 1 else [0.0]
        spread = np.linspace(-0.02, 0.02, seeds) if seeds > 1 else np.zeros(1)
        for cell, offset in zip(self.cells, cells):
            ks = np.asarray(self.ks, dtype=float) * np.exp(offset)
            line = shares.plot(ks, np.asarray(self.learned(cell)) * 100, marker="o", label=cell)[0]
            color = line.get_color()
            errors.plot(ks, np.asarray(self.median(cell)) * 100, color=color, label=cell)
            reached = []  # (k, median horizon of the seeds that learned it)
            for x, seeds_e, seeds_h in zip(ks, self.errors[cell], self.horizons[cell]):
                seeds_e, seeds_h = np.asarray(seeds_e), np.asarray(seeds_h)
                xs = x * np.exp(spread)
                errors.plot(xs, seeds_e * 100, "o", color=color, alpha=0.6, markersize=4)
                ok = seeds_e <= LEARNED
                horizons.plot(xs[ok], seeds_h[ok], "o", color=color, alpha=0.8, markersize=4)
                horizons.plot(
                    xs[~ok], seeds_h[~ok], "o", color=color, fillstyle="none", markersize=5
                )
                if ok.any():
                    reached.append((x, np.median(seeds_h[ok])))
            if reached:
                horizons.plot(*zip(*reached), color=color, label=cell)
        errors.axhline(LEARNED * 100, color="grey", linestyle="--", linewidth=1)
        errors.text(self.ks[0], LEARNED * 100, " learned below", va="bottom", color="grey")
        shares.set(
            ylim=(-5, 105),
            ylabel=f"seeds that learned it (% of {seeds})",
            title="Can it learn to remember k steps back?",
        )
        errors.set_yscale("symlog", linthresh=1)  # 0 to 1% linear, then by powers of 10
        errors.set(
            ylim=(0, 300),
            ylabel="error left (% of variance)",
            title="Each seed's error (line: median)",
        )
        errors.set_yticks([0, 1, 10, 100], ["0", "1", "10", "100"])
        whole = [k + 1 for k in self.ks]
        horizons.plot(self.ks, whole, color="grey", linestyle=":", linewidth=1, label="k + 1: all")
        horizons.set(
            yscale="log",
            ylabel="memory horizon (steps)",
            title="How far back does each trained model depend?\n"
            "(hollow: that seed did not learn; line: median of those that did)",
        )
        for axis in (shares, errors, horizons):
            axis.set(xscale="log", xlabel="k: how many steps back the answer is")
            axis.set_xticks(self.ks, [str(k) for k in self.ks])
            axis.minorticks_off()
            axis.grid(alpha=0.3)
        ticks = sorted({1, 10, *whole})
        horizons.set_yticks(ticks, [str(n) for n in ticks])
        shares.legend()
        horizons.legend()
        if path is not None:
            _figure.save(figure, path)
        return figure

    def _repr_html_(self) -> str:
        return _figure.html(str(self), self.plot())


def _cell_text(share: float, seeds: int, error: float, horizon: float) -> str:
    steps = f"{horizon:g}" if error <= LEARNED else f"({horizon:g})"
    return f"{round(share * seeds)}/{seeds}  {error:.0%} / {steps}"


def notes_arithmetic() -> list[str]:
    """The notes' own numbers: a recurrent weight of 2 or 0.5 multiplied over 50 steps."""
    return [
        "The notes' arithmetic: the gradient 50 steps back is multiplied by the recurrent "
        "weight 50 times:",
        f"  weight 2:   2^50   = {2.0**50:.3g}   (exploding)",
        f"  weight 0.5: 0.5^50 = {0.5**50:.3g}   (vanishing)",
    ]


def vanishing(progress=None, **settings) -> Vanishing:
    """Train each cell from each seed on the task `k` steps back; see the module's docstring.

    Args:
        progress: called with a line of text after each model, e.g. `print`.
        **settings: fields of `Settings` (ks, cells, seeds, units, epochs, samples,
            batch_size, learning_rate, clipnorm, workers, timeout).

    Returns:
        a `Vanishing` (print it for the table, `.plot(path)` for the picture).

    Raises:
        TimeoutError: the models were not all trained within `timeout` seconds (the workers
            are stopped first).
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
    measured = {}
    # Closed on the way out, whatever happens here (a `progress` that raises, Ctrl-C): that
    # stops the workers now, not whenever the generator happens to be collected.
    with contextlib.closing(_run(config)) as finished:
        for job, (error, steps, decay) in finished:
            measured[job] = error, steps, decay
            if progress is not None:
                cell, k, seed = job
                progress(
                    f"{cell} k={k}: error {error:.0%}, memory horizon {steps} steps, gradient "
                    f"left at the first step before training {decay:.3g} (seed {seed})"
                )
    errors, horizons, decays = (
        {
            c: [[measured[c, k, s][i] for s in range(config.seeds)] for k in config.ks]
            for c in config.cells
        }
        for i in range(3)
    )
    return Vanishing(list(config.ks), list(config.cells), errors, horizons, decays, config)


def _check(config: Settings) -> None:
    bad = [c for c in config.cells if c not in CELLS]
    if bad:
        raise ValueError(
            f"vanishing(): cells are {', '.join(CELLS)}; got {', '.join(map(repr, bad))}."
        )
    if not config.ks or any(not _positive_int(k) for k in config.ks):
        raise ValueError(
            f"vanishing(): ks are the lags to try, positive integers such as (5, 10, 20); "
            f"got {config.ks!r}."
        )
    for name in ("seeds", "workers"):
        if not _positive_int(getattr(config, name)):
            raise ValueError(
                f"vanishing(): {name} is a count, a positive integer such as {name}=2; "
                f"got {getattr(config, name)!r}."
            )
    rates = config.learning_rate
    missing = [c for c in config.cells if isinstance(rates, dict) and c not in rates]
    if missing:
        raise ValueError(
            f"vanishing(): learning_rate is a number or one per cell; it has none for "
            f"{', '.join(missing)}. Add it, e.g. learning_rate={{{missing[0]!r}: 0.01, ...}}."
        )
    if not config.timeout > 0:
        raise ValueError(f"vanishing(): timeout is in seconds, above 0; got {config.timeout!r}.")


def _positive_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def _run(config: Settings):
    """Yield `((cell, k, seed), measured)` as each model finishes, longest lags first so the
    workers end together; in worker processes unless `workers=1`, all within `timeout`."""
    jobs = [
        (c, k, s)
        for k in sorted(config.ks, reverse=True)
        for s in range(config.seeds)
        for c in config.cells
    ]
    if config.workers == 1:
        deadline = time.monotonic() + config.timeout
        for job in jobs:
            if time.monotonic() > deadline:
                raise _timeout(config)
            yield job, _train_and_measure(job, config)
        return
    # Spawned, not forked: a forked child inherits torch's thread pool in whatever state it is.
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(min(config.workers, len(jobs)), initializer=_one_thread)
    try:
        results = pool.imap_unordered(_job, [(job, config) for job in jobs])
        deadline = time.monotonic() + config.timeout
        for _ in jobs:
            yield results.next(timeout=max(0.0, deadline - time.monotonic()))
    except multiprocessing.TimeoutError:
        raise _timeout(config) from None
    finally:  # also on an error or Ctrl-C: no worker outlives the call
        pool.terminate()
        pool.join()


def _timeout(config: Settings) -> TimeoutError:
    return TimeoutError(
        f"vanishing(): the models were not all trained in timeout={config.timeout:g} s; the "
        f"workers were stopped. Give it longer, e.g. vanishing(timeout={2 * config.timeout:g}), "
        "or fewer ks, seeds or epochs."
    )


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # `workers` processes share the cores; more threads would fight


def _job(args):
    job, config = args
    return job, _train_and_measure(job, config)


def task(k: int, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """`n` sequences of `k + 1` steps, `(n, k + 1, 2)`: a number in [-1, 1] and a marker that
    is 1 at the first step only; and the first number, `(n, 1)`."""
    values = rng.uniform(-1.0, 1.0, size=(n, k + 1, 1)).astype(np.float32)
    marker = np.zeros_like(values)
    marker[:, 0] = 1.0
    return np.concatenate([values, marker], axis=2), values[:, 0, :].copy()


def _train_and_measure(job, config: Settings) -> tuple[float, int, float]:
    """Train one cell on lag `k` from one seed: `(validation error as a share of the variance,
    memory horizon, the gradient decay before training)`."""
    from rnnkit import Input, Sequential, layers, optimizers
    from rnnkit.explain.gradients import gradient_flow
    from rnnkit.explain.memory import memory
    from rnnkit.utils import set_random_seed

    cell, k, seed = job
    set_random_seed(seed)
    rng = np.random.default_rng([seed, k])  # the same data for every cell at (k, seed)
    x, y = task(k, config.samples, rng)
    x_val, y_val = task(k, 256, rng)
    recurrent = getattr(layers, cell)(config.units)
    model = Sequential([Input((k + 1, 2)), recurrent, layers.Dense(1)])
    if cell == "LSTM" and config.forget_bias is not None:
        kernel, recurrent_kernel, bias = recurrent.get_weights()
        bias[config.units : 2 * config.units] = config.forget_bias  # gates in order i, f, g, o
        recurrent.set_weights([kernel, recurrent_kernel, bias])
    rate = config.learning_rate
    rate = rate[cell] if isinstance(rate, dict) else rate
    optimizer = optimizers.Adam(learning_rate=rate, clipnorm=config.clipnorm)
    model.compile(optimizer=optimizer, loss="mse")
    (decay,) = gradient_flow(model, x_val, y_val).decay.values()
    history = model.fit(
        x,
        y,
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_data=(x_val, y_val),
        verbose=0,
    )
    error = history.history["val_loss"][-1] / TARGET_VARIANCE  # the model measured below
    return float(error), int(memory(model, x_val).steps), float(decay)
