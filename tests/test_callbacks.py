"""Callbacks: each compared with Keras 3's on the same sequence of logs, then inside `fit`.

The comparisons drive both libraries' callbacks by hand (`on_epoch_end(epoch, logs)` on a
fake model), so they are exact and fast; the `fit` tests use a tiny SimpleRNN on 64 samples.
"""

import csv
import doctest
import importlib
import os
import zipfile

import keras
import numpy as np
import pytest

import rnnkit
from rnnkit import Sequential, callbacks, metrics, optimizers, schedules
from rnnkit.layers import Dense, SimpleRNN
from rnnkit.utils import set_random_seed

# ------------------------------------------------------------------------------ helpers


class FakeOptimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class FakeModel:
    """What the callbacks touch on a model: weights, optimizer, stop_training, save."""

    def __init__(self, learning_rate=0.1, compiled_metrics=()):
        self.stop_training = False
        self.optimizer = FakeOptimizer(learning_rate)
        self.compiled_metrics = list(compiled_metrics)
        self.weights = [np.zeros(1)]
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, filepath, overwrite=True):
        self.saved.append(("model", os.path.basename(filepath)))

    def save_weights(self, filepath, overwrite=True):
        self.saved.append(("weights", os.path.basename(filepath)))


def drive(callback, model, epoch_logs, batch_logs=None):
    """Run `callback` through a training whose epochs end with `epoch_logs` (and whose
    batches end with `batch_logs`); each epoch's "weights" are its number.

    Returns what a comparison needs: epochs run, learning rate at each epoch end, the
    logs after the callback saw them, and the final weights.
    """
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    ran, rates, seen = [], [], []
    for epoch, logs in enumerate(epoch_logs):
        callback.on_epoch_begin(epoch)
        for batch, blogs in enumerate(batch_logs or []):
            callback.on_train_batch_begin(batch)
            callback.on_train_batch_end(batch, dict(blogs))
            if model.stop_training:
                break
        model.weights = [np.array([float(epoch)])]
        logs = dict(logs)
        callback.on_epoch_end(epoch, logs)
        ran.append(epoch)
        rates.append(float(model.optimizer.learning_rate))
        seen.append(logs)
        if model.stop_training:
            break
    callback.on_train_end()
    return {"ran": ran, "rates": rates, "logs": seen, "weights": model.get_weights()}


def random_curve(rng, n=14, start=1.0):
    """A noisy, mostly falling curve on a 0.05 grid, so ties and near-ties happen."""
    steps = rng.choice([-0.1, -0.05, 0.0, 0.0, 0.05, 0.1], size=n)
    return list(np.round(start + np.cumsum(steps), 2))


def tiny_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5, 1)).astype("float32")
    return x, x.sum(axis=(1, 2))[:, None].astype("float32")


def tiny_model(optimizer=None, metrics=None, seed=0):
    set_random_seed(seed)
    model = Sequential([SimpleRNN(4, input_shape=(5, 1)), Dense(1)])
    model.compile(
        optimizer=optimizer or optimizers.Adam(learning_rate=0.01), loss="mse", metrics=metrics
    )
    return model


class WeightRecorder(callbacks.Callback):
    """The model's weights at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def assert_weights_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------ EarlyStopping

EARLY_STOPPING_SETTINGS = [
    dict(monitor="val_loss"),
    dict(monitor="val_loss", patience=3),
    dict(monitor="val_loss", patience=2, min_delta=0.05),
    dict(monitor="val_loss", patience=2, restore_best_weights=True),
    dict(monitor="val_loss", patience=20, restore_best_weights=True),  # never stops
    dict(monitor="val_loss", patience=1, baseline=0.8),
    dict(monitor="val_loss", patience=3, baseline=0.8, restore_best_weights=True),
    dict(monitor="val_loss", patience=1, start_from_epoch=3, restore_best_weights=True),
    dict(monitor="loss", patience=2, mode="max", min_delta=0.04),
    dict(monitor="val_accuracy", patience=2, mode="max", restore_best_weights=True),
]


@pytest.mark.parametrize("settings", EARLY_STOPPING_SETTINGS)
def test_early_stopping_matches_keras(settings, rng):
    for _ in range(8):
        curve = random_curve(rng)
        logs = [{"loss": v + 0.1, "val_loss": v, "val_accuracy": 1 - v} for v in curve]
        ours = callbacks.EarlyStopping(**settings)
        theirs = keras.callbacks.EarlyStopping(**settings)
        got, want = drive(ours, FakeModel(), logs), drive(theirs, FakeModel(), logs)
        assert got["ran"] == want["ran"], curve
        assert ours.stopped_epoch == theirs.stopped_epoch
        assert ours.best_epoch == theirs.best_epoch
        assert_weights_equal(got["weights"], want["weights"])


def test_early_stopping_auto_mode_follows_the_metric():
    """Accuracy goes up: "auto" acts as Keras' "max"; a loss goes down: as "min"."""
    curve = [0.5, 0.6, 0.55, 0.7, 0.65, 0.6, 0.6, 0.58]
    logs = [{"loss": 1 - v, "val_accuracy": v} for v in curve]
    model = FakeModel(compiled_metrics=[metrics.Accuracy()])
    ours = callbacks.EarlyStopping(monitor="val_accuracy", patience=2)
    theirs = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=2, mode="max")
    assert drive(ours, model, logs)["ran"] == drive(theirs, FakeModel(), logs)["ran"]
    assert ours.stopped_epoch == theirs.stopped_epoch == 5
    ours = callbacks.EarlyStopping(monitor="loss", patience=2)
    theirs = keras.callbacks.EarlyStopping(monitor="loss", patience=2)
    assert drive(ours, model, logs)["ran"] == drive(theirs, FakeModel(), logs)["ran"]


def test_early_stopping_in_fit_stops_on_a_plateau():
    # Learning rate 0: the loss stays where it is, so patience=2 stops at epoch 2.
    model = tiny_model(optimizer=optimizers.SGD(learning_rate=0.0))
    x, y = tiny_data()
    stop = callbacks.EarlyStopping(monitor="loss", patience=2, min_delta=1e-4)
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0, callbacks=[stop])
    assert history.epoch == [0, 1, 2]
    assert stop.stopped_epoch == 2


def test_early_stopping_in_fit_restores_best_weights_without_stopping():
    # mode="max" on a falling val_loss makes the first epoch the best, so restoring matters;
    # patience=100 lets training run to the end, where Keras 3 restores too.
    model = tiny_model()
    x, y = tiny_data()
    recorder = WeightRecorder()
    stop = callbacks.EarlyStopping(patience=100, mode="max", restore_best_weights=True)
    history = model.fit(
        x,
        y,
        epochs=4,
        batch_size=16,
        validation_split=0.25,
        verbose=0,
        callbacks=[recorder, stop],
    )
    best = int(np.argmax(history.history["val_loss"]))
    assert best != 3 and stop.best_epoch == best and stop.stopped_epoch == 0
    assert_weights_equal(model.get_weights(), recorder.weights[best])


def test_early_stopping_unknown_monitor_lists_the_keys():
    model = tiny_model()
    x, y = tiny_data()
    stop = callbacks.EarlyStopping(monitor="val_los")
    with pytest.raises(
        ValueError, match=r"no 'val_los' in the logs. Available: 'loss', 'val_loss'"
    ):
        model.fit(x, y, epochs=2, validation_split=0.25, verbose=0, callbacks=[stop])


def test_early_stopping_without_validation_warns_like_keras():
    model = tiny_model()
    x, y = tiny_data()
    stop = callbacks.EarlyStopping(monitor="val_loss")
    with pytest.warns(UserWarning, match="no validation results in this epoch's logs"):
        history = model.fit(x, y, epochs=2, verbose=0, callbacks=[stop])
    assert history.epoch == [0, 1]


def test_auto_mode_needs_a_metric_with_a_direction():
    stop = callbacks.EarlyStopping(monitor="my_score")
    with pytest.raises(ValueError, match=r"cannot tell whether 'my_score'.*mode='max'"):
        drive(stop, FakeModel(), [{"my_score": 1.0}])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(mode="maximum"), ValueError, r"mode must be 'auto', 'min' or 'max'; got 'maximum'"),
        (dict(patience=-1), ValueError, r"patience must be an integer >= 0; got -1"),
        (dict(patience=1.5), ValueError, r"patience must be an integer >= 0; got 1.5"),
        (dict(start_from_epoch=-2), ValueError, r"start_from_epoch must be an integer >= 0"),
        (dict(min_delta="0.1"), TypeError, r"min_delta must be a number; got '0.1'"),
        (dict(baseline="low"), TypeError, r"baseline must be a number"),
        (dict(monitor=None), TypeError, r"monitor must be the name of a logged value"),
    ],
)
def test_early_stopping_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        callbacks.EarlyStopping(**kwargs)


# ---------------------------------------------------------------------- TerminateOnNaN


def test_terminate_on_nan_matches_keras():
    batch_logs = [{"loss": 1.0}, {"loss": 2.0}, {"loss": float("inf")}, {"loss": 1.0}]
    model_ours, model_theirs = FakeModel(), FakeModel()
    with pytest.warns(UserWarning, match="Batch 2: invalid loss inf"):
        got = drive(callbacks.TerminateOnNaN(), model_ours, [{"loss": 1}] * 3, batch_logs)
    want = drive(keras.callbacks.TerminateOnNaN(), model_theirs, [{"loss": 1}] * 3, batch_logs)
    assert got["ran"] == want["ran"] == [0]
    assert model_ours.stop_training and model_theirs.stop_training


def _nan_at(epoch, batch):
    """A callback that poisons the output layer's kernel before `batch` of `epoch`."""
    state = {}

    def poison(b, logs):
        if state.get("epoch") == epoch and b == batch:
            kernel = state["model"].layers[-1].weights[0]
            kernel.data.fill_(float("nan"))

    def remember(e, logs):
        state["epoch"] = e

    cb = callbacks.LambdaCallback(on_epoch_begin=remember, on_train_batch_begin=poison)
    return cb, state


def test_terminate_on_nan_in_fit():
    model = tiny_model()
    x, y = tiny_data()
    poison, state = _nan_at(epoch=1, batch=2)
    state["model"] = model
    batches = []
    count = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    with pytest.warns(UserWarning, match="Batch 2: invalid loss nan, terminating training"):
        history = model.fit(
            x,
            y,
            epochs=5,
            batch_size=8,
            verbose=0,
            callbacks=[poison, count, callbacks.TerminateOnNaN()],
        )
    assert history.epoch == [0, 1]
    assert batches == list(range(8)) + [0, 1, 2]  # stopped right after the poisoned batch
    assert np.isnan(history.history["loss"][1])


def test_terminate_on_nan_raise_error():
    model = tiny_model()
    x, y = tiny_data()
    poison, state = _nan_at(epoch=0, batch=1)
    state["model"] = model
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 1"):
        model.fit(
            x,
            y,
            epochs=2,
            batch_size=8,
            verbose=0,
            callbacks=[poison, callbacks.TerminateOnNaN(raise_error=True)],
        )


# ------------------------------------------------------------------- ReduceLROnPlateau

REDUCE_LR_SETTINGS = [
    dict(),
    dict(patience=0),
    dict(patience=2, factor=0.5),
    dict(patience=1, factor=0.5, cooldown=2),
    dict(patience=2, factor=0.2, min_lr=0.01),
    dict(patience=1, factor=0.5, min_delta=0.06, min_lr=0.02, cooldown=1),
    dict(patience=2, factor=0.5, mode="max", monitor="loss"),
    dict(patience=1, factor=0.3, monitor="val_accuracy", mode="max"),
]


@pytest.mark.parametrize("settings", REDUCE_LR_SETTINGS)
def test_reduce_lr_on_plateau_matches_keras(settings, rng):
    for _ in range(8):
        curve = random_curve(rng, n=20)
        logs = [{"loss": v + 0.1, "val_loss": v, "val_accuracy": 1 - v} for v in curve]
        ours = callbacks.ReduceLROnPlateau(**settings)
        theirs = keras.callbacks.ReduceLROnPlateau(**settings)
        got = drive(ours, FakeModel(learning_rate=0.1), logs)
        want = drive(theirs, FakeModel(learning_rate=0.1), logs)
        assert got["rates"] == want["rates"], curve
        assert [g["learning_rate"] for g in got["logs"]] == [
            w["learning_rate"] for w in want["logs"]
        ]


def test_reduce_lr_on_plateau_in_fit():
    # min_delta=10: no epoch after the first counts as better, so patience=1 halves the rate
    # at every epoch end from the second on.
    model = tiny_model(optimizer=optimizers.SGD(learning_rate=0.01))
    x, y = tiny_data()
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10)
    history = model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[reduce])
    np.testing.assert_allclose(history.history["learning_rate"], [0.01, 0.01, 0.005, 0.0025])
    assert model.optimizer.learning_rate == pytest.approx(0.00125)


def test_reduce_lr_on_plateau_refuses_a_scheduled_optimizer():
    schedule = schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    model = tiny_model(optimizer=optimizers.Adam(learning_rate=schedule))
    x, y = tiny_data()
    with pytest.raises(TypeError, match="ReduceLROnPlateau sets the learning rate.*schedule"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.ReduceLROnPlateau("loss")])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(factor=1.0), ValueError, r"factor .* must be in \(0, 1\).*got factor=1.0"),
        (dict(factor=2), ValueError, r"must be in \(0, 1\)"),
        (dict(factor=0), ValueError, r"must be in \(0, 1\)"),
        (dict(patience=-3), ValueError, r"patience must be an integer >= 0; got -3"),
        (dict(cooldown=-1), ValueError, r"cooldown must be an integer >= 0"),
        (dict(min_lr=-1e-3), ValueError, r"min_lr must be >= 0"),
        (dict(mode="down"), ValueError, r"mode must be 'auto', 'min' or 'max'"),
    ],
)
def test_reduce_lr_on_plateau_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        callbacks.ReduceLROnPlateau(**kwargs)


# ---------------------------------------------------------------- LearningRateScheduler


@pytest.mark.parametrize(
    "schedule",
    [lambda epoch, lr: lr * 0.5 if epoch % 2 else lr, lambda epoch: 0.1 / (epoch + 1)],
)
def test_learning_rate_scheduler_matches_keras(schedule):
    logs = [{"loss": 1.0}] * 5
    got = drive(callbacks.LearningRateScheduler(schedule), FakeModel(0.1), logs)
    want = drive(keras.callbacks.LearningRateScheduler(schedule), FakeModel(0.1), logs)
    assert got["rates"] == want["rates"]
    assert [g["learning_rate"] for g in got["logs"]] == [w["learning_rate"] for w in want["logs"]]


def test_learning_rate_scheduler_errors():
    with pytest.raises(TypeError, match="schedule must be a function"):
        callbacks.LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match=r"schedule\(0, ...\) must return a float"):
        drive(callbacks.LearningRateScheduler(lambda e, lr: "0.1"), FakeModel(), [{}])
    schedule = schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    model = tiny_model(optimizer=optimizers.Adam(learning_rate=schedule))
    x, y = tiny_data()
    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: lr)
    with pytest.raises(TypeError, match="LearningRateScheduler sets the learning rate"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[scheduler])


# ----------------------------------------------------------------------- ModelCheckpoint

CHECKPOINT_SETTINGS = [
    dict(filepath="m-{epoch:02d}-{val_loss:.2f}.keras"),
    dict(filepath="best.keras", save_best_only=True),
    dict(filepath="best-{epoch}.weights.h5", save_best_only=True, save_weights_only=True),
    dict(filepath="best-{epoch}.keras", save_best_only=True, initial_value_threshold=0.9),
    dict(filepath="b-{epoch}-{loss:.3f}.keras", monitor="loss", mode="max", save_best_only=True),
    dict(filepath="e{epoch}-b{batch}.keras", save_freq=3),
    dict(
        filepath="e{epoch}-b{batch}-{loss:.1f}.keras",
        save_freq=2,
        monitor="loss",
        save_best_only=True,
    ),
]


@pytest.mark.parametrize("settings", CHECKPOINT_SETTINGS)
def test_model_checkpoint_saves_what_keras_saves(settings, rng):
    curve = random_curve(rng, n=10)
    logs = [{"loss": v + 0.1, "val_loss": v} for v in curve]
    batch_logs = [{"loss": v} for v in random_curve(rng, n=4)]
    model_ours, model_theirs = FakeModel(), FakeModel()
    drive(callbacks.ModelCheckpoint(**settings), model_ours, logs, batch_logs)
    theirs = keras.callbacks.ModelCheckpoint(**settings)
    # Keras settles min/max only at an epoch end, so a best-only save after some batches
    # crashes there ('NoneType' object is not callable); settle it up front.
    theirs.set_model(model_theirs)
    theirs._set_monitor_op()
    drive(theirs, model_theirs, logs, batch_logs)
    assert model_ours.saved == model_theirs.saved
    assert model_ours.saved


def test_model_checkpoint_in_fit_saves_models_and_weights(tmp_path):
    model = tiny_model()
    x, y = tiny_data()
    recorder = WeightRecorder()
    every = callbacks.ModelCheckpoint(str(tmp_path / "all" / "m-{epoch:02d}-{val_loss:.3f}.keras"))
    best = callbacks.ModelCheckpoint(
        tmp_path / "best.weights.h5",
        monitor="val_loss",
        mode="max",
        save_best_only=True,
        save_weights_only=True,
    )
    history = model.fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        validation_split=0.25,
        verbose=0,
        callbacks=[recorder, every, best],
    )
    names = sorted(os.listdir(tmp_path / "all"))
    assert names == [
        f"m-{e + 1:02d}-{v:.3f}.keras" for e, v in enumerate(history.history["val_loss"])
    ]
    loaded = rnnkit.load_model(tmp_path / "all" / names[1])
    assert_weights_equal(loaded.get_weights(), recorder.weights[1])
    fresh = tiny_model(seed=1)
    fresh.load_weights(tmp_path / "best.weights.h5")
    best_epoch = int(np.argmax(history.history["val_loss"]))
    assert_weights_equal(fresh.get_weights(), recorder.weights[best_epoch])


def test_model_checkpoint_every_n_batches(tmp_path):
    model = tiny_model()
    x, y = tiny_data()
    saver = callbacks.ModelCheckpoint(
        tmp_path / "e{epoch}-b{batch}.weights.h5", save_freq=3, save_weights_only=True
    )
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[saver])  # 4 batches an epoch
    assert sorted(os.listdir(tmp_path)) == ["e1-b3.weights.h5", "e2-b2.weights.h5"]


def test_model_checkpoint_placeholder_not_in_logs(tmp_path):
    model = tiny_model()
    x, y = tiny_data()
    saver = callbacks.ModelCheckpoint(tmp_path / "m-{val_acc:.2f}.keras")
    with pytest.raises(
        ValueError,
        match=r"names \{val_acc\}, which is not in the logs. Available: "
        r"epoch, loss, val_loss",
    ):
        model.fit(x, y, epochs=1, validation_split=0.25, verbose=0, callbacks=[saver])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(filepath="m-{epoch:02d.keras"), ValueError, r"is not a valid format string"),
        (dict(filepath="m-{batch}.keras"), ValueError, r"names \{batch\}, but save_freq='epoch'"),
        (
            dict(filepath="m.keras", save_freq="batch"),
            ValueError,
            r"save_freq must be 'epoch' or a positive number of batches; got 'batch'",
        ),
        (dict(filepath="m.keras", save_freq=0), ValueError, r"save_freq must be 'epoch' or"),
        (dict(filepath="m.keras", mode="best"), ValueError, r"mode must be 'auto', 'min' or"),
        (dict(filepath=3), TypeError, r"filepath must be a path; got 3"),
    ],
)
def test_model_checkpoint_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        callbacks.ModelCheckpoint(**kwargs)


def test_model_checkpoint_filepath_is_a_directory(tmp_path):
    saver = callbacks.ModelCheckpoint(tmp_path)
    with pytest.raises(ValueError, match=r"is a directory; give filepath a file name"):
        drive(saver, FakeModel(), [{"loss": 1.0, "val_loss": 0.5}])


def test_model_checkpoint_bad_format_spec():
    saver = callbacks.ModelCheckpoint("m-{val_loss:02d}.keras")
    with pytest.raises(ValueError, match=r"cannot fill filepath .*\{val_loss:.2f\}"):
        drive(saver, FakeModel(), [{"loss": 1.0, "val_loss": 0.5}])


# ---------------------------------------------------------------------------- CSVLogger

CSV_LOGS = [
    [{"loss": 0.5, "val_loss": 0.6, "accuracy": 0.7, "val_accuracy": 0.65}] * 3,
    [{"loss": 0.5, "mae": 0.25}, {"loss": 0.4, "mae": 0.125}],  # no validation: NA columns
    [{"loss": 0.5}, {"loss": 0.4, "val_loss": 0.3}],  # validation_freq=2
]


@pytest.mark.parametrize("logs", CSV_LOGS)
@pytest.mark.parametrize("separator", [",", ";"])
def test_csv_logger_writes_the_file_keras_writes(tmp_path, logs, separator):
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    drive(callbacks.CSVLogger(ours, separator=separator), FakeModel(), logs)
    drive(keras.callbacks.CSVLogger(str(theirs), separator=separator), FakeModel(), logs)
    assert ours.read_bytes() == theirs.read_bytes()
    # append=True continues the file without a second header, as Keras does.
    drive(callbacks.CSVLogger(ours, separator=separator, append=True), FakeModel(), logs)
    drive(
        keras.callbacks.CSVLogger(str(theirs), separator=separator, append=True), FakeModel(), logs
    )
    assert ours.read_bytes() == theirs.read_bytes()


def test_csv_logger_in_fit(tmp_path):
    model = tiny_model(metrics=["mae"])
    x, y = tiny_data()
    path = tmp_path / "log.csv"
    history = model.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        validation_split=0.25,
        verbose=0,
        callbacks=[callbacks.CSVLogger(path)],
    )
    model.fit(
        x,
        y,
        epochs=3,
        initial_epoch=2,
        batch_size=16,
        validation_split=0.25,
        verbose=0,
        callbacks=[callbacks.CSVLogger(path, append=True)],
    )
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for row, epoch in zip(rows[1:3], range(2)):
        assert [float(v) for v in row[1:]] == [
            history.history[k][epoch] for k in ["loss", "mae", "val_loss", "val_mae"]
        ]


def test_csv_logger_append_to_a_file_with_other_columns(tmp_path):
    path = tmp_path / "log.csv"
    drive(callbacks.CSVLogger(path), FakeModel(), [{"loss": 1.0, "val_loss": 1.0}])
    logger = callbacks.CSVLogger(path, append=True)
    with pytest.raises(
        ValueError,
        match=r"has the columns \['epoch', 'loss', 'val_loss'\], but "
        r"this run logs \['epoch', 'accuracy', 'loss', 'val_accuracy', 'val_loss'\]",
    ):
        drive(
            logger,
            FakeModel(),
            [{"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}],
        )


def test_csv_logger_argument_errors():
    with pytest.raises(ValueError, match="separator must be a single character"):
        callbacks.CSVLogger("log.csv", separator=", ")
    with pytest.raises(TypeError, match="filename must be a path"):
        callbacks.CSVLogger(None)


# ----------------------------------------------------------------------- LambdaCallback


def _hook_trace(lib, trace):
    def hook(name, with_index):
        if with_index:
            return lambda i, logs=None: trace.append((name, i, sorted(logs or {})))
        return lambda logs=None: trace.append((name, sorted(logs or {})))

    return lib.callbacks.LambdaCallback(
        on_train_begin=hook("train_begin", False),
        on_epoch_begin=hook("epoch_begin", True),
        on_train_batch_begin=hook("batch_begin", True),
        on_train_batch_end=hook("batch_end", True),
        on_epoch_end=hook("epoch_end", True),
        on_train_end=hook("train_end", False),
    )


def test_lambda_callback_sees_the_hooks_keras_fit_calls():
    x, y = tiny_data(n=32)
    ours, theirs = [], []
    model = tiny_model(optimizer="sgd")
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=12,
        validation_split=0.25,
        verbose=0,
        callbacks=[_hook_trace(rnnkit, ours)],
    )
    kmodel = keras.Sequential(
        [keras.Input((5, 1)), keras.layers.SimpleRNN(4), keras.layers.Dense(1)]
    )
    kmodel.compile(optimizer="sgd", loss="mse")
    kmodel.fit(
        x,
        y,
        epochs=2,
        batch_size=12,
        validation_split=0.25,
        verbose=0,
        callbacks=[_hook_trace(keras, theirs)],
    )
    assert ours == theirs
    assert ("batch_end", 1, ["loss"]) in ours  # batch logs reach an instance's hook


def test_lambda_callback_errors():
    with pytest.raises(TypeError, match="on_epoch_end must be a function; got 3"):
        callbacks.LambdaCallback(on_epoch_end=3)
    with pytest.raises(TypeError, match="unknown hook\\(s\\) on_epoch_ending"):
        callbacks.LambdaCallback(on_epoch_ending=print)


def test_lambda_callback_takes_keras_positional_signatures():
    """Keras documents `(epoch, logs)` and `(logs)`, logs positional even when None."""
    seen = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(("train_begin", logs)),
        on_epoch_begin=lambda epoch, logs: seen.append(("epoch_begin", epoch, logs)),
        on_train_batch_begin=lambda batch, logs: None,
        on_test_end=lambda logs: seen.append(("test_end",)),
    )
    model = tiny_model()
    x, y = tiny_data()
    model.fit(x, y, epochs=2, validation_split=0.25, verbose=0, callbacks=[cb])
    assert seen == [
        ("train_begin", None),
        ("epoch_begin", 0, None),
        ("test_end",),
        ("epoch_begin", 1, None),
        ("test_end",),
    ]


def test_validation_hooks_match_keras():
    x, y = tiny_data(n=32)

    def trace(lib, seen):
        return lib.callbacks.LambdaCallback(
            on_test_batch_end=lambda batch, logs: seen.append(("test_batch_end", batch)),
            on_test_end=lambda logs: seen.append(("test_end", sorted(logs))),
        )

    ours, theirs = [], []
    model = tiny_model(optimizer="sgd")
    model.fit(
        x,
        y,
        epochs=1,
        batch_size=8,
        validation_split=0.25,
        verbose=0,
        callbacks=[trace(rnnkit, ours)],
    )
    kmodel = keras.Sequential(
        [keras.Input((5, 1)), keras.layers.SimpleRNN(4), keras.layers.Dense(1)]
    )
    kmodel.compile(optimizer="sgd", loss="mse")
    kmodel.fit(
        x,
        y,
        epochs=1,
        batch_size=8,
        validation_split=0.25,
        verbose=0,
        callbacks=[trace(keras, theirs)],
    )
    assert ours == theirs  # Keras: [("test_batch_end", 0), ("test_end", ["loss"])]


def test_batch_logs_are_computed_only_for_callbacks_that_read_them():
    def wants(*cbs):
        return callbacks.CallbackList(cbs, FakeModel(), {}).wants_batch_logs

    assert not wants(callbacks.ModelCheckpoint("m.keras"), callbacks.EarlyStopping())
    assert not wants(callbacks.BackupAndRestore("b"), callbacks.LambdaCallback(print))
    assert wants(callbacks.ModelCheckpoint("m.keras", save_freq=5))
    assert wants(callbacks.BackupAndRestore("b", save_freq=5))
    assert wants(callbacks.TerminateOnNaN())
    assert wants(callbacks.LambdaCallback(on_train_batch_end=print))


@pytest.mark.parametrize(
    "module", ["_backup", "_checkpoint", "_lambda", "_logging", "_lr", "_stopping"]
)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(f"rnnkit.callbacks.{module}")
    assert doctest.testmod(module).failed == 0


# --------------------------------------------------------- BackupAndRestore, in process


class Interrupt(callbacks.Callback):
    """Raise at the start of `epoch`, as a crash would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def _dropout_model(seed=0):
    set_random_seed(seed)
    model = Sequential(
        [
            SimpleRNN(6, input_shape=(5, 1), dropout=0.2, recurrent_dropout=0.1),
            rnnkit.layers.Dropout(0.3),
            Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def _fit(model, backup=None, interrupt=None, epochs=5):
    x, y = tiny_data()
    extra = [Interrupt(interrupt)] if interrupt is not None else []
    return model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=16,
        shuffle=True,
        verbose=0,
        callbacks=[*extra, *([backup] if backup else [])],
    )


def test_backup_and_restore_resumes_exactly(tmp_path):
    model = _dropout_model()
    _fit(model)
    reference = model.get_weights()

    backup_dir = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(_dropout_model(), callbacks.BackupAndRestore(backup_dir), interrupt=3)
    assert os.listdir(backup_dir) == ["latest.rnnkit"]

    resumed = _dropout_model()
    history = _fit(resumed, callbacks.BackupAndRestore(backup_dir))
    assert history.epoch == [3, 4]
    assert_weights_equal(resumed.get_weights(), reference)
    assert not backup_dir.exists()  # deleted after the finished run


def test_backup_and_restore_keeps_the_backup_if_asked(tmp_path):
    backup = callbacks.BackupAndRestore(tmp_path / "b", delete_checkpoint=False)
    _fit(_dropout_model(), backup, epochs=2)
    with zipfile.ZipFile(backup.checkpoint_path) as archive:
        assert b'"epoch": 1' in archive.read("checkpoint.json")
    history = _fit(_dropout_model(), backup, epochs=2)
    assert history.epoch == []  # nothing left to do


def test_backup_and_restore_double_checkpoint_falls_back(tmp_path):
    backup = callbacks.BackupAndRestore(tmp_path / "b", double_checkpoint=True)
    with pytest.raises(RuntimeError):
        _fit(_dropout_model(), backup, interrupt=3)
    assert sorted(os.listdir(tmp_path / "b")) == ["latest.rnnkit", "previous.rnnkit"]
    with open(backup.checkpoint_path, "r+b") as f:  # a damaged latest backup
        f.truncate(100)
    history = _fit(_dropout_model(), backup)
    assert history.epoch == [2, 3, 4]


def test_backup_and_restore_every_n_batches_redoes_the_epoch(tmp_path):
    backup = callbacks.BackupAndRestore(tmp_path / "b", save_freq=3)
    with pytest.raises(RuntimeError):
        _fit(_dropout_model(), backup, interrupt=2)  # last backup: epoch 1, batch 1 (of 4)
    history = _fit(_dropout_model(), backup)
    assert history.epoch == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(backup_dir=""), ValueError, r"backup_dir must be a folder path"),
        (dict(backup_dir=None), ValueError, r"backup_dir must be a folder path"),
        (dict(backup_dir="b", save_freq="step"), ValueError, r"save_freq must be 'epoch' or a"),
        (dict(backup_dir="b", save_freq=-5), ValueError, r"save_freq must be 'epoch' or a"),
    ],
)
def test_backup_and_restore_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        callbacks.BackupAndRestore(**kwargs)


def test_exports():
    for name in [
        "EarlyStopping",
        "ModelCheckpoint",
        "ReduceLROnPlateau",
        "TerminateOnNaN",
        "CSVLogger",
        "LambdaCallback",
        "BackupAndRestore",
        "LearningRateScheduler",
    ]:
        assert name in callbacks.__all__
        assert issubclass(getattr(callbacks, name), callbacks.Callback)
