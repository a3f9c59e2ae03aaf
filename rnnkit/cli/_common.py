"""What every command shares: user errors as messages, threads, the progress bar."""

from __future__ import annotations

import contextlib

import click


@contextlib.contextmanager
def user_errors():
    """A mistake in the input (a missing column, too few rows) or a file that cannot be read
    or written (a full disk, a read-only folder) ends with one line and exit status 1, not
    a traceback."""
    try:
        yield
    except OSError as err:  # FileNotFoundError, PermissionError, a full disk (ENOSPC), ...
        raise click.ClickException(_one_line(_os_message(err))) from None
    except (ValueError, TypeError, ModuleNotFoundError) as err:
        raise click.ClickException(_one_line(str(err))) from None


def _one_line(message: str) -> str:
    """Some messages quote another library's, which may run over several lines (pandas' date
    parser lists its advice line by line); a command's error stays on one."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _os_message(err: OSError) -> str:
    """`Permission denied: 'out/model.rnnkit'` rather than `[Errno 13] Permission denied: ...`."""
    if not err.strerror:
        return str(err)
    return err.strerror + (f": '{err.filename}'" if err.filename else "")


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def progress(console):
    from rnnkit.callbacks import TrainingProgress

    return TrainingProgress(console=console)


def print_frame(console, frame, title: str | None = None) -> None:
    """A DataFrame as a table that wraps long texts instead of breaking the columns."""
    from rich.table import Table

    table = Table(title=title)
    for column in frame.columns:
        numeric = frame[column].dtype.kind in "iuf"
        table.add_column(str(column), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(str(value) for value in row))
    console.print(table)


def training_options(defaults, cells, out: str, seed_option: str = "--seed"):
    """The options every training command shares, with defaults from its settings dataclass.

    Adds --cell, --units, --epochs, --batch-size, --learning-rate, --threads, the seed
    (`seed_option`, passed as `seed`, or `random_seed` for --random-seed) and --out
    (passed as `out_dir`).
    """
    seed_name = seed_option.lstrip("-").replace("-", "_")
    options = [
        click.option(
            "--cell",
            default=defaults.cell,
            show_default=True,
            type=click.Choice(list(cells)),
            help="The recurrent layer.",
        ),
        click.option(
            "--units", default=defaults.units, show_default=True, type=click.IntRange(min=1)
        ),
        click.option(
            "--epochs",
            default=defaults.epochs,
            show_default=True,
            type=click.IntRange(min=1),
            help="At most this many; training stops when validation stops improving.",
        ),
        click.option(
            "--batch-size",
            default=defaults.batch_size,
            show_default=True,
            type=click.IntRange(min=1),
        ),
        click.option(
            "--learning-rate",
            default=defaults.learning_rate,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
        ),
        click.option(
            "--threads",
            default=1,
            show_default=True,
            type=click.IntRange(min=1),
            help="CPU threads for torch. Small recurrent models train fastest on one: each "
            "step's matrices are too small to split, and a second thread only waits.",
        ),
        click.option(
            seed_option,
            seed_name,
            default=defaults.seed,
            show_default=True,
            type=int,
            help="Seeds the weights, the shuffling and any random draws.",
        ),
        click.option(
            "--out",
            "out_dir",
            default=out,
            show_default=True,
            type=click.Path(file_okay=False),
            help="Where the model and its metrics go: all of them or, if writing fails, none. "
            "Files of other names in the folder are left alone.",
        ),
    ]

    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate
