"""Tagging every token of a sentence (part of speech, entities): the pipeline behind `rnnkit tag`.

    tokens --(word ids: 0 padding, 1 unknown)--> Embedding(mask_zero=True)
           --> [Bidirectional](LSTM / GRU / SimpleRNN, return_sequences=True)
           --> TimeDistributed(Dense(tags, softmax)) --> one tag per token

Sentences are shuffled once and split into training, validation and test sentences; the
vocabulary of words comes from the training sentences only, so test words the model never
saw reach it as "unknown", as they will in use. Sentences of different lengths are padded
after their last token; the Embedding's mask travels with the outputs, and `fit` and
`evaluate` leave the padded positions out of the loss and the metrics. The scores here
count real tokens only.

The baseline needs no network: every word gets the tag it had most often in the training
sentences. It is right on most tokens; what a recurrent tagger adds is the words whose tag
depends on their neighbours ("can" in "the old man can fly" and "a can of water").
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
from dataclasses import dataclass

import numpy as np

from rnnkit._task import memory_horizon, task_metadata
from rnnkit.data import pad_sequences

CELLS = ("simple_rnn", "lstm", "gru")
TASK = "tag"
PAD, UNKNOWN = 0, 1  # word ids; tag id 0 is padding too
PAD_WORD, UNKNOWN_WORD, PAD_TAG = "<pad>", "<unknown>", "<pad>"
# The built-in set: 3000 generated sentences (~24,000 tokens) train to 99.9% in ~20 s.
SYNTHETIC_SENTENCES = 3000
SYNTHETIC_SOURCE = (
    "SYNTHETIC part-of-speech sentences generated from a small English grammar "
    "(rnnkit.datasets.tagging_sentences; not real text: no hand-tagged corpus ships offline)"
)


@dataclass
class TagSettings:
    """What `rnnkit tag` trains; each default has its reason beside it."""

    cell: str = "lstm"  # gates keep a word's evidence across the few steps a tag depends on
    units: int = 32  # per direction; a dozen tags over a few hundred words need no more
    embedding_dim: int = 32
    bidirectional: bool = True  # a tag often depends on the next word: "can fly" vs "a can"
    epochs: int = 10  # an upper bound: training stops when validation stops improving
    patience: int = 3  # epochs without a better validation loss before stopping
    batch_size: int = 32  # sentences per step: more updates per epoch than 64 on small sets
    learning_rate: float = 3e-3  # the synthetic set: 99.9% in 6 epochs; 1e-3 needed 15
    validation_split: float = 0.1  # sentences for early stopping
    test_split: float = 0.1  # sentences kept for the final scores
    lowercase: bool = True  # "The" and "the" share one embedding; fewer unknown words
    min_count: int = 2  # words seen once count as unknown: id 1 then learns from rare words,
    #                     which is what unseen words at prediction time look like
    max_len: int = 100  # longer sentences are cut into pieces of this many tokens
    seed: int = 0  # the split, the weights and the shuffling

    def check(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}.")
        for name in ("units", "embedding_dim", "epochs", "patience", "batch_size", "min_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if isinstance(self.max_len, bool) or not isinstance(self.max_len, int) or self.max_len < 2:
            raise ValueError(f"max_len must be an integer of at least 2; got {self.max_len!r}.")
        if not 0 <= self.validation_split < 1 or not 0 < self.test_split < 1:
            raise ValueError(
                "validation_split must be in [0, 1) and test_split in (0, 1); got "
                f"{self.validation_split!r} and {self.test_split!r}."
            )
        if self.validation_split + self.test_split >= 1:
            raise ValueError(
                f"validation_split + test_split must leave sentences to train on; got "
                f"{self.validation_split} + {self.test_split} >= 1."
            )


# --------------------------------------------------------------------------- the data


def read_sentences(path=None, tag_column: str = "upos"):
    """The user's tagged file (CoNLL-U or two columns), or the synthetic set when `path` is
    None; and a description of the source for messages."""
    from rnnkit.datasets import load_tagged, tagging_sentences

    if path is None:
        return tagging_sentences(SYNTHETIC_SENTENCES, seed=0), SYNTHETIC_SOURCE
    return load_tagged(path, tag_column=tag_column), os.fspath(path)


def tokenize(text: str) -> list[str]:
    """Words and punctuation marks, as treebanks split them: "Fly, now!" -> Fly , now !

    A word keeps its inner apostrophes and hyphens ("don't", "well-known").
    """
    return re.findall(r"\w+(?:['’-]\w+)*|[^\w\s]", text)


def _key(word: str, lowercase: bool) -> str:
    return word.lower() if lowercase else word


def build_vocabulary(sentences, lowercase: bool = True, min_count: int = 2) -> list[str]:
    """The words of `sentences` seen at least `min_count` times, most frequent first.

    Returns a list whose index is the word's id: `[PAD_WORD, UNKNOWN_WORD, ...]`.
    """
    counts = collections.Counter(_key(w, lowercase) for tokens, _ in sentences for w in tokens)
    kept = [word for word, n in counts.most_common() if n >= min_count]
    return [PAD_WORD, UNKNOWN_WORD, *kept]


def encode(sentences, words: list[str], tags: list[str], lowercase: bool, max_len: int):
    """Word ids and tag ids, padded after the end: two `(pieces, steps)` int arrays.

    A sentence longer than `max_len` becomes several pieces of at most `max_len` tokens,
    so no token is dropped.
    """
    word_id = {w: i for i, w in enumerate(words)}
    tag_id = {t: i for i, t in enumerate(tags)}
    x, y = [], []
    for tokens, labels in sentences:
        ids = [word_id.get(_key(w, lowercase), UNKNOWN) for w in tokens]
        targets = [tag_id[t] for t in labels]
        for start in range(0, len(ids), max_len):
            x.append(ids[start : start + max_len])
            y.append(targets[start : start + max_len])
    return pad_sequences(x, padding="post"), pad_sequences(y, padding="post")


def split_sentences(count: int, validation_split: float, test_split: float, seed: int):
    """Shuffled sentence indices: `(train, validation, test)`, each a numpy array."""
    n_test, n_val = int(count * test_split), int(count * validation_split)
    n_train = count - n_test - n_val
    if n_test < 1 or n_train < 1 or (validation_split > 0 and n_val < 1):
        need = next(
            n
            for n in range(2, 10**6)
            if int(n * test_split) >= 1
            and (validation_split == 0 or int(n * validation_split) >= 1)
            and n - int(n * test_split) - int(n * validation_split) >= 1
        )
        raise ValueError(
            f"Too few sentences to split: {count} sentence(s) leave {n_train} for training, "
            f"{n_val} for validation and {n_test} for the test (fractions "
            f"{validation_split} and {test_split}). Give at least {need} sentences, separated "
            "by blank lines."
        )
    order = np.random.default_rng(seed).permutation(count)
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


# -------------------------------------------------------------------------- the model


def build_model(settings: TagSettings, n_words: int, n_tags: int):
    """Embedding -> [Bidirectional](cell, every step) -> TimeDistributed(Dense(softmax)).

    `n_tags` counts the padding tag (id 0): the output is `(batch, steps, n_tags)`.
    """
    from rnnkit import Input, Sequential
    from rnnkit.layers import (
        GRU,
        LSTM,
        Bidirectional,
        Dense,
        Embedding,
        SimpleRNN,
        TimeDistributed,
    )
    from rnnkit.optimizers import Adam

    cell = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[settings.cell]
    recurrent = cell(settings.units, return_sequences=True)
    if settings.bidirectional:
        recurrent = Bidirectional(recurrent)
    model = Sequential(
        [
            Input((None,), dtype="int32"),
            Embedding(n_words, settings.embedding_dim, mask_zero=True),
            recurrent,
            TimeDistributed(Dense(n_tags, activation="softmax")),
        ],
        name=f"tagger_{settings.cell}",
    )
    model.compile(
        optimizer=Adam(settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def predicted_tags(probabilities: np.ndarray) -> np.ndarray:
    """The most probable real tag at every step: `(batch, steps, n_tags)` -> `(batch, steps)`.

    Id 0, the padding tag, is never a prediction for a real token.
    """
    return probabilities[..., 1:].argmax(axis=-1) + 1


# ------------------------------------------------------------------------------ scores


def tag_scores(truth, predicted, tags: list[str]) -> dict:
    """Token accuracy, per-tag precision / recall / F1, macro and micro F1.

    Args:
        truth, predicted: 1-D int arrays of tag ids, real tokens only (no padding).
        tags: the tag of each id; id 0 (padding) is not scored.

    Returns:
        `{"accuracy", "macro_f1", "micro_f1", "per_tag": {tag: {"precision", "recall",
        "f1", "support"}}}`. A tag is listed when it occurs in `truth` or `predicted`;
        the macro F1 is the plain mean over the listed tags. With one tag per token, the
        micro F1 equals the accuracy.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    per_tag = {}
    for i, tag in enumerate(tags):
        if i == 0 or not ((truth == i).any() or (predicted == i).any()):
            continue
        tp = int(((predicted == i) & (truth == i)).sum())
        fp = int(((predicted == i) & (truth != i)).sum())
        fn = int(((predicted != i) & (truth == i)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_tag[tag] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    correct = int((truth == predicted).sum())
    wrong = len(truth) - correct  # each wrong token is one false positive and one false negative
    return {
        "accuracy": correct / len(truth) if len(truth) else 0.0,
        "macro_f1": float(np.mean([s["f1"] for s in per_tag.values()])) if per_tag else 0.0,
        "micro_f1": 2 * correct / (2 * correct + 2 * wrong) if len(truth) else 0.0,
        "per_tag": per_tag,
    }


def _most_frequent_tags(sentences, lowercase: bool) -> tuple[dict, dict, str]:
    """Each training word's most frequent tag, the words seen with more than one tag, and
    the most frequent tag overall (for words never seen)."""
    seen = collections.defaultdict(collections.Counter)
    for tokens, labels in sentences:
        for word, tag in zip(tokens, labels):
            seen[_key(word, lowercase)][tag] += 1
    overall = sum(seen.values(), collections.Counter()).most_common(1)[0][0]
    best = {word: counts.most_common(1)[0][0] for word, counts in seen.items()}
    ambiguous = {word for word, counts in seen.items() if len(counts) > 1}
    return best, ambiguous, overall


# ---------------------------------------------------------------------------- training


@dataclass
class TagResult:
    """What a run produced: the model, its settings and scores, the split sizes."""

    model: object
    settings: TagSettings
    metrics: dict
    words: list[str]
    tags: list[str]
    history: dict


def train_tagger(sentences, settings: TagSettings, callbacks=(), summary=None) -> TagResult:
    """Train a tagger on `sentences` and score it on held-out test sentences.

    Args:
        sentences: `[(tokens, tags)]`, e.g. from `rnnkit.datasets.load_tagged`.
        settings: a `TagSettings`.
        callbacks: extra callbacks for `fit` (a progress bar).
        summary: called with the model before training (to print its summary).

    Returns:
        A `TagResult`; `result.model.metadata` holds the vocabularies `tag_texts` needs.
        Its `metrics` hold the test scores beside the most-frequent-tag baseline's, and
        `"memory_horizon"`: how many of a sentence's last tokens its last token's tag
        depends on, measured on the test sentences (`rnnkit._task.memory_horizon`:
        `{"steps", "threshold", "timesteps", "sequences"}`; padding has no influence).

    Example:
        >>> from rnnkit.datasets import tagging_sentences
        >>> result = train_tagger(tagging_sentences(60), TagSettings(units=4, epochs=1))
        >>> sorted(result.metrics)[:3]
        ['accuracy', 'ambiguous', 'baseline']
    """
    from rnnkit.callbacks import EarlyStopping
    from rnnkit.utils import set_random_seed

    settings.check()
    sentences = _check_sentences(sentences)
    tags = [PAD_TAG, *sorted({t for _, labels in sentences for t in labels})]
    if len(tags) < 3:
        raise ValueError(
            f"Every token has the tag {tags[-1]!r}: a tagger needs at least two tags to choose "
            "between. Check the tag column (--tag-column for CoNLL-U files)."
        )
    train_ids, val_ids, test_ids = split_sentences(
        len(sentences), settings.validation_split, settings.test_split, settings.seed
    )
    train = [sentences[i] for i in train_ids]
    validation = [sentences[i] for i in val_ids]
    test = [sentences[i] for i in test_ids]
    words = build_vocabulary(train, settings.lowercase, settings.min_count)

    def arrays(part):
        return encode(part, words, tags, settings.lowercase, settings.max_len)

    x_train, y_train = arrays(train)
    set_random_seed(settings.seed)
    model = build_model(settings, len(words), len(tags))
    if summary is not None:
        summary(model)
    extra = {}
    if validation:
        extra["validation_data"] = arrays(validation)
        callbacks = [
            EarlyStopping(patience=settings.patience, restore_best_weights=True),
            *callbacks,
        ]
    fitted = model.fit(
        x_train,
        y_train,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        callbacks=list(callbacks),
        verbose=0,
        **extra,
    )
    model.metadata = {
        "task": TASK,
        "words": words,
        "tags": tags,
        "lowercase": settings.lowercase,
        "max_len": settings.max_len,
        "cell": settings.cell,
        "bidirectional": settings.bidirectional,
    }
    metrics = evaluate_tagger(model, test, train)
    metrics["memory_horizon"] = memory_horizon(model, arrays(test)[0])
    metrics["sentences"] = {"train": len(train), "validation": len(validation), "test": len(test)}
    metrics["vocabulary"] = len(words) - 2
    metrics["epochs_trained"] = len(fitted.history["loss"])
    metrics["settings"] = dataclasses.asdict(settings)
    return TagResult(model, settings, metrics, words, tags, fitted.history)


def evaluate_tagger(model, test, train) -> dict:
    """Scores of a trained tagger on the `test` sentences, real tokens only; beside them the
    most-frequent-tag baseline from the `train` sentences, overall and on the words seen
    with more than one tag in training (the ones that need context)."""
    meta = model.metadata
    tags, lowercase = meta["tags"], meta["lowercase"]
    x, y = encode(test, meta["words"], tags, lowercase, meta["max_len"])
    real = x != PAD  # (pieces, steps): the tokens; the rest is padding
    predicted = predicted_tags(model.predict(x, batch_size=256))[real]  # (tokens,)
    truth = y[real]
    metrics = tag_scores(truth, predicted, tags)
    metrics["test_tokens"] = int(real.sum())
    metrics["unknown_tokens"] = int((x == UNKNOWN).sum())

    best, ambiguous, overall = _most_frequent_tags(train, lowercase)
    keys = [_key(w, lowercase) for tokens, _ in test for w in tokens]
    tag_id = {t: i for i, t in enumerate(tags)}
    baseline = np.array([tag_id[best.get(k, overall)] for k in keys])
    metrics["baseline"] = {
        "meaning": "each word's most frequent tag in the training sentences",
        "accuracy": float((baseline == truth).mean()),
    }
    hard = np.array([k in ambiguous for k in keys])
    metrics["ambiguous"] = {
        "words": len(ambiguous),
        "test_tokens": int(hard.sum()),
        "accuracy": float((predicted[hard] == truth[hard]).mean()) if hard.any() else None,
        "baseline_accuracy": float((baseline[hard] == truth[hard]).mean()) if hard.any() else None,
    }
    return metrics


def _check_sentences(sentences) -> list:
    sentences = list(sentences)
    for number, sentence in enumerate(sentences, start=1):
        if not isinstance(sentence, (tuple, list)) or len(sentence) != 2:
            raise TypeError(
                f"Sentence {number} is {sentence!r}; expected (tokens, tags), two lists of "
                "strings, as rnnkit.datasets.load_tagged returns."
            )
        tokens, labels = sentence
        if len(tokens) != len(labels) or not tokens:
            raise ValueError(
                f"Sentence {number} has {len(tokens)} tokens and {len(labels)} tags; each "
                "sentence needs one tag per token and at least one token."
            )
    return sentences


# ----------------------------------------------------------------------------- outputs


def write_outputs(result: TagResult, directory: str) -> dict[str, str]:
    """Write the model and the metrics (JSON) into `directory`, each atomically."""
    from rnnkit.saving import write_outputs as write

    return write(directory, result.model, result.metrics)


# ----------------------------------------------------------------------------- predict


# What `tag_texts` reads from a saved model's metadata.
METADATA = ("words", "tags", "lowercase", "max_len")


def check_tag_model(model, name: str | None = None) -> dict:
    """The metadata of a model saved by `rnnkit tag`, or a ValueError saying what is off.

    `name` is what messages call the model (its file); default: the model's name.
    """
    name = name or f"The model '{model.name}'"
    return task_metadata(model, TASK, METADATA, name, "it cannot tag tokens")


def unknown_words(model, tokens) -> list[str]:
    """The tokens a saved tagger never saw in training (tagged from their context alone)."""
    meta = check_tag_model(model)
    known = set(meta["words"][2:])
    return [w for w in tokens if _key(w, meta["lowercase"]) not in known]


def tag_texts(model, texts) -> list[list[tuple[str, str]]]:
    """Tag each text with a model saved by `rnnkit tag`.

    Args:
        model: the tagger; its `metadata` holds the vocabularies.
        texts: strings (split by `tokenize`, as treebanks split words and punctuation)
            or lists of tokens.

    Returns:
        For each text, `[(token, tag), ...]`. Words the model never saw get id 1, the
        unknown word, and a tag from their context.

    Example:
        >>> from rnnkit.datasets import tagging_sentences
        >>> result = train_tagger(tagging_sentences(60), TagSettings(units=4, epochs=1))
        >>> [token for token, _ in tag_texts(result.model, ["The dog sleeps."])[0]]
        ['The', 'dog', 'sleeps', '.']
    """
    meta = check_tag_model(model)
    if isinstance(texts, str):
        texts = [texts]
    token_lists = []
    for number, text in enumerate(texts, start=1):
        tokens = tokenize(text) if isinstance(text, str) else [str(t) for t in text]
        if not tokens:
            raise ValueError(f"Text {number} ({text!r}) has no words to tag.")
        token_lists.append(tokens)
    tags = meta["tags"]
    placeholder = [(tokens, [tags[1]] * len(tokens)) for tokens in token_lists]
    x, _ = encode(placeholder, meta["words"], tags, meta["lowercase"], meta["max_len"])
    ids = predicted_tags(model.predict(x, batch_size=256))  # (pieces, steps)
    out, piece = [], 0
    for tokens in token_lists:
        found = []
        while len(found) < len(tokens):  # the pieces of one text follow each other
            found += ids[piece][: min(meta["max_len"], len(tokens) - len(found))].tolist()
            piece += 1
        out.append([(token, tags[i]) for token, i in zip(tokens, found)])
    return out
