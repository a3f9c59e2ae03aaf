"""What `fit` prints: a live progress bar in a terminal, one line per epoch elsewhere."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rnnkit.callbacks._base import Callback


def format_logs(logs: dict) -> str:
    """`{"loss": 0.5}` -> `"loss: 0.5000"`, the way Keras prints metrics."""
    parts = []
    for key, value in logs.items():
        if type(value) is int:  # a count, e.g. an ensemble's members still training
            parts.append(f"{key}: {value}")
            continue
        value = float(value)
        text = f"{value:.4e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"
        parts.append(f"{key}: {text}")
    return " - ".join(parts)


class EpochLogger(Callback):
    """One line per epoch: `Epoch 3/10 - 30/30 - 1s - 12ms/step - loss: 0.41 - val_loss: 0.44`."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        took = time.perf_counter() - self._started
        steps = self.params.get("steps") or 0
        per_step = f" - {1000 * took / steps:.0f}ms/step" if steps else ""
        count = f" - {steps}/{steps}" if steps else ""
        line = (
            f"Epoch {epoch + 1}/{self.params['epochs']}{count} - {took:.0f}s{per_step} - "
            f"{format_logs(logs or {})}"
        )
        print(line, file=self.stream or sys.stdout, flush=True)


class ProgressBar(Callback):
    """A live bar per epoch with the step count, ETA, time per step and running metrics."""

    def __init__(self, console: Console | None = None):
        super().__init__()
        self.console = console or Console()
        self.progress = None

    def on_epoch_begin(self, epoch, logs=None):
        self.console.print(f"Epoch {epoch + 1}/{self.params['epochs']}")
        self.progress = Progress(
            MofNCompleteColumn(),
            BarColumn(bar_width=20),
            TimeRemainingColumn(),
            TextColumn("{task.fields[per_step]}"),
            TextColumn("- {task.fields[logs]}"),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("", total=self.params.get("steps"), logs="", per_step="")
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        per_step = 1000 * (time.perf_counter() - self._started) / (batch + 1)
        self.progress.update(
            self.task,
            completed=batch + 1,
            per_step=f"{per_step:.0f}ms/step",
            logs=format_logs(logs or {}),
        )

    def on_epoch_end(self, epoch, logs=None):
        self.progress.update(self.task, logs=format_logs(logs or {}))
        self.progress.stop()

    def on_train_end(self, logs=None):
        if self.progress is not None:
            self.progress.stop()

    def _on_interrupt(self) -> None:
        self.on_train_end()  # a live bar left running keeps redrawing over what comes next


def progress_logger(verbose) -> Callback | None:
    """`verbose=0` silent, `1` a live bar, `2` a line per epoch; `'auto'`: bar in a terminal."""
    if verbose in (0, False, None):
        return None
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    if verbose == 1:
        return ProgressBar()
    if verbose == 2:
        return EpochLogger()
    raise ValueError(f"verbose must be 'auto', 0, 1 or 2; got {verbose!r}.")


class TrainingProgress(Callback):
    """One bar for the whole run: epochs done, time left, and the latest epoch's metrics.

    What the command line shows while it trains; in a terminal the bar updates in place,
    elsewhere (a log file, CI) it prints a line every `every` epochs and at the end.

    Example:
        >>> import numpy as np
        >>> from rnnkit import Sequential
        >>> from rnnkit.layers import Dense
        >>> model = Sequential([Dense(1, input_shape=(2,))])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> _ = model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, verbose=0,
        ...               callbacks=[TrainingProgress(every=1)])  # doctest: +ELLIPSIS
        Epoch 1/2 - ... - loss: ...
        Epoch 2/2 - ... - loss: ...
    """

    def __init__(self, console: Console | None = None, every: int = 10):
        super().__init__()
        self.console = console or Console()
        self.every = every
        self.progress = None

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()
        self._last = None
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("epoch"),
                MofNCompleteColumn(),
                BarColumn(bar_width=30),
                TimeRemainingColumn(),
                TextColumn("{task.fields[logs]}"),
                console=self.console,
            )
            self.progress.start()
            self.task = self.progress.add_task("", total=self.params["epochs"], logs="")

    def on_epoch_end(self, epoch, logs=None):
        text = format_logs(logs or {})
        if self.progress is not None:
            self.progress.update(self.task, completed=epoch + 1, logs=text)
            return
        self._last = (epoch, text)
        if (epoch + 1) % self.every == 0 or epoch == 0:
            self._line(epoch, text)
            self._last = None

    def _line(self, epoch, text):
        took = time.perf_counter() - self._started
        self._say(f"Epoch {epoch + 1}/{self.params['epochs']} - {took:.0f}s - {text}")

    def on_train_end(self, logs=None):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        elif self._last is not None:
            self._line(*self._last)

    def _on_interrupt(self) -> None:
        if self.progress is not None:  # a live bar left running keeps redrawing
            self.progress.stop()
            self.progress = None
