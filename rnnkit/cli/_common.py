"""What every command shares: user errors as messages, threads, the progress bar."""

from __future__ import annotations

import contextlib

import click


@contextlib.contextmanager
def user_errors():
    """A mistake in the input (a missing column, too few rows) ends with its message and
    exit status 1, not a traceback."""
    try:
        yield
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, ModuleNotFoundError) as err:
        raise click.ClickException(str(err)) from None


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
