"""Train a forecast on a panel's training rows and score it on its test rows: `rnnkit forecast`.

    panel --cut per series--> scaled per series --> windows --> network(s) --> forecasts
          --> beside persistence and seasonal naive, per series and overall

A model that cannot beat persistence (every future value equals the last one seen) has
learned nothing useful; seasonal naive repeats the value a season earlier.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from rnnkit._task import memory_horizon
from rnnkit.forecast import intervals, metrics, seasonal
from rnnkit.forecast.data import Panel, infer_season, step_name
from rnnkit.forecast.model import (
    forecast_scaled,
    static_arrays,
    static_encoding,
    train,
)
from rnnkit.forecast.settings import ForecastSettings
from rnnkit.forecast.windows import (
    Cut,
    Scaled,
    Windows,
    cut,
    fit_scalers,
    scale,
    too_short,
    train_horizon,
    windows,
)

TASK = "forecast"


@dataclass
class Prepared:
    """A panel made into the windows a forecast trains, validates and is tested on."""

    panel: Panel  # the series used (those too short left out)
    cuts: list[Cut]
    scaled: Scaled
    encoding: dict
    static: tuple  # (codes, numbers) per series
    train: Windows
    validation: Windows
    test: Windows
    left_out: dict = field(default_factory=dict)  # series id -> why
    # per series, the scale its forecast errors are pooled in for the intervals
    error_scale: np.ndarray | None = None
    every: Windows | None = None  # training and validation windows together (retrain_all)


def _fit_end(part: Cut, settings: ForecastSettings) -> int:
    """The rows the final model is fitted on: the training rows, and the validation rows
    too with `retrain_all`."""
    return part.val_end if settings.retrain_all else part.train_end


def prepare(
    panel: Panel, settings: ForecastSettings, scalers=None, encoding=None, indices=None
) -> Prepared:
    """Cut, scale and window `panel` (see `rnnkit.forecast.windows`).

    Series too short for a training window are left out and named in `left_out`; a
    ValueError when none is left (for one series: how many rows it needs). `scalers`
    (`{series id: scaler config}`), the static `encoding` and the seasonal `indices`
    (`{series id: list}`) are a trained model's; default: fitted here.
    """
    settings.check()
    _check_strategy(panel, settings)
    many = len(panel) > 1 or panel.id_col is not None
    cuts = [cut(len(t), settings, many) for t in panel.target]
    left_out = {}
    for name, target, part in zip(panel.ids, panel.target, cuts):
        why = too_short(len(target), part, settings)
        if why:
            left_out[name] = why
    if len(left_out) == len(panel):
        raise ValueError(_too_short_message(panel, left_out, settings, many))
    if left_out:
        keep = [i for i, name in enumerate(panel.ids) if name not in left_out]
        panel, cuts = panel.subset(keep), [cuts[i] for i in keep]
    _check_target_changes(panel)
    # a trained model's scalers, by series id (a backtest's later origins), or new ones
    own = fit_scalers(panel, cuts) if scalers is None else [scalers[n] for n in panel.ids]
    if settings.deseason and indices is None:  # from the rows the model trains on
        indices = {
            name: seasonal.indices(t[: _fit_end(c, settings)], settings.season)
            for name, t, c in zip(panel.ids, panel.target, cuts)
        }
    chosen = None if indices is None else [np.asarray(indices[n]) for n in panel.ids]
    scaled = scale(panel, own, settings.calendar, settings.normalize, chosen)
    encoding = static_encoding(panel) if encoding is None else encoding
    static = static_arrays(panel.static, encoding)
    ahead = train_horizon(settings)
    part = lambda pick: [pick(c) for c in cuts]  # noqa: E731
    return Prepared(
        panel=panel,
        cuts=cuts,
        scaled=scaled,
        encoding=encoding,
        static=static,
        train=windows(scaled, panel, part(lambda c: (0, c.train_end)), settings, ahead, static),
        validation=windows(
            scaled, panel, part(lambda c: (c.train_end, c.val_end)), settings, ahead, static
        ),
        test=windows(
            scaled, panel, part(lambda c: (c.val_end, c.rows)), settings, settings.horizon, static
        ),
        every=windows(scaled, panel, part(lambda c: (0, c.val_end)), settings, ahead, static)
        if settings.retrain_all
        else None,
        left_out=left_out,
        error_scale=np.array(  # of the logs for a log-window model: its errors are log ratios
            [
                intervals.error_scale(np.log(t[: c.train_end]) if scaled.log else t[: c.train_end])
                for t, c in zip(panel.target, cuts)
            ]
        ),
    )


def _check_strategy(panel: Panel, settings: ForecastSettings) -> None:
    if settings.strategy != "recursive":
        return
    if panel.target_index < 0:
        raise ValueError(
            "--strategy recursive feeds each forecast back as the target's next value, so "
            "the target must be one of the inputs; add it to --features."
        )
    if panel.past:
        raise ValueError(
            "--strategy recursive feeds each forecast back as the next row, so every other "
            f"input must be known ahead, and {', '.join(map(repr, panel.past))} "
            f"{'is a past covariate' if len(panel.past) == 1 else 'are past covariates'}. "
            "Give them as --future-cols if their future values are known, leave them out "
            "with --features, or use --strategy direct."
        )


def _too_short_message(panel, left_out, settings, many) -> str:
    if not many:
        why = next(iter(left_out.values()))
        return (
            f"Too few rows: the series has {why}. Use a shorter --window or --horizon, "
            "fewer held-out rows (--val-size, --test-size or the splits), or a longer table."
        )
    shown = "; ".join(f"{k!r}: {v}" for k, v in list(left_out.items())[:2])
    return (
        f"Every one of the {len(panel)} series is too short ({shown}). Use a shorter "
        "--window or --horizon, or fewer held-out rows (--val-size, --test-size)."
    )


def _check_target_changes(panel: Panel) -> None:
    if len(panel) == 1 and np.ptp(panel.target[0]) == 0:
        target = panel.target[0]
        raise ValueError(
            f"The target {panel.target_name!r} holds the same value, {target[0]:g}, in all "
            f"{len(target)} rows: there is nothing to forecast (the last value is always "
            "right). Choose a --target column whose values change."
        )


# --------------------------------------------------------------------------- baselines


def naive_forecasts(target, first, horizon, season):
    """Persistence and seasonal-naive forecasts for the windows whose targets start at `first`.

    Persistence: `y[t+k] = y[t]`, `t = first - 1` the last row seen. Seasonal naive:
    `y[t+k] = y[t+k - s*ceil(k/s)]`, the latest value one or more seasons earlier (None when
    a window has less than a season before it).
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


# ------------------------------------------------------------------------------ result


@dataclass
class ForecastResult:
    """What a run produced: the model, its settings and scores, the test forecasts.

    `test_*` arrays hold one row per test window, `test_ids` its series.
    """

    model: object
    settings: ForecastSettings
    metrics: dict
    test_ids: list
    test_dates: np.ndarray | None  # (n,) the date of each test target's first step
    test_truth: np.ndarray  # (n, horizon)
    test_forecast: np.ndarray  # (n, horizon)
    test_persistence: np.ndarray  # (n, horizon)
    test_bands: dict  # {level: (lo, hi)}, each (n, horizon)
    series: Panel
    history: list


def train_forecast(
    panel: Panel, settings: ForecastSettings, callbacks=(), summary=None, on_member=None
) -> ForecastResult:
    """Train on each series' training rows and score on its test rows.

    Args:
        panel: from `load_panel` (or `load_series` for one series).
        settings: a `ForecastSettings`.
        callbacks: callbacks for the ensemble as a whole (a progress bar): they hear the
            members' mean logs each epoch (`rnnkit.Ensemble.fit`).
        summary: called with the first model before training (to print its summary).
        on_member: called with (count, seeds) once, before the ensemble's models train together.

    Returns:
        A `ForecastResult`. Its `metrics` hold the test scores beside persistence's and
        seasonal naive's, overall and (for many series) per series, the intervals' coverage,
        and `"memory_horizon"`: how many of a window's last rows the forecast depends on.
    """
    data = prepare(panel, settings)
    model, history, half_widths = fit(data, settings, callbacks, summary, on_member)
    test = data.test
    forecast, bands = forecast_with_bands(model, data, test, settings, half_widths)
    scores = score(data, test, forecast, bands, settings)
    scores["memory_horizon"] = _memory(model, data)
    scores["epochs_trained"] = [len(h["loss"]) for h in history]
    scores["settings"] = dataclasses.asdict(settings)
    model.metadata = metadata(data, settings, half_widths)
    ids = [data.panel.ids[s] for s in test.series]
    dates = None
    if data.panel.dates[0] is not None and len(test):
        dates = np.array(
            [data.panel.dates[s].iloc[f] for s, f in zip(test.series, test.first)], dtype=object
        )
        if data.panel.date_col is not None:
            dates = np.asarray(list(dates))
    return ForecastResult(
        model=model,
        settings=settings,
        metrics=scores,
        test_ids=ids,
        test_dates=dates,
        test_truth=test.truth,
        test_forecast=forecast,
        test_persistence=_persistence(data, test, settings),
        test_bands=bands,
        series=data.panel,
        history=history,
    )


def fit(data: Prepared, settings: ForecastSettings, callbacks=(), summary=None, on_member=None):
    """Train on `data`'s training windows: `(model, histories, half_widths)`, the last the
    intervals' half-widths per level calibrated on the validation windows (`intervals`)."""
    if settings.retrain_all and len(data.validation):
        # one early-stopped run chooses the epochs and calibrates the intervals on rows it
        # did not train on; then every member trains on all rows that long
        probe, probed = train(
            data.train,
            data.validation,
            dataclasses.replace(settings, ensemble=1),
            data.encoding,
            callbacks,
            summary,
        )
        half_widths = _calibrate(probe, data, settings)
        epochs = int(np.argmin(probed[0]["val_loss"])) + 1
        empty = data.validation.subset([])
        model, history = train(
            data.every,
            empty,
            dataclasses.replace(settings, epochs=epochs),
            data.encoding,
            callbacks,
            None,
            on_member,
        )
        return model, probed + history, half_widths
    model, history = train(
        data.train, data.validation, settings, data.encoding, callbacks, summary, on_member
    )
    return model, history, _calibrate(model, data, settings)


def _calibrate(model, data: Prepared, settings: ForecastSettings) -> dict:
    """The intervals' half-widths per level, from `model`'s errors on the validation windows."""
    if not settings.levels:
        return {}
    forecast = _forecast(model, data, data.validation, settings)
    if data.scaled.log:  # log ratios: relative errors, on one scale for every series
        errors = np.log(data.validation.truth) - np.log(forecast)
    else:
        errors = data.validation.truth - forecast
    errors = errors / data.error_scale[data.validation.series][:, None]
    return intervals.widths(errors, settings.levels)


def forecast_with_bands(model, data: Prepared, w: Windows, settings, half_widths):
    """`w`'s forecasts in the table's units and their intervals `{level: (lo, hi)}`."""
    forecast = _forecast(model, data, w, settings)
    spread = data.error_scale[w.series]
    return forecast, intervals.bands(forecast, spread, half_widths, data.scaled.log)


def _memory(model, data: Prepared):
    """The memory horizon on the test windows (validation's, or training's, without them);
    None for a network with future or static inputs (`rnnkit.explain.memory` reads one)."""
    if isinstance(data.train.model_inputs(), list):
        return None
    x = next(w.model_inputs() for w in (data.test, data.validation, data.train) if len(w))
    return memory_horizon(model, x)


def _forecast(model, data: Prepared, w: Windows, settings: ForecastSettings) -> np.ndarray:
    """`w`'s forecasts in the table's units, `(n, horizon)`."""
    ahead_rows = None
    if settings.strategy == "recursive" and len(w):
        ahead_rows = np.stack(
            [data.scaled.inputs[s][f : f + settings.horizon] for s, f in zip(w.series, w.first)]
        )  # (n, horizon, features)
    levels = forecast_scaled(model, w, settings, data.panel.target_index, ahead_rows)
    rows = w.first[:, None] + np.arange(settings.horizon)  # (n, horizon)
    return data.scaled.values(levels, w.series, rows)


def _persistence(data: Prepared, w: Windows, settings) -> np.ndarray:
    if not len(w):
        return np.zeros((0, settings.horizon))
    return np.stack([data.panel.target[s][f - 1] for s, f in zip(w.series, w.first)])[
        :, None
    ].repeat(settings.horizon, axis=1)


def score(data: Prepared, w: Windows, forecast, bands, settings: ForecastSettings) -> dict:
    """The test scores: the model beside persistence and seasonal naive, overall and per
    series (MAE, RMSE, sMAPE, MASE; coverage and MSIS per interval level)."""
    panel = data.panel
    season, season_name = settings.season, ""
    if season is None:
        season, season_name = infer_season(panel.dates[0])
    result = {
        "target": panel.target_name,
        "series": len(panel),
        "test_rows": int(sum(c.rows - c.val_end for c in data.cuts)),
        "test_windows": len(w),
    }
    if data.left_out:
        result["left_out"] = data.left_out
    if not len(w):
        return result
    persistence = np.zeros_like(forecast)
    seasonal = np.zeros_like(forecast)
    has_seasonal = season is not None
    for s in np.unique(w.series):
        rows = w.series == s
        p, n = naive_forecasts(panel.target[s], w.first[rows], settings.horizon, season)
        persistence[rows] = p
        if n is None:
            has_seasonal = False
        else:
            seasonal[rows] = n
    insample = [panel.target[s][: data.cuts[s].train_end] for s in w.series]
    mase_season = season or 1
    truth = w.truth

    def errors(prediction):
        return summary(truth, prediction, insample, mase_season)

    result["model"] = errors(forecast)
    result["persistence"] = errors(persistence)
    if has_seasonal:
        result["seasonal_naive"] = errors(seasonal) | {
            "season": int(season),
            "meaning": season_name or f"{season} rows earlier",
        }
    base = result["persistence"]["rmse"]
    result["skill_vs_persistence"] = None if base == 0 else 1 - result["model"]["rmse"] / base
    if settings.horizon > 1:
        result["model_by_step"] = [
            summary(truth[:, k : k + 1], forecast[:, k : k + 1], insample, mase_season)
            for k in range(settings.horizon)
        ]
    if bands:
        result["intervals"] = {
            f"{level:g}": {
                "nominal": level / 100,
                "coverage": float(np.mean(metrics.coverage(truth, lo, hi))),
                "msis": _mean(metrics.msis(truth, lo, hi, insample, mase_season, level)),
            }
            for level, (lo, hi) in bands.items()
        }
    if len(panel) > 1:
        result["per_series"] = _per_series(panel, w, forecast, persistence, insample, mase_season)
    return result


def summary(truth, prediction, insample, season) -> dict:
    """Overall scores of forecasts `(n, horizon)`: RMSE and MAE over every value forecast;
    sMAPE and MASE per forecast (its horizon), then averaged over forecasts, as the M
    competitions average per series (`rnnkit.forecast.metrics` has the formulas)."""
    error = prediction - truth
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "smape": _mean(metrics.smape(truth, prediction)),
        "mase": _mean(metrics.mase(truth, prediction, insample, season)),
    }


def _mean(scores) -> float | None:
    """The mean of the finite scores (MASE is NaN for a series whose history is constant);
    None when there is none."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    return float(finite.mean()) if len(finite) else None


def _per_series(panel, w, forecast, persistence, insample, season) -> list[dict]:
    rows = []
    for s in np.unique(w.series):
        pick = np.flatnonzero(w.series == s)
        own = [insample[i] for i in pick]
        truth = w.truth[pick]
        model = summary(truth, forecast[pick], own, season)
        naive = summary(truth, persistence[pick], own, season)
        rows.append(
            {"id": panel.ids[s], "windows": len(pick)}
            | model
            | {"persistence_" + k: v for k, v in naive.items()}
        )
    return rows


# ---------------------------------------------------------------------------- metadata


# What `rnnkit predict` reads from a saved model's metadata.
METADATA = (
    "target",
    "features",
    "date_col",
    "calendar",
    "predict_change",
    "window",
    "horizon",
    "fill",
    "scalers",
)


def metadata(data: Prepared, settings: ForecastSettings, half_widths: dict) -> dict:
    panel = data.panel
    return {
        "task": TASK,
        "format": 2,
        "target": panel.target_name,
        # several target columns side by side (`--target a,b`): predict stacks them again
        "targets": list(settings.target) if _several(settings.target) else None,
        "features": panel.names,
        "future": panel.future,
        "date_col": panel.date_col if panel.dates[0] is not None else None,
        "id_col": panel.id_col,
        "calendar": bool(settings.calendar and data.scaled.inputs[0].shape[1] > len(panel.names)),
        "predict_change": settings.predict_change,
        "strategy": settings.strategy,
        "window": settings.window,
        "horizon": settings.horizon,
        "fill": settings.fill,
        "scalers": dict(zip(panel.ids, data.scaled.scalers)),
        "error_scales": dict(zip(panel.ids, map(float, data.error_scale))),
        "static": data.encoding,
        "static_cols": [] if panel.static is None else list(panel.static.columns),
        "intervals": {f"{k:g}": [float(v) for v in w] for k, w in half_widths.items()},
        "step": step_name(panel.dates[0]),
        "normalize": settings.normalize,
        "deseason": settings.deseason,
        "season": settings.season,
        "season_indices": None
        if data.scaled.indices is None
        else {n: [float(v) for v in i] for n, i in zip(panel.ids, data.scaled.indices)},
    }


def _several(target) -> bool:
    return isinstance(target, (list, tuple)) and len(target) > 1
