"""`fit` / `evaluate` / `predict` at their edges: odd input, Ctrl-C, a loss that explodes.

Where Keras 3.15 has an answer (integer and bool inputs, `epochs=0`, numpy integer counts)
the same model runs in Keras with the same weights and both must agree. Where it has none
(text and ragged input, interrupts, a diverging loss) the test states what rnnkit promises:
an error that names the fix, a model that still trains and saves, one warning.
"""

import warnings

import keras
import numpy as np
import pytest
import torch
from conftest import assert_close

import rnnkit
from rnnkit import Sequential, optimizers
from rnnkit.callbacks import Callback, CSVLogger, TerminateOnNaN, TrainingProgress
from rnnkit.layers import Dense, Embedding, Input, SimpleRNN

N, T, D = 16, 4, 2


def _data(rng, n=N):
    return rng.normal(size=(n, T, D)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def _twins(loss="mse", units=1, activation=None, metrics=("mae",), optimizer="sgd"):
    """The same SimpleRNN -> Dense model in Keras and rnnkit, compiled alike, equal weights."""
    theirs = keras.Sequential(
        [keras.Input((T, D)), keras.layers.SimpleRNN(3), keras.layers.Dense(units, activation)]
    )
    ours = Sequential([Input((T, D)), SimpleRNN(3), Dense(units, activation)])
    ours.set_weights(theirs.get_weights())
    for model in (theirs, ours):
        model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    return theirs, ours


# ----------------------------------------------------------- 3: integer and bool inputs
CASTS = [
    ("int64 x, int64 y, mse", "int64", "int64", "mse", 1, None),
    ("int32 x, uint8 y, mse", "int32", "uint8", "mse", 1, None),
    ("bool x, bool y, mse", "bool", "bool", "mse", 1, None),
    ("int64 x, bool y, binary", "int64", "bool", "binary_crossentropy", 1, "sigmoid"),
    ("bool x, int64 ids, sparse", "bool", "int64", "sparse_categorical_crossentropy", 3, "softmax"),
]


@pytest.mark.parametrize(
    "x_dtype, y_dtype, loss, units, activation",
    [c[1:] for c in CASTS],
    ids=[c[0] for c in CASTS],
)
def test_integer_and_bool_arrays_are_cast_as_keras_casts_them(
    rng, x_dtype, y_dtype, loss, units, activation
):
    x = rng.integers(0, 3, (N, T, D))
    x = x > 1 if x_dtype == "bool" else x.astype(x_dtype)
    y = rng.integers(0, 3, (N, 1))  # class ids for 3 units, values for 1
    y = y > 1 if y_dtype == "bool" else y.astype(y_dtype)
    metrics = ["mae"] if loss == "mse" else ["accuracy"]
    theirs, ours = _twins(loss, units, activation, metrics)
    assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    np.testing.assert_allclose(
        ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-6
    )
    kw = {"batch_size": 8, "epochs": 2, "shuffle": False, "verbose": 0}
    expected = theirs.fit(x, y, **kw).history
    got = ours.fit(x, y, **kw).history
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5)


def test_integer_ids_stay_ids_for_an_embedding_first_layer(rng):
    ids = rng.integers(0, 10, (N, T))
    theirs = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(10, 4)])
    ours = Sequential([Input((T,), dtype="int32"), Embedding(10, 4)])
    ours.set_weights(theirs.get_weights())
    for model in (theirs, ours):
        model.compile(optimizer="sgd", loss="mse")
    target = rng.normal(size=(N, T, 4)).astype("float32")
    assert_close(ours.predict(ids, verbose=0), theirs.predict(ids, verbose=0))
    np.testing.assert_allclose(
        ours.evaluate(ids, target, verbose=0), theirs.evaluate(ids, target, verbose=0), rtol=1e-6
    )


# ----------------------------------------------------------- 7: input fit cannot take
def test_text_features_say_tokenize_and_pad(rng):
    _, ours = _twins()
    texts = np.array([["a great film", "dull"]] * N)
    with pytest.raises(TypeError, match=r"x holds text \(e\.g\. 'a great film'\).*Tokenizer"):
        ours.fit(texts, rng.normal(size=(N, 1)), verbose=0)
    with pytest.raises(TypeError, match=r"pad_sequences"):
        ours.predict(["a great film"] * N)


@pytest.mark.parametrize("labels", [np.array(["cat", "dog"] * (N // 2)), ["cat", "dog"] * (N // 2)])
def test_text_labels_say_encode_them_as_integers(rng, labels):
    _, ours = _twins("sparse_categorical_crossentropy", 2, "softmax", ["accuracy"])
    x, _ = _data(rng)
    expected = r"y holds text \(e\.g\. 'cat'\).*np\.unique\(y, return_inverse=True\)"
    with pytest.raises(TypeError, match=expected):
        ours.fit(x, labels, verbose=0)
    with pytest.raises(TypeError, match=expected):
        ours.evaluate(x, labels, verbose=0)
    classes, ids = np.unique(labels, return_inverse=True)  # the fix the message gives works
    ours.fit(x, ids, verbose=0)
    assert list(classes) == ["cat", "dog"]


def test_ragged_lists_say_pad_sequences():
    model = Sequential([Embedding(10, 4), SimpleRNN(3), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    ragged = [[1, 2, 3], [4, 5], [6]]
    fix = r"rnnkit\.utils\.pad_sequences\(x\)"
    with pytest.raises(ValueError, match=rf"x is a ragged list: .*from 1 to 3.*{fix}"):
        model.fit(ragged, [0.0, 1.0, 0.0], verbose=0)
    with pytest.raises(ValueError, match=fix):
        model.predict(ragged)
    with pytest.raises(ValueError, match=rf"x is 3 arrays.*\[3, 2, 1\] samples.*{fix}"):
        model.fit([np.array(s) for s in ragged], np.zeros(3), verbose=0)
    padded = rnnkit.utils.pad_sequences(ragged)  # the fix the message gives works
    model.fit(padded, np.array([0.0, 1.0, 0.0]), verbose=0)


def test_predict_none_is_a_type_error_that_says_pass_the_inputs():
    _, ours = _twins()
    with pytest.raises(TypeError, match=r"Expected the inputs \(x\).*got None.*predict\(x_test\)"):
        ours.predict(None)


def test_numpy_integer_counts_are_counts_as_in_keras(rng):
    """Keras 3.15 takes numpy integers for epochs, steps_per_epoch, initial_epoch and verbose;
    on torch it refuses them for batch_size (torch's sampler wants a Python int), so Keras
    gets a Python batch_size there. rnnkit takes them everywhere."""
    x, y = _data(rng)
    theirs, ours = _twins()
    counts = {
        "epochs": np.int64(3),
        "initial_epoch": np.int64(1),
        "steps_per_epoch": np.int32(2),
        "verbose": np.int64(0),
        "shuffle": False,
    }
    expected = theirs.fit(x, y, batch_size=4, **counts)
    got = ours.fit(
        x,
        y,
        batch_size=np.int64(4),
        validation_freq=np.int64(1),
        validation_batch_size=np.uint8(8),
        validation_steps=np.int64(1),
        validation_data=(x, y),
        **counts,
    )
    assert got.epoch == expected.epoch == [1, 2]
    assert all(type(e) is int for e in got.epoch)
    np.testing.assert_allclose(got.history["loss"], expected.history["loss"], rtol=1e-5)
    kw = {"verbose": 0, "steps": np.int64(2)}
    np.testing.assert_allclose(
        ours.evaluate(x, y, batch_size=np.int64(4), **kw),
        theirs.evaluate(x, y, batch_size=4, **kw),
        rtol=1e-6,
    )


def test_steps_per_epoch_on_arrays_carries_over_epochs_as_in_keras(rng):
    """3 steps an epoch of a 4-batch pass: epoch 1 takes batches 1-3, epoch 2 the last one
    (the pass ran out), epoch 3 a fresh pass. evaluate(steps=2) takes the first two."""
    x, y = _data(rng)
    theirs, ours = _twins()
    kw = {"batch_size": 4, "epochs": 3, "steps_per_epoch": 3, "shuffle": False, "verbose": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras: "Your input ran out of data"
        expected = theirs.fit(x, y, validation_data=(x, y), validation_steps=1, **kw)
    got = ours.fit(x, y, validation_data=(x, y), validation_steps=1, **kw)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(got.history[key], expected.history[key], rtol=1e-5)
    assert got.params["steps"] == expected.params["steps"] == 3
    kw = {"batch_size": 4, "steps": 2, "verbose": 0}
    np.testing.assert_allclose(ours.evaluate(x, y, **kw), theirs.evaluate(x, y, **kw), rtol=1e-6)


@pytest.mark.parametrize("count", [np.bool_(True), np.float64(4.0), np.int64(0)])
def test_numpy_values_that_are_not_positive_integers_are_refused(rng, count):
    x, y = _data(rng)
    _, ours = _twins()
    with pytest.raises(ValueError, match=r"fit: batch_size must be a positive integer; got"):
        ours.fit(x, y, batch_size=count, verbose=0)


def test_epochs_zero_builds_and_returns_an_empty_history_as_keras(rng):
    x, y = _data(rng)
    theirs = keras.Sequential([keras.layers.SimpleRNN(3), keras.layers.Dense(1)])
    ours = Sequential([SimpleRNN(3), Dense(1)])
    for model in (theirs, ours):
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    expected, got = theirs.fit(x, y, epochs=0, verbose=0), ours.fit(x, y, epochs=0, verbose=0)
    assert (got.history, got.epoch) == (expected.history, expected.epoch) == ({}, [])
    assert ours.history is got and theirs.history is expected
    assert ours.built and theirs.built
    assert ours.optimizer.built and theirs.optimizer.built
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == 0


# ----------------------------------------------------------- 8: Ctrl-C at any moment
def _interrupt_at(call: int, fn):
    """`fn`, except that its `call`-th call raises KeyboardInterrupt (once; later calls run)."""
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == call:
            raise KeyboardInterrupt
        return fn(*args, **kwargs)

    return wrapper


class _Interrupter(Callback):
    def __init__(self, hook, call):
        super().__init__()
        setattr(self, hook, _interrupt_at(call, lambda *args: None))


def _slot_creation(monkeypatch):
    """Adam's slots for the 2nd weight: the optimizer is being built."""
    add = optimizers._KerasAdam.add_slots
    monkeypatch.setattr(optimizers._KerasAdam, "add_slots", _interrupt_at(2, add))
    return {}


def _first_forward(monkeypatch):
    """The model's first forward pass, before the optimizer exists."""
    monkeypatch.setattr(Dense, "call", _interrupt_at(1, Dense.call))
    return {}


def _in_the_loss(monkeypatch):
    """The loss of the 3rd batch, after two updates (fit's direct step takes the loss and
    its gradient from `losses.value_and_gradient`, the eager step calls the loss)."""
    loss_type = type(rnnkit.losses.get("mse"))
    calls = [0]  # one count for both: one interruption

    def counted(fn):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == 3:
                raise KeyboardInterrupt
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(loss_type, "__call__", counted(loss_type.__call__))
    monkeypatch.setattr(
        rnnkit.losses, "value_and_gradient", counted(rnnkit.losses.value_and_gradient)
    )
    return {}


def _callback(hook, call):
    def arrange(monkeypatch):
        return {"callbacks": [_Interrupter(hook, call)]}

    arrange.__doc__ = f"A callback's {hook}, call {call}."
    return arrange


INTERRUPTS = {
    "building the optimizer": _slot_creation,
    "first forward pass": _first_forward,
    "inside the loss": _in_the_loss,
    "on_train_begin": _callback("on_train_begin", 1),
    "on_train_batch_end": _callback("on_train_batch_end", 2),
    "on_epoch_end": _callback("on_epoch_end", 1),
    "validation": _callback("on_test_batch_end", 1),
}


@pytest.mark.parametrize("arrange", INTERRUPTS.values(), ids=INTERRUPTS.keys())
def test_a_model_interrupted_anywhere_in_fit_trains_and_saves_again(
    rng, tmp_path, monkeypatch, arrange
):
    x, y = _data(rng)
    model = Sequential([SimpleRNN(3), Dense(1)])  # unbuilt: the first fit builds it
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    kw = {"batch_size": 4, "epochs": 2, "verbose": 0, "validation_split": 0.25}
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, **arrange(monkeypatch), **kw)
    assert model.optimizer.built == (model.optimizer.torch_optimizer is not None)

    history = model.fit(x, y, **kw)
    assert history.epoch == [0, 1] and np.isfinite(history.history["loss"]).all()
    model.save(tmp_path / "model.rnnkit")
    loaded = rnnkit.load_model(tmp_path / "model.rnnkit")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    loaded.fit(x, y, **kw)  # and the copy trains on from the saved optimizer state


def test_an_interrupted_optimizer_build_leaves_it_unbuilt(monkeypatch):
    """All or nothing: interrupted while making the 2nd weight's slots, the optimizer is not
    half-built (params set, no torch optimizer), which made every later step and save fail."""
    weights = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))]
    opt = optimizers.Adam()
    opt.load_state_dict(_adam_state_after_one_step())
    real = optimizers._KerasAdam.add_slots
    monkeypatch.setattr(optimizers._KerasAdam, "add_slots", _interrupt_at(2, real))
    with pytest.raises(KeyboardInterrupt):
        opt.build(weights)
    assert not opt.built and opt.torch_optimizer is None and opt.iterations == 0
    opt.build(weights)  # the pending state it was given still loads
    assert opt.iterations == 1
    state = opt.state_dict()["torch_optimizer"]["state"]
    assert sorted(state) == [0, 1] and sorted(state[1]) == ["momentum", "velocity"]


def _adam_state_after_one_step():
    weights = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))]
    opt = optimizers.Adam()
    opt.build(weights)
    sum(w.sum() for w in weights).backward()
    opt.step()
    return opt.state_dict()


@pytest.mark.parametrize("name", ["sgd_momentum", "rmsprop", "adagrad", "adam", "nadam", "adamax"])
def test_optimizers_make_every_slot_at_build_as_keras_does(name):
    """Keras makes its optimizer variables at build; a step then only updates them."""
    opt = {
        "sgd_momentum": optimizers.SGD(momentum=0.9),
        "rmsprop": optimizers.RMSprop(),
        "adagrad": optimizers.Adagrad(),
        "adam": optimizers.Adam(),
        "nadam": optimizers.Nadam(),
        "adamax": optimizers.Adamax(),
    }[name]
    weights = [torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(3))]
    opt.build(weights)
    built = {i: sorted(s) for i, s in opt.state_dict()["torch_optimizer"]["state"].items()}
    assert sorted(built) == [0, 1] and built[0]
    sum(w.sum() for w in weights).backward()
    opt.step()
    stepped = {i: sorted(s) for i, s in opt.state_dict()["torch_optimizer"]["state"].items()}
    assert stepped == built


def test_an_interrupt_closes_the_live_bar_and_the_csv_file_without_on_train_end(
    rng, tmp_path, monkeypatch
):
    """What a callback holds open is let go; what on_train_end does for a finished run (here
    EarlyStopping's restore would, BackupAndRestore's delete would) does not happen."""
    x, y = _data(rng)
    _, ours = _twins()
    bar = TrainingProgress(console=rich_terminal())
    csv = CSVLogger(tmp_path / "log.csv")
    ended = []
    stop = _Interrupter("on_epoch_end", 2)
    stop.on_train_end = lambda logs=None: ended.append(logs)
    with pytest.raises(KeyboardInterrupt):
        ours.fit(x, y, epochs=3, verbose=0, callbacks=[bar, csv, stop])
    assert bar.progress is None and csv.csv_file.closed and ended == []
    assert (tmp_path / "log.csv").read_text().count("\n") == 3  # header, epochs 1 and 2


def rich_terminal():
    from rich.console import Console

    return Console(force_terminal=True, file=open("/dev/null", "w"))  # noqa: SIM115


# ----------------------------------------------------------- 12: a loss that explodes
def _exploding(optimizer=None):
    model = Sequential([Input((T, D)), SimpleRNN(8, activation="relu"), Dense(1)])
    model.compile(optimizer=optimizer or optimizers.SGD(learning_rate=1e6), loss="mse")
    return model


@pytest.mark.parametrize("verbose", [0, 2])
def test_a_diverging_loss_warns_once_naming_epoch_batch_and_the_fix(rng, verbose):
    x, y = _data(rng, 64)
    model = _exploding()
    message = r"fit: the loss became (nan|inf) at epoch 1/3, batch \d+/8: .*clipnorm=1\.0"
    with pytest.warns(RuntimeWarning, match=message) as caught:
        model.fit(x, y * 1e3, batch_size=8, epochs=3, verbose=verbose)
    diverging = [w for w in caught if "diverging" in str(w.message)]
    assert len(diverging) == 1
    assert diverging[0].filename == __file__  # points at the fit call, not into rnnkit


def test_a_loss_that_stays_finite_and_terminate_on_nan_do_not_warn(rng):
    x, y = _data(rng, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _exploding(optimizers.SGD(learning_rate=1e-3)).fit(x, y, batch_size=8, verbose=0)
    with pytest.warns(UserWarning, match="invalid loss") as caught:  # TerminateOnNaN's own
        _exploding().fit(x, y * 1e3, batch_size=8, verbose=0, callbacks=[TerminateOnNaN()])
    assert not [w for w in caught if "diverging" in str(w.message)]
