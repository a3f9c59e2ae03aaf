"""A character-level language model: the pipeline behind `rnnkit generate`.

    text --(one id per character)--> windows of `seq_length` ids
         --> Embedding --> LSTM / GRU (return_sequences=True) --> Dense(vocabulary)
         --> logits for the next character at every step

The vocabulary is the sorted set of the text's characters, nothing more: a character
model needs no tokenizer rules. The last `validation_split` of the text is held out; the
model is scored on it by its perplexity, `exp(mean cross-entropy per character)`, the
number of equally likely characters it is as unsure as. The baseline to beat is the
unigram perplexity: every character drawn from the training text's character frequencies,
ignoring what came before. A model below it has learned something about order.

`sample` continues a seed one character at a time, carrying the recurrent state from step
to step, so each new character costs one cell step.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from dataclasses import dataclass

import numpy as np

from rnnkit._task import task_metadata

CELLS = ("lstm", "gru")
TASK = "generate"
SEED_CHARS = 40  # the default sampling seed: about this many characters of held-out text


@dataclass
class GenerateSettings:
    """What `rnnkit generate` trains; each default has its reason beside it."""

    cell: str = "lstm"  # the char-rnn classic; a GRU did a little better (4.4 vs 4.7, batch 16)
    units: int = 256  # ~300k weights: an epoch of Lady Susan in 4-7 s on one CPU thread
    embedding_dim: int = 32  # ~70 characters need no wider vector; cheaper than one-hot
    seq_length: int = 100  # characters per training window: a sentence or two of context
    # Small batches, many updates: on Lady Susan, one epoch at batch 8 reached perplexity
    # 8.5, at 16 11.6, at 32 16.3, for about the same time (each step is one fused kernel).
    batch_size: int = 8
    epochs: int = 5  # 20-35 s; perplexity 8.5 after one, 4.3 after five, 4.1 after seven
    learning_rate: float = 1e-2  # Adam; 5e-3: 9.8 after one epoch, 4.3 after seven (not 4.1)
    clipnorm: float = 1.0  # with this rate, the occasional large gradient is clipped
    validation_split: float = 0.1  # the END of the text, never seen in training
    max_chars: int | None = 200_000  # the first this many characters: bounds an epoch's time
    seed: int = 0  # weights and the shuffling of windows

    def check(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}.")
        for name in ("units", "embedding_dim", "seq_length", "batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if not 0 < self.validation_split < 1:
            raise ValueError(
                f"validation_split must lie between 0 and 1 (the held-out end of the text); got "
                f"{self.validation_split!r}."
            )
        if self.max_chars is not None and (
            isinstance(self.max_chars, bool)
            or not isinstance(self.max_chars, int)
            or self.max_chars < 1
        ):
            raise ValueError(
                f"max_chars must be a positive integer or None; got {self.max_chars!r}."
            )


@dataclass
class Corpus:
    """A text cut into training and validation parts, and the characters it uses."""

    train: str
    validation: str  # the end of the text
    vocabulary: list[str]  # sorted; a character's id is its position here

    def ids(self, text: str) -> np.ndarray:
        index = {char: i for i, char in enumerate(self.vocabulary)}
        return np.array([index[char] for char in text], dtype=np.int64)


def split_text(text: str, settings: GenerateSettings, source: str = "The text") -> Corpus:
    """The first `max_chars` of `text`, its last `validation_split` held out.

    Raises ValueError when either part is shorter than one window (`seq_length + 1`
    characters: the inputs and, one character later, the targets).
    """
    settings.check()
    if settings.max_chars is not None:
        text = text[: settings.max_chars]
    split, need = settings.validation_split, settings.seq_length + 1

    def enough(chars: int) -> bool:
        held_out = int(chars * split)
        return held_out >= need and chars - held_out >= need

    if not enough(len(text)):
        least = next(n for n in itertools.count(2 * need) if enough(n))
        raise ValueError(
            f"{source} has {len(text)} characters (after max_chars), too short: the training "
            f"and the validation part ({split:.0%} of it) each need one window of "
            f"seq_length + 1 = {need} characters, so at least {least} in all. Use a longer "
            "text or a shorter --seq-length."
        )
    held_out = int(len(text) * split)
    vocabulary = sorted(set(text))
    if len(vocabulary) < 2:
        raise ValueError(
            f"{source} uses one character only ({vocabulary[0]!r}); there is nothing to "
            "predict. Give a text with at least two different characters."
        )
    return Corpus(text[:-held_out], text[-held_out:], vocabulary)


def windows(ids: np.ndarray, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows and their next characters: `x[i, t]` is followed by `y[i, t]`.

    Returns `(x, y)`, each `(n, seq_length)` with `n = (len(ids) - 1) // seq_length`;
    `y` is `x` shifted one character on, so every character after the first is a target
    exactly once (the few left over at the end are dropped).
    """
    n = (len(ids) - 1) // seq_length
    x = ids[: n * seq_length].reshape(n, seq_length)  # (n, seq_length)
    y = ids[1 : n * seq_length + 1].reshape(n, seq_length)
    return x, y


def unigram_perplexity(corpus: Corpus, targets: np.ndarray) -> float:
    """The perplexity of `targets` (ids) when each character is drawn from the training
    text's character frequencies, whatever came before it.

    Counts get one added (Laplace smoothing) so a character that appears only in the
    validation text has a small probability rather than zero, which would make it infinite.
    """
    counts = np.bincount(corpus.ids(corpus.train), minlength=len(corpus.vocabulary)) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(np.exp(-log_p[targets].mean()))


def default_seed(text: str, chars: int = SEED_CHARS) -> str:
    """The start of the first line of `text` that reads like prose, cut after a word.

    A line of at least `chars` characters with lower-case letters: a chapter heading in
    capitals ("XXXVIII") makes a poor seed. Falls back to the first `chars` characters.
    """
    for line in text.split("\n"):
        line = line.lstrip()
        if len(line) >= chars and any(c.islower() for c in line):
            cut = line[:chars].rfind(" ")
            return line[: cut + 1] if cut > 0 else line[:chars]
    return text[:chars]


def _perplexity_callback():
    from rnnkit.callbacks import Callback

    class ValidationPerplexity(Callback):
        """Adds `val_perplexity = exp(val_loss)` to each epoch's logs, and reports it.

        `val_loss` is the mean cross-entropy per validation character (every window has
        `seq_length` of them, so the mean over windows is the mean over characters).
        """

        def __init__(self, report=None):
            super().__init__()
            self.report = report
            self.values: list[float] = []

        def on_epoch_end(self, epoch, logs=None):
            value = math.exp(logs["val_loss"])
            logs["val_perplexity"] = value  # the progress bar after this callback shows it
            self.values.append(value)
            if self.report is not None:
                self.report(epoch, value)

    return ValidationPerplexity


def build_model(settings: GenerateSettings, vocabulary_size: int):
    """Embedding -> LSTM/GRU(return_sequences=True) -> Dense(vocabulary), logits per step.

    Shapes: `(batch, timesteps)` ids in, `(batch, timesteps, vocabulary_size)` logits out;
    the time axis is left open so the same model reads any length.
    """
    from rnnkit import Input, Sequential
    from rnnkit.layers import GRU, LSTM, Dense, Embedding
    from rnnkit.losses import SparseCategoricalCrossentropy
    from rnnkit.optimizers import Adam

    cell = {"lstm": LSTM, "gru": GRU}[settings.cell]
    model = Sequential(
        [
            Input((None,), dtype="int64"),
            Embedding(vocabulary_size, settings.embedding_dim),
            cell(settings.units, return_sequences=True),
            Dense(vocabulary_size),
        ],
        name=f"generate_{settings.cell}",
    )
    model.compile(
        optimizer=Adam(settings.learning_rate, clipnorm=settings.clipnorm),
        loss=SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


@dataclass
class GenerateResult:
    """What a run produced: the trained model, its scores per epoch and the baseline."""

    model: object
    settings: GenerateSettings
    corpus: Corpus
    unigram_perplexity: float
    val_perplexity: list[float]  # after each epoch
    history: dict


def train_generate(
    corpus: Corpus,
    settings: GenerateSettings,
    callbacks=(),
    summary=None,
    on_start=None,
    on_epoch=None,
    source: str = "the text",
) -> GenerateResult:
    """Train a character model on `corpus.train`, scoring it on `corpus.validation`.

    Args:
        corpus: from `split_text`.
        settings: a `GenerateSettings`.
        callbacks: extra callbacks for `fit` (a progress bar).
        summary: called with the model before training (to print its summary).
        on_start: called with the unigram perplexity, the baseline, before training.
        on_epoch: called with `(epoch, validation perplexity)` after each epoch.
        source: the text's name, kept in the model's metadata.

    Returns:
        A `GenerateResult`; `result.model.metadata` holds the vocabulary `sample` needs.
    """
    from rnnkit.utils import set_random_seed

    settings.check()
    x_train, y_train = windows(corpus.ids(corpus.train), settings.seq_length)
    x_val, y_val = windows(corpus.ids(corpus.validation), settings.seq_length)
    baseline = unigram_perplexity(corpus, y_val.ravel())
    if on_start is not None:
        on_start(baseline)
    set_random_seed(settings.seed)
    model = build_model(settings, len(corpus.vocabulary))
    if summary is not None:
        summary(model)
    perplexity = _perplexity_callback()(report=on_epoch)
    fitted = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        callbacks=[perplexity, *callbacks],
        verbose=0,
    )
    model.metadata = {
        "task": TASK,
        "vocabulary": corpus.vocabulary,
        "seq_length": settings.seq_length,
        "cell": settings.cell,
        "text": source,
        "train_chars": len(corpus.train),
        "validation_chars": len(corpus.validation),
        "unigram_perplexity": baseline,
        "val_perplexity": perplexity.values,
        "default_seed": default_seed(corpus.validation),
        "settings": dataclasses.asdict(settings),
    }
    return GenerateResult(
        model=model,
        settings=settings,
        corpus=corpus,
        unigram_perplexity=baseline,
        val_perplexity=perplexity.values,
        history=fitted.history,
    )


# ------------------------------------------------------------------------------ sample


# What `sample` reads from a saved model's metadata (`rnnkit generate MODEL` without --seed
# also reads "default_seed").
METADATA = ("vocabulary",)


def check_generate_model(model, name: str = "the model") -> dict:
    """The metadata of a model saved by `rnnkit generate`, or a ValueError saying what it is."""
    cannot = (
        "so it has no character vocabulary to sample from. Train one with: "
        "rnnkit generate --text FILE"
    )
    return task_metadata(model, TASK, METADATA, name, cannot, "rnnkit generate --text FILE")


def check_seed(seed: str, vocabulary: list[str]) -> None:
    """A ValueError unless `seed` is a non-empty string of characters in `vocabulary`."""
    if not isinstance(seed, str) or not seed:
        raise ValueError(f"The seed must be a non-empty string to continue; got {seed!r}.")
    unknown = sorted(set(seed) - set(vocabulary))
    if unknown:
        raise ValueError(
            f"The seed holds {len(unknown)} character(s) the model never saw: "
            f"{', '.join(map(repr, unknown))}. It knows only the {len(vocabulary)} characters "
            f"of its training text: {''.join(vocabulary)!r}. Remove or replace them in the "
            "seed, or train on a text that has them."
        )


def sample(
    model, seed: str, length: int = 200, temperature: float = 0.8, rng_seed: int | None = None
) -> str:
    """Continue `seed` by `length` characters, each drawn from the model's next-character
    distribution `softmax(logits / temperature)`.

    The seed is read one character at a time through the recurrent cell, then each drawn
    character is fed back the same way: the state `(h, c)` (GRU: `h`) carries everything
    read so far, so a character costs one cell step rather than a pass over a whole window.
    Like char-rnn, the state then runs past the `seq_length` characters the model trained
    on; the cell math is the layer's own (`layer.cell`), so the first `seq_length` steps
    equal `model.predict` on the same text.

    Args:
        model: a model from `train_generate` or `rnnkit generate` (read by `load_model`).
        seed: the text to continue; every character must be in the model's vocabulary.
        length: how many characters to generate (at least 1).
        temperature: > 0. Below 1 the likely characters get likelier (towards always the
            most likely one); above 1 the choice is more random.
        rng_seed: makes the draw repeat exactly; None draws afresh each call.

    Returns:
        The `length` generated characters, without the seed.

    Example:
        >>> from rnnkit.generate import GenerateSettings, split_text, train_generate
        >>> settings = GenerateSettings(units=8, seq_length=10, epochs=1)
        >>> model = train_generate(split_text("abcab" * 40, settings), settings).model
        >>> len(sample(model, "ab", length=5, rng_seed=0))
        5
    """
    import torch

    meta = check_generate_model(model, f"Model '{getattr(model, 'name', model)}'")
    vocabulary = meta["vocabulary"]
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(
            f"length must be a positive integer (characters to generate); got {length!r}."
        )
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(
            f"temperature must be > 0; got {temperature!r}. Use a small value such as 0.1 for "
            "nearly always the most likely character, 1.0 for the model's own probabilities."
        )
    check_seed(seed, vocabulary)
    index = {char: i for i, char in enumerate(vocabulary)}
    embedding, rnn, dense = model.layers  # as `build_model` makes them
    rng = np.random.default_rng(rng_seed)
    out = []
    with torch.no_grad():
        states = rnn.get_initial_state(1)
        for char in seed:
            x_t = embedding(torch.tensor([index[char]]))  # (1, embedding_dim)
            h, states = rnn.cell(x_t, states)  # (1, units)
        for _ in range(length):
            logits = dense(h)[0].double().numpy() / temperature  # (vocabulary,)
            p = np.exp(logits - logits.max())
            choice = int(rng.choice(len(p), p=p / p.sum()))
            out.append(vocabulary[choice])
            h, states = rnn.cell(embedding(torch.tensor([choice])), states)
    return "".join(out)


# --------------------------------------------------------------------------------- text


def read_text(path) -> tuple[str, str, str | None]:
    """The user's text file, or the default text; with its name and a note for the user.

    Returns `(text, source, note)`. With `path` None the text is Jane Austen's *Lady Susan*
    (needs music21's files), else the Python Language Reference, and `note` says why.
    """
    from rnnkit.datasets import lady_susan, load_text_file, python_docs

    if path is not None:
        return load_text_file(path), os.fspath(path), None
    try:
        return lady_susan(), "Jane Austen, Lady Susan (1871; via music21)", None
    except ModuleNotFoundError as err:
        note = (
            f"The default text, Lady Susan, is not available ({err}). Using the Python "
            "Language Reference instead."
        )
        return python_docs(), "the Python Language Reference (pydoc_data)", note
