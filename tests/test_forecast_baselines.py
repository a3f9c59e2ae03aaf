"""rnnkit.forecast.baselines: naive forecasts by hand, statsforecast itself as the oracle."""

import sys

import numpy as np
import pandas as pd
import pytest

from rnnkit.forecast.baselines import (
    BaselinesUnavailable,
    persistence,
    persistence_many,
    seasonal_naive,
    seasonal_naive_many,
    statistical,
)


def test_persistence_holds_the_last_value():
    np.testing.assert_array_equal(persistence([3.0, 1.0, 4.0], 2), [4.0, 4.0])


def test_seasonal_naive_tiles_the_last_season():
    history = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    np.testing.assert_array_equal(seasonal_naive(history, 5, 3), [5.0, 6.0, 7.0, 5.0, 6.0])
    np.testing.assert_array_equal(seasonal_naive([1.0, 2.0, 3.0], 4, 3), [1.0, 2.0, 3.0, 1.0])
    np.testing.assert_array_equal(seasonal_naive(history, 3, 1), [7.0, 7.0, 7.0])


def test_seasonal_naive_shorter_than_a_season_is_persistence():
    np.testing.assert_array_equal(seasonal_naive([8.0, 9.0], 3, 4), [9.0, 9.0, 9.0])


def test_many_series_of_different_lengths():
    histories = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0]), np.array([7.0])]
    expected = [[3.0, 4.0, 3.0], [5.0, 6.0, 5.0], [7.0, 7.0, 7.0]]
    np.testing.assert_array_equal(seasonal_naive_many(histories, 3, 2), expected)
    np.testing.assert_array_equal(persistence_many(histories, 2), [[4, 4], [6, 6], [7, 7]])


def test_naive_mistakes_say_what_was_expected():
    with pytest.raises(ValueError, match=r"non-empty 1-D array, got shape \(0,\)"):
        persistence([], 3)
    with pytest.raises(ValueError, match=r"got shape \(2, 3\).*\*_many functions"):
        seasonal_naive(np.zeros((2, 3)), 3, 1)
    with pytest.raises(ValueError, match="expected horizon to be a whole number .* got 0"):
        persistence([1.0], 0)
    with pytest.raises(ValueError, match="expected season to be a whole number .* got 1.5"):
        seasonal_naive([1.0], 2, 1.5)


# ---------------------------------------------------------------- statsforecast as oracle


@pytest.fixture(scope="module")
def five_series():
    """Five quarterly-like series of different lengths, ids deliberately not sorted."""
    rng = np.random.default_rng(3)
    lengths = {"e": 24, "b": 31, "d": 17, "a": 40, "c": 28}
    return {
        uid: 50 + 0.5 * np.arange(n) + 5 * np.sin(np.arange(n) * np.pi / 2) + rng.normal(0, 1, n)
        for uid, n in lengths.items()
    }


def _long(histories):
    return pd.concat(
        pd.DataFrame({"unique_id": uid, "ds": np.arange(len(x)), "y": x})
        for uid, x in histories.items()
    )


def test_statistical_equals_statsforecast(five_series):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, Theta

    ours = statistical(five_series, horizon=6, season=4, levels=(95, 80))
    oracle = StatsForecast([Theta(season_length=4), AutoETS(season_length=4)], freq=1, n_jobs=1)
    theirs = oracle.forecast(df=_long(five_series), h=6, level=[80, 95]).set_index("unique_id")
    assert ours.ids == ["e", "b", "d", "a", "c"]
    for model in ("Theta", "AutoETS"):
        column = theirs[model].groupby(level=0)
        np.testing.assert_allclose(
            ours.forecasts[model], np.stack([column.get_group(uid) for uid in ours.ids])
        )
        for level in (80, 95):
            lo, hi = ours.intervals[model][level]
            for bound, name in ((lo, f"{model}-lo-{level}"), (hi, f"{model}-hi-{level}")):
                by_id = theirs[name].groupby(level=0)
                expected = np.stack([by_id.get_group(uid) for uid in ours.ids])
                np.testing.assert_allclose(bound, expected, rtol=1e-6)  # Theta's are float32
        assert ours.fallbacks[model] == {}
        assert ours.seconds[model] >= 0
    assert ours.wall_seconds >= sum(ours.seconds.values())


def test_a_long_table_in_any_row_order_gives_the_same(five_series):
    from_dict = statistical(five_series, 4, 4, models=("Theta",))
    shuffled = _long(five_series).sample(frac=1.0, random_state=0)
    from_table = statistical(shuffled, 4, 4, models="Theta")
    first_seen = list(pd.unique(shuffled["unique_id"]))
    assert from_table.ids == first_seen
    order = [from_dict.ids.index(uid) for uid in first_seen]
    np.testing.assert_allclose(from_table.forecasts["Theta"], from_dict.forecasts["Theta"][order])


def test_a_too_short_series_falls_back_to_naive_and_is_recorded(five_series):
    histories = {**five_series, "short": np.array([4.0, 6.0, 5.0])}
    result = statistical(histories, horizon=3, season=4, levels=(80,))
    for model in ("Theta", "AutoETS"):
        assert list(result.fallbacks[model]) == ["short"]
        assert "tiny datasets" in result.fallbacks[model]["short"]
        np.testing.assert_array_equal(result.forecasts[model][-1], [5.0, 5.0, 5.0])
        lo, hi = result.intervals[model][80]
        assert lo[-1, 0] < 5.0 < hi[-1, 0]
    alone = statistical(five_series, horizon=3, season=4)
    for model in ("Theta", "AutoETS"):
        np.testing.assert_allclose(result.forecasts[model][:-1], alone.forecasts[model])


def test_without_statsforecast_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsforecast", None)
    monkeypatch.setitem(sys.modules, "statsforecast.models", None)
    with pytest.raises(BaselinesUnavailable, match=r"not run.*pip install 'rnnkit\[stats\]'"):
        statistical({"a": np.arange(10.0)}, 2, 1)
    assert issubclass(BaselinesUnavailable, ModuleNotFoundError)


def test_statistical_mistakes_say_the_fix():
    with pytest.raises(ValueError, match=r"models among \['Theta', 'AutoETS'\], got \['ARIMA'\]"):
        statistical([np.arange(10.0)], 2, 1, models=("ARIMA",))
    with pytest.raises(ValueError, match=r"whole percents in 1..99.*got \[0.95\]"):
        statistical([np.arange(10.0)], 2, 1, levels=(0.95,))
    with pytest.raises(ValueError, match="series 'x' has NaN.*Fill the gaps"):
        statistical({"x": np.array([1.0, np.nan, 3.0, 4.0, 5.0])}, 2, 1)
    with pytest.raises(ValueError, match=r"columns unique_id, ds, y; \['ds'\] missing"):
        statistical(pd.DataFrame({"unique_id": ["a"], "y": [1.0]}), 2, 1)
