"""The benchmark workloads, each described once: model, data, loss and step counts.

Every peer (rnnkit, hand-written PyTorch, Keras on each backend) builds its model and its
data from these descriptions, so all of them train the same network on the same arrays
with the same batch size, optimizer (Adam, lr=1e-3) and loss.

Only numpy is imported here: the Keras peers load this file under JAX or TensorFlow too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GATES = {"simple_rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per recurrent layer
LOSSES = {
    "binary": "binary_crossentropy",  # Dense(1, sigmoid): one 0/1 label per sequence
    "regression": "mse",  # Dense(1): one real target per sequence
    "classes": "sparse_categorical_crossentropy",  # Dense(classes, softmax): class ids
}


@dataclass(frozen=True)
class Recurrent:
    """One recurrent layer: `LSTM(units, return_sequences=...)`, maybe in `Bidirectional`."""

    kind: str  # "simple_rnn", "lstm" or "gru"
    units: int
    return_sequences: bool = False
    bidirectional: bool = False

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


@dataclass(frozen=True)
class Workload:
    """A model and its data: inputs `(batch, timesteps, features)` or token ids `(batch, T)`.

    The input is `features` floats per step, or token ids in `[0, vocab)` fed through
    `Embedding(vocab, embed)` when `vocab` is set; `one_hot` makes the float input one-hot
    rows (characters). The head is `Dense(outputs)` for the `task` (see LOSSES), applied at
    every step when the last recurrent layer returns sequences.
    """

    name: str
    title: str
    batch: int
    timesteps: int
    recurrent: tuple[Recurrent, ...]
    task: str
    features: int = 0
    vocab: int = 0
    embed: int = 0
    one_hot: bool = False
    outputs: int = 1
    steps: int = 10  # batches per epoch in a full run; --quick uses quick_steps
    quick_steps: int = 2
    repeats: int = 5  # timed epochs in a full run (the fastest is reported); --quick times 1
    metrics: tuple[str, ...] = ()  # compiled metrics, e.g. ("mae",): each peer tracks them

    @property
    def loss(self) -> str:
        return LOSSES[self.task]

    @property
    def per_step_targets(self) -> bool:
        return self.recurrent[-1].return_sequences

    @property
    def input_size(self) -> int:
        return self.embed if self.vocab else self.features

    def train_flops_per_sample(self) -> float:
        """Multiply-adds x 2 of the matrix products of one training sample.

        Forward, per recurrent layer and direction: 2*T*(D+H)*gates*H (the input and the
        recurrent products); the Dense head: 2*in*out, per step if it runs at every step.
        The Embedding is a lookup (no FLOPs). Training is counted as 3x forward (forward,
        plus the two products of the backward pass). Element-wise work is left out, so
        this is a lower bound on the work and an upper bound on samples/s.
        """
        t, d, flops = self.timesteps, self.input_size, 0.0
        for layer in self.recurrent:
            h = layer.units
            flops += layer.directions * 2 * t * (d + h) * GATES[layer.kind] * h
            d = h * layer.directions
        flops += 2 * d * self.outputs * (t if self.per_step_targets else 1)
        return 3 * flops

    def train_products(self) -> list[tuple[int, int, int, int]]:
        """The matrix products of one training batch as `(count, m, k, n)`: `count` products
        of an `(m, k)` by a `(k, n)` matrix; together 3x the forward FLOPs, as above.

        Per recurrent layer and direction: the input projection of all steps at once and,
        for backward, its input and weight gradients (one product each); the recurrent
        product and the gradient it sends back, one small product per step; the recurrent
        weight gradient over all steps. The Dense head and its two gradients.
        """
        b, t, d = self.batch, self.timesteps, self.input_size
        products = []
        for layer in self.recurrent:
            h, width = layer.units, GATES[layer.kind] * layer.units
            for _ in range(layer.directions):
                products += [
                    (1, t * b, d, width),  # x W
                    (1, t * b, width, d),  # dL/dx = dz W^T
                    (1, d, t * b, width),  # dW = x^T dz
                    (t, b, h, width),  # h_{t-1} U, each step
                    (t, b, width, h),  # dL/dh_{t-1} = dz_t U^T, each step
                    (1, h, t * b, width),  # dU = h^T dz
                ]
            d = h * layer.directions
        rows = b * (t if self.per_step_targets else 1)
        products += [
            (1, rows, d, self.outputs),
            (1, rows, self.outputs, d),
            (1, d, rows, self.outputs),
        ]
        return products


WORKLOADS = [
    Workload(
        name="simple_rnn",
        title="SimpleRNN(32), T=20, D=3, B=64",
        batch=64,
        timesteps=20,
        features=3,
        recurrent=(Recurrent("simple_rnn", 32),),
        task="binary",
        steps=50,
        repeats=7,
        quick_steps=10,
    ),
    Workload(
        name="forecast_gru",
        title="GRU(16), T=14, D=6, B=64, mse + mae metric (the default forecast's model)",
        batch=64,
        timesteps=14,
        features=6,
        recurrent=(Recurrent("gru", 16),),
        task="regression",
        metrics=("mae",),
        steps=50,
        repeats=7,
        quick_steps=10,
    ),
    Workload(
        name="embedding_simple_rnn",
        title="Embedding(10000,64)+SimpleRNN(64), T=100, B=64",
        batch=64,
        timesteps=100,
        vocab=10000,
        embed=64,
        recurrent=(Recurrent("simple_rnn", 64),),
        task="binary",
        steps=20,
        repeats=5,
        quick_steps=3,
    ),
    Workload(
        name="char_lstm",
        title="char LSTM(256), 65 symbols one-hot, T=100, B=32, next symbol at every step",
        batch=32,
        timesteps=100,
        features=65,
        one_hot=True,
        recurrent=(Recurrent("lstm", 256, return_sequences=True),),
        task="classes",
        outputs=65,
        steps=8,
        repeats=4,
        quick_steps=2,
    ),
    Workload(
        name="gru",
        title="GRU(128), T=100, D=128, B=32",
        batch=32,
        timesteps=100,
        features=128,
        recurrent=(Recurrent("gru", 128),),
        task="regression",
        steps=10,
        repeats=4,
        quick_steps=2,
    ),
    Workload(
        name="bilstm_2layer",
        title="Embedding(10000,64)+2x Bidirectional(LSTM(128)), T=100, B=32",
        batch=32,
        timesteps=100,
        vocab=10000,
        embed=64,
        recurrent=(
            Recurrent("lstm", 128, return_sequences=True, bidirectional=True),
            Recurrent("lstm", 128, bidirectional=True),
        ),
        task="binary",
        steps=5,
        quick_steps=1,
    ),
    Workload(
        name="long_simple_rnn",
        title="SimpleRNN(128), T=1000, D=1, B=16",
        batch=16,
        timesteps=1000,
        features=1,
        recurrent=(Recurrent("simple_rnn", 128),),
        task="regression",
        steps=5,
        quick_steps=1,
    ),
]


@dataclass(frozen=True)
class Latency:
    """Predict one sequence `(1, T, D)` with `workload`'s model: `calls` timed calls (fewer
    when each is slow, see timing.time_calls and time_interleaved)."""

    name: str
    title: str
    workload: str
    timesteps: int = 20
    calls: int = 100
    quick_calls: int = 10


LATENCIES = [
    Latency("latency_simple_rnn", "SimpleRNN(32), T=20, D=3", "simple_rnn"),
    Latency("latency_char_lstm", "char LSTM(256), T=20, 65 symbols", "char_lstm"),
]


def by_name(name: str) -> Workload:
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise ValueError(f"No workload {name!r}; known: {', '.join(w.name for w in WORKLOADS)}.")


def make_data(w: Workload, samples: int, timesteps: int | None = None, seed: int = 0):
    """`(x, y)` numpy arrays for `samples` sequences, the same for every peer (fixed seed).

    x: `(samples, T)` int64 token ids, or `(samples, T, features)` float32.
    y: `(samples, 1)` float32 (binary, regression), `(samples, T)` or `(samples,)` int64
    class ids.
    """
    t = timesteps or w.timesteps
    rng = np.random.default_rng(seed)
    if w.vocab:
        x = rng.integers(1, w.vocab, size=(samples, t), dtype=np.int64)
    elif w.one_hot:
        ids = rng.integers(0, w.features, size=(samples, t))
        x = np.eye(w.features, dtype=np.float32)[ids]  # (samples, T, features)
    else:
        x = rng.standard_normal((samples, t, w.features), dtype=np.float32)
    if w.task == "binary":
        y = rng.integers(0, 2, size=(samples, 1)).astype(np.float32)
    elif w.task == "regression":
        y = rng.standard_normal((samples, 1), dtype=np.float32)
    else:
        shape = (samples, t) if w.per_step_targets else (samples,)
        y = rng.integers(0, w.outputs, size=shape, dtype=np.int64)
    return x, y


def build_keras_style(w: Workload, layers, Sequential):
    """The model in the Keras API, for `keras.layers` or `rnnkit.layers` (the same calls).

    Compiled with Adam (lr=1e-3, the default of both) and the workload's loss.
    """
    shape = (w.timesteps,) if w.vocab else (w.timesteps, w.features)
    stack = [layers.Input(shape=shape)]
    if w.vocab:
        stack.append(layers.Embedding(w.vocab, w.embed))
    kinds = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
    for r in w.recurrent:
        layer = kinds[r.kind](r.units, return_sequences=r.return_sequences)
        stack.append(layers.Bidirectional(layer) if r.bidirectional else layer)
    activation = {"binary": "sigmoid", "regression": None, "classes": "softmax"}[w.task]
    stack.append(layers.Dense(w.outputs, activation=activation))
    model = Sequential(stack)
    model.compile(optimizer="adam", loss=w.loss, metrics=list(w.metrics))
    return model
