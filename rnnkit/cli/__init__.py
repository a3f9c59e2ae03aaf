"""The `rnnkit` command line: one module per command, each a thin layer over the library."""

from __future__ import annotations

import click

from rnnkit.cli.bench import bench
from rnnkit.cli.classify import classify
from rnnkit.cli.demo import demo
from rnnkit.cli.explain import explain
from rnnkit.cli.export import export
from rnnkit.cli.forecast import forecast
from rnnkit.cli.generate import generate
from rnnkit.cli.predict import predict
from rnnkit.cli.tag import tag


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnkit")
def main() -> None:
    """Recurrent neural networks you can read, check against Keras, and train on PyTorch."""


for command in (forecast, classify, generate, tag, predict, explain, export, demo, bench):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main()
