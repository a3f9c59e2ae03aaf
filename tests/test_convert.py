"""`rnnkit.convert` against `torch.nn.RNN/LSTM/GRU` (and Keras 3 through rnnkit).

`from_torch` is checked against the torch module it read; `to_torch` against Keras: a
Keras layer with random weights is copied into rnnkit, converted, and the torch module
must compute what the Keras layer computes.
"""

import keras
import numpy as np
import pytest
import torch
from conftest import assert_close, copy_weights, to_numpy

from rnnkit import convert
from rnnkit import layers as R

K = keras.layers

B, T, D, H = 3, 6, 4, 5

# name -> (torch class and arguments, rnnkit/Keras class name and arguments, states)
KINDS = {
    "rnn_tanh": ((torch.nn.RNN, {}), ("SimpleRNN", {}), 1),
    "rnn_relu": (
        (torch.nn.RNN, {"nonlinearity": "relu"}),
        ("SimpleRNN", {"activation": "relu"}),
        1,
    ),
    "lstm": ((torch.nn.LSTM, {}), ("LSTM", {}), 2),
    "gru": ((torch.nn.GRU, {}), ("GRU", {}), 1),
}
KIND_IDS = sorted(KINDS)


def random_x(rng, batch=B, steps=T, features=D, dtype=np.float32):
    return torch.from_numpy(rng.normal(size=(batch, steps, features)).astype(dtype))


def torch_module(kind, bias=True, bidirectional=False, **kwargs):
    cls, extra = KINDS[kind][0]
    torch.manual_seed(0)
    module = cls(D, H, batch_first=True, bias=bias, bidirectional=bidirectional, **extra, **kwargs)
    with torch.no_grad():  # torch's default init is small; wider weights exercise more
        for p in module.parameters():
            p.uniform_(-0.6, 0.6)
    return module


def layer(module, kind, **kwargs):
    name, extra = KINDS[kind][1]
    return getattr(module, name)(H, **extra, **kwargs)


def torch_states(result, kind):
    """torch's `(output, h_n)` or `(output, (h_n, c_n))` -> `[h_n[0], c_n[0]]` per direction."""
    finals = result[1] if kind == "lstm" else (result[1],)
    directions = finals[0].shape[0]
    return [f[d] for d in range(directions) for f in finals]


# ------------------------------------------------------------------ from_torch
@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_matches_the_module(rng, kind, bias):
    module = torch_module(kind, bias=bias)
    ours = layer(R, kind, return_sequences=True, return_state=True, use_bias=bias)
    convert.from_torch(ours, module)
    x = random_x(rng)
    want = module(x)
    got = ours(x)
    assert_close(got[0], want[0])
    assert_close(got[1:], torch_states(want, kind))


@pytest.mark.parametrize("kind", KIND_IDS)
def test_from_torch_with_initial_states_matches_the_module(rng, kind):
    module = torch_module(kind)
    ours = layer(R, kind, return_sequences=True, return_state=True)
    convert.from_torch(ours, module)
    x = random_x(rng)
    states = [random_x(rng, 1, B, H)[0] for _ in range(KINDS[kind][2])]  # (B, H) each
    torch_init = tuple(s[None] for s in states) if kind == "lstm" else states[0][None]
    want = module(x, torch_init)
    got = ours(x, initial_state=states)
    assert_close(got[0], want[0])
    assert_close(got[1:], torch_states(want, kind))


@pytest.mark.parametrize("kind", KIND_IDS)
def test_from_torch_into_a_built_layer(rng, kind):
    x = random_x(rng)
    module = torch_module(kind)
    ours = layer(R, kind)
    ours(x)
    convert.from_torch(ours, module)
    assert_close(ours(x), module(x)[0][:, -1])


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("return_state", [False, True])
def test_bidirectional_from_torch_matches_the_module(rng, kind, return_state):
    module = torch_module(kind, bidirectional=True)
    ours = R.Bidirectional(layer(R, kind, return_sequences=True, return_state=return_state))
    convert.from_torch(ours, module)
    x = random_x(rng)
    want = module(x)
    got = ours(x)
    if return_state:
        assert_close(got[0], want[0])  # both: forward then backward features, in time order
        assert_close(got[1:], torch_states(want, kind))
    else:
        assert_close(got, want[0])


def test_from_torch_float64(rng):
    module = torch_module("lstm").double()
    ours = R.LSTM(H, return_sequences=True, dtype="float64")
    convert.from_torch(ours, module)
    x = random_x(rng, dtype=np.float64)
    got = ours(x)
    assert got.dtype == torch.float64
    assert_close(got, module(x)[0], atol=1e-12)


# -------------------------------------------------------------------- to_torch
@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_to_torch_computes_what_keras_computes(rng, kind, use_bias):
    x = random_x(rng)
    theirs = layer(K, kind, return_sequences=True, return_state=True, use_bias=use_bias)
    ours = layer(R, kind, return_sequences=True, return_state=True, use_bias=use_bias)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    module = convert.to_torch(ours)
    assert isinstance(module, KINDS[kind][0][0])
    assert module.batch_first and module.num_layers == 1 and module.bias == use_bias
    want = theirs(x)
    got = module(x)
    assert_close(got[0], want[0])
    assert_close(torch_states(got, kind), list(want[1:]))


@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("merge_mode", ["concat", None], ids=["concat", "None"])
def test_bidirectional_to_torch_computes_what_keras_computes(rng, kind, merge_mode):
    x = random_x(rng)
    kwargs = dict(return_sequences=True, return_state=True)
    theirs = K.Bidirectional(layer(K, kind, **kwargs), merge_mode=merge_mode)
    ours = R.Bidirectional(layer(R, kind, **kwargs), merge_mode=merge_mode)
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    module = convert.to_torch(ours)
    assert module.bidirectional
    want = theirs(x)
    got = module(x)
    n_out = 2 if merge_mode is None else 1
    expected = want[0] if merge_mode else torch.cat([want[0], want[1]], dim=-1)
    assert_close(got[0], expected)
    assert_close(torch_states(got, kind), list(want[n_out:]))


def test_to_torch_float64(rng):
    x = random_x(rng, dtype=np.float64)
    theirs = K.GRU(H, return_sequences=True, dtype="float64")
    ours = R.GRU(H, return_sequences=True, dtype="float64")
    theirs(x)
    ours(x)
    copy_weights(theirs, ours, rng)
    module = convert.to_torch(ours)
    assert module.weight_ih_l0.dtype == torch.float64
    # Keras' float64 path keeps a float32 rounding somewhere (see the SimpleRNN tests).
    assert_close(module(x)[0], theirs(x), atol=1e-6)


# ---------------------------------------------------------- the weight helpers
@pytest.mark.parametrize("kind", KIND_IDS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_weights_round_trip_keras_torch_keras(rng, kind, use_bias):
    ours = layer(R, kind, use_bias=use_bias)
    ours(random_x(rng))
    keras_like = layer(K, kind, use_bias=use_bias)
    keras_like(random_x(rng))
    copy_weights(keras_like, ours, rng)
    as_torch = convert.keras_to_torch_weights(ours)
    gates = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}[kind]
    assert {k: v.shape for k, v in as_torch.items()} == {
        "weight_ih": (gates * H, D),
        "weight_hh": (gates * H, H),
        "bias_ih": (gates * H,),
        "bias_hh": (gates * H,),
    }
    back = convert.torch_to_keras_weights(
        ours,
        *(torch.from_numpy(as_torch[k]) for k in ("weight_ih", "weight_hh")),
        *(torch.from_numpy(as_torch[k]) for k in ("bias_ih", "bias_hh")),
    )
    assert len(back) == len(keras_like.get_weights())
    for got, want in zip(back, keras_like.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_gru_gate_order_is_swapped_for_torch(rng):
    """Keras' GRU blocks are z, r, h; torch's are r, z, n."""
    ours = R.GRU(H)
    ours(random_x(rng))
    kernel = ours.get_weights()[0]  # (D, 3H)
    z, r, h = np.split(kernel.T, 3)
    np.testing.assert_array_equal(
        convert.keras_to_torch_weights(ours)["weight_ih"], np.concatenate([r, z, h])
    )


def test_lstm_biases_add_up(rng):
    """Keras has one LSTM bias; torch adds bias_ih and bias_hh."""
    module = torch_module("lstm")
    weights = convert.torch_to_keras_weights(
        R.LSTM(H), module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0
    )
    np.testing.assert_allclose(
        weights[2], to_numpy(module.bias_ih_l0 + module.bias_hh_l0), rtol=0, atol=1e-7
    )


def test_torch_biases_may_be_missing(rng):
    module = torch_module("gru", bias=False)
    weights = convert.torch_to_keras_weights(R.GRU(H), module.weight_ih_l0, module.weight_hh_l0)
    np.testing.assert_array_equal(weights[2], np.zeros((2, 3 * H), np.float32))


# ---------------------------------------------------------------------- errors
def built(layer_, rng):
    layer_(random_x(rng))
    return layer_


def test_gru_reset_before_cannot_go_to_torch(rng):
    ours = built(R.GRU(H, reset_after=False), rng)
    for call in (
        lambda: convert.to_torch(ours),
        lambda: convert.keras_to_torch_weights(ours),
        lambda: convert.from_torch(ours, torch_module("gru")),
    ):
        with pytest.raises(ValueError, match=r"reset_after=False.*GRU\(\.\.\., reset_after=True\)"):
            call()


@pytest.mark.parametrize(
    "kind,module_kind",
    [("lstm", "gru"), ("gru", "lstm"), ("rnn_tanh", "lstm"), ("lstm", "rnn_tanh")],
)
def test_wrong_torch_module_type(kind, module_kind):
    expected = KINDS[kind][0][0].__name__
    got = KINDS[module_kind][0][0].__name__
    with pytest.raises(TypeError, match=rf"takes weights from torch.nn.{expected}; got {got}"):
        convert.from_torch(layer(R, kind), torch_module(module_kind))


def test_not_a_recurrent_module_or_layer(rng):
    with pytest.raises(TypeError, match=r"takes weights from torch.nn.LSTM; got Linear"):
        convert.from_torch(R.LSTM(H), torch.nn.Linear(D, H))
    with pytest.raises(TypeError, match=r"SimpleRNN, LSTM, GRU.*Dense"):
        convert.to_torch(built(R.Dense(H), rng))


def test_several_torch_layers_are_refused():
    with pytest.raises(ValueError, match=r"num_layers=2; convert one layer at a time"):
        convert.from_torch(R.LSTM(H), torch.nn.LSTM(D, H, num_layers=2, batch_first=True))


def test_time_major_torch_module_is_refused():
    with pytest.raises(ValueError, match=r"batch_first=True"):
        convert.from_torch(R.GRU(H), torch.nn.GRU(D, H))


def test_bidirectional_must_match():
    with pytest.raises(ValueError, match=r"bidirectional=True; use Bidirectional\(layer\)"):
        convert.from_torch(R.LSTM(H), torch_module("lstm", bidirectional=True))
    with pytest.raises(ValueError, match=r"bidirectional=False; use the layer itself"):
        convert.from_torch(R.Bidirectional(R.LSTM(H)), torch_module("lstm"))


def test_proj_size_is_refused():
    module = torch.nn.LSTM(D, H, proj_size=2, batch_first=True)
    with pytest.raises(ValueError, match=r"proj_size > 0"):
        convert.from_torch(R.LSTM(H), module)


def test_activation_must_agree():
    with pytest.raises(ValueError, match=r"activation 'tanh' but the torch.nn.RNN uses 'relu'"):
        convert.from_torch(R.SimpleRNN(H), torch_module("rnn_relu"))


def test_activation_torch_lacks(rng):
    with pytest.raises(ValueError, match=r"torch.nn.RNN supports tanh and relu.*'sigmoid'"):
        convert.to_torch(built(R.SimpleRNN(H, activation="sigmoid"), rng))


def test_go_backwards_cannot_go_to_torch(rng):
    with pytest.raises(ValueError, match=r"go_backwards=True.*flip the input"):
        convert.to_torch(built(R.LSTM(H, go_backwards=True), rng))


def test_unbuilt_layer_cannot_give_weights():
    with pytest.raises(ValueError, match=r"not built; call it on data"):
        convert.keras_to_torch_weights(R.LSTM(H))


def test_no_bias_layer_refuses_torch_biases():
    with pytest.raises(ValueError, match=r"use_bias=False but the torch module has non-zero"):
        convert.from_torch(R.LSTM(H, use_bias=False), torch_module("lstm"))


def test_size_mismatch_is_explained(rng):
    ours = built(R.LSTM(H + 1), rng)
    with pytest.raises(ValueError, match=r"has weights .*; the torch module gives .*Match units"):
        convert.from_torch(ours, torch_module("lstm"))
