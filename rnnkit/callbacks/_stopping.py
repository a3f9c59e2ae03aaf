"""Callbacks that end training early: `EarlyStopping` (no progress) and `TerminateOnNaN`."""

from __future__ import annotations

import math
import warnings

from rnnkit.callbacks._base import Callback
from rnnkit.callbacks._monitor import MonitorCallback, check_count, check_number


class EarlyStopping(MonitorCallback):
    """Stop training when `logs[monitor]` has not improved for `patience` epochs.

    Args:
        monitor: the logged value to watch (`"val_loss"`, `"accuracy"`, ...).
        min_delta: a change smaller than this does not count as an improvement.
        patience: epochs without improvement before stopping (0: stop at the first).
        verbose: 1 prints a line when it stops and when it restores weights.
        mode: `"min"`, `"max"` or `"auto"` (from the metric's name).
        baseline: stop unless the value gets better than this within `patience` epochs.
        restore_best_weights: at the end of training, go back to the weights of the best
            epoch (also when training ran to the last epoch without stopping).
        start_from_epoch: epochs of warm-up before watching starts.

    After training, `stopped_epoch` is the (0-based) epoch it stopped at, 0 if it did not.

    Example:
        >>> stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
        >>> # model.fit(x, y, validation_split=0.2, epochs=100, callbacks=[stop])
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        check_count("EarlyStopping", "patience", patience)
        check_count("EarlyStopping", "start_from_epoch", start_from_epoch)
        if baseline is not None:
            check_number("EarlyStopping", "baseline", baseline)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        # The same instance may serve several fit() calls.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # the first watched epoch is the best
            self.best_epoch = epoch

        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Patience restarts only once the baseline is beaten too.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            self._say(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                epoch = self.best_epoch + 1
                self._say(f"Restoring model weights from the end of the best epoch: {epoch}.")
            self.model.set_weights(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss becomes NaN or infinite.

    Args:
        raise_error: False: finish the epoch's bookkeeping and stop (`model.stop_training`),
            so `on_train_end` still runs. True: raise a RuntimeError at once, so callbacks
            like `BackupAndRestore` keep their last good state.

    Example:
        >>> # model.fit(x, y, epochs=10, callbacks=[TerminateOnNaN()])
    """

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        if self.raise_error:
            raise RuntimeError(
                f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                "Terminating training immediately."
            )
        warnings.warn(f"Batch {batch}: invalid loss {loss}, terminating training.", stacklevel=2)
        self.model.stop_training = True
