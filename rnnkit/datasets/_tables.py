"""Tables of time series: real ones that ship with `vega_datasets`, and the user's CSV files.

Everything here reads local files; nothing is downloaded.
"""

from __future__ import annotations

import os

import pandas as pd


def _vega_file(name: str) -> str:
    from vega_datasets import local_data

    return getattr(local_data, name.replace("-", "_")).filepath


def seattle_weather() -> pd.DataFrame:
    """Daily weather in Seattle, 2012-01-01 to 2015-12-31 (1,461 days; NOAA, via `vega_datasets`).

    Columns: `date`, `precipitation` (mm), `temp_max` and `temp_min` (°C), `wind` (m/s),
    and `weather`, a label (sun, rain, drizzle, fog, snow).

    Example:
        >>> frame = seattle_weather()
        >>> frame.shape, frame["date"].iloc[0].date().isoformat()
        ((1461, 6), '2012-01-01')
    """
    return load_csv(_vega_file("seattle-weather"), date_col="date")


def stocks(symbol: str | None = None) -> pd.DataFrame:
    """Monthly closing prices, 2000-01 to 2010-03, of MSFT, AMZN, IBM, GOOG and AAPL.

    Args:
        symbol: one company's ticker for a `date, price` table in time order; None gives
            the long table `symbol, date, price` of all five.

    Example:
        >>> stocks("IBM").columns.tolist()
        ['date', 'price']
    """
    frame = load_csv(_vega_file("stocks"), date_col="date")
    if symbol is None:
        return frame
    symbols = sorted(frame["symbol"].unique())
    if symbol not in symbols:
        raise ValueError(f"stocks: no symbol {symbol!r}; the table has {', '.join(symbols)}.")
    rows = frame[frame["symbol"] == symbol]
    return rows.drop(columns="symbol").sort_values("date").reset_index(drop=True)


def us_employment() -> pd.DataFrame:
    """US employment by industry, monthly 2006-01 to 2015-12, in thousands (BLS, seasonally
    adjusted; via `vega_datasets`): 22 series stacked in a long table for a global forecast.
    (The source's `nonfarm_change`, the month-on-month change of `nonfarm`, is left out: it
    is derived from another series, not an industry.)

    Columns: `industry` (the series), `month` (its first day), `employment`.

    Example:
        >>> frame = us_employment()
        >>> frame.shape, frame["industry"].nunique()
        ((2640, 3), 22)
    """
    wide = load_csv(_vega_file("us-employment"), date_col="month").drop(columns="nonfarm_change")
    long = wide.melt(id_vars="month", var_name="industry", value_name="employment")
    return long[["industry", "month", "employment"]].reset_index(drop=True)


BUILTIN = {"seattle-weather": seattle_weather}


def load_csv(path, date_col: str | None = None) -> pd.DataFrame:
    """Read a CSV file of rows in time order, with clear errors for what commonly goes wrong.

    Args:
        path: the file.
        date_col: a column of dates; parsed, checked, and the rows sorted by it.

    Returns:
        A DataFrame, with `date_col` (if given) as datetimes, in time order.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No such CSV file: '{path}'.")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"'{path}' is not a readable CSV file: {err}".rstrip(".") + ".") from None
    if frame.empty:
        raise ValueError(f"'{path}' has no data rows.")
    if date_col is not None:
        require_columns(frame, [date_col], path, "--date-col")
        if pd.api.types.is_integer_dtype(frame[date_col]):  # periods 1, 2, 3, ...: kept
            return frame.sort_values(date_col, kind="stable").reset_index(drop=True)
        try:
            dates = pd.to_datetime(frame[date_col])
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"Column {date_col!r} of '{path}' is not all dates ({err}). Fix those rows, or "
                "leave out the date column."
            ) from None
        if dates.isna().any():
            row = int(dates.isna().to_numpy().argmax())
            raise ValueError(f"Column {date_col!r} of '{path}' has no date on line {row + 2}.")
        frame[date_col] = dates
        if not dates.is_monotonic_increasing:
            frame = frame.sort_values(date_col, kind="stable").reset_index(drop=True)
    return frame


def require_columns(frame: pd.DataFrame, columns, path: str, option: str) -> None:
    """A clear error for each column that `frame` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"'{path}' has no column {', '.join(map(repr, missing))} (given as {option}); its "
            f"columns are: {', '.join(map(repr, frame.columns))}."
        )


def numeric_columns(frame: pd.DataFrame, columns, path: str) -> pd.DataFrame:
    """`frame[columns]` as float64, or an error naming the first non-numeric column and value."""
    out = {}
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise ValueError(
                f"Column {column!r} of '{path}' is not numeric: line {row + 2} holds "
                f"{frame[column].iloc[row]!r}. Only numbers can be features or targets; leave "
                "the column out or fix the file."
            )
        if values.isna().all():
            raise ValueError(
                f"Column {column!r} of '{path}' holds no values at all; leave it out of the "
                "features."
            )
        out[column] = values.astype("float64")
    return pd.DataFrame(out)
