"""Callbacks that set the optimizer's learning rate between epochs."""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from rnnkit import schedules
from rnnkit.callbacks._base import Callback
from rnnkit.callbacks._monitor import MonitorCallback, check_count, check_number


def _check_settable(owner, optimizer):
    """Fail at the start of training, not at the first change, on a scheduled optimizer."""
    if isinstance(getattr(optimizer, "_learning_rate", None), schedules.LearningRateSchedule):
        raise TypeError(
            f"{owner} sets the learning rate each epoch, but this {type(optimizer).__name__} "
            "follows a learning-rate schedule. Use one or the other: create the optimizer with "
            "a float learning_rate, e.g. Adam(learning_rate=1e-3)."
        )


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by `factor` when `logs[monitor]` stops improving.

        new_lr = max(lr * factor, min_lr)      # after `patience` epochs without improvement

    Every epoch it also writes the current rate to `logs["learning_rate"]` (so it shows up
    in `history.history`), as Keras does.

    Args:
        monitor: the logged value to watch.
        factor: the multiplier, 0 < factor < 1.
        patience: epochs without improvement before the rate is reduced.
        verbose: 1 prints a line at each reduction.
        mode: `"min"`, `"max"` or `"auto"` (from the metric's name).
        min_delta: a change smaller than this does not count as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the rate never goes below this.

    Example:
        >>> reduce = ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=5, min_lr=1e-5)
        >>> # model.fit(x, y, validation_split=0.2, epochs=100, callbacks=[reduce])
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        owner = "ReduceLROnPlateau"
        check_number(owner, "factor", factor)
        if not 0.0 < factor < 1.0:
            raise ValueError(
                f"{owner}: factor multiplies the learning rate and must be in (0, 1), e.g. "
                f"factor=0.1 divides it by 10; got factor={factor}."
            )
        check_count(owner, "patience", patience)
        check_count(owner, "cooldown", cooldown)
        check_number(owner, "min_lr", min_lr)
        if min_lr < 0:
            raise ValueError(f"{owner}: min_lr must be >= 0; got {min_lr}.")
        self.factor = float(factor)
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = float(min_lr)
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        _check_settable("ReduceLROnPlateau", self.model.optimizer)
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = self._monitor_value(logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        # Compared in float32 as Keras stores the rate: a rate already at min_lr stays put.
        old_lr = float(optimizer.learning_rate)
        if self.wait >= self.patience and old_lr > np.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                self._say(
                    f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}."
                )
            self.cooldown_counter = self.cooldown
            self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to `schedule(epoch, lr)`.

    Args:
        schedule: a function of the (0-based) epoch and the current rate, returning the new
            rate as a float; a function of the epoch alone also works.
        verbose: 1 prints the rate it sets.

    Example:
        >>> def halve_after_10(epoch, lr):
        ...     return lr if epoch < 10 else lr * 0.5
        >>> scheduler = LearningRateScheduler(halve_after_10)
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                "LearningRateScheduler: schedule must be a function (epoch, lr) -> new lr, e.g. "
                f"lambda epoch, lr: lr * 0.9; got {schedule!r}."
            )
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = _positional_count(schedule) >= 2

    def on_train_begin(self, logs=None):
        _check_settable("LearningRateScheduler", self.model.optimizer)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if self._takes_lr:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise ValueError(
                f"LearningRateScheduler: schedule({epoch}, ...) must return a float learning "
                f"rate; got {lr!r}."
            )
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            self._say(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _positional_count(fn) -> int:
    """How many positional arguments `fn` takes (a large number for `*args`)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: assume (epoch, lr)
        return 2
    kinds = [p.kind for p in parameters]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return 2
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(kind in positional for kind in kinds)
