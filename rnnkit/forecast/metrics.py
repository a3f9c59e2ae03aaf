"""Forecast accuracy: MAE, RMSE, sMAPE, MASE, interval coverage and MSIS.

Every function takes the truth `y` and a forecast of the same shape: `(n, horizon)` for n
forecasts (one per series, or one per test window), or `(horizon,)` for a single one. A
2-D input gives one score per row, shape `(n,)`; a 1-D input gives a float. Each score is
a mean over the horizon; `score_table` then averages the rows (per series first, then over
series, the M-competitions' way), and `combine_tables` pools tables whose horizons differ
(M3's yearly 6 steps, monthly 18) as the M3 competition's overall figures do.

    >>> import numpy as np
    >>> y, yhat = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 3.0], [3.0, 3.0]])
    >>> mae(y, yhat)
    array([0.5, 1. ])
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _rows(name: str, y, **others) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
    """`y` and the arrays in `others` as float `(n, horizon)` arrays of one shape."""
    y = np.asarray(y, dtype=float)
    if y.ndim not in (1, 2):
        raise ValueError(
            f"{name}: expected y of shape (n, horizon) or (horizon,), got shape {y.shape}. "
            "Put one forecast per row, one step ahead per column."
        )
    arrays = {}
    for key, value in others.items():
        value = np.asarray(value, dtype=float)
        if value.shape != y.shape:
            raise ValueError(
                f"{name}: y has shape {y.shape} but {key} has shape {value.shape}; they must "
                f"match, one row per forecast and one column per step ahead. Slice {key} to "
                f"the test steps, e.g. {key}[..., :{y.shape[-1]}]."
            )
        arrays[key] = value.reshape(-1, y.shape[-1])  # (n, horizon)
    return y.reshape(-1, y.shape[-1]), arrays, y.ndim == 1


def _out(scores: np.ndarray, one_forecast: bool):
    return float(scores[0]) if one_forecast else scores


def mae(y, yhat):
    """Mean absolute error over the horizon: `mean_k |y_k - yhat_k|`.

    Args:
        y, yhat: the truth and the forecast, `(n, horizon)` or `(horizon,)`.

    Returns:
        `(n,)` one score per forecast, or a float for 1-D input.
    """
    y, a, one = _rows("mae", y, yhat=yhat)
    return _out(np.mean(np.abs(y - a["yhat"]), axis=1), one)


def rmse(y, yhat):
    """Root mean squared error over the horizon: `sqrt(mean_k (y_k - yhat_k)^2)`.

    Args:
        y, yhat: the truth and the forecast, `(n, horizon)` or `(horizon,)`.

    Returns:
        `(n,)` one score per forecast (each its own root), or a float for 1-D input.
    """
    y, a, one = _rows("rmse", y, yhat=yhat)
    return _out(np.sqrt(np.mean((y - a["yhat"]) ** 2, axis=1)), one)


def smape(y, yhat):
    """Symmetric MAPE in percent, the M3/M4 scale: `mean_k 200 |y_k - yhat_k| / (|y_k| + |yhat_k|)`.

    It runs from 0 to 200. A step where truth and forecast are both 0 counts as 0 (a
    perfect forecast), as in the M4 competition's code. utilsforecast's `smape` drops the
    200: it is `smape / 200`, on the 0-1 scale.

    Args:
        y, yhat: the truth and the forecast, `(n, horizon)` or `(horizon,)`.

    Returns:
        `(n,)` one score per forecast, or a float for 1-D input.
    """
    y, a, one = _rows("smape", y, yhat=yhat)
    both = np.abs(y) + np.abs(a["yhat"])
    error = 200.0 * np.abs(y - a["yhat"]) / np.where(both == 0, 1.0, both)
    return _out(np.mean(error, axis=1), one)


def _seasonal_naive_mae(x: np.ndarray, season: int) -> float:
    # A history of at most s values has no pair one season apart to difference.
    return float(np.mean(np.abs(x[season:] - x[:-season]))) if len(x) > season else np.nan


def insample_scale(insample, season: int, n: int | None = None) -> np.ndarray:
    """Each history's seasonal-naive MAE: `mean_t |x_t - x_{t-s}|`, t over the history.

    With `season=1` it is the naive (persistence) MAE. A history that never changes over
    a season (scale 0) or has at most `season` values (nothing to difference) has no
    scale: its entry is NaN, and so are its MASE and MSIS.

    Args:
        insample: the training values: one 1-D array, or a list of them (one per forecast),
            or a 2-D array with one history per row.
        season: s, the season's length in steps (1 for none).
        n: how many histories are expected (the rows of y), checked when given.

    Returns:
        `(n,)` float scales.
    """
    if not isinstance(season, (int, np.integer)) or season < 1:
        raise ValueError(f"season must be a whole number of steps >= 1, got {season!r}.")
    if len(insample) and np.ndim(insample[0]) == 0:  # one history, not a list of them
        insample = [insample]
    histories = [np.asarray(x, dtype=float).ravel() for x in insample]
    if n is not None and len(histories) != n:
        raise ValueError(
            f"expected {n} in-sample histories (one per row of y), got {len(histories)}. "
            "Pass a list with each series' training values, in the order of y's rows."
        )
    scales = np.array([_seasonal_naive_mae(x, season) for x in histories])
    return np.where(scales > 0, scales, np.nan)


def mase(y, yhat, insample, season: int):
    """Mean absolute scaled error: `MAE(y, yhat) / mean_t |x_t - x_{t-s}|` per series.

    The denominator is the in-sample seasonal-naive MAE of the series' training values x
    (see `insample_scale`). A series with a constant history has no scale: its MASE is NaN,
    and `score_table` leaves it out of the mean and counts it.

    Args:
        y, yhat: the truth and the forecast, `(n, horizon)` or `(horizon,)`.
        insample: the training values, a list of n 1-D arrays (one 1-D array when y is 1-D).
        season: s (1: scale by the naive forecast's error).

    Returns:
        `(n,)` one score per forecast, or a float for 1-D input.
    """
    y, a, one = _rows("mase", y, yhat=yhat)
    scale = insample_scale(insample, season, n=len(y))
    return _out(np.mean(np.abs(y - a["yhat"]), axis=1) / scale, one)


def _interval(name: str, y, lo, hi):
    y, a, one = _rows(name, y, lo=lo, hi=hi)
    crossed = int(np.sum(a["lo"] > a["hi"]))
    if crossed:
        raise ValueError(
            f"{name}: expected lo <= hi, got lo above hi at {crossed} of {y.size} steps. "
            "Were lo and hi passed the other way round?"
        )
    return y, a["lo"], a["hi"], one


def coverage(y, lo, hi):
    """Share of the truths inside their interval: `mean_k 1[lo_k <= y_k <= hi_k]`.

    Args:
        y, lo, hi: the truth and the interval's bounds, `(n, horizon)` or `(horizon,)`.

    Returns:
        `(n,)` one share in [0, 1] per forecast, or a float for 1-D input.
    """
    y, lo, hi, one = _interval("coverage", y, lo, hi)
    return _out(np.mean((lo <= y) & (y <= hi), axis=1), one)


def msis(y, lo, hi, insample, season: int, level: float):
    """Mean scaled interval score (M4): the interval score, averaged and scaled like MASE.

        IS_k = (hi_k - lo_k) + (2/a) (lo_k - y_k) 1[y_k < lo_k] + (2/a) (y_k - hi_k) 1[y_k > hi_k]
        MSIS = mean_k IS_k / mean_t |x_t - x_{t-s}|,   a = 1 - level/100

    Lower is better: a narrow interval, and a wide penalty for each truth outside it.

    Args:
        y, lo, hi: the truth and the interval's bounds, `(n, horizon)` or `(horizon,)`.
        insample, season: the training values and s, as in `mase`.
        level: the interval's nominal coverage in percent, e.g. 95 (not 0.95).

    Returns:
        `(n,)` one score per forecast (NaN for a constant history), or a float for 1-D input.
    """
    if not 1 <= level < 100:  # a fraction such as 0.95 is the usual slip
        raise ValueError(
            f"msis: expected the level in percent, 1 <= level < 100 (95 for a 95% interval), "
            f"got {level}."
        )
    y, lo, hi, one = _interval("msis", y, lo, hi)
    a = 1 - level / 100
    score = (hi - lo) + (2 / a) * (lo - y) * (y < lo) + (2 / a) * (y - hi) * (y > hi)
    return _out(np.mean(score, axis=1) / insample_scale(insample, season, n=len(y)), one)


def score_table(y, yhat, insample, season: int, ids=None, intervals=None):
    """Every score per series, and their means over series.

    Each series' score averages its horizon; the overall score averages the series (the
    M-competitions' sMAPE and MASE). MASE and MSIS skip the series without an in-sample
    scale (constant history): `overall["no_scale"]` says how many. To pool several tables
    with different horizons, use `combine_tables`.

    Args:
        y, yhat: `(n, horizon)` truth and forecast, one row per series or test window.
        insample: the n training histories (see `mase`).
        season: s for MASE and MSIS.
        ids: n names for the rows (default 0..n-1).
        intervals: optional `{level: (lo, hi)}`, each bound `(n, horizon)`, adding
            `coverage_<level>` and `msis_<level>`.

    Returns:
        `(per_series, overall)`: a DataFrame indexed by id with columns mae, rmse, smape,
        mase (and the interval scores), and a dict of the column means plus `series` and
        `no_scale`.

    Example:
        >>> y = np.array([[3.0, 4.0], [1.0, 1.0]])
        >>> table, overall = score_table(y, y + 1, [np.arange(3.0), np.ones(3)], season=1)
        >>> overall["mase"], overall["no_scale"]
        (1.0, 1)
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 2:
        raise ValueError(
            f"score_table: expected y of shape (n, horizon), got shape {y.shape}. "
            "For a single forecast pass y[None], yhat[None] and [insample]."
        )
    if ids is not None and len(ids) != len(y):
        raise ValueError(f"score_table: expected {len(y)} ids (one per row of y), got {len(ids)}.")
    table = pd.DataFrame(
        {
            "mae": mae(y, yhat),
            "rmse": rmse(y, yhat),
            "smape": smape(y, yhat),
            "mase": mase(y, yhat, insample, season),
        },
        index=pd.Index(range(len(y)) if ids is None else list(ids), name="id"),
    )
    for level, (lo, hi) in (intervals or {}).items():
        table[f"coverage_{level}"] = coverage(y, lo, hi)
        table[f"msis_{level}"] = msis(y, lo, hi, insample, season, level)
    overall = {column: float(table[column].mean()) for column in table}  # pandas skips NaN
    overall["series"] = len(table)
    overall["no_scale"] = int(table["mase"].isna().sum())
    return table, overall


def combine_tables(tables, horizons) -> dict:
    """Overall scores of several `score_table` tables, each series weighted by its horizon.

        overall = sum_g h_g * sum_{i in g} score_i / sum_g h_g * n_g

    For the scores that are means over the horizon (MAE, sMAPE, MASE, coverage, MSIS) this
    is the mean over every forecast step of every series. It is how M3's overall figures
    were averaged: Theta's published sMAPE of 13.01 on all 3003 series is the point-weighted
    mean of its yearly (h=6), quarterly (8), monthly (18) and other (8) sMAPEs; the plain
    mean over series gives about 12.7. (For RMSE it is just a weighted mean.)
    Series without a score (NaN: no in-sample scale) drop out with their weight.

    Args:
        tables: the per-series DataFrames from `score_table`, one per group (e.g. frequency).
        horizons: each table's horizon, in the same order.

    Returns:
        `{column: pooled mean}` plus `series`, `points` (sum of n_g * h_g) and `no_scale`.

    Example:
        >>> a, b = pd.DataFrame({"smape": [10.0, 20.0]}), pd.DataFrame({"smape": [40.0]})
        >>> combine_tables([a, b], horizons=[2, 6])["smape"]  # (2*10 + 2*20 + 6*40) / 10
        30.0
    """
    if len(tables) != len(horizons):
        raise ValueError(
            f"combine_tables: expected one horizon per table, got {len(tables)} tables and "
            f"{len(horizons)} horizons."
        )
    stacked = pd.concat(list(tables), ignore_index=True)  # a column a table lacks is NaN
    weights = np.concatenate([np.full(len(t), h, dtype=float) for t, h in zip(tables, horizons)])
    overall = {}
    for column in stacked:
        values = stacked[column].to_numpy(dtype=float)
        scored = ~np.isnan(values)
        total = weights[scored].sum()
        overall[column] = float(values[scored] @ weights[scored] / total) if total else np.nan
    overall["series"] = len(stacked)
    overall["points"] = int(weights.sum())
    overall["no_scale"] = int(stacked["mase"].isna().sum()) if "mase" in stacked else 0
    return overall
