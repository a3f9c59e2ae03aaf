"""`rnnkit classify`: train a text classifier, score it on held-out texts (rnnkit/classify.py)."""

from __future__ import annotations

import click

from rnnkit._task import memory_sentence
from rnnkit.classify import CELLS, ClassifySettings
from rnnkit.cli._common import progress, set_threads, training_options, user_errors

DEFAULTS = ClassifySettings()


@click.command()
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Your texts and labels (CSV). Default: sentences of six public-domain "
    "books, labelled with their language.",
)
@click.option("--text", "text_col", help="The column of texts (with --csv).")
@click.option("--label", "label_col", help="The column of labels (with --csv).")
@click.option(
    "--embedding-dim", default=DEFAULTS.embedding_dim, show_default=True, type=click.IntRange(min=1)
)
@click.option(
    "--bidirectional/--unidirectional",
    default=DEFAULTS.bidirectional,
    show_default=True,
    help="Read each text in both directions.",
)
@click.option(
    "--max-words",
    default=DEFAULTS.max_words,
    show_default=True,
    type=click.IntRange(min=2),
    help="Vocabulary size (the most frequent words).",
)
@click.option(
    "--maxlen",
    type=click.IntRange(min=1),
    help="Words kept per text (default: enough for 95% of the training texts).",
)
@click.option(
    "--test-split",
    default=DEFAULTS.test_split,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
)
@training_options(DEFAULTS, CELLS, out="rnnkit-classify")
def classify(csv_path, text_col, label_col, threads, out_dir, **options) -> None:
    """Train a recurrent network to label texts (sentiment, topic, language, ...).

    Prints the model, a progress bar, the held-out accuracy beside always guessing the most
    common label, and a confusion matrix; writes the model (with its tokenizer and labels)
    and metrics.json to --out. Then: rnnkit predict OUT/model.rnnkit --text "...".
    """
    from rich.console import Console

    from rnnkit.classify import train_classifier

    console = Console()
    set_threads(threads)
    with user_errors():
        texts, labels, source = _read(csv_path, text_col, label_col)
        settings = ClassifySettings(**options)
        settings.check()
        console.print(f"Data: {source}: {len(texts)} texts, {len(set(labels))} labels")
        result = train_classifier(
            texts, labels, settings, callbacks=[progress(console)], summary=lambda m: m.summary()
        )
        _report(console, result)
        paths = _write(result, out_dir)
    console.print("Wrote " + ", ".join(paths))


def _read(csv_path, text_col, label_col):
    if csv_path is None:
        if text_col or label_col:
            raise ValueError("--text and --label name columns of --csv FILE; give the file too.")
        from rnnkit.datasets import language_sentences

        texts, labels = language_sentences()
        return texts, labels, "sentences of six public-domain books (music21's texts), by language"
    if not text_col or not label_col:
        raise ValueError("--csv needs --text COLUMN and --label COLUMN.")
    from rnnkit.datasets import load_text_csv

    texts, labels = load_text_csv(csv_path, text_col, label_col)
    return texts, labels, csv_path


def _report(console, result) -> None:
    from rich.table import Table

    metrics, names = result.metrics, result.labels
    console.print(
        f"Test set: {metrics['test_texts']} texts. Accuracy {metrics['accuracy']:.1%}; always "
        f"guessing the most common label ({metrics['majority_class']!r}): "
        f"{metrics['majority_accuracy']:.1%}."
    )
    horizon = memory_sentence(metrics["memory_horizon"], "The model's label", "word")
    console.print(horizon, soft_wrap=True)
    matrix = Table(title="Confusion matrix (rows: true label, columns: predicted)")
    matrix.add_column("")
    for name in names:
        matrix.add_column(name, justify="right")
    for name, row in zip(names, result.confusion):
        matrix.add_row(name, *(str(v) for v in row))
    console.print(matrix)
    scores = Table(title="Per label")
    for column in ("label", "precision", "recall", "F1", "texts"):
        scores.add_column(column, justify="left" if column == "label" else "right")
    for name, s in metrics["per_label"].items():
        scores.add_row(
            name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(s["support"])
        )
    console.print(scores)


def _write(result, directory):
    from rnnkit.saving import write_outputs

    return write_outputs(directory, result.model, result.metrics).values()
