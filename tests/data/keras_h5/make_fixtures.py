"""Make the Keras 2 `.h5` fixtures of tests/test_keras_h5.py (needs TensorFlow; not run in CI).

    TF_USE_LEGACY_KERAS=1 .venv-bench/bin/python tests/data/keras_h5/make_fixtures.py

Each model is saved by tf.keras 2 (`tf_keras`) as `<name>.h5`, with `<name>.npz` holding
the input `x` and Keras' output `y` on it, so that the test needs no TensorFlow.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
B, T, D, V = 3, 5, 4, 7
L = keras.layers


def models():
    yield "simple_rnn", keras.Sequential([keras.Input((T, D)), L.SimpleRNN(3), L.Dense(1)]), "float"
    yield (
        "lstm_bidirectional",
        keras.Sequential(
            [keras.Input((T, D)), L.Bidirectional(L.LSTM(3, return_sequences=True)), L.LSTM(2)]
        ),
        "float",
    )
    yield (
        "gru_both",
        keras.Sequential(
            [
                keras.Input((T, D)),
                L.GRU(3, return_sequences=True),  # reset_after=True: bias (2, 9)
                L.GRU(2, reset_after=False),  # bias (6,)
                L.Dense(1),
            ]
        ),
        "float",
    )
    yield (
        "embedding_mask",
        keras.Sequential(
            [keras.Input((T,)), L.Embedding(V, 3, mask_zero=True), L.GRU(2), L.Dense(2)]
        ),
        "ids",
    )
    inputs = keras.Input((T, D))
    outputs = L.Dense(2, activation="tanh")(L.SimpleRNN(3)(L.Masking(0.0)(inputs)))
    yield "functional", keras.Model(inputs, outputs), "float"


def main():
    rng = np.random.default_rng(0)
    for name, model, kind in models():
        model.set_weights(
            [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()]
        )
        if kind == "ids":
            x = rng.integers(1, V, size=(B, T)).astype("float32")
            x[1, -2:] = 0  # padding, masked by mask_zero
        else:
            x = rng.normal(size=(B, T, D)).astype("float32")
            x[0, -2:] = 0.0
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
        y = model.predict(x, verbose=0)
        model.save(os.path.join(HERE, f"{name}.h5"), include_optimizer=True)
        np.savez_compressed(os.path.join(HERE, f"{name}.npz"), x=x, y=y)


if __name__ == "__main__":
    main()
