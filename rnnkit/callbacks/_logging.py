"""`CSVLogger`: one CSV row per epoch, `epoch` first and then the logged values by name."""

from __future__ import annotations

import csv
import os

from rnnkit import distribution
from rnnkit.callbacks._base import Callback


class CSVLogger(Callback):
    """Write each epoch's logs to a CSV file, the same file Keras writes.

    The columns are `epoch` (0-based) and the log keys in sorted order, fixed by the first
    epoch. If that epoch has no validation results, `val_` columns are added for each key
    anyway (filled with `NA` until validation runs), so `validation_freq` keeps one layout.

    Args:
        filename: the CSV file.
        separator: the column separator.
        append: continue an existing file (e.g. a run resumed by `BackupAndRestore`)
            instead of overwriting it; the header is written only if the file is empty.

    On many processes (`rnnkit.distribution`) rank 0 alone writes the file.

    Example:
        >>> logger = CSVLogger("training.csv")
        >>> # model.fit(x, y, epochs=10, callbacks=[logger])
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"CSVLogger: filename must be a path; got {filename!r}.")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(
                f"CSVLogger: separator must be a single character such as ',' or '\\t'; got "
                f"{separator!r}."
            )
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self.csv_file = None
        self.writer = None
        self._existing_header = None

    def on_train_begin(self, logs=None):
        self._existing_header = None
        if not distribution.is_writer():  # rank 0 writes the file
            return
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                self._existing_header = next(csv.reader(f, delimiter=self.sep), None)
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self.keys = None
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        if not distribution.is_writer():
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
            fieldnames = ["epoch", *self.keys]
            if self._existing_header and self._existing_header != fieldnames:
                raise ValueError(
                    f"CSVLogger(append=True): {self.filename} has the columns "
                    f"{self._existing_header}, but this run logs {fieldnames}. Write to a new "
                    "file, or pass append=False to overwrite it."
                )
            self.writer = csv.DictWriter(self.csv_file, fieldnames, delimiter=self.sep)
            if not self._existing_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, _cell(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()  # a killed run keeps every finished epoch

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None

    def _on_interrupt(self) -> None:
        self.on_train_end()  # every finished epoch is written; close the file


def _cell(value):
    """Scalars as they are; a list or array as `"[1, 2]"`, the way Keras writes it."""
    if isinstance(value, str) or getattr(value, "ndim", None) == 0:
        return value
    if hasattr(value, "__iter__"):
        return f'"[{", ".join(map(str, value))}]"'
    return value
