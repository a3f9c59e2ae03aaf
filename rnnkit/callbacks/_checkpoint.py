"""`ModelCheckpoint`: save the model (or its weights) every epoch, or only the best one."""

from __future__ import annotations

import os
import string

from rnnkit.callbacks._monitor import MonitorCallback, check_save_freq


class ModelCheckpoint(MonitorCallback):
    """Save the model or its weights during training.

    Args:
        filepath: where to save; may name the (1-based) epoch and any logged value, e.g.
            `"ckpt/{epoch:02d}-{val_loss:.2f}.keras"`, and `{batch}` with an integer
            `save_freq`. Files are rnnkit's format whatever the suffix (see rnnkit.saving).
        monitor: the logged value that decides which model is best.
        verbose: 1 prints a line for each save (or skipped save).
        save_best_only: save only when `monitor` improves on the best so far.
        save_weights_only: `model.save_weights(path)` instead of `model.save(path)`.
        mode: `"min"`, `"max"` or `"auto"` (from the metric's name).
        save_freq: `"epoch"`, or save every this many batches.
        initial_value_threshold: with `save_best_only`, save only values better than this.

    Example:
        >>> best = ModelCheckpoint("best.keras", monitor="val_loss", save_best_only=True)
        >>> # model.fit(x, y, validation_split=0.2, epochs=20, callbacks=[best])
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        super().__init__(monitor, mode, initial_value_threshold)
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"ModelCheckpoint: filepath must be a path; got {filepath!r}.")
        self.filepath = os.fspath(filepath)
        try:
            self._fields = {name for _, name, _, _ in string.Formatter().parse(self.filepath)}
        except ValueError as err:
            raise ValueError(
                f"ModelCheckpoint: filepath {self.filepath!r} is not a valid format string "
                f"({err}). Placeholders look like {{epoch:02d}} or {{val_loss:.2f}}; write a "
                "literal brace as {{ or }}."
            ) from err
        check_save_freq("ModelCheckpoint", save_freq)
        if "batch" in self._fields and save_freq == "epoch":
            raise ValueError(
                f"ModelCheckpoint: filepath {self.filepath!r} names {{batch}}, but "
                "save_freq='epoch' saves at epoch ends, where there is no batch. Pass "
                "save_freq=<number of batches> or drop {batch}."
            )
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_since_save = 0
        self._current_epoch = 0
        if save_freq != "epoch":
            # Only then a batch hook: fit computes batch logs (a device sync) for batch hooks.
            self.on_train_batch_end = self._on_train_batch_end

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def _on_train_batch_end(self, batch, logs=None):
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._format(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        directory = os.path.dirname(filepath)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if os.path.isdir(filepath):
            raise ValueError(
                f"ModelCheckpoint: {filepath!r} is a directory; give filepath a file name, "
                "e.g. 'checkpoints/model.keras'."
            )
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)

    def _should_save(self, epoch, logs, filepath) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                self._say(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = self._monitor_value(logs)
        if current is None:  # no validation this epoch: save, as Keras does
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                self._say(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                    f"{current:.5f}, saving model to {filepath}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            self._say(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _format(self, epoch, batch, logs) -> str:
        """`{epoch}` is 1-based as in Keras; `{batch}` too; other names come from the logs."""
        values = {**logs, "epoch": epoch + 1}
        if batch is not None:
            values["batch"] = batch + 1
        missing = sorted(f for f in self._fields if f and f not in values)
        if missing:
            raise ValueError(
                f"ModelCheckpoint: filepath {self.filepath!r} names {{{missing[0]}}}, which is "
                f"not in the logs. Available: {', '.join(sorted(values))} (val_ values only "
                "with validation_data= or validation_split= in fit)."
            )
        try:
            return self.filepath.format(**values)
        except (ValueError, TypeError, IndexError, KeyError) as err:
            raise ValueError(
                f"ModelCheckpoint: cannot fill filepath {self.filepath!r} ({err}). The epoch "
                "is an integer ({epoch:02d}); logged values are floats ({val_loss:.2f})."
            ) from err
