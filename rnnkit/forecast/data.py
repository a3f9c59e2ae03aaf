"""A table made ready for a forecast: one series or many, checked, in time order.

One rule says what every column is:

    target      the column forecast (`--target`); several names: one series per column
    id          which series a row belongs to (`--id-col`; `unique_id` is found by itself)
    date        when (`--date-col`; `date`, `ds`, ... are found by themselves)
    future      numeric columns known ahead (`--future-cols`: calendar, promotions,
                holidays); `predict` needs their values for the rows it forecasts
    static      per-series attributes (`--static-cols`), constant within a series; text
                becomes an embedding, numbers enter as they are
    past        every other numeric column: known up to now, and only up to now

The calendar (the day of the year as a point on a circle) comes from the dates by itself.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"unique_id": ["a"] * 3 + ["b"] * 3, "y": [1.0, 2, 3, 7, 8, 9]})
    >>> panel = load_panel(frame, "y", id_col="unique_id")
    >>> panel.ids, [list(t) for t in panel.target]
    (['a', 'b'], [[1.0, 2.0, 3.0], [7.0, 8.0, 9.0]])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rnnkit.data import fill_missing
from rnnkit.datasets._tables import numeric_columns, require_columns

ID_NAMES = ("unique_id",)  # the column name Nixtla's tools use, recognised without --id-col
DATE_NAMES = ("date", "datetime", "time", "timestamp", "day", "ds")
SINGLE = "series"  # the id of a table's one series when it has no id column


@dataclass
class Panel:
    """Series of one table, each in time order, ready for windows.

    Attributes:
        ids: one name per series.
        values: per series, `(rows, features)` float64 in the table's units: the columns a
            window reads, in the order of `names` (the target among them unless left out).
        target: per series, `(rows,)` float64.
        names: the feature columns; `future` of them are known ahead, the others past.
        target_name: the target column (for several target columns: "value").
        target_index: where the target sits among `names`, or -1.
        future: the columns known ahead.
        dates: per series, the dates (a pandas Series) or None when the table has none.
        static: one row per series (index `ids`) of the static columns, or None.
        skipped: non-numeric columns left out.
        id_col, date_col: the table's columns for them (None when absent).
    """

    ids: list[str]
    values: list[np.ndarray]
    target: list[np.ndarray]
    names: list[str]
    target_name: str
    target_index: int
    future: list[str] = field(default_factory=list)
    dates: list[pd.Series | None] = field(default_factory=list)
    static: pd.DataFrame | None = None
    skipped: list[str] = field(default_factory=list)
    id_col: str | None = None
    date_col: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def past(self) -> list[str]:
        """The covariates known only up to now: the features other than target and future."""
        return [n for n in self.names if n != self.target_name and n not in self.future]

    @property
    def rows(self) -> int:
        return sum(len(t) for t in self.target)

    def subset(self, keep) -> Panel:
        """The panel with only the series at positions `keep`, in that order."""
        keep = list(keep)
        pick = lambda items: [items[i] for i in keep]  # noqa: E731
        static = None if self.static is None else self.static.iloc[keep]
        return Panel(
            pick(self.ids),
            pick(self.values),
            pick(self.target),
            self.names,
            self.target_name,
            self.target_index,
            self.future,
            pick(self.dates),
            static,
            self.skipped,
            self.id_col,
            self.date_col,
        )

    def head(self, rows: list[int]) -> Panel:
        """The panel with each series cut to its first `rows[i]` rows (a backtest's origin)."""
        cut = lambda items: [a[:n] if a is not None else None for a, n in zip(items, rows)]  # noqa: E731
        dates = [d.iloc[:n] if d is not None else None for d, n in zip(self.dates, rows)]
        return Panel(
            self.ids,
            cut(self.values),
            cut(self.target),
            self.names,
            self.target_name,
            self.target_index,
            self.future,
            dates,
            self.static,
            self.skipped,
            self.id_col,
            self.date_col,
        )


def find_column(frame: pd.DataFrame, names) -> str | None:
    """The first column of `frame` whose name, in lower case, is one of `names`."""
    return next((c for c in frame.columns if str(c).lower() in names), None)


def load_panel(
    frame: pd.DataFrame,
    target,
    features=None,
    date_col: str | None = None,
    id_col: str | None = None,
    future=(),
    static=(),
    fill: str = "error",
    source: str = "the table",
) -> Panel:
    """Pick, check and clean the columns of `frame` a forecast reads (see the module's rule).

    Args:
        frame: the table; several series stacked (`id_col`) or side by side (a list
            `target`), or one.
        target: the column to forecast, or a list of columns (one series each).
        features: the columns a window reads (default: every numeric column but the
            id, the dates and the static columns; the target is added).
        date_col, id_col: the dates, the series' names (either may be None).
        future: columns known ahead; static: per-series attributes.
        fill: missing values and missing dates: "error", "ffill", "interpolate" or "drop"
            (applied within each series).
        source: what messages call the table.

    Returns:
        A `Panel`. Raises a ValueError naming the rows, series or columns at fault, with
        the fix, for duplicate (id, date) rows, gaps in dates, NaN ids, a static column
        that changes within a series and non-numeric features.
    """
    future, static = list(future or ()), list(static or ())
    if isinstance(target, (list, tuple)):
        if len(target) == 1:
            target = target[0]
        else:
            if id_col is not None:
                raise ValueError(
                    f"Give several --target columns ({', '.join(target)}) or an --id-col "
                    f"({id_col!r}), not both: each is a way to hold several series."
                )
            frame, id_col, target = _stack_columns(frame, list(target), date_col, source)
    if date_col is not None:
        require_columns(frame, [date_col], source, "--date-col")
    require_columns(frame, [target], source, "--target")
    if id_col is not None:
        require_columns(frame, [id_col], source, "--id-col")
        frame = check_ids(frame, id_col, source)
    require_columns(frame, future, source, "--future-cols")
    require_columns(frame, static, source, "--static-cols")
    if target in future or target in static:
        raise ValueError(
            f"The target {target!r} is also given as a {'future' if target in future else 'static'}"
            " column; the target is forecast, not known ahead. Leave it out of that list."
        )
    reserved = {c for c in (id_col, date_col) if c is not None}
    names, skipped = _features(frame, target, features, reserved | set(static), source)
    for column in future:
        if column not in names:
            names.insert(len(names), column)
    columns = list(dict.fromkeys([*names, target]))
    numbers = numeric_columns(frame, columns, source)
    for column in (id_col, date_col):
        if column is not None:
            numbers[column] = frame[column].to_numpy()
    if date_col is not None:
        numbers = _checked_dates(numbers, date_col, id_col, source)
    groups = [("", numbers)] if id_col is None else list(numbers.groupby(id_col, sort=False))
    if id_col is not None:
        groups = sorted(groups, key=lambda item: str(item[0]))
    ids, values, targets, dates = [], [], [], []
    for name, rows in groups:
        label = SINGLE if id_col is None else str(name)
        rows = rows.reset_index(drop=True)
        if date_col is not None:
            rows = _regular_dates(rows, date_col, label, id_col, fill, source)
        rows = _filled(rows, columns, fill, label, id_col, source)
        ids.append(label)
        values.append(rows[names].to_numpy(np.float64))
        targets.append(rows[target].to_numpy(np.float64))
        dates.append(rows[date_col].reset_index(drop=True) if date_col is not None else None)
    return Panel(
        ids=ids,
        values=values,
        target=targets,
        names=names,
        target_name=target,
        target_index=names.index(target) if target in names else -1,
        future=future,
        dates=dates,
        static=_static_table(frame, static, id_col, ids, source),
        skipped=skipped,
        id_col=id_col,
        date_col=date_col,
    )


def _stack_columns(frame, targets, date_col, source):
    """Several target columns side by side -> one long table: `series` names the column."""
    require_columns(frame, targets, source, "--target")
    others = [c for c in frame.columns if c not in targets]
    long = frame.melt(id_vars=others, value_vars=targets, var_name="series", value_name="value")
    return long, "series", "value"


def check_ids(frame, id_col, source):
    """`frame`, or a ValueError naming its rows (counting from 0) whose id is empty."""
    missing = frame[id_col].isna()
    if missing.any():
        rows = np.flatnonzero(missing.to_numpy())
        shown = ", ".join(str(r) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
        raise ValueError(
            f"The id column {id_col!r} of '{source}' is empty in {len(rows)} row(s) (rows "
            f"{shown}, counting from 0); every row must say which series it belongs to. Fill "
            "in the id or remove those rows."
        )
    return frame


def _features(frame, target, features, reserved, source):
    skipped = []
    if features is None:
        names = []
        for column in frame.columns:
            if column in reserved:
                continue
            numeric = pd.to_numeric(frame[column], errors="coerce")
            if numeric.notna().any() and (numeric.notna() | frame[column].isna()).all():
                names.append(column)
            elif column != target:
                skipped.append(column)
        if target not in names:
            names.append(target)  # numeric_columns says why it is not numeric
        return names, skipped
    names = list(features)
    require_columns(frame, names, source, "--features")
    for column in reserved:
        if column in names:
            raise ValueError(
                f"--features includes {column!r}, the table's id, date or a static column; "
                "those enter the model by themselves. Leave it out of --features."
            )
    return names, skipped


def _checked_dates(numbers, date_col, id_col, source):
    """Sorted by (id, date); a ValueError naming repeated (id, date) rows."""
    dates = numbers[date_col]
    if not (pd.api.types.is_datetime64_any_dtype(dates) or pd.api.types.is_integer_dtype(dates)):
        parsed = pd.to_datetime(dates, errors="coerce")
        if parsed.isna().any():
            row = int(parsed.isna().to_numpy().argmax())
            raise ValueError(
                f"Column {date_col!r} of '{source}' holds {dates.iloc[row]!r} in row {row}, not "
                "a date; every row needs one. Fix or remove that row."
            )
        numbers = numbers.assign(**{date_col: parsed})
    keys = [date_col] if id_col is None else [id_col, date_col]
    repeated = numbers[numbers.duplicated(keys, keep=False)]
    if not repeated.empty:
        counts = repeated.groupby(keys, sort=True).size()
        shown = ", ".join(
            f"{_key(k)} ({n} rows)" for k, n in zip(counts.index[:3], counts.to_numpy()[:3])
        )
        more = f" and {len(counts) - 3} more" if len(counts) > 3 else ""
        if id_col is None:
            raise ValueError(
                f"'{source}' has more than one row for {len(counts)} date(s): {shown}{more}. A "
                "series has one row per date. If the table stacks several series, name the "
                "column that tells them apart with --id-col; otherwise combine each date's rows "
                "into one (their sum or mean)."
            )
        raise ValueError(
            f"'{source}' has more than one row for {len(counts)} (id, date) pair(s): "
            f"{shown}{more}. Each series has one row per date: remove the repeated rows or "
            "combine them (their sum or mean)."
        )
    return numbers.sort_values(keys, kind="stable").reset_index(drop=True)


def _key(key) -> str:
    if isinstance(key, tuple):
        return f"{key[0]} on {_when(key[1])}"
    return _when(key)


def _when(date) -> str:
    if isinstance(date, pd.Timestamp):
        return str(date.date()) if date == date.normalize() else str(date)
    return str(date)


def table_step(dates: pd.Series):
    """The spacing of `dates`: a pandas offset ("D", "MS") when regular, else the median gap."""
    if pd.api.types.is_integer_dtype(dates):
        return 1
    if len(dates) > 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns that the return type will change
            try:
                frequency = pd.infer_freq(dates)
            except (TypeError, ValueError):
                frequency = None
        if frequency is not None:
            return pd.tseries.frequencies.to_offset(frequency)
    return dates.diff().median() if len(dates) > 1 else None


def _regular_dates(rows, date_col, label, id_col, fill, source):
    """The series' rows on a regular grid of dates: gaps are an error, or filled."""
    dates = rows[date_col]
    if len(dates) < 3 or pd.api.types.is_integer_dtype(dates):
        if pd.api.types.is_integer_dtype(dates) and len(dates) > 1:
            grid = np.arange(dates.iloc[0], dates.iloc[-1] + 1)
            return _reindexed(rows, date_col, grid, label, id_col, fill, source)
        return rows
    step = table_step(dates)
    if not isinstance(step, pd.offsets.BaseOffset):  # a gap, or no regular spacing
        step = _step_between_gaps(dates)
        if step is None:
            return rows
    grid = pd.date_range(dates.iloc[0], dates.iloc[-1], freq=step)
    if len(grid) == len(dates) or not dates.isin(grid).all():
        return rows  # regular; or dates off any grid, which reindexing would drop
    return _reindexed(rows, date_col, grid, label, id_col, fill, source)


def _step_between_gaps(dates):
    """The spacing of dates with gaps: the one pandas infers for most runs of three
    consecutive dates (a month start is not 28 or 31 days), else the smallest gap; None
    when every gap is the same (nothing to fill)."""
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(min(len(dates) - 2, 50)):
            try:
                name = pd.infer_freq(dates.iloc[i : i + 3])
            except (TypeError, ValueError):
                name = None
            if name is not None:
                runs[name] = runs.get(name, 0) + 1
                if runs[name] == 3:  # three runs agree: enough
                    break
    if runs:
        return pd.tseries.frequencies.to_offset(max(runs, key=runs.get))
    gaps = dates.diff().iloc[1:]
    smallest = gaps.min()
    if (gaps != smallest).any() and smallest > pd.Timedelta(0):
        return pd.tseries.frequencies.to_offset(smallest)
    return None


def _reindexed(rows, date_col, grid, label, id_col, fill, source):
    missing = pd.Index(grid).difference(pd.Index(rows[date_col]))
    if len(missing) == 0:
        return rows
    which = f"series {label!r}" if id_col is not None else f"'{source}'"
    if fill in ("error", "drop"):
        shown = ", ".join(_when(d) for d in missing[:3]) + (" ..." if len(missing) > 3 else "")
        if fill == "drop":
            return rows  # 'drop' keeps the rows it has: windows then span the gaps
        raise ValueError(
            f"{which} misses {len(missing)} date(s) between its first and last ({shown}): a "
            "window would span the gap as if no time had passed. Add the rows, or let rnnkit "
            "insert them and fill their values: --fill ffill or --fill interpolate."
        )
    full = rows.set_index(date_col).reindex(grid)
    full.index.name = date_col
    if id_col is not None:
        full[id_col] = rows[id_col].iloc[0]
    return full.reset_index()


def _filled(rows, columns, fill, label, id_col, source):
    try:
        filled = fill_missing(rows, fill, columns=columns)
    except ValueError as err:
        if id_col is None:
            raise
        raise ValueError(f"Series {label!r}: {err}") from None
    if filled.empty:
        gaps = rows[columns].isna().sum()
        which = ", ".join(f"{c!r} ({n} missing)" for c, n in gaps[gaps > 0].items())
        raise ValueError(
            f"Filling by 'drop' removed all {len(rows)} rows of "
            f"{'series ' + repr(label) if id_col else repr(source)}: every row misses a value "
            f"in one of {which}. Leave the sparse column(s) out of the features (--features), "
            "or fill the gaps instead (--fill ffill or --fill interpolate)."
        )
    return filled


def _static_table(frame, static, id_col, ids, source):
    if not static:
        return None
    if id_col is None:
        raise ValueError(
            f"--static-cols ({', '.join(static)}) describe each series, but the table has one "
            "series (no --id-col). Name the id column, or give these as features."
        )
    table = frame[[id_col, *static]].copy()
    table[id_col] = table[id_col].astype(str)
    for column in static:
        varies = table.groupby(id_col)[column].nunique(dropna=False)
        varies = varies[varies > 1]
        if len(varies):
            raise ValueError(
                f"The static column {column!r} changes within {len(varies)} series (e.g. "
                f"{varies.index[0]!r}); a static column holds one value per series. Give it "
                "as a past covariate (leave it out of --static-cols) or fix the rows."
            )
    return table.groupby(id_col, sort=False).first().reindex(ids)


def calendar_features(dates: pd.Series) -> np.ndarray:
    """The day of the year as a point on the unit circle: `(rows, 2)`, sin and cos.

    31 December and 1 January end up next to each other, as they are in the weather.
    """
    angle = 2 * np.pi * (dates.dt.day_of_year.to_numpy() - 1) / 365.25
    return np.column_stack([np.sin(angle), np.cos(angle)])


def has_calendar(dates: pd.Series | None) -> bool:
    """Whether `dates` are dates (not None, not integer periods): the calendar needs them."""
    return dates is not None and pd.api.types.is_datetime64_any_dtype(dates)


def infer_season(dates: pd.Series | None) -> tuple[int | None, str]:
    """Rows per season, and its name, from the spacing of the dates (None if unclear)."""
    if not has_calendar(dates) or len(dates) < 3:
        return None, ""
    step = pd.Series(dates).diff().median()
    days = step / pd.Timedelta(days=1)
    span_years = (dates.iloc[-1] - dates.iloc[0]) / pd.Timedelta(days=365)
    if abs(days - 1 / 24) < 1e-6:
        return 24, "the same hour yesterday"
    if abs(days - 1) < 1e-6:
        if span_years >= 2:
            return 365, "the same day last year"
        return 7, "the same day last week"
    if abs(days - 7) < 1e-6:
        return 52, "the same week last year"
    if 28 <= days <= 31:
        return 12, "the same month last year"
    if 89 <= days <= 92:
        return 4, "the same quarter last year"
    return None, ""


def step_name(dates: pd.Series | None) -> str | None:
    """The spacing of the dates as text a model's metadata keeps ("D", "MS", "1" for integer
    periods), or None without dates."""
    if dates is None or len(dates) < 2:
        return None
    step = table_step(dates)
    if isinstance(step, pd.offsets.BaseOffset):
        return step.freqstr
    return str(step)


def next_dates(last, step: str | None, count: int):
    """The `count` dates after `last`, `step` apart (`step_name`'s text)."""
    if step is None:
        return None
    if isinstance(last, (int, np.integer)):
        return [int(last) + k * int(step) for k in range(1, count + 1)]
    try:
        offset = pd.tseries.frequencies.to_offset(step)
        return [last + k * offset for k in range(1, count + 1)]
    except ValueError:
        return [last + k * pd.Timedelta(step) for k in range(1, count + 1)]
