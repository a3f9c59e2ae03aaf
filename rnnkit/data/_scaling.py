"""Feature scaling fitted on the training rows only, and explicit handling of missing values.

A scaler learns one shift and one scale per column (`x' = (x - shift) / scale`) from the
rows given to `fit`, which should be the training part of a chronological split: a
scaler that saw the test rows would leak their level into the model. Its settings are
plain numbers (`get_config`), so they are saved beside a model as JSON.
"""

from __future__ import annotations

import numpy as np

FILL_METHODS = ("error", "ffill", "interpolate", "drop")


class _Scaler:
    kind = ""

    def __init__(self, columns: list[str] | None = None):
        self.columns = list(columns) if columns is not None else None
        self.shift: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _statistics(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _name(self, index: int) -> str:
        return repr(self.columns[index]) if self.columns else f"column {index}"

    def _as_2d(self, values, action: str) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 1:
            array = array[:, None]  # (rows, 1)
        if array.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}.{action} takes (rows, columns); got shape {array.shape}."
            )
        if self.shift is not None and array.shape[1] != len(self.shift):
            raise ValueError(
                f"{type(self).__name__}.{action}: fitted on {len(self.shift)} column(s), got "
                f"{array.shape[1]}. Pass the same columns, in the same order."
            )
        return array

    def fit(self, values) -> _Scaler:
        """Learn each column's shift and scale from `values` `(rows, columns)`."""
        array = self._as_2d(values, "fit")
        if len(array) == 0:
            raise ValueError(f"{type(self).__name__}.fit got no rows.")
        bad = ~np.isfinite(array)
        if bad.any():
            column = int(np.argmax(bad.any(axis=0)))
            raise ValueError(
                f"{type(self).__name__}.fit: {self._name(column)} has "
                f"{int(bad[:, column].sum())} missing or infinite value(s). Fill or drop them "
                "first (rnnkit.data.fill_missing)."
            )
        shift, scale = self._statistics(array)
        self.shift, self.scale = shift, np.where(scale > 0, scale, 1.0)  # constant columns
        return self

    def _check_fitted(self, action: str) -> None:
        if self.shift is None:
            raise ValueError(f"{type(self).__name__}.{action}: call fit(training_rows) first.")

    def transform(self, values) -> np.ndarray:
        """`(values - shift) / scale`, column by column, as float32."""
        self._check_fitted("transform")
        array = self._as_2d(values, "transform")
        return ((array - self.shift) / self.scale).astype(np.float32)

    def fit_transform(self, values) -> np.ndarray:
        return self.fit(values).transform(values)

    def inverse_transform(self, values, columns=None) -> np.ndarray:
        """Back to the original units. `columns`: the column indices `values` holds
        (default all), e.g. `[target_index]` to invert a forecast of one column."""
        self._check_fitted("inverse_transform")
        index = slice(None) if columns is None else list(columns)
        values = np.asarray(values, dtype=np.float64)
        return values * self.scale[index] + self.shift[index]

    def get_config(self) -> dict:
        self._check_fitted("get_config")
        return {
            "kind": self.kind,
            "columns": self.columns,
            "shift": self.shift.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_config(cls, config: dict) -> _Scaler:
        scaler = SCALERS[config["kind"]](config.get("columns"))
        scaler.shift = np.asarray(config["shift"], dtype=np.float64)
        scaler.scale = np.asarray(config["scale"], dtype=np.float64)
        return scaler

    def __repr__(self) -> str:
        state = "fitted" if self.shift is not None else "not fitted"
        return f"{type(self).__name__}({state})"


class StandardScaler(_Scaler):
    """`x' = (x - mean) / std`, per column (a constant column gets std 1).

    Example:
        >>> import numpy as np
        >>> scaler = StandardScaler().fit(np.array([[1.0], [3.0]]))
        >>> scaler.transform([[2.0], [5.0]]).ravel().tolist()
        [0.0, 3.0]
    """

    kind = "standard"

    def _statistics(self, values):
        return values.mean(axis=0), values.std(axis=0)


class MinMaxScaler(_Scaler):
    """`x' = (x - min) / (max - min)`, per column: the training rows land in [0, 1].

    Example:
        >>> import numpy as np
        >>> MinMaxScaler().fit_transform(np.array([[2.0], [4.0], [6.0]])).ravel().tolist()
        [0.0, 0.5, 1.0]
    """

    kind = "minmax"

    def _statistics(self, values):
        low = values.min(axis=0)
        return low, values.max(axis=0) - low


SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler}


def scaler_from_config(config: dict) -> _Scaler:
    """Rebuild a scaler from `scaler.get_config()`."""
    if not isinstance(config, dict) or config.get("kind") not in SCALERS:
        raise ValueError(f"Not a scaler config: {config!r}.")
    return _Scaler.from_config(config)


def fill_missing(frame, method: str = "error", columns=None):
    """Find missing values in a DataFrame's `columns` and fill them, or say where they are.

    Args:
        frame: a pandas DataFrame, rows in time order.
        method: "error" (default) raises naming each column and its first missing row;
            "ffill" carries the last seen value forward (then back, for leading gaps);
            "interpolate" draws a straight line across each gap (ends as "ffill");
            "drop" removes the rows (leaving gaps in time; windows then span them).
        columns: the columns to check (default all).

    Returns:
        A new DataFrame without missing values in `columns`.

    Example:
        >>> import pandas as pd
        >>> fill_missing(pd.DataFrame({"t": [1.0, None, 3.0]}), "interpolate")["t"].tolist()
        [1.0, 2.0, 3.0]
    """
    if method not in FILL_METHODS:
        raise ValueError(f"fill_missing: method must be one of {FILL_METHODS}; got {method!r}.")
    columns = list(frame.columns if columns is None else columns)
    missing = frame[columns].isna()
    empty = [c for c in columns if missing[c].all()]
    if empty:
        raise ValueError(
            f"Column(s) {', '.join(map(repr, empty))} hold no values at all (every row is "
            "missing). Leave them out of the features."
        )
    if not missing.any().any():
        return frame
    if method == "error":
        where = []
        for c in columns:
            if missing[c].any():
                first = int(missing[c].to_numpy().argmax())
                where.append(f"{c!r}: {int(missing[c].sum())} missing, the first in row {first}")
        raise ValueError(
            "Missing values in " + "; ".join(where) + ". Choose how to fill them: 'ffill' "
            "carries the last value forward, 'interpolate' draws a line across each gap, "
            "'drop' removes the rows (fill='ffill' in Python, --fill ffill on the command line)."
        )
    frame = frame.copy()
    if method == "drop":
        return frame.dropna(subset=columns).reset_index(drop=True)
    if method == "interpolate":
        frame[columns] = frame[columns].interpolate(method="linear", limit_direction="both")
    frame[columns] = frame[columns].ffill().bfill()
    return frame
