"""`rnnkit predict MODEL ...`: use a model saved by one of the training commands.

A saved model's `metadata["task"]` names the command that trained it; each task has a
handler here that reads the input that task needs (`--csv` rows or `--text` strings).
"""

from __future__ import annotations

import click

from rnnkit.cli._common import print_frame, user_errors


def write_csv(console, table, output) -> None:
    """`table` (a DataFrame) to `output`, atomically: the whole file or the old one."""
    import os

    from rnnkit.saving import atomic_write

    try:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)  # as --out does
        atomic_write(output, table.to_csv(index=False).encode())
    except OSError as err:
        if err.errno is None:  # one of rnnkit's own messages, which names the file already
            raise
        raise OSError(  # naming `output`, not the temporary file beside it that failed
            err.errno,
            f"Cannot write '{output}': {err.strerror}. Nothing was written there; free some "
            "space, or give --output a file in a folder you can write to.",
        ) from err
    console.print(f"Wrote {output}")


def _forecast(console, model, model_path, csv_path, texts, output) -> None:
    if csv_path is None:
        raise ValueError(
            f"'{model_path}' forecasts a series: give its recent rows with --csv FILE."
        )
    from rnnkit.forecast import check_forecast_model, forecast_next, read_table

    check_forecast_model(model, f"'{model_path}'")
    frame, source = read_table(csv_path, None)
    table = forecast_next(model, frame, source)
    print_frame(console, table)
    if output is not None:
        write_csv(console, table, output)


def _texts(model_path, texts, task: str) -> list[str]:
    if not texts:
        raise ValueError(f"'{model_path}' is a {task} model: give the text with --text \"...\".")
    return list(texts)


def _classify(console, model, model_path, csv_path, texts, output) -> None:
    from rnnkit.classify import check_classify_model, classify_texts

    check_classify_model(model, f"'{model_path}'")
    table = classify_texts(model, _texts(model_path, texts, "classification"))
    print_frame(console, table)
    if output is not None:
        write_csv(console, table, output)


def _tag(console, model, model_path, csv_path, texts, output) -> None:
    import pandas as pd

    from rnnkit.tag import check_tag_model, tag_texts, unknown_words

    check_tag_model(model, f"'{model_path}'")
    tagged = tag_texts(model, _texts(model_path, texts, "tagging"))
    for pairs in tagged:
        console.print(" ".join(f"{token}/{tag}" for token, tag in pairs), markup=False)
        unknown = unknown_words(model, [token for token, _ in pairs])
        if unknown:
            note = f"  (not seen in training, tagged from context: {', '.join(unknown)})"
            console.print(note, markup=False)
    if output is not None:
        rows = [(i, t, g) for i, pairs in enumerate(tagged, 1) for t, g in pairs]
        write_csv(console, pd.DataFrame(rows, columns=["text", "token", "tag"]), output)


# task (model.metadata["task"]) -> handler(console, model, path, csv, texts, output)
def _generate(console, model, model_path, csv_path, texts, output) -> None:
    raise ValueError(
        f"'{model_path}' is a language model: it continues a text rather than predicting "
        f'labels. Sample from it with: rnnkit generate {model_path} --seed "To be" --length 200'
    )


HANDLERS = {"forecast": _forecast, "classify": _classify, "tag": _tag, "generate": _generate}


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Recent rows of the table (a model from `rnnkit forecast`).",
)
@click.option(
    "--text",
    "texts",
    multiple=True,
    help="A text to classify or tag (repeat for several).",
)
@click.option("--output", type=click.Path(dir_okay=False), help="Also write the result as CSV.")
def predict(model_path, csv_path, texts, output) -> None:
    """Use a saved model: forecast after the rows of --csv, or classify or tag --text."""
    from rich.console import Console

    from rnnkit.saving import load_model

    console = Console()
    with user_errors():
        model = load_model(model_path, compile=False)
        task = model.metadata.get("task")
        if task not in HANDLERS:
            raise ValueError(
                f"'{model_path}' has no task rnnkit predict knows (metadata task={task!r}); it "
                f"reads models written by `rnnkit {'`, `rnnkit '.join(HANDLERS)}`."
            )
        HANDLERS[task](console, model, model_path, csv_path, texts, output)
