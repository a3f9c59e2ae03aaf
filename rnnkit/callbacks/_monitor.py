"""`MonitorCallback`: what EarlyStopping, ModelCheckpoint and ReduceLROnPlateau share.

Each watches one key of the epoch logs (`monitor="val_loss"`) and asks, every epoch,
whether the value improved on the best so far by more than `min_delta`:

    mode "min":  current + min_delta < best
    mode "max":  current - min_delta > best

`mode="auto"` picks "min" for losses and asks the compiled metric otherwise (accuracy
goes up, mean absolute error goes down), as Keras 3 does.
"""

from __future__ import annotations

import numbers
import warnings

from rnnkit.callbacks._base import Callback


def check_count(owner: str, name: str, value) -> None:
    """A non-negative integer (patience, cooldown, ...), else a ValueError that says so."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{owner}: {name} must be an integer >= 0; got {value!r}.")


def check_number(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number; got {value!r}.")


def check_save_freq(owner: str, save_freq) -> None:
    if save_freq == "epoch":
        return
    if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0:
        raise ValueError(
            f"{owner}: save_freq must be 'epoch' or a positive number of batches; got "
            f"{save_freq!r}."
        )


class MonitorCallback(Callback):
    """Base for callbacks that act when `logs[monitor]` stops improving.

    Args:
        monitor: the key of the epoch logs to watch, e.g. `"val_loss"` or `"accuracy"`.
        mode: `"min"`, `"max"`, or `"auto"` (losses go down; metrics say their direction).
        baseline: the initial best value (`None`: the first value seen).
        min_delta: how much better than the best a value must be to count (its sign is ignored).
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        owner = type(self).__name__
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(
                f"{owner}: monitor must be the name of a logged value, e.g. monitor='val_loss'; "
                f"got {monitor!r}."
            )
        if mode not in ("auto", "min", "max"):
            raise ValueError(
                f"{owner}: mode must be 'auto', 'min' or 'max'; got {mode!r}. Use 'min' for "
                "losses and errors, 'max' for accuracies."
            )
        check_number(owner, "min_delta", min_delta)
        if baseline is not None:
            check_number(owner, "baseline", baseline)
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.direction = None  # "min" or "max", settled on the first epoch end

    def _set_direction(self) -> None:
        """Settle "auto" once the model's metrics exist (they are built on the first batch)."""
        if self.mode != "auto":
            self.direction = self.mode
            return
        name = self.monitor.removeprefix("val_")
        if name == "loss":
            self.direction = "min"
            return
        for metric in getattr(self.model, "compiled_metrics", None) or []:
            if metric.name == name and getattr(metric, "direction", None) in ("up", "down"):
                self.direction = "max" if metric.direction == "up" else "min"
                return
        raise ValueError(
            f"{type(self).__name__}(monitor={self.monitor!r}) cannot tell whether "
            f"{self.monitor!r} should go up or down. Pass mode='max' to keep the highest value "
            "or mode='min' to keep the lowest."
        )

    def _is_improvement(self, current, reference) -> bool:
        if reference is None:
            return True
        if self.direction == "min":
            return bool(current + self.min_delta < reference)
        return bool(current - self.min_delta > reference)

    def _monitor_value(self, logs):
        """`logs[monitor]`; None (with a warning) on an epoch without validation.

        A key that is simply not there is a typo, and fails with the keys that are. The
        first value found settles the direction of mode="auto".
        """
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is not None:
            if self.direction is None:
                self._set_direction()
            return float(value)
        if self.monitor.startswith("val_") and not any(k.startswith("val_") for k in logs):
            # No validation ran this epoch: none was given, or validation_freq skips it.
            warnings.warn(
                f"{type(self).__name__}(monitor={self.monitor!r}): no validation results in "
                "this epoch's logs, so it does nothing this epoch. Pass validation_data=(x_val, "
                "y_val) or validation_split=0.2 to fit, or monitor a training value such as "
                "monitor='loss'.",
                stacklevel=3,
            )
            return None
        raise ValueError(
            f"{type(self).__name__}(monitor={self.monitor!r}): there is no {self.monitor!r} in "
            f"the logs. Available: {', '.join(repr(k) for k in logs) or 'none'}. Pass one of "
            "them as monitor=."
        )
