"""The four shapes of the notes, with every recurrent layer: build, summary, predict, train.

- one-to-one: one step in, one prediction out;
- one-to-many: a vector, `RepeatVector(T)`, an RNN with `return_sequences=True`, then
  `TimeDistributed(Dense)`: one prediction per step;
- many-to-one: a sequence in, the last state to `Dense`;
- many-to-many: `return_sequences=True` and `TimeDistributed(Dense)`.

Summaries and predictions are compared with Keras 3; training has to lower the loss of a
small learnable synthetic task clearly.
"""

import keras
import numpy as np
import pytest
from conftest import assert_close, capture_summary, copy_weights, parse_summary

import rnnkit

B, T, D, U = 6, 5, 3, 4

# How each recurrent layer is written; `L` is the library's layers module.
RECURRENT = {
    "simple_rnn": lambda L, **kw: L.SimpleRNN(U, **kw),
    "lstm": lambda L, **kw: L.LSTM(U, **kw),
    "gru": lambda L, **kw: L.GRU(U, **kw),
    "gru_reset_before": lambda L, **kw: L.GRU(U, reset_after=False, **kw),
    "bidirectional_lstm": lambda L, **kw: L.Bidirectional(L.LSTM(U, **kw)),
    "bidirectional_gru_sum": lambda L, **kw: L.Bidirectional(L.GRU(U, **kw), merge_mode="sum"),
}
RECURRENT_IDS = sorted(RECURRENT)


def one_to_one(lib, rnn):
    L = lib.layers
    return lib.Sequential([L.Input(shape=(1, D)), RECURRENT[rnn](L), L.Dense(1)])


def one_to_many(lib, rnn):
    L = lib.layers
    return lib.Sequential(
        [
            L.Input(shape=(D,)),
            L.Dense(U, activation="tanh"),
            L.RepeatVector(T),
            RECURRENT[rnn](L, return_sequences=True),
            L.TimeDistributed(L.Dense(1)),
        ]
    )


def many_to_one(lib, rnn):
    L = lib.layers
    return lib.Sequential([L.Input(shape=(T, D)), RECURRENT[rnn](L), L.Dense(1)])


def many_to_many(lib, rnn):
    L = lib.layers
    return lib.Sequential(
        [
            L.Input(shape=(T, D)),
            RECURRENT[rnn](L, return_sequences=True),
            L.TimeDistributed(L.Dense(1)),
        ]
    )


def masked_many_to_many(lib, rnn):
    """Token ids with 0 as padding, a mask through the recurrence to a per-step output."""
    L = lib.layers
    return lib.Sequential(
        [
            L.Input(shape=(T,), dtype="int32"),
            L.Embedding(8, D, mask_zero=True),
            RECURRENT[rnn](L, return_sequences=True),
            L.TimeDistributed(L.Dense(1)),
        ]
    )


# ------------------------------------------------------------ synthetic tasks
def one_to_one_data(rng, n):
    x = rng.normal(size=(n, 1, D)).astype(np.float32)
    return x, np.tanh(x[:, 0, :1] - x[:, 0, 1:2])


def one_to_many_data(rng, n):
    x = rng.normal(size=(n, D)).astype(np.float32)
    ramp = np.linspace(0.2, 1.0, T, dtype=np.float32)
    return x, (x[:, :1] * ramp)[..., None]  # (n, T, 1): the first feature, scaled up over time


def many_to_one_data(rng, n):
    x = rng.normal(size=(n, T, D)).astype(np.float32)
    return x, x[:, :, :1].mean(axis=1)  # the mean of the first feature


def many_to_many_data(rng, n):
    x = rng.normal(size=(n, T, D)).astype(np.float32)
    return x, np.cumsum(x[:, :, :1], axis=1) / np.sqrt(T)  # a running sum


def masked_data(rng, n):
    ids = rng.integers(1, 8, size=(n, T)).astype("int32")
    lengths = rng.integers(2, T + 1, size=n)
    ids[np.arange(T)[None, :] >= lengths[:, None]] = 0  # right padding
    return ids, (ids[..., None] % 2).astype(np.float32)  # is the token odd?


SHAPES = {
    "one_to_one": (one_to_one, one_to_one_data),
    "one_to_many": (one_to_many, one_to_many_data),
    "many_to_one": (many_to_one, many_to_one_data),
    "many_to_many": (many_to_many, many_to_many_data),
    "masked_many_to_many": (masked_many_to_many, masked_data),
}
SHAPE_IDS = sorted(SHAPES)


def build_pair(shape, rnn):
    make = SHAPES[shape][0]
    keras.utils.clear_session(free_memory=False)
    theirs = make(keras, rnn)
    rnnkit.utils.clear_session()
    ours = make(rnnkit, rnn)
    return theirs, ours


@pytest.mark.parametrize("shape", SHAPE_IDS)
@pytest.mark.parametrize("rnn", RECURRENT_IDS)
def test_summary_matches_keras(shape, rnn):
    theirs, ours = build_pair(shape, rnn)
    assert parse_summary(capture_summary(ours)) == parse_summary(capture_summary(theirs))
    assert ours.count_params() == theirs.count_params()


@pytest.mark.parametrize("shape", SHAPE_IDS)
@pytest.mark.parametrize("rnn", RECURRENT_IDS)
def test_predict_matches_keras(rng, shape, rnn):
    theirs, ours = build_pair(shape, rnn)
    copy_weights(theirs, ours, rng)
    x, _ = SHAPES[shape][1](rng, B)
    want = theirs.predict(x, verbose=0, batch_size=4)
    assert_close(ours.predict(x, batch_size=4), want)


# Each shape trains with one layer kind (the summaries and predictions above cover all).
TRAINING = [
    ("one_to_one", "lstm"),
    ("one_to_many", "gru"),
    ("many_to_one", "gru_reset_before"),
    ("many_to_many", "bidirectional_gru_sum"),
    ("masked_many_to_many", "simple_rnn"),
]


@pytest.mark.parametrize("shape,rnn", TRAINING)
def test_small_fit_lowers_the_loss(rng, shape, rnn):
    rnnkit.utils.set_random_seed(0)
    model = SHAPES[shape][0](rnnkit, rnn)
    x, y = SHAPES[shape][1](rng, 32)
    model.compile(optimizer=rnnkit.optimizers.Adam(0.03), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.5 * before, (before, history.history["loss"], after)
    assert model.predict(x[:B]).shape == (B, *y.shape[1:])


def test_stateful_model_trains_over_consecutive_chunks(rng):
    """Stateful layers read a long series in chunks of T; reset_states() between epochs."""
    series = np.sin(np.linspace(0, 8 * np.pi, B * T * 5, dtype=np.float32)).reshape(B, -1)
    x = series[:, :-1].reshape(B, -1, 1)
    y = series[:, 1:].reshape(B, -1, 1)  # the next value
    chunks = [(x[:, i : i + T], y[:, i : i + T]) for i in range(0, x.shape[1] - T + 1, T)]
    L = rnnkit.layers
    rnnkit.utils.set_random_seed(0)
    model = rnnkit.Sequential(
        [
            L.Input(batch_shape=(B, T, 1)),
            L.SimpleRNN(U, stateful=True, return_sequences=True),
            L.Bidirectional(L.GRU(U, stateful=True, return_sequences=True)),
            L.TimeDistributed(L.Dense(1)),
        ]
    )
    model.compile(optimizer=rnnkit.optimizers.Adam(0.03), loss="mse")

    def epoch(train):
        model.reset_states()  # a new pass over the series starts from zero states
        losses = []
        for cx, cy in chunks:
            if train:
                model.fit(cx, cy, epochs=1, batch_size=B, shuffle=False, verbose=0)
            else:
                losses.append(model.evaluate(cx, cy, batch_size=B, verbose=0))
        return float(np.mean(losses)) if losses else None

    before = epoch(train=False)
    for _ in range(8):
        epoch(train=True)
    assert epoch(train=False) < 0.5 * before
