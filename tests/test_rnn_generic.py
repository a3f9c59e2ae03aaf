"""The generic loop `rnnkit.layers.RNN`: custom cells, `StackedRNNCells`, stateful layers.

Oracles: Keras 3 running the same cell logic written as a `keras.layers.Layer`, and a
hand-written numpy recurrence with Keras' mask rules for a weightless cell. Every cell
also gets a float64 gradcheck.
"""

import itertools

import keras
import numpy as np
import pytest
import torch
from conftest import assert_close, copy_weights, to_numpy, weight_shapes

import rnnkit
from rnnkit import layers as R

K = keras.layers

B, T, D, U = 4, 5, 3, 4

MASK = np.array(
    [[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 1, 1, 0]], dtype=bool
)  # right-padded, left-padded, all padding, gaps


def random_x(rng, batch=B, steps=T, features=D):
    return rng.normal(size=(batch, steps, features)).astype(np.float32)


def flat(structure):
    """The tensors of a nested structure, in order: `(out, [h1], [h2, c2])` -> 4 tensors."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flat(item)]
    return [structure]


def nesting(structure):
    """The shapes of a nested structure with its nesting, tuples and lists alike as lists."""
    if isinstance(structure, (list, tuple)) and not all(isinstance(s, int) for s in structure):
        return [nesting(item) for item in structure]
    return tuple(structure if isinstance(structure, tuple) else structure.shape)


# ---------------------------------------------------------------- custom cells
class TwoStateCell(R.Layer):
    """A custom cell in ten lines: `s_t = s_{t-1}/2 + x_t W`, `h_t = tanh(s_t + h_{t-1} U)`."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units, self.state_size = units, [units, units]

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units))
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, self.units))

    def call(self, x_t, states):
        h, s = states
        s = 0.5 * s + x_t @ self.kernel
        h = torch.tanh(s + h @ self.recurrent_kernel)
        return h, [h, s]


class KerasTwoStateCell(K.Layer):
    """The same cell logic written for Keras."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units, self.state_size = units, [units, units]

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="rec")

    def call(self, x_t, states):
        h, s = states
        s = 0.5 * s + keras.ops.matmul(x_t, self.kernel)
        h = keras.ops.tanh(s + keras.ops.matmul(h, self.recurrent_kernel))
        return h, [h, s]


class RunningMean:
    """A weightless cell that is not even a layer: the mean of the steps seen so far."""

    state_size = [D, 1]  # the running sum, the count

    def call(self, x_t, states):
        total, count = states
        total, count = total + x_t, count + 1.0
        return total / count, [total, count]


def running_mean_step(x_t, states):
    total, count = states
    total, count = total + x_t, count + 1.0
    return total / count, [total, count]


def numpy_rnn(step, x, states, mask=None, go_backwards=False):
    """Keras' loop semantics, by hand: a masked step keeps the states and repeats the last
    output (zeros before the first); go_backwards reads and returns the steps reversed."""
    if go_backwards:
        x = x[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    outputs, y = [], None
    for t in range(x.shape[1]):
        y_t, new_states = step(x[:, t], states)
        if mask is not None:
            keep = mask[:, t, None]
            y_t = np.where(keep, y_t, np.zeros_like(y_t) if y is None else y)
            new_states = [np.where(keep, new, old) for new, old in zip(new_states, states)]
        y, states = y_t, new_states
        outputs.append(y)
    return np.stack(outputs, axis=1), y, states


def custom_pair(rng, x, **kwargs):
    theirs = K.RNN(KerasTwoStateCell(U), **kwargs)
    ours = R.RNN(TwoStateCell(U), **kwargs)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    return theirs, ours


LOOP_OPTIONS = list(itertools.product([False, True], repeat=4))
# Keras 3.15 crashes on unroll=True + go_backwards=True + mask (keras/src/backend/torch/rnn.py).
MASKED_LOOP_OPTIONS = [(rs, st, gb, ur) for rs, st, gb, ur in LOOP_OPTIONS if not (gb and ur)]
OPTION_NAMES = "return_sequences,return_state,go_backwards,unroll"


@pytest.mark.parametrize(OPTION_NAMES, LOOP_OPTIONS)
def test_custom_cell_matches_keras(rng, return_sequences, return_state, go_backwards, unroll):
    x = random_x(rng)
    theirs, ours = custom_pair(
        rng,
        x,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        unroll=unroll,
    )
    assert weight_shapes(ours) == weight_shapes(theirs) == [(D, U), (U, U)]
    assert ours.count_params() == theirs.count_params()
    got = ours(x)
    if return_state:
        assert len(got) == 3
    assert_close(got, theirs(x))


@pytest.mark.parametrize(OPTION_NAMES, MASKED_LOOP_OPTIONS)
def test_custom_cell_with_mask_matches_keras(
    rng, return_sequences, return_state, go_backwards, unroll
):
    x = random_x(rng)
    theirs, ours = custom_pair(
        rng,
        x,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        unroll=unroll,
    )
    mask = torch.from_numpy(MASK)
    assert_close(ours(x, mask=mask), theirs(x, mask=mask))


@pytest.mark.parametrize("go_backwards", [False, True])
def test_custom_cell_with_embedding_mask_matches_keras(rng, go_backwards):
    ids = (rng.integers(1, 10, size=(B, T)) * MASK).astype("int32")
    k_emb, r_emb = K.Embedding(10, D, mask_zero=True), R.Embedding(10, D, mask_zero=True)
    k_emb(ids)
    r_emb(ids)
    copy_weights(k_emb, r_emb, rng)
    theirs, ours = custom_pair(
        rng, to_numpy(k_emb(ids)), return_sequences=True, go_backwards=go_backwards
    )
    assert_close(ours(r_emb(ids)), theirs(k_emb(ids)))


@pytest.mark.parametrize("go_backwards", [False, True])
def test_custom_cell_initial_state_matches_keras(rng, go_backwards):
    x = random_x(rng)
    states = [torch.from_numpy(rng.normal(size=(B, U)).astype(np.float32)) for _ in range(2)]
    theirs, ours = custom_pair(
        rng, x, return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    assert_close(ours(x, initial_state=states), theirs(x, initial_state=states))
    mask = torch.from_numpy(MASK)
    want = theirs(x, initial_state=states, mask=mask)
    assert_close(ours(x, initial_state=states, mask=mask), want)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_custom_cell_stateful_matches_keras(rng, go_backwards):
    x1, x2 = random_x(rng), random_x(rng)
    kwargs = dict(stateful=True, return_state=True, go_backwards=go_backwards)
    theirs = K.RNN(KerasTwoStateCell(U), **kwargs)
    ours = R.RNN(TwoStateCell(U), **kwargs)
    theirs(np.zeros_like(x1))
    ours(np.zeros_like(x1))
    copy_weights(theirs, ours, rng)
    theirs.reset_states()
    ours.reset_states()
    assert_close(ours(x1), theirs(x1))
    assert_close(ours(x2), theirs(x2))
    assert_close(ours.states, list(theirs.states))
    theirs.reset_states()
    ours.reset_states()
    assert_close(ours(x2), theirs(x2))


def test_custom_cell_gets_the_training_flag_when_it_asks():
    seen = []

    class Recorder(R.Layer):
        state_size = 1

        def call(self, x_t, states, training=False):
            seen.append(training)
            return states[0], [states[0]]

    layer = R.RNN(Recorder())
    x = np.zeros((2, 3, 1), np.float32)
    layer(x, training=True)
    assert seen == [True] * 3
    seen.clear()
    layer(x)
    assert seen == [False] * 3


def test_custom_cell_in_a_model_trains(rng):
    x = random_x(rng, batch=6)
    y = x[:, :, :1].mean(axis=1)  # a learnable target: the mean of the first feature
    model = rnnkit.Sequential(
        [
            R.Input(shape=(T, D)),
            R.RNN(TwoStateCell(U), return_sequences=True),
            R.RNN(TwoStateCell(U)),
            R.Dense(1),
        ]
    )
    model.compile(optimizer=rnnkit.optimizers.Adam(0.02), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=40, batch_size=6, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.3 * before


# ------------------------------------------------- a weightless non-layer cell
@pytest.mark.parametrize(
    "return_sequences,return_state,go_backwards,masked",
    list(itertools.product([False, True], repeat=4)),
)
def test_plain_class_cell_matches_numpy(rng, return_sequences, return_state, go_backwards, masked):
    x = random_x(rng)
    mask = MASK if masked else None
    layer = R.RNN(
        RunningMean(),
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
    )
    zeros = [np.zeros((B, D), np.float32), np.zeros((B, 1), np.float32)]
    sequence, last, states = numpy_rnn(running_mean_step, x, zeros, mask, go_backwards)
    want = sequence if return_sequences else last
    if return_state:
        want = [want, *states]
    got = layer(x, mask=None if mask is None else torch.from_numpy(mask))
    assert_close(got, want)


def test_plain_class_cell_initial_state_and_stateful_match_numpy(rng):
    x1, x2 = random_x(rng), random_x(rng)
    start = [rng.normal(size=(B, D)).astype(np.float32), np.full((B, 1), 2.0, np.float32)]
    layer = R.RNN(RunningMean(), return_sequences=True, stateful=True)
    _, _, states = numpy_rnn(running_mean_step, x1, start, MASK)
    want, _, end = numpy_rnn(running_mean_step, x2, states, MASK)
    layer(x1, initial_state=[torch.from_numpy(s) for s in start], mask=torch.from_numpy(MASK))
    assert_close(layer(x2, mask=torch.from_numpy(MASK)), want)
    assert_close(layer.states, end)
    layer.reset_states(states=start)
    assert_close(layer(x1), numpy_rnn(running_mean_step, x1, start)[0])


# ------------------------------------------------------------ zero_output_for_mask
@pytest.mark.parametrize("go_backwards", [False, True])
def test_zero_output_for_mask_matches_keras(rng, go_backwards):
    x = random_x(rng)
    kwargs = dict(zero_output_for_mask=True, return_sequences=True, go_backwards=go_backwards)
    theirs, ours = K.RNN(K.LSTMCell(U), **kwargs), R.RNN(R.LSTMCell(U), **kwargs)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    mask = torch.from_numpy(MASK)
    got = ours(x, mask=mask)
    assert_close(got, theirs(x, mask=mask))
    steps = MASK[:, ::-1] if go_backwards else MASK
    np.testing.assert_array_equal(to_numpy(got)[~steps], 0.0)


# ------------------------------------------------------------- StackedRNNCells
def stacked_cells(module):
    return [module.SimpleRNNCell(4), module.LSTMCell(3), module.GRUCell(2, reset_after=False)]


def stacked_pair(rng, x, as_list=False, **kwargs):
    k_cells, r_cells = stacked_cells(K), stacked_cells(R)
    theirs = K.RNN(k_cells if as_list else K.StackedRNNCells(k_cells), **kwargs)
    ours = R.RNN(r_cells if as_list else R.StackedRNNCells(r_cells), **kwargs)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    return theirs, ours


@pytest.mark.parametrize(
    "return_sequences,return_state,go_backwards", list(itertools.product([False, True], repeat=3))
)
def test_stacked_cells_match_keras(rng, return_sequences, return_state, go_backwards):
    x = random_x(rng)
    theirs, ours = stacked_pair(
        rng,
        x,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
    )
    got, want = ours(x), theirs(x)
    if return_state:
        # States nested per cell, [out, h1, [h2, c2], h3], as Keras declares them (its eager
        # call also wraps a one-state cell's h in a list), so `out, s1, s2, s3 = ...` works.
        shape = nesting(theirs.compute_output_shape(x.shape))
        assert nesting(got) == nesting(ours.compute_output_shape(x.shape)) == shape
        assert nesting(got)[1:] == [(B, 4), [(B, 3), (B, 3)], (B, 2)]
        out, h1, (h2, c2), h3 = got
        got, want = flat(got), flat(want)
    assert_close(got, want)


def test_stacked_cells_nested_states_in_a_functional_model_match_keras(rng):
    x = random_x(rng)
    theirs, ours = stacked_pair(rng, x, return_sequences=True, return_state=True)
    k_in, r_in = K.Input(x.shape[1:]), R.Input(x.shape[1:])
    k_out, r_out = theirs(k_in), ours(r_in)
    assert nesting(r_out) == nesting(k_out)
    out, h1, (h2, c2), h3 = r_out
    model = rnnkit.Model(r_in, [out, h1, h2, c2, h3])
    assert_close(model(x), flat(theirs(x)))


def test_stacked_cells_weights_match_keras(rng):
    x = random_x(rng)
    theirs, ours = stacked_pair(rng, x)
    assert weight_shapes(ours) == weight_shapes(theirs)
    assert ours.count_params() == theirs.count_params()
    assert ours.cell.state_size == [4, [3, 3], 2] == theirs.cell.state_size
    assert ours.state_sizes == [4, 3, 3, 2]
    assert ours.cell.output_size == theirs.cell.output_size == 2


@pytest.mark.parametrize("go_backwards", [False, True])
def test_stacked_cells_with_mask_and_initial_state_match_keras(rng, go_backwards):
    x = random_x(rng)
    mask = torch.from_numpy(MASK)
    theirs, ours = stacked_pair(
        rng, x, return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    assert_close(flat(ours(x, mask=mask)), flat(theirs(x, mask=mask)))
    states = [torch.from_numpy(rng.normal(size=(B, n)).astype(np.float32)) for n in (4, 3, 3, 2)]
    nested = [[states[0]], [states[1], states[2]], [states[3]]]  # Keras nests them per cell
    want = flat(theirs(x, initial_state=nested, mask=mask))
    assert_close(flat(ours(x, initial_state=nested, mask=mask)), want)
    assert_close(flat(ours(x, initial_state=states, mask=mask)), want)  # flat works too


def test_list_of_cells_stacks_them_like_keras(rng):
    x = random_x(rng)
    theirs, ours = stacked_pair(rng, x, as_list=True, return_sequences=True)
    assert isinstance(ours.cell, R.StackedRNNCells)
    assert_close(ours(x), theirs(x))


def test_stacked_cells_stateful_matches_keras(rng):
    """(Keras 3.15 cannot carry a stack's nested states: `stateful=True` fails in `assign`.
    Its oracle is a stateless stack given the first call's states as `initial_state`.)"""
    x1, x2 = random_x(rng), random_x(rng)
    theirs, ours = stacked_pair(rng, x1, return_sequences=True, return_state=True)
    stateful = R.RNN(R.StackedRNNCells(stacked_cells(R)), stateful=True, return_sequences=True)
    stateful(x1)
    stateful.set_weights(ours.get_weights())
    stateful.reset_states()
    first = theirs(x1)
    assert_close(stateful(x1), first[0])
    assert_close(stateful.states, flat(first[1:]))
    second = theirs(x2, initial_state=list(first[1:]))
    assert_close(stateful(x2), second[0])
    assert_close(stateful.states, flat(second[1:]))


def test_stacked_cells_dropout_is_off_at_inference(rng):
    x = random_x(rng)
    kwargs = dict(dropout=0.5, recurrent_dropout=0.3)
    k_cells = [K.LSTMCell(3, **kwargs), K.GRUCell(2, **kwargs)]
    r_cells = [R.LSTMCell(3, **kwargs), R.GRUCell(2, **kwargs)]
    theirs, ours = K.RNN(k_cells, return_sequences=True), R.RNN(r_cells, return_sequences=True)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    assert_close(ours(x), theirs(x, training=False))
    assert not np.allclose(to_numpy(ours(x, training=True)), to_numpy(ours(x)), atol=1e-3)


def test_stacked_cells_config_round_trips(rng):
    x = random_x(rng)
    theirs, ours = stacked_pair(rng, x, return_sequences=True)
    config = ours.get_config()
    assert [c["class_name"] for c in config["cell"]["config"]["cells"]] == [
        "SimpleRNNCell",
        "LSTMCell",
        "GRUCell",
    ]
    rebuilt = R.deserialize(R.serialize(ours))
    assert rebuilt.get_config() == config
    rebuilt(x)
    rebuilt.set_weights(ours.get_weights())
    assert_close(rebuilt(x), theirs(x))
    cells = R.StackedRNNCells.from_config(ours.cell.get_config())
    assert cells.state_size == [4, [3, 3], 2]


def test_rnn_config_round_trips_every_option():
    kwargs = dict(
        return_sequences=True,
        return_state=True,
        go_backwards=True,
        unroll=True,
        zero_output_for_mask=True,
    )
    theirs = K.RNN(K.GRUCell(U), **kwargs)
    ours = R.RNN(R.GRUCell(U), **kwargs)
    want, config = theirs.get_config(), ours.get_config()
    for key in ("name",) + tuple(kwargs):
        assert config[key] == want[key], key
    assert config["cell"]["class_name"] == want["cell"]["class_name"] == "GRUCell"
    rebuilt = R.RNN.from_config(config)
    assert rebuilt.get_config() == config


def test_custom_cell_config_round_trips_with_custom_objects(rng):
    class SavableCell(TwoStateCell):
        def get_config(self):
            return {**super().get_config(), "units": self.units}

    x = random_x(rng)
    theirs = K.RNN(KerasTwoStateCell(U), return_sequences=True)
    layer = R.RNN(SavableCell(U), return_sequences=True)
    theirs(x)
    layer(x)
    copy_weights(theirs, layer, rng)
    rebuilt = R.deserialize(R.serialize(layer), custom_objects={"SavableCell": SavableCell})
    rebuilt(x)
    rebuilt.set_weights(layer.get_weights())
    assert rebuilt.get_config() == layer.get_config()
    assert_close(rebuilt(x), theirs(x))


def test_cell_without_state_size_is_an_error():
    class NoState:
        def call(self, x_t, states):
            return x_t, states

    with pytest.raises(TypeError, match=r"state_size attribute and a call\(x_t, states\)"):
        R.RNN(NoState())


def test_stacked_cells_need_cells():
    with pytest.raises(ValueError, match="non-empty list of cells"):
        R.StackedRNNCells([])


# ---------------------------------------------------------------- gradchecks
def randomize(module, rng):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.5, size=p.shape)))


@pytest.mark.parametrize("use_bias", [True, False])
def test_simple_rnn_cell_gradcheck_float64(rng, use_bias):
    cell = R.SimpleRNNCell(3, dtype="float64", use_bias=use_bias)
    cell.build((2, 2))
    randomize(cell, rng)
    x_t = torch.from_numpy(rng.normal(size=(2, 2))).requires_grad_()
    h = torch.from_numpy(rng.normal(size=(2, 3))).requires_grad_()
    params = list(cell.parameters())

    def step(x_t, h, *weights):
        return cell.call(x_t, [h])[0]

    assert torch.autograd.gradcheck(step, (x_t, h, *params), eps=1e-6, atol=1e-6)


def test_stacked_cells_gradcheck_float64(rng):
    cells = R.StackedRNNCells(
        [
            R.SimpleRNNCell(3, dtype="float64"),
            R.LSTMCell(2, dtype="float64"),
            R.GRUCell(2, dtype="float64"),
        ],
        dtype="float64",
    )
    cells.build((2, 2))
    randomize(cells, rng)
    x_t = torch.from_numpy(rng.normal(size=(2, 2))).requires_grad_()
    states = [torch.from_numpy(rng.normal(size=(2, n))).requires_grad_() for n in (3, 2, 2, 2)]
    params = list(cells.parameters())

    def step(x_t, *tensors):
        y, new_states = cells.call(x_t, list(tensors[:4]))
        return (y, *new_states)

    assert torch.autograd.gradcheck(step, (x_t, *states, *params), eps=1e-6, atol=1e-6)


def test_custom_cell_gradcheck_float64(rng):
    cell = TwoStateCell(3, dtype="float64")
    cell.build((2, 2))
    randomize(cell, rng)
    x_t = torch.from_numpy(rng.normal(size=(2, 2))).requires_grad_()
    states = [torch.from_numpy(rng.normal(size=(2, 3))).requires_grad_() for _ in range(2)]

    def step(x_t, h, s, *weights):
        y, (h, s) = cell.call(x_t, [h, s])
        return y, h, s

    assert torch.autograd.gradcheck(step, (x_t, *states, *cell.parameters()), eps=1e-6)


LAYERS = {
    "simple_rnn": lambda **kw: R.SimpleRNN(3, **kw),
    "lstm": lambda **kw: R.LSTM(3, **kw),
    "gru": lambda **kw: R.GRU(3, **kw),
    "gru_reset_before": lambda **kw: R.GRU(3, reset_after=False, **kw),
    "custom": lambda **kw: R.RNN(TwoStateCell(3, dtype=kw["dtype"]), **kw),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("masked,go_backwards", [(False, False), (True, False), (True, True)])
def test_layer_gradcheck_float64(rng, name, masked, go_backwards):
    """The whole loop (whichever path it takes) differentiates like finite differences."""
    layer = LAYERS[name](
        dtype="float64", return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    x = torch.from_numpy(rng.normal(size=(2, 4, 2))).requires_grad_()
    layer(x)
    randomize(layer, rng)
    mask = torch.tensor([[True, True, False, False], [False, True, True, True]]) if masked else None
    params = list(layer.parameters())

    def run(x, *weights):
        return tuple(layer(x, mask=mask))

    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6)


# ------------------------------------------------------------------- stateful
STATEFUL = {
    "simple_rnn": (lambda m, **kw: m.SimpleRNN(U, **kw), 1),
    "lstm": (lambda m, **kw: m.LSTM(U, **kw), 2),
    "gru": (lambda m, **kw: m.GRU(U, **kw), 1),
    "gru_reset_before": (lambda m, **kw: m.GRU(U, reset_after=False, **kw), 1),
    "custom": (
        lambda m, **kw: m.RNN(TwoStateCell(U) if m is R else KerasTwoStateCell(U), **kw),
        2,
    ),
    "bidirectional_lstm": (lambda m, **kw: m.Bidirectional(m.LSTM(U, **kw)), 4),
}


def stateful_pair(rng, name, x):
    """A stateful rnnkit layer and a stateless Keras twin with the same weights."""
    make = STATEFUL[name][0]
    theirs = make(K, return_sequences=True)
    ours = make(R, return_sequences=True, stateful=True)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    ours.reset_states()
    return theirs, ours


def random_states(rng, name, batch=B):
    return [
        torch.from_numpy(rng.normal(size=(batch, U)).astype(np.float32))
        for _ in range(STATEFUL[name][1])
    ]


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_reset_states_with_values_starts_there(rng, name):
    """`reset_states(states=[...])`; the oracle is Keras given them as `initial_state`."""
    x = random_x(rng)
    theirs, ours = stateful_pair(rng, name, x)
    states = random_states(rng, name)
    ours.reset_states(states=states)
    assert_close(ours.states, states)
    assert_close(ours(x), theirs(x, initial_state=states))
    ours.reset_states(states)
    assert_close(ours(x), theirs(x, initial_state=states))


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_reset_states_none_goes_back_to_zeros(rng, name):
    x1, x2 = random_x(rng), random_x(rng)
    theirs, ours = stateful_pair(rng, name, x1)
    ours(x1)
    carried = to_numpy(ours(x2))
    assert not np.allclose(carried, to_numpy(theirs(x2)), atol=1e-3)
    ours.reset_states(states=None)
    assert ours.states is None
    assert_close(ours(x2), theirs(x2))


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_stateful_batch_size_change_is_an_error(rng, name):
    x = random_x(rng)
    _, ours = stateful_pair(rng, name, x)
    ours(x)
    with pytest.raises(ValueError, match=r"is stateful and carries states for a batch of 4.*3"):
        ours(random_x(rng, batch=3))
    ours.reset_states()
    assert ours(random_x(rng, batch=3)).shape[0] == 3


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_reset_states_with_wrong_values_is_an_error(rng, name):
    x = random_x(rng)
    _, ours = stateful_pair(rng, name, x)
    ours(x)
    count = STATEFUL[name][1]
    with pytest.raises(
        ValueError, match=rf"(has {count} state\(s\)|takes {count} states).*{count + 1}"
    ):
        ours.reset_states(random_states(rng, name) + [np.zeros((B, U), np.float32)])
    with pytest.raises(ValueError, match=r"must have shape \(batch=4, units=4\); got \(3, 4\)"):
        ours.reset_states(random_states(rng, name, batch=3))


def test_reset_states_on_stateless_layer_is_an_error():
    with pytest.raises(ValueError, match=r"LSTM 'lstm' is not stateful.*stateful=True"):
        R.LSTM(U).reset_states()


def stateful_model(lib, make_custom):
    L = lib.layers
    inputs = L.Input(batch_shape=(B, T, D))
    h = L.LSTM(U, stateful=True, return_sequences=True)(inputs)
    h = L.Bidirectional(L.GRU(3, stateful=True, return_sequences=True))(h)
    h = L.RNN(make_custom(U), stateful=True)(h)
    return lib.Model(inputs, L.Dense(2)(h))


def test_model_reset_states_resets_every_stateful_layer(rng):
    """Keras 3 has no `model.reset_states()`; its oracle is resetting each layer."""
    keras.utils.clear_session(free_memory=False)
    theirs = stateful_model(keras, KerasTwoStateCell)
    ours = stateful_model(rnnkit, TwoStateCell)
    copy_weights(theirs, ours, rng)
    x1, x2 = random_x(rng), random_x(rng)
    first = to_numpy(ours(x1))
    assert_close(first, theirs(x1))
    assert_close(ours(x2), theirs(x2))
    ours.reset_states()
    for layer in theirs.layers:
        if getattr(layer, "stateful", False):
            layer.reset_states()
    again = to_numpy(ours(x1))
    assert_close(again, first)
    assert_close(again, theirs(x1))
    assert_close(ours(x2), theirs(x2))
    ours.reset_states()
    assert all(layer.states is None for layer in ours.layers if getattr(layer, "stateful", False))


def test_model_reset_states_reaches_nested_models(rng):
    def make(lib):
        L = lib.layers
        inner = lib.Sequential([L.Input(batch_shape=(B, T, D)), L.GRU(U, stateful=True)])
        return lib.Sequential([L.Input(batch_shape=(B, T, D)), inner, L.Dense(1)])

    keras.utils.clear_session(free_memory=False)
    theirs = make(keras)
    ours = make(rnnkit)
    copy_weights(theirs, ours, rng)
    x1, x2 = random_x(rng), random_x(rng)
    assert_close(ours(x1), theirs(x1))
    assert_close(ours(x2), theirs(x2))
    ours.reset_states()
    theirs.layers[0].layers[0].reset_states()
    assert_close(ours(x2), theirs(x2))
