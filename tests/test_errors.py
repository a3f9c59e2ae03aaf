"""Every mistake a user can make with layers and models gets a clear message."""

import numpy as np
import pytest
import torch

from rnnkit import Input, Model, Sequential
from rnnkit.layers import (
    RNN,
    Dense,
    Dropout,
    Embedding,
    Layer,
    RepeatVector,
    SimpleRNN,
    TimeDistributed,
    deserialize,
)
from rnnkit.utils import clear_session, set_random_seed


@pytest.fixture(autouse=True)
def _fresh_names():
    clear_session()


def test_rnn_missing_time_axis_names_layer_and_fix():
    rnn = SimpleRNN(3)
    rnn(np.zeros((2, 4, 5), dtype="float32"))
    with pytest.raises(
        ValueError,
        match=r"SimpleRNN 'simple_rnn' expects input \(batch, "
        r"timesteps, features=5\); got shape \(32, 5\)\. Missing the time axis\? "
        r"Try x\.reshape\(32, 1, 5\)",
    ):
        rnn(np.zeros((32, 5), dtype="float32"))


def test_rnn_wrong_feature_size():
    rnn = SimpleRNN(3)
    rnn(np.zeros((2, 4, 5), dtype="float32"))
    with pytest.raises(ValueError, match=r"features=5\); got shape \(2, 4, 6\).*built for 5"):
        rnn(np.zeros((2, 4, 6), dtype="float32"))


def test_rnn_rank_four():
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4, 5\).*reshape\(batch, timesteps"):
        SimpleRNN(3)(np.zeros((2, 3, 4, 5), dtype="float32"))


def test_rnn_wrong_rank_in_functional_model():
    with pytest.raises(ValueError, match=r"SimpleRNN 'simple_rnn' expects input .*\(None, 5\)"):
        SimpleRNN(3)(Input(shape=(5,)))


def test_rnn_zero_timesteps():
    with pytest.raises(ValueError, match="0 time steps"):
        SimpleRNN(3)(np.zeros((2, 0, 5), dtype="float32"))


@pytest.mark.parametrize("units", [0, -3, 2.5, "8", True])
def test_rnn_bad_units(units):
    with pytest.raises(ValueError, match=r"units .* positive integer; got"):
        SimpleRNN(units)


@pytest.mark.parametrize("arg", ["dropout", "recurrent_dropout"])
def test_rnn_dropout_out_of_range(arg):
    with pytest.raises(ValueError, match=rf"{arg} .* \[0, 1\]; got 1.5"):
        SimpleRNN(3, **{arg: 1.5})


def test_rnn_unknown_argument_is_named():
    with pytest.raises(
        TypeError, match=r"SimpleRNN\(\) got unexpected argument\(s\) retrun_sequences"
    ):
        SimpleRNN(3, retrun_sequences=True)


def test_initial_state_wrong_shape():
    rnn = SimpleRNN(3)
    x = np.zeros((2, 4, 5), dtype="float32")
    with pytest.raises(
        ValueError, match=r"state 0 must have shape \(batch=2, units=3\); got \(2, 4\)"
    ):
        rnn(x, initial_state=[np.zeros((2, 4), dtype="float32")])


def test_initial_state_wrong_count():
    with pytest.raises(ValueError, match=r"has 1 state\(s\).*initial_state has 2"):
        SimpleRNN(3)(
            np.zeros((2, 4, 5), dtype="float32"), initial_state=[np.zeros((2, 3)), np.zeros((2, 3))]
        )


def test_stateful_batch_size_change():
    rnn = SimpleRNN(3, stateful=True)
    rnn(np.zeros((2, 4, 5), dtype="float32"))
    with pytest.raises(
        ValueError,
        match=r"stateful and carries states for a batch of 2 .* got a "
        r"batch of 3.*reset_states\(\)",
    ):
        rnn(np.zeros((3, 4, 5), dtype="float32"))
    rnn.reset_states()
    assert rnn(np.zeros((3, 4, 5), dtype="float32")).shape == (3, 3)


def test_reset_states_on_stateless_layer():
    with pytest.raises(ValueError, match="not stateful"):
        SimpleRNN(3).reset_states()


def test_mask_of_wrong_shape():
    with pytest.raises(ValueError, match=r"mask must be \(batch, timesteps\) = \(2, 4\)"):
        SimpleRNN(3)(np.zeros((2, 4, 5), dtype="float32"), mask=np.ones((2, 5), dtype=bool))


def test_rnn_cell_without_state_size():
    with pytest.raises(TypeError, match="state_size"):
        RNN(Dense(3))


def test_embedding_rejects_non_integer_ids():
    with pytest.raises(
        TypeError,
        match=r"Embedding 'embedding' expects integer token ids; got "
        r"dtype float32 with non-integer values such as \[0\.5",
    ):
        Embedding(10, 4)(np.array([[0.5, 1.0]]))


def test_embedding_accepts_integral_floats_like_keras():
    out = Embedding(10, 4)(np.array([[1.0, 2.0]]))
    assert out.shape == (1, 2, 4)


def test_embedding_id_out_of_range():
    with pytest.raises(
        ValueError,
        match=r"input_dim=10, so ids must lie in \[0, 9\]; got ids "
        r"from 0 to 12\. Raise input_dim to at least 13",
    ):
        Embedding(10, 4)(np.array([[0, 12]]))


def test_embedding_negative_id():
    with pytest.raises(ValueError, match=r"got ids from -1 to 3"):
        Embedding(10, 4)(np.array([[-1, 3]]))


def test_embedding_bool_ids():
    with pytest.raises(TypeError, match="expects integer token ids; got dtype torch.bool"):
        Embedding(10, 4)(torch.tensor([[True, False]]))


@pytest.mark.parametrize(
    "kwargs", [{"input_dim": 0, "output_dim": 4}, {"input_dim": 10, "output_dim": -1}]
)
def test_embedding_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="must be a positive integer"):
        Embedding(**kwargs)


def test_dense_wrong_feature_size():
    dense = Dense(2)
    dense(np.zeros((4, 3), dtype="float32"))
    with pytest.raises(
        ValueError,
        match=r"Dense 'dense' expects input \(batch, \.\.\., "
        r"features=3\); got shape \(4, 5\)",
    ):
        dense(np.zeros((4, 5), dtype="float32"))


def test_dense_scalar_per_sample():
    with pytest.raises(
        ValueError,
        match=r"Dense 'dense' expects input \(batch, \.\.\., "
        r"features\); got \(4,\)",
    ):
        Dense(2)(np.zeros(4, dtype="float32"))


def test_dropout_rate():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\); got 1.0"):
        Dropout(1.0)


def test_repeat_vector_needs_2d():
    with pytest.raises(
        ValueError,
        match=r"RepeatVector 'repeat_vector' expects input "
        r"\(batch, features\); got \(2, 3, 4\)",
    ):
        RepeatVector(3)(np.zeros((2, 3, 4), dtype="float32"))


def test_time_distributed_needs_time_axis():
    with pytest.raises(
        ValueError,
        match=r"TimeDistributed .* expects input \(batch, timesteps, "
        r"\.\.\.\); got \(2, 3\).*return_sequences=True",
    ):
        TimeDistributed(Dense(1))(np.zeros((2, 3), dtype="float32"))


def test_time_distributed_needs_layer():
    with pytest.raises(TypeError, match="wraps an rnnkit layer"):
        TimeDistributed("dense")


def test_set_weights_wrong_count_and_shape():
    rnn = SimpleRNN(3)
    rnn(np.zeros((1, 2, 5), dtype="float32"))
    with pytest.raises(
        ValueError,
        match=r"has 3 weight\(s\) \(\(5, 3\), \(3, 3\), \(3,\)\); "
        r"set_weights got 2",
    ):
        rnn.set_weights([np.zeros((5, 3)), np.zeros((3, 3))])
    with pytest.raises(
        ValueError,
        match=r"weight 0 \(cell.kernel\) has shape \(5, 3\); "
        r"set_weights got \(3, 5\)",
    ):
        rnn.set_weights([np.zeros((3, 5)), np.zeros((3, 3)), np.zeros(3)])


def test_count_params_unbuilt_model_says_how_to_build():
    model = Sequential([SimpleRNN(3), Dense(1)])
    with pytest.raises(ValueError, match=r"not built yet.*Input\(shape=\(timesteps, features\)\)"):
        model.count_params()


def test_unbuilt_summary_says_how_to_build():
    lines = []
    Sequential([SimpleRNN(3)]).summary(print_fn=lines.append)
    text = " ".join(lines)
    assert "0 (unbuilt)" in text
    assert "model.build((None, timesteps, features))" in " ".join(text.split())


def test_sequential_add_rejects_non_layers():
    with pytest.raises(TypeError, match="Sequential.add takes an rnnkit layer.*got str"):
        Sequential().add("dense")


def test_sequential_second_input():
    model = Sequential([Input(shape=(3, 2))])
    with pytest.raises(ValueError, match="an Input can only be the first entry"):
        model.add(Input(shape=(3, 2)))


def test_model_input_of_wrong_shape():
    inputs = Input(shape=(4, 5))
    model = Model(inputs, SimpleRNN(3)(inputs))
    with pytest.raises(
        ValueError,
        match=r"input 'input_layer' expects shape \(None, 4, 5\).*"
        r"got \(2, 4, 6\)",
    ):
        model(np.zeros((2, 4, 6), dtype="float32"))


def test_model_input_count():
    a, b = Input(shape=(2,), name="a"), Input(shape=(2,), name="b")
    from rnnkit.layers import Concatenate

    model = Model([a, b], Dense(1)(Concatenate()([a, b])))
    with pytest.raises(ValueError, match=r"has 2 inputs \('a', 'b'\); got 1"):
        model([np.zeros((1, 2), dtype="float32")])


def test_model_outputs_need_all_inputs():
    a, b = Input(shape=(2,)), Input(shape=(2,))
    from rnnkit.layers import Add

    with pytest.raises(
        ValueError, match=r"depend on Input 'input_layer_1', which is not in inputs"
    ):
        Model(a, Add()([a, b]))


def test_model_needs_symbolic_tensors():
    with pytest.raises(TypeError, match="must be symbolic tensors"):
        Model(np.zeros((1, 2)), np.zeros((1, 2)))


def test_get_layer_unknown_name():
    model = Sequential([SimpleRNN(3, input_shape=(2, 2))])
    with pytest.raises(ValueError, match=r"no layer named 'lstm'; its layers are: 'simple_rnn'"):
        model.get_layer("lstm")


def test_predict_batch_size():
    model = Sequential([Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.predict(np.zeros((3, 2)), batch_size=0)


def test_input_without_shape():
    with pytest.raises(ValueError, match=r"Input needs a shape"):
        Input()


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match="Python objects"):
        Dense(1)(np.array([[1, "a"]], dtype=object))


def test_deserialize_unknown_class():
    with pytest.raises(ValueError, match=r"Unknown layer class 'LSTMX'.*custom_objects"):
        deserialize({"class_name": "LSTMX", "config": {}})


def test_layer_name_must_be_string():
    with pytest.raises(TypeError, match="Layer name must be a string"):
        Dense(1, name=3)


def test_set_random_seed_type():
    with pytest.raises(TypeError, match="integer seed"):
        set_random_seed("1")


def test_custom_layer_without_call():
    with pytest.raises(NotImplementedError, match="must implement call"):
        Layer()(np.zeros((1, 2)))
