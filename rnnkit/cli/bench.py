"""`rnnkit bench m3`: the M3 competition, rnnkit beside seasonal naive, Theta and AutoETS."""

from __future__ import annotations

import click

from rnnkit.cli._common import set_threads, user_errors


@click.group()
def bench() -> None:
    """Benchmarks on the standard forecasting competitions."""


@bench.command()
@click.option(
    "--frequency",
    "frequencies",
    multiple=True,
    type=click.Choice(["yearly", "quarterly", "monthly", "other"]),
    help="Run only this frequency (repeat for several). Default: all four, 3,003 series.",
)
@click.option(
    "--series",
    type=click.IntRange(min=1),
    help="A reproducible sample of this many series per frequency (default: all).",
)
@click.option(
    "--stats/--no-stats",
    default=True,
    show_default=True,
    help="Run Theta and AutoETS (statsforecast, pip install 'rnnkit[stats]') beside rnnkit.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="The sample's seed.")
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="CPU threads for torch.",
)
@click.option(
    "--out",
    "out_dir",
    default="rnnkit-bench",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where m3.md (the table) and m3.json go.",
)
def m3(frequencies, series, stats, seed, threads, out_dir) -> None:
    """The M3 competition's series: the competition's own train/test split and horizons
    (yearly 6, quarterly 8, monthly 18, other 8), sMAPE and MASE per frequency and overall."""
    import json
    import shlex
    import sys

    from rich.console import Console
    from rich.markdown import Markdown

    from rnnkit.forecast.benchmark import FREQUENCIES, run_m3
    from rnnkit.saving import write_folder

    console = Console()
    set_threads(threads)
    command = "rnnkit bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    with user_errors():
        result = run_m3(frequencies or FREQUENCIES, series, stats, seed, progress=console.print)
        table = result.markdown(command.strip())
        console.print(Markdown(table))
        files = {
            "table": ("m3.md", table.encode()),
            "numbers": ("m3.json", json.dumps(result.to_dict(), indent=2).encode()),
        }
        paths = write_folder(out_dir, files)
    console.print("Wrote " + ", ".join(paths.values()))
