"""`rnnkit demo`: the models from the notes, shown and trained."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--epochs",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Epochs for the small training run at the end.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
def demo(epochs: int, seed: int) -> None:
    """Build the models from the notes, show them, and train a small SimpleRNN."""
    from rnnkit.demo import run_demo

    run_demo(epochs=epochs, seed=seed)
