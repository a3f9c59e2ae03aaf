"""`rnnkit tag`: learn one tag per token from tagged sentences (rnnkit/tag.py)."""

from __future__ import annotations

import click

from rnnkit._task import memory_sentence
from rnnkit.cli._common import progress, set_threads, training_options, user_errors
from rnnkit.datasets._tagging import CONLLU_COLUMNS
from rnnkit.tag import CELLS, TagSettings

DEFAULTS = TagSettings()


@click.command()
@click.option(
    "--train",
    "train_path",
    type=click.Path(dir_okay=False),
    help="Tagged sentences: CoNLL-U, or 'word TAG' lines with a blank line between sentences. "
    "Default: a SYNTHETIC part-of-speech set (no real tagged corpus ships offline).",
)
@click.option(
    "--tag-column",
    default="upos",
    show_default=True,
    type=click.Choice(CONLLU_COLUMNS[2:]),  # every column after the word itself
    help="The CoNLL-U column to learn.",
)
@click.option(
    "--embedding-dim", default=DEFAULTS.embedding_dim, show_default=True, type=click.IntRange(min=1)
)
@click.option(
    "--bidirectional/--unidirectional",
    default=DEFAULTS.bidirectional,
    show_default=True,
    help="Read each sentence both ways: a tag often depends on the word after it.",
)
@training_options(DEFAULTS, CELLS, out="rnnkit-tag")
def tag(train_path, tag_column, out_dir, threads, **options) -> None:
    """Train a recurrent tagger (one tag per token) and score it on held-out sentences.

    With no options: a synthetic part-of-speech set. Prints the model, a progress bar and
    the test sentences' precision, recall and F1 per tag; writes the model and
    metrics.json to --out. Use it with `rnnkit predict OUT/model.rnnkit --text "..."`.
    """
    from rich.console import Console

    from rnnkit.tag import read_sentences, train_tagger, write_outputs

    console = Console()
    set_threads(threads)
    with user_errors():
        settings = TagSettings(**options)
        settings.check()
        sentences, source = read_sentences(train_path, tag_column)
        tokens = sum(len(tokens) for tokens, _ in sentences)
        tags = {t for _, labels in sentences for t in labels}
        console.print(f"Data: {source}")
        console.print(f"{len(sentences):,} sentences, {tokens:,} tokens, {len(tags)} tags")
        result = train_tagger(
            sentences, settings, callbacks=[progress(console)], summary=lambda m: m.summary()
        )
        _report(console, result)
        paths = write_outputs(result, out_dir)
    console.print("Wrote " + ", ".join(paths.values()))


def _report(console, result) -> None:
    from rich.table import Table

    metrics = result.metrics
    split = metrics["sentences"]
    console.print(
        f"Split (shuffled, seed {result.settings.seed}): {split['train']:,} training, "
        f"{split['validation']:,} validation, {split['test']:,} test sentences; "
        f"{metrics['vocabulary']:,} words known from the training sentences"
    )
    table = Table(
        title=f"Test set: {split['test']:,} sentences, {metrics['test_tokens']:,} tokens "
        f"({metrics['unknown_tokens']:,} unknown words)"
    )
    table.add_column("tag")
    for name in ("precision", "recall", "F1", "support"):
        table.add_column(name, justify="right")
    for name, s in metrics["per_tag"].items():
        table.add_row(
            name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", f"{s['support']}"
        )
    table.add_section()
    table.add_row("macro average", "", "", f"{metrics['macro_f1']:.3f}", "")
    table.add_row("micro average", "", "", f"{metrics['micro_f1']:.3f}", "")
    console.print(table)
    horizon = memory_sentence(metrics["memory_horizon"], "The last token's tag", "token")
    console.print(horizon, soft_wrap=True)
    baseline = metrics["baseline"]
    console.print(
        f"Token accuracy: {metrics['accuracy']:.4f} (each word's most frequent training tag: "
        f"{baseline['accuracy']:.4f})"
    )
    hard = metrics["ambiguous"]
    if hard["test_tokens"]:
        console.print(
            f"Words seen with more than one tag ({hard['words']} words, {hard['test_tokens']:,} "
            f"test tokens): accuracy {hard['accuracy']:.4f}, most frequent tag "
            f"{hard['baseline_accuracy']:.4f}"
        )
