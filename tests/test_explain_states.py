"""`rnnkit.explain.states`: the hidden states equal each layer's own `return_sequences` output
(its fast path), and the gates' saturation equals a numpy computation from the weights."""

import doctest
import importlib
import json

import numpy as np
import pytest
import torch

from rnnkit import Input, Model, Sequential
from rnnkit.explain.states import states
from rnnkit.layers import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    Dense,
    LSTMCell,
    Masking,
    SimpleRNN,
    SimpleRNNCell,
    StackedRNNCells,
)

STEPS, FEATURES = 7, 3


def _twin(layer, **kwargs):
    """A copy of `layer` that returns every step (its own fast path), with the same weights."""
    config = {**layer.get_config(), "return_sequences": True, "name": None, **kwargs}
    twin = type(layer).from_config(config)
    twin.build((None, STEPS, FEATURES))
    twin.set_weights(layer.get_weights())
    return twin


@pytest.mark.parametrize(
    "layer",
    [
        lambda: SimpleRNN(4),
        lambda: LSTM(4),
        lambda: GRU(4),
        lambda: GRU(4, reset_after=False),
        lambda: LSTM(4, go_backwards=True),
    ],
    ids=["simple_rnn", "lstm", "gru", "gru-reset_before", "lstm-go_backwards"],
)
def test_states_equal_the_layer_s_own_return_sequences_output(layer):
    torch.manual_seed(0)
    layer = layer()
    model = Sequential([Input((STEPS, FEATURES)), layer, Dense(1)])
    x = np.random.default_rng(0).normal(size=(5, STEPS, FEATURES)).astype("float32")
    twin = _twin(layer)
    assert not twin.kernel_path.startswith("reference")  # compared with a fast path
    with torch.no_grad():
        expected = twin(x)[2].numpy()  # (T, units), in reading order as states are
    got = states(model, x, sample=2)[layer.name]
    np.testing.assert_allclose(got.states, expected, atol=1e-6)
    assert got.real.all() and got.go_backwards == layer.go_backwards


def test_masked_steps_hold_the_state():
    torch.manual_seed(1)
    lstm = LSTM(3)
    model = Sequential([Input((STEPS, FEATURES)), Masking(), lstm])
    x = np.random.default_rng(1).uniform(0.5, 1.5, size=(3, STEPS, FEATURES)).astype("float32")
    x[0, :2] = 0.0  # padding before
    x[0, 4] = 0.0  # and one hole
    with torch.no_grad():
        expected = _twin(lstm)(x, mask=(x != 0).any(-1))[0].numpy()
    got = states(model, x)["lstm"]
    np.testing.assert_allclose(got.states, expected, atol=1e-6)
    assert got.real.tolist() == [False, False, True, True, False, True, True]
    np.testing.assert_array_equal(got.states[4], got.states[3])  # held over the hole


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _numpy_gates(kind, x, weights):
    """Every step's sigmoid gates `(B*T, units)`, running the cell's equations in numpy."""
    W, U, b = weights
    units = U.shape[0]
    h = c = np.zeros((x.shape[0], units))
    gates = {name: [] for name in ("ifo" if kind == "lstm" else "zr")}
    for t in range(x.shape[1]):
        if kind == "lstm":
            i, f, g, o = np.split(x[:, t] @ W + h @ U + b, 4, axis=1)
            values = {"i": _sigmoid(i), "f": _sigmoid(f), "o": _sigmoid(o)}
            c = values["f"] * c + values["i"] * np.tanh(g)
            h = values["o"] * np.tanh(c)
        else:  # GRU, reset_after: biases (input, recurrent)
            xz, xr, xh = np.split(x[:, t] @ W + b[0], 3, axis=1)
            hz, hr, hh = np.split(h @ U + b[1], 3, axis=1)
            values = {"z": _sigmoid(xz + hz), "r": _sigmoid(xr + hr)}
            h = values["z"] * h + (1 - values["z"]) * np.tanh(xh + values["r"] * hh)
        for name in gates:
            gates[name].append(values[name])
    return {name: np.concatenate(v) for name, v in gates.items()}


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_saturation_equals_numpy_from_the_weights(kind):
    torch.manual_seed(2)
    inputs = Input((STEPS, FEATURES), dtype="float64")
    layer = (LSTM if kind == "lstm" else GRU)(5, dtype="float64")
    model = Model(inputs, layer(inputs))
    # large weights, so that many gate values sit near 0 or 1
    layer.set_weights([3 * w for w in layer.get_weights()])
    layer.cell.bias.data.normal_(0, 2, generator=torch.Generator().manual_seed(0))
    x = np.random.default_rng(2).normal(size=(6, STEPS, FEATURES))
    got = states(model, x)[layer.name].saturation
    gates = _numpy_gates(kind, x, layer.get_weights())
    assert list(got) == list(gates)
    for name, values in gates.items():
        np.testing.assert_array_equal(got[name]["low"], (values < 0.1).mean(0))
        np.testing.assert_array_equal(got[name]["high"], (values > 0.9).mean(0))
    assert any(got[name]["high"].any() or got[name]["low"].any() for name in gates)


def test_stacked_cells_and_bidirectional_directions_are_each_shown():
    stacked = RNN(StackedRNNCells([SimpleRNNCell(3), LSTMCell(2)]), name="stack")
    model = Sequential(
        [Input((STEPS, FEATURES)), Bidirectional(SimpleRNN(2, return_sequences=True)), stacked]
    )
    result = states(model, np.ones((2, STEPS, FEATURES)), sample=-1)
    names = [layer.name for layer in result.layers]
    assert names[:2] == ["forward_simple_rnn", "backward_simple_rnn"]
    assert names[2:] == ["stack/simple_rnn_cell", "stack/lstm_cell"]
    assert result["stack/lstm_cell"].states.shape == (STEPS, 2) and result.sample == 1
    assert list(result["stack/lstm_cell"].saturation) == ["i", "f", "o"]
    assert result["forward_simple_rnn"].saturation == {}


def test_views_of_the_result(tmp_path):
    model = Sequential([Input((STEPS, FEATURES)), GRU(4), Dense(1)])
    result = states(model, np.random.default_rng(3).normal(size=(3, STEPS, FEATURES)))
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"sample", "sequences", "low", "high", "layers"}
    layer = data["layers"][0]
    assert len(layer["states"]) == STEPS and len(layer["states"][0]) == 4
    assert set(layer["saturation"]) == {"z", "r"} and len(layer["saturation"]["z"]["low"]) == 4
    for name in ("states.png", "states.svg"):
        result.plot(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000
    html = result._repr_html_()
    assert "data:image/png;base64," in html and "http" not in html
    assert "gru (GRU, 4 units, 7 steps)" in str(result)
    with pytest.raises(KeyError, match="no recurrent layer 'lstm'; there are 'gru'"):
        result["lstm"]


def test_errors_say_what_came_and_the_fix():
    model = Sequential([Input((STEPS, FEATURES)), SimpleRNN(3)])
    x = np.zeros((2, STEPS, FEATURES))
    with pytest.raises(ValueError, match=r"sample=2 is out of range.*2 sequence\(s\).*0\.\.1"):
        states(model, x, sample=2)
    with pytest.raises(TypeError, match=r"sample is the position.*'first'"):
        states(model, x, sample="first")
    with pytest.raises(ValueError, match=r"x\[None\]"):
        states(model, x[0])
    with pytest.raises(ValueError, match=r"no recurrent layer"):
        states(Sequential([Input((STEPS, FEATURES)), Dense(1)]), x)


def test_docstring_example_runs():
    # `rnnkit.explain.states` is the function; its module is the one in sys.modules.
    assert doctest.testmod(importlib.import_module("rnnkit.explain.states")).failed == 0
