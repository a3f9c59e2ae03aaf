"""rnnkit `Sequential` and functional `Model` against Keras 3 (torch backend).

Every model is written once, as a function of the library (`lib.L` is the layers module),
and built in both. The tests compare parameter counts, the `get_weights()` layout,
`predict` after copying the Keras weights over, `model.summary()`, `model.layers`,
`get_layer(name)` and `count_params()`.
"""

from types import SimpleNamespace

import keras
import numpy as np
import pytest
from conftest import (
    assert_close,
    capture_summary,
    copy_weights,
    parse_summary,
    to_numpy,
    weight_shapes,
)

import rnnkit

KERAS = SimpleNamespace(
    name="keras", L=keras.layers, Model=keras.Model, Sequential=keras.Sequential
)
RNNKIT = SimpleNamespace(
    name="rnnkit", L=rnnkit.layers, Model=rnnkit.Model, Sequential=rnnkit.Sequential
)

B, T, D = 6, 5, 3
VOCAB = 12


def token_ids(rng):
    ids = rng.integers(1, VOCAB, size=(B, T)).astype("int32")
    ids[0, 3:] = 0  # right padding
    ids[1, :2] = 0  # left padding
    ids[2, :] = 0  # nothing but padding
    ids[3, 2] = 0  # a hole in the middle
    return ids


def float_steps(rng):
    return rng.normal(size=(B, T, D)).astype(np.float32)


def padded_steps(rng):
    x = float_steps(rng)
    x[0, 3:] = 0.0
    x[1, :2] = 0.0
    x[2, :] = 0.0
    return x


# ------------------------------------------------------------------ the models
def stacked_embedding(lib):
    L = lib.L
    return lib.Sequential(
        [
            L.Input(shape=(T,), dtype="int32"),
            L.Embedding(VOCAB, 4, mask_zero=True),
            L.SimpleRNN(5, return_sequences=True),
            L.SimpleRNN(3),
            L.Dense(2),
        ]
    )


def many_to_many(lib):
    L = lib.L
    return lib.Sequential(
        [
            L.Input(shape=(T, D)),
            L.SimpleRNN(4, return_sequences=True),
            L.TimeDistributed(L.Dense(2, activation="sigmoid")),
        ]
    )


def one_to_many(lib):
    L = lib.L
    return lib.Sequential(
        [
            L.Input(shape=(D,)),
            L.Dense(4, activation="relu"),
            L.RepeatVector(T),
            L.SimpleRNN(3, return_sequences=True),
            L.TimeDistributed(L.Dense(2)),
        ]
    )


def masking_many_to_many(lib):
    L = lib.L
    return lib.Sequential(
        [
            L.Input(shape=(T, D)),
            L.Masking(mask_value=0.0),
            L.SimpleRNN(4, return_sequences=True, go_backwards=True),
            L.SimpleRNN(3, return_sequences=True),
            L.TimeDistributed(L.Dense(2)),
        ]
    )


def two_inputs_two_outputs_shared(lib):
    L = lib.L
    a, b = L.Input(shape=(T, D), name="a"), L.Input(shape=(T, D), name="b")
    shared = L.SimpleRNN(4)
    ha, hb = shared(a), shared(b)
    joined = L.Concatenate()([ha, hb])
    score = L.Dense(1, activation="sigmoid")(joined)
    label = L.Dense(3, activation="softmax")(hb)
    return lib.Model(inputs=[a, b], outputs=[score, label])


def branches_add_flatten(lib):
    L = lib.L
    inputs = L.Input(shape=(T, D))
    seq = L.SimpleRNN(4, return_sequences=True)(inputs)
    seq = L.Dropout(0.5)(seq)
    flat = L.Dense(3)(L.Flatten()(seq))
    last = L.Dense(3)(L.SimpleRNN(2, activation="relu")(inputs))
    out = L.Activation("tanh")(L.Add()([flat, last]))
    return lib.Model(inputs, out)


def encoder_decoder(lib):
    L = lib.L
    enc_in, dec_in = L.Input(shape=(T, D)), L.Input(shape=(T - 1, 2))
    _, state = L.SimpleRNN(4, return_state=True)(enc_in)
    dec = L.SimpleRNN(4, return_sequences=True)(dec_in, initial_state=state)
    out = L.TimeDistributed(L.Dense(2))(dec)
    return lib.Model([enc_in, dec_in], out)


def nested_sequential(lib):
    L = lib.L
    inner = lib.Sequential([L.Input(shape=(T, D)), L.SimpleRNN(4, return_sequences=True)])
    return lib.Sequential([L.Input(shape=(T, D)), inner, L.SimpleRNN(3), L.Dense(1)])


def nested_functional(lib):
    L = lib.L
    x = L.Input(shape=(T, D))
    encoder = lib.Model(x, L.SimpleRNN(4)(x))
    outer_in = L.Input(shape=(T, D))
    return lib.Model(outer_in, L.Dense(2)(encoder(outer_in)))


def concatenated_masks(lib):
    """Keras ORs the masks of concatenated inputs (keras/src/layers/merging/concatenate.py)."""
    L = lib.L
    a, b = L.Input(shape=(T,), dtype="int32"), L.Input(shape=(T,), dtype="int32")
    ea = L.Embedding(VOCAB, 3, mask_zero=True)(a)
    eb = L.Embedding(VOCAB, 2, mask_zero=True)(b)
    seq = L.SimpleRNN(4, return_sequences=True)(L.Concatenate()([ea, eb]))
    return lib.Model([a, b], L.Dense(2)(seq))


def added_masks(lib):
    """Keras ORs the masks of added inputs (keras/src/layers/merging/base_merge.py)."""
    L = lib.L
    a, b = L.Input(shape=(T,), dtype="int32"), L.Input(shape=(T,), dtype="int32")
    ha = L.SimpleRNN(4, return_sequences=True)(L.Embedding(VOCAB, 3, mask_zero=True)(a))
    hb = L.SimpleRNN(4, return_sequences=True)(L.Embedding(VOCAB, 2, mask_zero=True)(b))
    return lib.Model([a, b], L.Dense(1)(L.SimpleRNN(3)(L.Add()([ha, hb]))))


def averaged_ensemble(lib):
    """Two recurrent branches averaged: how `rnnkit forecast --ensemble` saves its members."""
    L = lib.L
    i = L.Input(shape=(T, D))
    a = L.Dense(2)(L.GRU(3)(i))
    b = L.Dense(2)(L.SimpleRNN(4)(i))
    return lib.Model(i, L.Average()([a, b]))


def nested_embedding_mask(lib):
    """The mask made inside a nested model reaches the layers after it."""
    L = lib.L
    inner = lib.Sequential(
        [L.Input(shape=(T,), dtype="int32"), L.Embedding(VOCAB, 3, mask_zero=True)]
    )
    return lib.Sequential(
        [L.Input(shape=(T,), dtype="int32"), inner, L.SimpleRNN(4, return_sequences=True)]
    )


MODELS = {
    "stacked_embedding": (stacked_embedding, token_ids),
    "many_to_many": (many_to_many, float_steps),
    "one_to_many": (one_to_many, lambda rng: rng.normal(size=(B, D)).astype(np.float32)),
    "masking_many_to_many": (masking_many_to_many, padded_steps),
    "two_inputs_two_outputs_shared": (
        two_inputs_two_outputs_shared,
        lambda rng: [float_steps(rng), float_steps(rng)],
    ),
    "branches_add_flatten": (branches_add_flatten, float_steps),
    "encoder_decoder": (
        encoder_decoder,
        lambda rng: [float_steps(rng), rng.normal(size=(B, T - 1, 2)).astype(np.float32)],
    ),
    "nested_sequential": (nested_sequential, float_steps),
    "nested_functional": (nested_functional, float_steps),
    "concatenated_masks": (concatenated_masks, lambda rng: [token_ids(rng), token_ids(rng)]),
    "added_masks": (added_masks, lambda rng: [token_ids(rng), token_ids(rng)]),
    "averaged_ensemble": (averaged_ensemble, float_steps),
    "nested_embedding_mask": (nested_embedding_mask, token_ids),
}


def build_pair(name):
    """The same model in both libraries, with automatic names lined up."""
    make = MODELS[name][0]
    keras.utils.clear_session(free_memory=False)
    theirs = make(KERAS)
    rnnkit.utils.clear_session()
    ours = make(RNNKIT)
    return theirs, ours


@pytest.fixture(params=sorted(MODELS))
def model_name(request):
    return request.param


def test_param_counts_match_keras(model_name):
    theirs, ours = build_pair(model_name)
    assert ours.count_params() == theirs.count_params()
    assert sum(int(np.prod(s)) for s in weight_shapes(ours)) == theirs.count_params()


def test_weight_shapes_and_order_match_keras(model_name):
    theirs, ours = build_pair(model_name)
    assert weight_shapes(ours) == weight_shapes(theirs)
    assert len(ours.trainable_weights) == len(theirs.trainable_weights)
    assert len(ours.non_trainable_weights) == len(theirs.non_trainable_weights)


def test_predict_matches_keras(model_name, rng):
    theirs, ours = build_pair(model_name)
    copy_weights(theirs, ours, rng)
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(got, want)
    x = MODELS[model_name][1](rng)
    want = theirs.predict(x, verbose=0, batch_size=4)
    got = ours.predict(x, batch_size=4)
    assert_close(got, want)
    # A direct call computes the same thing.
    assert_close(ours(x), theirs(x))


def keras_summary(model):
    """Keras' summary without the rows of the ops Keras records to merge masks.

    A functional Keras model that combines masks (Add, Concatenate of masked inputs)
    lists ops such as `not_equal (NotEqual)` and `logical_or (LogicalOr)` in its
    summary; they are not in `model.layers` and have no counterpart to compare with.
    """
    model_line, rows, totals = parse_summary(capture_summary(model))
    names = {layer.name for layer in model.layers}
    rows = rows[:1] + [row for row in rows[1:] if row[0].split(" (")[0] in names]
    return model_line, rows, totals


def test_summary_matches_keras(model_name):
    theirs, ours = build_pair(model_name)
    want_model, want_rows, want_totals = keras_summary(theirs)
    got_model, got_rows, got_totals = parse_summary(capture_summary(ours))
    assert got_model == want_model
    assert [row[:3] for row in got_rows] == [row[:3] for row in want_rows]
    assert got_totals == want_totals
    assert len(want_totals) == 3


# In these, Keras' "Connected to" also names its mask ops (see keras_summary).
MASK_OP_MODELS = {"added_masks", "concatenated_masks"}


@pytest.mark.parametrize("name", sorted(set(MODELS) - MASK_OP_MODELS))
def test_summary_connections_match_keras(name):
    theirs, ours = build_pair(name)
    assert parse_summary(capture_summary(ours))[1] == parse_summary(capture_summary(theirs))[1]


def test_layers_and_get_layer_match_keras(model_name):
    theirs, ours = build_pair(model_name)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    for mine, layer in zip(ours.layers, theirs.layers):
        # Keras' functional models are of class `Functional`, a subclass of `Model`.
        want = {type(layer).__name__}
        if want == {"Functional"}:
            want.add("Model")
        assert type(mine).__name__ in want
    for layer in theirs.layers:
        mine = ours.get_layer(layer.name)
        assert mine.name == layer.name
        assert weight_shapes(mine) == weight_shapes(layer)
        if layer.weights:
            assert mine.count_params() == layer.count_params()
    for index in range(len(theirs.layers)):
        assert ours.get_layer(index=index).name == theirs.get_layer(index=index).name
    with pytest.raises(ValueError, match="no_such_layer"):
        ours.get_layer("no_such_layer")


def test_get_layer_weights_are_the_models_weights(model_name, rng):
    theirs, ours = build_pair(model_name)
    copy_weights(theirs, ours, rng)
    for layer in theirs.layers:
        for got, want in zip(ours.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(got, want)


# ------------------------------------------------------- building without Input
@pytest.mark.parametrize("how", ["build", "call"])
def test_sequential_built_later_matches_keras(rng, how):
    def make(lib):
        return lib.Sequential(
            [lib.L.SimpleRNN(4, return_sequences=True), lib.L.SimpleRNN(2), lib.L.Dense(1)]
        )

    keras.utils.clear_session(free_memory=False)
    theirs = make(KERAS)
    rnnkit.utils.clear_session()
    ours = make(RNNKIT)
    x = float_steps(rng)
    if how == "build":
        theirs.build((None, T, D))
        ours.build((None, T, D))
    else:
        theirs(x)
        ours(x)
    assert ours.count_params() == theirs.count_params()
    assert weight_shapes(ours) == weight_shapes(theirs)
    copy_weights(theirs, ours, rng)
    assert_close(ours.predict(x), theirs.predict(x, verbose=0))
    want = parse_summary(capture_summary(theirs))
    got = parse_summary(capture_summary(ours))
    assert got == want


def test_input_shape_on_first_layer_matches_keras(rng):
    def make(lib):
        model = lib.Sequential()
        model.add(lib.L.SimpleRNN(4, input_shape=(T, D), return_sequences=True))
        model.add(lib.L.SimpleRNN(2))
        model.add(lib.L.Dense(1))
        return model

    keras.utils.clear_session(free_memory=False)
    theirs = make(KERAS)
    rnnkit.utils.clear_session()
    ours = make(RNNKIT)
    assert parse_summary(capture_summary(ours)) == parse_summary(capture_summary(theirs))
    copy_weights(theirs, ours, rng)
    x = float_steps(rng)
    assert_close(ours.predict(x), theirs.predict(x, verbose=0))


# -------------------------------------------------------------------- stateful
def test_stateful_sequential_predict_matches_keras(rng):
    def make(lib):
        L = lib.L
        return lib.Sequential(
            [L.Input(batch_shape=(B, T, D)), L.SimpleRNN(4, stateful=True), L.Dense(1)]
        )

    keras.utils.clear_session(free_memory=False)
    theirs = make(KERAS)
    rnnkit.utils.clear_session()
    ours = make(RNNKIT)
    copy_weights(theirs, ours, rng)
    x1, x2 = float_steps(rng), float_steps(rng)
    first = to_numpy(ours.predict(x1, batch_size=B))
    assert_close(first, theirs.predict(x1, batch_size=B, verbose=0))
    second = to_numpy(ours.predict(x2, batch_size=B))
    assert_close(second, theirs.predict(x2, batch_size=B, verbose=0))
    theirs.layers[0].reset_states()
    ours.layers[0].reset_states()
    assert_close(ours.predict(x1, batch_size=B), first)


# ---------------------------------------------------------------------- losses
def test_model_losses_match_keras(rng):
    def make(lib):
        L = lib.L
        inputs = L.Input(shape=(T, D))
        h = L.SimpleRNN(4, kernel_regularizer="l2", recurrent_regularizer="l1")(inputs)
        out = L.Dense(2, kernel_regularizer="l1", activity_regularizer="l2")(h)
        return lib.Model(inputs, out)

    keras.utils.clear_session(free_memory=False)
    theirs = make(KERAS)
    rnnkit.utils.clear_session()
    ours = make(RNNKIT)
    copy_weights(theirs, ours, rng)
    x = float_steps(rng)
    theirs(x)
    ours(x)
    want = [float(to_numpy(v)) for v in theirs.losses]
    got = [float(to_numpy(v)) for v in ours.losses]
    assert len(want) == 4  # the oracle: one activity penalty, three weight penalties
    np.testing.assert_allclose(sorted(got), sorted(want), rtol=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-5)  # and in Keras' order
