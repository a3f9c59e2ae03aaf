"""Classifying texts (many-to-one): the pipeline behind `rnnkit classify`.

    text --Tokenizer--> word ids --pad_sequences--> (batch, maxlen)
         --> Embedding(mask_zero=True) --> SimpleRNN / LSTM / GRU --> Dense
         --> one probability (two labels, sigmoid) or one per label (softmax)

The model of the notes' sentiment example (Embedding -> SimpleRNN -> Dense(sigmoid)),
for any number of labels. Texts are split at random but stratified (each label keeps its
share in train, validation and test), the tokenizer learns its vocabulary from the
training texts only, and the model is scored on the held-out test texts beside the
majority-class baseline, with a confusion matrix.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rnnkit._task import memory_horizon, task_metadata
from rnnkit.data import Tokenizer, pad_sequences, tokenizer_from_json

CELLS = ("simple_rnn", "lstm", "gru")
TASK = "classify"
OOV = "<unk>"


@dataclass
class ClassifySettings:
    """What `rnnkit classify` trains; each default has its reason beside it."""

    cell: str = "lstm"  # keeps a sentence's early words in mind better than SimpleRNN
    units: int = 64
    embedding_dim: int = 64
    bidirectional: bool = False
    max_words: int = 20000  # the vocabulary: the most frequent words of the training texts
    maxlen: int | None = None  # None: long enough for 95% of the training texts (at most 200)
    epochs: int = 10  # an upper bound: training stops when validation stops improving
    patience: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_split: float = 0.1
    test_split: float = 0.2
    lower: bool = True
    seed: int = 0

    def check(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}.")
        names = ("units", "embedding_dim", "max_words", "epochs", "patience", "batch_size")
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if self.maxlen is not None and self.maxlen < 1:
            raise ValueError(f"maxlen must be a positive integer; got {self.maxlen!r}.")
        if not 0 < self.test_split < 1 or not 0 < self.validation_split < 1:
            raise ValueError("validation_split and test_split must be between 0 and 1.")
        if self.test_split + self.validation_split >= 1:
            raise ValueError("validation_split + test_split must leave texts to train on.")


def stratified_split(labels, validation_split: float, test_split: float, seed: int):
    """Row numbers of train, validation and test, each label split in the same proportions."""
    rng = np.random.RandomState(seed)
    labels = np.asarray(labels)
    parts = ([], [], [])
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        rng.shuffle(rows)
        test = int(round(len(rows) * test_split))
        validation = int(round(len(rows) * validation_split))
        parts[2].extend(rows[:test])
        parts[1].extend(rows[test : test + validation])
        parts[0].extend(rows[test + validation :])
    return tuple(rng.permutation(np.asarray(part, dtype=int)) for part in parts)


def _check_texts(texts, labels) -> None:
    if len(texts) != len(labels):
        raise ValueError(
            f"Got {len(texts)} texts but {len(labels)} labels; give one label per text."
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"Text {i} is empty ({text!r}); drop it or fill it in.")
    counts = pd.Series(labels).value_counts()
    if len(counts) < 2:
        raise ValueError(
            f"Every text has the label {counts.index[0]!r}; a classifier needs at least two labels."
        )
    few = counts[counts < 3]
    if len(few):
        raise ValueError(
            f"Label(s) {', '.join(map(repr, few.index))} have fewer than 3 texts, too few to "
            "appear in train, validation and test. Add texts or merge those labels."
        )


def build_model(settings: ClassifySettings, vocabulary: int, labels: int):
    """Embedding(mask_zero) -> recurrent layer -> Dense, compiled for the number of labels."""
    from rnnkit import Sequential
    from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Embedding, SimpleRNN
    from rnnkit.optimizers import Adam

    cell = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[settings.cell]
    recurrent = cell(settings.units)
    if settings.bidirectional:
        recurrent = Bidirectional(recurrent)
    binary = labels == 2
    model = Sequential(
        [
            Embedding(vocabulary, settings.embedding_dim, mask_zero=True),
            recurrent,
            Dense(1 if binary else labels, activation="sigmoid" if binary else "softmax"),
        ],
        name=f"classify_{settings.cell}",
    )
    loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"
    model.compile(optimizer=Adam(settings.learning_rate), loss=loss, metrics=["accuracy"])
    return model


@dataclass
class ClassifyResult:
    model: object
    settings: ClassifySettings
    metrics: dict
    labels: list[str]
    confusion: np.ndarray  # (labels, labels): rows the true label, columns the predicted one


def train_classifier(texts, labels, settings: ClassifySettings, callbacks=(), summary=None):
    """Fit the tokenizer and the model on the training texts; score on the test texts.

    Args:
        texts: list of strings.
        labels: one label (any printable value) per text.
        settings: a `ClassifySettings`.
        callbacks: extra callbacks for `fit` (a progress bar).
        summary: called with the built model before training (to print its summary).

    Returns:
        A `ClassifyResult`. Its `metrics` hold the test scores beside the majority class's,
        and `"memory_horizon"`: how many of a text's last words the label depends on,
        measured on the test texts (`rnnkit._task.memory_horizon`: `{"steps", "threshold",
        "timesteps", "sequences"}`; padding has no influence).
    """
    from rnnkit.callbacks import EarlyStopping
    from rnnkit.utils import set_random_seed

    settings.check()
    labels = [str(label) for label in labels]
    _check_texts(texts, labels)
    names = sorted(set(labels))
    ids = np.array([names.index(label) for label in labels])
    train, validation, test = stratified_split(
        ids, settings.validation_split, settings.test_split, settings.seed
    )
    tokenizer = Tokenizer(num_words=settings.max_words, oov_token=OOV, lower=settings.lower)
    tokenizer.fit_on_texts([texts[i] for i in train])
    lengths = [len(s) for s in tokenizer.texts_to_sequences([texts[i] for i in train])]
    maxlen = settings.maxlen or int(min(200, max(1, np.percentile(lengths, 95))))

    def encode(rows):
        sequences = tokenizer.texts_to_sequences([texts[i] for i in rows])
        return pad_sequences(sequences, maxlen=maxlen, padding="post", truncating="post")

    x_train, x_val, x_test = encode(train), encode(validation), encode(test)
    vocabulary = min(settings.max_words, len(tokenizer.word_index) + 1)
    set_random_seed(settings.seed)
    model = build_model(settings, vocabulary, len(names))
    model.build((None, maxlen))
    if summary is not None:
        summary(model)
    stop = EarlyStopping(patience=settings.patience, restore_best_weights=True)
    history = model.fit(
        x_train,
        ids[train],
        validation_data=(x_val, ids[validation]),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        callbacks=[stop, *callbacks],
        verbose=0,
    )
    predicted = _label_ids(model.predict(x_test, batch_size=256))
    truth = ids[test]
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    majority = np.bincount(ids[train]).argmax()
    metrics = {
        "test_texts": len(test),
        "accuracy": float((predicted == truth).mean()),
        "majority_class": names[majority],
        "majority_accuracy": float((truth == majority).mean()),
        "per_label": _per_label(confusion, names),
        "confusion": {"labels": names, "rows_true_columns_predicted": confusion.tolist()},
        "maxlen": maxlen,
        "vocabulary": vocabulary,
        "epochs_trained": len(history.history["loss"]),
        "memory_horizon": memory_horizon(model, x_test),
        "settings": dataclasses.asdict(settings),
    }
    model.metadata = {
        "task": TASK,
        "labels": names,
        "maxlen": maxlen,
        "tokenizer": json.loads(tokenizer.to_json()),
    }
    return ClassifyResult(model, settings, metrics, names, confusion)


def _label_ids(output: np.ndarray) -> np.ndarray:
    if output.shape[-1] == 1:  # two labels: the probability of the second
        return (output[:, 0] > 0.5).astype(int)
    return output.argmax(axis=-1)


def _per_label(confusion: np.ndarray, names: list[str]) -> dict:
    scores = {}
    for i, name in enumerate(names):
        hits = confusion[i, i]
        predicted, actual = confusion[:, i].sum(), confusion[i].sum()
        precision = hits / predicted if predicted else 0.0
        recall = hits / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    return scores


# What `classify_texts` reads from a saved model's metadata.
METADATA = ("labels", "maxlen", "tokenizer")


def check_classify_model(model, name: str | None = None) -> dict:
    """The metadata of a model saved by `rnnkit classify`, or a ValueError saying what is off.

    `name` is what messages call the model (its file); default: the model's name.
    """
    name = name or f"The model '{model.name}'"
    return task_metadata(model, TASK, METADATA, name, "it cannot label texts")


def classify_texts(model, texts) -> pd.DataFrame:
    """The label and its probability for each text, with a model saved by `rnnkit classify`."""
    meta = check_classify_model(model)
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"Text {i} is empty ({text!r}); give some words to classify.")
    tokenizer = tokenizer_from_json(json.dumps(meta["tokenizer"]))
    sequences = tokenizer.texts_to_sequences(texts)
    x = pad_sequences(sequences, maxlen=meta["maxlen"], padding="post", truncating="post")
    output = model.predict(x, batch_size=256)
    names = meta["labels"]
    if output.shape[-1] == 1:
        chosen = (output[:, 0] > 0.5).astype(int)
        probability = np.where(chosen == 1, output[:, 0], 1 - output[:, 0])
    else:
        chosen = output.argmax(axis=-1)
        probability = output[np.arange(len(output)), chosen]
    oov = tokenizer.word_index[OOV]
    known = [sum(token != oov for token in s) for s in sequences]
    return pd.DataFrame(
        {
            "text": texts,
            "label": [names[i] for i in chosen],
            "probability": [round(float(p), 4) for p in probability],
            "known_words": known,
        }
    )
