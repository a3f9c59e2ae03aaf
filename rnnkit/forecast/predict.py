"""Forecast with a saved model: the next `horizon` rows after each series' last: `rnnkit predict`.

The history table has the columns the model was trained on. A model with future
covariates also needs their values for the rows it forecasts: give those rows at the end
of each series with the target left empty.

    unique_id,ds,y,promo
    a,2024-03-01,120,0
    a,2024-04-01,,1        <- a future row: the target empty, promo known
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rnnkit._task import task_metadata
from rnnkit.forecast import intervals, seasonal
from rnnkit.forecast.data import Panel, calendar_features, load_panel, next_dates
from rnnkit.forecast.model import forecast_scaled, static_arrays
from rnnkit.forecast.settings import ForecastSettings
from rnnkit.forecast.train import METADATA, TASK
from rnnkit.forecast.windows import Windows, cut, fit_scalers, scale


def check_forecast_model(model, name: str | None = None) -> dict:
    """The metadata of a model saved by `rnnkit forecast`, or a ValueError saying what is off.

    A model saved before many series (one `scaler`) reads as one series named "series".

    Args:
        model: a loaded model.
        name: what messages call it (the file's path); default: the model's name.
    """
    name = name or f"The model '{model.name}'"
    saved = getattr(model, "metadata", None) or {}
    old_format = "scaler" in saved and "scalers" not in saved  # before many series
    fields = [f for f in METADATA if not (old_format and f == "scalers")]
    meta = dict(task_metadata(model, TASK, fields, name, "it cannot read a CSV of series"))
    if "scalers" not in meta:  # saved by rnnkit before many series: one `scaler`
        meta["scalers"] = {"series": meta["scaler"]}
    for key in ("window", "horizon"):  # they size the arrays: a wrong type fails far away
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{name} is damaged: its metadata.json has {key}={value!r}, where `rnnkit "
                "forecast` writes a positive integer. Train it again with rnnkit forecast."
            )
    return meta


def _settings(meta: dict) -> ForecastSettings:
    return ForecastSettings(
        target=meta["target"],
        window=meta["window"],
        horizon=meta["horizon"],
        strategy=meta.get("strategy", "direct"),
        predict_change=meta["predict_change"],
        calendar=meta["calendar"],
    )


def _split_future(frame, meta, source):
    """`(history, future)`: each series' trailing rows with an empty target are its future
    rows (needed only by a model with future covariates)."""
    target, id_col = meta["target"], meta.get("id_col")
    if not meta.get("future") or target not in frame.columns:
        return frame, None
    empty = pd.to_numeric(frame[target], errors="coerce").isna().to_numpy()
    groups = frame[id_col].astype(str).to_numpy() if id_col in frame.columns else None
    trailing = np.zeros(len(frame), dtype=bool)
    keys = [None] if groups is None else pd.unique(groups)
    for key in keys:
        rows = np.arange(len(frame)) if key is None else np.flatnonzero(groups == key)
        for row in rows[::-1]:
            if not empty[row]:
                break
            trailing[row] = True
    return frame[~trailing].reset_index(drop=True), frame[trailing].reset_index(drop=True)


def _read(model, frame: pd.DataFrame, source: str):
    """What the saved model reads from `frame`: `(meta, panel, scaled, known)`, `known` saying
    per series whether the model was trained on it (its saved scaler) or not (scaled on the
    rows given)."""
    meta = check_forecast_model(model)
    date_col, id_col = meta["date_col"], meta.get("id_col")
    if date_col is not None and date_col not in frame.columns and meta["calendar"]:
        from rnnkit.datasets._tables import require_columns

        require_columns(frame, [date_col], source, "the model's date column")
    # A model trained on several target columns side by side reads the same wide table
    # (stacked here as in training) or its long form, with the id column.
    targets = meta.get("targets") if id_col not in frame.columns else None
    if id_col is not None and id_col not in frame.columns and not targets:
        from rnnkit.datasets._tables import require_columns

        require_columns(frame, [id_col], source, "the model's id column")
    history, future = _split_future(frame, meta, source)
    panel = load_panel(
        history,
        targets or meta["target"],
        meta["features"],
        date_col if date_col in history.columns else None,
        None if targets else id_col,
        meta.get("future", []),
        meta.get("static_cols", []),
        meta["fill"],
        source,
    )
    window = meta["window"]
    short = [(n, len(t)) for n, t in zip(panel.ids, panel.target) if len(t) < window]
    if short:
        which = "" if id_col is None else f" for series {short[0][0]!r}"
        raise ValueError(
            f"'{source}' has {short[0][1]} rows{which}; the model reads the last {window}. "
            f"Give at least {window} rows" + (" per series." if id_col else ".")
        )
    saved = meta["scalers"]
    known = [name in saved for name in panel.ids]
    if len(saved) == 1 and id_col is None:
        configs = list(saved.values())
        known = [True]
    else:
        settings = _settings(meta)
        settings.test_size, settings.val_size = 0, 0
        own = fit_scalers(panel, [cut(len(t), settings, True) for t in panel.target])
        configs = [saved.get(n, c) for n, c in zip(panel.ids, own)]
    normalize = meta.get("normalize", "series")
    indices = None
    if meta.get("deseason"):  # estimated on the rows given, as in training on its rows
        indices = [seasonal.indices(t, meta["season"]) for t in panel.target]
    scaled = scale(panel, configs, meta["calendar"], normalize, indices)
    return meta, panel, scaled, known, future


def forecast_next(model, frame: pd.DataFrame, source: str = "the table") -> pd.DataFrame:
    """The next `horizon` values after the last row of each series of `frame`.

    Args:
        model: a model saved by `rnnkit forecast` (its `metadata` says what it reads).
        frame: a table with the columns it was trained on, rows in time order (future rows
            with an empty target when the model takes future covariates).

    Returns:
        One series: `step` (1..horizon), the date when the table has dates, and the forecast
        named after the target. Many series (an id column): the id column, the date column
        (or `step`) and `forecast`. Then `lo_80`, `hi_80`, ... for each saved interval level.
    """
    meta, panel, scaled, known, future = _read(model, frame, source)
    settings = _settings(meta)
    window, horizon = meta["window"], meta["horizon"]
    last = Windows(
        x=np.stack([inputs[-window:] for inputs in scaled.inputs]),  # (series, window, F)
        y=np.zeros((len(panel), horizon), np.float32),
        truth=np.zeros((len(panel), horizon)),
        series=np.arange(len(panel)),
        first=np.array([len(t) for t in panel.target]),
        base=np.array([t[-1] for t in scaled.target]),
        relative=scaled.target_col if scaled.log else -1,
    )
    dates = [
        next_dates(d.iloc[-1], meta.get("step"), horizon) if d is not None else None
        for d in panel.dates
    ]
    ahead = _ahead_rows(meta, panel, scaled, future, dates, source)
    if meta.get("future"):
        last.ahead = ahead[:, :, scaled.future_index]
    if meta.get("static_cols"):
        last.codes, last.numbers = static_arrays(panel.static, meta["static"])
    output = forecast_scaled(model, last, settings, panel.target_index, ahead)
    rows = last.first[:, None] + np.arange(horizon)  # (series, horizon): the rows ahead
    values = scaled.values(output, last.series, rows)
    saved = meta.get("error_scales", {})
    scales = np.array(
        [
            saved.get(name) or intervals.error_scale(np.log(target) if scaled.log else target)
            for name, target in zip(panel.ids, panel.target)
        ]
    )
    return _table(meta, panel, values, dates, scales)


def _ahead_rows(meta, panel: Panel, scaled, future, dates, source):
    """`(series, horizon, features)`: the scaled inputs at the forecast steps, as far as they
    are known ahead (future covariates, the calendar); the other columns hold 0."""
    horizon, names = meta["horizon"], meta["features"]
    rows = np.zeros((len(panel), horizon, scaled.inputs[0].shape[1]), np.float32)
    columns = scaled.future_index
    for s in range(len(panel)):
        if columns:
            config = scaled.scalers[s]
            shift = np.asarray(config["shift"])[columns]
            spread = np.asarray(config["scale"])[columns]
            values = _future_values(meta, panel, s, future, source)  # (horizon, future)
            rows[s][:, columns] = (values - shift) / spread
        if meta["calendar"] and dates[s] is not None:
            rows[s, :, len(names) :] = calendar_features(pd.Series(dates[s]))
    return rows


def _future_values(meta, panel, s, future, source) -> np.ndarray:
    """`(horizon, future columns)` of series `s` from the future rows, or a ValueError."""
    horizon, id_col, columns = meta["horizon"], meta.get("id_col"), meta["future"]
    rows = future
    if future is not None and id_col is not None:
        rows = future[future[id_col].astype(str) == panel.ids[s]]
    count = 0 if rows is None else len(rows)
    which = f"series {panel.ids[s]!r}" if id_col else f"'{source}'"
    if count < horizon:
        raise ValueError(
            f"The model takes future covariates ({', '.join(columns)}) and forecasts "
            f"{horizon} row(s) ahead, but {which} has {count} future row(s) after its last "
            f"target. Add {horizon - count} more row(s) at its end with the target empty and "
            f"{', '.join(columns)} filled in."
        )
    values = rows[columns].iloc[:horizon].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any():
        column = values.columns[values.isna().any()].tolist()[0]
        raise ValueError(
            f"{which} misses {column!r} in its future rows; the model needs every future "
            "covariate for each row it forecasts. Fill them in."
        )
    return values.to_numpy(np.float64)


def _table(meta, panel: Panel, values, dates, spread) -> pd.DataFrame:
    horizon, id_col = meta["horizon"], meta.get("id_col")
    steps = np.arange(1, horizon + 1)
    frames = []
    for s, name in enumerate(panel.ids):
        table = pd.DataFrame()
        if id_col is not None:
            table[id_col] = [name] * horizon
        if id_col is None:
            table["step"] = steps
        if dates[s] is not None:
            table[meta["date_col"] if id_col is not None else "date"] = dates[s]
        elif id_col is not None:
            table["step"] = steps
        table["forecast" if id_col is not None else meta["target"]] = values[s]
        for level, half in meta.get("intervals", {}).items():
            lo, hi = intervals.column_names(float(level))
            if meta.get("normalize") == "log-window":  # relative: forecast × exp(±w)
                width = np.exp(np.asarray(half) * spread[s])
                table[lo], table[hi] = values[s] / width, values[s] * width
            else:
                width = np.asarray(half) * spread[s]
                table[lo], table[hi] = values[s] - width, values[s] + width
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def table_windows(model, frame: pd.DataFrame, source: str = "the table"):
    """Every window of `frame` the saved model reads, as it reads them, and the target the
    model learned for each window that has `horizon` rows after it: what `rnnkit explain`
    explains a forecast model on.

    Returns:
        `(x, y)`: `x` `(windows, window, features)` float32, each series' windows in time
        order (a series' last is what `forecast_next` forecasts from), and `y` `(m, horizon)`
        float32, the scaled targets (the change since the window's last row, with
        `predict_change`) of the windows that have `horizon` rows after them.
    """
    meta, panel, scaled, _, _ = _read(model, frame, source)
    window, horizon = meta["window"], meta["horizon"]
    xs, ys = [], []
    for inputs, target in zip(scaled.inputs, scaled.target):
        x = np.lib.stride_tricks.sliding_window_view(inputs, window, axis=0)  # (n, F, window)
        x = x.transpose(0, 2, 1).astype(np.float32)  # (n, window, features)
        if scaled.log:  # read relative to each window's last row, as the network does
            x[:, :, scaled.target_col] -= x[:, -1:, scaled.target_col]
        xs.append(x)
        if len(inputs) >= window + horizon:
            first = np.arange(window, len(inputs) - horizon + 1)
            y = target[first[:, None] + np.arange(horizon)]
            if meta["predict_change"]:
                y = y - target[first - 1][:, None]
            ys.append(y)
    y = np.concatenate(ys) if ys else np.zeros((0, horizon))
    return np.concatenate(xs), y.astype(np.float32)
