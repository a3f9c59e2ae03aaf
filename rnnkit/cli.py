"""The `rnnkit` command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnkit")
def main() -> None:
    """Recurrent neural networks you can read, check against Keras, and train on PyTorch."""


@main.command()
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


if __name__ == "__main__":  # pragma: no cover
    main()
