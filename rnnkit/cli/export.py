"""`rnnkit export MODEL --format onnx|keras|rnnkit --output PATH`: one saved model, another format.

`onnx` writes an ONNX graph (`rnnkit.export`) for ONNX Runtime and other engines; `keras`
writes Keras 3's `.keras` file (`model.save` with a `.keras` name); `rnnkit` writes
rnnkit's own file, e.g. to turn a Keras file into one.
"""

from __future__ import annotations

import os

import click

from rnnkit.cli._common import user_errors

FORMATS = ("onnx", "keras", "rnnkit")


def export_model(model_path, output, format) -> str:  # noqa: A002 (the option's name)
    """Load `model_path` and write it to `output` in `format`; returns what was written."""
    from rnnkit.saving import load_model

    _check_output(output, format)
    model = load_model(model_path, compile=format != "onnx")
    existed = os.path.exists(output)
    try:
        if format == "onnx":
            model.export(output, format="onnx")
        else:
            model.save(output)
    except BaseException:
        if not existed and os.path.exists(output):  # no half-written file left behind
            os.remove(output)
        raise
    return output


def _check_output(output: str, format: str) -> None:  # noqa: A002
    keras_name = output.lower().endswith(".keras")
    if format == "keras" and not keras_name:
        stem = os.path.splitext(output)[0]
        raise ValueError(
            f"--format keras writes a Keras 3 .keras file; got --output '{output}'. Name it "
            f"'{stem}.keras'."
        )
    if format == "rnnkit" and keras_name:
        raise ValueError(
            f"--format rnnkit writes rnnkit's own file, but '{output}' ends in .keras, the name "
            "for Keras' format. Use another name (e.g. model.rnnkit), or --format keras."
        )


@click.command()
@click.argument("model_path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "format_",
    required=True,
    type=click.Choice(FORMATS),
    help="onnx: an ONNX graph; keras: a Keras 3 .keras file; rnnkit: rnnkit's own file.",
)
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="The file to write.")
def export(model_path, format_, output) -> None:
    """Write a saved model (rnnkit's, .keras or .h5) as ONNX, Keras 3 or rnnkit's format."""
    with user_errors():
        written = export_model(model_path, output, format_)
    click.echo(f"Wrote {written} ({format_})")
