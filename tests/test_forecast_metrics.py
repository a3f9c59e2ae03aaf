"""rnnkit.forecast.metrics: hand-worked values, then utilsforecast.losses as the oracle."""

import numpy as np
import pandas as pd
import pytest
from utilsforecast import losses

from rnnkit.forecast.metrics import (
    combine_tables,
    coverage,
    insample_scale,
    mae,
    mase,
    msis,
    rmse,
    score_table,
    smape,
)

# Two forecasts of three steps, worked by hand below each score's test.
Y = np.array([[1.0, 2.0, 4.0], [0.0, 3.0, -1.0]])
YHAT = np.array([[2.0, 2.0, 1.0], [0.0, 1.0, 1.0]])
INSAMPLE = [np.array([1.0, 3.0, 2.0, 6.0]), np.array([5.0, 5.0, 5.0, 5.0])]  # 2nd: constant
LO = np.array([[0.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
HI = np.array([[3.0, 3.0, 3.0], [2.0, 2.0, 2.0]])


def test_mae_and_rmse_by_hand():
    # |errors|: row 0 is 1, 0, 3; row 1 is 0, 2, 2.
    np.testing.assert_allclose(mae(Y, YHAT), [4 / 3, 4 / 3])
    np.testing.assert_allclose(rmse(Y, YHAT), [np.sqrt(10 / 3), np.sqrt(8 / 3)])


def test_smape_by_hand_on_the_0_to_200_scale_with_0_over_0_as_0():
    # row 0: 200*1/3, 200*0/4, 200*3/5 -> (66.67 + 0 + 120) / 3
    # row 1: 0/0 -> 0, 200*2/4 = 100, 200*2/2 = 200 -> 100
    np.testing.assert_allclose(smape(Y, YHAT), [560 / 9, 100.0])
    assert smape(np.zeros(4), np.zeros(4)) == 0.0
    assert smape(np.array([0.0]), np.array([5.0])) == 200.0


def test_mase_by_hand_and_nan_for_a_constant_history():
    # row 0: naive in-sample MAE = (2 + 1 + 4) / 3 = 7/3, so MASE = (4/3) / (7/3) = 4/7.
    # With s = 2: (|2 - 1| + |6 - 3|) / 2 = 2, so MASE = 2/3. Row 1's history is constant.
    np.testing.assert_allclose(mase(Y, YHAT, INSAMPLE, season=1), [4 / 7, np.nan])
    np.testing.assert_allclose(mase(Y, YHAT, INSAMPLE, season=2), [2 / 3, np.nan])


def test_a_history_no_longer_than_the_season_has_no_scale():
    np.testing.assert_allclose(insample_scale([np.arange(4.0), np.arange(5.0)], 4), [np.nan, 4.0])


def test_coverage_by_hand_bounds_count_as_inside():
    # row 0: 1 in [0, 3], 2 in [2, 3] (on the bound), 4 not in [2, 3]; row 1: none inside.
    np.testing.assert_allclose(coverage(Y, LO, HI), [2 / 3, 0.0])


def test_msis_by_hand():
    # level 80: a = 0.2, 2/a = 10. Row 0: widths 3, 1, 1, one miss (4 - 3) * 10 -> IS 3, 1, 11,
    # mean 5, over the scale 7/3 -> 15/7. Row 1 has no scale.
    np.testing.assert_allclose(msis(Y, LO, HI, INSAMPLE, 1, level=80), [15 / 7, np.nan])
    # Row 1 alone, worked out: IS = 1 + 10, 1 + 10, 1 + 20 -> mean 43/3, scale 1 (history 0..3).
    assert msis(Y[1], LO[1], HI[1], np.arange(4.0), 1, level=80) == pytest.approx(43 / 3)


def test_one_forecast_gives_floats():
    assert mae(Y[0], YHAT[0]) == pytest.approx(4 / 3)
    assert mase(Y[0], YHAT[0], INSAMPLE[0], season=1) == pytest.approx(4 / 7)
    assert mase(Y[0], YHAT[0], [1.0, 3.0, 2.0, 6.0], season=1) == pytest.approx(4 / 7)
    assert isinstance(coverage(Y[0], LO[0], HI[0]), float)


def test_score_table_averages_series_and_counts_the_unscaled():
    table, overall = score_table(Y, YHAT, INSAMPLE, 1, ids=["a", "b"], intervals={80: (LO, HI)})
    assert list(table.index) == ["a", "b"]
    assert list(table.columns) == ["mae", "rmse", "smape", "mase", "coverage_80", "msis_80"]
    assert overall["smape"] == pytest.approx((560 / 9 + 100) / 2)
    assert overall["mase"] == pytest.approx(4 / 7)  # series b left out
    assert overall["msis_80"] == pytest.approx(15 / 7)
    assert overall["coverage_80"] == pytest.approx(1 / 3)
    assert (overall["series"], overall["no_scale"]) == (2, 1)


def test_combine_tables_weights_each_series_by_its_horizon():
    a = pd.DataFrame({"smape": [10.0, 20.0], "mase": [1.0, np.nan]})
    b = pd.DataFrame({"smape": [40.0], "mase": [2.0]})
    overall = combine_tables([a, b], horizons=[2, 6])
    assert overall["smape"] == pytest.approx((2 * 10 + 2 * 20 + 6 * 40) / 10)
    assert overall["mase"] == pytest.approx((2 * 1 + 6 * 2) / 8)  # the NaN row drops out
    assert (overall["series"], overall["points"], overall["no_scale"]) == (3, 10, 1)
    with pytest.raises(ValueError, match="one horizon per table, got 2 tables and 1 horizons"):
        combine_tables([a, b], horizons=[2])


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"y has shape \(2, 3\) but yhat has shape \(2, 4\)"):
        mae(Y, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"y has shape \(2, 3\) but hi has shape \(3,\)"):
        coverage(Y, LO, HI[0])
    with pytest.raises(ValueError, match=r"expected y of shape \(n, horizon\).*\(2, 3, 1\)"):
        smape(Y[..., None], YHAT[..., None])


def test_other_mistakes_say_the_fix():
    with pytest.raises(ValueError, match="expected 2 in-sample histories .* got 1"):
        mase(Y, YHAT, [INSAMPLE[0]], season=1)
    with pytest.raises(ValueError, match="season must be a whole number of steps >= 1, got 0"):
        mase(Y, YHAT, INSAMPLE, season=0)
    with pytest.raises(ValueError, match="lo above hi at 6 of 6 steps"):
        coverage(Y, HI, LO)
    with pytest.raises(ValueError, match=r"in percent, 1 <= level < 100 .*got 0.95"):
        msis(Y, LO, HI, INSAMPLE, 1, level=0.95)
    with pytest.raises(ValueError, match=r"pass y\[None\]"):
        score_table(Y[0], YHAT[0], INSAMPLE[0], 1)


# ------------------------------------------------------------ utilsforecast as the oracle


@pytest.fixture(scope="module")
def random_series():
    """40 series of varied length, a season of 4, a 6-step test with an 80% interval."""
    rng = np.random.default_rng(7)
    n, horizon, season, level = 40, 6, 4, 80
    insample = [rng.normal(10, 3, rng.integers(9, 30)).cumsum() for _ in range(n)]
    y = np.stack([x[-1] + rng.normal(0, 3, horizon).cumsum() for x in insample])
    yhat = y + rng.normal(0, 2, y.shape)
    y[0, :2], yhat[0, :2] = 0.0, 0.0  # sMAPE's 0/0 in both libraries
    width = rng.uniform(0.5, 4, y.shape)
    lo, hi = yhat - width, yhat + width
    ids = [f"s{i:02d}" for i in range(n)]
    test = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, horizon),
            "ds": np.concatenate([np.arange(len(x), len(x) + horizon) for x in insample]),
            "y": y.ravel(),
            "m": yhat.ravel(),
            f"m-lo-{level}": lo.ravel(),
            f"m-hi-{level}": hi.ravel(),
        }
    )
    train = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, [len(x) for x in insample]),
            "ds": np.concatenate([np.arange(len(x)) for x in insample]),
            "y": np.concatenate(insample),
        }
    )
    return locals()


def _oracle(frame):
    return frame.set_index("unique_id")["m"].to_numpy()


def test_point_scores_match_utilsforecast(random_series):
    s = random_series
    y, yhat, test = s["y"], s["yhat"], s["test"]
    np.testing.assert_allclose(mae(y, yhat), _oracle(losses.mae(test, ["m"])))
    np.testing.assert_allclose(rmse(y, yhat), _oracle(losses.rmse(test, ["m"])))
    # utilsforecast's sMAPE is on the 0-1 scale: ours is 200 times it.
    np.testing.assert_allclose(smape(y, yhat), 200 * _oracle(losses.smape(test, ["m"])))
    theirs = losses.mase(test, ["m"], seasonality=s["season"], train_df=s["train"])
    np.testing.assert_allclose(mase(y, yhat, s["insample"], s["season"]), _oracle(theirs))


def test_interval_scores_match_utilsforecast(random_series):
    s = random_series
    y, lo, hi, level, test = s["y"], s["lo"], s["hi"], s["level"], s["test"]
    theirs = _oracle(losses.coverage(test, ["m"], level=level))
    np.testing.assert_allclose(coverage(y, lo, hi), theirs)
    # MSIS is utilsforecast's Winkler (interval) score over the MASE scale.
    winkler = _oracle(losses.winkler_score(test, ["m"], level=level))
    by_series = s["train"].groupby("unique_id")["y"]
    scale = by_series.apply(lambda x: x.diff(s["season"]).abs().mean()).to_numpy()
    np.testing.assert_allclose(msis(y, lo, hi, s["insample"], s["season"], level), winkler / scale)


def test_one_table_combined_is_score_tables_overall(random_series):
    s = random_series
    table, overall = score_table(s["y"], s["yhat"], s["insample"], s["season"])
    combined = combine_tables([table], [s["horizon"]])
    for column in table:
        assert combined[column] == pytest.approx(overall[column])


def test_combined_smape_is_utilsforecasts_mean_over_all_points(random_series):
    # Two groups with different horizons, pooled; utilsforecast scores them as one series.
    s = random_series
    y, yhat, insample = s["y"], s["yhat"], s["insample"]
    short, _ = score_table(y[:15, :2], yhat[:15, :2], insample[:15], 1)
    long, _ = score_table(y[15:], yhat[15:], insample[15:], 1)
    points = pd.DataFrame(
        {
            "unique_id": "all",
            "y": np.concatenate([y[:15, :2].ravel(), y[15:].ravel()]),
            "m": np.concatenate([yhat[:15, :2].ravel(), yhat[15:].ravel()]),
        }
    )
    pooled = combine_tables([short, long], [2, s["horizon"]])["smape"]
    assert pooled == pytest.approx(200 * _oracle(losses.smape(points, ["m"]))[0])
