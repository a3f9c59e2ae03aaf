"""Sliding windows over a time series, and chronological splits that do not leak.

A window is `sequence_length` rows of the series, read every `sampling_rate` rows;
consecutive windows start `sequence_stride` rows apart. `timeseries_dataset_from_array`
follows `keras.utils.timeseries_dataset_from_array` exactly; `make_windows` is the
forecasting form of it, where the targets are the `horizon` rows after each window.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnkit.data._pydataset import PyDataset


class WindowBatches(PyDataset):
    """Batches of `(windows, targets)` (or windows alone) as numpy arrays.

    What `timeseries_dataset_from_array` returns. It is a sequence of batches: `len()`
    batches, `batches[i]`, and a fresh pass on every `for` (and every epoch of `fit`,
    which takes it as `x`). With `shuffle=True` the first pass uses the order Keras draws
    from `seed`, and every later pass a new order from the same seed.
    """

    def __init__(self, data, targets, starts, offsets, batch_size, shuffle, seed):
        self.data, self.targets = data, targets
        self.starts = starts  # (num_windows,) first row of each window
        self.offsets = offsets  # (sequence_length,) rows of a window, relative to its start
        self.batch_size = batch_size
        self._rng = np.random.RandomState(seed) if shuffle else None
        self._passes = 0

    def __len__(self) -> int:
        if self.batch_size is None:
            return len(self.starts)
        return -(-len(self.starts) // self.batch_size)

    def _take(self, starts):
        windows = self.data[starts[:, None] + self.offsets]  # (batch, sequence_length, ...)
        if self.targets is None:
            return windows
        return windows, self.targets[starts]

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"batch {index} out of range; there are {len(self)} batches.")
        index %= len(self)
        if self.batch_size is None:
            return self._one(index)
        return self._take(self.starts[index * self.batch_size : (index + 1) * self.batch_size])

    def _one(self, index: int):
        sample = self._take(self.starts[index : index + 1])
        if self.targets is None:
            return sample[0]
        return sample[0][0], sample[1][0]

    def __iter__(self):
        if self._rng is not None and self._passes > 0:
            self._rng.shuffle(self.starts)
        self._passes += 1
        for index in range(len(self)):
            yield self[index]

    def arrays(self):
        """Every window (and target) at once: `x` `(num_windows, sequence_length, ...)`."""
        return self._take(self.starts)

    def __repr__(self) -> str:
        return (
            f"WindowBatches({len(self.starts)} windows of {len(self.offsets)} steps, "
            f"{len(self)} batches)"
        )


def _check_int(name: str, value, low: int, high: int | None = None, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"timeseries_dataset_from_array: {name} must be an integer; got {value!r}.")
    if value < low or (high is not None and value >= high):
        bound = f"at least {low}" + (f" and lower than {high}{what}" if high is not None else "")
        raise ValueError(f"timeseries_dataset_from_array: {name} must be {bound}; got {value}.")
    return int(value)


def timeseries_dataset_from_array(
    data,
    targets,
    sequence_length: int,
    sequence_stride: int = 1,
    sampling_rate: int = 1,
    batch_size: int | None = 128,
    shuffle: bool = False,
    seed: int | None = None,
    start_index: int | None = None,
    end_index: int | None = None,
) -> WindowBatches:
    """Windows over `data`, batched, with Keras' `timeseries_dataset_from_array` semantics.

    Window `i` is `data[start_index + s_i + j * sampling_rate]` for `j < sequence_length`,
    with `s_i = i * sequence_stride`; its target is `targets[start_index + s_i]`, the row
    aligned with the window's *first* step. To predict the row after a window, pass
    `targets=series[sequence_length:]` (see `make_windows` for horizons).

    Args:
        data: array-like, `(rows, ...)`, rows in time order.
        targets: array-like with one row per data row (or fewer), or None for windows only.
        sequence_length: steps per window.
        sequence_stride: rows between the starts of consecutive windows.
        sampling_rate: rows between consecutive steps of a window.
        batch_size: windows per batch; None yields single windows.
        shuffle: shuffle the windows (a new order every pass, reproducible from `seed`).
        start_index, end_index: use only `data[start_index:end_index]` for windows.

    Returns:
        `WindowBatches`, batches `(x, y)` with `x` `(batch, sequence_length, ...)`.

    Example:
        >>> import numpy as np
        >>> series = np.arange(10)
        >>> batches = timeseries_dataset_from_array(series, series[3:], 3, batch_size=4)
        >>> x, y = batches[0]
        >>> x.tolist(), y.tolist()
        ([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]], [3, 4, 5, 6])
    """
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError("timeseries_dataset_from_array: data must have one row per time step.")
    rows = len(data)
    start = 0 if start_index is None else _check_int("start_index", start_index, 0, rows)
    end = rows if end_index is None else _check_int("end_index", end_index, 1, rows + 1)
    if start >= end:
        raise ValueError(
            f"timeseries_dataset_from_array: start_index ({start}) must be lower than "
            f"end_index ({end})."
        )
    sequence_length = _check_int("sequence_length", sequence_length, 1)
    what = f" (the rows of data, {rows})"
    sampling_rate = _check_int("sampling_rate", sampling_rate, 1, rows, what)
    sequence_stride = _check_int("sequence_stride", sequence_stride, 1, rows, what)
    if batch_size is not None:
        batch_size = _check_int("batch_size", batch_size, 1)
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 0:
            raise ValueError("timeseries_dataset_from_array: targets must be an array of rows.")
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        count = min(count, len(targets) - start)
    if count <= 0:
        span = (sequence_length - 1) * sampling_rate + 1
        raise ValueError(
            f"timeseries_dataset_from_array: a window spans {span} rows "
            f"(sequence_length={sequence_length}, sampling_rate={sampling_rate}), but rows "
            f"{start}..{end - 1} hold only {end - start}. Use a shorter sequence_length or "
            "more data."
        )
    starts = start + np.arange(0, count, sequence_stride)
    if shuffle:
        if seed is None:
            seed = int(np.random.randint(1_000_000))
        np.random.RandomState(seed).shuffle(starts)
    offsets = np.arange(sequence_length) * sampling_rate
    return WindowBatches(data, targets, starts, offsets, batch_size, shuffle, seed)


class Split(NamedTuple):
    """Row ranges of a chronological split: `train` first, then `validation`, then `test`."""

    train: slice
    validation: slice
    test: slice


def chronological_split(rows: int, validation_split: float = 0.15, test_split: float = 0.15):
    """Cut `rows` time-ordered rows into train, validation and test parts, in that order.

    Nothing is shuffled: every validation row comes after every training row, and every
    test row after both, so a model is always scored on a future it has not seen.

    Returns:
        `Split(train, validation, test)`, three slices of row numbers.

    Example:
        >>> chronological_split(100, 0.1, 0.2)
        Split(train=slice(0, 70, None), validation=slice(70, 80, None), test=slice(80, 100, None))
    """
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 3:
        raise ValueError(f"chronological_split needs at least 3 rows; got {rows!r}.")
    for name, value in (("validation_split", validation_split), ("test_split", test_split)):
        if not 0 <= value < 1:
            raise ValueError(f"chronological_split: {name} must be in [0, 1); got {value}.")
    if validation_split + test_split >= 1:
        raise ValueError(
            "chronological_split: validation_split + test_split must leave rows to train on; "
            f"got {validation_split} + {test_split}."
        )
    test = int(round(rows * test_split))
    validation = int(round(rows * validation_split))
    train_end = rows - test - validation
    return Split(slice(0, train_end), slice(train_end, rows - test), slice(rows - test, rows))


def make_windows(
    data,
    window: int,
    horizon: int = 1,
    targets=None,
    target_rows: slice | None = None,
    stride: int = 1,
):
    """Inputs of `window` rows and targets of the `horizon` rows that follow them.

    `x[i] = data[s : s + window]` and `y[i] = targets[s + window : s + window + horizon]`.
    With `target_rows` (a slice such as `chronological_split(...).test`), only windows whose
    targets all lie in those rows are made; their inputs may reach back before the slice,
    as a forecast made at that time could.

    Args:
        data: `(rows, features)` or `(rows,)`, in time order.
        window: rows per input window.
        horizon: rows to predict after each window.
        targets: `(rows,)` or `(rows, k)`; default `data`.
        target_rows: restrict the targets to these rows (a `slice` with a step of 1).
        stride: rows between consecutive windows.

    Returns:
        `(x, y, first)`: `x` `(n, window, features)`, `y` `(n, horizon)` (or
        `(n, horizon, k)`), and `first`, the row number of each window's first target.

    Example:
        >>> import numpy as np
        >>> x, y, first = make_windows(np.arange(6.0), window=3, horizon=2)
        >>> x[:, :, 0].tolist(), y.tolist(), first.tolist()
        ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]], [3, 4])
    """
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[:, None]  # (rows, 1)
    targets = data if targets is None else np.asarray(targets)
    rows = len(data)
    if len(targets) != rows:
        raise ValueError(
            f"make_windows: targets has {len(targets)} rows but data has {rows}; give one "
            "target row per data row."
        )
    for name, value in (("window", window), ("horizon", horizon), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"make_windows: {name} must be a positive integer; got {value!r}.")
    low, high = 0, rows
    if target_rows is not None:
        low, high, step = target_rows.indices(rows)
        if step != 1:
            raise ValueError(f"make_windows: target_rows must be contiguous; got {target_rows}.")
    first = np.arange(max(low, window), high - horizon + 1, stride)
    if len(first) == 0:
        raise ValueError(
            f"make_windows: a window of {window} rows plus a horizon of {horizon} needs at "
            f"least {window + horizon} rows, with the targets within rows {low}..{high - 1}; "
            f"the data has {rows}. Use a shorter window or horizon, or more data."
        )
    x = data[(first - window)[:, None] + np.arange(window)]  # (n, window, features)
    y = targets[first[:, None] + np.arange(horizon)]  # (n, horizon, ...)
    return x, y, first
