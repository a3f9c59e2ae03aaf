"""Forecasting a column of a table from its recent past: the pipeline behind `rnnkit forecast`.

    table --(features, scaled on the training rows)--> windows of `window` rows
          --> SimpleRNN / LSTM / GRU --> Dense(horizon) --> the next `horizon` values

The rows are split in time order (train, validation, test), the scaler learns only from
the training rows, and the model is scored on the test rows beside two forecasts that
need no model: persistence (every future value equals the last one seen) and seasonal
naive (each value equals the one a season earlier). A model that cannot beat
persistence has learned nothing useful.

By default the network predicts the *change* from the last observed value rather than
the value itself (`predict_change`), and sees the day of the year as a point on a
circle (`calendar`) when the rows have dates: for next-day weather, both matter more
than the size of the network.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rnnkit._task import memory_horizon, task_metadata
from rnnkit.data import (
    StandardScaler,
    chronological_split,
    fill_missing,
    make_windows,
    scaler_from_config,
)
from rnnkit.datasets._tables import load_csv, numeric_columns, require_columns

CELLS = ("simple_rnn", "lstm", "gru")
TASK = "forecast"


@dataclass
class ForecastSettings:
    """What `rnnkit forecast` trains; each default has its reason beside it."""

    target: str = "temp_max"
    features: list[str] | None = None  # None: every numeric column (the target included)
    date_col: str | None = "date"  # dates give the calendar features and the plot's axis
    window: int = 14  # two weeks of weather: long enough for a front to pass
    horizon: int = 1  # predict this many rows ahead (1: tomorrow)
    cell: str = "gru"  # on the weather, GRU beat LSTM and SimpleRNN seed for seed
    units: int = 16  # ~1,000 training windows: 16 units overfit less than 24 or 32
    epochs: int = 100  # an upper bound: training stops when validation stops improving
    patience: int = 15  # epochs without a better validation loss before stopping
    batch_size: int = 64
    learning_rate: float = 1e-3  # halved after 4 epochs without improvement
    validation_split: float = 0.15  # the rows after the training rows
    test_split: float = 0.15  # the last rows: the future the model is scored on
    calendar: bool = True  # add sin/cos of the day of the year when there are dates
    predict_change: bool = True  # learn y[t+k] - y[t]: persistence is then the zero forecast
    season: int | None = None  # rows per season for the seasonal-naive forecast; None: infer
    fill: str = "error"  # missing values: "error", "ffill", "interpolate" or "drop"
    seed: int = 0
    # Models trained from different seeds, their forecasts averaged: one GRU's skill over
    # persistence ranged 6.8-9.8% across 15 seeds on the weather; five averaged, 8.9-9.5%.
    ensemble: int = 5

    def check(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}.")
        for name in ("window", "horizon", "units", "epochs", "batch_size", "ensemble"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if self.season is not None and (not isinstance(self.season, int) or self.season < 1):
            raise ValueError(f"season must be a positive integer; got {self.season!r}.")


@dataclass
class Series:
    """A table made ready for windows: raw numeric features, the target, dates, names."""

    values: np.ndarray  # (rows, features), float64, in the table's units
    target: np.ndarray  # (rows,), float64
    names: list[str]  # the feature columns, in order
    target_index: int  # where the target sits among `names`, or -1 if it is not a feature
    dates: pd.Series | None
    skipped: list[str] = field(default_factory=list)  # non-numeric columns left out


def load_series(
    frame: pd.DataFrame,
    target: str,
    features=None,
    date_col: str | None = None,
    fill: str = "error",
    source: str = "the table",
) -> Series:
    """Pick, check and clean the columns of `frame` a forecast reads."""
    if date_col is not None:
        require_columns(frame, [date_col], source, "--date-col")
    require_columns(frame, [target], source, "--target")
    skipped = []
    if features is None:
        candidates = [c for c in frame.columns if c != date_col]
        features = []
        for column in candidates:
            numeric = pd.to_numeric(frame[column], errors="coerce")
            if numeric.notna().any() and (numeric.notna() | frame[column].isna()).all():
                features.append(column)
            elif column != target:
                skipped.append(column)
        if target not in features:
            features.append(target)  # numeric_columns below says why it is not numeric
    else:
        features = list(features)
        require_columns(frame, features, source, "--features")
        if date_col in features:
            raise ValueError(
                f"--features includes the date column {date_col!r}; dates enter as calendar "
                "features by themselves. Leave it out of --features."
            )
    columns = list(dict.fromkeys([*features, target]))
    numbers = numeric_columns(frame, columns, source)
    if date_col is not None:
        numbers[date_col] = frame[date_col].to_numpy()
    if date_col is not None:
        _check_one_row_per_date(numbers[date_col], source)
    filled = fill_missing(numbers, fill, columns=columns)
    if filled.empty:
        raise ValueError(_dropped_everything(numbers[columns], source))
    numbers = filled
    dates = numbers[date_col].reset_index(drop=True) if date_col is not None else None
    return Series(
        values=numbers[features].to_numpy(np.float64),
        target=numbers[target].to_numpy(np.float64),
        names=features,
        target_index=features.index(target) if target in features else -1,
        dates=dates,
        skipped=skipped,
    )


def _check_one_row_per_date(dates: pd.Series, source: str) -> None:
    """A ValueError if a date has several rows: stacked series would be read as one, interleaved."""
    repeated = dates[dates.duplicated(keep=False)]
    if repeated.empty:
        return
    counts = repeated.value_counts().sort_index()
    # astype(str) on the index drops the time of day when every date is at midnight
    shown = zip(counts.index.astype(str)[:3], counts.to_numpy()[:3])
    first = ", ".join(f"{date} ({n} rows)" for date, n in shown)
    more = f" and {len(counts) - 3} more" if len(counts) > 3 else ""
    raise ValueError(
        f"'{source}' has more than one row for {len(counts)} date(s): {first}{more}. A "
        "forecast reads one row per date, in time order; several series stacked in one table "
        "are not supported yet. Keep one series per file (the rows of one id or name), or "
        "combine each date's rows into one (their sum or mean) before forecasting."
    )


def _dropped_everything(numbers: pd.DataFrame, source: str) -> str:
    """Why `fill="drop"` left no rows: each column with gaps, and how many."""
    gaps = numbers.isna().sum()
    gaps = gaps[gaps > 0]
    which = ", ".join(f"{column!r} ({n} missing)" for column, n in gaps.items())
    return (
        f"Filling by 'drop' removed all {len(numbers)} rows of '{source}': every row misses a "
        f"value in one of {which}. Leave the sparse column(s) out of the features (--features), "
        "or fill the gaps instead (--fill ffill or --fill interpolate)."
    )


def calendar_features(dates: pd.Series) -> np.ndarray:
    """The day of the year as a point on the unit circle: `(rows, 2)`, sin and cos.

    31 December and 1 January end up next to each other, as they are in the weather.
    """
    angle = 2 * np.pi * (dates.dt.day_of_year.to_numpy() - 1) / 365.25
    return np.column_stack([np.sin(angle), np.cos(angle)])


def infer_season(dates: pd.Series | None) -> tuple[int | None, str]:
    """Rows per season, and its name, from the spacing of the dates (None if unclear)."""
    if dates is None or len(dates) < 3:
        return None, ""
    step = pd.Series(dates).diff().median()
    days = step / pd.Timedelta(days=1)
    span_years = (dates.iloc[-1] - dates.iloc[0]) / pd.Timedelta(days=365)
    if abs(days - 1 / 24) < 1e-6:
        return 24, "the same hour yesterday"
    if abs(days - 1) < 1e-6:
        if span_years >= 2:
            return 365, "the same day last year"
        return 7, "the same day last week"
    if abs(days - 7) < 1e-6:
        return 52, "the same week last year"
    if 28 <= days <= 31:
        return 12, "the same month last year"
    if 89 <= days <= 92:
        return 4, "the same quarter last year"
    return None, ""


def _naive_forecasts(target, first, horizon, season):
    """Persistence and seasonal-naive forecasts for the windows whose targets start at `first`.

    Persistence: `y[t+k] = y[t]`, `t = first - 1` the last row seen. Seasonal naive:
    `y[t+k] = y[t+k - s*ceil(k/s)]`, the latest value one or more seasons earlier.
    """
    last = first - 1
    steps = np.arange(1, horizon + 1)  # k
    persistence = np.repeat(target[last][:, None], horizon, axis=1)  # (n, horizon)
    if season is None:
        return persistence, None
    back = season * np.ceil(steps / season).astype(int)  # (horizon,)
    index = last[:, None] + steps - back  # (n, horizon)
    if (index < 0).any():
        return persistence, None
    return persistence, target[index]


def _errors(prediction, truth) -> dict:
    error = prediction - truth
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}


@dataclass
class ForecastResult:
    """What a run produced: the model, its settings and scores, the test forecasts."""

    model: object
    settings: ForecastSettings
    metrics: dict
    test_dates: np.ndarray | None  # (n,) the date of each test target's first step
    test_truth: np.ndarray  # (n, horizon)
    test_forecast: np.ndarray  # (n, horizon)
    test_persistence: np.ndarray  # (n, horizon)
    series: Series
    history: list


def _inputs(series: Series, scaler, calendar: bool) -> np.ndarray:
    scaled = scaler.transform(series.values)  # (rows, features)
    if calendar and series.dates is not None:
        scaled = np.column_stack([scaled, calendar_features(series.dates)]).astype(np.float32)
    return scaled


def _build_model(settings: ForecastSettings, features: int, name: str):
    from rnnkit import Input, Sequential
    from rnnkit.layers import GRU, LSTM, Dense, SimpleRNN
    from rnnkit.optimizers import Adam

    cell = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[settings.cell]
    model = Sequential(
        [Input((settings.window, features)), cell(settings.units), Dense(settings.horizon)],
        name=name,
    )
    model.compile(optimizer=Adam(settings.learning_rate), loss="mse", metrics=["mae"])
    return model


def train_forecast(
    series: Series, settings: ForecastSettings, callbacks=(), summary=None, on_member=None
):
    """Train on the series' training rows and score on its test rows.

    Args:
        series: from `load_series`.
        settings: a `ForecastSettings`.
        callbacks: extra callbacks for `fit` (a progress bar).
        summary: called with the model before training (to print its summary).
        on_member: called with (index, count, seed) before each model of the ensemble trains.

    Returns:
        A `ForecastResult`. Its `metrics` hold the test scores beside persistence's and
        seasonal naive's, and `"memory_horizon"`: how many of a window's last rows the
        forecast depends on, measured on the test windows (`rnnkit._task.memory_horizon`:
        `{"steps", "threshold", "timesteps", "sequences"}`).
    """
    from rnnkit.callbacks import EarlyStopping, ReduceLROnPlateau
    from rnnkit.utils import set_random_seed

    settings.check()
    rows = len(series.target)
    split = chronological_split(rows, settings.validation_split, settings.test_split)
    _check_rows(rows, split, settings)
    _check_target_changes(series.target, settings.target)
    scaler = StandardScaler(series.names).fit(series.values[split.train])
    inputs = _inputs(series, scaler, settings.calendar)
    center, spread = _target_scale(series, scaler)
    scaled_target = (series.target - center) / spread

    def windows(rows_slice):
        x, y, first = make_windows(
            inputs, settings.window, settings.horizon, scaled_target, target_rows=rows_slice
        )
        if settings.predict_change:
            y = y - scaled_target[first - 1][:, None]  # the change since the last row seen
        return x, y, first

    x_train, y_train, _ = windows(split.train)
    x_val, y_val, _ = windows(split.validation)
    x_test, _, first = windows(split.test)

    members, history = [], []
    for member in range(settings.ensemble):
        set_random_seed(settings.seed + member)
        name = f"forecast_{settings.cell}" + (f"_{member + 1}" if settings.ensemble > 1 else "")
        model = _build_model(settings, inputs.shape[1], name)
        if summary is not None and member == 0:
            summary(model)
        if on_member is not None:
            on_member(member, settings.ensemble, settings.seed + member)
        stop = EarlyStopping(patience=settings.patience, restore_best_weights=True)
        slower = ReduceLROnPlateau(factor=0.5, patience=4)
        fitted = model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            callbacks=[stop, slower, *callbacks],
            verbose=0,
        )
        history.append(fitted.history)
        members.append(model)
    model = members[0] if len(members) == 1 else _average(members, settings, inputs.shape[1])
    output = model.predict(x_test, batch_size=256)  # (n, horizon)
    if settings.predict_change:
        output = output + scaled_target[first - 1][:, None]
    forecast = output * spread + center

    truth = series.target[first[:, None] + np.arange(settings.horizon)]  # (n, horizon)
    season, season_name = settings.season, ""
    if season is None:
        season, season_name = infer_season(series.dates)
    persistence, seasonal = _naive_forecasts(series.target, first, settings.horizon, season)
    metrics = {
        "target": settings.target,
        "test_rows": int(split.test.stop - split.test.start),
        "test_windows": len(first),
        "model": _errors(forecast, truth),
        "persistence": _errors(persistence, truth),
    }
    if seasonal is not None:
        metrics["seasonal_naive"] = _errors(seasonal, truth) | {
            "season": int(season),
            "meaning": season_name or f"{season} rows earlier",
        }
    model_rmse, persistence_rmse = metrics["model"]["rmse"], metrics["persistence"]["rmse"]
    metrics["skill_vs_persistence"] = _skill(model_rmse, persistence_rmse)
    if settings.horizon > 1:
        metrics["model_by_step"] = [
            _errors(forecast[:, k], truth[:, k]) for k in range(settings.horizon)
        ]
    metrics["memory_horizon"] = memory_horizon(model, x_test)
    metrics["epochs_trained"] = [len(h["loss"]) for h in history]
    metrics["settings"] = dataclasses.asdict(settings)

    model.metadata = _metadata(series, settings, scaler)
    dates = None
    if series.dates is not None:
        dates = series.dates.to_numpy()[first]
    return ForecastResult(
        model=model,
        settings=settings,
        metrics=metrics,
        test_dates=dates,
        test_truth=truth,
        test_forecast=forecast,
        test_persistence=persistence,
        series=series,
        history=history,
    )


def _average(members, settings: ForecastSettings, features: int):
    """One model that runs the trained members side by side and averages their forecasts."""
    from rnnkit import Input, Model
    from rnnkit.layers import Average

    inputs = Input((settings.window, features))
    outputs = Average()([member(inputs) for member in members])
    return Model(inputs, outputs, name=f"forecast_{settings.cell}_ensemble")


def _target_scale(series: Series, scaler) -> tuple[float, float]:
    if series.target_index >= 0:
        i = series.target_index
        return float(scaler.shift[i]), float(scaler.scale[i])
    return 0.0, 1.0


def _skill(rmse: float, persistence_rmse: float) -> float | None:
    """How much lower the model's RMSE is than persistence's, as a fraction; None when the
    target does not change over the test rows (persistence exact, nothing to divide by)."""
    return None if persistence_rmse == 0 else 1 - rmse / persistence_rmse


def _check_target_changes(target: np.ndarray, name: str) -> None:
    if np.ptp(target) == 0:
        raise ValueError(
            f"The target {name!r} holds the same value, {target[0]:g}, in all {len(target)} "
            "rows: there is nothing to forecast (the last value is always right). Choose a "
            "--target column whose values change."
        )


def _check_rows(rows: int, split, settings: ForecastSettings) -> None:
    need = settings.window + settings.horizon
    for name, part in (("training", split.train), ("validation", split.validation)):
        size = part.stop - part.start
        if (name == "training" and size < need) or size < settings.horizon:
            raise ValueError(
                f"Too few rows: the {name} part has {size} of the table's {rows} rows, but a "
                f"window of {settings.window} plus a horizon of {settings.horizon} needs "
                f"{need}. Use a shorter --window or --horizon, or a longer table (at least "
                f"{math.ceil(need / (1 - settings.validation_split - settings.test_split))} "
                "rows here)."
            )
    if split.test.stop - split.test.start < settings.horizon:
        raise ValueError(
            f"Too few rows: the test part ({split.test.stop - split.test.start} rows) is "
            f"shorter than the horizon ({settings.horizon}). Use more rows or a larger "
            "--test-split."
        )


def _frequency(dates: pd.Series) -> str:
    """The spacing of the dates as a pandas offset ("D", "MS") or, if irregular, a duration."""
    if len(dates) > 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas 3 warns that the return type will change
            frequency = pd.infer_freq(dates)
        if frequency is not None:
            return pd.tseries.frequencies.to_offset(frequency).freqstr
    return str(dates.diff().median())


# What `forecast_next` reads from a saved model's metadata ("step" is optional: None
# when the rows had no dates).
METADATA = (
    "target",
    "features",
    "date_col",
    "calendar",
    "predict_change",
    "window",
    "horizon",
    "fill",
    "scaler",
)


def _metadata(series: Series, settings: ForecastSettings, scaler) -> dict:
    step = None
    if series.dates is not None and len(series.dates) > 1:
        step = _frequency(series.dates)
    return {
        "task": TASK,
        "target": settings.target,
        "features": series.names,
        "date_col": settings.date_col if series.dates is not None else None,
        "calendar": bool(settings.calendar and series.dates is not None),
        "predict_change": settings.predict_change,
        "window": settings.window,
        "horizon": settings.horizon,
        "fill": settings.fill,
        "scaler": scaler.get_config(),
        "step": step,
    }


# ------------------------------------------------------------------------------ predict


def check_forecast_model(model, name: str | None = None) -> dict:
    """The metadata of a model saved by `rnnkit forecast`, or a ValueError saying what is off.

    Args:
        model: a loaded model.
        name: what messages call it (the file's path); default: the model's name.
    """
    name = name or f"The model '{model.name}'"
    meta = task_metadata(model, TASK, METADATA, name, "it cannot read a CSV of series")
    for key in ("window", "horizon"):  # they size the arrays: a wrong type fails far away
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{name} is damaged: its metadata.json has {key}={value!r}, where `rnnkit "
                "forecast` writes a positive integer. Train it again with rnnkit forecast."
            )
    return meta


def _in_date_order(frame: pd.DataFrame, date_col: str, source: str) -> pd.DataFrame:
    """`frame` with `date_col` parsed and the rows sorted by it; a ValueError for a non-date."""
    dates = pd.to_datetime(frame[date_col], errors="coerce")
    if dates.isna().any():
        row = int(dates.isna().to_numpy().argmax())
        raise ValueError(
            f"Column {date_col!r} of '{source}' holds {frame[date_col].iloc[row]!r} in row "
            f"{row}, not a date; the model reads a date on every row. Fix or remove that row."
        )
    frame = frame.assign(**{date_col: dates})
    return frame.sort_values(date_col, kind="stable").reset_index(drop=True)


def _read_rows(model, frame: pd.DataFrame, source: str):
    """What the saved model reads from `frame`: `(meta, series, inputs, center, spread)`, with
    `inputs` `(rows, features)` scaled as in training and the target's scale (center, spread);
    a ValueError when a column is missing or there are fewer rows than a window."""
    meta = check_forecast_model(model)
    date_col = meta["date_col"]
    if date_col is not None and date_col in frame.columns:
        frame = _in_date_order(frame, date_col, source)
    elif date_col is not None and meta["calendar"]:
        require_columns(frame, [date_col], source, "the model's date column")
    series = load_series(
        frame,
        meta["target"],
        meta["features"],
        date_col if date_col in frame else None,
        meta["fill"],
        source,
    )
    window = meta["window"]
    if len(series.target) < window:
        raise ValueError(
            f"'{source}' has {len(series.target)} rows; the model reads the last {window}. "
            f"Give at least {window} rows."
        )
    scaler = scaler_from_config(meta["scaler"])
    inputs = _inputs(series, scaler, meta["calendar"])  # (rows, features)
    center, spread = _target_scale(series, scaler)
    return meta, series, inputs, center, spread


def forecast_next(model, frame: pd.DataFrame, source: str = "the table") -> pd.DataFrame:
    """The next `horizon` values of the saved model's target after the last row of `frame`.

    Args:
        model: a model saved by `rnnkit forecast` (its `metadata` says what it reads).
        frame: a table with the columns it was trained on, rows in time order.

    Returns:
        A DataFrame with `step` (1..horizon), the date when the table has dates, and the
        forecast, named after the target.
    """
    meta, series, inputs, center, spread = _read_rows(model, frame, source)
    last = inputs[-meta["window"] :]  # (window, features)
    output = model.predict(last[None], batch_size=1)[0]  # (horizon,)
    if meta["predict_change"]:
        output = output + (series.target[-1] - center) / spread
    values = output * spread + center
    table = pd.DataFrame({"step": np.arange(1, meta["horizon"] + 1)})
    if series.dates is not None and meta.get("step"):
        last = series.dates.iloc[-1]
        try:
            offset = pd.tseries.frequencies.to_offset(meta["step"])
            table["date"] = [last + k * offset for k in table["step"]]
        except ValueError:
            table["date"] = [last + k * pd.Timedelta(meta["step"]) for k in table["step"]]
    table[meta["target"]] = values
    return table


def table_windows(model, frame: pd.DataFrame, source: str = "the table"):
    """Every window of `frame` the saved model reads, as it reads them, and the target the
    model learned for each window that has `horizon` rows after it: what `rnnkit explain`
    explains a forecast model on.

    Args:
        model: a model saved by `rnnkit forecast`.
        frame: a table with the columns it was trained on, rows in time order.

    Returns:
        `(x, y)`: `x` `(rows - window + 1, window, features)` float32, the windows in time
        order (the last one is what `forecast_next` forecasts from), and `y` `(m, horizon)`
        float32, the scaled targets (the change since the window's last row, with
        `predict_change`) of the first `m = rows - window - horizon + 1` windows (m may be 0).

    Example:
        >>> from rnnkit.datasets import seattle_weather
        >>> frame = seattle_weather().iloc[:200]
        >>> settings = ForecastSettings(epochs=1, ensemble=1, units=4)
        >>> model = train_forecast(load_series(frame, "temp_max", None, "date"), settings).model
        >>> x, y = table_windows(model, frame.iloc[-20:])
        >>> x.shape, y.shape
        ((7, 14, 6), (6, 1))
    """
    meta, series, inputs, center, spread = _read_rows(model, frame, source)
    window, horizon = meta["window"], meta["horizon"]
    x = np.lib.stride_tricks.sliding_window_view(inputs, window, axis=0)  # (n, features, window)
    x = x.transpose(0, 2, 1).astype(np.float32)  # (n, window, features)
    y = np.zeros((0, horizon), dtype=np.float32)
    if len(inputs) >= window + horizon:
        scaled = (series.target - center) / spread
        _, y, first = make_windows(inputs, window, horizon, scaled)
        if meta["predict_change"]:
            y = y - scaled[first - 1][:, None]
    return x, y.astype(np.float32)


# ---------------------------------------------------------------------------- outputs


def plot_forecast(result: ForecastResult) -> bytes:
    """A PNG of the test period: the truth, the model's forecast and persistence."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.5), dpi=110)
    axes = figure.subplots()
    x = result.test_dates if result.test_dates is not None else np.arange(len(result.test_truth))
    step = result.settings.horizon - 1  # the last step of the horizon
    ahead = "next row" if step == 0 else f"{step + 1} rows ahead"
    metrics = result.metrics
    axes.plot(x, result.test_truth[:, step], color="black", linewidth=1.2, label="truth")
    axes.plot(
        x,
        result.test_persistence[:, step],
        color="grey",
        linewidth=1,
        linestyle="--",
        label=f"persistence (RMSE {metrics['persistence']['rmse']:.3g})",
    )
    axes.plot(
        x,
        result.test_forecast[:, step],
        color="tab:blue",
        linewidth=1.4,
        label=f"{result.settings.cell} (RMSE {metrics['model']['rmse']:.3g})",
    )
    axes.set_title(f"{result.settings.target}, forecast {ahead}, test period")
    axes.set_ylabel(result.settings.target)
    axes.legend(loc="best")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def write_outputs(result: ForecastResult, directory: str) -> dict[str, str]:
    """Write the model, the metrics (JSON) and the plot (PNG) into `directory`, each atomically."""
    from rnnkit.saving import write_outputs as write

    png = plot_forecast(result)  # everything is made before anything is written
    return write(directory, result.model, result.metrics, {"plot": ("forecast.png", png)})


def read_table(path: str | None, date_col: str | None):
    """The user's CSV, or Seattle's weather when `path` is None; and a name for messages."""
    if path is None:
        from rnnkit.datasets import seattle_weather

        return seattle_weather(), "Seattle weather 2012-2015 (NOAA, via vega_datasets)"
    return load_csv(path, date_col=date_col), os.fspath(path)
