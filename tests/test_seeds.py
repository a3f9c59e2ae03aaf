"""The code in the five seed notes (/work/shared/seeds/), with only the import line changed.

Each sample runs as written on rnnkit; the test checks the numbers the note shows
(output shapes, parameter counts, totals, weight shapes, the worked ReLU example)
and compares with the same code run on Keras 3.
"""

import keras
import numpy as np
import pytest
from conftest import assert_close, capture_summary, copy_weights, parse_summary, to_numpy

from rnnkit import Sequential as RootSequential
from rnnkit.layers import Dense, Embedding, Input, SimpleRNN
from rnnkit.models import Model, Sequential

K = keras.layers


def rows_and_totals(model):
    _, rows, totals = parse_summary(capture_summary(model))
    return rows[1:], totals  # without the header row


def printed_rows_and_totals(capsys):
    """The table `model.summary()` printed to stdout, parsed."""
    _, rows, totals = parse_summary(capsys.readouterr().out)
    return rows[1:], totals


# ----------------------------------------------------------------- seed 000
def seed_000_model(Sequential, SimpleRNN, Dense):
    model = Sequential()
    model.add(SimpleRNN(3, input_shape=(4, 5)))  # Corrected input shape
    model.add(Dense(1, activation="sigmoid"))
    return model


def test_seed_000_summary_prints_27_4_31(capsys):
    model = seed_000_model(RootSequential, SimpleRNN, Dense)
    model.summary()
    rows, totals = printed_rows_and_totals(capsys)
    assert [row[1:] for row in rows] == [["(None, 3)", "27"], ["(None, 1)", "4"]]
    assert [row[0].split()[1] for row in rows] == ["(SimpleRNN)", "(Dense)"]
    assert totals == [
        "Total params: 31 (124.00 B)",
        "Trainable params: 31 (124.00 B)",
        "Non-trainable params: 0 (0.00 B)",
    ]
    keras.utils.clear_session(free_memory=False)
    theirs = seed_000_model(keras.Sequential, K.SimpleRNN, K.Dense)
    assert (rows, totals) == rows_and_totals(theirs)


def test_seed_000_get_weights_look_like_the_note():
    model = seed_000_model(RootSequential, SimpleRNN, Dense)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(5, 3), (3, 3), (3,), (3, 1), (1,)]
    assert all(w.dtype == np.float32 for w in weights)
    kernel, recurrent, bias, dense_kernel, dense_bias = weights
    np.testing.assert_array_equal(bias, np.zeros(3, np.float32))  # array([0., 0., 0.])
    np.testing.assert_array_equal(dense_bias, np.zeros(1, np.float32))  # array([0.])
    # Keras' defaults: glorot_uniform kernels, an orthogonal recurrent kernel.
    assert np.abs(kernel).max() <= np.sqrt(6 / (5 + 3))
    assert np.abs(dense_kernel).max() <= np.sqrt(6 / (3 + 1))
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(3), atol=1e-5)
    # ... and the note's own arrays have those properties too.
    note_recurrent = np.array(
        [
            [0.810056, -0.48423904, 0.33063838],
            [0.18721902, -0.32077077, -0.92846936],
            [-0.5556601, -0.814014, 0.16918343],
        ]
    )
    np.testing.assert_allclose(note_recurrent @ note_recurrent.T, np.eye(3), atol=1e-5)


def test_seed_000_predictions_match_keras(rng):
    ours = seed_000_model(RootSequential, SimpleRNN, Dense)
    theirs = seed_000_model(keras.Sequential, K.SimpleRNN, K.Dense)
    copy_weights(theirs, ours, rng)
    x = rng.normal(size=(8, 4, 5)).astype(np.float32)  # (batch_size, timesteps, input_features)
    got = ours.predict(x)
    assert got.shape == (8, 1)
    assert np.all((got > 0) & (got < 1))  # sigmoid
    assert_close(got, theirs.predict(x, verbose=0))


# ----------------------------------------------------------------- seed 001
def seed_001_model(Sequential, Embedding, SimpleRNN, Dense):
    model = Sequential(
        [
            Embedding(input_dim=10000, output_dim=64, input_length=100),  # For word embeddings
            SimpleRNN(64),  # The RNN layer
            Dense(1, activation="sigmoid"),  # Output for binary classification
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def keras_seed_001_model():
    # Keras 3 ignores Embedding(input_length=...), so the oracle gets its shape from build.
    model = seed_001_model(keras.Sequential, K.Embedding, K.SimpleRNN, K.Dense)
    model.build((None, 100))
    return model


def test_seed_001_compiles_and_counts_like_keras():
    ours = seed_001_model(Sequential, Embedding, SimpleRNN, Dense)
    keras.utils.clear_session(free_memory=False)
    theirs = keras_seed_001_model()
    assert ours.count_params() == theirs.count_params() == 640000 + 8256 + 65
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert rows_and_totals(ours) == rows_and_totals(theirs)
    assert rows_and_totals(ours)[0][0][1:] == ["(None, 100, 64)", "640,000"]


def test_seed_001_evaluate_matches_keras(rng):
    ours = seed_001_model(Sequential, Embedding, SimpleRNN, Dense)
    theirs = keras_seed_001_model()
    copy_weights(theirs, ours, rng, scale=0.05)  # 64 units over 100 steps: keep it stable
    ids = rng.integers(0, 10000, size=(8, 100))
    labels = rng.integers(0, 2, size=(8, 1)).astype(np.float32)
    assert_close(ours.predict(ids), theirs.predict(ids, verbose=0))
    got = ours.evaluate(ids, labels, batch_size=8, verbose=0)
    want = theirs.evaluate(ids, labels, batch_size=8, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- seed 002
T, D, M, O = 30, 4, 5, 1  # 30 days of OHLC prices (D = 4), M hidden units, one output


def seed_002_model(Input, SimpleRNN, Dense, Model):
    input = Input(shape=(T, D))
    x = SimpleRNN(M)(input)
    x = Dense(O)(x)
    model = Model(input, x)
    return model


def test_seed_002_summary_matches_keras(capsys):
    model = seed_002_model(Input, SimpleRNN, Dense, Model)
    model.summary()
    rows, totals = printed_rows_and_totals(capsys)
    assert [row[1:] for row in rows] == [
        ["(None, 30, 4)", "0"],
        ["(None, 5)", str(D * M + M * M + M)],
        ["(None, 1)", str(M * O + O)],
    ]
    keras.utils.clear_session(free_memory=False)
    theirs = seed_002_model(K.Input, K.SimpleRNN, K.Dense, keras.Model)
    assert (rows, totals) == rows_and_totals(theirs)


def test_seed_002_layer_weights_unpack_as_in_the_note():
    model = seed_002_model(Input, SimpleRNN, Dense, Model)
    assert len(model.layers) == 3  # 3 layers = 3 to unpack
    assert model.layers[0].get_weights() == []
    w_x, w_h, b_h = model.layers[1].get_weights()
    w_o, b_o = model.layers[2].get_weights()
    assert w_x.shape == (D, M)  # D x H
    assert w_h.shape == (M, M)  # H x H
    assert b_h.shape == (M,)
    assert w_o.shape == (M, O)  # H x O
    assert b_o.shape == (O,)


def test_seed_002_math_matches_keras(rng):
    ours = seed_002_model(Input, SimpleRNN, Dense, Model)
    theirs = seed_002_model(K.Input, K.SimpleRNN, K.Dense, keras.Model)
    copy_weights(theirs, ours, rng)
    x = rng.normal(size=(6, T, D)).astype(np.float32)
    want = theirs.predict(x, verbose=0)
    assert_close(ours.predict(x), want)
    # h_t = tanh(w_h h_{t-1} + w_x x_t + b_h), y_T = w_o h_T + b_o, written out from the note.
    w_x, w_h, b_h = ours.layers[1].get_weights()
    w_o, b_o = ours.layers[2].get_weights()
    h = np.zeros((6, M), np.float32)
    for t in range(T):
        h = np.tanh(h @ w_h + x[:, t] @ w_x + b_h)
    np.testing.assert_allclose(h @ w_o + b_o, want, atol=1e-5)


# ----------------------------------------------------------------- seed 003
W1, W2, W3 = 1.8, -0.5, 1.1  # input weight, recurrent weight, output weight; biases 0


def relu(v):
    return max(0.0, v)


def by_hand(yesterday, today):
    """The note's arithmetic: y1 = f(yesterday*w1 + b1), y2 = f(today*w1 + y1*w2 + b1)."""
    y1 = relu(yesterday * W1 + 0.0)
    y2 = relu(today * W1 + y1 * W2 + 0.0)
    return y1, y2, y2 * W3 + 0.0


SEED_003_CASES = [
    # (yesterday, today, y1, y2, prediction), the last three worked out by hand.
    (0.0, 0.0, 0.0, 0.0, 0.0),  # the note: 0 x 1.8 + 0.0 = 0, f(0) = 0, 0 x 1.1 + 0.0
    (0.0, 1.0, 0.0, 1.8, 1.98),  # relu(1 x 1.8 + 0 x -0.5) = 1.8; 1.8 x 1.1 = 1.98
    (1.0, 1.0, 1.8, 0.9, 0.99),  # relu(1.8 + 1.8 x -0.5) = 0.9: the feedback loop matters
    (1.0, 0.0, 1.8, 0.0, 0.0),  # relu(0 + 1.8 x -0.5) = relu(-0.9) = 0
    (2.0, 1.5, 3.6, 0.9, 0.99),  # relu(2.7 + 3.6 x -0.5) = 0.9
    (0.5, 2.0, 0.9, 3.15, 3.465),  # relu(3.6 + 0.9 x -0.5) = 3.15
]

SEED_003_WEIGHTS = [
    np.array([[W1]], np.float32),
    np.array([[W2]], np.float32),
    np.array([0.0], np.float32),
    np.array([[W3]], np.float32),
    np.array([0.0], np.float32),
]


def seed_003_model(Sequential, Input, SimpleRNN, Dense, return_sequences=False):
    model = Sequential(
        [
            Input(shape=(2, 1)),  # yesterday, today; one value each
            SimpleRNN(1, activation="relu", return_sequences=return_sequences),
            Dense(1),
        ]
    )
    model.set_weights(SEED_003_WEIGHTS)
    return model


@pytest.mark.parametrize("yesterday,today,y1,y2,prediction", SEED_003_CASES)
def test_seed_003_worked_example(yesterday, today, y1, y2, prediction):
    assert by_hand(yesterday, today) == pytest.approx((y1, y2, prediction))
    x = np.array([[[yesterday], [today]]], np.float32)
    ours = seed_003_model(Sequential, Input, SimpleRNN, Dense)
    np.testing.assert_allclose(ours.predict(x), [[prediction]], atol=1e-5)
    theirs = seed_003_model(keras.Sequential, K.Input, K.SimpleRNN, K.Dense)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), [[prediction]], atol=1e-5)


def test_seed_003_unrolled_two_outputs():
    """Unrolled, the network has two inputs and two outputs: y1 x w3 and y2 x w3."""
    x = np.array([[[c[0]], [c[1]]] for c in SEED_003_CASES], np.float32)
    want = np.array([[[c[2] * W3], [c[4]]] for c in SEED_003_CASES], np.float32)
    ours = seed_003_model(Sequential, Input, SimpleRNN, Dense, return_sequences=True)
    theirs = seed_003_model(keras.Sequential, K.Input, K.SimpleRNN, K.Dense, True)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), want, atol=1e-5)
    np.testing.assert_allclose(ours.predict(x), want, atol=1e-5)
    hidden = to_numpy(ours.layers[0](x))
    np.testing.assert_allclose(hidden[:, :, 0], [[c[2], c[3]] for c in SEED_003_CASES], atol=1e-5)


# ----------------------------------------------------------------- seed 004
def test_seed_004_summary_prints_42(capsys):
    model = Sequential()
    model.add(SimpleRNN(3, input_shape=(2, 10)))
    model.summary()
    rows, totals = printed_rows_and_totals(capsys)
    assert [row[1:] for row in rows] == [["(None, 3)", "42"]]
    assert totals[0].startswith("Total params: 42")
    assert totals[1].startswith("Trainable params: 42")
    assert totals[2].startswith("Non-trainable params: 0")
    keras.utils.clear_session(free_memory=False)
    theirs = keras.Sequential()
    theirs.add(K.SimpleRNN(3, input_shape=(2, 10)))
    assert (rows, totals) == rows_and_totals(theirs)


def test_seed_004_alternative_notation_is_the_same(capsys):
    model = Sequential()
    model.add(SimpleRNN(3, input_length=2, input_dim=10))  # same as input_shape=(2, 10)
    model.summary()
    rows, totals = printed_rows_and_totals(capsys)
    # Keras 3 no longer accepts input_length=; the oracle is the input_shape= spelling.
    keras.utils.clear_session(free_memory=False)
    theirs = keras.Sequential()
    theirs.add(K.SimpleRNN(3, input_shape=(2, 10)))
    assert (rows, totals) == rows_and_totals(theirs)
    assert model.count_params() == 42


@pytest.mark.parametrize("return_sequences", [False, True])
def test_seed_004_return_sequences_shapes(rng, return_sequences):
    hidden_units, timesteps, input_dim = 3, 2, 10
    model = Sequential()
    model.add(
        SimpleRNN(
            hidden_units,
            input_shape=(timesteps, input_dim),
            return_sequences=return_sequences,
        )
    )
    theirs = keras.Sequential(
        [
            K.SimpleRNN(
                hidden_units, input_shape=(timesteps, input_dim), return_sequences=return_sequences
            )
        ]
    )
    copy_weights(theirs, model, rng)
    x = rng.normal(size=(8, timesteps, input_dim)).astype(np.float32)
    got = model.predict(x)
    batch_size = 8
    if return_sequences:
        assert got.shape == (batch_size, timesteps, hidden_units)  # 3D
    else:
        assert got.shape == (batch_size, hidden_units)  # 2D: last hidden state only
    assert np.all(np.abs(got) < 1.0)  # tanh
    assert_close(got, theirs.predict(x, verbose=0))
    if return_sequences:  # the last step of the sequence is the return_sequences=False output
        last = keras.Sequential([K.SimpleRNN(hidden_units, input_shape=(timesteps, input_dim))])
        last.set_weights(theirs.get_weights())
        assert_close(got[:, -1], last.predict(x, verbose=0))


def test_seed_004_four_by_four_weights():
    """The note's picture: x_t (4x1), W_x (4x4), W_h (4x4), b (4x1), h_t (4x1)."""
    model = Sequential()
    model.add(SimpleRNN(4, input_shape=(1, 4)))
    w_x, w_h, b = model.get_weights()
    assert (w_x.shape, w_h.shape, b.shape) == ((4, 4), (4, 4), (4,))
    x = np.random.default_rng(1).normal(size=(1, 1, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), np.tanh(x[:, 0] @ w_x + b), atol=1e-6)


def test_seed_004_unbuilt_model_summary_matches_keras():
    hidden_units = 4
    model = Sequential()
    model.add(SimpleRNN(hidden_units))
    keras.utils.clear_session(free_memory=False)
    theirs = keras.Sequential()
    theirs.add(K.SimpleRNN(hidden_units))
    assert rows_and_totals(model) == rows_and_totals(theirs)
