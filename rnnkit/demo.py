"""`rnnkit demo`: the models from the notes, built, shown, and one of them trained.

Each section is code a learner would write from the notes, with only the import
line changed from Keras to rnnkit.
"""

from __future__ import annotations

import numpy as np

from rnnkit import Input, Model, Sequential
from rnnkit.layers import Dense, Embedding, SimpleRNN
from rnnkit.utils import set_random_seed


def _title(text: str) -> None:
    print(f"\n== {text} ==")


def seed_models() -> None:
    """The architectures from the notes, with their summaries."""
    _title("A SimpleRNN on 4 steps of 5 features, then a sigmoid unit")
    model = Sequential()
    model.add(SimpleRNN(3, input_shape=(4, 5)))
    model.add(Dense(1, activation="sigmoid"))
    model.summary()
    print(
        "get_weights() shapes:",
        [w.shape for w in model.get_weights()],
        "-> kernel (input_dim, units), recurrent_kernel (units, units), bias (units,), ...",
    )

    _title("Sentiment: Embedding -> SimpleRNN -> Dense(sigmoid)")
    model = Sequential(
        [
            Embedding(input_dim=10000, output_dim=64, input_length=100),
            SimpleRNN(64),
            Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.summary()

    _title("The functional API: Input -> SimpleRNN -> Dense")
    T, D, M, K = 10, 3, 5, 2
    i = Input(shape=(T, D))
    x = SimpleRNN(M)(i)
    x = Dense(K)(x)
    model = Model(i, x)
    model.summary()
    kernel, recurrent, bias = model.layers[1].get_weights()
    print(
        f"SimpleRNN weights: W {kernel.shape} (D x M), U {recurrent.shape} (M x M), b {bias.shape}"
    )


def yesterday_today_model():
    """The notes' worked example (seed 003): yesterday's and today's value in, tomorrow's out.

    One ReLU unit, w1 = 1.8 on the input, w2 = -0.5 on the state carried from yesterday,
    bias 0, `return_sequences=True`, then the output unit w3 = 1.1, bias 0.

    Example:
        >>> model = yesterday_today_model()
        >>> round(float(model.predict(np.array([[[0.5], [1.0]]]))[0, 1, 0]), 4)
        1.485
    """
    model = Sequential(
        [SimpleRNN(1, activation="relu", input_shape=(2, 1), return_sequences=True), Dense(1)]
    )
    model.layers[0].set_weights([np.array([[1.8]]), np.array([[-0.5]]), np.zeros(1)])
    model.layers[1].set_weights([np.array([[1.1]]), np.zeros(1)])
    return model


def tanh_step():
    """The notes' one step of a 4-unit tanh RNN (seed 004), `h_t = tanh(W_x x_t + W_h h_{t-1}
    + b)`, with weights of one decimal so each sum can be checked by hand.

    Returns `(layer, x, h_prev)`: a built SimpleRNN(4), the word vector `x_t` as a batch of
    one sequence of one step `(1, 1, 4)`, and the previous hidden state `(1, 4)`. rnnkit,
    like Keras, writes the products `x_t W` and `h_{t-1} U`: the notes' `W_x x_t` and
    `W_h h_{t-1}` with the matrices transposed.

    Example:
        >>> layer, x, h_prev = tanh_step()
        >>> layer(x, initial_state=[h_prev]).shape
        torch.Size([1, 4])
    """
    layer = SimpleRNN(4)
    layer.build((None, 1, 4))
    kernel = [
        [0.5, -0.3, 0.8, 0.1],
        [0.2, 0.7, -0.4, 0.6],
        [-0.6, 0.1, 0.3, -0.2],
        [0.4, -0.5, 0.2, 0.9],
    ]
    recurrent = [
        [0.3, 0.2, -0.1, 0.4],
        [-0.2, 0.6, 0.1, 0.3],
        [0.5, -0.4, 0.7, -0.1],
        [0.1, 0.3, -0.3, 0.2],
    ]
    bias = [0.1, -0.2, 0.0, 0.3]
    layer.set_weights([np.array(kernel), np.array(recurrent), np.array(bias)])
    x = np.array([[[1.0, 0.5, -1.0, 0.2]]], dtype=np.float32)
    h_prev = np.array([[0.4, -0.3, 0.9, 0.5]], dtype=np.float32)
    return layer, x, h_prev


def unrolled_example() -> None:
    """The worked example from the notes: yesterday and today's value predict tomorrow."""
    _title("Unrolling by hand: ReLU RNN with w1=1.8, w2=-0.5, w3=1.1, biases 0")
    model = yesterday_today_model()
    yesterday, today = 0.5, 1.0
    outputs = model.predict(np.array([[[yesterday], [today]]]))[0, :, 0]
    h1 = max(0.0, yesterday * 1.8)
    h2 = max(0.0, today * 1.8 + h1 * -0.5)
    print(f"h1 = max(0, {yesterday} x 1.8) = {h1:.3f}")
    print(f"h2 = max(0, {today} x 1.8 + {h1:.3f} x -0.5) = {h2:.3f}")
    print(f"tomorrow = {h2:.3f} x 1.1 = {h2 * 1.1:.4f};  rnnkit says {outputs[1]:.4f}")


def train_small(epochs: int, seed: int) -> float:
    """Train a SimpleRNN to tell whether a sequence's sum is positive; returns val accuracy."""
    _title("Training: is the sum of 10 numbers positive?")
    set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1200, 10, 1)).astype("float32")
    y = (x.sum(axis=(1, 2)) > 0).astype("float32")
    model = Sequential([SimpleRNN(8, input_shape=(10, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.2, verbose=2)
    accuracy = history.history["val_accuracy"][-1]
    print(f"validation accuracy after {epochs} epochs: {accuracy:.3f}")
    return accuracy


def run_demo(epochs: int = 30, seed: int = 0) -> None:
    seed_models()
    unrolled_example()
    train_small(epochs, seed)
