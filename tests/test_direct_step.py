"""fit's direct step (`rnnkit.training._direct`): the forward and backward passes by hand.

The oracle is fit's eager step, autograd through the same layers (`compile(jit_compile=
False)`): trained from the same weights on the same batches, in float64, the two must end
with the same weights. The eager step's gradients are themselves held to the reference
loop and to gradcheck (test_kernels*.py); a finite-difference check here closes the loop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import Sequential, layers, losses, optimizers
from rnnkit.layers import GRU, LSTM, Dense, Embedding, Input, SimpleRNN

DIRECT = "direct (hand-written backward passes, no autograd graph)"


def _pair(build, loss, x, y, optimizer="adam", epochs=3, batch_size=8, **fit):
    """The step path and final weights of the direct and the eager step, from one start."""
    out = []
    for jit in ("auto", False):
        torch.manual_seed(0)
        model = build()
        model.compile(optimizer=optimizers.get(optimizer), loss=loss, jit_compile=jit)
        torch.manual_seed(1)  # the same shuffles and dropout masks for both
        history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, **fit)
        out.append((model.step_path, model.get_weights(), history.history["loss"]))
    return out


def _assert_same(direct, eager, atol=1e-10, rtol=1e-9):
    (path, weights, loss), (eager_path, eager_weights, eager_loss) = direct, eager
    assert path == DIRECT
    assert eager_path == "eager (compile(jit_compile=False))"
    for a, b in zip(weights, eager_weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    np.testing.assert_allclose(loss, eager_loss, rtol=rtol)


def _data(classes=None, per_step=False, samples=24, steps=6, features=3, outputs=2):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, steps, features))
    shape = (samples, steps) if per_step else (samples,)
    if classes == "ids":
        return x, rng.integers(0, outputs, shape)
    if classes == "binary":
        return x, rng.integers(0, 2, (*shape, 1)).astype(np.float64)
    return x, rng.random((*shape, outputs))


CELLS = {
    "SimpleRNN": lambda n, **kw: SimpleRNN(n, dtype="float64", **kw),
    "GRU": lambda n, **kw: GRU(n, dtype="float64", **kw),
    "GRU reset_after=False": lambda n, **kw: GRU(n, dtype="float64", reset_after=False, **kw),
    "LSTM": lambda n, **kw: LSTM(n, dtype="float64", **kw),
    "SimpleRNN relu": lambda n, **kw: SimpleRNN(n, dtype="float64", activation="relu", **kw),
}


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("per_step", [False, True])
def test_stacked_recurrences_train_as_on_autograd(cell, per_step):
    make = CELLS[cell]

    def build():
        return Sequential(
            [
                Input((6, 3), dtype="float64"),
                make(5, return_sequences=True),
                make(4, return_sequences=per_step),
                Dense(2, activation="softmax", dtype="float64"),
            ]
        )

    x, y = _data("ids", per_step)
    _assert_same(*_pair(build, "sparse_categorical_crossentropy", x, y))


LOSSES = {
    "mse": (None, "linear"),
    "mae": (None, "linear"),
    "huber": (None, "linear"),  # no written gradient: autograd through the loss alone
    "binary_crossentropy": ("binary", "sigmoid"),
    "bce logits": ("binary", "linear"),
    "sparse_categorical_crossentropy": ("ids", "softmax"),
    "scce logits": ("ids", "linear"),
    "categorical_crossentropy": (None, "softmax"),
}


def _loss(name):
    if name == "bce logits":
        return losses.BinaryCrossentropy(from_logits=True)
    if name == "scce logits":
        return losses.SparseCategoricalCrossentropy(from_logits=True)
    return name


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_trains_as_on_autograd(name):
    classes, activation = LOSSES[name]
    outputs = 1 if classes == "binary" else 3

    def build():
        return Sequential(
            [
                Input((6, 3), dtype="float64"),
                GRU(4, dtype="float64"),
                Dense(outputs, activation=activation, dtype="float64"),
            ]
        )

    x, y = _data(classes, outputs=outputs)
    if name == "categorical_crossentropy":
        y = y / y.sum(-1, keepdims=True)
    _assert_same(*_pair(build, _loss(name), x, y))


def test_embedding_dropout_dense_activations_and_flatten_train_as_on_autograd():
    rng = np.random.default_rng(1)
    ids, y = rng.integers(0, 20, (24, 5)), rng.random((24, 1))

    def build():
        return Sequential(
            [
                Input((5,), dtype="int64"),
                Embedding(20, 4, dtype="float64"),
                layers.Dropout(0.3, dtype="float64"),
                LSTM(6, return_sequences=True, dtype="float64"),
                Dense(5, activation="tanh", dtype="float64"),
                layers.Activation("elu", dtype="float64"),  # autograd for this one function
                layers.Flatten(dtype="float64"),
                Dense(3, activation="relu", dtype="float64"),
                Dense(1, dtype="float64"),
            ]
        )

    _assert_same(*_pair(build, "mse", ids, y, shuffle=True))


def test_sample_weights_and_a_frozen_layer_train_as_on_autograd():
    x, y = _data()
    weights = np.random.default_rng(2).random(len(x))

    def build():
        frozen = SimpleRNN(4, dtype="float64", trainable=False)
        return Sequential([Input((6, 3), dtype="float64"), frozen, Dense(2, dtype="float64")])

    direct, eager = _pair(build, "mse", x, y, sample_weight=weights)
    _assert_same(direct, eager)
    torch.manual_seed(0)
    start = build().get_weights()
    for a, b in zip(direct[1][:3], start[:3]):  # the frozen layer's kernel, U and bias
        np.testing.assert_array_equal(a, b)


def test_float32_training_stays_with_autograd_through_many_steps():
    x, y = _data(samples=256)
    x, y = x.astype(np.float32), y.astype(np.float32)

    def build():
        return Sequential([Input((6, 3)), GRU(16), Dense(2)])

    direct, eager = _pair(build, "mse", x, y, epochs=5, batch_size=32)
    _assert_same(direct, eager, atol=1e-5, rtol=1e-6)


def test_the_gradients_equal_finite_differences():
    """The direct step's gradients, read from `.grad` after one step, against central
    differences of the model's loss in float64."""
    from rnnkit.training._direct import DirectStep

    torch.manual_seed(0)
    model = Sequential(
        [Input((4, 2), dtype="float64"), GRU(3, dtype="float64"), Dense(1, dtype="float64")]
    )
    model.compile(optimizer="sgd", loss="mse")
    x = torch.randn(5, 4, 2, dtype=torch.float64)
    y = torch.randn(5, 1, dtype=torch.float64)
    model(x)
    DirectStep(model).run(x, y, None)
    eps = 1e-6
    for weight in model.trainable_weights:
        numeric = torch.zeros_like(weight)
        flat = weight.data.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            values = []
            for value in (old + eps, old - eps):
                flat[i] = value
                with torch.no_grad():
                    values.append(float(model.loss(y, model(x))))
            flat[i] = old
            numeric.view(-1)[i] = (values[0] - values[1]) / (2 * eps)
        torch.testing.assert_close(weight.grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "layer, why",
    [
        (lambda: SimpleRNN(4, stateful=True), "has stateful=True"),
        (lambda: SimpleRNN(4, go_backwards=True), "has go_backwards=True"),
        (lambda: SimpleRNN(4, dropout=0.2), "has dropout"),
        (lambda: SimpleRNN(4, recurrent_dropout=0.2), "has dropout"),
        (lambda: Dense(4, activity_regularizer="l2"), "regularizers"),
    ],
)
def test_step_path_names_why_a_layer_runs_on_autograd(layer, why):
    x, y = np.ones((8, 5, 3), np.float32), np.ones((8, 1), np.float32)
    model = Sequential([Input((5, 3), batch_size=8), layer(), layers.Flatten(), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert model.step_path.startswith("eager (") and why in model.step_path


def test_step_path_names_why_a_model_runs_on_autograd():
    x, y = np.ones((8, 5, 3), np.float32), np.ones((8, 1), np.float32)

    class Own(Dense):
        def call(self, inputs):
            return super().call(inputs) * 2

    cases = [
        (Sequential([SimpleRNN(4, kernel_regularizer="l2"), Dense(1)]), "regularizers"),
        (Sequential([SimpleRNN(4), Own(1)]), "Own 'own' has a call() of its own"),
        (Sequential([layers.Masking(), SimpleRNN(4), Dense(1)]), "Masking"),
    ]
    inputs = Input((5, 3))
    cases.append((rnnkit_model(inputs, Dense(1)(SimpleRNN(4)(inputs))), "not a Sequential"))
    for model, why in cases:
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=1, verbose=0)
        assert model.step_path.startswith("eager (") and why in model.step_path, model.step_path

    def batches():
        while True:
            yield x, y

    model = Sequential([SimpleRNN(4), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(batches(), steps_per_epoch=2, epochs=1, verbose=0)
    assert model.step_path == "eager (the data is not in-memory arrays)"
    model.fit(x, y, epochs=1, verbose=0)
    assert model.step_path == DIRECT


def rnnkit_model(inputs, outputs):
    from rnnkit import Model

    return Model(inputs, outputs)


def test_torch_hooks_keep_the_eager_step():
    x, y = np.ones((8, 5, 3), np.float32), np.ones((8, 1), np.float32)
    model = Sequential([SimpleRNN(4), Dense(1)])
    seen = []
    model.layers[0].register_forward_hook(lambda module, args, out: seen.append(1))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert "has torch hooks" in model.step_path and len(seen) >= 2


@pytest.mark.parametrize("name", ["mse", "mae", "binary_crossentropy", "bce logits", "scce"])
@pytest.mark.parametrize("shape", ["(B, 1)", "(B,) targets", "per step"])
def test_written_loss_gradients_equal_autograd(name, shape):
    torch.manual_seed(0)
    n, steps, classes = 6, 4, 3
    per_step = shape == "per step"
    lead = (n, steps) if per_step else (n,)
    if name == "scce":
        loss = losses.get("sparse_categorical_crossentropy")
        y_pred = torch.softmax(torch.randn(*lead, classes, dtype=torch.float64), -1)
        y_pred[0] = torch.tensor([1.0, 0.0, 0.0])  # clipped: no gradient through the clip
        y_true = torch.randint(0, classes, lead)
        if shape == "(B, 1)":
            y_true = y_true.unsqueeze(-1)
    else:
        loss = _loss(name) if name == "bce logits" else losses.get(name)
        y_pred = torch.rand(*lead, 1, dtype=torch.float64)
        if name == "binary_crossentropy":
            y_pred[0] = 1.0  # clipped
            y_pred[1] = 0.0
        y_true = torch.randint(0, 2, (*lead, 1)).double()
        if shape == "(B,) targets":
            y_true = y_true[..., 0]
    value, grad = losses.value_and_gradient(loss, y_true, y_pred)
    leaf = y_pred.clone().requires_grad_()
    expected = loss(y_true, leaf)
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    torch.testing.assert_close(value, expected.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)


def test_label_smoothing_and_weights_equal_autograd():
    torch.manual_seed(0)
    y_pred, y_true = torch.rand(6, 1, dtype=torch.float64), torch.randint(0, 2, (6, 1)).double()
    weights = torch.rand(6, dtype=torch.float64)
    for loss, w in (
        (losses.BinaryCrossentropy(label_smoothing=0.2), None),
        (losses.get("mse"), weights),
        (losses.MeanSquaredError(reduction="sum"), None),
    ):
        value, grad = losses.value_and_gradient(loss, y_true, y_pred, w)
        leaf = y_pred.clone().requires_grad_()
        expected = loss(y_true, leaf, sample_weight=w)
        torch.testing.assert_close(grad, torch.autograd.grad(expected, leaf)[0])
        torch.testing.assert_close(value, expected.detach())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_step_sizes_computed_by_the_block_equal_the_per_step_scalar_math(dtype):
    """Keras' per-step scalar math on 0-d tensors (as Keras on torch runs it) is the oracle;
    torch's float32 sqrt is not numpy's correctly rounded one, so a block must match it."""
    from rnnkit.optimizers import _adam_step_size

    like = torch.zeros((), dtype=dtype)
    for lr, b1, b2 in ((1e-3, 0.9, 0.999), (0.05, 0.5, 0.99)):
        for t in [*range(1, 300), 4095, 4096, 4097, 123_457]:

            def scalar(value):
                return torch.as_tensor(value, dtype=dtype)

            one, t_ = scalar(1.0), scalar(t)
            expected = scalar(lr) * torch.sqrt(one - scalar(b2) ** t_) / (one - scalar(b1) ** t_)
            got = _adam_step_size(lr, b1, b2, t, like)
            assert torch.as_tensor(got).dtype == dtype and float(got) == float(expected), (lr, t)


def test_a_shuffled_pass_gathered_whole_yields_the_same_batches():
    from rnnkit.training import _data

    x, y = torch.arange(20.0).reshape(10, 2), torch.arange(10.0)
    batches = _data.ArrayBatches(x, y, None, 3, shuffle=True)
    torch.manual_seed(5)
    whole = list(batches)
    torch.manual_seed(5)
    order = torch.randperm(10)
    for (xb, yb, wb), start in zip(whole, range(0, 10, 3)):
        index = order[start : start + 3]
        torch.testing.assert_close(xb, x[index])
        torch.testing.assert_close(yb, y[index])
        assert wb is None
    assert len(whole) == 4


def test_step_hooks_on_the_torch_optimizer_still_hear_each_step():
    x, y = np.ones((8, 5, 3), np.float32), np.ones((8, 1), np.float32)
    model = Sequential([SimpleRNN(4), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    heard = []
    model.optimizer.torch_optimizer.register_step_post_hook(lambda *args: heard.append(1))
    before = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert len(heard) == 2 and not np.allclose(before[0], model.get_weights()[0])
