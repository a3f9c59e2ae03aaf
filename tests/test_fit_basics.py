"""compile/fit/evaluate basics (the full training suite lives with the training issue)."""

import numpy as np
import pytest

from rnnkit import Sequential
from rnnkit.layers import Dense, SimpleRNN
from rnnkit.utils import set_random_seed


def _sign_of_sum(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 1)).astype("float32")
    return x, (x.sum(axis=(1, 2)) > 0).astype("float32")


def test_fit_learns_and_records_keras_history_keys():
    set_random_seed(0)
    x, y = _sign_of_sum(600)
    model = Sequential([SimpleRNN(8, input_shape=(8, 1)), Dense(1, activation="sigmoid")])
    from rnnkit.optimizers import Adam

    model.compile(
        optimizer=Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"]
    )
    history = model.fit(x, y, epochs=8, batch_size=32, validation_split=0.25, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] >= 0.9
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy >= 0.9


def test_fit_before_compile():
    model = Sequential([Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match=r"must be compiled before fit: model.compile\("):
        model.fit(np.zeros((4, 2)), np.zeros(4))


def test_compile_unknown_names_fail_at_compile():
    model = Sequential([Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match="Unknown loss 'mse2'"):
        model.compile(optimizer="adam", loss="mse2")


def test_fit_sample_count_mismatch():
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="x has 4 samples but y has 3"):
        model.fit(np.zeros((4, 2)), np.zeros(3), verbose=0)


def test_fit_nan_inputs():
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((4, 2))
    x[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"x contains 1 NaN or infinite value\(s\)"):
        model.fit(x, np.zeros(4), verbose=0)


@pytest.mark.parametrize("split", [-0.1, 1.0])
def test_fit_validation_split_range(split):
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"validation_split .* \[0, 1\)"):
        model.fit(np.zeros((4, 2)), np.zeros(4), validation_split=split, verbose=0)
