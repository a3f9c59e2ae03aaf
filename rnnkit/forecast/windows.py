"""Each series cut in time and scaled on its own training rows, then windows that never
cross from one series into the next.

    series s:  | train ..................... | validation | test |
               0                        train_end     val_end  rows

A window reads `window` consecutive rows of one series and its target is the `horizon`
rows after them; a training window's target lies in the training rows, a validation
window's in the validation rows, a test window's in the test rows (their inputs may reach
back, as a forecast made then could). Each series' columns are standardised with the mean
and spread of its training rows only, so no series' level or test rows leak into another's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.data import StandardScaler, make_windows, scaler_from_config
from rnnkit.forecast.data import Panel, calendar_features, has_calendar
from rnnkit.forecast.settings import ForecastSettings


@dataclass
class Cut:
    """Where one series' parts end: train `[0, train_end)`, validation `[train_end, val_end)`,
    test `[val_end, rows)`."""

    train_end: int
    val_end: int
    rows: int


def cut(rows: int, settings: ForecastSettings, many: bool) -> Cut:
    """The parts of a series of `rows` rows (see `ForecastSettings.val_size`/`test_size`)."""
    if settings.test_size is not None:
        test = settings.test_size
    else:
        test = settings.horizon if many else int(round(rows * settings.test_split))
    if settings.val_size is not None:
        validation = settings.val_size
    else:
        validation = settings.horizon if many else int(round(rows * settings.validation_split))
    return Cut(rows - test - validation, rows - test, rows)


def train_horizon(settings: ForecastSettings) -> int:
    """Rows each training target spans: the horizon, or 1 for the recursive strategy."""
    return 1 if settings.strategy == "recursive" else settings.horizon


def too_short(rows: int, part: Cut, settings: ForecastSettings) -> str | None:
    """Why a series of `rows` rows cannot be used, or None."""
    need = settings.window + train_horizon(settings)
    end = part.val_end if settings.retrain_all else part.train_end  # rows the model fits
    if end < need:
        held = rows - end
        return (
            f"{rows} rows: {held} are held out for validation and test, and a window of "
            f"{settings.window} plus a horizon of {train_horizon(settings)} needs {need} more "
            f"to train on ({need + held} in all)"
        )
    return None


@dataclass
class Scaled:
    """A panel in the units the network sees.

    Attributes:
        inputs: per series `(rows, features)` float32: the standardised features, then
            the calendar's sin and cos when there are dates. With `log`, the target's
            column holds the target's log (deseasonalised) instead.
        target: per series `(rows,)` float64, the target in network units.
        center, spread: per series, the target's mean and spread on its training rows:
            `value = scaled * spread + center` (0 and 1 with `log`).
        scalers: per series, its `StandardScaler` config (saved with the model).
        future_index: the columns of `inputs` holding the future covariates.
        log: the target is `log(y / index)`, and each window is read relative to its last
            row (`normalize="log-window"`).
        indices: per series, its multiplicative seasonal indices `(season,)`, or None.
        target_col: the target's column in `inputs` (-1 when it is not an input).
    """

    inputs: list[np.ndarray]
    target: list[np.ndarray]
    center: np.ndarray
    spread: np.ndarray
    scalers: list[dict]
    future_index: list[int]
    log: bool = False
    indices: list | None = None
    target_col: int = -1

    def values(self, levels: np.ndarray, series: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Network-unit levels `(n, horizon)` of `series` `(n,)` at row numbers `rows`
        `(n, horizon)` back in the table's units."""
        if not self.log:
            return levels * self.spread[series][:, None] + self.center[series][:, None]
        out = np.exp(levels)
        if self.indices is not None and len(series):
            season = len(self.indices[0])
            factors = np.stack([self.indices[s] for s in series])  # (n, season)
            out = out * np.take_along_axis(factors, rows % season, axis=1)
        return out


def fit_scalers(panel: Panel, cuts: list[Cut]) -> list[dict]:
    """One scaler per series, fitted on its training rows only (the target's last when it
    is not among the features)."""
    configs = []
    for values, target, part in zip(panel.values, panel.target, cuts):
        columns = panel.names if panel.target_index >= 0 else [*panel.names, panel.target_name]
        table = values if panel.target_index >= 0 else np.column_stack([values, target])
        configs.append(StandardScaler(columns).fit(table[: part.train_end]).get_config())
    return configs


def scale(
    panel: Panel, scalers: list[dict], calendar: bool, normalize: str = "series", indices=None
) -> Scaled:
    """`panel` in network units with the given per-series scalers (`fit_scalers`).

    `normalize="log-window"` takes the target's log (divided first by its seasonal
    `indices`, one `(season,)` array per series, when given): a global model then reads
    every series on one scale, and each window relative to its last row.
    """
    log = normalize == "log-window"
    if log:
        _check_positive(panel)
    inputs, targets, centers, spreads = [], [], [], []
    for s, (values, target, dates, config) in enumerate(
        zip(panel.values, panel.target, panel.dates, scalers)
    ):
        scaler = scaler_from_config(config)
        i = panel.target_index if panel.target_index >= 0 else len(panel.names)
        center, spread = float(scaler.shift[i]), float(scaler.scale[i])
        features = len(panel.names)
        scaled = (values - scaler.shift[:features]) / scaler.scale[:features]  # (rows, F)
        if log:
            rows = np.arange(len(target))
            index = 1.0 if indices is None else indices[s][rows % len(indices[s])]
            level = np.log(target / index)
            center, spread = 0.0, 1.0
            scaled[:, panel.target_index] = level
        else:
            level = (target - center) / spread
        if calendar and has_calendar(dates):
            scaled = np.column_stack([scaled, calendar_features(dates)])
        inputs.append(scaled.astype(np.float32))
        targets.append(level)
        centers.append(center)
        spreads.append(spread)
    future_index = [panel.names.index(c) for c in panel.future]
    return Scaled(
        inputs,
        targets,
        np.array(centers),
        np.array(spreads),
        scalers,
        future_index,
        log=log,
        indices=None if indices is None else [np.asarray(i, dtype=np.float64) for i in indices],
        target_col=panel.target_index,
    )


def _check_positive(panel: Panel) -> None:
    if panel.target_index < 0:
        raise ValueError(
            "normalize='log-window' reads each window relative to the target's last value, "
            "so the target must be one of the inputs; add it to --features."
        )
    for name, target in zip(panel.ids, panel.target):
        if (target <= 0).any():
            raise ValueError(
                f"normalize='log-window' takes the target's log, and series {name!r} has a "
                f"value of {target.min():g}; every value must be above 0. Use --normalize "
                "series for targets that reach 0 or below."
            )


@dataclass
class Windows:
    """Windows of many series, stacked.

    Attributes:
        x: `(n, window, features)` float32, what the recurrent layer reads.
        y: `(n, horizon)` float32, the scaled target (the change since the window's last
            row with `predict_change`); `truth` in the table's units.
        series: `(n,)` which series (its position in the panel) each window comes from.
        first: `(n,)` the row, within its series, of each window's first target.
        base: `(n,)` the scaled target at the window's last row.
        ahead: `(n, horizon, future)` float32, the future covariates at the target rows
            (None without future covariates).
        codes: `(n, columns)` int64, the series' text static columns as vocabulary codes
            (None without them); numbers: `(n, columns)` float32, its numeric static
            columns, standardised across series (None without them).
    """

    x: np.ndarray
    y: np.ndarray
    truth: np.ndarray
    series: np.ndarray
    first: np.ndarray
    base: np.ndarray
    ahead: np.ndarray | None = None
    codes: np.ndarray | None = None
    numbers: np.ndarray | None = None
    relative: int = -1  # a column the network reads minus its value at the window's last row

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, rows) -> Windows:
        """The windows at positions `rows`."""
        rows = np.asarray(rows, dtype=int)
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return Windows(
            self.x[rows],
            self.y[rows],
            self.truth[rows],
            self.series[rows],
            self.first[rows],
            self.base[rows],
            pick(self.ahead),
            pick(self.codes),
            pick(self.numbers),
            self.relative,
        )

    def model_inputs(self):
        """What the network takes: `x`, or `[x, ahead (flattened), codes, numbers]`, those
        it has, in that order (`model.build_network`'s inputs)."""
        x = self.x
        if self.relative >= 0:
            x = x.copy()
            x[:, :, self.relative] -= x[:, -1:, self.relative]  # (n, window): 0 at the end
        extra = []
        if self.ahead is not None:
            extra.append(self.ahead.reshape(len(self.ahead), -1))  # (n, horizon * future)
        extra += [a for a in (self.codes, self.numbers) if a is not None]
        return [x, *extra] if extra else x


def windows(
    scaled: Scaled,
    panel: Panel,
    rows: list[tuple[int, int]],
    settings: ForecastSettings,
    horizon: int,
    static=(None, None),
    keep: list[int] | None = None,
) -> Windows:
    """The windows of series `keep` (default all) whose targets lie within `rows[s]`
    (a `(low, high)` pair of rows per series), `horizon` targets each.

    `static` is `(codes, numbers)`, each None or one row per series of the panel.
    """
    parts = {name: [] for name in ("x", "y", "truth", "series", "first", "base", "ahead")}
    for s in range(len(panel)) if keep is None else keep:
        low, high = rows[s]
        if high - max(low, settings.window) < horizon:
            continue
        x, y, first = make_windows(
            scaled.inputs[s], settings.window, horizon, scaled.target[s], slice(low, high)
        )
        base = scaled.target[s][first - 1]
        if settings.predict_change:
            y = y - base[:, None]  # the change since the last row seen
        parts["x"].append(x)
        parts["y"].append(y.astype(np.float32))
        parts["truth"].append(panel.target[s][first[:, None] + np.arange(horizon)])
        parts["series"].append(np.full(len(first), s))
        parts["first"].append(first)
        parts["base"].append(base)
        if scaled.future_index:
            at = first[:, None] + np.arange(horizon)  # (n, horizon)
            parts["ahead"].append(scaled.inputs[s][at][:, :, scaled.future_index])
    if not parts["x"]:
        features = scaled.inputs[0].shape[1] if scaled.inputs else 0
        empty = Windows(
            np.zeros((0, settings.window, features), np.float32),
            np.zeros((0, horizon), np.float32),
            np.zeros((0, horizon)),
            np.zeros(0, int),
            np.zeros(0, int),
            np.zeros(0),
        )
        if scaled.future_index:
            empty.ahead = np.zeros((0, horizon, len(scaled.future_index)), np.float32)
        empty.codes, empty.numbers = (None if a is None else a[:0] for a in static)
        empty.relative = scaled.target_col if scaled.log else -1
        return empty
    series = np.concatenate(parts["series"])
    return Windows(
        x=np.concatenate(parts["x"]),
        y=np.concatenate(parts["y"]),
        truth=np.concatenate(parts["truth"]),
        series=series,
        first=np.concatenate(parts["first"]),
        base=np.concatenate(parts["base"]),
        ahead=np.concatenate(parts["ahead"]) if parts["ahead"] else None,
        codes=None if static[0] is None else static[0][series],
        numbers=None if static[1] is None else static[1][series],
        relative=scaled.target_col if scaled.log else -1,
    )
