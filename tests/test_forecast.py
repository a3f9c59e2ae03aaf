"""`rnnkit forecast` and `rnnkit predict`: the main job, its baselines, outputs and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rnnkit.cli import main
from rnnkit.datasets import seattle_weather, stocks
from rnnkit.explain import memory
from rnnkit.forecast import (
    ForecastSettings,
    forecast_next,
    infer_season,
    load_series,
    naive_forecasts,
    table_windows,
    train_forecast,
)
from rnnkit.saving import load_model


def _run(*args, expect_ok=True):
    result = CliRunner().invoke(main, list(map(str, args)))
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


def _write_series(path, rows=120, with_dates=True, **extra_columns):
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    frame = pd.DataFrame(
        {
            "level": 10 + 5 * np.sin(t / 6) + rng.normal(0, 0.3, rows),
            "driver": np.cos(t / 6) + rng.normal(0, 0.1, rows),
        }
    )
    if with_dates:
        frame.insert(0, "date", pd.date_range("2020-01-01", periods=rows, freq="D"))
    for name, values in extra_columns.items():
        frame[name] = values
    frame.to_csv(path, index=False)
    return frame


def _on_csv(tmp_path):
    """`rnnkit forecast` on the test's series file, forecasting its `level` column."""
    return ["forecast", "--csv", tmp_path / "s.csv", "--target", "level"]


FAST = ["--epochs", 2, "--units", 4, "--window", 5]


# ----------------------------------------------------------------------- the default run


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("forecast")
    result = _run("forecast", "--out", out)
    return out, result.output


def test_default_run_beats_persistence_by_at_least_8_percent(default_run):
    out, output = default_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target"] == "temp_max" and metrics["test_windows"] == 219
    model_rmse, persistence_rmse = metrics["model"]["rmse"], metrics["persistence"]["rmse"]
    assert model_rmse <= 0.92 * persistence_rmse, metrics
    assert f"{1 - model_rmse / persistence_rmse:.1%} below persistence" in output
    assert "persistence (the last value)" in output and "seasonal naive" in output
    assert "Total params" in output  # the summary
    assert "5 models (seeds 0-4) train together" in output  # the ensemble, as one


def test_default_run_baselines_are_the_naive_forecasts_of_the_test_rows(default_run):
    out, _ = default_run
    metrics = json.loads((out / "metrics.json").read_text())
    weather = seattle_weather()["temp_max"].to_numpy()
    truth = weather[-219:]
    persistence = weather[-220:-1]
    seasonal = weather[-219 - 365 : -365]
    assert metrics["persistence"]["rmse"] == pytest.approx(
        np.sqrt(np.mean((persistence - truth) ** 2))
    )
    assert metrics["persistence"]["mae"] == pytest.approx(np.mean(np.abs(persistence - truth)))
    assert metrics["seasonal_naive"]["rmse"] == pytest.approx(
        np.sqrt(np.mean((seasonal - truth) ** 2))
    )


def test_default_run_writes_a_real_png_of_the_test_period(default_run):
    from PIL import Image

    out, _ = default_run
    with Image.open(out / "forecast.png") as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    assert width > 500 and height > 300
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # lines, text: not a blank image


def test_saved_model_predicts_the_same_forecast_from_the_csv(default_run, tmp_path):
    out, _ = default_run
    model = load_model(out / "model.rnnkit", compile=False)
    frame = seattle_weather()
    # The last test forecast was made from the rows before the last one: give the same rows.
    last = forecast_next(model, frame.iloc[:-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["window"] == model.metadata["window"]
    csv = tmp_path / "recent.csv"
    frame.iloc[-40:].to_csv(csv, index=False)
    result = _run("predict", out / "model.rnnkit", "--csv", csv, "--output", tmp_path / "p.csv")
    written = pd.read_csv(tmp_path / "p.csv")
    assert written["date"].tolist() == ["2016-01-01"]
    assert "2016-01-01" in result.output
    assert np.isfinite(last["temp_max"]).all()
    assert abs(float(last["temp_max"].iloc[0]) - frame["temp_max"].iloc[-1]) < 10


def test_reported_rmse_is_the_saved_models_error_on_windows_built_by_hand(default_run):
    """Rebuild the test inputs with numpy alone (standardize with the training rows' mean and
    std, add the day of the year as sin/cos, 14-day windows) and score the saved model."""
    out, _ = default_run
    model = load_model(out / "model.rnnkit", compile=False)
    metrics = json.loads((out / "metrics.json").read_text())
    frame = seattle_weather()
    values = frame[["precipitation", "temp_max", "temp_min", "wind"]].to_numpy(float)
    train_rows = len(frame) - 2 * 219  # 70% train, then 15% validation, 15% test
    mean, std = values[:train_rows].mean(0), values[:train_rows].std(0)
    angle = 2 * np.pi * (frame["date"].dt.day_of_year.to_numpy() - 1) / 365.25
    inputs = np.column_stack([(values - mean) / std, np.sin(angle), np.cos(angle)])
    targets = np.arange(len(frame) - 219, len(frame))  # the rows forecast
    x = np.stack([inputs[t - 14 : t] for t in targets]).astype("float32")  # (219, 14, 6)
    change = model.predict(x)[:, 0] * std[1]  # the change in temp_max, in degrees
    forecast = values[targets - 1, 1] + change
    rmse = np.sqrt(np.mean((forecast - values[targets, 1]) ** 2))
    assert metrics["model"]["rmse"] == pytest.approx(rmse, rel=1e-4)


def test_default_run_records_and_prints_the_memory_horizon(default_run):
    """metrics.json's memory horizon is `rnnkit.explain.memory` of the saved model on the
    219 test windows: those before each of the table's last 219 rows."""
    out, output = default_run
    record = json.loads((out / "metrics.json").read_text())["memory_horizon"]
    model = load_model(out / "model.rnnkit", compile=False)
    windows, _ = table_windows(model, seattle_weather())  # the last has no row after it
    test = windows[-220:-1]  # (219, 14, 6)
    steps = memory(model, test).steps
    assert record == {"steps": steps, "threshold": 0.01, "timesteps": 14, "sequences": 219}
    assert 1 <= steps <= 14
    assert f"The model's forecast depends on the last {steps} rows (of 14;" in output


def test_forecast_next_reproduces_the_test_forecasts(tmp_path):
    frame = _write_series(tmp_path / "s.csv")
    series = load_series(frame, "level", None, "date")
    settings = ForecastSettings(target="level", window=5, units=4, epochs=2, date_col="date")
    result = train_forecast(series, settings)
    for back in (1, 7):
        rows = frame.iloc[: len(frame) - back]
        expected = result.test_forecast[-back, 0]
        got = forecast_next(result.model, rows)["level"].iloc[0]
        assert got == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------- pieces, by hand


def test_naive_forecasts_by_hand():
    target = np.arange(20.0) ** 2
    first = np.array([10, 15])
    persistence, seasonal = naive_forecasts(target, first, horizon=3, season=2)
    np.testing.assert_array_equal(persistence, [[81, 81, 81], [196, 196, 196]])
    # y[t+k] = y[t+k-2*ceil(k/2)] with t = first - 1: k=1 -> t-1, k=2 -> t, k=3 -> t-1+2=t+1-2
    np.testing.assert_array_equal(seasonal, [[64, 81, 64], [169, 196, 169]])
    _, none = naive_forecasts(target, np.array([1]), horizon=1, season=5)
    assert none is None  # not enough history for a season


def test_infer_season_from_dates():
    def dates(freq, periods):
        return pd.Series(pd.date_range("2010-01-01", periods=periods, freq=freq))

    assert infer_season(dates("D", 800))[0] == 365
    assert infer_season(dates("D", 100))[0] == 7
    assert infer_season(dates("h", 100))[0] == 24
    assert infer_season(dates("MS", 40))[0] == 12
    assert infer_season(None) == (None, "")
    assert infer_season(stocks("IBM")["date"])[0] == 12


def test_scaler_sees_only_the_training_rows(tmp_path):
    frame = _write_series(tmp_path / "s.csv", rows=100)
    frame.loc[85:, "level"] += 1000  # a jump in the test rows: a leaky scaler would see it
    series = load_series(frame, "level", ["level", "driver"], "date")
    settings = ForecastSettings(target="level", window=5, units=4, epochs=1, date_col="date")
    result = train_forecast(series, settings)
    scaler = result.model.metadata["scalers"]["series"]
    train = frame.iloc[:70][["level", "driver"]].to_numpy()
    np.testing.assert_allclose(scaler["shift"], train.mean(axis=0))
    np.testing.assert_allclose(scaler["scale"], train.std(axis=0))


def test_multi_step_horizon_on_a_user_csv(tmp_path):
    _write_series(tmp_path / "s.csv")
    out = tmp_path / "out"
    args = [*_on_csv(tmp_path), "--horizon", 3]
    result = _run(*args, *FAST, "--cell", "lstm", "--out", out)
    assert "Data: " in result.output and "date" not in result.output.split("Features:")[1][:30]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["model_by_step"]) == 3
    assert metrics["seasonal_naive"]["season"] == 7  # daily rows over less than two years
    predicted = _run("predict", out / "model.rnnkit", "--csv", tmp_path / "s.csv")
    # 120 days from 2020-01-01 end on 2020-04-29; the next three follow.
    assert "2020-04-30" in predicted.output and "2020-05-02" in predicted.output


def test_csv_without_dates_and_without_calendar(tmp_path):
    _write_series(tmp_path / "s.csv", with_dates=False)
    out = tmp_path / "out"
    args = [*_on_csv(tmp_path), "--cell", "simple_rnn"]
    _run(*args, *FAST, "--predict-level", "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "seasonal_naive" not in metrics
    _run(*args, *FAST, "--season", 10, "--out", out)
    assert json.loads((out / "metrics.json").read_text())["seasonal_naive"]["season"] == 10


def test_ensemble_is_saved_as_one_model_that_averages_its_members(tmp_path):
    _write_series(tmp_path / "s.csv")
    out = tmp_path / "out"
    _run(
        *_on_csv(tmp_path),
        *FAST,
        "--ensemble",
        2,
        "--out",
        out,
    )
    model = load_model(out / "model.rnnkit", compile=False)
    members = [layer for layer in model.layers if layer.name.startswith("forecast_gru_")]
    assert len(members) == 2
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    np.testing.assert_allclose(
        model.predict(x), (members[0].predict(x) + members[1].predict(x)) / 2, rtol=1e-5
    )


# ----------------------------------------------------------------------------- bad input


def _fails(tmp_path, *args, match):
    out = tmp_path / "never"
    result = _run(*args, "--out", out, expect_ok=False)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert match in result.output, result.output
    assert not out.exists()  # nothing half-written
    return result


def test_missing_target_column(tmp_path):
    _write_series(tmp_path / "s.csv")
    _fails(
        tmp_path,
        "forecast",
        "--csv",
        tmp_path / "s.csv",
        "--target",
        "price",
        match="has no column 'price' (given as --target)",
    )


def test_missing_feature_column(tmp_path):
    _write_series(tmp_path / "s.csv")
    _fails(
        tmp_path,
        *_on_csv(tmp_path),
        "--features",
        "driver,wind",
        match="no column 'wind' (given as --features)",
    )


def test_csv_needs_a_target(tmp_path):
    _write_series(tmp_path / "s.csv")
    _fails(tmp_path, "forecast", "--csv", tmp_path / "s.csv", match="--csv needs --target")


def test_too_few_rows_for_the_window(tmp_path):
    _write_series(tmp_path / "s.csv", rows=30)
    _fails(
        tmp_path,
        *_on_csv(tmp_path),
        "--window",
        25,
        match="window of 25 plus a horizon of 1 needs 26",
    )


def test_non_numeric_feature(tmp_path):
    _write_series(tmp_path / "s.csv", note=["high"] + ["1.5"] * 119)
    _fails(
        tmp_path,
        *_on_csv(tmp_path),
        "--features",
        "level,note",
        match="Column 'note'",
    )
    # Left out of the default features, and said so:
    result = _run(
        *_on_csv(tmp_path),
        *FAST,
        "--out",
        tmp_path / "ok",
    )
    assert "Left out (not numeric): note" in result.output


def test_nan_only_column(tmp_path):
    _write_series(tmp_path / "s.csv", empty=[np.nan] * 120)
    _fails(
        tmp_path,
        *_on_csv(tmp_path),
        "--features",
        "level,empty",
        match="'empty' of",
    )


def test_missing_values_need_a_fill(tmp_path):
    frame = _write_series(tmp_path / "s.csv")
    frame.loc[[10, 11, 50], "driver"] = np.nan
    frame.to_csv(tmp_path / "s.csv", index=False)
    _fails(
        tmp_path,
        *_on_csv(tmp_path),
        match="'driver': 3 missing, the first in row 10",
    )
    _run(
        *_on_csv(tmp_path),
        *FAST,
        "--fill",
        "interpolate",
        "--out",
        tmp_path / "ok",
    )


def test_corrupt_and_missing_files(tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"\x00\xff\xfe garbage \x00" * 50)
    _fails(
        tmp_path,
        "forecast",
        "--csv",
        tmp_path / "bad.csv",
        "--target",
        "x",
        match="not a readable CSV file",
    )
    _fails(
        tmp_path,
        "forecast",
        "--csv",
        tmp_path / "none.csv",
        "--target",
        "x",
        match="No such CSV file",
    )


def test_bad_dates(tmp_path):
    frame = _write_series(tmp_path / "s.csv")
    frame["date"] = frame["date"].astype(str)
    frame.loc[5, "date"] = "yesterday"
    frame.to_csv(tmp_path / "s.csv", index=False)
    _fails(
        tmp_path,
        *_on_csv(tmp_path),
        "--date-col",
        "date",
        match="Column 'date'",
    )


def test_predict_errors(tmp_path):
    from rnnkit import Sequential
    from rnnkit.layers import Dense

    plain = tmp_path / "plain.rnnkit"
    Sequential([Dense(1, input_shape=(2,))]).save(plain)
    result = _run("predict", plain, "--csv", tmp_path / "x.csv", expect_ok=False)
    assert result.exit_code != 0 and "no task rnnkit predict knows" in result.output

    frame = _write_series(tmp_path / "s.csv")
    out = tmp_path / "out"
    _run(*_on_csv(tmp_path), *FAST, "--out", out)
    frame.drop(columns="driver").to_csv(tmp_path / "short.csv", index=False)
    result = _run("predict", out / "model.rnnkit", "--csv", tmp_path / "short.csv", expect_ok=False)
    assert result.exit_code != 0 and "no column 'driver'" in result.output
    frame.iloc[:3].to_csv(tmp_path / "few.csv", index=False)
    result = _run("predict", out / "model.rnnkit", "--csv", tmp_path / "few.csv", expect_ok=False)
    assert result.exit_code != 0 and "the model reads the last 5" in result.output
    result = _run("predict", out / "model.rnnkit", expect_ok=False)
    assert result.exit_code != 0 and "--csv FILE" in result.output
