"""Keras' behaviour at the edges of the layer API, each checked against Keras 3.15 itself.

Custom cells that save without a get_config, stacked cells' nested states, integer and bool
inputs, masks through TimeDistributed, attributes set after construction, layers built at
construction, and the model's message for data without a time axis.
"""

import keras
import numpy as np
import pytest
import torch
from conftest import assert_close, copy_weights, to_numpy

import rnnkit
from rnnkit import layers as R
from rnnkit.layers._base import get_mask

K = keras.layers


# ------------------------------------------------------- constructor arguments saved
class OurCell(R.Layer):
    """A cell in the notes' style, with no get_config: Keras records its arguments."""

    def __init__(self, units, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale, self.state_size = units, scale, units

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units))

    def call(self, x_t, states):
        h = torch.tanh(self.scale * (x_t @ self.kernel) + states[0])
        return h, [h]


class TheirCell(K.Layer):
    def __init__(self, units, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale, self.state_size = units, scale, units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units))

    def call(self, x_t, states):
        h = keras.ops.tanh(self.scale * (x_t @ self.kernel) + states[0])
        return h, [h]


def test_a_custom_cell_without_get_config_saves_and_loads_like_keras(tmp_path, rng):
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    ours = rnnkit.Sequential([R.Input((4, 2)), R.RNN(OurCell(3, scale=0.5))])
    theirs = keras.Sequential([K.Input((4, 2)), K.RNN(TheirCell(3, scale=0.5))])
    copy_weights(theirs, ours, rng)
    # The arguments Keras records are the ones rnnkit records.
    want = theirs.layers[0].cell.get_config()
    got = ours.layers[0].cell.get_config()
    assert {k: got[k] for k in ("units", "scale")} == {k: want[k] for k in ("units", "scale")}
    for path in (tmp_path / "ours.rnnkit", tmp_path / "theirs.keras"):
        (ours if path.suffix == ".rnnkit" else theirs).save(path)
    loaded = rnnkit.load_model(tmp_path / "ours.rnnkit", custom_objects={"OurCell": OurCell})
    theirs_loaded = keras.saving.load_model(
        tmp_path / "theirs.keras", custom_objects={"TheirCell": TheirCell}
    )
    assert loaded.layers[0].cell.scale == 0.5
    assert_close(loaded.predict(x, verbose=0), theirs_loaded.predict(x, verbose=0))


class Narrow(R.Layer):
    """A layer whose constructor takes no **kwargs: the config keeps only what it takes."""

    def __init__(self, width):
        super().__init__()
        self.width = width

    def call(self, inputs):
        return inputs[..., : self.width]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.width)


def test_a_layer_without_kwargs_rebuilds_from_its_config_as_in_keras():
    config = Narrow(2).get_config()
    assert config == {"width": 2}
    rebuilt = R.deserialize(R.serialize(Narrow(2)), custom_objects={"Narrow": Narrow})
    assert rebuilt.width == 2


class TakesAnArray(R.Layer):
    def __init__(self, table, **kwargs):
        super().__init__(**kwargs)
        self.table = table

    def call(self, inputs):
        return inputs * torch.as_tensor(self.table, dtype=inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


class TheirsTakesAnArray(K.Layer):
    def __init__(self, table, **kwargs):
        super().__init__(**kwargs)
        self.table = table


def test_an_argument_json_cannot_hold_is_named_when_saving(tmp_path):
    # Keras cannot make this config either.
    with pytest.raises(NotImplementedError, match="non-serializable argument"):
        TheirsTakesAnArray(np.ones(3)).get_config()
    model = rnnkit.Sequential([R.Input((3,)), TakesAnArray(np.ones(3))])
    with pytest.raises(TypeError, match=r"TakesAnArray .*argument\(s\) 'table'.*get_config"):
        model.save(tmp_path / "m.rnnkit")
    assert not (tmp_path / "m.rnnkit").exists()


class Forwards(OurCell):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)


def test_arguments_given_through_star_args_are_refused_when_saving(tmp_path):
    model = rnnkit.Sequential([R.Input((4, 2)), R.RNN(Forwards(3))])
    with pytest.raises(TypeError, match=r"Forwards .* given arguments through \*args"):
        model.save(tmp_path / "m.rnnkit")


def test_freezing_a_model_freezes_its_layers_as_in_keras(rng):
    x = rng.normal(size=(8, 5, 2)).astype(np.float32)
    y = rng.normal(size=(8, 1)).astype(np.float32)
    ours = rnnkit.Sequential([R.Input((5, 2)), R.GRU(3), R.Dense(1)])
    theirs = keras.Sequential([K.Input((5, 2)), K.GRU(3), K.Dense(1)])
    copy_weights(theirs, ours, rng)
    ours.trainable = theirs.trainable = False
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 0
    assert len(ours.non_trainable_weights) == len(theirs.non_trainable_weights) == 5
    before = ours.get_weights()
    ours.compile(optimizer="adam", loss="mse")
    with pytest.warns(UserWarning, match="no trainable weights"):
        ours.fit(x, y, epochs=2, verbose=0)
    assert_close(ours.get_weights(), before, atol=0)
    ours.trainable = True
    assert len(ours.trainable_weights) == 5


def test_numpy_scalars_are_recorded_as_numbers():
    cell = OurCell(np.int64(3), scale=np.float32(0.5))
    config = cell.get_config()
    assert config["units"] == 3 and type(config["units"]) is int
    assert config["scale"] == 0.5


def test_rnnkit_layers_keep_their_own_configs():
    """Only the user's classes get recorded arguments: an Embedding given weights= (an array)
    still serializes, without the array."""
    layer = R.Embedding(5, 2, weights=[np.ones((5, 2))])
    assert "weights" not in R.serialize(layer)["config"]


# ----------------------------------------------------------- integer and bool inputs
LAYERS = {
    "SimpleRNN": lambda m: m.SimpleRNN(3),
    "LSTM": lambda m: m.LSTM(3, return_sequences=True),
    "GRU": lambda m: m.GRU(3),
    "Dense": lambda m: m.Dense(2, activation="tanh"),
    "Bidirectional": lambda m: m.Bidirectional(m.GRU(2)),
    "TimeDistributed": lambda m: m.TimeDistributed(m.Dense(2)),
}


@pytest.mark.parametrize("kind", ["int64", "int32", "bool"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_integer_and_bool_inputs_are_cast_as_keras_does(rng, name, kind):
    x = rng.integers(0, 3, size=(2, 5, 4)).astype(kind)
    ours, theirs = LAYERS[name](R), LAYERS[name](K)
    ours(x.astype(np.float32))
    theirs(x.astype(np.float32))
    copy_weights(theirs, ours, rng)
    got = ours(x)
    assert got.dtype == torch.float32
    assert_close(got, theirs(x))


def test_integer_initial_states_are_cast_as_keras_does(rng):
    x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    h, c = (rng.integers(-1, 2, size=(2, 3)) for _ in range(2))
    ours, theirs = R.LSTM(3), K.LSTM(3)
    ours(x)
    theirs(x)
    copy_weights(theirs, ours, rng)
    assert_close(ours(x, initial_state=[h, c]), theirs(x, initial_state=[h, c]))


def test_integer_inputs_through_a_model_reach_an_embedding_as_ids(rng):
    ids = rng.integers(1, 50_000, size=(2, 6))
    ours = rnnkit.Sequential([R.Input((6,), dtype="int64"), R.Embedding(50_000, 3), R.GRU(2)])
    theirs = keras.Sequential([K.Input((6,), dtype="int64"), K.Embedding(50_000, 3), K.GRU(2)])
    copy_weights(theirs, ours, rng)
    assert_close(ours.predict(ids, verbose=0), theirs.predict(ids, verbose=0))


# ----------------------------------------------------------------- TimeDistributed
def test_time_distributed_passes_the_mask_to_the_inner_layer_as_keras_does(rng):
    x = rng.random((2, 3, 4, 5)).astype(np.float32)
    x[0, 1, 2:] = 0  # padded inner steps: Masking marks them, the inner LSTM skips them
    x[1, 2, 1:] = 0

    def model(m, module):
        inputs = m.Input((3, 4, 5))
        return module.Model(inputs, m.TimeDistributed(m.LSTM(6))(m.Masking()(inputs)))

    ours, theirs = model(R, rnnkit), model(K, keras)
    copy_weights(theirs, ours, rng)
    want = theirs.predict(x, verbose=0)
    assert_close(ours.predict(x, verbose=0), want)
    unmasked = rnnkit.Model(i := R.Input((3, 4, 5)), R.TimeDistributed(R.LSTM(6))(i))
    unmasked.set_weights(ours.get_weights())
    assert not np.allclose(to_numpy(unmasked.predict(x, verbose=0)), want, atol=1e-3)


def test_time_distributed_passes_its_mask_on_like_keras(rng):
    x = rng.random((2, 3, 4)).astype(np.float32)
    mask = np.array([[True, True, False], [True, False, False]])
    ours, theirs = R.TimeDistributed(R.Dense(2)), K.TimeDistributed(K.Dense(2))
    ours(x)
    theirs(x)
    copy_weights(theirs, ours, rng)
    got = ours(x, mask=mask)
    assert_close(got, theirs(x, mask=mask))
    np.testing.assert_array_equal(to_numpy(get_mask(got)), mask)


def test_time_distributed_rejects_a_mask_of_another_batch_or_length():
    x = np.ones((2, 3, 4), dtype=np.float32)
    wrong = np.ones((2, 4), dtype=bool)
    with pytest.raises(ValueError, match="incompatible"):  # Keras refuses it too
        K.TimeDistributed(K.Dense(2))(x, mask=wrong)
    with pytest.raises(
        ValueError,
        match=r"TimeDistributed 'time_distributed': the mask must start with the input's "
        r"\(batch, timesteps\) = \(2, 3\); got a mask of shape \(2, 4\)",
    ):
        R.TimeDistributed(R.Dense(2))(x, mask=wrong)


def test_time_distributed_embedding_reads_ids(rng):
    ids = rng.integers(0, 10, size=(2, 3, 4))
    ours, theirs = R.TimeDistributed(R.Embedding(10, 2)), K.TimeDistributed(K.Embedding(10, 2))
    ours(ids)
    theirs(ids)
    copy_weights(theirs, ours, rng)
    assert_close(ours(ids), theirs(ids))


# ---------------------------------------------- attributes, weights and built state
@pytest.mark.parametrize("value", [None, "relu", "linear"])
def test_dense_activation_set_after_construction(rng, value):
    x = rng.normal(size=(4, 3)).astype(np.float32)
    ours, theirs = R.Dense(2, activation="tanh"), K.Dense(2, activation="tanh")
    ours(x)
    theirs(x)
    copy_weights(theirs, ours, rng)
    ours.activation = value
    theirs.activation = keras.activations.get(value)  # Keras calls None as linear too
    assert_close(ours(x), theirs(x))
    rebuilt = R.Dense.from_config(ours.get_config())
    assert rebuilt.activation is ours.activation


def test_a_cell_activation_set_after_construction(rng):
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    ours, theirs = R.LSTM(3), K.LSTM(3)
    ours(x)
    theirs(x)
    copy_weights(theirs, ours, rng)
    ours.cell.recurrent_activation = "hard_sigmoid"
    theirs.cell.recurrent_activation = keras.activations.get("hard_sigmoid")
    assert_close(ours(x), theirs(x))


def test_an_activation_module_is_kept_as_a_module():
    layer = R.Dense(2, activation=torch.nn.ReLU())
    assert isinstance(layer.activation, torch.nn.ReLU)
    layer.activation = "tanh"
    assert layer.activation is rnnkit.activations.tanh


def test_embedding_with_weights_is_built_at_construction_as_in_keras(rng):
    table = rng.normal(size=(6, 2)).astype(np.float32)
    ours, theirs = R.Embedding(6, 2, weights=[table]), K.Embedding(6, 2, weights=[table])
    assert ours.built and theirs.built
    assert_close(ours.get_weights(), theirs.get_weights())
    ids = np.array([[1, 5, 0]])
    assert_close(ours(ids), theirs(ids))
    with pytest.raises(ValueError, match=r"Embedding 'embedding_1'.*\(6, 2\).*\(5, 2\)"):
        R.Embedding(6, 2, weights=[table[:5]])


def test_masking_compute_mask_takes_numpy_as_keras_does(rng):
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    x[0, 1] = 0.0
    want = K.Masking().compute_mask(x)
    assert_close(R.Masking().compute_mask(x), want)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.Dropout(0.5),
        lambda m: m.Masking(),
        lambda m: m.Activation("relu"),
        lambda m: m.Flatten(),
        lambda m: m.RepeatVector(2),
        lambda m: m.Dense(2),
        lambda m: m.Embedding(5, 2),
        lambda m: m.LSTM(2),
    ],
)
def test_built_at_construction_as_in_keras(make):
    assert make(R).built == make(K).built


# ------------------------------------------------------------ the model's messages
def test_a_model_missing_the_time_axis_says_which_layer_and_the_reshape():
    model = rnnkit.Sequential([R.SimpleRNN(3, input_shape=(4, 5)), R.Dense(1)])
    with pytest.raises(
        ValueError,
        match=r"Model 'sequential': SimpleRNN 'simple_rnn' expects input \(batch, timesteps, "
        r"features=5\); got shape \(32, 5\)\. Missing the time axis: each sample is 4 steps of "
        r"5 features\. .*x\.reshape\(-1, 4, 5\) \(32 rows make 8 samples\).*"
        r"timeseries_dataset_from_array\(x, targets, sequence_length=4\)",
    ):
        model.predict(np.zeros((32, 5)), verbose=0)
    # The reshape it names is one the model takes.
    assert model.predict(np.zeros((32, 5)).reshape(-1, 4, 5), verbose=0).shape == (8, 1)


def test_a_functional_model_missing_the_time_axis_asks_its_first_layer():
    inputs = R.Input((6, 2))
    model = rnnkit.Model(inputs, R.LSTM(3)(inputs))
    with pytest.raises(ValueError, match=r"Model 'functional': LSTM 'lstm'.*\(7, 2\).*6 steps"):
        model(np.zeros((7, 2), dtype=np.float32))


@pytest.mark.parametrize("dtype", ["object", "str", "datetime64"])
def test_a_dtype_torch_has_no_tensors_of_is_a_clear_error(dtype):
    with pytest.raises(TypeError, match=rf"Unknown dtype '{dtype}': torch has no tensors of it"):
        R.Dense(2, dtype=dtype)


def test_fit_on_a_model_with_no_trainable_weights_measures_the_loss_as_keras_does(rng):
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    ours = rnnkit.Sequential([R.Input((3,)), R.Dense(2, trainable=False)])
    theirs = keras.Sequential([K.Input((3,)), K.Dense(2, trainable=False)])
    copy_weights(theirs, ours, rng)
    for model in (ours, theirs):
        model.compile(optimizer="adam", loss="mse")
    with pytest.warns(UserWarning, match="does not have any trainable weights"):
        want = theirs.fit(x, y, epochs=2, batch_size=4, verbose=0).history
    with pytest.warns(UserWarning, match="no trainable weights, so training changes nothing"):
        got = ours.fit(x, y, epochs=2, batch_size=4, verbose=0).history
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
    assert_close(ours.get_weights(), theirs.get_weights())


def test_predict_takes_a_numpy_integer_batch_size(rng):
    x = rng.normal(size=(5, 3)).astype(np.float32)
    model = rnnkit.Sequential([R.Input((3,)), R.Dense(2)])
    want = model.predict(x, batch_size=2, verbose=0)
    np.testing.assert_array_equal(model.predict(x, batch_size=np.int64(2), verbose=0), want)
    with pytest.raises(ValueError, match=r"predict: batch_size must be a positive integer"):
        model.predict(x, batch_size=np.int64(0))


# ------------------------------------------------------------------ subclassed models
class OurForecaster(rnnkit.Model):
    """A subclassed model as in Keras tutorials: layers made in __init__, used in call()."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.rnn, self.head = R.GRU(units), R.Dense(1)

    def call(self, x, training=False):
        return self.head(self.rnn(x))


class TheirForecaster(keras.Model):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.rnn, self.head = K.GRU(units), K.Dense(1)

    def call(self, x, training=False):
        return self.head(self.rnn(x))

    def get_config(self):  # Keras 3.15 records no arguments of a Model subclass; rnnkit does
        return {**super().get_config(), "units": self.units}


def test_a_subclassed_model_saves_and_loads_built_like_keras(tmp_path, rng):
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    ours, theirs = OurForecaster(4), TheirForecaster(4)
    ours(x)
    theirs(x)
    copy_weights(theirs, ours, rng)
    ours.save(tmp_path / "ours.rnnkit")
    theirs.save(tmp_path / "theirs.keras")
    loaded = rnnkit.load_model(
        tmp_path / "ours.rnnkit", custom_objects={"OurForecaster": OurForecaster}
    )
    theirs_loaded = keras.saving.load_model(
        tmp_path / "theirs.keras", custom_objects={"TheirForecaster": TheirForecaster}
    )
    assert loaded.built and theirs_loaded.built
    assert loaded.units == theirs_loaded.units == 4
    assert_close(loaded.predict(x, verbose=0), theirs_loaded.predict(x, verbose=0))


def test_a_subclassed_model_is_sized_on_the_meta_device_before_it_is_built(tmp_path):
    """Its config's units are checked against the file's weights before any memory is taken."""
    import json
    import zipfile

    path = tmp_path / "m.rnnkit"
    model = OurForecaster(4)
    model(np.zeros((1, 5, 2), dtype=np.float32))
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["units"] = 60_000  # a 14 GB GRU if it were built for real
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=r"\(2, 12\) in the file .* but \(2, 180000\)"):
        rnnkit.load_model(path, custom_objects={"OurForecaster": OurForecaster})


def test_float64_data_stays_float64_through_a_float64_model(rng):
    """predict, fit and a Sequential used to turn every float input into float32 first, so a
    float64 model lost half its digits. The oracle is the recurrence in float64 numpy (Keras'
    predict rounds float64 inputs to float32 too: 8e-8 off here)."""
    x = rng.normal(size=(3, 6, 2))
    ours = rnnkit.Sequential([R.Input((6, 2), dtype="float64"), R.SimpleRNN(3, dtype="float64")])
    W, U, b = (rng.normal(0, 0.5, size=w.shape) for w in ours.get_weights())
    ours.set_weights([W, U, b])
    h = np.zeros((3, 3))
    for t in range(6):
        h = np.tanh(x[:, t] @ W + h @ U + b)
    got = ours.predict(x, verbose=0)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, h, rtol=0, atol=1e-12)
    ours.compile(optimizer="sgd", loss="mse")
    assert ours.evaluate(x, h, verbose=0) < 1e-24  # evaluate sees the same float64 outputs
