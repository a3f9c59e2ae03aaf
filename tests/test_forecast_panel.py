"""`rnnkit forecast` on many series: windows, scalers, backtests, intervals, metrics, the CLI.

Every expected value is worked out here with numpy from the table itself (or written out),
never read back from what the pipeline produced.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rnnkit.cli import main
from rnnkit.forecast import (
    ForecastSettings,
    forecast_next,
    intervals,
    load_panel,
    prepare,
    train_forecast,
)
from rnnkit.forecast import backtest as backtests
from rnnkit.saving import load_model

# a tiny model, trained briefly
FAST = ["--epochs", "2", "--units", "4", "--window", "5", "--ensemble", "1"]


def _run(*args, expect_ok=True):
    result = CliRunner().invoke(main, list(map(str, args)))
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


def _one_line_error(result, match):
    """The command ended with one line naming the problem (`match`), not a traceback."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not a crash
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and result.output.rstrip().endswith(errors[0]), result.output
    assert match in errors[0], errors[0]
    return errors[0]


def _fails(out, *args, match):
    """`rnnkit forecast` fails with one line and writes nothing in `out`."""
    line = _one_line_error(_run(*args, "--out", out, expect_ok=False), match)
    assert not out.exists()
    return line


def _table(lengths: dict, start="2021-01-01", freq="D", seed=0) -> pd.DataFrame:
    """A long table `unique_id, ds, y`: one wavy series per entry of `lengths` (rows)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, (name, rows) in enumerate(lengths.items()):
        t = np.arange(rows)
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": name,
                    "ds": pd.date_range(start, periods=rows, freq=freq),
                    "y": 50 + 10 * i + 8 * np.sin(t / 3 + i) + rng.normal(0, 1, rows),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _rows(frame, name, column="y"):
    return frame.loc[frame["unique_id"] == name, column].to_numpy(np.float64)


def _panel(frame):
    return load_panel(frame, "y", None, "ds", "unique_id")


def _settings(**changes) -> ForecastSettings:
    """Settings for a `unique_id, ds, y` table, with a tiny network unless `changes` say."""
    tiny = {"units": 4, "epochs": 2, "ensemble": 1}
    return ForecastSettings(target="y", date_col="ds", id_col="unique_id", **(tiny | changes))


# ------------------------------------------------------------- windows and their scaling


def test_windows_never_cross_series():
    # y is offset + row number: a window that crossed from one series into the next would
    # hold a jump of about 1000 (or 2000) between two neighbouring rows.
    lengths, offsets = {"a": 20, "b": 24, "c": 18}, {"a": 0, "b": 1000, "c": 2000}
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": name,
                    "ds": pd.date_range("2021-01-01", periods=rows, freq="D"),
                    "y": offsets[name] + np.arange(rows, dtype=float),
                }
            )
            for name, rows in lengths.items()
        ],
        ignore_index=True,
    )
    data = prepare(_panel(frame), _settings(window=4, horizon=2, val_size=2, test_size=2))
    # Each series is scaled by its training rows, all but its last 4: offset + 0 .. rows - 5.
    train = [offsets[name] + np.arange(rows - 4.0) for name, rows in lengths.items()]
    center, spread = np.array([t.mean() for t in train]), np.array([t.std() for t in train])

    def raw(w):  # the windows' target column back in the table's units, (n, window)
        return w.x[:, :, 0] * spread[w.series][:, None] + center[w.series][:, None]

    for w in (data.train, data.validation, data.test):
        x = raw(w)
        np.testing.assert_allclose(np.diff(x, axis=1), 1.0, atol=1e-3)  # consecutive rows
        owner = np.round(x / 1000).astype(int)  # 0 for a, 1 for b, 2 for c
        assert (owner == w.series[:, None]).all()
        np.testing.assert_allclose(w.truth - x[:, -1:], [[1.0, 2.0]] * len(w), atol=1e-3)

    # Each series: train [0, rows - 4), validation 2 rows, test 2 rows; a training window's
    # two targets both lie in the training rows: first target at rows 4 .. rows - 6.
    assert [np.sum(data.train.series == s) for s in range(3)] == [11, 15, 9]
    assert len(data.validation) == len(data.test) == 3  # one per series each

    b = 1000 + np.arange(24.0)  # series b by hand
    firsts = np.arange(4, 19)  # its training windows' first targets
    pick = data.train.series == 1
    np.testing.assert_allclose(raw(data.train)[pick], [b[f - 4 : f] for f in firsts], rtol=1e-6)
    np.testing.assert_allclose(data.train.truth[pick], [b[f : f + 2] for f in firsts])
    np.testing.assert_array_equal(data.train.first[pick], firsts)
    # The scaled target is the change since the window's last row: +1 and +2 rows, here
    # in units of b's spread over its 20 training rows.
    np.testing.assert_allclose(data.train.y[pick] * b[:20].std(), [[1, 2]] * 15, rtol=1e-5)
    np.testing.assert_allclose(raw(data.validation)[1], b[16:20], rtol=1e-6)
    np.testing.assert_allclose(raw(data.test)[1], b[18:22], rtol=1e-6)
    np.testing.assert_allclose(data.test.truth[1], b[22:24])


def test_each_series_scaler_sees_only_its_training_rows():
    frame = _table({"a": 30, "b": 26, "c": 34})
    frame["temp"] = np.random.default_rng(1).normal(20, 5, len(frame))
    held = 5  # val_size 2 + test_size 3
    for name in ("a", "b", "c"):  # huge jumps in validation and test: a leak would show
        rows = np.flatnonzero(frame["unique_id"] == name)[-held:]
        frame.loc[rows, "y"] += 1e6
        frame.loc[rows, "temp"] -= 1e5
    settings = _settings(window=4, horizon=2, val_size=2, test_size=3, epochs=1)
    result = train_forecast(_panel(frame), settings)
    meta = result.model.metadata
    assert sorted(meta["scalers"]) == ["a", "b", "c"]
    for name in ("a", "b", "c"):
        train = np.column_stack([_rows(frame, name), _rows(frame, name, "temp")])[:-held]
        scaler = meta["scalers"][name]
        assert scaler["columns"] == ["y", "temp"]
        np.testing.assert_allclose(scaler["shift"], train.mean(axis=0))
        np.testing.assert_allclose(scaler["scale"], train.std(axis=0))
        # The intervals' scale too: the mean absolute step over the training rows.
        assert meta["error_scales"][name] == pytest.approx(np.abs(np.diff(train[:, 0])).mean())


# -------------------------------------------------------------------------- backtests


@pytest.fixture
def counted_fits(monkeypatch):
    """Every training run of a backtest, as the rows of its first series it trained on."""
    trained = []
    real = backtests.fit

    def fit(data, *args, **kwargs):
        trained.append(len(data.panel.target[0]))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(backtests, "fit", fit)
    return trained


@pytest.mark.parametrize(
    ("refit", "flags", "fits"),
    [(0, [True, False, False], [26]), (1, [True, True, True], [26, 28, 30])],
)
def test_backtest_origins_cutoffs_and_refits(counted_fits, refit, flags, fits):
    frame = _table({"a": 30, "b": 30})
    y = {name: _rows(frame, name) for name in ("a", "b")}
    assert backtests.origins(rows=30, count=3, step=2, test=2) == [26, 28, 30]
    settings = _settings(window=4, horizon=2)  # test_size: the horizon
    result, _ = backtests.backtest(_panel(frame), settings, count=3, step=2, refit=refit)
    entries = result.origins
    assert [e["origin"] for e in entries] == [1, 2, 3]
    assert [e["refit"] for e in entries] == flags
    assert counted_fits == fits  # refit 0: trained once, at the first origin
    assert result.fit_seconds > 0
    # The series known at each origin: 26, 28, 30 rows; the last two are the test window,
    # so the forecast is made after row n - 3 (0-based), 2021-01-01 + n - 3 days.
    assert [e["cutoff"] for e in entries] == [
        str(pd.Timestamp(day)) for day in ("2021-01-24", "2021-01-26", "2021-01-28")
    ]
    for entry, n in zip(entries, (26, 28, 30)):
        assert entry["test_windows"] == 2  # one per series
        truth = np.stack([y[s][n - 2 : n] for s in ("a", "b")])
        persistence = np.stack([[y[s][n - 3]] * 2 for s in ("a", "b")])
        assert entry["persistence"]["mae"] == pytest.approx(np.abs(truth - persistence).mean())
    mean_mae = np.mean([e["model"]["mae"] for e in entries])
    assert result.mean["model"]["mae"] == pytest.approx(mean_mae)


# -------------------------------------------------------------------------- intervals


def test_conformal_widths_are_the_rank_written_by_hand():
    k = np.arange(1, 20)
    signed = (k * (-1.0) ** k)[np.random.default_rng(0).permutation(19)]  # |e| = 1..19
    errors = np.column_stack([signed, 2 * signed])  # (19 windows, 2 steps)
    got = intervals.widths(errors, [50, 80, 90])
    # rank = ceil((19 + 1) * L / 100): 10, 16, 18
    expected = {50: [10, 20], 80: [16, 32], 90: [18, 36]}
    assert {level: w.tolist() for level, w in got.items()} == expected
    # 97% needs ceil(97 / 3) = 33 windows: with 32 the largest error stands in, and it says so.
    with pytest.warns(UserWarning, match="32 validation windows are too few for a 97% .*33"):
        assert intervals.widths(np.arange(1.0, 33.0)[:, None], [97])[97].tolist() == [32]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ceil(34 * 0.97) = 33 <= 33: no warning
        assert intervals.widths(np.arange(1.0, 34.0)[:, None], [97])[97].tolist() == [33]
    with pytest.raises(ValueError, match="calibrated on the validation windows"):
        intervals.widths(np.zeros((0, 2)), [80])
    # The scale: mean |x_t - x_{t-1}| (2, 1, 3 -> 2); a constant series falls back to 1.
    assert intervals.error_scale(np.array([1.0, 3, 2, 5])) == pytest.approx(2.0)
    assert intervals.error_scale(np.array([4.0, 4.0, 4.0])) == 1.0
    lo, hi = intervals.bands(np.array([[10.0, 20.0]]), np.array([2.0]), {80: [1.5, 3.0]})[80]
    np.testing.assert_allclose(lo, [[7.0, 14.0]])
    np.testing.assert_allclose(hi, [[13.0, 26.0]])


def test_interval_coverage_is_nominal_on_series_of_known_noise():
    """800 series of level + N(0, sigma²), each with one validation and one test window: the
    800 test errors are independent of each other and exchangeable with the validation
    errors, so split conformal coverage is nominal whatever the network learned."""
    rng = np.random.default_rng(0)
    count, rows = 800, 10
    level, sigma = rng.uniform(10, 100, count), rng.uniform(0.5, 3, count)
    y = level[:, None] + sigma[:, None] * rng.normal(size=(count, rows))  # (series, rows)
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat([f"s{i:03d}" for i in range(count)], rows),
            "ds": np.tile(np.arange(rows), count),  # integer periods
            "y": y.ravel(),
        }
    )
    one_each = {"val_size": 1, "test_size": 1, "levels": (80, 95)}
    quick = {"learning_rate": 0.02, "batch_size": 256}
    result = train_forecast(_panel(frame), _settings(window=4, horizon=1, **one_each, **quick))
    assert result.test_truth.shape == (count, 1)
    owner = np.array([int(name[1:]) for name in result.test_ids])
    np.testing.assert_allclose(result.test_truth[:, 0], y[owner, -1])
    for percent in (80, 95):
        lo, hi = result.test_bands[percent]
        inside = (lo <= result.test_truth) & (result.test_truth <= hi)
        p = percent / 100
        # Both the test hits and the calibrated quantile vary: p(1-p)(1/n_test + 1/n_val).
        error = math.sqrt(p * (1 - p) * (1 / count + 1 / count))
        assert abs(inside.mean() - p) < 3 * error, (percent, inside.mean(), error)
        reported = result.metrics["intervals"][f"{percent}"]["coverage"]
        assert reported == pytest.approx(inside.mean())
    lo80, hi80 = result.test_bands[80]
    lo95, hi95 = result.test_bands[95]
    assert (lo95 < lo80).all() and (hi80 < hi95).all()


# ------------------------------------------------------------------ metrics.json, oracle


def test_metrics_json_equals_scores_computed_by_hand(tmp_path):
    """Train by the CLI with 3 test rows per series; the saved model forecasts each series
    from the rows before them; sMAPE, MASE, coverage and MSIS follow by numpy."""
    frame = _table({"a": 45, "b": 40, "c": 50})
    frame.to_csv(tmp_path / "h.csv", index=False)
    out = tmp_path / "out"
    horizon, season, level = 3, 7, 80
    flags = ["--horizon", horizon, "--season", season, "--test-size", 3, "--val-size", 6]
    _run("forecast", "--csv", tmp_path / "h.csv", *flags, "--levels", level, *FAST, "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    model = load_model(out / "model.rnnkit", compile=False)
    before = frame[frame.groupby("unique_id").cumcount(ascending=False) >= 3]  # no test rows
    predicted = forecast_next(model, before)
    assert predicted["unique_id"].tolist() == ["a"] * 3 + ["b"] * 3 + ["c"] * 3

    truth = np.stack([_rows(frame, s)[-3:] for s in "abc"])  # (series, horizon)
    forecast = predicted["forecast"].to_numpy().reshape(3, horizon)
    lo = predicted[f"lo_{level}"].to_numpy().reshape(3, horizon)
    hi = predicted[f"hi_{level}"].to_numpy().reshape(3, horizon)
    train = [_rows(frame, s)[: -3 - 6] for s in "abc"]  # before validation and test
    scale = np.array([np.abs(x[season:] - x[:-season]).mean() for x in train])
    last = np.stack([_rows(frame, s)[-4] for s in "abc"])

    def smape(f):
        return np.mean(np.mean(200 * np.abs(truth - f) / (np.abs(truth) + np.abs(f)), axis=1))

    def mase(f):
        return np.mean(np.abs(truth - f).mean(axis=1) / scale)

    got = metrics["model"]
    assert got["smape"] == pytest.approx(smape(forecast), rel=1e-5)
    assert got["mase"] == pytest.approx(mase(forecast), rel=1e-5)
    assert got["mae"] == pytest.approx(np.abs(truth - forecast).mean(), rel=1e-5)
    assert got["rmse"] == pytest.approx(np.sqrt(((truth - forecast) ** 2).mean()), rel=1e-5)
    persistence = np.repeat(last[:, None], horizon, axis=1)
    assert metrics["persistence"]["smape"] == pytest.approx(smape(persistence))
    assert metrics["persistence"]["mase"] == pytest.approx(mase(persistence))
    # Seasonal naive, season 7: step k repeats row (n - 4) + k - 7.
    seasonal = np.stack([_rows(frame, s)[-10:-7] for s in "abc"])
    assert metrics["seasonal_naive"]["mase"] == pytest.approx(mase(seasonal))

    a = 1 - level / 100
    inside = (lo <= truth) & (truth <= hi)
    score = (hi - lo) + 2 / a * ((lo - truth) * (truth < lo) + (truth - hi) * (truth > hi))
    record = metrics["intervals"][f"{level}"]
    assert record["coverage"] == pytest.approx(inside.mean())
    assert record["msis"] == pytest.approx(np.mean(score.mean(axis=1) / scale), rel=1e-5)
    per_series = {row["id"]: row for row in metrics["per_series"]}
    for i, name in enumerate("abc"):
        own = np.abs(truth[i] - forecast[i]).mean() / scale[i]
        assert per_series[name]["mase"] == pytest.approx(own, rel=1e-5)


# ------------------------------------------------------------------------ the CLI contract


def test_forecast_then_predict_every_series_the_next_rows(tmp_path):
    # The series end on different days; predict also gets one the model never saw.
    ends = {"a": ("2021-01-01", 40), "b": ("2021-01-10", 35), "c": ("2020-12-20", 45)}
    frame = pd.concat(
        [
            _table({name: rows}, start=start, seed=i)
            for i, (name, (start, rows)) in enumerate(ends.items())
        ],
        ignore_index=True,
    )
    frame.to_csv(tmp_path / "train.csv", index=False)
    out = tmp_path / "out"
    columns = ["--id-col", "unique_id", "--date-col", "ds", "--target", "y"]
    flags = ["--horizon", 3, "--season", 7, "--test-size", 0, "--val-size", 10]
    csv = tmp_path / "train.csv"
    _run("forecast", "--csv", csv, *columns, *flags, "--levels", 80, 95, *FAST, "--out", out)
    assert (out / "model.rnnkit").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["series"] == 3 and metrics["test_windows"] == 0

    history = pd.concat([frame, _table({"new": 20}, start="2021-03-01")], ignore_index=True)
    history.to_csv(tmp_path / "history.csv", index=False)
    csv, output = tmp_path / "history.csv", tmp_path / "next.csv"
    _run("predict", out / "model.rnnkit", "--csv", csv, "--output", output)
    written = pd.read_csv(tmp_path / "next.csv")
    columns = ["unique_id", "ds", "forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert list(written.columns) == columns
    last = {"a": "2021-02-09", "b": "2021-02-13", "c": "2021-02-02", "new": "2021-03-20"}
    assert written["unique_id"].tolist() == [n for n in ("a", "b", "c", "new") for _ in range(3)]
    for name, day in last.items():
        dates = written.loc[written["unique_id"] == name, "ds"].tolist()
        expected = pd.date_range(pd.Timestamp(day) + pd.Timedelta(days=1), periods=3)
        assert dates == [str(d.date()) for d in expected]
    lo95, lo80, mid, hi80, hi95 = (
        written[c] for c in ("lo_95", "lo_80", "forecast", "hi_80", "hi_95")
    )
    assert np.isfinite(mid).all()
    assert ((lo95 < lo80) & (lo80 < mid) & (mid < hi80) & (hi80 < hi95)).all()


def test_unique_id_ds_y_needs_no_flags(tmp_path):
    frame = _table({"x": 40, "z": 36}, freq="MS")
    frame.to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "out"
    _run("forecast", "--csv", tmp_path / "m.csv", "--horizon", 2, *FAST, "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target"] == "y" and metrics["series"] == 2
    assert metrics["seasonal_naive"]["season"] == 12  # monthly dates
    csv, output = tmp_path / "m.csv", tmp_path / "p.csv"
    _run("predict", out / "model.rnnkit", "--csv", csv, "--output", output)
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns) == ["unique_id", "ds", "forecast"]
    # x: 40 months from 2021-01 end in 2024-04; z: 36 end in 2023-12.
    assert written["ds"].tolist() == ["2024-05-01", "2024-06-01", "2024-01-01", "2024-02-01"]


def test_several_target_columns_predict_from_the_same_wide_table(tmp_path):
    rng = np.random.default_rng(3)
    wide = pd.DataFrame(
        {
            "date": pd.date_range("2021-01-01", periods=50, freq="D"),
            "north": 20 + rng.normal(size=50).cumsum(),
            "south": 80 + rng.normal(size=50).cumsum(),
        }
    )
    wide.to_csv(tmp_path / "wide.csv", index=False)
    out = tmp_path / "out"
    csv = tmp_path / "wide.csv"
    _run("forecast", "--csv", csv, "--target", "north,south", "--horizon", 2, *FAST, "--out", out)
    _run("predict", out / "model.rnnkit", "--csv", csv, "--output", tmp_path / "p.csv")
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns) == ["series", "date", "forecast"]
    assert written["series"].tolist() == ["north", "north", "south", "south"]
    assert written["date"].tolist() == ["2021-02-20", "2021-02-21"] * 2
    # The same rows stacked by hand into one long table: the same forecasts.
    long = pd.concat(
        [
            pd.DataFrame({"date": wide["date"], "series": name, "value": wide[name]})
            for name in ("north", "south")
        ]
    )
    model = load_model(out / "model.rnnkit", compile=False)
    np.testing.assert_allclose(
        forecast_next(model, long)["forecast"], written["forecast"], rtol=1e-5
    )


# ------------------------------------------------------------------ covariates, strategies


@pytest.fixture(scope="module")
def promo_model(tmp_path_factory):
    """Four stores; on a promotion day sales rise by 15. Big stores sell ~4x small ones."""
    folder = tmp_path_factory.mktemp("promo")
    rng = np.random.default_rng(0)
    frames = []
    stores = [("s1", "big", 100), ("s2", "small", 20), ("s3", "big", 90), ("s4", "small", 25)]
    for name, kind, level in stores:
        promo = rng.integers(0, 2, 60)
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": name,
                    "ds": pd.date_range("2022-01-03", periods=60, freq="D"),
                    "y": level + 15 * promo + rng.normal(0, 1, 60),
                    "promo": promo,
                    "store_type": kind,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame.to_csv(folder / "sales.csv", index=False)
    columns = ["--future-cols", "promo", "--static-cols", "store_type", "--horizon", "2"]
    # a model good enough to have learned the promotions' effect, in a couple of seconds
    trained = ["--window", "4", "--units", "6", "--epochs", "20", "--learning-rate", "0.03"]
    csv, out = folder / "sales.csv", folder / "out"
    _run("forecast", "--csv", csv, *columns, *trained, "--ensemble", 1, "--out", out)
    return folder, frame


def _with_future_rows(frame, promo, rows=None):
    """`frame` with `rows[id]` (default 2) trailing rows per store: target empty, promo known."""
    parts = []
    for name, own in frame.groupby("unique_id", sort=True):
        count = 2 if rows is None else rows.get(name, 2)
        future = pd.DataFrame(
            {
                "unique_id": name,
                "ds": pd.date_range("2022-03-04", periods=count, freq="D"),
                "y": np.nan,
                "promo": promo[:count],
                "store_type": own["store_type"].iloc[0],
            }
        )
        parts += [own, future]
    return pd.concat(parts, ignore_index=True)


def test_future_and_static_covariates(promo_model, tmp_path):
    folder, frame = promo_model
    model_path = folder / "out" / "model.rnnkit"
    metrics = json.loads((folder / "out" / "metrics.json").read_text())
    assert metrics["model"]["mae"] < metrics["persistence"]["mae"]
    meta = load_model(model_path, compile=False).metadata
    assert meta["future"] == ["promo"] and meta["static_cols"] == ["store_type"]
    assert meta["static"]["text"] == {"store_type": ["big", "small"]}  # an embedding's words

    # Without the future rows: one line naming the store and the rows it misses.
    frame.to_csv(tmp_path / "history.csv", index=False)
    result = _run("predict", model_path, "--csv", tmp_path / "history.csv", expect_ok=False)
    line = _one_line_error(result, "series 's1' has 0 future row(s)")
    assert "Add 2 more row(s)" in line
    _with_future_rows(frame, [1, 1], rows={"s3": 1}).to_csv(tmp_path / "some.csv", index=False)
    result = _run("predict", model_path, "--csv", tmp_path / "some.csv", expect_ok=False)
    assert "Add 1 more row(s)" in _one_line_error(result, "series 's3' has 1 future row(s)")

    _with_future_rows(frame, [0, 0]).to_csv(tmp_path / "future.csv", index=False)
    _run("predict", model_path, "--csv", tmp_path / "future.csv", "--output", tmp_path / "p.csv")
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns) == ["unique_id", "ds", "forecast"]
    assert written["ds"].tolist() == ["2022-03-04", "2022-03-05"] * 4
    # The target is level + 15 * promo: a promotion on both days lifts both by about 15.
    model = load_model(model_path, compile=False)
    off = forecast_next(model, _with_future_rows(frame, [0, 0]))["forecast"].to_numpy()
    on = forecast_next(model, _with_future_rows(frame, [1, 1]))["forecast"].to_numpy()
    np.testing.assert_allclose(off, written["forecast"], rtol=1e-5)
    assert ((on - off > 10) & (on - off < 20)).all(), on - off


def test_recursive_strategy_refuses_a_past_covariate(tmp_path):
    frame = _table({"a": 30, "b": 30})
    frame["temp"] = np.random.default_rng(2).normal(size=len(frame))
    frame.to_csv(tmp_path / "past.csv", index=False)
    args = ["forecast", "--csv", tmp_path / "past.csv", "--strategy", "recursive", *FAST]
    _fails(tmp_path / "never", *args, match="'temp' is a past covariate")


def test_recursive_forecast_feeds_each_step_back_by_hand():
    frame = _table({"a": 30, "b": 34}, start="2021-06-01")
    settings = _settings(window=5, horizon=2, strategy="recursive", test_size=0)
    model = train_forecast(_panel(frame), settings).model
    assert model.output_shape[-1] == 1  # one step, fed back
    got = forecast_next(model, frame)

    def day_of_year(date):  # the calendar: the day of the year on the unit circle
        angle = 2 * np.pi * (date.day_of_year - 1) / 365.25
        return [np.sin(angle), np.cos(angle)]

    for name in ("a", "b"):
        y, dates = _rows(frame, name), frame.loc[frame["unique_id"] == name, "ds"]
        train = y[:-2]  # validation: the horizon's 2 rows, no test rows
        shift, scale = train.mean(), train.std()
        rows = [[(v - shift) / scale, *day_of_year(d)] for v, d in zip(y[-5:], dates.iloc[-5:])]
        level, forecasts = rows[-1][0], []
        for k in (1, 2):
            x = np.array(rows[-5:], dtype=np.float32)[None]  # (1, window, 3)
            level = level + float(model.predict(x, verbose=0)[0, 0])  # the change, added
            forecasts.append(level * scale + shift)
            rows.append([level, *day_of_year(dates.iloc[-1] + pd.Timedelta(days=k))])
        mine = got.loc[got["unique_id"] == name, "forecast"].to_numpy()
        np.testing.assert_allclose(mine, forecasts, rtol=1e-5)


# ---------------------------------------------------------------------------- bad input


@pytest.fixture
def three_series(tmp_path):
    return _table({"a": 30, "b": 30, "c": 30})


def _forecast_fails(tmp_path, frame, *options, match):
    frame.to_csv(tmp_path / "bad.csv", index=False)
    args = ["forecast", "--csv", tmp_path / "bad.csv", *options, *FAST]
    return _fails(tmp_path / "never", *args, match=match)


def test_duplicate_id_date_rows_are_named(tmp_path, three_series):
    frame = pd.concat([three_series, three_series.iloc[[35]]], ignore_index=True)
    _forecast_fails(tmp_path, frame, match="b on 2021-01-06 (2 rows)")


def test_a_gap_in_one_series_names_it_and_ffill_fills_it(tmp_path, three_series):
    frame = three_series.drop(index=[40, 41])  # b's 11 and 12 January
    _forecast_fails(tmp_path, frame, match="series 'b' misses 2 date(s)")
    out = tmp_path / "filled"
    _run("forecast", "--csv", tmp_path / "bad.csv", "--fill", "ffill", *FAST, "--out", out)
    assert json.loads((out / "metrics.json").read_text())["series"] == 3


def test_a_missing_month_is_named_and_filled_on_month_starts(tmp_path):
    # Months are 28 to 31 days apart: the gap is one month start, not a 28-day grid.
    frame = _table({"a": 36, "b": 36}, freq="MS")
    frame = frame[frame["ds"] != "2022-05-01"].reset_index(drop=True)  # both lose May 2022
    with pytest.raises(ValueError, match=r"series 'a' misses 1 date\(s\) .*\(2022-05-01\)"):
        _panel(frame)
    panel = load_panel(frame, "y", None, "ds", "unique_id", fill="ffill")
    months = pd.date_range("2021-01-01", periods=36, freq="MS")
    for name, dates, target in zip(panel.ids, panel.dates, panel.target):
        assert dates.tolist() == months.tolist()
        own = _rows(frame, name)
        np.testing.assert_array_equal(target, np.insert(own, 16, own[15]))  # April's value


@pytest.mark.parametrize("flags", [[], ["--id-col", "unique_id", "--date-col", "ds"]])
def test_an_empty_id_names_the_files_rows(tmp_path, three_series, flags):
    frame = three_series.copy()
    frame.loc[[3, 70], "unique_id"] = np.nan
    # rows 3 and 70 of the file's data (lines 5 and 72), not of the rows sorted by date
    _forecast_fails(
        tmp_path, frame, *flags, match="empty in 2 row(s) (rows 3, 70, counting from 0)"
    )


def test_a_static_column_that_varies_within_a_series(tmp_path, three_series):
    frame = three_series.assign(store=np.where(three_series["unique_id"] == "a", "big", "small"))
    frame.loc[5, "store"] = "small"
    match = "The static column 'store' changes within 1 series (e.g. 'a')"
    _forecast_fails(tmp_path, frame, "--static-cols", "store", match=match)


def test_a_short_series_is_left_out_and_reported(tmp_path):
    # b's 5 rows are fewer than a window of 5 plus a horizon of 1
    _table({"a": 30, "b": 5, "c": 30}).to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "out"
    result = _run("forecast", "--csv", tmp_path / "s.csv", *FAST, "--out", out)
    assert "Left out 1 series too short to train on: b (5 rows" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["left_out"]) == ["b"] and "needs 6 more" in metrics["left_out"]["b"]
    assert metrics["series"] == 2 and metrics["test_windows"] == 2
    trained = load_model(out / "model.rnnkit", compile=False).metadata["scalers"]
    assert sorted(trained) == ["a", "c"]


def test_every_series_too_short_is_an_error(tmp_path):
    match = "Every one of the 2 series is too short ('a': 7 rows"
    _forecast_fails(tmp_path, _table({"a": 7, "b": 6}), match=match)
