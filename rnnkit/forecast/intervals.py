"""Prediction intervals by split conformal calibration on the validation windows.

For each step ahead `k`, the absolute errors of the validation forecasts, each divided by
its series' scale (`error_scale`: the mean absolute change from one row to the next over
its training rows, MASE's denominator), are sorted; the interval at level `L` is the
forecast ± the `⌈(n + 1)·L/100⌉`-th smallest of the `n` errors, times the series' scale.
A log-window model's errors are
log ratios `log(y / ŷ)`, scaled by the mean absolute change of the series' logs, and its
band is `ŷ·exp(±w·scale)`: relative, and above 0 as the series is.
Dividing by how much a series moves per step (rather than by the spread of its level, which
a trend inflates) puts the errors of calm and volatile, flat and trending series on one
footing, so the pooled quantile suits each of them. If the test errors are exchangeable
with the validation errors, the interval holds the truth at least `L`% of the time,
whatever the network and whatever the noise's shape; the `+ 1` makes that hold for a
finite `n`.

Why not quantile heads trained with the pinball loss: their coverage is only as good as
their fit, and a network fits its training windows more closely than new ones, so heads
trained there come out too narrow; conformal widths are measured on windows the weights
were not fitted to. (The validation windows do choose when training stops, which can
narrow the widths a little; the test report gives the coverage reached.)

    >>> import numpy as np
    >>> errors = np.arange(1.0, 20.0)[:, None]  # 19 validation windows, 1 step: |e| = 1..19
    >>> widths(errors, [90])[90].tolist()       # the ceil(20 * 0.9) = 18th smallest
    [18.0]
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def widths(errors: np.ndarray, levels) -> dict:
    """The half-widths per step at each level, from the validation errors.

    Args:
        errors: `(n, horizon)`, truth − forecast on the validation windows, each divided by
            its series' `error_scale`.
        levels: percentages, e.g. `[80, 95]`.

    Returns:
        `{level: (horizon,) half-widths}`, in units of the series' scale. With too few
        windows for a level (`⌈(n + 1)·L/100⌉ > n`) the largest error is used and a
        warning says so.
    """
    errors = np.sort(np.abs(np.asarray(errors, dtype=np.float64)), axis=0)  # (n, horizon)
    n = len(errors)
    if n == 0:
        raise ValueError(
            "Prediction intervals are calibrated on the validation windows, and there are "
            "none: give validation rows (--val-size of at least the horizon), or leave out "
            "--levels."
        )
    out = {}
    for level in levels:
        rank = math.ceil((n + 1) * level / 100)  # 1-based
        if rank > n:
            warnings.warn(
                f"{n} validation windows are too few for a {level}% interval (it needs "
                f"{math.ceil(level / (100 - level))}); the largest validation error is used, "
                "so its coverage may fall short. Give more validation rows (--val-size).",
                stacklevel=2,
            )
            rank = n
        out[level] = errors[rank - 1]
    return out


def error_scale(history: np.ndarray) -> float:
    """A series' scale for its forecast errors: the mean absolute change between consecutive
    training values (MASE's naive scale, `metrics.insample_scale`); its standard deviation
    if it never changes step to step, else 1."""
    from rnnkit.forecast.metrics import insample_scale

    history = np.asarray(history, dtype=np.float64)
    scale = float(insample_scale([history], 1)[0])  # NaN when 0 or under two values
    if not scale > 0:
        scale = float(history.std()) if len(history) else 0.0
    return scale if scale > 0 else 1.0


def bands(forecast: np.ndarray, spread: np.ndarray, half_widths: dict, log: bool = False) -> dict:
    """`{level: (lo, hi)}`, each `(n, horizon)`: `forecast ± half_width × scale`, or with
    `log` (a log-window model, whose errors are log ratios) `forecast × exp(±half_width ×
    scale)`: a relative band, which stays above 0 as the series does.

    Args:
        forecast: `(n, horizon)` in the table's units.
        spread: `(n,)` each forecast's series `error_scale` (of its logs with `log`).
        half_widths: from `widths` (or a saved model's metadata).
    """
    out = {}
    for level, width in half_widths.items():
        half = np.asarray(width, dtype=np.float64)[None, :]
        half = half * np.asarray(spread)[:, None]
        if log:
            out[level] = (forecast * np.exp(-half), forecast * np.exp(half))
        else:
            out[level] = (forecast - half, forecast + half)
    return out


def column_names(level) -> tuple[str, str]:
    """The output columns of an interval: `lo_80`, `hi_80` (`lo_97.5` for a fraction)."""
    text = f"{level:g}"
    return f"lo_{text}", f"hi_{text}"
