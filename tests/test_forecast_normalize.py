"""Normalising many series for one network: log windows, seasonal indices, retraining on all
rows. Each checked against numpy by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rnnkit.cli import main
from rnnkit.forecast import (
    ForecastSettings,
    forecast_next,
    load_panel,
    prepare,
    seasonal,
    train_forecast,
)

SEASON = 4


def _table(series=6, rows=48, seed=0):
    """Positive quarterly-like series: trend × a seasonal pattern × noise, levels 10 to 1000."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(series):
        t = np.arange(rows)
        pattern = np.array([1.2, 0.9, 0.8, 1.1])[t % SEASON]
        level = 10 ** (1 + 2 * s / max(series - 1, 1))
        y = level * (1 + 0.01 * t) * pattern * np.exp(rng.normal(0, 0.02, rows))
        frames.append(pd.DataFrame({"unique_id": f"s{s}", "ds": t + 1, "y": y}))
    return pd.concat(frames, ignore_index=True)


def _settings(**extra):
    base = dict(
        target="y",
        date_col="ds",
        id_col="unique_id",
        window=8,
        horizon=4,
        units=4,
        epochs=3,
        ensemble=1,
        calendar=False,
        normalize="log-window",
    )
    return ForecastSettings(**(base | extra))


def test_seasonal_indices_recover_an_exact_multiplicative_pattern():
    t = np.arange(40)
    pattern = np.array([1.3, 0.8, 0.9, 1.0])
    pattern = pattern / pattern.mean()
    y = 50.0 * pattern[t % 4]  # no trend: the moving average is exactly 50
    np.testing.assert_allclose(seasonal.indices(y, 4), pattern, rtol=1e-12)
    noise = np.random.default_rng(1).normal(100, 1, 40)  # no seasonality: fails the test
    np.testing.assert_array_equal(seasonal.indices(noise, 4), np.ones(4))
    assert not seasonal.is_seasonal(y[:8], 4)  # fewer than three seasons


def test_the_network_reads_each_window_relative_to_its_last_log_value():
    frame = _table()
    panel = load_panel(frame, "y", None, "ds", "unique_id")
    data = prepare(panel, _settings())
    x = data.train.model_inputs()  # (n, window, 1)
    s, first = data.train.series[5], data.train.first[5]
    raw = panel.target[s][first - 8 : first]
    np.testing.assert_allclose(x[5, :, 0], np.log(raw) - np.log(raw[-1]), atol=1e-5)
    future = panel.target[s][first : first + 4]
    np.testing.assert_allclose(data.train.y[5], np.log(future) - np.log(raw[-1]), atol=1e-5)


def test_deseasonalised_windows_divide_by_the_indices_of_the_training_rows():
    frame = _table()
    panel = load_panel(frame, "y", None, "ds", "unique_id")
    settings = _settings(deseason=True, season=SEASON)
    data = prepare(panel, settings)
    s = 2
    train_end = data.cuts[s].train_end
    index = seasonal.indices(panel.target[s][:train_end], SEASON)
    assert not np.allclose(index, 1)  # the planted pattern passes the test
    expected = np.log(panel.target[s] / index[np.arange(len(panel.target[s])) % SEASON])
    np.testing.assert_allclose(data.scaled.target[s], expected, rtol=1e-12)


@pytest.mark.parametrize("deseason", [False, True])
def test_a_saved_log_window_model_repeats_its_test_forecasts(deseason):
    frame = _table()
    panel = load_panel(frame, "y", None, "ds", "unique_id")
    # no validation rows: training estimates the indices on the rows predict is given
    season = SEASON if deseason else None
    settings = _settings(deseason=deseason, season=season, test_size=4, val_size=0)
    result = train_forecast(panel, settings)
    before = frame[frame.groupby("unique_id").cumcount(ascending=False) >= 4]
    table = forecast_next(result.model, before)
    got = np.stack([g["forecast"].to_numpy() for _, g in table.groupby("unique_id")])
    np.testing.assert_allclose(got, result.test_forecast, rtol=1e-4)
    assert np.all(got > 0)


def test_retrain_all_trains_the_members_for_the_epochs_early_stopping_chose():
    frame = _table()
    panel = load_panel(frame, "y", None, "ds", "unique_id")
    settings = _settings(retrain_all=True, ensemble=2, epochs=12, patience=2)
    result = train_forecast(panel, settings)
    probe, *members = result.history
    best = int(np.argmin(probe["val_loss"])) + 1
    assert [len(h["loss"]) for h in members] == [best, best]
    assert all("val_loss" not in h for h in members)  # trained on every row, none held out


def test_log_window_refuses_a_target_at_or_below_zero_naming_the_series(tmp_path):
    frame = _table()
    frame.loc[frame.index[frame["unique_id"] == "s3"][5], "y"] = 0.0
    frame.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["forecast", "--csv", str(tmp_path / "t.csv"), "--normalize", "log-window",
         "--horizon", "4", "--window", "8", "--epochs", "1", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "series 's3' has a value of 0" in result.output
    assert not out.exists()


def test_deseason_needs_log_window_and_a_season():
    with pytest.raises(ValueError, match="needs normalize='log-window' and a season"):
        ForecastSettings(deseason=True, season=4).check()
    with pytest.raises(ValueError, match="needs normalize='log-window' and a season"):
        ForecastSettings(deseason=True, normalize="log-window").check()


def test_the_cli_trains_a_log_window_model_and_records_it(tmp_path):
    _table().to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["forecast", "--csv", str(tmp_path / "t.csv"), "--normalize", "log-window",
         "--deseason", "--season", "4", "--retrain-all", "--horizon", "4", "--window", "8",
         "--epochs", "2", "--ensemble", "1", "--units", "4", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["normalize"] == "log-window"
    assert metrics["model"]["smape"] is not None


def test_log_window_bands_are_relative_and_stay_above_zero():
    """A log-window model's band is forecast·exp(±w·s): above 0, and lo·hi = forecast²; the
    saved model writes the same band for the next rows."""
    frame = _table()
    panel = load_panel(frame, "y", None, "ds", "unique_id")
    settings = _settings(levels=(80, 95), val_size=8, test_size=4)
    result = train_forecast(panel, settings)
    for lo, hi in result.test_bands.values():
        assert (lo > 0).all()
        np.testing.assert_allclose(lo * hi, result.test_forecast**2, rtol=1e-9)
    before = frame[frame.groupby("unique_id").cumcount(ascending=False) >= 4]
    table = forecast_next(result.model, before)
    np.testing.assert_allclose(table["lo_80"] * table["hi_80"], table["forecast"] ** 2, rtol=1e-9)
    lo, _ = result.test_bands[80]
    got = np.stack([g["lo_80"].to_numpy() for _, g in table.groupby("unique_id")])
    np.testing.assert_allclose(got, lo, rtol=1e-4)
