"""`compile` / `fit` / `evaluate` / `predict` against Keras 3 (torch backend).

Each test builds the same model in both libraries (a function of `lib`), copies the
Keras weights into rnnkit, trains both for one epoch on the same data in the same order
(`shuffle=False`) with the same optimizer, and compares the weights left behind and the
`History` both return. Keras reports the epoch loss as the batch-size-weighted mean of
the batch losses; 44 samples in batches of 8 leave a short last batch to check that.
"""

from types import SimpleNamespace

import keras
import numpy as np
import pytest
from conftest import assert_close, copy_weights

import rnnkit
import rnnkit.optimizers
import rnnkit.regularizers

KERAS = SimpleNamespace(
    L=keras.layers,
    Sequential=keras.Sequential,
    optimizers=keras.optimizers,
    regularizers=keras.regularizers,
)
RNNKIT = SimpleNamespace(
    L=rnnkit.layers,
    Sequential=rnnkit.Sequential,
    optimizers=rnnkit.optimizers,
    regularizers=rnnkit.regularizers,
)

N, T, D, BATCH = 44, 6, 3, 8
VOCAB, TAGS = 15, 4
TOL = 1e-4

OPTIMIZERS = {
    "sgd": ("SGD", {"learning_rate": 0.1}),
    "sgd_momentum": ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    "adam": ("Adam", {"learning_rate": 0.01}),
}


# ------------------------------------------------------------------ models
def regressor(lib, kernel_regularizer=None):
    L = lib.L
    reg = kernel_regularizer and getattr(lib.regularizers, kernel_regularizer[0])(
        **kernel_regularizer[1]
    )
    return lib.Sequential(
        [
            L.Input(shape=(T, D)),
            L.SimpleRNN(5, kernel_regularizer=reg),
            L.Dense(1, kernel_regularizer=reg),
        ]
    )


def classifier(lib, units=1, activation="sigmoid"):
    L = lib.L
    return lib.Sequential(
        [L.Input(shape=(T, D)), L.SimpleRNN(5), L.Dense(units, activation=activation)]
    )


def tagger(lib):
    L = lib.L
    return lib.Sequential(
        [
            L.Input(shape=(T,), dtype="int32"),
            L.Embedding(VOCAB, 4, mask_zero=True),
            L.SimpleRNN(5, return_sequences=True),
            L.TimeDistributed(L.Dense(TAGS, activation="softmax")),
        ]
    )


# -------------------------------------------------------------------- data
def sequences(rng, n=N):
    return rng.normal(size=(n, T, D)).astype("float32")


def binary_targets(x):
    return (x[:, :, 0].sum(axis=1) > 0).astype("float32")


def padded_tags(rng, n=20):
    """Token ids right-padded with 0 to length T, and a tag per step (0 under the padding).

    20 sequences: batches of 8, 8 and 4 (Keras' masked RNN is slow on torch, ~0.1 s a step).
    """
    ids = rng.integers(1, VOCAB, size=(n, T)).astype("int32")
    lengths = rng.integers(2, T + 1, size=n)
    steps = np.arange(T)[None, :]
    ids[steps >= lengths[:, None]] = 0
    tags = (ids % TAGS).astype("int32")
    return ids, tags


# ---------------------------------------------------------------- helpers
def build_pair(build, rng, **kwargs):
    theirs, ours = build(KERAS, **kwargs), build(RNNKIT, **kwargs)
    copy_weights(theirs, ours, rng)
    return theirs, ours


def compile_pair(pair, optimizer="sgd", **compile_kwargs):
    name, config = OPTIMIZERS[optimizer]
    for lib, model in zip((KERAS, RNNKIT), pair):
        model.compile(optimizer=getattr(lib.optimizers, name)(**config), **compile_kwargs)


def fit_pair(pair, *args, **kwargs):
    kwargs = {"batch_size": BATCH, "epochs": 1, "shuffle": False, "verbose": 0, **kwargs}
    return [model.fit(*args, **kwargs) for model in pair]


def assert_same_weights(pair, atol=TOL):
    theirs, ours = pair
    assert_close(ours.get_weights(), theirs.get_weights(), atol=atol)


def assert_same_history(histories, atol=TOL):
    theirs, ours = histories
    assert list(ours.history) == list(theirs.history)
    assert ours.epoch == theirs.epoch
    for key, values in theirs.history.items():
        np.testing.assert_allclose(ours.history[key], values, rtol=0, atol=atol, err_msg=key)


# ----------------------------------------------------------------- fit
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fit_regressor_mse(rng, optimizer):
    pair = build_pair(regressor, rng)
    start = [w.copy() for w in pair[0].get_weights()]
    compile_pair(pair, optimizer, loss="mse")
    x = sequences(rng)
    y = x[:, -1, :1] * 2.0 + 0.5
    histories = fit_pair(pair, x, y)
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(pair[0].get_weights(), start))
    assert_same_weights(pair)
    assert_same_history(histories)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fit_binary_classifier_history(rng, optimizer):
    pair = build_pair(classifier, rng)
    compile_pair(pair, optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    x = sequences(rng)
    histories = fit_pair(pair, x, binary_targets(x), epochs=2)
    assert list(histories[0].history) == ["accuracy", "loss"]
    assert_same_weights(pair)
    assert_same_history(histories)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fit_masked_tagger_sparse_ce(rng, optimizer):
    pair = build_pair(tagger, rng)
    compile_pair(pair, optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ids, tags = padded_tags(rng)
    histories = fit_pair(pair, ids, tags)
    assert_same_weights(pair)
    assert_same_history(histories)


def test_masked_steps_count_in_neither_loss_nor_metrics(rng):
    """Changing the tags under the padding changes nothing, in Keras and in rnnkit."""
    ids, tags = padded_tags(rng)
    other = tags.copy()
    other[ids == 0] = (other[ids == 0] + 1) % TAGS
    results = []
    for targets in (tags, other):
        pair = build_pair(tagger, np.random.default_rng(1))
        compile_pair(pair, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        histories = fit_pair(pair, ids, targets)
        assert_same_weights(pair)
        assert_same_history(histories)
        results.append((histories[1].history, pair[1].get_weights()))
    for key, values in results[0][0].items():
        np.testing.assert_allclose(results[1][0][key], values, atol=1e-6)
    assert_close(results[0][1], results[1][1], atol=1e-6)


def test_fit_validation_data(rng):
    pair = build_pair(classifier, rng)
    compile_pair(pair, loss="binary_crossentropy", metrics=["accuracy"])
    x, x_val = sequences(rng), sequences(rng, 13)
    histories = fit_pair(
        pair, x, binary_targets(x), epochs=2, validation_data=(x_val, binary_targets(x_val))
    )
    assert list(histories[1].history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert_same_weights(pair)
    assert_same_history(histories)


def test_fit_validation_split(rng):
    """Keras holds out the last floor-complement of the samples, before any shuffling."""
    pair = build_pair(classifier, rng)
    compile_pair(pair, loss="binary_crossentropy", metrics=["accuracy"])
    x = sequences(rng)
    histories = fit_pair(pair, x, binary_targets(x), validation_split=0.3)
    assert "val_loss" in histories[1].history
    assert_same_weights(pair)
    assert_same_history(histories)


@pytest.mark.parametrize("weighting", ["sample_weight", "class_weight"])
def test_fit_validation_split_keeps_sample_weight_not_class_weight(rng, weighting):
    """The held-out samples keep their sample_weight; class_weight only weights training."""
    pair = build_pair(classifier, rng)
    compile_pair(pair, loss="binary_crossentropy", weighted_metrics=["accuracy"])
    x = sequences(rng)
    weights = {
        "sample_weight": rng.uniform(0.0, 3.0, size=N).astype("float32"),
        "class_weight": {0: 2.0, 1: 0.5},
    }[weighting]
    histories = fit_pair(pair, x, binary_targets(x), validation_split=0.25, **{weighting: weights})
    assert_same_weights(pair)
    assert_same_history(histories)


def test_fit_validation_data_with_sample_weight_every_second_epoch(rng):
    pair = build_pair(regressor, rng)
    compile_pair(pair, loss="mse")
    x, x_val = sequences(rng), sequences(rng, 10)
    w_val = rng.uniform(0.1, 2.0, size=10).astype("float32")
    histories = fit_pair(
        pair,
        x,
        x[:, 0, :1],
        epochs=3,
        validation_data=(x_val, x_val[:, 0, :1], w_val),
        validation_freq=2,
    )
    assert len(histories[1].history["val_loss"]) == 1  # after the second epoch only
    assert_same_weights(pair)
    assert_same_history(histories)


def test_fit_sample_weight(rng):
    pair = build_pair(classifier, rng)
    compile_pair(pair, "sgd_momentum", loss="binary_crossentropy", metrics=["accuracy"])
    x = sequences(rng)
    weights = rng.uniform(0.0, 3.0, size=N).astype("float32")
    histories = fit_pair(pair, x, binary_targets(x), sample_weight=weights, epochs=2)
    assert_same_weights(pair)
    assert_same_history(histories)


def test_metrics_ignore_sample_weight_weighted_metrics_use_it(rng):
    """Keras weights `weighted_metrics` only; the same name in both becomes `weighted_...`."""
    pair = build_pair(classifier, rng)
    compile_pair(
        pair,
        loss="binary_crossentropy",
        metrics=["accuracy", "mae"],
        weighted_metrics=["accuracy", "mse"],
    )
    x = sequences(rng)
    weights = np.where(binary_targets(x) > 0, 3.0, 0.2).astype("float32")
    histories = fit_pair(
        pair, x, binary_targets(x), sample_weight=weights, validation_data=(x[:9], x[:9, 0, 0] > 0)
    )
    assert "weighted_accuracy" in histories[1].history
    assert histories[1].history["weighted_accuracy"] != histories[1].history["accuracy"]
    assert_same_weights(pair)
    assert_same_history(histories)


def test_fit_per_step_sample_weight_on_tagger(rng):
    pair = build_pair(tagger, rng)
    compile_pair(pair, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ids, tags = padded_tags(rng)
    weights = rng.uniform(0.0, 2.0, size=tags.shape).astype("float32")
    histories = fit_pair(pair, ids, tags, sample_weight=weights)
    assert_same_weights(pair)
    assert_same_history(histories)


def test_fit_class_weight_binary(rng):
    pair = build_pair(classifier, rng)
    compile_pair(pair, loss="binary_crossentropy", metrics=["accuracy"])
    x = sequences(rng)
    histories = fit_pair(pair, x, binary_targets(x), class_weight={0: 0.3, 1: 2.5}, epochs=2)
    assert_same_weights(pair)
    assert_same_history(histories)


def test_fit_class_weight_sparse(rng):
    pair = build_pair(classifier, rng, units=3, activation="softmax")
    compile_pair(pair, "adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = sequences(rng)
    y = np.digitize(x[:, :, 0].sum(axis=1), [-1.0, 1.0]).astype("int32")
    histories = fit_pair(pair, x, y, class_weight={0: 1.0, 1: 0.2, 2: 3.0})
    assert_same_weights(pair)
    assert_same_history(histories)


def test_fit_class_weight_one_hot(rng):
    pair = build_pair(classifier, rng, units=3, activation="softmax")
    compile_pair(pair, loss="categorical_crossentropy", metrics=["accuracy"])
    x = sequences(rng)
    y = np.eye(3, dtype="float32")[np.digitize(x[:, :, 0].sum(axis=1), [-1.0, 1.0])]
    histories = fit_pair(pair, x, y, class_weight={0: 1.0, 1: 0.2, 2: 3.0})
    assert_same_weights(pair)
    assert_same_history(histories)


@pytest.mark.parametrize(
    "regularizer", [("L2", {"l2": 0.05}), ("L1", {"l1": 0.02}), ("L1L2", {"l1": 0.01, "l2": 0.03})]
)
def test_fit_kernel_regularizer_adds_penalty_to_loss(rng, regularizer):
    pair = build_pair(regressor, rng, kernel_regularizer=regularizer)
    compile_pair(pair, loss="mse")
    x = sequences(rng)
    y = x[:, -1, :1]
    histories = fit_pair(pair, x, y, validation_data=(x[:10], y[:10]))
    assert_same_weights(pair)
    assert_same_history(histories)
    # evaluate reports the loss plus the penalty, in Keras and here: check it by hand.
    factors = regularizer[1]
    l1, l2 = factors.get("l1", 0.0), factors.get("l2", 0.0)
    weights = pair[1].get_weights()
    penalty = sum(l1 * np.abs(k).sum() + l2 * np.square(k).sum() for k in (weights[0], weights[3]))
    mse = np.mean((pair[1].predict(x, verbose=0) - y) ** 2)
    evaluated = [m.evaluate(x, y, verbose=0) for m in pair]
    assert evaluated[1] == pytest.approx(evaluated[0], abs=TOL)
    assert evaluated[1] == pytest.approx(mse + penalty, abs=TOL)
    assert penalty > 0.01


# ------------------------------------------------------ evaluate / predict
@pytest.mark.parametrize("batch_size", [None, 5])
def test_evaluate_and_predict_equal_keras(rng, batch_size):
    pair = build_pair(classifier, rng)
    compile_pair(pair, loss="binary_crossentropy", metrics=["accuracy", "mae"])
    x = sequences(rng, 37)
    y = binary_targets(x)
    theirs, ours = pair
    listed = [m.evaluate(x, y, batch_size=batch_size, verbose=0) for m in pair]
    assert isinstance(listed[1], list) and len(listed[1]) == 3
    np.testing.assert_allclose(listed[1], listed[0], rtol=0, atol=TOL)
    named = [m.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True) for m in pair]
    assert list(named[1]) == list(named[0])
    np.testing.assert_allclose(list(named[1].values()), list(named[0].values()), atol=TOL)
    predicted = ours.predict(x, batch_size=batch_size, verbose=0)
    assert isinstance(predicted, np.ndarray)
    assert_close(predicted, theirs.predict(x, batch_size=batch_size, verbose=0), atol=TOL)


def test_evaluate_loss_only_returns_a_float(rng):
    pair = build_pair(regressor, rng)
    compile_pair(pair, loss="mse")
    x = sequences(rng, 20)
    y = x[:, 0, :1]
    theirs, ours = (m.evaluate(x, y, verbose=0) for m in pair)
    assert isinstance(ours, float)
    assert ours == pytest.approx(theirs, abs=TOL)


def test_evaluate_sample_weight_and_masked_tagger(rng):
    pair = build_pair(tagger, rng)
    compile_pair(pair, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ids, tags = padded_tags(rng)
    weights = rng.uniform(0.0, 2.0, size=tags.shape).astype("float32")
    results = [
        m.evaluate(ids, tags, sample_weight=weights, batch_size=16, verbose=0, return_dict=True)
        for m in pair
    ]
    assert list(results[1]) == list(results[0])
    np.testing.assert_allclose(list(results[1].values()), list(results[0].values()), atol=TOL)
    assert_close(pair[1].predict(ids, verbose=0), pair[0].predict(ids, verbose=0), atol=TOL)


def test_evaluate_after_fit(rng):
    pair = build_pair(classifier, rng)
    compile_pair(pair, "adam", loss="binary_crossentropy", metrics=["accuracy"])
    x = sequences(rng)
    fit_pair(pair, x, binary_targets(x), epochs=2)
    theirs, ours = (m.evaluate(x, binary_targets(x), verbose=0) for m in pair)
    np.testing.assert_allclose(ours, theirs, atol=TOL)


# ----------------------------------------------------- 'accuracy' resolution
ACCURACY_CLASS = {
    "binary": "BinaryAccuracy",
    "categorical": "CategoricalAccuracy",
    "sparse": "SparseCategoricalAccuracy",
}


def _accuracy_case(kind, rng):
    x = sequences(rng)
    classes = np.digitize(x[:, :, 0].sum(axis=1), [-1.0, 1.0])
    if kind == "binary":
        return {}, "binary_crossentropy", x, binary_targets(x)
    if kind == "categorical":
        return (
            {"units": 3, "activation": "softmax"},
            "categorical_crossentropy",
            x,
            np.eye(3, dtype="float32")[classes],
        )
    return {"units": 3, "activation": "softmax"}, "sparse_categorical_crossentropy", x, classes


@pytest.mark.parametrize("kind", ["binary", "categorical", "sparse"])
@pytest.mark.parametrize("name", ["accuracy", "acc"])
def test_accuracy_resolves_as_keras(rng, kind, name):
    build_kwargs, loss, x, y = _accuracy_case(kind, rng)
    pair = build_pair(classifier, rng, **build_kwargs)
    compile_pair(pair, loss=loss, metrics=[name])
    histories = fit_pair(pair, x, y, validation_data=(x[:12], y[:12]))
    assert sorted(histories[1].history) == sorted(histories[0].history)
    assert name in histories[1].history
    assert_same_history(histories)
    # The metric each resolved "accuracy" to, read from Keras' compiled metrics.
    (keras_metric,) = pair[0]._compile_metrics._flat_metrics[0].metrics
    assert type(keras_metric).__name__ == ACCURACY_CLASS[kind]
    assert type(pair[1].compiled_metrics[0]).__name__ == ACCURACY_CLASS[kind]
