"""`rnnkit.layers.SimpleRNN` against `keras.layers.SimpleRNN` (Keras 3, torch backend).

Each test builds the same layer in both libraries, gives the Keras one random weights,
copies them into rnnkit and compares outputs (and returned states) on random float32
inputs within 1e-5.
"""

import itertools

import keras
import numpy as np
import pytest
import torch
from conftest import assert_close, copy_weights, to_numpy, weight_shapes

from rnnkit import layers as R
from rnnkit import regularizers as rnn_regularizers

K = keras.layers

B, T, D, U = 4, 5, 3, 4


def scaled_tanh(x):
    """A user-defined activation (works on the torch tensors both libraries pass)."""
    return 0.5 * torch.tanh(x) + 0.1 * x


ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear", None, scaled_tanh]
ACTIVATION_IDS = ["tanh", "relu", "sigmoid", "linear", "None", "callable"]


def random_x(rng, batch=B, steps=T, features=D):
    return rng.normal(size=(batch, steps, features)).astype(np.float32)


def built_pair(rng, x, **kwargs):
    """`(keras_layer, rnnkit_layer)` of SimpleRNN(**kwargs), built on `x`, same weights."""
    kwargs.setdefault("units", U)
    theirs, ours = K.SimpleRNN(**kwargs), R.SimpleRNN(**kwargs)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    return theirs, ours


# --------------------------------------------------------------------- the grid
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=ACTIVATION_IDS)
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize(
    "return_sequences,return_state,go_backwards,unroll",
    list(itertools.product([False, True], repeat=4)),
)
def test_outputs_match_keras(
    rng, activation, use_bias, return_sequences, return_state, go_backwards, unroll
):
    x = random_x(rng)
    theirs, ours = built_pair(
        rng,
        x,
        activation=activation,
        use_bias=use_bias,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        unroll=unroll,
    )
    want, got = theirs(x), ours(x)
    if return_state:
        assert len(got) == len(want) == 2
        output_shape = (B, T, U) if return_sequences else (B, U)
        assert tuple(got[0].shape) == output_shape
        assert tuple(got[1].shape) == (B, U)
    assert_close(got, want)


@pytest.mark.parametrize("units,features", [(1, 1), (2, 5), (6, 3)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_param_count_and_weight_layout_match_keras(rng, units, features, use_bias):
    x = random_x(rng, features=features)
    theirs, ours = built_pair(rng, x, units=units, use_bias=use_bias)
    assert ours.count_params() == theirs.count_params()
    assert weight_shapes(ours) == weight_shapes(theirs)
    expected = [(features, units), (units, units)] + ([(units,)] if use_bias else [])
    assert weight_shapes(ours) == expected
    assert len(ours.trainable_weights) == len(theirs.trainable_weights)
    assert len(ours.non_trainable_weights) == len(theirs.non_trainable_weights) == 0
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_explicit_build_matches_keras():
    theirs, ours = K.SimpleRNN(U), R.SimpleRNN(U)
    theirs.build((B, T, D))
    ours.build((B, T, D))
    assert ours.built is theirs.built is True
    assert ours.count_params() == theirs.count_params()
    assert weight_shapes(ours) == weight_shapes(theirs)


def test_weights_are_the_cells_weights(rng):
    x = random_x(rng)
    theirs, ours = built_pair(rng, x)
    assert weight_shapes(ours.cell) == weight_shapes(theirs.cell)
    for a, b in zip(ours.cell.get_weights(), theirs.cell.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------- masks
MASKED_IDS = {
    # 0 is padding: right-padded, left-padded, a fully padded row, a gap in the middle.
    "right": [[3, 1, 4, 0, 0], [2, 7, 1, 8, 2], [5, 0, 0, 0, 0], [9, 2, 6, 5, 3]],
    "left": [[0, 0, 3, 1, 4], [2, 7, 1, 8, 2], [0, 0, 0, 0, 5], [9, 2, 6, 5, 3]],
    "all_padding_row": [[3, 1, 4, 1, 5], [0, 0, 0, 0, 0], [2, 7, 0, 0, 0], [0, 0, 0, 0, 0]],
    "gap": [[3, 0, 4, 0, 5], [2, 7, 0, 8, 2], [0, 5, 0, 6, 0], [9, 2, 6, 5, 0]],
}

# Keras 3.15 itself crashes on unroll=True + go_backwards=True + mask (torch backend:
# `torch.flip` on a tuple in keras/src/backend/torch/rnn.py), so that corner is left out.
LOOP_OPTIONS = [
    (rs, st, gb, ur)
    for rs, st, gb, ur in itertools.product([False, True], repeat=4)
    if not (gb and ur)
]


def embedding_pair(rng, vocab=10, dim=D):
    theirs = K.Embedding(vocab, dim, mask_zero=True)
    ours = R.Embedding(vocab, dim, mask_zero=True)
    ids = np.zeros((1, 2), dtype="int32")
    theirs(ids)
    ours(ids)
    copy_weights(theirs, ours, rng)
    return theirs, ours


@pytest.mark.parametrize("padding", sorted(MASKED_IDS))
@pytest.mark.parametrize("return_sequences,return_state,go_backwards,unroll", LOOP_OPTIONS)
def test_embedding_mask_zero_matches_keras(
    rng, padding, return_sequences, return_state, go_backwards, unroll
):
    ids = np.array(MASKED_IDS[padding], dtype="int32")
    k_emb, r_emb = embedding_pair(rng)
    k_rnn = K.SimpleRNN(
        U,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        unroll=unroll,
    )
    r_rnn = R.SimpleRNN(
        U,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        unroll=unroll,
    )
    k_rnn(k_emb(ids))
    r_rnn(r_emb(ids))
    copy_weights(k_rnn, r_rnn, rng)
    # The mask travels with the embedded tensor in both libraries.
    assert_close(r_rnn(r_emb(ids)), k_rnn(k_emb(ids)))


@pytest.mark.parametrize("padding", sorted(MASKED_IDS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_explicit_mask_argument_matches_keras(rng, padding, go_backwards):
    x = random_x(rng)
    mask = np.array(MASKED_IDS[padding]) != 0
    theirs, ours = built_pair(
        rng, x, return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    want = theirs(x, mask=torch.from_numpy(mask))
    got = ours(x, mask=torch.from_numpy(mask))
    assert_close(got, want)


def test_fully_padded_row_gives_zeros_like_keras(rng):
    ids = np.array(MASKED_IDS["all_padding_row"], dtype="int32")
    k_emb, r_emb = embedding_pair(rng)
    k_rnn, r_rnn = K.SimpleRNN(U, return_sequences=True), R.SimpleRNN(U, return_sequences=True)
    k_rnn(k_emb(ids))
    r_rnn(r_emb(ids))
    copy_weights(k_rnn, r_rnn, rng)
    want, got = to_numpy(k_rnn(k_emb(ids))), to_numpy(r_rnn(r_emb(ids)))
    np.testing.assert_array_equal(want[1], np.zeros((T, U), np.float32))  # the oracle's answer
    assert_close(got, want)


@pytest.mark.parametrize("mask_value", [0.0, -1.0])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masking_layer_matches_keras(rng, mask_value, return_sequences, go_backwards):
    x = random_x(rng)
    x[0, 3:] = mask_value  # right padding
    x[1, :2] = mask_value  # left padding
    x[2, :] = mask_value  # a fully padded row
    x[3, 2, 0] = mask_value  # one feature equal to mask_value does not mask the step
    k_masking, r_masking = K.Masking(mask_value=mask_value), R.Masking(mask_value=mask_value)
    assert_close(r_masking(x), k_masking(x))
    k_rnn = K.SimpleRNN(U, return_sequences=return_sequences, go_backwards=go_backwards)
    r_rnn = R.SimpleRNN(U, return_sequences=return_sequences, go_backwards=go_backwards)
    k_rnn(k_masking(x))
    r_rnn(r_masking(x))
    copy_weights(k_rnn, r_rnn, rng)
    assert_close(r_rnn(r_masking(x)), k_rnn(k_masking(x)))


# --------------------------------------------------------------- initial state
@pytest.mark.parametrize("as_list", [True, False], ids=["list", "tensor"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_initial_state_matches_keras(rng, as_list, go_backwards, return_sequences):
    x = random_x(rng)
    h0 = rng.normal(size=(B, U)).astype(np.float32)
    theirs, ours = built_pair(
        rng, x, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards
    )
    state = [torch.from_numpy(h0)] if as_list else torch.from_numpy(h0)
    want = theirs(x, initial_state=state)
    got = ours(x, initial_state=state)
    assert_close(got, want)
    # It really is used: zeros give something else.
    zero = ours(x, initial_state=[torch.zeros(B, U)])
    assert not np.allclose(to_numpy(zero[0]), to_numpy(got[0]), atol=1e-3)


def test_initial_state_with_explicit_mask_matches_keras(rng):
    x = random_x(rng)
    mask = torch.from_numpy(np.array(MASKED_IDS["left"]) != 0)
    h0 = torch.from_numpy(rng.normal(size=(B, U)).astype(np.float32))
    theirs, ours = built_pair(rng, x, return_sequences=True, return_state=True)
    assert_close(ours(x, initial_state=[h0], mask=mask), theirs(x, initial_state=[h0], mask=mask))


def test_initial_state_keeps_the_embedding_mask(rng):
    """A deliberate difference: Keras 3 fills `mask=` from the input's attached mask only when
    the call gets a single tensor argument (keras/src/layers/layer.py, "6. Populate mask
    argument(s)"), so with `initial_state=` it silently runs over the padding. rnnkit keeps the
    mask (as tf.keras 2 did): the result equals Keras given the mask explicitly."""
    ids = np.array(MASKED_IDS["left"], dtype="int32")
    h0 = torch.from_numpy(rng.normal(size=(B, U)).astype(np.float32))
    k_emb, r_emb = embedding_pair(rng)
    k_rnn = K.SimpleRNN(U, return_sequences=True, return_state=True)
    r_rnn = R.SimpleRNN(U, return_sequences=True, return_state=True)
    k_rnn(k_emb(ids))
    r_rnn(r_emb(ids))
    copy_weights(k_rnn, r_rnn, rng)
    mask = k_emb.compute_mask(ids)
    assert_close(
        r_rnn(r_emb(ids), initial_state=[h0]), k_rnn(k_emb(ids), initial_state=[h0], mask=mask)
    )


# -------------------------------------------------------------------- stateful
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_stateful_carries_state_like_keras(rng, return_sequences, go_backwards):
    x1, x2, x3 = random_x(rng), random_x(rng), random_x(rng)
    kwargs = dict(
        units=U, stateful=True, return_sequences=return_sequences, go_backwards=go_backwards
    )
    theirs, ours = K.SimpleRNN(**kwargs), R.SimpleRNN(**kwargs)
    theirs(np.zeros_like(x1))
    ours(np.zeros_like(x1))
    copy_weights(theirs, ours, rng)
    theirs.reset_states()
    ours.reset_states()

    first_k, first_r = theirs(x1), ours(x1)
    assert_close(first_r, first_k)
    second_k, second_r = theirs(x2), ours(x2)
    assert_close(second_r, second_k)
    assert_close(ours.states, theirs.states)
    # The second call started from the first call's state, not from zeros.
    fresh = K.SimpleRNN(U, return_sequences=return_sequences, go_backwards=go_backwards)
    fresh(x2)
    fresh.set_weights(theirs.get_weights())
    assert not np.allclose(to_numpy(fresh(x2)), to_numpy(second_r), atol=1e-3)

    theirs.reset_states()
    ours.reset_states()
    assert_close(ours(x3), theirs(x3))
    assert_close(ours.states, theirs.states)


def test_stateful_reset_gives_first_call_again(rng):
    x = random_x(rng)
    theirs, ours = K.SimpleRNN(U, stateful=True), R.SimpleRNN(U, stateful=True)
    theirs(np.zeros_like(x))
    ours(np.zeros_like(x))
    copy_weights(theirs, ours, rng)
    theirs.reset_states()
    ours.reset_states()
    first = to_numpy(ours(x))
    ours(x)
    ours.reset_states()
    assert_close(ours(x), first)
    assert_close(first, theirs(x))


# --------------------------------------------------------------------- dropout
@pytest.mark.parametrize("dropout,recurrent_dropout", [(0.3, 0.0), (0.0, 0.4), (0.5, 0.5)])
@pytest.mark.parametrize("unroll", [False, True])
def test_dropout_is_off_at_inference_like_keras(rng, dropout, recurrent_dropout, unroll):
    x = random_x(rng)
    theirs, ours = built_pair(
        rng,
        x,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        seed=1,
        return_sequences=True,
        unroll=unroll,
    )
    assert_close(ours(x, training=False), theirs(x, training=False))
    assert_close(ours(x), theirs(x))  # training defaults to False for a direct call


def identity_rnn(module, units, rate, recurrent_rate, recurrent_identity):
    """A linear SimpleRNN with W = I, U = I or 0 and no bias: h_t = m∘x_t + r∘U h_{t-1}."""
    layer = module.SimpleRNN(
        units,
        activation="linear",
        use_bias=False,
        return_sequences=True,
        dropout=rate,
        recurrent_dropout=recurrent_rate,
    )
    layer(np.zeros((1, 1, units), np.float32))
    eye = np.eye(units, dtype=np.float32)
    layer.set_weights([eye, eye if recurrent_identity else np.zeros_like(eye)])
    return layer


@pytest.mark.parametrize("module", [K, R], ids=["keras", "rnnkit"])
def test_input_dropout_uses_one_mask_for_all_steps(module):
    rate, units, steps = 0.4, 6, 4
    layer = identity_rnn(module, units, rate, 0.0, recurrent_identity=False)
    x = np.ones((8, steps, units), np.float32)
    outs = np.concatenate([to_numpy(layer(x, training=True)) for _ in range(60)])
    # Without recurrence each step's output is that step's dropped-out input.
    for t in range(1, steps):
        np.testing.assert_array_equal(outs[:, t], outs[:, 0])
    kept = 1.0 / (1.0 - rate)
    assert np.all(np.isclose(outs, 0.0) | np.isclose(outs, kept, atol=1e-5))
    assert abs(np.isclose(outs[:, 0], 0.0).mean() - rate) < 0.05
    assert abs(outs[:, 0].mean() - 1.0) < 0.1  # inverted dropout keeps the mean
    assert_close(layer(x, training=False), x)


@pytest.mark.parametrize("module", [K, R], ids=["keras", "rnnkit"])
def test_recurrent_dropout_uses_one_mask_for_all_steps(module):
    rate, units, steps = 0.5, 6, 4
    layer = identity_rnn(module, units, 0.0, rate, recurrent_identity=True)
    x = np.ones((8, steps, units), np.float32)
    outs = np.concatenate([to_numpy(layer(x, training=True)) for _ in range(60)])
    # h_1 = 1, then h_t = 1 + r * h_{t-1} with the same r in {0, 1/(1-rate)} every step.
    r = outs[:, 1] - outs[:, 0]
    kept = 1.0 / (1.0 - rate)
    assert np.all(np.isclose(r, 0.0) | np.isclose(r, kept, atol=1e-5))
    h = outs[:, 0]
    for t in range(1, steps):
        h = 1.0 + r * h
        np.testing.assert_allclose(outs[:, t], h, rtol=1e-5)
    assert abs(np.isclose(r, 0.0).mean() - rate) < 0.05
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), np.cumsum(x, axis=1), rtol=1e-6)


def test_dropout_masks_change_between_calls():
    layer = identity_rnn(R, 6, 0.5, 0.0, recurrent_identity=False)
    x = np.ones((8, 3, 6), np.float32)
    first, second = to_numpy(layer(x, training=True)), to_numpy(layer(x, training=True))
    assert not np.array_equal(first, second)


def test_training_true_differs_from_training_false(rng):
    x = random_x(rng)
    ours = R.SimpleRNN(U, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    ours(x)
    train, infer = to_numpy(ours(x, training=True)), to_numpy(ours(x, training=False))
    assert train.shape == infer.shape == (B, T, U)
    assert not np.allclose(train, infer, atol=1e-3)


# ---------------------------------------------------------------- regularizers
REGULARIZERS = [
    ("l1", "l1"),
    ("l2", "l2"),
    (keras.regularizers.L2(0.03), rnn_regularizers.L2(0.03)),
    (keras.regularizers.L1L2(l1=0.02, l2=0.05), rnn_regularizers.L1L2(l1=0.02, l2=0.05)),
]


@pytest.mark.parametrize("pair", REGULARIZERS, ids=["l1", "l2", "L2(0.03)", "L1L2"])
@pytest.mark.parametrize("which", ["kernel", "recurrent", "bias", "all"])
def test_weight_regularizer_losses_match_keras(rng, pair, which):
    k_reg, r_reg = pair
    names = ["kernel", "recurrent", "bias"] if which == "all" else [which]
    k_kwargs = {f"{n}_regularizer": k_reg for n in names}
    r_kwargs = {f"{n}_regularizer": r_reg for n in names}
    x = random_x(rng)
    theirs, ours = K.SimpleRNN(U, **k_kwargs), R.SimpleRNN(U, **r_kwargs)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    want, got = [to_numpy(v) for v in theirs.losses], [to_numpy(v) for v in ours.losses]
    assert len(got) == len(want) == len(names)
    assert_close(got, want)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_activity_regularizer_loss_matches_keras_semantics(rng, return_sequences):
    """Keras 3.15's SimpleRNN drops `activity_regularizer` (it is never passed on to
    `Layer.__init__`), so the oracle here is Keras' rule for every other layer:
    `regularizer(output) / batch_size`, added after the call, next to the weight penalties."""
    x = random_x(rng)
    theirs = K.SimpleRNN(U, kernel_regularizer="l1", return_sequences=return_sequences)
    ours = R.SimpleRNN(
        U, activity_regularizer="l2", kernel_regularizer="l1", return_sequences=return_sequences
    )
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    output = theirs(x)
    activity = to_numpy(keras.regularizers.L2(0.01)(output)) / B
    ours(x)
    want = sorted([float(activity)] + [float(to_numpy(v)) for v in theirs.losses])
    got = sorted(float(to_numpy(v)) for v in ours.losses)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- config
CONFIGS = [
    {},
    {"activation": "relu", "use_bias": False, "return_sequences": True},
    {"return_state": True, "go_backwards": True, "unroll": True},
    {"dropout": 0.2, "recurrent_dropout": 0.1, "seed": 3},
    {"kernel_regularizer": "l2", "bias_regularizer": "l1", "activity_regularizer": "l2"},
    {"kernel_initializer": "he_normal", "recurrent_initializer": "glorot_uniform"},
    {"stateful": True},
]


@pytest.mark.parametrize("kwargs", CONFIGS, ids=lambda c: ",".join(c) or "defaults")
def test_config_values_match_keras(kwargs):
    ours, theirs = R.SimpleRNN(U, **kwargs).get_config(), K.SimpleRNN(U, **kwargs).get_config()
    for key in (
        "units",
        "activation",
        "use_bias",
        "return_sequences",
        "return_state",
        "go_backwards",
        "stateful",
        "unroll",
        "dropout",
        "recurrent_dropout",
        "name",
        "trainable",
    ):
        assert ours[key] == theirs[key], key


def test_config_keys_cover_keras_keys():
    ours, theirs = R.SimpleRNN(U).get_config(), K.SimpleRNN(U).get_config()
    missing = sorted(set(theirs) - set(ours))
    assert not missing, f"rnnkit SimpleRNN.get_config() lacks Keras keys {missing}"


@pytest.mark.parametrize("kwargs", CONFIGS, ids=lambda c: ",".join(c) or "defaults")
def test_from_config_round_trip_gives_same_outputs(rng, kwargs):
    x = random_x(rng)
    theirs, ours = built_pair(rng, x, **kwargs)
    if kwargs.get("stateful"):
        theirs.reset_states()
        ours.reset_states()
    config = ours.get_config()
    rebuilt = R.SimpleRNN.from_config(config)
    assert rebuilt.get_config() == config
    rebuilt(x)
    if kwargs.get("stateful"):
        rebuilt.reset_states()
    rebuilt.set_weights(ours.get_weights())
    assert_close(rebuilt(x), theirs(x))


# ------------------------------------------------------------- cell and RNN(cell)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_cell_step_matches_keras(rng, activation):
    x_t = rng.normal(size=(B, D)).astype(np.float32)
    h = rng.normal(size=(B, U)).astype(np.float32)
    theirs = K.SimpleRNNCell(U, activation=activation)
    ours = R.SimpleRNNCell(U, activation=activation)
    theirs(x_t, [torch.from_numpy(h)])
    ours(torch.from_numpy(x_t), [torch.from_numpy(h)])
    copy_weights(theirs, ours, rng)
    want = theirs(x_t, [torch.from_numpy(h)])
    got = ours(torch.from_numpy(x_t), [torch.from_numpy(h)])
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])


@pytest.mark.parametrize("return_sequences", [False, True])
def test_rnn_of_cell_matches_keras(rng, return_sequences):
    x = random_x(rng)
    theirs = K.RNN(K.SimpleRNNCell(U), return_sequences=return_sequences, return_state=True)
    ours = R.RNN(R.SimpleRNNCell(U), return_sequences=return_sequences, return_state=True)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    assert ours.count_params() == theirs.count_params()
    assert_close(ours(x), theirs(x))


def test_float64_layer_matches_keras(rng):
    x = random_x(rng)
    theirs, ours = built_pair(rng, x, dtype="float64", return_sequences=True)
    assert [w.dtype for w in ours.get_weights()] == [w.dtype for w in theirs.get_weights()]
    want, got = theirs(x), ours(x)
    assert to_numpy(got).dtype == to_numpy(want).dtype == np.float64
    # Keras' float64 path keeps a float32 rounding somewhere (its output is ~4e-8 off a
    # float64 numpy recurrence), so 1e-6 rather than float64 precision.
    assert_close(got, want, atol=1e-6)
