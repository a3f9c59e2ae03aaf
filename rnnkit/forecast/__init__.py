"""Forecasting one series or many from their recent past: the pipeline behind `rnnkit forecast`.

    table --(per series: cut in time, scaled on its training rows)--> windows
          --> SimpleRNN / LSTM / GRU (+ future and static inputs) --> Dense(horizon)
          --> the next `horizon` values, with intervals

One module per concept: `data` (the table and its column rule), `windows` (the cut, the
scaling, log windows, windows that never cross series), `seasonal` (multiplicative
indices), `model` (the network, training, the strategies), `intervals` (split conformal),
`metrics`, `baselines`, `train` (a run and its scores), `backtest` (rolling origins),
`predict` (a saved model on new rows), `plots`, `benchmark` (`rnnkit bench m3`).

By default the network predicts the *change* from the last observed value rather than
the value itself (`predict_change`), and sees the day of the year as a point on a
circle (`calendar`) when the rows have dates: for next-day weather, both matter more
than the size of the network.
"""

from __future__ import annotations

import os

from rnnkit.forecast.data import (
    Panel,
    calendar_features,
    find_column,
    infer_season,
    load_panel,
)
from rnnkit.forecast.predict import check_forecast_model, forecast_next, table_windows
from rnnkit.forecast.settings import CELLS, STRATEGIES, ForecastSettings
from rnnkit.forecast.train import ForecastResult, naive_forecasts, prepare, train_forecast

__all__ = [
    "CELLS",
    "STRATEGIES",
    "ForecastResult",
    "ForecastSettings",
    "Panel",
    "calendar_features",
    "check_forecast_model",
    "find_column",
    "forecast_next",
    "infer_season",
    "load_panel",
    "load_series",
    "naive_forecasts",
    "prepare",
    "read_table",
    "table_windows",
    "train_forecast",
    "write_outputs",
]


def load_series(frame, target, features=None, date_col=None, fill="error", source="the table"):
    """One series: `load_panel` without an id column."""
    return load_panel(frame, target, features, date_col, None, (), (), fill, source)


def write_outputs(result: ForecastResult, directory: str) -> dict[str, str]:
    """Write the model, the metrics (JSON) and the plot (PNG) into `directory`, all or nothing.

    Without test rows (`test_size=0`) there is no test period to plot: no PNG.
    """
    from rnnkit.forecast.plots import plot_forecast
    from rnnkit.saving import write_outputs as write

    files = {}
    if len(result.test_truth):  # everything is made before anything is written
        files["plot"] = ("forecast.png", plot_forecast(result))
    return write(directory, result.model, result.metrics, files)


def read_table(path: str | None, date_col: str | None):
    """The user's CSV, or Seattle's weather when `path` is None; and a name for messages."""
    from rnnkit.datasets._tables import load_csv

    if path is None:
        from rnnkit.datasets import seattle_weather

        return seattle_weather(), "Seattle weather 2012-2015 (NOAA, via vega_datasets)"
    return load_csv(path, date_col=date_col), os.fspath(path)
