"""Keras 2 / tf.keras `.h5` model files: rnnkit reproduces the outputs recorded when
tests/data/keras_h5/make_fixtures.py made them with tf_keras 2.21."""

import pathlib

import numpy as np
import pytest

import rnnkit

DATA = pathlib.Path(__file__).parent / "data" / "keras_h5"
NAMES = ["simple_rnn", "lstm_bidirectional", "gru_both", "embedding_mask", "functional"]


@pytest.mark.parametrize("name", NAMES)
def test_keras2_h5_model_gives_keras_outputs(name):
    model = rnnkit.load_model(DATA / f"{name}.h5")
    recorded = np.load(DATA / f"{name}.npz")
    x = recorded["x"].astype("int64") if name == "embedding_mask" else recorded["x"]
    np.testing.assert_allclose(model.predict(x, verbose=0), recorded["y"], atol=1e-5)


def test_keras2_h5_keeps_compile_settings():
    model = rnnkit.load_model(DATA / "gru_both.h5")
    assert type(model.optimizer).__name__ == "Adam"
    np.testing.assert_allclose(model.optimizer.learning_rate, 0.01, rtol=1e-6)
    assert model.loss is not None


def test_keras2_h5_gru_bias_forms():
    model = rnnkit.load_model(DATA / "gru_both.h5", compile=False)
    gru_after, gru_before = model.layers[0], model.layers[1]
    assert gru_after.cell.reset_after and not gru_before.cell.reset_after
    assert tuple(gru_after.cell.bias.shape) == (2, 9)
    assert tuple(gru_before.cell.bias.shape) == (6,)
