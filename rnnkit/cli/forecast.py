"""`rnnkit forecast`: train on a table's past rows, score on its last ones (rnnkit/forecast.py)."""

from __future__ import annotations

import re

import click

from rnnkit._task import memory_sentence
from rnnkit.cli._common import progress, set_threads, training_options, user_errors
from rnnkit.forecast.settings import (
    CELLS,
    LOSSES,
    NORMALIZATIONS,
    STRATEGIES,
    ForecastSettings,
)


def _columns(values) -> list[str] | None:
    """`--features a,b --features c` -> `["a", "b", "c"]`."""
    if isinstance(values, str):
        values = (values,)
    names = [name.strip() for value in values or () for name in value.split(",") if name.strip()]
    return names or None


NUMBER = re.compile(r"^\d+(\.\d+)?$")


class _ListsOfNumbers(click.Command):
    """`--levels 80 95` as the forecasting tools write it: the numbers after the option are
    joined into one value (`80,95`) before click reads the line."""

    greedy = ("--levels",)

    def parse_args(self, ctx, args):
        joined, i = [], 0
        while i < len(args):
            joined.append(args[i])
            if args[i] in self.greedy:
                values = []
                while i + 1 < len(args) and NUMBER.match(args[i + 1]):
                    values.append(args[i + 1])
                    i += 1
                if values:
                    joined.append(",".join(values))
            i += 1
        return super().parse_args(ctx, joined)


def _levels(text: str | None) -> tuple:
    if not text:
        return ()
    levels = []
    for part in text.split(","):
        try:
            number = float(part)
        except ValueError:
            raise ValueError(
                f"--levels takes percentages such as --levels 80 95; got {part!r}."
            ) from None
        levels.append(int(number) if number.is_integer() else number)
    return tuple(levels)


DEFAULTS = ForecastSettings()


@click.command(cls=_ListsOfNumbers)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Your table (CSV). Default: Seattle's daily weather 2012-2015, which ships with rnnkit.",
)
@click.option(
    "--target",
    help="The column to forecast (several, comma-separated: one series each). Default with "
    "the built-in data: temp_max; a table of unique_id, ds, y: y.",
)
@click.option(
    "--features",
    multiple=True,
    help="Input columns, comma-separated or repeated. Default: every numeric column.",
)
@click.option("--date-col", help="The column of dates (default: one named date/ds/time, if any).")
@click.option(
    "--id-col",
    help="The column naming each row's series, for a table of many series (default: "
    "unique_id if the table has it).",
)
@click.option(
    "--future-cols",
    help="Columns known ahead (calendar, promotions), comma-separated: predict needs their "
    "values for the rows it forecasts. Every other numeric column is a past covariate.",
)
@click.option(
    "--static-cols",
    help="Per-series attributes (constant within a series), comma-separated; text becomes "
    "an embedding.",
)
@click.option(
    "--strategy",
    default=DEFAULTS.strategy,
    show_default=True,
    type=click.Choice(list(STRATEGIES)),
    help="direct: one output per step ahead; recursive: one step, fed back.",
)
@click.option(
    "--levels",
    help="Prediction intervals at these levels, e.g. --levels 80 95 (calibrated on the "
    "validation windows).",
)
@click.option(
    "--test-size",
    type=click.IntRange(min=0),
    help="Rows per series scored at the end (default: --test-split of the rows for one "
    "series, the horizon for many). 0: train on all history.",
)
@click.option(
    "--val-size",
    type=click.IntRange(min=0),
    help="Rows per series before the test rows, for early stopping and the intervals "
    "(default: --validation-split for one series, the horizon for many).",
)
@click.option(
    "--loss",
    default=DEFAULTS.loss,
    show_default=True,
    type=click.Choice(list(LOSSES)),
)
@click.option(
    "--normalize",
    default=DEFAULTS.normalize,
    show_default=True,
    type=click.Choice(list(NORMALIZATIONS)),
    help="series: standardise each series on its training rows; log-window: log values, each "
    "window relative to its last row (many series of different levels and trends).",
)
@click.option(
    "--deseason/--no-deseason",
    default=DEFAULTS.deseason,
    show_default=True,
    help="Take out each series' multiplicative seasonality (lag --season) before the network "
    "and put it back after (with --normalize log-window).",
)
@click.option(
    "--retrain-all/--no-retrain-all",
    default=DEFAULTS.retrain_all,
    show_default=True,
    help="After early stopping picks the epochs, train again on every row, validation included.",
)
@click.option(
    "--backtest",
    type=click.IntRange(min=1),
    help="Score on this many rolling origins instead of one test period.",
)
@click.option(
    "--step",
    "backtest_step",
    type=click.IntRange(min=1),
    help="Rows between backtest origins (default: the horizon).",
)
@click.option(
    "--refit",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Retrain every this many backtest origins (0: train once, at the first).",
)
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
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Train data-parallel on this many local processes (gloo; each batch split among "
    "them, --threads each). Rank 0 prints and writes the outputs.",
)
@training_options(DEFAULTS, CELLS, out="rnnkit-forecast")
def forecast(workers, **arguments) -> None:
    """Train a recurrent network to forecast one series or many, and score it on the last rows.

    With no options: Seattle's daily weather, tomorrow's temp_max from the last 14 days.
    A table of many series: --id-col (unique_id, ds, y are found by themselves). Prints
    the model, a progress bar and the test scores beside the persistence and
    seasonal-naive forecasts; writes the model, metrics.json and forecast.png to --out.
    """
    if workers == 1:
        _forecast(**arguments)
        return
    from rnnkit import distribution

    # A mistake in the input ends with one line here, before any process starts.
    _forecast(**arguments, check_only=True)
    # Every process runs the whole command: the same data, settings and seed, so the
    # same model; fit splits each batch among them (rnnkit.distribution).
    distribution.launch(_forecast_worker, workers, (arguments,), threads=arguments["threads"])


def _forecast_worker(arguments) -> None:
    _forecast(**arguments)


def _forecast(
    csv_path,
    target,
    features,
    date_col,
    id_col,
    future_cols,
    static_cols,
    levels,
    backtest,
    backtest_step,
    refit,
    out_dir,
    threads,
    check_only=False,
    **options,
) -> None:
    """`forecast` in one process (of `--workers`: rank 0 alone prints and writes).
    `check_only`: read the table and check the settings, silently, and stop there."""
    from rich.console import Console

    from rnnkit import distribution
    from rnnkit.forecast import find_column, load_panel, read_table
    from rnnkit.forecast.data import DATE_NAMES, ID_NAMES, check_ids

    console = Console(quiet=check_only or not distribution.is_writer())
    set_threads(threads)
    with user_errors():
        # The file's rows in its order first: reading the dates sorts them by date, and a
        # message naming rows (an empty id) must name the file's rows.
        frame, source = read_table(csv_path, None)
        if csv_path is not None:
            nixtla = {"unique_id", "ds", "y"} <= set(frame.columns)
            id_col = id_col or find_column(frame, ID_NAMES)
            target = target or ("y" if nixtla else None)
            if target is None:
                raise ValueError("--csv needs --target, the column to forecast.")
            if id_col in frame.columns:
                check_ids(frame, id_col, source)
            date_col = date_col or find_column(frame, DATE_NAMES)
            if date_col is not None:
                frame, source = read_table(csv_path, date_col)
        elif date_col is None:
            date_col = "date"
        targets = _columns(target or "temp_max")
        settings = ForecastSettings(
            target=targets[0] if len(targets) == 1 else targets,
            features=_columns(features),
            date_col=date_col,
            id_col=id_col,
            future_cols=_columns(future_cols) or [],
            static_cols=_columns(static_cols) or [],
            levels=_levels(levels),
            **options,
        )
        settings.check()
        panel = load_panel(
            frame,
            settings.target,
            settings.features,
            date_col,
            id_col,
            settings.future_cols,
            settings.static_cols,
            settings.fill,
            source,
        )
        if check_only:
            return
        _describe(console, source, panel, settings)
        if backtest is not None:
            _backtest(console, panel, settings, backtest, backtest_step, refit, out_dir)
            return

        def member(count, seeds):
            if count > 1:
                console.print(
                    f"{count} models (seeds {seeds[0]}-{seeds[-1]}) train together; their "
                    "forecasts are averaged"
                )

        from rnnkit.forecast import train_forecast, write_outputs

        result = train_forecast(
            panel,
            settings,
            callbacks=[progress(console)],
            summary=lambda m: m.summary() if distribution.is_writer() else None,
            on_member=member,
        )
        _report(console, result)
        paths = distribution.rank_zero_writes(write_outputs)(result, out_dir)
    console.print("Wrote " + ", ".join((paths or {}).values()))


def _describe(console, source, panel, settings) -> None:
    rows = panel.rows
    dates = [d for d in panel.dates if d is not None]
    span = ""
    if dates and hasattr(dates[0].iloc[0], "date"):
        first = min(d.iloc[0] for d in dates).date()
        last = max(d.iloc[-1] for d in dates).date()
        span = f", {first} to {last}"
    many = f"{len(panel)} series, " if len(panel) > 1 or panel.id_col else ""
    console.print(f"Data: {source} ({many}{rows} rows{span})")
    has_dates = bool(dates) and hasattr(dates[0].iloc[0], "date")
    extra = " + day of year (sin, cos)" if settings.calendar and has_dates else ""
    console.print(f"Features: {', '.join(panel.names)}{extra}")
    if panel.future:
        console.print(f"Known ahead (future covariates): {', '.join(panel.future)}")
    if panel.static is not None:
        console.print(f"Static (per series): {', '.join(panel.static.columns)}")
    if panel.skipped:
        console.print(f"Left out (not numeric): {', '.join(panel.skipped)}")
    goal = "the change in" if settings.predict_change else ""
    how = "" if settings.strategy == "direct" else " (recursively, one row at a time)"
    console.print(
        f"Target: {goal} {panel.target_name} {settings.horizon} row(s) after each window of "
        f"{settings.window}{how}".replace("  ", " ")
    )


def _backtest(console, panel, settings, count, step, refit, out_dir) -> None:
    from rich.table import Table

    from rnnkit.forecast.backtest import backtest

    def shown(entry):
        model = entry["model"]
        console.print(
            f"Origin {entry['origin']}{' (trained)' if entry['refit'] else ''}: "
            f"model MAE {model['mae']:.4g}, persistence MAE {entry['persistence']['mae']:.4g}"
        )

    result, model = backtest(
        panel, settings, count, step, refit, callbacks=[progress(console)], on_origin=shown
    )
    table = Table(title=f"Backtest: mean over {count} origins")
    for column in ("forecast", "MAE", "RMSE", "sMAPE", "MASE"):
        table.add_column(column, justify="left" if column == "forecast" else "right")
    for name, scores in result.mean.items():
        if name == "intervals":
            continue
        values = [scores[k] for k in ("mae", "rmse", "smape", "mase")]
        table.add_row(name, *("n/a" if v is None else f"{v:.4f}" for v in values))
    console.print(table)
    console.print(
        f"Training took {result.fit_seconds:.1f} s, forecasting and scoring all origins "
        f"{result.forecast_seconds:.2f} s."
    )
    from rnnkit.saving import write_outputs

    metrics = {"backtest": result.to_dict(), "settings": _settings_dict(settings)}
    from rnnkit import distribution

    paths = distribution.rank_zero_writes(write_outputs)(out_dir, model, metrics, {})
    console.print("Wrote " + ", ".join((paths or {}).values()))


def _settings_dict(settings) -> dict:
    import dataclasses

    return dataclasses.asdict(settings)


def _report(console, result) -> None:
    from rich.table import Table

    metrics = result.metrics
    if metrics.get("left_out"):
        left = metrics["left_out"]
        shown = "; ".join(f"{k} ({v})" for k, v in list(left.items())[:3])
        more = f" and {len(left) - 3} more" if len(left) > 3 else ""
        console.print(
            f"Left out {len(left)} series too short to train on: {shown}{more} (all in "
            "metrics.json, left_out).",
            soft_wrap=True,
        )
    if not metrics["test_windows"]:
        console.print("No test rows (--test-size 0): the model trained on all history.")
        return
    many = metrics["series"] > 1
    title = f"Test set: {metrics['test_windows']} forecasts of {metrics['target']}"
    table = Table(title=title + (f" ({metrics['series']} series)" if many else ""))
    table.add_column("forecast")
    # many series are judged the M competitions' way (sMAPE, MASE); one by RMSE and MAE
    scores_shown = ("rmse", "mae", "smape", "mase") if many else ("rmse", "mae")
    for column in scores_shown:
        table.add_column(column.upper().replace("SMAPE", "sMAPE"), justify="right")
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
        cells = [scores[k] for k in scores_shown]
        table.add_row(name, *("n/a" if v is None else f"{v:.4f}" for v in cells), change)
    console.print(table)
    for level, record in metrics.get("intervals", {}).items():
        console.print(
            f"{level}% intervals held the truth {record['coverage']:.1%} of the time "
            f"(MSIS {record['msis']:.3g})"
        )
    if metrics.get("memory_horizon"):
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
    if many:
        model, naive = metrics["model"]["mase"], metrics["persistence"]["mase"]
        if model is not None and naive is not None:
            console.print(f"Mean MASE over series: model {model:.3f}, persistence {naive:.3f}.")
