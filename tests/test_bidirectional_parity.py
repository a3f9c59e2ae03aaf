"""`rnnkit.layers.Bidirectional` against `keras.layers.Bidirectional` (Keras 3, torch backend).

Each test wraps the same recurrent layer in both libraries, gives the Keras pair random
weights, copies them over and compares merged outputs and returned states within 1e-5.
"""

import itertools

import keras
import numpy as np
import pytest
import torch
from conftest import (
    assert_close,
    capture_summary,
    copy_weights,
    parse_summary,
    to_numpy,
    weight_shapes,
)

import rnnkit
from rnnkit import layers as R

K = keras.layers

B, T, D, U = 4, 5, 3, 3

# name -> (layer class name, extra constructor arguments, number of states)
INNER = {
    "simple_rnn": ("SimpleRNN", {}, 1),
    "lstm": ("LSTM", {}, 2),
    "gru": ("GRU", {}, 1),
    "gru_reset_before": ("GRU", {"reset_after": False}, 1),
}
INNER_IDS = sorted(INNER)
MERGE_MODES = ["concat", "sum", "mul", "ave", None]
MERGE_IDS = ["concat", "sum", "mul", "ave", "None"]

MASKED_IDS = {
    "right": [[3, 1, 4, 0, 0], [2, 7, 1, 8, 2], [5, 0, 0, 0, 0], [9, 2, 6, 5, 3]],
    "left": [[0, 0, 3, 1, 4], [2, 7, 1, 8, 2], [0, 0, 0, 0, 5], [9, 2, 6, 5, 3]],
    "all_padding_row": [[3, 1, 4, 1, 5], [0, 0, 0, 0, 0], [2, 7, 0, 0, 0], [0, 0, 0, 0, 0]],
    "gap": [[3, 0, 4, 0, 5], [2, 7, 0, 8, 2], [0, 5, 0, 6, 0], [9, 2, 6, 5, 0]],
}


def random_x(rng, batch=B, steps=T, features=D):
    return rng.normal(size=(batch, steps, features)).astype(np.float32)


def inner(module, kind, **kwargs):
    class_name, extra, _ = INNER[kind]
    return getattr(module, class_name)(U, **extra, **kwargs)


def make_pair(kind, merge_mode="concat", **kwargs):
    theirs = K.Bidirectional(inner(K, kind, **kwargs), merge_mode=merge_mode)
    ours = R.Bidirectional(inner(R, kind, **kwargs), merge_mode=merge_mode)
    return theirs, ours


def built_pair(rng, kind, x, merge_mode="concat", **kwargs):
    theirs, ours = make_pair(kind, merge_mode, **kwargs)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    return theirs, ours


def random_states(rng, kind, directions=2):
    count = INNER[kind][2] * directions
    return [torch.from_numpy(rng.normal(size=(B, U)).astype(np.float32)) for _ in range(count)]


# --------------------------------------------------------------------- the grid
# concat and None (a tensor or a pair) for every inner kind, with and without return_state;
# the arithmetic modes for two kinds.
GRID = [
    (kind, mode, state)
    for kind in INNER_IDS
    for mode, state in [("concat", True), ("concat", False), (None, True), (None, False)]
] + [(kind, mode, True) for kind in ("lstm", "gru_reset_before") for mode in ("sum", "mul", "ave")]


@pytest.mark.parametrize("kind,merge_mode,return_state", GRID, ids=str)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_outputs_match_keras(rng, kind, merge_mode, return_sequences, return_state):
    x = random_x(rng)
    theirs, ours = built_pair(
        rng, kind, x, merge_mode, return_sequences=return_sequences, return_state=return_state
    )
    want, got = theirs(x), ours(x)
    outputs = 2 if merge_mode is None else 1
    if return_state or merge_mode is None:
        assert len(got) == len(want) == outputs + (2 * INNER[kind][2] if return_state else 0)
    width = 2 * U if merge_mode == "concat" else U
    first = got[0] if (return_state or merge_mode is None) else got
    assert tuple(first.shape) == ((B, T, width) if return_sequences else (B, width))
    assert_close(got, want)


@pytest.mark.parametrize("kind", INNER_IDS)
@pytest.mark.parametrize("merge_mode", MERGE_MODES, ids=MERGE_IDS)
def test_compute_output_shape_matches_keras(kind, merge_mode):
    for return_sequences, return_state in itertools.product([False, True], repeat=2):
        theirs, ours = make_pair(
            kind, merge_mode, return_sequences=return_sequences, return_state=return_state
        )
        want = theirs.compute_output_shape((B, T, D))
        got = ours.compute_output_shape((B, T, D))

        def as_lists(shapes):
            if isinstance(shapes, tuple) and all(isinstance(s, (int, type(None))) for s in shapes):
                return list(shapes)
            return [as_lists(s) for s in shapes]

        assert as_lists(got) == as_lists(want)


@pytest.mark.parametrize("kind", INNER_IDS)
def test_param_count_and_weight_layout_match_keras(rng, kind):
    x = random_x(rng)
    theirs, ours = built_pair(rng, kind, x)
    assert ours.count_params() == theirs.count_params()
    assert weight_shapes(ours) == weight_shapes(theirs)
    assert len(weight_shapes(ours)) == 6  # forward's kernel, recurrent, bias; then backward's
    assert weight_shapes(ours.forward_layer) == weight_shapes(theirs.forward_layer)
    assert weight_shapes(ours.backward_layer) == weight_shapes(theirs.backward_layer)
    for a, b in zip(ours.backward_layer.get_weights(), theirs.backward_layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert ours.forward_layer.name == theirs.forward_layer.name
    assert ours.backward_layer.name == theirs.backward_layer.name
    assert ours.backward_layer.go_backwards and not ours.forward_layer.go_backwards


def test_the_wrapped_layer_is_copied_not_used(rng):
    layer = R.LSTM(U)
    wrapper = R.Bidirectional(layer)
    wrapper(random_x(rng))
    assert wrapper.forward_layer is not layer
    assert not layer.built


# ----------------------------------------------------------------------- masks
def embedding_pair(rng, vocab=10, dim=D):
    theirs = K.Embedding(vocab, dim, mask_zero=True)
    ours = R.Embedding(vocab, dim, mask_zero=True)
    ids = np.zeros((1, 2), dtype="int32")
    theirs(ids)
    ours(ids)
    copy_weights(theirs, ours, rng)
    return theirs, ours


@pytest.mark.parametrize("kind", INNER_IDS)
@pytest.mark.parametrize("padding", sorted(MASKED_IDS))
@pytest.mark.parametrize("return_sequences", [False, True])
def test_embedding_mask_zero_matches_keras(rng, kind, padding, return_sequences):
    ids = np.array(MASKED_IDS[padding], dtype="int32")
    k_emb, r_emb = embedding_pair(rng)
    theirs, ours = make_pair(kind, return_sequences=return_sequences, return_state=True)
    theirs(k_emb(ids))
    ours(r_emb(ids))
    copy_weights(theirs, ours, rng)
    assert_close(ours(r_emb(ids)), theirs(k_emb(ids)))


@pytest.mark.parametrize("merge_mode", MERGE_MODES, ids=MERGE_IDS)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_every_merge_mode_with_mask_matches_keras(rng, merge_mode, kind):
    x = random_x(rng)
    mask = torch.from_numpy(np.array(MASKED_IDS["left"]) != 0)
    theirs, ours = built_pair(rng, kind, x, merge_mode, return_sequences=True)
    assert_close(ours(x, mask=mask), theirs(x, mask=mask))


@pytest.mark.parametrize("kind", INNER_IDS)
def test_masking_layer_matches_keras(rng, kind):
    x = random_x(rng)
    x[0, 3:] = 0.0  # right padding
    x[1, :2] = 0.0  # left padding
    x[2, :] = 0.0  # a fully padded row
    k_masking, r_masking = K.Masking(), R.Masking()
    theirs, ours = make_pair(kind, return_sequences=True)
    theirs(k_masking(x))
    ours(r_masking(x))
    copy_weights(theirs, ours, rng)
    assert_close(ours(r_masking(x)), theirs(k_masking(x)))


def test_output_mask_passes_to_the_next_layer_like_keras(rng):
    def make(lib):
        L = lib.layers
        return lib.Sequential(
            [
                L.Input(shape=(T,), dtype="int32"),
                L.Embedding(10, D, mask_zero=True),
                L.Bidirectional(L.LSTM(U, return_sequences=True), merge_mode="sum"),
                L.Bidirectional(L.GRU(U)),
                L.Dense(2),
            ]
        )

    keras.utils.clear_session(free_memory=False)
    theirs = make(keras)
    rnnkit.utils.clear_session()
    ours = make(rnnkit)
    copy_weights(theirs, ours, rng)
    ids = np.array(MASKED_IDS["left"], dtype="int32")
    assert_close(ours.predict(ids), theirs.predict(ids, verbose=0))
    assert parse_summary(capture_summary(ours)) == parse_summary(capture_summary(theirs))


# --------------------------------------------------------------- initial state
@pytest.mark.parametrize("kind", INNER_IDS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_initial_state_matches_keras(rng, kind, return_sequences):
    """Forward's states first, then backward's: `[h_f, c_f, h_b, c_b]` for an LSTM."""
    x = random_x(rng)
    states = random_states(rng, kind)
    theirs, ours = built_pair(rng, kind, x, return_sequences=return_sequences, return_state=True)
    got = ours(x, initial_state=states)
    assert_close(got, theirs(x, initial_state=states))
    assert not np.allclose(to_numpy(got[0]), to_numpy(ours(x)[0]), atol=1e-3)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm"])
def test_initial_state_with_explicit_mask_matches_keras(rng, kind):
    x = random_x(rng)
    mask = torch.from_numpy(np.array(MASKED_IDS["right"]) != 0)
    states = random_states(rng, kind)
    theirs, ours = built_pair(rng, kind, x, return_sequences=True, return_state=True)
    want = theirs(x, initial_state=states, mask=mask)
    assert_close(ours(x, initial_state=states, mask=mask), want)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_lstm_initial_state_count_is_checked(count):
    layer = R.Bidirectional(R.LSTM(U))
    states = [np.zeros((B, U), np.float32)] * count
    with pytest.raises(
        ValueError, match=rf"Bidirectional.*takes 4 initial states.*h_fwd.*got {count}"
    ):
        layer(np.zeros((B, T, D), np.float32), initial_state=states)


def test_simple_rnn_initial_state_count_is_checked():
    layer = R.Bidirectional(R.SimpleRNN(U))
    with pytest.raises(ValueError, match=r"Bidirectional.*takes 2 initial states.*got 1"):
        layer(np.zeros((B, T, D), np.float32), initial_state=np.zeros((B, U), np.float32))


# -------------------------------------------------------------------- stateful
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stateful_carries_state_like_keras(rng, kind):
    """(Keras 3.15's stateful Bidirectional crashes with return_state=True in compute_mask.)"""
    x1, x2, x3 = random_x(rng), random_x(rng), random_x(rng)
    theirs, ours = make_pair(kind, stateful=True, return_sequences=True)
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
    assert ours.states is None
    assert_close(ours(x3), theirs(x3))


def test_stateful_reset_states_with_values(rng):
    """`reset_states(states)` takes forward's then backward's; the next call starts there,
    as a Keras call given those states as `initial_state` does."""
    x = random_x(rng)
    states = random_states(rng, "lstm")
    theirs, ours = built_pair(rng, "lstm", x, return_sequences=True, return_state=True)
    stateful = R.Bidirectional(R.LSTM(U, stateful=True, return_sequences=True, return_state=True))
    stateful(x)
    stateful.set_weights(ours.get_weights())
    stateful.reset_states(states)
    assert_close(stateful.states, states)
    assert_close(stateful(x), theirs(x, initial_state=states))
    stateful.states = states  # assignable too, as on a single RNN layer
    assert_close(stateful(x), theirs(x, initial_state=states))
    stateful.states = None
    assert stateful.forward_layer.states is stateful.backward_layer.states is None
    with pytest.raises(ValueError, match=r"state 0 must have shape \(batch=4, units=3\)"):
        stateful.reset_states([np.zeros((B, U + 1), np.float32)] * 4)


def test_stateful_batch_size_change_is_an_error(rng):
    layer = R.Bidirectional(R.GRU(U, stateful=True))
    layer(random_x(rng))
    with pytest.raises(ValueError, match=r"stateful.*batch of 4.*got a batch of 2"):
        layer(random_x(rng, batch=2))


def test_reset_states_on_stateless_layer_is_an_error():
    with pytest.raises(ValueError, match=r"Bidirectional '.*' is not stateful"):
        R.Bidirectional(R.LSTM(U)).reset_states()


# ------------------------------------------------------------ backward_layer
@pytest.mark.parametrize("merge_mode", ["concat", None], ids=["concat", "None"])
def test_custom_backward_layer_matches_keras(rng, merge_mode):
    x = random_x(rng)
    kwargs = dict(return_sequences=True, return_state=True)
    theirs = K.Bidirectional(
        K.LSTM(U, **kwargs),
        backward_layer=K.LSTM(U, activation="relu", go_backwards=True, **kwargs),
        merge_mode=merge_mode,
    )
    ours = R.Bidirectional(
        R.LSTM(U, **kwargs),
        backward_layer=R.LSTM(U, activation="relu", go_backwards=True, **kwargs),
        merge_mode=merge_mode,
    )
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    assert_close(ours(x), theirs(x))


def test_different_kinds_forward_and_backward_match_keras(rng):
    x = random_x(rng)
    theirs = K.Bidirectional(
        K.GRU(U, return_sequences=True),
        backward_layer=K.SimpleRNN(2, return_sequences=True, go_backwards=True),
    )
    ours = R.Bidirectional(
        R.GRU(U, return_sequences=True),
        backward_layer=R.SimpleRNN(2, return_sequences=True, go_backwards=True),
    )
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    got = ours(x)
    assert tuple(got.shape) == (B, T, U + 2)
    assert_close(got, theirs(x))


def test_wrapping_a_backwards_layer_follows_tf_keras_2(rng):
    """A difference: Keras 3 refuses Bidirectional(LSTM(go_backwards=True)) (its backward copy
    gets go_backwards=True too); rnnkit, like tf.keras 2, flips the copy's direction. The
    oracle is Keras given that backward layer explicitly."""
    with pytest.raises(ValueError, match="different `go_backwards`"):
        K.Bidirectional(K.LSTM(U, go_backwards=True))
    x = random_x(rng)
    kwargs = dict(return_sequences=True, return_state=True)
    theirs = K.Bidirectional(
        K.LSTM(U, go_backwards=True, **kwargs), backward_layer=K.LSTM(U, **kwargs)
    )
    ours = R.Bidirectional(R.LSTM(U, go_backwards=True, **kwargs))
    assert ours.forward_layer.go_backwards and not ours.backward_layer.go_backwards
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    assert_close(ours(x), theirs(x))


# ---------------------------------------------------------------------- errors
def test_wrapping_a_non_rnn_is_an_error():
    with pytest.raises(TypeError, match=r"Bidirectional wraps a recurrent layer.*Dense"):
        R.Bidirectional(R.Dense(3))
    with pytest.raises(TypeError, match=r"Bidirectional wraps a recurrent layer"):
        R.Bidirectional("lstm")


@pytest.mark.parametrize("merge_mode", ["add", "max", "Concat", ""])
def test_bad_merge_mode_is_an_error(merge_mode):
    with pytest.raises(ValueError, match=r"merge_mode must be one of .*got"):
        R.Bidirectional(R.LSTM(U), merge_mode=merge_mode)
    with pytest.raises(ValueError, match="merge mode"):  # the oracle refuses them too
        K.Bidirectional(K.LSTM(U), merge_mode=merge_mode)


def test_backward_layer_reading_the_same_way_is_an_error():
    with pytest.raises(ValueError, match=r"other direction.*go_backwards=False.*go_backwards=True"):
        R.Bidirectional(R.LSTM(U), backward_layer=R.LSTM(U))


def test_backward_layer_must_be_recurrent():
    with pytest.raises(TypeError, match=r"backward_layer must be a recurrent layer"):
        R.Bidirectional(R.LSTM(U), backward_layer=R.Dense(U))


@pytest.mark.parametrize("attr", ["return_sequences", "return_state", "stateful"])
def test_backward_layer_with_other_settings_is_an_error(attr):
    with pytest.raises(ValueError, match=rf"need the same {attr}; got False and True"):
        R.Bidirectional(R.GRU(U), backward_layer=R.GRU(U, go_backwards=True, **{attr: True}))


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "kind,merge_mode",
    [(kind, "concat") for kind in INNER_IDS] + [("lstm", "ave"), ("gru", None)],
    ids=str,
)
def test_config_round_trips(rng, kind, merge_mode):
    x = random_x(rng)
    theirs, ours = built_pair(rng, kind, x, merge_mode, return_sequences=True)
    config = ours.get_config()
    want = theirs.get_config()
    assert config["merge_mode"] == want["merge_mode"]
    assert config["name"] == want["name"]
    for key in ("layer", "backward_layer"):
        assert config[key]["class_name"] == want[key]["class_name"]
        assert config[key]["config"]["name"] == want[key]["config"]["name"]
        assert config[key]["config"]["go_backwards"] == want[key]["config"]["go_backwards"]
    for rebuilt in (R.Bidirectional.from_config(config), R.deserialize(R.serialize(ours))):
        assert isinstance(rebuilt, R.Bidirectional)
        assert rebuilt.get_config() == config
        rebuilt(x)
        rebuilt.set_weights(ours.get_weights())
        assert_close(rebuilt(x), theirs(x))


def test_config_keeps_a_custom_backward_layer():
    layer = R.Bidirectional(
        R.LSTM(U), backward_layer=R.LSTM(U + 1, activation="relu", go_backwards=True)
    )
    rebuilt = R.deserialize(R.serialize(layer))
    assert rebuilt.backward_layer.cell.units == U + 1
    assert rebuilt.get_config() == layer.get_config()


# --------------------------------------------------------------------- summary
@pytest.mark.parametrize("kind", INNER_IDS)
@pytest.mark.parametrize("merge_mode", ["concat", None], ids=["concat", "None"])
def test_summary_matches_keras(kind, merge_mode):
    def make(lib):
        L = lib.layers
        inputs = L.Input(shape=(T, D))
        both = L.Bidirectional(inner(L, kind, return_sequences=True), merge_mode=merge_mode)(inputs)
        if merge_mode is None:
            both = L.Concatenate()(both)
        return lib.Model(inputs, L.TimeDistributed(L.Dense(2))(both))

    keras.utils.clear_session(free_memory=False)
    theirs = make(keras)
    rnnkit.utils.clear_session()
    ours = make(rnnkit)
    assert parse_summary(capture_summary(ours)) == parse_summary(capture_summary(theirs))
    assert ours.count_params() == theirs.count_params()


# ------------------------------------------------- both LSTM directions in one torch call
# Big enough (batch x units >= LSTM.loop_below_work) that each direction would take torch's
# kernel, so Bidirectional runs both in one call of torch's bidirectional LSTM.
WIDE_B, WIDE_U = 8, 40


@pytest.mark.parametrize("merge_mode", MERGE_MODES, ids=MERGE_IDS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("with_states", [False, True])
def test_lstm_both_ways_in_one_call_matches_keras(
    rng, merge_mode, return_sequences, with_states, python_loops
):
    x = rng.normal(size=(WIDE_B, T, D)).astype(np.float32)
    kwargs = dict(return_sequences=return_sequences, return_state=True)
    theirs = K.Bidirectional(K.LSTM(WIDE_U, **kwargs), merge_mode=merge_mode)
    ours = R.Bidirectional(R.LSTM(WIDE_U, **kwargs), merge_mode=merge_mode)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    assert ours.kernel_path.startswith("torch's bidirectional LSTM")
    states = None
    if with_states:
        states = [torch.from_numpy(rng.normal(size=(WIDE_B, WIDE_U)).astype(np.float32))] * 4
    assert_close(ours(x, initial_state=states), theirs(x, initial_state=states))


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_lstm_both_ways_in_one_call_has_the_gradients_of_each_way_alone(
    rng, use_bias, return_sequences
):
    """Gradients with respect to the input, the initial states and every weight equal those
    of the two directions run one by one (each on torch's one-way kernel)."""
    together = R.Bidirectional(
        R.LSTM(WIDE_U, use_bias=use_bias, return_sequences=return_sequences, return_state=True)
    )
    alone = R.Bidirectional(
        R.LSTM(WIDE_U, use_bias=use_bias, return_sequences=return_sequences, return_state=True)
    )
    alone.choose_path = lambda training, mask=None, batch=None: (False, "each direction alone")
    x = torch.from_numpy(rng.normal(size=(WIDE_B, T, D)).astype(np.float32)).requires_grad_()
    together(x)
    alone(x)
    alone.set_weights(together.get_weights())
    states = [torch.randn(WIDE_B, WIDE_U, requires_grad=True) for _ in range(4)]
    grads = []
    for layer in (together, alone):
        outputs = layer(x, initial_state=states, training=True)
        probe = torch.Generator().manual_seed(0)
        loss = sum((o * torch.randn(o.shape, generator=probe)).sum() for o in outputs)
        grads.append(torch.autograd.grad(loss, [x, *states, *layer.weights]))
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "change, why",
    [
        (dict(dropout=0.2), "drops its own inputs"),
        (dict(activity_regularizer="l2"), "activity_regularizer"),
        (dict(activation="relu"), "torch's kernel has tanh and sigmoid"),
    ],
)
def test_lstm_pairs_that_cannot_share_a_call_run_each_way_alone(change, why, python_loops):
    layer = R.Bidirectional(R.LSTM(WIDE_U, **change))
    layer(np.zeros((WIDE_B, T, D), dtype=np.float32))
    assert layer.kernel_path.startswith("each direction on its own")
    assert why in layer.kernel_path
    assert R.Bidirectional(R.GRU(WIDE_U)).kernel_path.startswith("each direction on its own")


@pytest.mark.parametrize("return_sequences", [False, True])
def test_lstm_both_ways_in_one_call_gradcheck_float64(return_sequences, python_loops):
    """float64 gradcheck of the one-call path with respect to the input, the four initial
    states and every weight (tiny sizes: the size rule is lifted for the test)."""
    layer = R.Bidirectional(
        R.LSTM(3, return_sequences=return_sequences, return_state=True, dtype="float64"),
        dtype="float64",
    )
    for direction in (layer.forward_layer, layer.backward_layer):
        direction.loop_below_work = 0  # take torch's kernel at any size
    x = torch.randn(2, 4, D, dtype=torch.float64, requires_grad=True)
    layer(x)
    assert layer.choose_path(True, batch=2)[0]
    states = [torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(4)]

    def f(x, *tensors):
        return tuple(layer(x, initial_state=list(tensors[:4]), training=True))

    assert torch.autograd.gradcheck(f, (x, *states, *layer.weights))
