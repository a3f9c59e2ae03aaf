"""`rnnkit.explain.gradient_flow` held to autograd through the same loops written by hand, and
the `GradientFlow` callback's warnings on constructed vanishing and exploding cases."""

import doctest
import importlib
import json
import re
import warnings

import numpy as np
import pytest
import torch

from rnnkit import Input, Model, Sequential
from rnnkit.callbacks import GradientFlow
from rnnkit.explain import gradients as gradients_module
from rnnkit.explain.gradients import gradient_flow
from rnnkit.layers import LSTM, Bidirectional, Dense, Masking, SimpleRNN
from rnnkit.optimizers import SGD

F64 = "float64"
STEPS, FEATURES = 6, 2


def _hand_norms(model, x, y):
    """‖∂L/∂h_t‖ of each layer, from the layers' equations written with torch ops (float64),
    their weights copied, and autograd through them: L = mean((ŷ - y)²)."""
    sequence = torch.as_tensor(x)
    kept = {}
    for layer in model.layers[1:-1]:  # the recurrent layers, between Input and Dense
        W, U, b = (torch.as_tensor(w).requires_grad_() for w in layer.get_weights())
        h = c = torch.zeros(x.shape[0], layer.cell.units, dtype=torch.float64)
        hs = []
        for t in range(x.shape[1]):
            z = sequence[:, t] @ W + h @ U + b
            if isinstance(layer, SimpleRNN):
                h = torch.tanh(z)  # h_t = tanh(x_t W + h_{t-1} U + b)
            else:
                i, f, g, o = z.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            h.retain_grad()
            hs.append(h)
        kept[layer.name] = hs
        sequence = torch.stack(hs, dim=1)  # (B, T, units) for the next layer
    kernel, bias = (torch.as_tensor(w) for w in model.layers[-1].get_weights())
    loss = ((h @ kernel + bias - torch.as_tensor(y)) ** 2).mean()
    loss.backward()
    return {name: np.array([float(h.grad.norm()) for h in hs]) for name, hs in kept.items()}


@pytest.mark.parametrize(
    "stack",
    [[SimpleRNN], [LSTM], [SimpleRNN, LSTM]],
    ids=["simple_rnn", "lstm", "simple_rnn-lstm"],
)
def test_equals_autograd_through_the_loop_by_hand(stack):
    torch.manual_seed(0)
    inputs = Input((STEPS, FEATURES), dtype=F64)
    h = inputs
    for i, cell in enumerate(stack):
        h = cell(3 + i, return_sequences=i < len(stack) - 1, dtype=F64)(h)
    model = Model(inputs, Dense(1, dtype=F64)(h))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, STEPS, FEATURES)), rng.normal(size=(4, 1))
    flow = gradient_flow(model, x, y)
    expected = _hand_norms(model, x, y)
    assert list(flow.norms) == list(expected)
    for name, norms in expected.items():
        np.testing.assert_allclose(flow.norms[name], norms, rtol=1e-10)
        assert flow.decay[name] == pytest.approx(norms[0] / norms[-1], rel=1e-10)
    assert flow.every_step[model.layers[1].name] == (len(stack) > 1)
    # (evaluate keeps its running mean in float32)
    assert flow.loss == pytest.approx(float(model.evaluate(x, y, verbose=0)), rel=1e-6)


def test_masked_steps_get_no_gradient_and_decay_spans_the_real_steps():
    torch.manual_seed(1)
    model = Sequential([Input((STEPS, FEATURES)), Masking(), SimpleRNN(3), Dense(1)])
    x = np.random.default_rng(1).uniform(0.5, 1.5, size=(4, STEPS, FEATURES))
    x[:, -2:] = 0.0  # the last two steps are padding in every sequence
    flow = gradient_flow(model, x, np.zeros((4, 1)), loss="mse")
    norms = flow.norms["simple_rnn"]
    assert norms[-2:].tolist() == [0.0, 0.0] and (norms[:-2] > 0).all()
    assert flow.decay["simple_rnn"] == pytest.approx(norms[0] / norms[-3])


def test_bidirectional_layers_read_at_every_step_are_not_judged():
    model = Sequential(
        [Input((STEPS, FEATURES)), Bidirectional(LSTM(3, return_sequences=True)), LSTM(2)]
    )
    flow = gradient_flow(model, np.ones((2, STEPS, FEATURES)), np.zeros((2, 2)), loss="mse")
    assert list(flow.norms) == ["forward_lstm", "backward_lstm", "lstm_1"]
    health = flow.health()
    assert health["forward_lstm"] == health["backward_lstm"] == "not judged"
    assert health["lstm_1"] in ("healthy", "vanishing", "exploding")


def test_leaves_the_model_as_it_was():
    rnn = SimpleRNN(3, stateful=True)
    model = Sequential([Input((STEPS, FEATURES), batch_size=2), rnn, Dense(1)])
    x = np.ones((2, STEPS, FEATURES), dtype="float32")
    model.predict(x)
    carried = [s.clone() for s in rnn.states]
    gradient_flow(model, x, np.zeros((2, 1)), loss="mse")
    assert all(torch.equal(s, c) for s, c in zip(rnn.states, carried))
    assert all(w.grad is None for w in model.weights)
    assert "use_fused" not in vars(rnn) and "call" not in vars(rnn.cell)
    assert rnn.kernel_path.startswith("fused")


def test_views_of_the_result(tmp_path):
    model = Sequential([Input((STEPS, FEATURES)), LSTM(3), Dense(1)])
    flow = gradient_flow(model, np.ones((2, STEPS, FEATURES)), np.zeros((2, 1)), loss="mse")
    data = json.loads(json.dumps(flow.to_dict()))
    assert set(data) == {"loss", "vanish_below", "explode_above", "layers"}
    assert set(data["layers"][0]) == {
        "name", "kind", "steps", "norms", "decay", "every_step", "health"
    }  # fmt: skip
    figure = flow.plot(tmp_path / "flow.png")
    assert (tmp_path / "flow.png").stat().st_size > 1000 and figure.axes[0].get_yscale() == "log"
    html = flow._repr_html_()
    assert "data:image/png;base64," in html and "http" not in html
    assert "lstm (LSTM, 6 steps)" in str(flow)


def test_errors_say_what_came_and_the_fix():
    model = Sequential([Input((STEPS, FEATURES)), SimpleRNN(3), Dense(1)])
    x, y = np.zeros((4, STEPS, FEATURES)), np.zeros((4, 1))
    with pytest.raises(ValueError, match=r"not compiled.*loss='mse'.*compile"):
        gradient_flow(model, x, y)
    with pytest.raises(ValueError, match=r"y \(the targets\) is missing"):
        gradient_flow(model, x, None, loss="mse")
    with pytest.raises(ValueError, match=r"one target per sequence: x has 4, y has 3"):
        gradient_flow(model, x, y[:3], loss="mse")
    with pytest.raises(ValueError, match=r"no recurrent layer"):
        gradient_flow(Sequential([Input((STEPS, FEATURES)), Dense(1)]), x, y, loss="mse")
    with pytest.raises(ValueError, match=r"\(batch, timesteps, features\); got shape \(4, 6\)"):
        gradient_flow(model, x[..., 0], y, loss="mse")
    with pytest.raises(
        ValueError, match=r"y_true and y_pred must have the same shape"
    ):  # the loss's own message
        gradient_flow(model, x, np.zeros((4, 3)), loss="mse")
    rnn = model.layers[0]
    assert "use_fused" not in vars(rnn) and "call" not in vars(rnn.cell)  # restored anyway


# --------------------------------------------------------------------------- the callback


def _simple_rnn(scale, steps=30):
    """h_t = x_t W + h_{t-1} (scale · I): the gradient going back is scaled by `scale` per
    step, so over 30 steps it decays by scale^29 (seed 002's 0.5^50 and 2^50, shorter)."""
    rnn = SimpleRNN(3, activation=None)
    model = Sequential([Input((steps, 2)), rnn, Dense(1)])
    rnn.set_weights([np.full((2, 3), 0.5), scale * np.eye(3), np.zeros(3)])
    return model


def _fit(model, callback, epochs=3):
    model.compile(optimizer=SGD(learning_rate=0.0), loss="mse")  # the weights stay as built
    x = np.random.default_rng(0).uniform(size=(8, model.input_shape[1], 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, np.zeros((8, 1)), epochs=epochs, verbose=0, callbacks=[callback])
    ours = [w for w in caught if "GradientFlow" in str(w.message)]
    return history, ours


@pytest.mark.parametrize(
    ("scale", "words"),
    [
        (3.0, r"explodes going back through 'simple_rnn'.*= 6\.9e\+13 over 30 steps.*clipnorm"),
        (0.3, r"vanishes going back through 'simple_rnn'.*= 6\.9e-16 over 30 steps.*LSTM or GRU"),
    ],
)
def test_callback_warns_once_when_the_gradient_explodes_or_vanishes(scale, words):
    x = np.random.default_rng(0).uniform(size=(8, 30, 2))
    callback = GradientFlow(x, np.zeros((8, 1)))
    history, caught = _fit(_simple_rnn(scale), callback)
    assert len(caught) == 1 and caught[0].category is RuntimeWarning
    assert caught[0].filename == __file__  # points at the fit call
    assert pytest.approx(scale**29, rel=1e-3) == history.history["gradient_decay/simple_rnn"][0]
    assert len(history.history["gradient_decay/simple_rnn"]) == 3 and len(callback.flows) == 3
    assert re.search(words, str(caught[0].message))


def test_callback_is_quiet_on_a_healthy_lstm_and_measures_every_n_epochs():
    """An LSTM whose forget gates stay open (bias 3) and whose U passes h on."""
    lstm = LSTM(4)
    model = Sequential([Input((30, 2)), lstm, Dense(1)])
    bias = np.zeros(16)
    bias[4:8] = 3.0  # the forget gate's block
    kernel = np.random.default_rng(0).normal(0, 0.5, (2, 16))
    lstm.set_weights([kernel, 1.5 * np.tile(np.eye(4), 4), bias])
    model.layers[-1].set_weights([np.ones((4, 1)), np.zeros(1)])
    x = np.random.default_rng(0).uniform(size=(8, 30, 2))
    callback = GradientFlow(x, np.random.default_rng(1).uniform(size=(8, 1)), every=2)
    history, caught = _fit(model, callback, epochs=4)
    assert caught == []
    decays = history.history["gradient_decay/lstm"]
    assert len(decays) == 2 and sorted(callback.flows) == [1, 3]
    assert 1e-2 < decays[0] < 1e2


def test_callback_thresholds_are_the_explain_module_s():
    callback = GradientFlow(np.zeros((1, 2, 1)), np.zeros((1, 1)))
    assert callback.vanish_below == gradients_module.VANISH_BELOW
    assert callback.explode_above == gradients_module.EXPLODE_ABOVE
    with pytest.raises(ValueError, match=r"every.*integer >= 1; got 0"):
        GradientFlow(None, None, every=0)
    with pytest.raises(ValueError, match=r"vanish_below \(10\) must be below explode_above"):
        GradientFlow(None, None, vanish_below=10, explode_above=5)


@pytest.mark.filterwarnings("ignore:GradientFlow:RuntimeWarning")  # the example's SimpleRNN
def test_docstring_examples_run():
    for name in ("rnnkit.explain.gradients", "rnnkit.callbacks._gradient_flow"):
        assert doctest.testmod(importlib.import_module(name)).failed == 0
