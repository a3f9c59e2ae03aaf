"""`fit` / `evaluate` / `predict` behaviour: learning, data formats, seeds, printing, errors.

Numbers against Keras live in test_training_parity.py; here Keras is the oracle where it
has an answer (stopping mid-epoch, `initial_epoch`, the callback hooks, stateful layers).
Elsewhere a run on numpy arrays is the reference the other data formats must reproduce
exactly, and bad calls must fail before the first step, leaving the weights untouched.
"""

import itertools

import keras
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_close, copy_weights
from torch.utils.data import DataLoader, Dataset, TensorDataset

import rnnkit
from rnnkit import Input, Sequential, layers
from rnnkit.callbacks import Callback
from rnnkit.layers import Dense, Dropout, Embedding, SimpleRNN
from rnnkit.optimizers import SGD
from rnnkit.utils import set_random_seed

N, T, VOCAB, BATCH = 24, 5, 20, 8


@pytest.fixture
def one_thread():
    """Batches of 32 x 64 gain nothing from intra-op threads, and on a busy machine the
    threads wait on each other (10x slower); the learning test runs on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------- seed 001 learns
def count_task(n, length=10, maxlen=100, seed=0):
    """Token ids, pre-padded with 0 to `maxlen`: is token 1 ("good") more frequent than
    token 2 ("bad")? The counts differ by 2 or 3; other tokens are noise from 3..9999."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 10000, size=(n, length))
    label = rng.integers(0, 2, size=n)
    few = rng.integers(0, 3, size=n)
    many = few + rng.integers(2, 4, size=n)
    good, bad = np.where(label == 1, many, few), np.where(label == 1, few, many)
    for i in range(n):
        slots = rng.choice(length, size=good[i] + bad[i], replace=False)
        ids[i, slots[: good[i]]] = 1
        ids[i, slots[good[i] :]] = 2
    x = np.zeros((n, maxlen), dtype="int64")
    x[:, -length:] = ids
    return x, label.astype("float32")


def test_seed_001_model_learns_a_counting_task(one_thread):
    set_random_seed(0)
    x, y = count_task(1000)
    assert 0.4 < y.mean() < 0.6  # balanced: guessing one class scores ~0.5
    model = Sequential(
        [
            Embedding(input_dim=10000, output_dim=64, input_length=100),
            SimpleRNN(64),
            Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=4, batch_size=32, validation_split=0.2, verbose=0)
    assert history.epoch == [0, 1, 2, 3]
    assert history.history["val_accuracy"][-1] >= 0.9
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    x_new, y_new = count_task(200, seed=1)
    _, accuracy = model.evaluate(x_new, y_new, verbose=0)
    assert accuracy >= 0.9
    assert ((model.predict(x_new)[:, 0] > 0.5) == y_new).mean() == pytest.approx(accuracy)


# ---------------------------------------------------------------- data formats
def token_model(weights=None):
    model = Sequential(
        [
            Input(shape=(T,), dtype="int32"),
            Embedding(VOCAB, 4),
            SimpleRNN(4),
            Dense(1, activation="sigmoid"),
        ]
    )
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=SGD(learning_rate=0.5), loss="binary_crossentropy", metrics=["acc"])
    return model


def token_data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(n, T)).astype("int64")
    return ids, (ids[:, -1] >= VOCAB // 2).astype("float32")


class PairDataset(Dataset):
    """A map-style Dataset yielding numpy `(x_i, y_i)` pairs."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def forever(x, y, w=None):
    """A generator of `(x, y[, w])` batches, round and round."""
    while True:
        for start in range(0, len(x), BATCH):
            part = slice(start, start + BATCH)
            yield (x[part], y[part]) if w is None else (x[part], y[part], w[part])


def _formats():
    x, y = token_data()
    xt, yt = torch.tensor(x), torch.tensor(y)
    return {
        "pandas": ((pd.DataFrame(x), pd.Series(y)), {}),
        "torch tensors": ((xt, yt), {}),
        "nested lists": ((x.tolist(), y.tolist()), {}),
        "int32 and (N, 1) targets": ((x.astype("int32"), y[:, None]), {}),
        "TensorDataset": ((TensorDataset(xt, yt),), {}),
        "map-style Dataset": ((PairDataset(x, y),), {}),
        "DataLoader": ((DataLoader(TensorDataset(xt, yt), batch_size=BATCH),), {}),
        "generator": ((forever(x, y),), {"steps_per_epoch": N // BATCH}),
    }


@pytest.mark.parametrize("name", list(_formats()))
def test_fit_data_formats_match_numpy(name):
    args, kwargs = _formats()[name]
    start = token_model().get_weights()
    x, y = token_data()
    reference = token_model(start)
    expected = reference.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    model = token_model(start)
    history = model.fit(*args, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, **kwargs)
    assert history.epoch == expected.epoch == [0, 1]
    assert list(history.history) == ["acc", "loss"]
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=0, atol=1e-6)
    assert_close(model.get_weights(), reference.get_weights(), atol=1e-6)
    assert expected.history["loss"][1] != expected.history["loss"][0]  # it did train


def test_generator_sample_weight_and_validation_dataloader_match_numpy():
    x, y = token_data()
    xv, yv = token_data(10, seed=1)
    w = np.linspace(0.1, 2.0, N).astype("float32")
    start = token_model().get_weights()
    reference = token_model(start)
    expected = reference.fit(
        x, y, sample_weight=w, validation_data=(xv, yv), batch_size=BATCH, shuffle=False, verbose=0
    )
    model = token_model(start)
    val_loader = DataLoader(TensorDataset(torch.tensor(xv), torch.tensor(yv)), batch_size=BATCH)
    history = model.fit(
        forever(x, y, w), steps_per_epoch=N // BATCH, validation_data=val_loader, verbose=0
    )
    assert list(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=0, atol=1e-6)
    assert_close(model.get_weights(), reference.get_weights(), atol=1e-6)


def test_finite_generator_without_steps_runs_one_epoch():
    x, y = token_data()
    model = token_model()
    history = model.fit(itertools.islice(forever(x, y), N // BATCH), verbose=0)
    assert history.epoch == [0]
    with pytest.raises(ValueError, match="yielded no batches this epoch.*steps_per_epoch="):
        model.fit(itertools.islice(forever(x, y), 1), epochs=2, verbose=0)


@pytest.mark.parametrize("form", ["pandas", "torch", "list"])
def test_evaluate_and_predict_accept_the_same_formats(form):
    x, y = token_data()
    model = token_model()
    convert = {
        "pandas": lambda a: pd.DataFrame(a) if a.ndim == 2 else pd.Series(a),
        "torch": torch.tensor,
        "list": lambda a: a.tolist(),
    }[form]
    assert model.evaluate(convert(x), convert(y), verbose=0) == pytest.approx(
        model.evaluate(x, y, verbose=0), abs=1e-6
    )
    assert_close(model.predict(convert(x), batch_size=7), model.predict(x), atol=1e-6)


# ---------------------------------------------------------------- determinism
def _seeded_run(seed):
    set_random_seed(seed)
    x, y = token_data(40)
    model = Sequential(
        [
            Input(shape=(T,), dtype="int32"),
            Embedding(VOCAB, 4),
            SimpleRNN(6, dropout=0.3, recurrent_dropout=0.3),
            Dropout(0.2),
            Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=True, validation_split=0.2, verbose=0)
    return history.history, model.get_weights()


def test_set_random_seed_makes_fit_repeat_exactly():
    history, weights = _seeded_run(7)
    again_history, again_weights = _seeded_run(7)
    assert again_history == history
    assert all(np.array_equal(a, b) for a, b in zip(again_weights, weights))
    other_history, other_weights = _seeded_run(8)
    assert other_history["loss"] != history["loss"]
    assert not any(np.array_equal(a, b) for a, b in zip(other_weights, weights))


def test_shuffle_and_dropout_draw_from_the_seed_not_only_the_init():
    """Same initial weights, different seeds for fitting: shuffling/dropout differ."""
    start = token_model().get_weights()
    x, y = token_data()
    runs = []
    for seed in (1, 1, 2):
        model = token_model(start)
        set_random_seed(seed)
        runs.append(model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0).history["loss"])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


# ------------------------------------------------------------------- printing
def _fit_printing(verbose, epochs=3):
    x, y = token_data()
    return token_model().fit(
        x, y, batch_size=BATCH, epochs=epochs, validation_split=0.25, verbose=verbose
    )


def test_verbose_0_prints_nothing(capsys):
    _fit_printing(0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("verbose", [2, "auto"])  # auto: not a terminal here, so 2
def test_verbose_2_prints_one_line_per_epoch(capsys, verbose):
    history = _fit_printing(verbose)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for epoch, line in enumerate(lines):
        assert line.startswith(f"Epoch {epoch + 1}/3")
        for key in ("acc", "loss", "val_acc", "val_loss"):
            assert f" {key}: {history.history[key][epoch]:.4f}" in line


def test_verbose_1_without_a_terminal_still_trains(capsys):
    history = _fit_printing(1, epochs=2)
    out = capsys.readouterr().out
    assert history.epoch == [0, 1]
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert f"{history.history['loss'][-1]:.4f}" in out


# --------------------------------------------- stopping and resuming, vs Keras
def _keras_and_ours(rng):
    def build(L, sequential):
        return sequential([L.Input(shape=(T, 2)), L.SimpleRNN(3), L.Dense(1, activation="sigmoid")])

    theirs = build(keras.layers, keras.Sequential)
    ours = build(rnnkit.layers, Sequential)
    copy_weights(theirs, ours, rng)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    ours.compile(optimizer=SGD(0.1), loss="binary_crossentropy")
    x = rng.normal(size=(N, T, 2)).astype("float32")
    return theirs, ours, x, (x[:, 0, 0] > 0).astype("float32")


def test_stop_training_from_a_callback_stops_after_that_batch(rng):
    theirs, ours, x, y = _keras_and_ours(rng)

    def stopper(base):
        class StopAfterSecondBatch(base):
            batches = []

            def on_train_batch_end(self, batch, logs=None):
                self.batches.append(batch)
                if batch == 1:
                    self.model.stop_training = True

        return StopAfterSecondBatch()

    keras_stop, our_stop = stopper(keras.callbacks.Callback), stopper(Callback)
    kw = {"batch_size": BATCH, "epochs": 3, "shuffle": False, "verbose": 0}
    expected = theirs.fit(x, y, callbacks=[keras_stop], **kw)
    history = ours.fit(x, y, callbacks=[our_stop], **kw)
    assert our_stop.batches == keras_stop.batches == [0, 1]
    assert history.epoch == expected.epoch == [0]
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], atol=1e-5)
    assert_close(ours.get_weights(), theirs.get_weights(), atol=1e-5)


def test_initial_epoch_skips_epochs(rng):
    theirs, ours, x, y = _keras_and_ours(rng)
    kw = {"batch_size": BATCH, "epochs": 4, "initial_epoch": 2, "shuffle": False, "verbose": 0}
    expected, history = theirs.fit(x, y, **kw), ours.fit(x, y, **kw)
    assert history.epoch == expected.epoch == [2, 3]
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], atol=1e-5)
    assert_close(ours.get_weights(), theirs.get_weights(), atol=1e-5)


def _hook_recorder(base):
    class Recorder(base):
        def __init__(self):
            super().__init__()
            self.calls = []

    hooks = [
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_batch_begin",
        "on_train_batch_end",
        "on_test_begin",
        "on_test_end",
        "on_test_batch_begin",
        "on_test_batch_end",
    ]
    for hook in hooks:

        def record(self, *args, _hook=hook, **kwargs):
            index = args[0] if args and isinstance(args[0], int) else None
            logs = kwargs.get("logs", args[-1] if args and isinstance(args[-1], dict) else None)
            self.calls.append((_hook, index, sorted(logs) if logs else None))

        setattr(Recorder, hook, record)
    return Recorder()


def test_fit_and_evaluate_call_the_hooks_keras_calls(rng):
    """Same hooks, same order, same batch/epoch numbers and the same log keys; validation
    runs the test hooks, with the validation results under plain keys in on_test_end."""
    theirs, ours, x, y = _keras_and_ours(rng)
    for model in (theirs, ours):
        model.compile(optimizer=model.optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    recorders = [_hook_recorder(keras.callbacks.Callback), _hook_recorder(Callback)]
    for model, recorder in zip((theirs, ours), recorders):
        model.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=2,
            validation_split=0.25,
            shuffle=False,
            verbose=0,
            callbacks=[recorder],
        )
        model.evaluate(x, y, batch_size=10, verbose=0, callbacks=[recorder])
    keras_calls, our_calls = recorders[0].calls, recorders[1].calls
    assert ("on_test_end", None, ["accuracy", "loss"]) in keras_calls
    assert our_calls == keras_calls


def test_fit_and_evaluate_leave_stateful_layers_carrying_on_as_keras(rng):
    """A stateful SimpleRNN carries its state from one call to the next, also across fit and
    evaluate calls; checking the data before training must not advance it."""

    def build(L, sequential):
        return sequential(
            [L.Input(batch_shape=(4, T, 2)), L.SimpleRNN(3, stateful=True), L.Dense(1)]
        )

    theirs, ours = build(keras.layers, keras.Sequential), build(rnnkit.layers, Sequential)
    copy_weights(theirs, ours, rng)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ours.compile(optimizer=SGD(0.1), loss="mse")
    x = rng.normal(size=(3, 4, T, 2)).astype("float32")  # three consecutive chunks
    y = x[:, :, -1, :1]
    for model in (theirs, ours):
        model.evaluate(x[0], y[0], batch_size=4, verbose=0)
    kw = {"batch_size": 4, "shuffle": False, "verbose": 0}
    expected, history = theirs.fit(x[1], y[1], **kw), ours.fit(x[1], y[1], **kw)
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], atol=1e-5)
    assert ours.evaluate(x[2], y[2], batch_size=4, verbose=0) == pytest.approx(
        theirs.evaluate(x[2], y[2], batch_size=4, verbose=0), abs=1e-5
    )
    assert_close(ours.get_weights(), theirs.get_weights(), atol=1e-5)


# ------------------------------------------------------------------- bad input
def seq_model(units=1, activation="sigmoid", loss="binary_crossentropy", compile=True):
    model = Sequential([Input(shape=(T, 2)), SimpleRNN(3), Dense(units, activation=activation)])
    if compile:
        model.compile(optimizer=SGD(learning_rate=0.5), loss=loss, metrics=["accuracy"])
    return model


def seq_data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, 2)).astype("float32")
    return x, (x[:, 0, 0] > 0).astype("float32")


def _poisoned(where, value):
    x, y = seq_data()
    x, y = x.copy(), y.copy()
    if where == "x":
        x[3, 2, 1] = value
    else:
        y[5] = value
    return x, y


def _with(x=None, y=None, **kwargs):
    dx, dy = seq_data()
    return {"x": dx if x is None else x, "y": dy if y is None else y, **kwargs}


X, Y = seq_data()
XT, YT = torch.tensor(X), torch.tensor(Y)
CLASSES = np.arange(N) % 3

# (id, model settings, fit arguments, message). Every case must fail before the first step.
BAD_FITS = [
    ("x/y counts", {}, _with(y=Y[:20]), r"x has 24 samples but y has 20\. They must have"),
    (
        "3 classes into binary_crossentropy",
        {},
        _with(y=CLASSES),
        r"needs targets in \[0, 1\] \(two classes\); got values from 0 to 2 \(3 distinct\)\. "
        r"For 3 classes use loss='sparse_categorical_crossentropy' with a last layer Dense\(3",
    ),
    (
        "floats into sparse CE",
        {"units": 3, "activation": "softmax", "loss": "sparse_categorical_crossentropy"},
        _with(y=X[:, 0, 0]),
        r"needs integer class ids as targets; got non-integer values\. For real-valued",
    ),
    (
        "class ids beyond the units",
        {"units": 3, "activation": "softmax", "loss": "sparse_categorical_crossentropy"},
        _with(y=np.arange(N) % 5),
        r"targets go up to class 4, but the model outputs 3 classes\. Make the last layer "
        r"Dense\(5, activation='softmax'\)",
    ),
    (
        "negative class ids",
        {"units": 3, "activation": "softmax", "loss": "sparse_categorical_crossentropy"},
        _with(y=CLASSES - 1),
        r"needs class ids from 0 up; got -1",
    ),
    (
        "one-hot into sparse CE",
        {"units": 3, "activation": "softmax", "loss": "sparse_categorical_crossentropy"},
        _with(y=np.eye(3)[CLASSES]),
        r"got shape \(24, 3\), which looks one-hot\. For one-hot targets use "
        r"loss='categorical_crossentropy'",
    ),
    (
        "class ids into categorical CE",
        {"units": 3, "activation": "softmax", "loss": "categorical_crossentropy"},
        _with(y=CLASSES),
        r"needs one-hot targets of shape \(\.\.\., 3\) like the model's output; got shape "
        r"\(24,\)\. For integer class ids use loss='sparse_categorical_crossentropy'",
    ),
    ("NaN in x", {}, dict(zip("xy", _poisoned("x", np.nan))), r"x contains 1 NaN or infinite"),
    ("inf in x", {}, dict(zip("xy", _poisoned("x", -np.inf))), r"x contains 1 NaN or infinite"),
    ("NaN in y", {}, dict(zip("xy", _poisoned("y", np.nan))), r"y contains 1 NaN or infinite"),
    (
        "inf in y (mse)",
        {"loss": "mse"},
        dict(zip("xy", _poisoned("y", np.inf))),
        r"y contains 1 NaN or infinite value\(s\)\. Fill or drop them",
    ),
    (
        "NaN in sample_weight",
        {},
        _with(sample_weight=np.where(np.arange(N) == 4, np.nan, 1.0)),
        r"sample_weight contains 1 NaN",
    ),
    (
        "sample_weight length",
        {},
        _with(sample_weight=np.ones(N - 1)),
        r"sample_weight has 23 entries for 24 samples",
    ),
    ("validation_split < 0", {}, _with(validation_split=-0.1), r"must be in \[0, 1\); got -0\.1"),
    ("validation_split = 1", {}, _with(validation_split=1.0), r"must be in \[0, 1\); got 1\.0"),
    ("validation_split str", {}, _with(validation_split="0.2"), r"must be in \[0, 1\); got '0\.2'"),
    (
        "validation_split leaves no training data",
        {},
        _with(validation_split=0.99),
        r"validation_split=0\.99 of 24 samples leaves an empty training or validation set",
    ),
    (
        "validation_split with a DataLoader",
        {},
        {"x": DataLoader(TensorDataset(XT, YT)), "validation_split": 0.2},
        r"validation_split needs in-memory arrays; with a DataLoader pass validation_data=",
    ),
    ("fit before compile", {"compile": False}, _with(), r"must be compiled before fit"),
    ("batch_size 0", {}, _with(batch_size=0), r"batch_size must be a positive integer; got 0\."),
    ("batch_size float", {}, _with(batch_size=8.0), r"batch_size must be .*; got 8\.0\."),
    ("batch_size bool", {}, _with(batch_size=True), r"batch_size must be .*; got True\."),
    ("epochs -1", {}, _with(epochs=-1), r"epochs must be an integer >= 0; got -1\."),
    ("epochs str", {}, _with(epochs="3"), r"epochs must be an integer >= 0; got '3'\."),
    ("steps_per_epoch 0", {}, _with(steps_per_epoch=0), r"steps_per_epoch must be a positive"),
    ("validation_freq 0", {}, _with(validation_freq=0), r"validation_freq must be a positive"),
    ("x missing", {}, {"x": None, "y": Y}, r"fit: x \(the inputs\) is missing"),
    ("y missing", {}, {"x": X}, r"fit: y \(the targets\) is missing"),
    (
        "Dataset plus y",
        {},
        {"x": TensorDataset(XT, YT), "y": Y},
        r"fit got a Dataset as x and also y; a Dataset yields \(x, y\) pairs itself",
    ),
    (
        "DataLoader plus y",
        {},
        {"x": DataLoader(TensorDataset(XT, YT)), "y": Y},
        r"fit got a DataLoader as x and also y",
    ),
    ("empty generator", {}, {"x": (b for b in [])}, r"The generator given to fit is empty\."),
    (
        "empty generator with steps",
        {},
        {"x": iter([]), "steps_per_epoch": 3},
        r"given to fit is empty\.",
    ),
    (
        "generator of x only",
        {},
        {"x": (x for x in [X[:8]] * 3)},
        r"Each batch from a Dataset, DataLoader or generator must be \(x, y\)",
    ),
    (
        "DataLoader with 3 classes into binary_crossentropy",
        {},
        {"x": DataLoader(TensorDataset(XT, torch.tensor(CLASSES)), batch_size=BATCH)},
        r"binary_crossentropy' needs targets in \[0, 1\]",
    ),
    (
        "x with the wrong feature count",
        {},
        _with(x=np.zeros((N, T, 3), "float32")),
        r"expects shape \(None, 5, 2\) \(None = any size\); got \(8, 5, 3\)",
    ),
    (
        "validation_data x with the wrong feature count",
        {},
        _with(validation_data=(np.zeros((6, T, 3)), Y[:6])),
        r"fit \(validation_data\): .* expects shape \(None, 5, 2\) .*; got \(6, 5, 3\)",
    ),
    (
        "validation_data x with the wrong length",
        {},
        _with(validation_data=(np.zeros((6, T + 2, 2)), Y[:6])),
        r"fit \(validation_data\): .* expects shape \(None, 5, 2\) .*; got \(6, 7, 2\)",
    ),
    (
        "validation_data counts",
        {},
        _with(validation_data=(X[:6], Y[:5])),
        r"fit \(validation_data\): x has 6 samples but y has 5",
    ),
    (
        "validation_data targets",
        {},
        _with(validation_data=(X[:6], CLASSES[:6])),
        r"fit \(validation_data\): loss='binary_crossentropy' needs targets in \[0, 1\]",
    ),
    (
        "validation_data of length 1",
        {},
        _with(validation_data=(X[:6],)),
        r"validation_data must be \(x_val, y_val\) or \(x_val, y_val, sample_weight\); got a "
        r"tuple of length 1",
    ),
    (
        "validation_data NaN",
        {},
        _with(validation_data=(X[:6], np.full(6, np.nan))),
        r"fit \(validation_data\): y contains 6 NaN",
    ),
    (
        "class_weight missing a class",
        {},
        _with(class_weight={0: 1.0}),
        r"class_weight has no weight for class\(es\) \[1\]; give every class present in y a "
        r"weight, e\.g\. \{1: 1\.0\}",
    ),
    (
        "class_weight missing a one-hot class",
        {"units": 3, "activation": "softmax", "loss": "categorical_crossentropy"},
        _with(y=np.eye(3)[CLASSES], class_weight={0: 1.0, 2: 2.0}),
        r"class_weight has no weight for class\(es\) \[1\]",
    ),
    ("class_weight not a dict", {}, _with(class_weight=[1.0, 2.0]), r"must be a dict"),
    ("verbose 3", {}, _with(verbose=3), r"verbose must be 'auto', 0, 1 or 2; got 3\."),
]


@pytest.mark.parametrize(
    "settings, arguments, message", [c[1:] for c in BAD_FITS], ids=[c[0] for c in BAD_FITS]
)
def test_bad_fit_fails_before_the_first_step(settings, arguments, message):
    model = seq_model(**settings)
    before = [w.copy() for w in model.get_weights()]
    spy = _hook_recorder(Callback)
    arguments = {"batch_size": BATCH, "verbose": 0, **arguments}
    error = TypeError if "must be a dict" in message else ValueError
    with pytest.raises(error, match=message):
        model.fit(callbacks=[spy], **arguments)
    assert spy.calls == []  # not even on_train_begin: the check came before training began
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    if model.compiled:
        assert model.optimizer.iterations == 0


BAD_EVALUATES = [
    ("evaluate before compile", {"compile": False}, {"x": X, "y": Y}, r"compiled before evaluate"),
    ("x/y counts", {}, {"x": X, "y": Y[:3]}, r"evaluate: x has 24 samples but y has 3"),
    ("NaN in x", {}, dict(zip("xy", _poisoned("x", np.nan))), r"evaluate: x contains 1 NaN"),
    ("bad targets", {}, {"x": X, "y": CLASSES}, r"needs targets in \[0, 1\] \(two classes\)"),
    ("batch_size", {}, {"x": X, "y": Y, "batch_size": -1}, r"batch_size must be a positive"),
    ("x missing", {}, {"y": Y}, r"evaluate: x \(the inputs\) is missing"),
]


@pytest.mark.parametrize(
    "settings, arguments, message",
    [c[1:] for c in BAD_EVALUATES],
    ids=[c[0] for c in BAD_EVALUATES],
)
def test_bad_evaluate(settings, arguments, message):
    model = seq_model(**settings)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        model.evaluate(verbose=0, **arguments)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_bad_predict_batch_size():
    with pytest.raises(ValueError, match=r"predict: batch_size must be a positive integer"):
        seq_model().predict(X, batch_size=0)


def test_a_failed_fit_leaves_the_model_usable():
    """After a rejected call, a good fit trains as if the bad one had never happened."""
    start = seq_model().get_weights()
    x, y = seq_data()
    reference = seq_model()
    reference.set_weights(start)
    expected = reference.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)
    model = seq_model()
    model.set_weights(start)
    with pytest.raises(ValueError):
        model.fit(x, np.arange(N) % 3, batch_size=BATCH, verbose=0)
    history = model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)
    assert history.history == expected.history
    assert_close(model.get_weights(), reference.get_weights(), atol=0)


def test_fit_checks_a_built_model_on_one_sequence_not_a_whole_batch():
    """Before training, fit runs the first batch through an unbuilt model (building it, with
    the batch in Keras' built shape); once built, the first sequence alone tells the output
    shape, so a later fit call does not pay a whole extra forward pass."""

    class Rows(Dense):
        def call(self, inputs):
            seen.append(inputs.shape[0])
            return super().call(inputs)

    seen = []
    model = Sequential([SimpleRNN(4), Rows(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((16, 5, 3), np.float32), np.ones((16, 1), np.float32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert seen == [8, 8, 8]  # the check on the first batch, then two training steps
    seen.clear()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert seen == [1, 8, 8]


def test_fit_check_falls_back_to_the_whole_batch_for_a_layer_written_for_its_size():
    """A layer that only works on whole batches (here one reshaping to the batch size) still
    trains: when one sequence cannot go through, the check takes the whole batch."""
    from rnnkit.layers import Layer

    class BatchOfEight(Layer):
        def call(self, inputs):
            return inputs.reshape(8, -1)

        def compute_output_shape(self, input_shape):
            return (8, input_shape[-1])

    model = Sequential([Input((5, 3)), SimpleRNN(4), BatchOfEight(), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((16, 5, 3), np.float32), np.ones((16, 1), np.float32)
    for _ in range(2):  # the second fit finds the model built
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("layer", [layers.SimpleRNN, layers.GRU, layers.LSTM])
def test_predict_after_fit_sees_the_trained_weights(layer, optimizer):
    """`predict` keeps the kernels' weight layouts between calls; a fit in between (torch's
    fused Adam kernel included, which writes the weights behind autograd's back) must renew
    them. The oracle: a fresh model given the trained weights."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 10, 3)).astype("float32"), rng.normal(size=(32, 1))

    def model():
        return Sequential([Input((10, 3)), layer(8), layers.Dense(1)])

    trained = model()
    trained.compile(optimizer=optimizer, loss="mse")
    before = trained.predict(x, verbose=0)
    trained.fit(x, y, epochs=2, batch_size=8, verbose=0)
    fresh = model()
    fresh.set_weights(trained.get_weights())
    after = trained.predict(x, verbose=0)
    assert np.abs(after - before).max() > 1e-3  # the fit changed the predictions
    np.testing.assert_array_equal(after, fresh.predict(x, verbose=0))


def test_jit_compile_chooses_the_step_and_fit_says_which_runs():
    """On a GPU fit replays its step as a CUDA graph where it can (tests/test_cuda.py), on
    the CPU it runs the direct step (tests/test_direct_step.py); `model.step_path` says
    which step ran."""
    x, y = np.ones((8, 5, 3), np.float32), np.ones((8, 1), np.float32)
    for jit, path in (
        ("auto", "direct (hand-written backward passes, no autograd graph)"),
        (False, "eager (compile(jit_compile=False))"),
    ):
        model = Sequential([SimpleRNN(4), Dense(1)])
        model.compile(optimizer="sgd", loss="mse", jit_compile=jit)
        model.fit(x, y, epochs=1, verbose=0)
        assert model.step_path == path
    with pytest.raises(ValueError, match="jit_compile must be True, False or 'auto'; got 'xla'"):
        Sequential([SimpleRNN(4), Dense(1)]).compile(loss="mse", jit_compile="xla")
