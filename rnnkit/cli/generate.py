"""`rnnkit generate`: train a character model, or sample from one (rnnkit/generate.py)."""

from __future__ import annotations

import dataclasses

import click

from rnnkit.cli._common import progress, set_threads, training_options, user_errors
from rnnkit.generate import CELLS, GenerateSettings
from rnnkit.saving import write_outputs

DEFAULTS = GenerateSettings()
# Options that only training reads; with a MODEL to sample from they would be ignored.
TRAINING_OPTIONS = (
    "text_path",
    "cell",
    "units",
    "epochs",
    "seq_length",
    "batch_size",
    "learning_rate",
    "max_chars",
    "out_dir",
)


@click.command()
@click.argument("model_path", metavar="[MODEL]", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--text",
    "text_path",
    type=click.Path(dir_okay=False),
    help="A UTF-8 text file to train on. Default: Jane Austen's Lady Susan (needs music21), "
    "else the Python Language Reference.",
)
@click.option(
    "--seq-length",
    default=DEFAULTS.seq_length,
    show_default=True,
    type=click.IntRange(min=1),
    help="Characters per training window.",
)
@click.option(
    "--max-chars",
    default=DEFAULTS.max_chars,
    show_default=True,
    type=click.IntRange(min=1),
    help="Train and validate on the first this many characters of the text.",
)
@click.option(
    "--seed",
    "seed_text",
    help="The text a sample continues. Default: the start of a line of held-out text.",
)
@click.option(
    "--length", default=200, show_default=True, type=click.IntRange(min=1), help="Characters."
)
@click.option(
    "--temperature",
    default=0.8,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Below 1: safer, more repetitive choices; above 1: more random ones.",
)
@click.pass_context
@training_options(DEFAULTS, CELLS, out="rnnkit-generate", seed_option="--random-seed")
def generate(
    ctx, model_path, text_path, seed_text, length, temperature, random_seed, threads, **options
) -> None:
    """Train a character-level language model on a text, or continue a seed with MODEL.

    \b
    rnnkit generate --text book.txt            # train; writes rnnkit-generate/model.rnnkit
    rnnkit generate rnnkit-generate/model.rnnkit --seed "To be" --length 200 --temperature 0.8

    Training prints the model, a progress bar, the validation perplexity after each epoch
    beside the unigram perplexity (characters drawn by their frequency alone), and a sample.
    """
    from rich.console import Console

    console = Console()
    set_threads(threads)
    with user_errors():
        if model_path is None:
            _train(console, text_path, seed_text, length, temperature, random_seed, **options)
            return
        given = [
            name
            for name in TRAINING_OPTIONS
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        ]
        if "text_path" in given:
            raise ValueError(
                "Give either MODEL, to sample from it, or --text FILE, to train on it; not both."
            )
        if given:
            flags = ", ".join("--" + name.replace("_", "-").removesuffix("-dir") for name in given)
            verb = "is" if len(given) == 1 else "are"
            raise ValueError(
                f"{flags} {verb} for training only; with MODEL, rnnkit generate samples from it. "
                "Leave them out, or train a new model without MODEL."
            )
        _sample(console, model_path, seed_text, length, temperature, random_seed)


def _train(console, text_path, seed_text, length, temperature, random_seed, out_dir, **options):
    from rnnkit.generate import check_seed, read_text, sample, split_text, train_generate

    settings = GenerateSettings(seed=random_seed, **options)
    text, source, note = read_text(text_path)
    if note:
        console.print(f"Note: {note}", markup=False)
    corpus = split_text(text, settings, f"'{text_path}'" if text_path else source)
    if seed_text is not None:
        check_seed(seed_text, corpus.vocabulary)  # before training, not after
    console.print(
        f"Text: {source} ({len(text):,} characters; training on {len(corpus.train):,}, "
        f"validating on the last {len(corpus.validation):,}; {len(corpus.vocabulary)} distinct)",
        markup=False,
    )
    baseline = []

    def start(unigram):
        baseline.append(unigram)
        console.print(
            f"Unigram perplexity of the validation text: {unigram:.3f} (each character drawn "
            "by its frequency in the training text; the model should get below it)"
        )

    def epoch(index, perplexity):
        console.print(
            f"Epoch {index + 1}: validation perplexity {perplexity:.3f} (unigram {baseline[0]:.3f})"
        )

    result = train_generate(
        corpus,
        settings,
        callbacks=[progress(console)],
        summary=lambda m: m.summary(),
        on_start=start,
        on_epoch=epoch,
        source=source,
    )
    final, unigram = result.val_perplexity[-1], result.unigram_perplexity
    console.print(
        f"Validation perplexity {final:.3f} after {settings.epochs} epoch(s): "
        f"{1 - final / unigram:.0%} below the unigram perplexity {unigram:.3f}."
        if final < unigram
        else f"Validation perplexity {final:.3f} is not below the unigram perplexity "
        f"{unigram:.3f}: train longer (--epochs) or on more text."
    )
    seed = seed_text if seed_text is not None else result.model.metadata["default_seed"]
    _print_sample(console, seed, sample(result.model, seed, length, temperature, random_seed))
    scores = {
        "unigram_perplexity": result.unigram_perplexity,
        "val_perplexity": result.val_perplexity,  # after each epoch
        "settings": dataclasses.asdict(result.settings),
    }
    paths = write_outputs(out_dir, result.model, scores)
    console.print("Wrote " + ", ".join(paths.values()), markup=False)


def _sample(console, model_path, seed_text, length, temperature, random_seed):
    from rnnkit.generate import check_generate_model, sample
    from rnnkit.saving import load_model

    model = load_model(model_path, compile=False)
    meta = check_generate_model(model, f"'{model_path}'")
    seed = seed_text if seed_text is not None else meta.get("default_seed")
    if seed is None:
        raise ValueError(
            f"'{model_path}' has no default seed in its metadata.json (`rnnkit generate` "
            'writes one); give the text to continue with --seed "...".'
        )
    _print_sample(console, seed, sample(model, seed, length, temperature, random_seed))


def _print_sample(console, seed, generated) -> None:
    from rich.text import Text

    console.print("Sample (the seed in bold):")
    console.print(Text(seed, style="bold") + Text(generated))
