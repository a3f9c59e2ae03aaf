"""Pictures of a forecast: the test period with the model, persistence and the intervals."""

from __future__ import annotations

import io

import numpy as np

SERIES_SHOWN = 6  # many series: a grid of the first few, each with its own scale


def plot_forecast(result) -> bytes:
    """A PNG of the test period: the truth, the model's forecast (with its interval bands)
    and persistence; for many series, one panel per series for the first few."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    ids = list(dict.fromkeys(result.test_ids))
    shown = ids[:SERIES_SHOWN]
    if len(ids) <= 1:
        figure = Figure(figsize=(10, 4.5), dpi=110)
        _one(figure.subplots(), result, np.arange(len(result.test_ids)), title=True)
    else:
        columns = 2 if len(shown) > 1 else 1
        rows = int(np.ceil(len(shown) / columns))
        figure = Figure(figsize=(11, 2.8 * rows + 0.8), dpi=100, layout="constrained")
        axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
        owners = np.asarray(result.test_ids)
        for axis, name in zip(axes, shown):
            _one(axis, result, np.flatnonzero(owners == name), title=False)
            axis.set_title(str(name), fontsize=10)
        for axis in axes[len(shown) :]:
            axis.set_visible(False)
        more = f" (the first {len(shown)} of {len(ids)} series)" if len(ids) > len(shown) else ""
        figure.suptitle(f"{result.metrics['target']}: test forecasts{more}")
        handles, labels = axes[0].get_legend_handles_labels()  # one legend for all panels
        figure.legend(
            handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9,
            frameon=False,
        )  # fmt: skip
    one_window = len(ids) > 1 and len(result.test_ids) == len(ids)  # x: steps ahead
    if result.test_dates is not None and not one_window:
        figure.autofmt_xdate()  # dates along the axis
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _one(axes, result, rows, title: bool) -> None:
    """One series' test windows: with one window its whole horizon, else each window's
    last step (the furthest ahead) over time."""
    from matplotlib.ticker import MaxNLocator

    metrics = result.metrics
    horizon = result.settings.horizon
    if len(rows) == 1:  # one window (the M-competition split): the horizon is the x axis
        row = rows[0]
        x = np.arange(1, horizon + 1)
        truth, forecast = result.test_truth[row], result.test_forecast[row]
        persistence = result.test_persistence[row]
        bands = {k: (lo[row], hi[row]) for k, (lo, hi) in result.test_bands.items()}
        axes.set_xlabel("steps ahead")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        step = horizon - 1  # the last step of the horizon
        dates = result.test_dates
        x = dates[rows] if dates is not None else np.arange(len(rows))
        truth, forecast = result.test_truth[rows, step], result.test_forecast[rows, step]
        persistence = result.test_persistence[rows, step]
        bands = {k: (lo[rows, step], hi[rows, step]) for k, (lo, hi) in result.test_bands.items()}
    for level in sorted(bands, reverse=True):
        lo, hi = bands[level]
        axes.fill_between(
            x,
            lo,
            hi,
            color="tab:blue",
            alpha=0.12 + 0.1 * (level < 90),
            linewidth=0,
            label=f"{level:g}% interval",
        )
    axes.plot(x, truth, color="black", linewidth=1.2, label="truth")
    rmse = lambda name: f" (RMSE {metrics[name]['rmse']:.3g})" if title else ""  # noqa: E731
    axes.plot(
        x,
        persistence,
        color="grey",
        linewidth=1,
        linestyle="--",
        label="persistence" + rmse("persistence"),
    )
    axes.plot(
        x, forecast, color="tab:blue", linewidth=1.4, label=result.settings.cell + rmse("model")
    )
    if title:
        ahead = "next row" if horizon == 1 else f"{horizon} rows ahead"
        axes.set_title(f"{metrics['target']}, forecast {ahead}, test period")
        axes.set_ylabel(str(metrics["target"]))
        axes.legend(loc="best")
    axes.grid(alpha=0.3)
