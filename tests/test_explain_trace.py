"""`rnnkit.explain.trace` against the notes, numpy, the layers' fast paths and Keras 3.

The notes' worked examples (seed 003's yesterday/today ReLU RNN, seed 004's 4-unit tanh step)
are checked number by number; on every cell type the traced `h_t` must equal the layer's own
`return_sequences` output on its fast path within 1e-6, and Keras' within 1e-5.
"""

import doctest
import importlib
import json
import math
import re

import keras
import numpy as np
import pytest
import torch
from conftest import copy_weights, to_numpy

import rnnkit
from rnnkit import layers as R
from rnnkit.explain import Trace, trace

K = keras.layers

B, T, D, U = 3, 6, 4, 3
FAST = 1e-6  # the traced h_t against the layer's fused kernels
KERAS = 1e-5  # against Keras' output for the same weights


def random_x(rng, batch=B, steps=T, features=D):
    return rng.normal(size=(batch, steps, features)).astype(np.float32)


def notes_rnn():
    """Seed 003: one ReLU unit, w1 = 1.8 (input), w2 = -0.5 (recurrent), b1 = 0, and the
    output unit w3 = 1.1, b2 = 0 (as rnnkit.demo.unrolled_example builds it)."""
    model = rnnkit.Sequential(
        [R.SimpleRNN(1, activation="relu", input_shape=(2, 1), return_sequences=True), R.Dense(1)]
    )
    model.layers[0].set_weights([np.array([[1.8]]), np.array([[-0.5]]), np.zeros(1)])
    model.layers[1].set_weights([np.array([[1.1]]), np.zeros(1)])
    return model


def arithmetic_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.match(r"\s+\w+_\d+(\[\d\])? = ", line)]


# ------------------------------------------------------------------------- the notes
def test_seed_003_yesterday_and_today_at_zero():
    """The notes: `0 × 1.8 + (0 × -0.5) + 0.0 = 0` and `f(0) = max(0, 0) = 0`."""
    text = str(trace(notes_rnn(), np.array([[[0.0], [0.0]]])))
    lines = arithmetic_lines(text)
    assert lines == [
        "h_1 = max(0, 0 × 1.8 + 0 × (−0.5) + 0.0) = 0",
        "h_2 = max(0, 0 × 1.8 + 0 × (−0.5) + 0.0) = 0",
    ]


def test_seed_003_worked_through_with_numbers():
    yesterday, today = 0.5, 1.0
    model = notes_rnn()
    t = trace(model, np.array([[[yesterday], [today]]]))
    h1 = max(0.0, yesterday * 1.8 + 0 * -0.5 + 0.0)
    h2 = max(0.0, today * 1.8 + h1 * -0.5 + 0.0)
    assert arithmetic_lines(str(t)) == [
        "h_1 = max(0, 0.5 × 1.8 + 0 × (−0.5) + 0.0) = 0.9",
        "h_2 = max(0, 1 × 1.8 + 0.9 × (−0.5) + 0.0) = 1.35",
    ]
    steps = t.layers[0].directions[0].steps
    np.testing.assert_allclose([s.h[0] for s in steps], [h1, h2], atol=1e-6)
    sums = [s.gates[0].sum[0] for s in steps]
    np.testing.assert_allclose(sums, [yesterday * 1.8, today * 1.8 + h1 * -0.5], atol=1e-6)
    # The prediction for tomorrow, y_2 × w3 + b2, from the model on the traced h_2.
    prediction = model.predict(np.array([[[yesterday], [today]]]))[0, 1, 0]
    assert prediction == pytest.approx(h2 * 1.1, abs=1e-5)


def test_seed_004_one_tanh_step_for_four_units(rng):
    """W_x x_t, W_h h_{t-1}, b, their sum and tanh, each as numpy computes it from the weights
    (rnnkit and Keras write them x_t W, h_{t-1} U: the same numbers)."""
    layer = R.SimpleRNN(4)
    layer.build((None, 1, 4))
    kernel, recurrent, bias = (rng.normal(0, 0.5, s).astype(np.float32) for s in [(4, 4)] * 2 + [4])
    layer.set_weights([kernel, recurrent, bias])
    x_t = rng.normal(size=(1, 1, 4)).astype(np.float32)
    h_prev = rng.normal(size=(1, 4)).astype(np.float32)
    step = trace(layer, x_t, initial_state=[h_prev]).layers[0].directions[0].steps[0]
    W, U_, b, x, h = (a.astype(np.float64) for a in (kernel, recurrent, bias, x_t[0, 0], h_prev[0]))
    parts = {p.name: p.value for p in step.gates[0].parts}
    np.testing.assert_allclose(parts["x_t W"], x @ W, atol=1e-12)
    np.testing.assert_allclose(parts["h_{t-1} U"], h @ U_, atol=1e-12)
    np.testing.assert_allclose(parts["b"], b, atol=1e-12)
    np.testing.assert_allclose(step.gates[0].sum, x @ W + h @ U_ + b, atol=1e-12)
    np.testing.assert_allclose(step.h, np.tanh(x @ W + h @ U_ + b), atol=1e-12)
    np.testing.assert_allclose(step.states_in[0], h)


def _evaluate(expression: str) -> float:
    """A printed right-hand side as Python: `σ(0.5 × 1.8 + (−0.2))` -> its value."""
    python = expression.replace("×", "*").replace("−", "-").replace("σ", "sigmoid")
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    return eval(python, {"sigmoid": sigmoid, "tanh": math.tanh, "max": max})


@pytest.mark.parametrize(
    "layer",
    [
        lambda: R.SimpleRNN(2),
        lambda: R.LSTM(2),
        lambda: R.GRU(2),
        lambda: R.GRU(2, reset_after=False),
    ],
    ids=["simple_rnn", "lstm", "gru", "gru_reset_before"],
)
def test_every_arithmetic_line_computes_its_value(rng, layer):
    """Each printed line, evaluated as written, gives the number it ends with: the arithmetic
    shown is the arithmetic done."""
    layer = layer()
    layer.build((None, 3, 2))
    layer.set_weights([rng.normal(0, 0.7, w.shape) for w in layer.get_weights()])
    text = trace(layer, random_x(rng, 1, 3, 2)).to_text(digits=12)
    lines = arithmetic_lines(text)
    assert len(lines) >= 3 * 2
    for line in lines:
        # `g_1 = σ(0.5 × 1.8 + ...) = 0.7`, `c_1 = f × c_0 + i × g = 0.5 × 0 + ... = 0.3`
        *_, expression, value = line.split(" = ")
        assert _evaluate(expression) == pytest.approx(float(value.replace("−", "-")), abs=1e-9)


def test_lstm_and_gru_lines_name_their_gates(rng):
    lstm = R.LSTM(1)
    lstm.build((None, 2, 1))
    text = str(trace(lstm, random_x(rng, 1, 2, 1)))
    for start in ("i_1 = σ(", "f_1 = σ(", "g_1 = tanh(", "o_1 = σ(", "c_1 = f × c_0 + i × g = "):
        assert any(line.startswith(start) for line in arithmetic_lines(text)), start
    assert "h_1 = o × tanh(c_1) = " in text
    gru = R.GRU(1)
    gru.build((None, 2, 1))
    text = str(trace(gru, random_x(rng, 1, 2, 1)))
    assert "h̃_1 = tanh(" in text and "h_1 = z × h_0 + (1 − z) × h̃ = " in text
    assert "r ⊙ (h_{t-1} U + b')" in text  # reset_after=True: r applied to (h U_h + b'_h)


# ------------------------------------------------------------------ fast path and Keras
CELLS = {
    "simple_rnn_tanh": ("SimpleRNN", {}),
    "simple_rnn_relu": ("SimpleRNN", {"activation": "relu"}),
    "lstm": ("LSTM", {}),
    "gru_reset_after": ("GRU", {}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}


def make_pair(kind, **kwargs):
    class_name, extra = CELLS[kind]
    kwargs = {"return_sequences": True, **extra, **kwargs}
    return getattr(K, class_name)(U, **kwargs), getattr(R, class_name)(U, **kwargs)


def assert_fast_path(layer, batch, mask=None):
    fused, why = layer.choose_path(training=False, mask=mask, batch=batch)
    assert fused is not None, why


def assert_traced(t: Trace, ours, theirs, layer=0):
    """Every sample's traced outputs against rnnkit's (fast path) and Keras' outputs."""
    traced = t.layers[layer].outputs
    for got, want, tol in ((traced, to_numpy(ours), FAST), (traced, to_numpy(theirs), KERAS)):
        if isinstance(got, list):
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w[t.sample], rtol=0, atol=tol)
        else:
            np.testing.assert_allclose(got, want[t.sample], rtol=0, atol=tol)


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "go_backwards"])
def test_traced_h_equals_fast_path_and_keras(rng, kind, go_backwards):
    theirs, ours = make_pair(kind, go_backwards=go_backwards)
    x = random_x(rng)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    assert_fast_path(ours, B)
    expected_ours, expected_keras = ours(x), theirs(x)
    for sample in range(B):
        assert_traced(trace(ours, x, sample=sample), expected_ours, expected_keras)


def test_go_backwards_steps_in_reading_order(rng):
    layer = R.LSTM(2, go_backwards=True)
    t = trace(layer, random_x(rng, 1))
    direction = t.layers[0].directions[0]
    assert [s.t for s in direction.steps] == list(range(T - 1, -1, -1))
    assert "go_backwards" in direction.note and "go_backwards" in str(t)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("kind", ["lstm", "gru_reset_after"])
def test_bidirectional_every_merge_mode(rng, merge_mode, kind):
    k_inner, r_inner = make_pair(kind)
    theirs = K.Bidirectional(k_inner, merge_mode=merge_mode)
    ours = R.Bidirectional(r_inner, merge_mode=merge_mode)
    x = random_x(rng)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    t = trace(ours, x, sample=2)
    forward, backward = t.layers[0].directions
    assert (forward.direction, backward.direction) == ("forward", "backward")
    assert [s.t for s in backward.steps] == list(range(T - 1, -1, -1))
    assert_traced(t, ours(x), theirs(x))


def test_stack_of_two_layers_in_a_sequential(rng):
    x = random_x(rng)
    theirs = keras.Sequential(
        [K.Input((T, D)), K.LSTM(U, return_sequences=True), K.GRU(2, return_sequences=True)]
    )
    ours = rnnkit.Sequential(
        [R.Input((T, D)), R.LSTM(U, return_sequences=True), R.GRU(2, return_sequences=True)]
    )
    copy_weights(theirs, ours, rng)
    for layer in ours.layers:
        assert_fast_path(layer, B)
    t = trace(ours, x, sample=1)
    assert [layer.name for layer in t.layers] == ["lstm", "gru"]
    assert_traced(t, ours.layers[0](x), theirs.layers[0](x), layer=0)
    assert_traced(t, ours(x), theirs(x), layer=1)
    # The second layer was traced on the first one's real output.
    np.testing.assert_allclose(
        np.stack([s.x for s in t.layers[1].directions[0].steps]), t.layers[0].outputs, atol=FAST
    )


def test_functional_model_and_layer_choice(rng):
    inputs = R.Input((T, D))
    hidden = R.SimpleRNN(U, return_sequences=True, name="first")(inputs)
    outputs = R.Dense(1)(R.GRU(2, name="second")(hidden))
    model = rnnkit.Model(inputs, outputs)
    x = random_x(rng)
    by_name, by_index, by_object = (
        trace(model, x, layer=pick) for pick in ("second", 1, model.get_layer("second"))
    )
    for t in (by_name, by_index, by_object):
        assert [layer.name for layer in t.layers] == ["second"]
    np.testing.assert_allclose(
        by_name["second"].outputs[-1], to_numpy(model.layers[2](model.layers[1](x)))[0], atol=FAST
    )


@pytest.mark.parametrize("kind", ["simple_rnn_tanh", "lstm", "gru_reset_after"])
def test_masked_steps_from_an_embedding(rng, kind):
    ids = np.array([[3, 1, 0, 0, 4, 0], [2, 7, 1, 8, 2, 5], [0, 0, 6, 5, 0, 3]])
    k_rnn, r_rnn = make_pair(kind)
    theirs = keras.Sequential([K.Input((T,)), K.Embedding(10, D, mask_zero=True), k_rnn])
    ours = rnnkit.Sequential([R.Input((T,)), R.Embedding(10, D, mask_zero=True), r_rnn])
    copy_weights(theirs, ours, rng)
    assert_fast_path(r_rnn, B, mask=torch.from_numpy(ids != 0))
    expected_ours, expected_keras = ours(ids), theirs(ids)
    for sample in range(B):
        t = trace(ours, ids, sample=sample)
        steps = t.layers[0].directions[0].steps
        assert [s.skipped for s in steps] == list(ids[sample] == 0)
        for before, step in zip(steps, steps[1:]):
            if step.skipped:  # the state is carried
                np.testing.assert_array_equal(step.h, before.h)
                assert step.gates == []
        assert_traced(t, expected_ours, expected_keras)
    assert "masked: skipped, state carried" in str(trace(ours, ids, sample=0))


def test_mask_given_to_a_layer(rng):
    layer = R.GRU(U, return_sequences=True)
    x = random_x(rng)
    mask = np.array([[1, 1, 0, 1, 0, 0]] * B, dtype=bool)
    t = trace(layer, x, sample=1, mask=mask)
    assert [s.skipped for s in t.layers[0].directions[0].steps] == list(~mask[1])
    np.testing.assert_allclose(t.layers[0].outputs, to_numpy(layer(x, mask=mask))[1], atol=FAST)


def test_stateful_layer_starts_from_its_carried_state(rng):
    x1, x2 = random_x(rng, 2), random_x(rng, 2)
    theirs = keras.Sequential(
        [K.Input(batch_shape=(2, T, D)), K.GRU(U, stateful=True, return_sequences=True)]
    )
    ours = rnnkit.Sequential(
        [R.Input(batch_shape=(2, T, D)), R.GRU(U, stateful=True, return_sequences=True)]
    )
    copy_weights(theirs, ours, rng)
    theirs(x1)
    ours(x1)
    carried = [to_numpy(s).copy() for s in ours.layers[0].states]
    t = trace(ours, x2, sample=1)
    direction = t.layers[0].directions[0]
    assert direction.start == "carried" and "carried" in direction.note
    np.testing.assert_allclose(direction.steps[0].states_in[0], carried[0][1])
    # Tracing left the carried state as it was: the next call continues from it.
    np.testing.assert_array_equal(to_numpy(ours.layers[0].states[0]), carried[0])
    assert_traced(t, ours(x2), theirs(x2))


def test_initial_state_is_honoured(rng):
    k_lstm, r_lstm = make_pair("lstm")
    x = random_x(rng)
    h0, c0 = rng.normal(size=(B, U)).astype(np.float32), rng.normal(size=(B, U)).astype(np.float32)
    k_lstm(x)
    r_lstm(x)
    copy_weights(k_lstm, r_lstm, rng)
    t = trace(r_lstm, x, sample=2, initial_state=[h0, c0])
    direction = t.layers[0].directions[0]
    assert direction.start == "initial_state"
    np.testing.assert_allclose(direction.steps[0].states_in[1], c0[2])
    assert_traced(t, r_lstm(x, initial_state=[h0, c0]), k_lstm(x, initial_state=[h0, c0]))


class MinimalCell(R.Layer):
    """A custom cell: `h_t = tanh(x_t + h_{t-1})` (no kernel to take apart)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = self.state_size = units

    def call(self, x_t, states):
        h = (x_t + states[0]).tanh()
        return h, [h]


def test_custom_cell_is_traced_by_its_own_call(rng):
    layer = R.RNN(MinimalCell(D), return_sequences=True)
    x = random_x(rng)
    t = trace(layer, x, sample=1)
    direction = t.layers[0].directions[0]
    assert not direction.decomposed and "not taken apart" in direction.note
    assert all(step.gates == [] for step in direction.steps)
    np.testing.assert_allclose(t.layers[0].outputs, to_numpy(layer(x))[1], atol=FAST)
    assert "MinimalCell" in str(t) and t.to_frame().shape[0] == T * D


def test_stacked_cells_are_traced_without_decomposition(rng):
    layer = R.RNN([R.SimpleRNNCell(3), R.LSTMCell(2)], return_sequences=True)
    x = random_x(rng)
    t = trace(layer, x)
    assert t.layers[0].directions[0].state_names == ("state0", "state1", "state2")
    np.testing.assert_allclose(t.layers[0].outputs, to_numpy(layer(x))[0], atol=FAST)


# ----------------------------------------------------------------------------- views
def test_large_layers_are_summarised_and_long_sequences_cut(rng):
    layer = R.GRU(8)
    text = trace(layer, random_x(rng, 1, 30)).to_text(max_steps=6)
    assert "‖·‖" in text and not arithmetic_lines(text)
    assert "step 3 (t=2)" in text and "step 28 (t=27)" in text and "step 4 (t=3)" not in text
    assert "24 steps not shown" in text


def test_show_prints_the_text(rng, capsys):
    t = trace(R.SimpleRNN(2), random_x(rng, 1, 2))
    assert t.show() is None
    assert capsys.readouterr().out.strip() == str(t).strip()


def test_to_frame_columns(rng):
    lstm = rnnkit.Sequential([R.Input((T, D)), R.Bidirectional(R.LSTM(2, return_sequences=True))])
    frame = trace(lstm, random_x(rng)).to_frame()
    assert len(frame) == 2 * T * 2  # directions x steps x units
    for column in (
        "layer",
        "direction",
        "step",
        "t",
        "skipped",
        "unit",
        "xW_i",
        "hU_f",
        "b_g",
        "sum_o",
        "i",
        "f",
        "g",
        "o",
        "h_prev",
        "c_prev",
        "h",
        "c",
        "output",
    ):
        assert column in frame.columns, column
    simple = trace(R.SimpleRNN(2), random_x(rng)).to_frame()
    assert list(simple.columns) == [
        "layer",
        "direction",
        "step",
        "t",
        "skipped",
        "unit",
        "xW",
        "hU",
        "b",
        "sum",
        "h_prev",
        "h",
        "output",
    ]
    gru = trace(R.GRU(2), random_x(rng)).to_frame()
    assert {"b_rec_z", "r*(hU+b_rec)_h_tilde", "h_tilde"} <= set(gru.columns)


def test_to_dict_is_json_ready(rng):
    ids = np.array([[3, 1, 0, 2]])
    model = rnnkit.Sequential([R.Embedding(5, 2, mask_zero=True), R.LSTM(2)])
    data = json.loads(json.dumps(trace(model, ids).to_dict()))
    direction = data["layers"][0]["directions"][0]
    assert data["sample"] == 0 and direction["kind"] == "LSTM"
    assert [s["skipped"] for s in direction["steps"]] == [False, False, True, False]
    gate = direction["steps"][0]["gates"][0]
    assert gate["name"] == "i" and set(gate["parts"]) == {"x_t W", "h_{t-1} U", "b"}
    assert set(direction["steps"][0]["states"]) == {"h", "c"}


def test_html_is_self_contained(rng):
    model = rnnkit.Sequential(
        [R.Input((T, D)), R.Bidirectional(R.GRU(2, return_sequences=True)), R.SimpleRNN(6)]
    )
    html = trace(model, random_x(rng))._repr_html_()
    assert "<table" in html and "σ(" in html and "‖·‖" in html
    for external in ("http", "<script src", "<link"):
        assert external not in html


def test_diagram_writes_png_and_svg(rng, tmp_path):
    ids = np.array([[3, 1, 0, 2, 0]])
    model = rnnkit.Sequential(
        [R.Embedding(5, 2, mask_zero=True), R.Bidirectional(R.SimpleRNN(1, return_sequences=True))]
    )
    t = trace(model, ids)
    figure = t.plot(tmp_path / "trace.png")
    assert (tmp_path / "trace.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    t.plot(tmp_path / "trace.svg")
    assert "<svg" in (tmp_path / "trace.svg").read_text()
    texts = {text.get_text() for ax in figure.axes for text in ax.texts}
    assert any("masked" in text for text in texts)


def test_diagram_of_a_long_sequence_draws_an_ellipsis(rng):
    figure = trace(R.GRU(8), random_x(rng, 1, 40)).plot(max_steps=8)
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert "…" in texts and any("32 steps" in text for text in texts)
    assert any("‖h_40‖" in text for text in texts)


# ---------------------------------------------------------------------------- errors
def test_model_without_recurrent_layer():
    model = rnnkit.Sequential([R.Input((4,)), R.Dense(2, name="only_dense")])
    with pytest.raises(ValueError, match=r"no recurrent layer .*only_dense \(Dense\)"):
        trace(model, np.zeros((1, 4)))


def test_sample_out_of_range(rng):
    with pytest.raises(ValueError, match=r"sample=5 is out of range: x holds 3 .* 0\.\.2"):
        trace(R.SimpleRNN(2), random_x(rng), sample=5)
    with pytest.raises(TypeError, match="position of a sequence"):
        trace(R.SimpleRNN(2), random_x(rng), sample="first")


def test_layer_not_found(rng):
    model = rnnkit.Sequential([R.Input((T, D)), R.SimpleRNN(2, return_sequences=True), R.LSTM(2)])
    with pytest.raises(
        ValueError,
        match=r"no recurrent layer 'nope'.*0: 'simple_rnn' \(SimpleRNN\), "
        r"1: 'lstm' \(LSTM\)",
    ):
        trace(model, random_x(rng), layer="nope")
    with pytest.raises(ValueError, match="no recurrent layer 7"):
        trace(model, random_x(rng), layer=7)


def test_mask_for_a_model_says_where_masks_come_from(rng):
    model = rnnkit.Sequential([R.Input((T, D)), R.SimpleRNN(2)])
    with pytest.raises(ValueError, match=r"Embedding\(mask_zero=True\)"):
        trace(model, random_x(rng), mask=np.ones((B, T), bool))


def test_plot_needs_png_or_svg(rng, tmp_path):
    with pytest.raises(ValueError, match=r"PNG or SVG.*trace\.png"):
        trace(R.SimpleRNN(1), random_x(rng, 1)).plot(tmp_path / "trace.pdf")


def test_max_steps_must_leave_something_to_show(rng):
    t = trace(R.SimpleRNN(1), random_x(rng, 1))
    with pytest.raises(ValueError, match="at least 2, or None for all; got 1"):
        t.to_text(max_steps=1)
    assert "step 6" in t.to_text(max_steps=None)


def test_docstring_examples_run():
    # `rnnkit.explain.trace` is the function; its module is the one in sys.modules.
    for name in ("rnnkit.explain.trace", "rnnkit.explain._trace_text"):
        module = importlib.import_module(name)
        assert doctest.testmod(module).failed == 0


def test_a_wrong_shape_is_named_as_given_not_as_the_traced_row():
    model = rnnkit.Sequential([R.Input((6, 2)), R.LSTM(3)])
    with pytest.raises(ValueError, match=r"got shape \(4, 6\)\. Missing the time axis"):
        trace(model, np.zeros((4, 6), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expects shape \(None, 6, 2\).*got \(4, 6, 3\)"):
        trace(model, np.zeros((4, 6, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"x holds no sequences"):
        trace(R.LSTM(3), np.zeros((0, 6, 2), dtype=np.float32))
