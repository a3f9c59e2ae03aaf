"""Rolling-origin backtests: how a forecast would have scored at several past moments.

    origin 1:  | train ........ | val | test |
    origin 2:  | train ............ | val | test |          (`step` rows later)
    origin 3:  | train ................ | val | test |

At each origin every series is cut to the rows known then; the model forecasts its next
`horizon` rows (the test window, `test_size` rows) and is scored beside persistence and
seasonal naive. It is retrained every `refit` origins (0: once, at the first); in between
the trained model, its scalers and its interval widths are reused, so an origin costs one
batch of forecasts, not a training run.

    >>> origins(rows=20, count=3, step=2, test=4)
    [16, 18, 20]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from rnnkit.forecast.data import Panel
from rnnkit.forecast.settings import ForecastSettings
from rnnkit.forecast.train import fit, forecast_with_bands, metadata, prepare, score

SCORES = ("rmse", "mae", "smape", "mase")


def origins(rows: int, count: int, step: int, test: int) -> list[int]:
    """Each origin's series length (the rows known then, test window included), oldest
    first: the last origin is the whole series."""
    return [rows - (count - 1 - i) * step for i in range(count)]


@dataclass
class Backtest:
    """What `backtest` measured.

    Attributes:
        origins: per origin, a dict: `origin` (1-based), `refit` (trained there or not),
            `cutoff` (the last training date or row of the first series), `series`, and
            the test scores of the model, persistence and seasonal naive (see `train.score`).
        mean: each forecast's scores averaged over the origins.
        fit_seconds, forecast_seconds: time spent training, and forecasting and scoring.
    """

    origins: list = field(default_factory=list)
    mean: dict = field(default_factory=dict)
    fit_seconds: float = 0.0
    forecast_seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "origins": self.origins,
            "mean": self.mean,
            "fit_seconds": self.fit_seconds,
            "forecast_seconds": self.forecast_seconds,
        }


def backtest(
    panel: Panel,
    settings: ForecastSettings,
    count: int,
    step: int | None = None,
    refit: int = 0,
    callbacks=(),
    on_origin=None,
) -> tuple[Backtest, object]:
    """Score `settings`' forecast at `count` rolling origins, `step` rows apart (default:
    the horizon), retraining every `refit` origins (0: only at the first).

    Returns:
        `(Backtest, model)`: the scores, and the model trained last.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"--backtest is a number of origins ≥ 1; got {count!r}.")
    step = settings.horizon if step is None else step
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"--step is a number of rows ≥ 1; got {step!r}.")
    if isinstance(refit, bool) or not isinstance(refit, int) or refit < 0:
        raise ValueError(f"--refit is a number of origins ≥ 0; got {refit!r}.")
    if settings.test_size is None:
        settings.test_size = settings.horizon  # one forecast per series per origin
    if settings.test_size == 0:
        raise ValueError("A backtest scores forecasts: give --test-size of at least the horizon.")
    result = Backtest()
    model = half_widths = scalers = None
    trained_on = encoding = None
    for i in range(count):
        lengths = [max(0, n) for n in (len(t) - (count - 1 - i) * step for t in panel.target)]
        keep = [s for s, n in enumerate(lengths) if n > 0]
        at = panel.subset(keep).head([lengths[s] for s in keep])
        retrain = model is None or (refit > 0 and i % refit == 0)
        started = time.perf_counter()
        if retrain:
            data = prepare(at, settings)
            model, _, half_widths = fit(data, settings, callbacks)
            model.metadata = metadata(data, settings, half_widths)
            scalers = dict(zip(data.panel.ids, data.scaled.scalers))
            trained_on, encoding = set(data.panel.ids), data.encoding
            result.fit_seconds += time.perf_counter() - started
            started = time.perf_counter()
        else:
            known = [s for s, name in enumerate(at.ids) if name in trained_on]
            at = at.subset(known)
            data = prepare(at, settings, scalers=scalers, encoding=encoding)
        forecast, bands = forecast_with_bands(model, data, data.test, settings, half_widths)
        scores = score(data, data.test, forecast, bands, settings)
        result.forecast_seconds += time.perf_counter() - started
        first = data.panel
        cutoff = None
        if first.dates[0] is not None:
            cutoff = str(first.dates[0].iloc[data.cuts[0].val_end - 1])
        entry = {"origin": i + 1, "refit": retrain, "cutoff": cutoff}
        entry |= {k: v for k, v in scores.items() if k != "per_series"}
        result.origins.append(entry)
        if on_origin is not None:
            on_origin(entry)
    result.mean = _mean(result.origins)
    return result, model


def _mean(entries) -> dict:
    mean = {}
    for name in ("model", "persistence", "seasonal_naive"):
        rows = [e[name] for e in entries if name in e]
        if len(rows) != len(entries):
            continue
        mean[name] = {
            k: float(np.mean([r[k] for r in rows])) if all(r[k] is not None for r in rows) else None
            for k in SCORES
        }
    if "intervals" in entries[0]:
        mean["intervals"] = {
            level: {
                k: float(np.mean([e["intervals"][level][k] for e in entries]))
                for k in ("nominal", "coverage")
            }
            for level in entries[0]["intervals"]
        }
    return mean
