"""Classical multiplicative seasonality: taken out before the network, put back after.

A series passes the test when its autocorrelation at lag `s` lies outside the 90% band
`±1.645·sqrt((1 + 2·Σ_{k<s} r_k²) / n)` (the test the M3 competition's Theta method used).
Its indices are then the mean ratio of each value to a centred moving average over one
season (`2×s` when `s` is even), at each position in the season, scaled to mean 1; a
series that fails, or has fewer than three seasons, gets indices of 1.

    >>> import numpy as np
    >>> t = np.arange(48)
    >>> y = (10 + 0.1 * t) * np.where(t % 4 == 0, 1.3, 0.9)  # a quarterly peak
    >>> np.round(indices(y, 4), 2).tolist()
    [1.3, 0.9, 0.9, 0.9]
"""

from __future__ import annotations

import numpy as np


def is_seasonal(values: np.ndarray, season: int) -> bool:
    """Whether the autocorrelation at lag `season` is significant at 90% (see the module)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if season < 2 or n < 3 * season:
        return False
    centred = values - values.mean()
    energy = centred @ centred
    if energy == 0:
        return False
    acf = np.array([centred[k:] @ centred[: n - k] for k in range(season + 1)]) / energy
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(acf[1:season] ** 2)) / n)
    return bool(abs(acf[season]) > limit)


def indices(values: np.ndarray, season: int) -> np.ndarray:
    """`(season,)` multiplicative indices, `index[p]` for rows `t` with `t % season == p`
    (all 1 when the series is not seasonal). The values must be positive."""
    values = np.asarray(values, dtype=np.float64)
    if not is_seasonal(values, season):
        return np.ones(season)
    weights = np.ones(season + 1 - season % 2)  # a 2×s moving average when s is even
    if season % 2 == 0:
        weights[[0, -1]] = 0.5
    weights /= season
    trend = np.convolve(values, weights, mode="valid")  # (n - len(weights) + 1,)
    lead = (len(weights) - 1) // 2
    ratio = values[lead : lead + len(trend)] / trend
    position = (np.arange(len(trend)) + lead) % season
    found = np.array([ratio[position == p].mean() for p in range(season)])
    return found / found.mean()
