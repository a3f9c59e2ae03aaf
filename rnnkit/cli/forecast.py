"""`rnnkit forecast`: train on a table's past rows, score on its last ones (rnnkit/forecast.py)."""

from __future__ import annotations

import click

from rnnkit._task import memory_sentence
from rnnkit.cli._common import progress, set_threads, training_options, user_errors
from rnnkit.forecast import CELLS, ForecastSettings


def _columns(values: tuple[str, ...]) -> list[str] | None:
    """`--features a,b --features c` -> `["a", "b", "c"]`."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


DEFAULTS = ForecastSettings()
DATE_NAMES = ("date", "datetime", "time", "timestamp", "day")


@click.command()
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Your table (CSV). Default: Seattle's daily weather 2012-2015, which ships with rnnkit.",
)
@click.option("--target", help="The column to forecast. Default with the built-in data: temp_max.")
@click.option(
    "--features",
    multiple=True,
    help="Input columns, comma-separated or repeated. Default: every numeric column.",
)
@click.option("--date-col", help="The column of dates (default: one named date/time, if any).")
@click.option(
    "--window",
    default=DEFAULTS.window,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows the model sees per forecast.",
)
@click.option(
    "--horizon",
    default=DEFAULTS.horizon,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows ahead to forecast.",
)
@click.option(
    "--patience",
    default=DEFAULTS.patience,
    show_default=True,
    type=click.IntRange(min=1),
    help="Epochs without improvement before stopping.",
)
@click.option(
    "--validation-split",
    default=DEFAULTS.validation_split,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Rows after the training rows.",
)
@click.option(
    "--test-split",
    default=DEFAULTS.test_split,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="The last rows, kept for the final score.",
)
@click.option(
    "--season",
    type=click.IntRange(min=1),
    help="Rows per season for the seasonal-naive baseline (default: from the dates).",
)
@click.option(
    "--fill",
    default=DEFAULTS.fill,
    show_default=True,
    type=click.Choice(["error", "ffill", "interpolate", "drop"]),
    help="What to do with missing values.",
)
@click.option(
    "--calendar/--no-calendar",
    default=DEFAULTS.calendar,
    show_default=True,
    help="Give the model the day of the year (needs dates).",
)
@click.option(
    "--predict-change/--predict-level",
    default=DEFAULTS.predict_change,
    show_default=True,
    help="Learn the change from the last value, or the value itself.",
)
@click.option(
    "--ensemble",
    default=DEFAULTS.ensemble,
    show_default=True,
    type=click.IntRange(min=1),
    help="Train this many models from different seeds and average them.",
)
@training_options(DEFAULTS, CELLS, out="rnnkit-forecast")
def forecast(csv_path, target, features, date_col, out_dir, threads, **options) -> None:
    """Train a recurrent network to forecast a column of a table, and score it on the last rows.

    With no options: Seattle's daily weather, tomorrow's temp_max from the last 14 days.
    Prints the model, a progress bar and the test scores beside the persistence and
    seasonal-naive forecasts; writes the model, metrics.json and forecast.png to --out.
    """
    from rich.console import Console

    from rnnkit.forecast import ForecastSettings, load_series, read_table, train_forecast

    console = Console()
    set_threads(threads)
    with user_errors():
        if csv_path is not None and target is None:
            raise ValueError("--csv needs --target, the column to forecast.")
        frame, source = read_table(csv_path, date_col)
        if date_col is None:
            if csv_path is None:
                date_col = "date"
            else:
                date_col = next((c for c in frame.columns if str(c).lower() in DATE_NAMES), None)
                if date_col is not None:
                    frame, source = read_table(csv_path, date_col)
        settings = ForecastSettings(
            target=target or "temp_max",
            features=_columns(features),
            date_col=date_col,
            **options,
        )
        settings.check()
        series = load_series(
            frame, settings.target, settings.features, date_col, settings.fill, source
        )
        _describe_series(console, source, series, settings)

        def member(index, count, seed):
            if count > 1:
                console.print(
                    f"Model {index + 1} of {count} (seed {seed}); their forecasts are averaged"
                )

        result = train_forecast(
            series,
            settings,
            callbacks=[progress(console)],
            summary=lambda m: m.summary(),
            on_member=member,
        )
        _report(console, result)
        from rnnkit.forecast import write_outputs

        paths = write_outputs(result, out_dir)
    console.print("Wrote " + ", ".join(paths.values()))


def _describe_series(console, source, series, settings) -> None:
    rows = len(series.target)
    span = ""
    if series.dates is not None:
        span = f", {series.dates.iloc[0].date()} to {series.dates.iloc[-1].date()}"
    console.print(f"Data: {source} ({rows} rows{span})")
    extra = " + day of year (sin, cos)" if settings.calendar and series.dates is not None else ""
    console.print(f"Features: {', '.join(series.names)}{extra}")
    if series.skipped:
        console.print(f"Left out (not numeric): {', '.join(series.skipped)}")
    goal = "the change in" if settings.predict_change else ""
    console.print(
        f"Target: {goal} {settings.target} {settings.horizon} row(s) after each window of "
        f"{settings.window}".replace("  ", " ")
    )


def _report(console, result) -> None:
    from rich.table import Table

    metrics = result.metrics
    table = Table(title=f"Test set: {metrics['test_windows']} forecasts of {metrics['target']}")
    table.add_column("forecast")
    table.add_column("RMSE", justify="right")
    table.add_column("MAE", justify="right")
    table.add_column("RMSE vs persistence", justify="right")
    base = metrics["persistence"]["rmse"]
    rows = [
        (f"model ({result.settings.cell})", metrics["model"]),
        ("persistence (the last value)", metrics["persistence"]),
    ]
    if "seasonal_naive" in metrics:
        seasonal = metrics["seasonal_naive"]
        rows.append((f"seasonal naive ({seasonal['meaning']})", seasonal))
    for name, scores in rows:
        # persistence is exact when the target stands still over the test rows: no ratio then
        change = f"{scores['rmse'] / base - 1:+.1%}" if base else "n/a"
        table.add_row(name, f"{scores['rmse']:.4f}", f"{scores['mae']:.4f}", change)
    console.print(table)
    horizon = memory_sentence(metrics["memory_horizon"], "The model's forecast", "row")
    console.print(horizon, soft_wrap=True)
    skill = metrics["skill_vs_persistence"]
    if skill is None:
        console.print(
            f"Persistence is exact on the test rows ({metrics['target']} does not change "
            "there), so the model has no percentage against it (n/a); score it on a test "
            "period where the target moves (--test-split)."
        )
        return
    verdict = "below" if skill > 0 else "above"
    console.print(f"Model RMSE is {abs(skill):.1%} {verdict} persistence.")
