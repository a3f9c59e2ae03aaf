"""Model mechanics that have no Keras counterpart to compare with: configs, building, torch use."""

import json

import numpy as np
import pytest
import torch

from rnnkit import Input, Model, Sequential
from rnnkit.layers import (
    GRU,
    LSTM,
    RNN,
    Concatenate,
    Dense,
    Dropout,
    Embedding,
    SimpleRNN,
    SimpleRNNCell,
    TimeDistributed,
    deserialize,
    serialize,
)
from rnnkit.utils import clear_session, set_random_seed


@pytest.fixture(autouse=True)
def _fresh():
    clear_session()
    set_random_seed(0)


def _x(*shape):
    return np.random.default_rng(1).normal(size=shape).astype("float32")


def _rebuilt_predicts_the_same(model, x):
    config = json.loads(json.dumps(model.get_config()))  # must survive JSON
    clone = type(model).from_config(config)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    return clone


def test_sequential_config_round_trip():
    model = Sequential(
        [
            Embedding(20, 4, mask_zero=True, input_shape=(6,)),
            SimpleRNN(5, return_sequences=True, go_backwards=True),
            TimeDistributed(Dense(2, activation="softmax")),
        ]
    )
    ids = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    clone = _rebuilt_predicts_the_same(model, ids)
    assert [type(layer).__name__ for layer in clone.layers] == [
        "Embedding",
        "SimpleRNN",
        "TimeDistributed",
    ]


def test_functional_config_round_trip_with_shared_layer_and_two_outputs():
    a, b = Input(shape=(4, 3), name="a"), Input(shape=(4, 3), name="b")
    shared = SimpleRNN(5, name="shared")
    merged = Concatenate()([shared(a), shared(b)])
    out1, out2 = Dense(1, name="out1")(merged), Dense(2, name="out2")(merged)
    model = Model([a, b], [out1, out2])
    x = [_x(3, 4, 3), _x(3, 4, 3) + 1]
    config = json.loads(json.dumps(model.get_config()))
    clone = Model.from_config(config)
    clone.set_weights(model.get_weights())
    for got, want in zip(clone.predict(x), model.predict(x), strict=True):
        np.testing.assert_array_equal(got, want)
    assert clone.count_params() == model.count_params() == 2 * 0 + 3 * 5 + 25 + 5 + 11 + 22


def test_layer_config_round_trip_keeps_every_argument():
    layer = SimpleRNN(
        4,
        activation="relu",
        use_bias=False,
        dropout=0.25,
        recurrent_dropout=0.5,
        return_sequences=True,
        return_state=True,
        go_backwards=True,
        stateful=True,
        unroll=True,
        seed=3,
        kernel_regularizer="l2",
    )
    clone = deserialize(serialize(layer))
    assert clone.get_config() == layer.get_config() | {"name": clone.name}


def test_generic_rnn_with_cell_round_trips():
    layer = RNN(SimpleRNNCell(3), return_sequences=True)
    x = _x(2, 5, 4)
    y = layer(x)
    clone = deserialize(serialize(layer))
    clone(x)
    clone.set_weights(layer.get_weights())
    torch.testing.assert_close(clone(x), y)


def test_rnn_over_user_cell_in_a_few_lines():
    class Accumulate(torch.nn.Module):
        """h_t = h_{t-1} + x_t: a cell with no weights, written from scratch."""

        state_size = 2

        def call(self, x_t, states, training=False):
            h = states[0] + x_t
            return h, [h]

    x = _x(3, 6, 2)
    out = RNN(Accumulate(), return_sequences=True)(x)
    np.testing.assert_allclose(out.numpy(), np.cumsum(x, axis=1), rtol=1e-6)


def test_sequential_add_pop_build():
    model = Sequential()
    model.add(SimpleRNN(3))
    model.add(Dense(2))
    assert not model.built
    model.build((None, 7, 4))
    assert model.output_shape == (None, 2)
    popped = model.pop()
    assert popped.name == "dense"
    assert model.output_shape == (None, 3)
    assert model.count_params() == 4 * 3 + 9 + 3


def test_sequential_built_by_a_call_still_takes_other_batch_sizes():
    model = Sequential([SimpleRNN(3), Dense(1)])
    model(_x(2, 5, 4))
    assert model.input_shape == (2, 5, 4)  # Keras records the first batch's size
    assert model.predict(_x(7, 5, 4)).shape == (7, 1)


def test_predict_batches_like_one_call():
    model = Sequential([SimpleRNN(3, input_shape=(5, 2)), Dense(1)])
    x = _x(70, 5, 2)
    with torch.no_grad():
        whole = model(x).numpy()
    np.testing.assert_allclose(model.predict(x, batch_size=16), whole, rtol=1e-6)


def test_dict_inputs_by_name():
    a, b = Input(shape=(2,), name="price"), Input(shape=(3,), name="volume")
    model = Model({"price": a, "volume": b}, Dense(1)(Concatenate()([a, b])))
    xa, xb = _x(4, 2), _x(4, 3)
    np.testing.assert_allclose(
        model.predict({"volume": xb, "price": xa}), model.predict([xa, xb]), rtol=1e-6
    )


def test_model_is_a_torch_module_usable_with_a_plain_loop():
    model = Sequential([SimpleRNN(4, input_shape=(5, 1)), Dense(1)])
    x = torch.randn(16, 5, 1)
    y = x.sum(dim=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x, training=True), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first / 2
    assert len(list(model.parameters())) == len(model.get_weights()) == 5


def test_trainable_false_freezes_weights():
    model = Sequential([SimpleRNN(3, input_shape=(4, 2)), Dense(1)])
    model.layers[0].trainable = False
    assert len(model.trainable_weights) == 2
    assert len(model.non_trainable_weights) == 3
    lines = []
    model.summary(print_fn=lines.append)
    text = "".join(lines)
    assert "Trainable params: 4 (16.00 B)" in text
    assert "Non-trainable params: 18 (72.00 B)" in text


def test_dropout_only_when_training():
    layer = Dropout(0.5, seed=1)
    x = torch.ones(1000)
    torch.testing.assert_close(layer(x), x)
    dropped = layer(x, training=True)
    assert 400 < int((dropped == 0).sum()) < 600
    assert set(dropped.unique().tolist()) == {0.0, 2.0}


def test_float64_layers_compute_in_float64():
    layer = SimpleRNN(3, dtype="float64")
    out = layer(np.ones((2, 4, 3)))
    assert out.dtype == torch.float64
    assert layer.get_weights()[0].dtype == np.float64


def test_gradcheck_simple_rnn_float64():
    layer = SimpleRNN(3, dtype="float64", return_sequences=True)
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    layer(x)
    assert torch.autograd.gradcheck(lambda t: layer(t), (x,))


def test_custom_objects_reach_nested_layers():
    from rnnkit.layers import RNNCell

    class Accumulate(RNNCell):
        state_size = 2

        def call(self, x_t, states, training=False):
            h = states[0] + x_t
            return h, [h]

    model = Sequential([RNN(Accumulate(), input_shape=(4, 2)), Dense(1)])
    config = json.loads(json.dumps(model.get_config()))
    with pytest.raises(ValueError, match="Unknown layer class 'Accumulate'"):
        Sequential.from_config(config)
    clone = Sequential.from_config(config, custom_objects={"Accumulate": Accumulate})
    assert type(clone.layers[0].cell) is Accumulate


def test_predict_one_batch_and_many_batches_agree_for_two_outputs():
    import numpy as np

    from rnnkit import Input, Model
    from rnnkit.layers import Dense, SimpleRNN

    i = Input(shape=(5, 3))
    h = SimpleRNN(4)(i)
    model = Model(i, [Dense(2)(h), Dense(1)(h)])
    x = np.random.default_rng(0).normal(size=(10, 5, 3)).astype("float32")
    whole = model.predict(x)  # one batch (the default batch size is 32)
    pieces = model.predict(x, batch_size=3)
    assert isinstance(whole, list) and isinstance(pieces, list)
    for a, b in zip(whole, pieces):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(model.predict(x[:1])[0], whole[0][:1], rtol=1e-6)


@pytest.mark.parametrize("stateful", [False, True])
def test_predict_before_fit_leaves_everything_trainable(stateful):
    """predict runs in torch.inference_mode once the model is built and keeps no states, so
    nothing it makes (weights built on the first call, carried states) is an inference tensor
    that training could not use."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    model = Sequential([GRU(4, stateful=stateful, return_sequences=True), LSTM(4), Dense(1)])
    first = model.predict(x, batch_size=8)  # builds the model
    model.predict(x, batch_size=8)
    assert not any(p.is_inference() for p in model.parameters())
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.allclose(model.predict(x, batch_size=8), first)
