"""`rnnkit.layers.LSTM` and `GRU` (both forms) against Keras 3 (torch backend).

Each test builds the same layer in both libraries, gives the Keras one random weights
(biases included), copies them into rnnkit and compares outputs and returned states on
random float32 inputs within 1e-5. Cells get a float64 gradcheck.
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

# name -> (layer class name, extra constructor arguments)
KINDS = {
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
}
KIND_IDS = sorted(KINDS)
CELLS = {"lstm": "LSTMCell", "gru": "GRUCell", "gru_reset_before": "GRUCell"}
GATES = {"lstm": 4, "gru": 3, "gru_reset_before": 3}
STATES = {"lstm": 2, "gru": 1, "gru_reset_before": 1}


def random_x(rng, batch=B, steps=T, features=D):
    return rng.normal(size=(batch, steps, features)).astype(np.float32)


def make(module, kind, **kwargs):
    class_name, extra = KINDS[kind]
    kwargs.setdefault("units", U)
    return getattr(module, class_name)(**extra, **kwargs)


def built_pair(rng, kind, x, scale=0.5, **kwargs):
    """`(keras_layer, rnnkit_layer)` of the same kind, built on `x`, with equal random weights."""
    theirs, ours = make(K, kind, **kwargs), make(R, kind, **kwargs)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng, scale)
    return theirs, ours


def torch_list(arrays):
    return [torch.from_numpy(a) for a in arrays]


# --------------------------------------------------------------------- the grid
# Every loop option with and without bias; use_bias=False only with return_state=True.
GRID = [
    (rs, st, gb, ur, ub)
    for rs, st, gb, ur, ub in itertools.product([False, True], repeat=5)
    if ub or st
]


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("return_sequences,return_state,go_backwards,unroll,use_bias", GRID)
def test_outputs_match_keras(
    rng, kind, return_sequences, return_state, go_backwards, unroll, use_bias
):
    x = random_x(rng)
    theirs, ours = built_pair(
        rng,
        kind,
        x,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        unroll=unroll,
        use_bias=use_bias,
    )
    want, got = theirs(x), ours(x)
    if return_state:
        assert len(got) == len(want) == 1 + STATES[kind]
        assert tuple(got[0].shape) == ((B, T, U) if return_sequences else (B, U))
        assert all(tuple(s.shape) == (B, U) for s in got[1:])
    assert_close(got, want)


ACTIVATION_PAIRS = [
    ("tanh", "sigmoid"),
    ("relu", "hard_sigmoid"),
    ("sigmoid", "tanh"),
    ("linear", "sigmoid"),
    (None, "relu"),  # unbounded gates: small weights keep the values moderate
]


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("activation,recurrent_activation", ACTIVATION_PAIRS, ids=lambda a: str(a))
def test_activations_match_keras(rng, kind, activation, recurrent_activation):
    x = random_x(rng)
    theirs, ours = built_pair(
        rng,
        kind,
        x,
        activation=activation,
        recurrent_activation=recurrent_activation,
        return_sequences=True,
        return_state=True,
        scale=0.3,
    )
    assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("units,features", [(1, 1), (2, 5), (5, 3)])
def test_param_count_and_weight_layout_match_keras(rng, kind, units, features):
    x = random_x(rng, features=features)
    theirs, ours = built_pair(rng, kind, x, units=units)
    gates = GATES[kind]
    bias = (2, gates * units) if kind == "gru" else (gates * units,)
    expected = [(features, gates * units), (units, gates * units), bias]
    assert weight_shapes(ours) == weight_shapes(theirs) == expected
    assert ours.count_params() == theirs.count_params()
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 3
    assert len(ours.non_trainable_weights) == len(theirs.non_trainable_weights) == 0
    assert weight_shapes(ours.cell) == weight_shapes(theirs.cell)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KIND_IDS)
def test_no_bias_weight_layout_matches_keras(rng, kind):
    x = random_x(rng)
    theirs, ours = built_pair(rng, kind, x, use_bias=False)
    assert weight_shapes(ours) == weight_shapes(theirs)
    assert len(ours.get_weights()) == 2
    assert ours.count_params() == theirs.count_params()


@pytest.mark.parametrize("unit_forget_bias", [True, False])
@pytest.mark.parametrize("bias_initializer", ["zeros", "ones"])
def test_lstm_initial_bias_matches_keras(unit_forget_bias, bias_initializer):
    """Keras starts the forget-gate block at 1 with unit_forget_bias (deterministic init)."""
    kwargs = dict(unit_forget_bias=unit_forget_bias, bias_initializer=bias_initializer)
    theirs, ours = K.LSTM(U, **kwargs), R.LSTM(U, **kwargs)
    theirs.build((B, T, D))
    ours.build((B, T, D))
    np.testing.assert_array_equal(ours.get_weights()[2], theirs.get_weights()[2])


@pytest.mark.parametrize("kind", KIND_IDS)
def test_constant_initialisation_matches_keras(rng, kind):
    """Reference numbers with no copying at all: both start from the same constants."""
    init = dict(
        kernel_initializer=keras.initializers.Constant(0.1),
        recurrent_initializer=keras.initializers.Constant(-0.2),
        bias_initializer=keras.initializers.Constant(0.05),
    )
    ours_init = dict(
        kernel_initializer=rnnkit.initializers.Constant(0.1),
        recurrent_initializer=rnnkit.initializers.Constant(-0.2),
        bias_initializer=rnnkit.initializers.Constant(0.05),
    )
    theirs = make(K, kind, return_sequences=True, **init)
    ours = make(R, kind, return_sequences=True, **ours_init)
    x = random_x(rng)
    assert_close(ours(x), theirs(x))


def test_explicit_build_matches_keras():
    for kind in KIND_IDS:
        theirs, ours = make(K, kind), make(R, kind)
        theirs.build((B, T, D))
        ours.build((B, T, D))
        assert ours.built is theirs.built is True
        assert weight_shapes(ours) == weight_shapes(theirs)


# ----------------------------------------------------------------------- masks
MASKED_IDS = {
    "right": [[3, 1, 4, 0, 0], [2, 7, 1, 8, 2], [5, 0, 0, 0, 0], [9, 2, 6, 5, 3]],
    "left": [[0, 0, 3, 1, 4], [2, 7, 1, 8, 2], [0, 0, 0, 0, 5], [9, 2, 6, 5, 3]],
    "all_padding_row": [[3, 1, 4, 1, 5], [0, 0, 0, 0, 0], [2, 7, 0, 0, 0], [0, 0, 0, 0, 0]],
    "gap": [[3, 0, 4, 0, 5], [2, 7, 0, 8, 2], [0, 5, 0, 6, 0], [9, 2, 6, 5, 0]],
}


def embedding_pair(rng, vocab=10, dim=D):
    theirs = K.Embedding(vocab, dim, mask_zero=True)
    ours = R.Embedding(vocab, dim, mask_zero=True)
    ids = np.zeros((1, 2), dtype="int32")
    theirs(ids)
    ours(ids)
    copy_weights(theirs, ours, rng)
    return theirs, ours


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("padding", sorted(MASKED_IDS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_embedding_mask_zero_matches_keras(rng, kind, padding, return_sequences, go_backwards):
    ids = np.array(MASKED_IDS[padding], dtype="int32")
    k_emb, r_emb = embedding_pair(rng)
    kwargs = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    k_rnn, r_rnn = make(K, kind, **kwargs), make(R, kind, **kwargs)
    k_rnn(k_emb(ids))
    r_rnn(r_emb(ids))
    copy_weights(k_rnn, r_rnn, rng)
    assert_close(r_rnn(r_emb(ids)), k_rnn(k_emb(ids)))


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_mask_without_padding_matches_keras(rng, kind, go_backwards):
    """A mask that keeps every step (a batch with no padding) changes nothing."""
    x = random_x(rng)
    mask = torch.ones(B, T, dtype=torch.bool)
    theirs, ours = built_pair(
        rng, kind, x, return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    want = theirs(x, mask=mask)
    assert_close(ours(x, mask=mask), want)
    assert_close(ours(x), want)


# Keras 3.15 crashes on unroll=True + go_backwards=True + mask, so unroll runs forwards only.
@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("padding", ["left", "gap"])
def test_unrolled_mask_matches_keras(rng, kind, padding):
    x = random_x(rng)
    mask = torch.from_numpy(np.array(MASKED_IDS[padding]) != 0)
    theirs, ours = built_pair(rng, kind, x, return_sequences=True, return_state=True, unroll=True)
    assert_close(ours(x, mask=mask), theirs(x, mask=mask))


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masking_layer_matches_keras(rng, kind, go_backwards):
    x = random_x(rng)
    x[0, 3:] = 0.0  # right padding
    x[1, :2] = 0.0  # left padding
    x[2, :] = 0.0  # a fully padded row
    kwargs = dict(return_sequences=True, go_backwards=go_backwards)
    k_rnn, r_rnn = make(K, kind, **kwargs), make(R, kind, **kwargs)
    k_masking, r_masking = K.Masking(), R.Masking()
    k_rnn(k_masking(x))
    r_rnn(r_masking(x))
    copy_weights(k_rnn, r_rnn, rng)
    assert_close(r_rnn(r_masking(x)), k_rnn(k_masking(x)))


@pytest.mark.parametrize("kind", KIND_IDS)
def test_fully_padded_row_gives_zero_states_like_keras(rng, kind):
    ids = np.array(MASKED_IDS["all_padding_row"], dtype="int32")
    k_emb, r_emb = embedding_pair(rng)
    k_rnn = make(K, kind, return_sequences=True, return_state=True)
    r_rnn = make(R, kind, return_sequences=True, return_state=True)
    k_rnn(k_emb(ids))
    r_rnn(r_emb(ids))
    copy_weights(k_rnn, r_rnn, rng)
    want, got = to_numpy(k_rnn(k_emb(ids))), to_numpy(r_rnn(r_emb(ids)))
    for tensor in want:
        np.testing.assert_array_equal(tensor[1], np.zeros_like(tensor[1]))  # the oracle's answer
    assert_close(got, want)


# --------------------------------------------------------------- initial state
@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_initial_state_matches_keras(rng, kind, go_backwards, return_sequences):
    x = random_x(rng)
    states = torch_list([rng.normal(size=(B, U)).astype(np.float32) for _ in range(STATES[kind])])
    theirs, ours = built_pair(
        rng,
        kind,
        x,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
    )
    got = ours(x, initial_state=states)
    assert_close(got, theirs(x, initial_state=states))
    zeros = ours(x, initial_state=[torch.zeros(B, U)] * STATES[kind])
    assert not np.allclose(to_numpy(zeros[0]), to_numpy(got[0]), atol=1e-3)


@pytest.mark.parametrize("kind", KIND_IDS)
def test_initial_state_with_mask_matches_keras(rng, kind):
    """With `initial_state=` Keras only uses a mask given explicitly (see the SimpleRNN tests)."""
    ids = np.array(MASKED_IDS["left"], dtype="int32")
    states = torch_list([rng.normal(size=(B, U)).astype(np.float32) for _ in range(STATES[kind])])
    k_emb, r_emb = embedding_pair(rng)
    k_rnn = make(K, kind, return_sequences=True, return_state=True)
    r_rnn = make(R, kind, return_sequences=True, return_state=True)
    k_rnn(k_emb(ids))
    r_rnn(r_emb(ids))
    copy_weights(k_rnn, r_rnn, rng)
    mask = k_emb.compute_mask(ids)
    want = k_rnn(k_emb(ids), initial_state=states, mask=mask)
    assert_close(r_rnn(r_emb(ids), initial_state=states), want)


def test_lstm_initial_state_needs_h_and_c():
    layer = R.LSTM(U)
    x = np.zeros((B, T, D), np.float32)
    with pytest.raises(ValueError, match=r"has 2 state\(s\).*initial_state has 1.*\[h, c\]"):
        layer(x, initial_state=np.zeros((B, U), np.float32))
    with pytest.raises(ValueError, match=r"initial_state has 3 tensor\(s\).*\[h, c\]"):
        layer(x, initial_state=[np.zeros((B, U), np.float32)] * 3)


def test_gru_initial_state_has_one_tensor():
    with pytest.raises(ValueError, match=r"has 1 state\(s\).*initial_state has 2"):
        R.GRU(U)(np.zeros((B, T, D), np.float32), initial_state=[np.zeros((B, U))] * 2)


# -------------------------------------------------------------------- stateful
@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_stateful_carries_state_like_keras(rng, kind, go_backwards):
    x1, x2, x3 = random_x(rng), random_x(rng), random_x(rng)
    kwargs = dict(stateful=True, return_state=True, go_backwards=go_backwards)
    theirs, ours = make(K, kind, **kwargs), make(R, kind, **kwargs)
    theirs(np.zeros_like(x1))
    ours(np.zeros_like(x1))
    copy_weights(theirs, ours, rng)
    theirs.reset_states()
    ours.reset_states()
    assert_close(ours(x1), theirs(x1))
    assert_close(ours(x2), theirs(x2))
    assert_close(ours.states, theirs.states)
    theirs.reset_states()
    ours.reset_states()
    assert_close(ours(x3), theirs(x3))
    # The oracle for the second call: a stateless Keras layer started from the first's states.
    fresh = make(K, kind, return_state=True, go_backwards=go_backwards)
    fresh(x1)
    fresh.set_weights(theirs.get_weights())
    first_states = fresh(x1)[1:]
    ours.reset_states()
    ours(x1)
    assert_close(ours(x2), fresh(x2, initial_state=first_states))


# --------------------------------------------------------------------- dropout
@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("dropout,recurrent_dropout", [(0.3, 0.0), (0.0, 0.4), (0.5, 0.5)])
def test_dropout_is_off_at_inference_like_keras(rng, kind, dropout, recurrent_dropout):
    x = random_x(rng)
    theirs, ours = built_pair(
        rng,
        kind,
        x,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        seed=1,
        return_sequences=True,
    )
    assert_close(ours(x, training=False), theirs(x, training=False))
    assert_close(ours(x), theirs(x))
    train = to_numpy(ours(x, training=True))
    assert not np.allclose(train, to_numpy(ours(x)), atol=1e-3)


def probe_weights(kind, units, recurrent):
    """Weights under which only the candidate block matters, so Keras' per-gate dropout
    masks and rnnkit's one mask per input give the same statistics.

    LSTM: i, o ≈ 1 and f ≈ 0, so h_t = tanh(tanh(x_t W_c + h_{t-1} U_c + b_c)).
    GRU: z ≈ 0 and r ≈ 1, so h_t = tanh(x_t W_h + h_{t-1} U_h + b_h).
    The block read is the identity: W_c = I for input dropout, U_c = I (with b_c = 1)
    for recurrent dropout.
    """
    gates = GATES[kind]
    eye, zero = np.eye(units, dtype=np.float32), np.zeros((units, units), np.float32)
    big = np.full(units, 30.0, np.float32)
    if kind == "lstm":  # blocks i, f, c, o
        bias = np.concatenate([big, -big, np.full(units, float(recurrent)), big])
        block = 2
    else:  # blocks z, r, h
        bias = np.concatenate([-big, big, np.full(units, float(recurrent))])
        block = 2
    kernel = [zero] * gates
    recurrent_kernel = [zero] * gates
    (recurrent_kernel if recurrent else kernel)[block] = eye
    weights = [np.concatenate(kernel, axis=1), np.concatenate(recurrent_kernel, axis=1)]
    if kind == "gru":
        return weights + [np.stack([bias, np.zeros_like(bias)])]
    return weights + [bias]


@pytest.mark.parametrize("module", [K, R], ids=["keras", "rnnkit"])
@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("recurrent", [False, True], ids=["dropout", "recurrent_dropout"])
def test_dropout_statistics_match_keras(module, kind, recurrent):
    """Keras draws one mask per gate, rnnkit one per input/state (a documented difference),
    so compare what both guarantee: the same units of a sequence are dropped at every step,
    the drop rate, and inverted scaling by 1 / (1 - rate)."""
    rate, units, steps = 0.4, 6, 3
    squash = np.tanh if kind == "lstm" else (lambda v: v)  # LSTM's extra tanh on c
    arg = "recurrent_dropout" if recurrent else "dropout"
    layer = make(module, kind, units=units, return_sequences=True, **{arg: rate})
    layer(np.zeros((1, 1, units), np.float32))
    layer.set_weights(probe_weights(kind, units, recurrent))
    x = np.full((100, steps, units), 0.5, np.float32)
    outs = np.concatenate([to_numpy(layer(x, training=True)) for _ in range(2)])
    kept = 1.0 / (1.0 - rate)
    if recurrent:
        first = squash(np.tanh(1.0))  # h_1: h_0 = 0, nothing to drop
        np.testing.assert_allclose(outs[:, 0], first, atol=1e-5)
        dropped = np.isclose(outs[:, 1], first, atol=1e-5)
        assert np.allclose(outs[:, 1][~dropped], squash(np.tanh(1.0 + kept * first)), atol=1e-5)
        # The state mask is the same at every step: step 2 drops where step 1 dropped.
        np.testing.assert_allclose(outs[:, 2][dropped], first, atol=1e-5)
    else:
        dropped = np.isclose(outs[:, 0], squash(0.0), atol=1e-5)
        assert np.allclose(outs[:, 0][~dropped], squash(np.tanh(0.5 * kept)), atol=1e-5)
        for t in range(1, steps):
            np.testing.assert_allclose(outs[:, t], outs[:, 0], atol=1e-5)
    assert abs(dropped.mean() - rate) < 0.05
    no_dropout = to_numpy(layer(x, training=False))
    assert not np.allclose(no_dropout, outs[: len(x)], atol=1e-3)
    assert not np.array_equal(outs[: len(x)], outs[len(x) :])  # new masks for each call


# ---------------------------------------------------------------- regularizers
@pytest.mark.parametrize("kind", KIND_IDS)
def test_weight_regularizer_losses_match_keras(rng, kind):
    kwargs = dict(kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l2")
    x = random_x(rng)
    theirs, ours = built_pair(rng, kind, x, **kwargs)
    want, got = [to_numpy(v) for v in theirs.losses], [to_numpy(v) for v in ours.losses]
    assert len(got) == len(want) == 3
    assert_close(got, want)


@pytest.mark.parametrize("kind", KIND_IDS)
def test_activity_regularizer_loss_matches_keras(rng, kind):
    """Keras' LSTM and GRU keep `activity_regularizer` (its SimpleRNN drops it)."""
    x = random_x(rng)
    theirs, ours = built_pair(rng, kind, x, activity_regularizer="l2", kernel_regularizer="l1")
    theirs(x)
    ours(x)
    want, got = [to_numpy(v) for v in theirs.losses], [to_numpy(v) for v in ours.losses]
    assert len(got) == len(want) == 2
    assert_close(got, want)  # in Keras' order: the activity penalty, then the weights'


@pytest.mark.parametrize("kind", KIND_IDS)
def test_constraints_project_like_keras(rng, kind):
    names = ("kernel", "recurrent", "bias")
    constraints = ("non_neg", "max_norm", "unit_norm")
    kwargs = {f"{n}_constraint": c for n, c in zip(names, constraints)}
    x = random_x(rng)
    theirs, ours = built_pair(rng, kind, x, **kwargs)
    ours.apply_constraints()
    cell = theirs.cell
    variables = (cell.kernel, cell.recurrent_kernel, cell.bias)
    want = [to_numpy(v.constraint(v.value)) for v in variables]
    assert_close(ours.get_weights(), want)


@pytest.mark.parametrize("kind", KIND_IDS)
def test_keras_backend_switches_are_accepted(rng, kind):
    """`implementation=1` and `use_cudnn=False` choose Keras' code paths, not the math."""
    x = random_x(rng)
    theirs, ours = built_pair(
        rng, kind, x, implementation=1, use_cudnn=False, dropout=0.2, return_sequences=True
    )
    assert_close(ours(x), theirs(x))


# ---------------------------------------------------------------------- config
CONFIGS = [
    {},
    {"activation": "relu", "recurrent_activation": "hard_sigmoid", "use_bias": False},
    {"return_sequences": True, "return_state": True, "go_backwards": True, "unroll": True},
    {"dropout": 0.2, "recurrent_dropout": 0.1, "seed": 3},
    {"kernel_regularizer": "l2", "recurrent_regularizer": "l1", "bias_regularizer": "l1"},
    {"kernel_initializer": "he_normal", "bias_initializer": "ones"},
    {"stateful": True},
]
CONFIG_IDS = [",".join(c) or "defaults" for c in CONFIGS]
PLAIN_KEYS = (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "dropout",
    "recurrent_dropout",
    "seed",
    "name",
    "trainable",
    "zero_output_for_mask",
)


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("kwargs", CONFIGS, ids=CONFIG_IDS)
def test_config_matches_keras_and_round_trips(rng, kind, kwargs):
    theirs, ours = make(K, kind, **kwargs), make(R, kind, **kwargs)
    want, config = theirs.get_config(), ours.get_config()
    assert sorted(config) == sorted(want)
    for key in PLAIN_KEYS + ("unit_forget_bias", "reset_after"):
        assert config.get(key) == want.get(key), key
    x = random_x(rng)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    for rebuilt in (
        type(ours).from_config(config),
        R.deserialize(R.serialize(ours)),
    ):
        assert type(rebuilt) is type(ours)
        assert rebuilt.get_config() == config
        rebuilt(x)
        rebuilt.set_weights(ours.get_weights())
        if kwargs.get("stateful"):
            for layer in (theirs, rebuilt):
                layer.reset_states()
        assert_close(rebuilt(x), theirs(x))


@pytest.mark.parametrize("kind", KIND_IDS)
def test_cell_config_round_trips(kind):
    extra = KINDS[kind][1]
    cell = getattr(R, CELLS[kind])(U, dropout=0.1, activation="relu", **extra)
    want = getattr(K, CELLS[kind])(U, dropout=0.1, activation="relu", **extra).get_config()
    config = cell.get_config()
    for key in ("units", "activation", "recurrent_activation", "dropout", "use_bias"):
        assert config[key] == want[key], key
    assert R.deserialize(R.serialize(cell)).get_config() == config
    assert type(cell).from_config(config).get_config() == config


# --------------------------------------------------------------- cells and RNN
@pytest.mark.parametrize("kind", KIND_IDS)
def test_cell_step_matches_keras(rng, kind):
    extra = KINDS[kind][1]
    x_t = rng.normal(size=(B, D)).astype(np.float32)
    states = torch_list([rng.normal(size=(B, U)).astype(np.float32) for _ in range(STATES[kind])])
    theirs = getattr(K, CELLS[kind])(U, **extra)
    ours = getattr(R, CELLS[kind])(U, **extra)
    theirs(x_t, states)
    ours(torch.from_numpy(x_t), states)
    copy_weights(theirs, ours, rng)
    want, got = theirs(x_t, states), ours(torch.from_numpy(x_t), states)
    assert_close(got[0], want[0])
    assert_close(list(got[1]), list(want[1]))


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_rnn_of_cell_matches_keras_and_the_layer(rng, kind, go_backwards):
    extra = KINDS[kind][1]
    x = random_x(rng)
    kwargs = dict(return_sequences=True, return_state=True, go_backwards=go_backwards)
    theirs = K.RNN(getattr(K, CELLS[kind])(U, **extra), **kwargs)
    ours = R.RNN(getattr(R, CELLS[kind])(U, **extra), **kwargs)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    assert ours.count_params() == theirs.count_params()
    assert_close(ours(x), theirs(x))
    layer = make(R, kind, **kwargs)
    layer(x)
    layer.set_weights(ours.get_weights())
    assert_close(layer(x), theirs(x))


@pytest.mark.parametrize("kind", KIND_IDS)
def test_float64_layer_matches_keras(rng, kind):
    x = random_x(rng)
    theirs, ours = built_pair(rng, kind, x, dtype="float64", return_sequences=True)
    assert [w.dtype for w in ours.get_weights()] == [w.dtype for w in theirs.get_weights()]
    want, got = theirs(x), ours(x)
    assert to_numpy(got).dtype == to_numpy(want).dtype == np.float64
    assert_close(got, want, atol=1e-6)


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_cell_gradcheck_float64(rng, kind, use_bias):
    """Gradients of one step w.r.t. input, states and every weight, against finite differences."""
    extra = KINDS[kind][1]
    cell = getattr(R, CELLS[kind])(3, dtype="float64", use_bias=use_bias, **extra)
    cell.build((2, 2))
    params = list(cell.parameters())
    with torch.no_grad():
        for p in params:
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.5, size=p.shape)))
    x_t = torch.from_numpy(rng.normal(size=(2, 2))).requires_grad_()
    states = [
        torch.from_numpy(rng.normal(size=(2, 3))).requires_grad_() for _ in range(STATES[kind])
    ]

    def step(x_t, *tensors):
        y, new_states = cell.call(x_t, list(tensors[: len(states)]))
        return (y, *new_states)

    assert torch.autograd.gradcheck(step, (x_t, *states, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_gradients_match_keras(rng, kind, masked, go_backwards):
    """The whole loop's gradients w.r.t. the weights equal Keras' (whichever path runs)."""
    x = random_x(rng)
    mask = torch.from_numpy(np.array(MASKED_IDS["gap"]) != 0) if masked else None
    theirs, ours = built_pair(rng, kind, x, return_sequences=True, go_backwards=go_backwards)
    k_out = theirs(torch.from_numpy(x), mask=mask)
    r_out = ours(torch.from_numpy(x), mask=mask)
    weight = torch.from_numpy(rng.normal(size=r_out.shape).astype(np.float32))
    (k_out * weight).sum().backward()
    (r_out * weight).sum().backward()
    want = [to_numpy(v.value.grad) for v in theirs.trainable_weights]
    got = [to_numpy(p.grad) for p in ours.trainable_weights]
    assert_close(got, want, atol=1e-4)
