"""Keras 3 `.keras` files: Keras writes, rnnkit reads; rnnkit writes, Keras reads.

Each model of the grid is built by the same function in both libraries (`lib` is `keras`
or `rnnkit`), so a test compares the two on the same architecture and weights.
"""

import keras
import numpy as np
import pytest
from conftest import ATOL

import rnnkit

B, T, D, V = 3, 5, 4, 7


def _seq_model(lib, layers):
    return lib.Sequential([lib.Input((T, D)), *layers])


def simple_rnn(lib):
    return _seq_model(lib, [lib.layers.SimpleRNN(3)])


def lstm_stack(lib):
    L = lib.layers
    return _seq_model(lib, [L.LSTM(3, return_sequences=True), L.Dropout(0.2), L.LSTM(2)])


def gru_both(lib):
    L = lib.layers
    return _seq_model(
        lib, [L.GRU(3, return_sequences=True), L.GRU(2, reset_after=False), L.Dense(1)]
    )


def bidirectional(lib):
    L = lib.layers
    return _seq_model(
        lib,
        [L.Masking(0.0), L.Bidirectional(L.LSTM(3, return_sequences=True)), L.GRU(2)],
    )


def stacked_cells(lib):
    L = lib.layers
    cells = L.StackedRNNCells([L.SimpleRNNCell(3), L.GRUCell(2), L.LSTMCell(2)])
    return _seq_model(lib, [L.RNN(cells)])


def time_distributed(lib):
    L = lib.layers
    return _seq_model(
        lib,
        [
            L.SimpleRNN(3),
            L.RepeatVector(2),
            L.GRU(3, return_sequences=True),
            L.TimeDistributed(L.Dense(2)),
        ],
    )


def embedding(lib):
    L = lib.layers
    return lib.Sequential(
        [
            lib.Input((T,), dtype="int32"),
            L.Embedding(V, 3, mask_zero=True),
            L.LSTM(2),
            L.Dense(1, activation="sigmoid"),
        ]
    )


def functional_nested(lib):
    L = lib.layers
    inner = lib.Sequential([lib.Input((T, D)), L.GRU(3)], name="inner")
    a = lib.Input((T, D), name="a")
    ids = lib.Input((T,), dtype="int32", name="ids")
    x = inner(a)
    y = L.SimpleRNN(2)(L.Embedding(V, 2)(ids))
    both = L.Concatenate()([x, y])
    return lib.Model([a, ids], [L.Dense(1, name="out1")(both), L.Dense(2, name="out2")(x)])


GRID = [
    simple_rnn,
    lstm_stack,
    gru_both,
    bidirectional,
    stacked_cells,
    time_distributed,
    embedding,
    functional_nested,
]


def _inputs(model_fn, rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    x[0, -2:] = 0.0  # masked steps for Masking
    ids = rng.integers(0, V, size=(B, T)).astype("int32")
    ids[1, -2:] = 0  # padding for mask_zero
    if model_fn is embedding:
        return ids
    if model_fn is functional_nested:
        return [x, ids]
    return x


def _randomize(model, rng):
    model.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()]
    )


def _predict(model, x):
    out = model.predict(x, verbose=0)
    return [np.asarray(o) for o in out] if isinstance(out, list) else [np.asarray(out)]


def _assert_close(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=ATOL)


@pytest.mark.parametrize("model_fn", GRID, ids=lambda f: f.__name__)
def test_keras_file_loads_with_keras_outputs(model_fn, tmp_path, rng):
    theirs = model_fn(keras)
    _randomize(theirs, rng)
    theirs.save(tmp_path / "m.keras")
    ours = rnnkit.load_model(tmp_path / "m.keras")
    assert [type(la).__name__ for la in ours.layers] == [type(la).__name__ for la in theirs.layers]
    x = _inputs(model_fn, rng)
    _assert_close(_predict(ours, x), _predict(theirs, x))


@pytest.mark.parametrize("model_fn", GRID, ids=lambda f: f.__name__)
def test_rnnkit_keras_file_loads_in_keras(model_fn, tmp_path, rng):
    ours = model_fn(rnnkit)
    _randomize(ours, rng)
    ours.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    x = _inputs(model_fn, rng)
    _assert_close(_predict(theirs, x), _predict(ours, x))
    again = rnnkit.load_model(tmp_path / "m.keras")  # and back
    _assert_close(_predict(again, x), _predict(ours, x))


def _data(rng):
    return rng.normal(size=(8, T, D)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")


def _compiled(lib):
    L = lib.layers
    model = _seq_model(lib, [L.GRU(3), L.Dense(1)])
    model.compile(optimizer=lib.optimizers.Adam(0.01), loss="mae", metrics=["mse"])
    return model


def test_compiled_keras_file_continues_training_as_keras_does(tmp_path, rng):
    x, y = _data(rng)
    theirs = _compiled(keras)
    theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    theirs.save(tmp_path / "m.keras")
    ours = rnnkit.load_model(tmp_path / "m.keras")
    assert type(ours.optimizer).__name__ == "Adam"
    assert ours.optimizer.iterations == 4
    np.testing.assert_allclose(ours.optimizer.learning_rate, 0.01, rtol=1e-6)
    assert type(ours.loss).__name__ == "MeanAbsoluteError"
    # one more epoch on both: same weights only if Adam's moments came back
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    _assert_close(_predict(ours, x), _predict(theirs, x))


def test_compiled_rnnkit_keras_file_continues_training_in_keras(tmp_path, rng):
    x, y = _data(rng)
    ours = _compiled(rnnkit)
    ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    ours.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    assert type(theirs.optimizer).__name__ == "Adam"
    assert int(theirs.optimizer.iterations.numpy()) == 4
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    _assert_close(_predict(theirs, x), _predict(ours, x))


def test_load_without_compile(tmp_path, rng):
    theirs = _compiled(keras)
    theirs.save(tmp_path / "m.keras")
    ours = rnnkit.load_model(tmp_path / "m.keras", compile=False)
    assert not ours.compiled


def test_other_suffixes_stay_rnnkit_format(tmp_path):
    import zipfile

    model = simple_rnn(rnnkit)
    for name in ("m.rnnkit", "m.zip", "m"):
        model.save(tmp_path / name)
        assert "rnnkit.json" in zipfile.ZipFile(tmp_path / name).namelist()
    model.save(tmp_path / "m.keras")
    assert sorted(zipfile.ZipFile(tmp_path / "m.keras").namelist()) == [
        "config.json",
        "metadata.json",
        "model.weights.h5",
    ]


def test_rnnkit_metadata_travels_in_the_keras_file_and_keras_still_opens_it(tmp_path):
    """A model from `rnnkit forecast` keeps what `rnnkit predict` needs (its metadata) through
    a .keras file; Keras ignores the extra key in metadata.json."""
    model = rnnkit.Sequential([rnnkit.layers.Input((4, 2)), rnnkit.layers.GRU(3)])
    model.metadata = {"task": "forecast", "window": 4, "scalers": {"a": [1.5, 2.0]}}
    path = tmp_path / "m.keras"
    model.save(path)
    assert rnnkit.load_model(path).metadata == model.metadata
    x = np.random.default_rng(0).normal(size=(2, 4, 2)).astype("float32")
    theirs = keras.saving.load_model(path)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x), atol=ATOL)
