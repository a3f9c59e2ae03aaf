"""Forecasts that need no network: persistence, seasonal naive, Theta and AutoETS.

A forecaster tries these first; a network earns its place by beating them. Persistence and
seasonal naive are a line of numpy each. Theta and AutoETS come from statsforecast (the
`stats` extra), imported only when `statistical` runs.

    >>> seasonal_naive([1.0, 2.0, 3.0, 4.0, 5.0], horizon=3, season=2)
    array([4., 5., 4.])
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _history(history, name: str = "history") -> np.ndarray:
    x = np.asarray(history, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(
            f"{name}: expected one series' past values as a non-empty 1-D array, got shape "
            f"{x.shape}. For many series use the *_many functions with a list of arrays."
        )
    return x


def _check_steps(horizon, season: int = 1) -> None:
    for what, value in (("horizon", horizon), ("season", season)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"expected {what} to be a whole number of steps >= 1, got {value!r}.")


def persistence(history, horizon: int) -> np.ndarray:
    """The last value, held: `yhat_{T+k} = y_T` for k = 1..horizon.

    Args:
        history: one series' values up to T, shape `(T,)`.
        horizon: how many steps ahead to forecast.

    Returns:
        `(horizon,)` forecasts.
    """
    _check_steps(horizon)
    return np.full(horizon, _history(history)[-1])


def seasonal_naive(history, horizon: int, season: int) -> np.ndarray:
    """The same step one season back: `yhat_{T+k} = y_{T+k - s*ceil(k/s)}`.

    Each step repeats the latest value a whole number of seasons before it, so the last
    season is tiled forwards. A history shorter than one season has no such value: the
    forecast falls back to persistence (`y_T` held), as with `season=1`.

    Args:
        history: one series' values up to T, shape `(T,)`.
        horizon: how many steps ahead to forecast.
        season: s, the season's length in steps (12 for monthly data with a yearly cycle).

    Returns:
        `(horizon,)` forecasts.
    """
    _check_steps(horizon, season)
    x = _history(history)
    if len(x) < season:
        return persistence(x, horizon)
    k = np.arange(1, horizon + 1)
    return x[len(x) - 1 + k - season * np.ceil(k / season).astype(int)]


def persistence_many(histories, horizon: int) -> np.ndarray:
    """`persistence` for each series of a list (lengths may differ): `(n, horizon)`."""
    return np.stack([persistence(x, horizon) for x in histories])


def seasonal_naive_many(histories, horizon: int, season: int) -> np.ndarray:
    """`seasonal_naive` for each series of a list (lengths may differ): `(n, horizon)`."""
    return np.stack([seasonal_naive(x, horizon, season) for x in histories])


class BaselinesUnavailable(ModuleNotFoundError):
    """statsforecast is not installed, so Theta and AutoETS were not run."""


@dataclass
class StatisticalForecasts:
    """What `statistical` produced, each array's rows in the order of `ids`."""

    ids: list
    forecasts: dict  # model name -> (n, horizon)
    intervals: dict  # model name -> {level: (lo, hi)}, each (n, horizon); empty without levels
    fallbacks: dict  # model name -> {id: why the model failed}; those rows are Naive's
    seconds: dict  # model name -> seconds forecasting all the series
    wall_seconds: float  # the whole call, statsforecast's import included


def _series(histories) -> tuple[list, list[np.ndarray]]:
    """Ids and 1-D histories from a dict, a list, or a long unique_id/ds/y table."""
    if isinstance(histories, pd.DataFrame):
        missing = {"unique_id", "ds", "y"} - set(histories.columns)
        if missing:
            raise ValueError(
                f"statistical: expected a long table with columns unique_id, ds, y; "
                f"{sorted(missing)} missing from {list(histories.columns)}."
            )
        ordered = histories.sort_values("ds", kind="stable")
        groups = dict(tuple(ordered.groupby("unique_id", sort=False)["y"]))
        histories = {uid: groups[uid].to_numpy() for uid in pd.unique(histories["unique_id"])}
    elif not isinstance(histories, dict):
        histories = dict(enumerate(histories))
    ids = list(histories)
    if not ids:
        raise ValueError("statistical: expected at least one series, got none.")
    xs = [_history(histories[uid], name=f"series {uid!r}") for uid in ids]
    for uid, x in zip(ids, xs):
        if not np.all(np.isfinite(x)):
            raise ValueError(
                f"statistical: series {uid!r} has NaN or infinite values; Theta and AutoETS "
                "need complete series. Fill the gaps (e.g. pandas' interpolate) or cut them off."
            )
    return ids, xs


def _levels(levels) -> list[int]:
    levels = list(levels or ())
    wrong = [lv for lv in levels if lv != int(lv) or not 1 <= lv < 100]
    if wrong:
        raise ValueError(
            f"statistical: expected interval levels as whole percents in 1..99, e.g. "
            f"levels=(80, 95), got {wrong}."
        )
    return sorted(int(lv) for lv in levels)


def _models(names, season: int) -> tuple[dict, object]:
    """The named statsforecast models, and the Naive one that stands in when one fails."""
    try:
        from statsforecast.models import AutoETS, Naive, Theta
    except ModuleNotFoundError as error:
        raise BaselinesUnavailable(
            f"The statistical baselines (Theta, AutoETS) were not run: they need statsforecast "
            f"({error}). Install it with: pip install 'rnnkit[stats]'"
        ) from error
    makers = {"Theta": Theta, "AutoETS": AutoETS}
    unknown = [name for name in names if name not in makers]
    if unknown:
        raise ValueError(f"statistical: expected models among {list(makers)}, got {unknown}.")
    # season_length=1 makes both non-seasonal.
    return {name: makers[name](season_length=season) for name in names}, Naive()


def _forecast_one(model, fallback, y: np.ndarray, horizon: int, levels: list):
    """One series' forecast dict ('mean', 'lo-80', ...) from `model`, else from `fallback`.

    Returns the dict and why the model failed (None when it did not).
    """
    level = {"level": levels} if levels else {}
    try:
        with np.errstate(all="ignore"):  # its model search divides by zero on flat series
            out = model.forecast(y=y, h=horizon, **level)
        if not np.all(np.isfinite(out["mean"])):
            raise FloatingPointError("it forecast NaN or infinity")
        return out, None
    except Exception as error:  # e.g. NotImplementedError('tiny datasets') for <= 3 values
        return fallback.forecast(y=y, h=horizon, **level), f"{type(error).__name__}: {error}"


def _stack(outs, key: str) -> np.ndarray:
    return np.stack([np.asarray(out[key], dtype=float) for out in outs])  # (n, horizon)


def statistical(
    histories, horizon: int, season: int, models=("Theta", "AutoETS"), levels=None
) -> StatisticalForecasts:
    """statsforecast's Theta and AutoETS on each series, one at a time (no worker processes).

    Each model is `Model(season_length=season)` (season 1: non-seasonal) run on each
    series' values alone: no dates are needed, so no `freq`. A series a model cannot fit
    (Theta needs at least 4 values, AutoETS 7) or that it forecasts as NaN gets
    statsforecast's `Naive` instead (the last value held, with its intervals); its id and
    the model's error are kept in `fallbacks`, so one bad series does not stop the run.

    Args:
        histories: `{id: 1-D array}`, a list of 1-D arrays (ids 0..n-1), or a long DataFrame
            with columns unique_id, ds, y (ids in order of first appearance, values by ds).
        horizon: how many steps ahead to forecast.
        season: s, the season's length in steps (1 for yearly or no seasonality).
        models: names among "Theta" and "AutoETS".
        levels: interval levels in percent, e.g. (80, 95); None for point forecasts only.

    Returns:
        A `StatisticalForecasts` (forecasts `(n, horizon)` per model, intervals, fallbacks,
        timings).

    Raises:
        BaselinesUnavailable: statsforecast is not installed (`pip install 'rnnkit[stats]'`).
    """
    start = time.perf_counter()
    _check_steps(horizon, season)
    levels = _levels(levels)
    ids, xs = _series(histories)
    built, fallback = _models([models] if isinstance(models, str) else models, season)
    result = StatisticalForecasts(ids, {}, {}, {}, {}, 0.0)
    for name, model in built.items():
        began = time.perf_counter()
        outs, why = zip(*(_forecast_one(model, fallback, x, horizon, levels) for x in xs))
        result.seconds[name] = time.perf_counter() - began
        result.forecasts[name] = _stack(outs, "mean")
        result.intervals[name] = {
            lv: (_stack(outs, f"lo-{lv}"), _stack(outs, f"hi-{lv}")) for lv in levels
        }
        result.fallbacks[name] = {uid: w for uid, w in zip(ids, why) if w is not None}
    result.wall_seconds = time.perf_counter() - start
    return result
