"""`rnnkit bench m3`: rnnkit's forecast on the M3 competition, beside the tools a forecaster
would use instead, run in the same command.

For each frequency, one global model learns from every series' training part (the
competition's split) and forecasts the competition's horizon after it; seasonal naive,
Theta and AutoETS (statsforecast, the `stats` extra) forecast the same series. All are
scored with the competition's sMAPE and with MASE, per series then averaged, per
frequency and over all series. The published figures are printed beside them.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from dataclasses import dataclass, field

import numpy as np

from rnnkit.forecast import baselines, metrics
from rnnkit.forecast.settings import ForecastSettings

FREQUENCIES = ("yearly", "quarterly", "monthly", "other")

# Published M3 sMAPE over all 3,003 series, for comparison (not measured here).
PUBLISHED = {
    "Theta (Assimakopoulos & Nikolopoulos; M3's winner)": 13.01,
    "ForecastPro": 13.19,
    "statsforecast ARIMA/ETS/CES/DOT ensemble (Nixtla)": 12.63,
}


def m3_settings(frequency: str) -> ForecastSettings:
    """The model `rnnkit bench m3` trains for one frequency; the reason for each choice is
    beside it (the measurements behind them: benchmarks/M3_DESIGN.md, on 300-series samples
    unless said)."""
    common = dict(
        target="y",
        date_col="ds",
        id_col="unique_id",
        calendar=False,  # M3 gives periods, not dates
        # log values, each window relative to its last: series of every level and trend on
        # one scale (monthly sMAPE 13.4; standardising each series gave 19.8)
        normalize="log-window",
        test_size=0,  # the competition's test part is scored here, not cut from train
        loss="mae",  # MAE on a log ratio is a relative error, as sMAPE is
        cell="gru",  # LSTM no better and slower; 16 or 64 units no better than 32
        units=32,
        learning_rate=3e-3,  # quarterly -0.3 and monthly -0.1 to -0.2 against 1e-3
        epochs=40,
        patience=10,
        # early stopping on each series' last `horizon` rows chooses the epochs, then the
        # members train on every row that long: the latest rows matter most (13.38 vs 13.54)
        retrain_all=True,
        ensemble=5,  # seeds averaged: seed-to-seed spread is about ±0.2 sMAPE
        levels=(80, 95),  # conformal intervals from the validation windows, scored on the test
    )
    per_frequency = {
        # 6 years: the shortest series (14 rows) keeps a training window (12 needs padding)
        "yearly": dict(window=6, horizon=6, val_size=6, batch_size=256),
        # two years beat 12, 16 and 24 quarters (9.41 against 9.76-10.01)
        "quarterly": dict(window=8, horizon=8, val_size=8, batch_size=256, deseason=True, season=4),
        # 24, 36 and 48 months alike: 24 is the cheapest; seasonal indices out first (-0.3)
        "monthly": dict(
            window=24, horizon=18, val_size=18, batch_size=512, deseason=True, season=12
        ),
        "other": dict(window=16, horizon=8, val_size=8, batch_size=256),
    }
    return ForecastSettings(**common, **per_frequency[frequency])


@dataclass
class Method:
    """One forecaster's scores on one frequency."""

    smape: np.ndarray  # per series
    mase: np.ndarray  # per series (NaN for a constant history)
    seconds: float
    note: str = ""


@dataclass
class FrequencyResult:
    frequency: str
    series: int
    horizon: int
    methods: dict  # name -> Method
    predict_ms_one_series: float = float("nan")  # model time of one series' forecast
    peak_mb: float = float("nan")
    left_out: dict = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)  # level -> rnnkit's interval coverage


@dataclass
class M3Result:
    frequencies: list
    wall_seconds: float
    peak_mb: float

    def overall(self) -> dict:
        """Each method's sMAPE and MASE over every forecast point of every frequency run: each
        series' score weighted by its horizon, the averaging behind M3's published overall
        figures (Theta's 13.01 is the mean over all 37,014 points; per series it is 12.73)."""
        names = [m for m in self.frequencies[0].methods]
        out = {}
        for name in names:
            if not all(name in f.methods for f in self.frequencies):
                continue
            weights = np.concatenate([np.full(f.series, f.horizon) for f in self.frequencies])
            smape = np.concatenate([f.methods[name].smape for f in self.frequencies])
            mase = np.concatenate([f.methods[name].mase for f in self.frequencies])
            finite = np.isfinite(mase)
            out[name] = {
                "smape": float(np.average(smape, weights=weights)),
                "mase": float(np.average(mase[finite], weights=weights[finite])),
                "seconds": sum(f.methods[name].seconds for f in self.frequencies),
            }
        return out

    def to_dict(self) -> dict:
        return {
            "overall": self.overall(),
            "frequencies": {
                f.frequency: {
                    "series": f.series,
                    "horizon": f.horizon,
                    "predict_ms_one_series": f.predict_ms_one_series,
                    "methods": {
                        n: {
                            "smape": float(np.mean(m.smape)),
                            "mase": float(np.nanmean(m.mase)),
                            "seconds": m.seconds,
                            "note": m.note,
                        }
                        for n, m in f.methods.items()
                    },
                    "left_out": f.left_out,
                    "interval_coverage": f.coverage,
                }
                for f in self.frequencies
            },
            "wall_seconds": self.wall_seconds,
            "peak_mb": self.peak_mb,
            "published_overall_smape": PUBLISHED,
            "settings": {
                f.frequency: dataclasses.asdict(m3_settings(f.frequency)) for f in self.frequencies
            },
        }

    def markdown(self, command: str) -> str:
        """The results as a markdown table: per frequency and overall, then the published."""
        names = list(self.overall())
        lines = [
            f"`{command}`: {sum(f.series for f in self.frequencies)} series, "
            f"{self.wall_seconds / 60:.1f} min wall time, peak memory {self.peak_mb:.0f} MB.",
            "",
            "| sMAPE / MASE | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for f in self.frequencies:
            cells = [
                f"{np.mean(f.methods[n].smape):.2f} / {np.nanmean(f.methods[n].mase):.3f}"
                if n in f.methods
                else "not run"
                for n in names
            ]
            label = f"{f.frequency} ({f.series} series, h={f.horizon})"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        overall = self.overall()
        lines.append(
            "| **overall** | "
            + " | ".join(f"**{overall[n]['smape']:.2f}** / {overall[n]['mase']:.3f}" for n in names)
            + " |"
        )
        lines.append(
            "| time (s) | " + " | ".join(f"{overall[n]['seconds']:.0f}" for n in names) + " |"
        )
        lines += [
            "",
            "rnnkit's 80% / 95% intervals held the truth "
            + ", ".join(
                f"{f.coverage.get(80, float('nan')):.1%} / {f.coverage.get(95, float('nan')):.1%}"
                f" ({f.frequency})"
                for f in self.frequencies
            )
            + " of the time on the test part.",
            "",
            "rnnkit's forecast for one series takes "
            + ", ".join(
                f"{f.predict_ms_one_series:.2f} ms ({f.frequency})" for f in self.frequencies
            )
            + " of model time (the median of 50 calls to the saved ensemble on one window).",
            "",
            "Published overall sMAPE on all 3,003 series (not run here): "
            + "; ".join(f"{name} {value:.2f}" for name, value in PUBLISHED.items())
            + ".",
        ]
        notes = [
            f"{f.frequency} {n}: {m.note}"
            for f in self.frequencies
            for n, m in f.methods.items()
            if m.note
        ]
        if notes:
            lines += ["", "Notes: " + "; ".join(notes) + "."]
        return "\n".join(lines) + "\n"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def run_m3(frequencies=FREQUENCIES, series=None, stats=True, seed=0, progress=None) -> M3Result:
    """Run the benchmark on `frequencies` (all 3,003 series, or a sample of `series` per
    frequency); `stats=False` skips Theta and AutoETS. `progress(line)` hears each step."""
    from rnnkit.datasets import m3

    say = progress or (lambda line: None)
    started = time.perf_counter()
    results = []
    for frequency in frequencies:
        competition = m3(frequency, series=series, seed=seed)
        say(f"M3 {frequency}: {competition.train['unique_id'].nunique()} series")
        results.append(_one_frequency(competition, stats, say))
    return M3Result(results, time.perf_counter() - started, _peak_mb())


def _one_frequency(competition, stats: bool, say) -> FrequencyResult:
    from rnnkit.forecast import forecast_next, load_panel, train_forecast

    settings = m3_settings(competition.frequency)
    season = competition.season
    train, test = competition.train, competition.test
    ids = list(dict.fromkeys(train["unique_id"]))
    histories = [g["y"].to_numpy() for _, g in train.groupby("unique_id", sort=False)]
    truth = np.stack([g["y"].to_numpy() for _, g in test.groupby("unique_id", sort=False)])

    def scored(forecast, seconds, note=""):
        return Method(
            metrics.smape(truth, forecast),
            metrics.mase(truth, forecast, histories, season),
            seconds,
            note,
        )

    methods = {}
    began = time.perf_counter()
    panel = load_panel(train, "y", None, "ds", "unique_id", source=competition.name)
    result = train_forecast(panel, settings)
    frame = forecast_next(result.model, train, competition.name)
    forecast = np.stack(
        [g["forecast"].to_numpy() for _, g in frame.groupby("unique_id", sort=False)]
    )
    order = [list(frame["unique_id"].drop_duplicates()).index(i) for i in ids]
    methods["rnnkit"] = scored(forecast[order], time.perf_counter() - began)
    coverage = {}
    for level in settings.levels:
        bounds = [
            np.stack(
                [g[f"{side}_{level}"].to_numpy() for _, g in frame.groupby("unique_id", sort=False)]
            )[order]
            for side in ("lo", "hi")
        ]
        coverage[level] = float(np.mean(metrics.coverage(truth, *bounds)))
    say(f"  rnnkit: sMAPE {np.mean(methods['rnnkit'].smape):.2f}")
    one = _one_series_ms(result.model, settings, result.series)
    began = time.perf_counter()
    naive = baselines.seasonal_naive_many(histories, competition.horizon, season)
    methods["seasonal naive"] = scored(naive, time.perf_counter() - began)
    began = time.perf_counter()
    last = baselines.persistence_many(histories, competition.horizon)
    methods["persistence"] = scored(last, time.perf_counter() - began)
    if stats:
        try:
            found = baselines.statistical(dict(zip(ids, histories)), competition.horizon, season)
        except baselines.BaselinesUnavailable as err:
            say(f"  Theta and AutoETS not run: {err}")
        else:
            for name, values in found.forecasts.items():
                note = ""
                if found.fallbacks.get(name):
                    note = f"{len(found.fallbacks[name])} series fell back to naive"
                methods[name] = scored(values, found.seconds[name], note)
                say(f"  {name}: sMAPE {np.mean(methods[name].smape):.2f}")
    return FrequencyResult(
        competition.frequency,
        len(ids),
        competition.horizon,
        methods,
        one,
        _peak_mb(),
        result.metrics.get("left_out", {}),
        coverage,
    )


def _one_series_ms(model, settings: ForecastSettings, panel) -> float:
    """The median model time, in ms, of forecasting one series (one window)."""
    x = np.zeros((1, settings.window, 1), np.float32)
    model.predict(x, verbose=0)  # warm
    times = []
    for _ in range(50):
        began = time.perf_counter()
        model.predict(x, verbose=0)
        times.append(time.perf_counter() - began)
    return float(np.median(times) * 1000)
