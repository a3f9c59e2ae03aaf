"""rnnkit.saving: model files, weights files and training checkpoints.

Oracles: the original model (a loaded model predicts exactly what it did, and fit continues
to exactly the weights the original reaches), `safetensors.torch.load_file` for the weights
file, and real Keras files for the "this is Keras' format" errors.
"""

import json
import os
import random
import zipfile

import keras
import numpy as np
import pytest
import safetensors.torch
import torch

import rnnkit
from rnnkit import Input, Model, Sequential, metrics, optimizers, saving, schedules
from rnnkit.layers import Concatenate, Dense, Dropout, Layer, SimpleRNN
from rnnkit.saving import load_checkpoint, load_model, save_checkpoint
from rnnkit.utils import set_random_seed

T, D = 5, 3


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, D)).astype("float32")
    return x, x.sum(axis=(1, 2))[:, None].astype("float32") / 5


def _sequential(dropout=False):
    if dropout:  # seeded generators in the RNN cell and one Dropout, global RNG in the other
        return Sequential(
            [
                SimpleRNN(4, dropout=0.2, recurrent_dropout=0.2, seed=3, input_shape=(T, D)),
                Dropout(0.3, seed=4),
                Dropout(0.3),
                Dense(1),
            ]
        )
    return Sequential([SimpleRNN(4, input_shape=(T, D)), Dense(1)])


def _functional():
    inputs = Input(shape=(T, D))
    sequence = SimpleRNN(4, return_sequences=True)(inputs)
    a = SimpleRNN(3)(sequence)
    b = SimpleRNN(2, go_backwards=True)(inputs)
    return Model(inputs, Dense(1)(Concatenate()([a, b])))


def _assert_same_weights(a, b):
    assert len(a.get_weights()) == len(b.get_weights())
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def _rewrite(path, changes: dict):
    """Rewrite the zip at `path` with members replaced (bytes/str/dict) or removed (None)."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    for name, value in changes.items():
        if value is None:
            members.pop(name, None)
        else:
            members[name] = json.dumps(value) if isinstance(value, dict) else value
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in members.items():
            zf.writestr(name, value)


def _member(path, name):
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


# ------------------------------------------------------------------------ model files


@pytest.mark.parametrize("make", [_sequential, _functional])
def test_loaded_model_predicts_exactly_as_saved(tmp_path, make):
    model = make()
    x, _ = _data()
    path = tmp_path / "model.rnnkit"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert json.dumps(loaded.get_config()) == json.dumps(model.get_config())
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_archive_layout_and_weights_readable_by_safetensors(tmp_path):
    model = _sequential()
    path = tmp_path / "model.rnnkit"  # ".keras" would write Keras' format (test_keras_io)
    rnnkit.Model.save(model, path)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["rnnkit.json", "config.json", "model.safetensors"]
    manifest = json.loads(_member(path, "rnnkit.json"))
    assert manifest == {
        "format": "rnnkit.model",
        "format_version": 1,
        "rnnkit_version": rnnkit.__version__,
        "torch_version": torch.__version__,
    }
    assert json.loads(_member(path, "config.json")) == json.loads(
        json.dumps(rnnkit.layers.serialize(model))
    )
    tensors = safetensors.torch.load(_member(path, "model.safetensors"))
    assert sorted(tensors) == [
        "0000:simple_rnn/simple_rnn_cell/kernel",
        "0001:simple_rnn/simple_rnn_cell/recurrent_kernel",
        "0002:simple_rnn/simple_rnn_cell/bias",
        "0003:dense/kernel",
        "0004:dense/bias",
    ]
    for key, expected in zip(sorted(tensors), model.get_weights()):
        np.testing.assert_array_equal(tensors[key].numpy(), expected)


def test_overwrite(tmp_path):
    path = tmp_path / "model.rnnkit"
    _sequential().save(path)
    second = _sequential()
    second.save(path)
    _assert_same_weights(load_model(path), second)
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        second.save(path, overwrite=False)


def test_custom_layer_needs_custom_objects(tmp_path):
    class Scale(Layer):
        def build(self, input_shape):
            self.scale = self.add_weight("scale", (input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return inputs * self.scale

        def compute_output_shape(self, input_shape):
            return input_shape

    model = Sequential([SimpleRNN(4, input_shape=(T, D)), Scale()])
    with torch.no_grad():
        model.layers[1].scale.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    path = tmp_path / "model.rnnkit"
    model.save(path)
    with pytest.raises(ValueError, match=r"Unknown layer class 'Scale'.*custom_objects="):
        load_model(path)
    x, _ = _data()
    loaded = load_model(path, custom_objects={"Scale": Scale})
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# ---------------------------------------------------------- compile settings and resuming


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: optimizers.Adam(learning_rate=0.01),
        lambda: optimizers.Adam(schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)),
        lambda: optimizers.Nadam(learning_rate=0.01),
        lambda: optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True),
        lambda: optimizers.Adadelta(learning_rate=0.5),  # torch.optim's: tensor "step" state
    ],
    ids=["adam", "adam-schedule", "nadam", "sgd-nesterov", "adadelta"],
)
def test_fit_after_load_continues_exactly(tmp_path, optimizer):
    x, y = _data()
    model = _sequential()
    model.compile(optimizer=optimizer(), loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    path = tmp_path / "model.rnnkit"
    model.save(path)
    loaded = load_model(path)
    assert loaded.compiled and loaded.optimizer.iterations == model.optimizer.iterations == 6

    expected = model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    resumed = loaded.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    _assert_same_weights(loaded, model)
    assert resumed.history == expected.history


def test_compile_settings_round_trip(tmp_path):
    model = _sequential()
    model.compile(
        optimizer=optimizers.RMSprop(learning_rate=0.003, rho=0.8),
        loss="huber",
        metrics=["mae", metrics.RootMeanSquaredError(name="rmse")],
    )
    path = tmp_path / "model.rnnkit"
    model.save(path)  # compiled, not trained: no optimizer state yet
    with zipfile.ZipFile(path) as zf:
        assert "compile.json" in zf.namelist() and "optimizer.json" not in zf.namelist()
    loaded = load_model(path)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert type(loaded.loss) is type(model.loss)
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.metric_identifiers == [
        "mae",
        {"class_name": "RootMeanSquaredError", "config": {"name": "rmse"}},
    ]
    x, y = _data()
    history = loaded.fit(x, y, epochs=1, verbose=0)
    assert sorted(history.history) == ["loss", "mae", "rmse"]
    assert not load_model(path, compile=False).compiled


def test_loss_function_by_name_and_unsaveable_metric(tmp_path):
    def my_loss(y_true, y_pred):
        return torch.mean(torch.abs(y_true - y_pred), dim=-1)

    def my_metric(y_true, y_pred):
        return torch.mean(y_true - y_pred, dim=-1)

    model = _sequential()
    model.compile(optimizer="adam", loss=my_loss, metrics=["mse", my_metric])
    path = tmp_path / "model.rnnkit"
    with pytest.warns(UserWarning, match="my_metric.*compiled without it"):
        model.save(path)
    with pytest.raises(ValueError, match=r"custom_objects=\{'my_loss': my_loss\}.*compile=False"):
        load_model(path)
    loaded = load_model(path, custom_objects={"my_loss": my_loss})
    assert loaded.loss.fn is my_loss and loaded.metric_identifiers == ["mse"]


def test_unsaveable_learning_rate(tmp_path):
    model = _sequential()
    model.compile(optimizer=optimizers.Adam(learning_rate=lambda: 0.01), loss="mse")
    path = tmp_path / "model.rnnkit"
    with pytest.raises(ValueError, match=r"Cannot save model '.*': the compile\(\) settings"):
        model.save(path)
    assert not path.exists()


# --------------------------------------------------------------------- atomic writes


def test_failed_save_keeps_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.rnnkit"
    model = _sequential()
    model.save(path)
    before = path.read_bytes()

    def fail_midway(model):
        assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")], "no temporary yet"
        raise RuntimeError("disk full")

    monkeypatch.setattr(saving, "_weight_tensors", fail_midway)
    with pytest.raises(RuntimeError, match="disk full"):
        _sequential().save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.rnnkit"]


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"directory '.*nowhere' does not exist.*makedirs"):
        _sequential().save(tmp_path / "nowhere" / "model.rnnkit")


# ------------------------------------------------------------------ reading errors


@pytest.fixture
def saved(tmp_path):
    model = _sequential()
    model.compile(optimizer="adam", loss="mse")
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.rnnkit"
    model.save(path)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No such file: '.*nope.rnnkit'"):
        load_model(tmp_path / "nope.rnnkit")
    with pytest.raises(ValueError, match="is a directory"):
        load_model(tmp_path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "model.rnnkit"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not an rnnkit file: it is not a zip archive"):
        load_model(path)


def test_truncated_zip(saved):
    saved.write_bytes(saved.read_bytes()[:-100])
    with pytest.raises(ValueError, match="or it is truncated.*cut short"):
        load_model(saved)


def test_keras_archive_loads_as_a_model_not_as_weights(tmp_path):
    keras_model = keras.Sequential([keras.Input((T, D)), keras.layers.SimpleRNN(4)])
    path = tmp_path / "model.keras"
    keras_model.save(path)
    model = load_model(path)  # tests/test_keras_io.py compares the outputs
    with pytest.raises(ValueError, match=r"is a Keras \.keras file.*rnnkit\.load_model\(path\)"):
        model.load_weights(path)


def test_keras_hdf5_weights(tmp_path):
    keras_model = keras.Sequential([keras.Input((T, D)), keras.layers.SimpleRNN(4)])
    path = tmp_path / "model.weights.h5"
    keras_model.save_weights(path)
    with pytest.raises(ValueError, match="HDF5 file without model_config.*weights-only"):
        load_model(path)
    with pytest.raises(ValueError, match="neither an rnnkit weights file.*HDF5"):
        _sequential().load_weights(path)


def test_zip_without_manifest(saved):
    _rewrite(saved, {"rnnkit.json": None})
    with pytest.raises(ValueError, match="zip archive without rnnkit.json"):
        load_model(saved)


def test_wrong_format_name(saved):
    _rewrite(saved, {"rnnkit.json": {"format": "other.thing", "format_version": 1}})
    with pytest.raises(ValueError, match="holds format 'other.thing'.*'rnnkit.model'"):
        load_model(saved)


def test_checkpoint_given_to_load_model(tmp_path):
    path = tmp_path / "ckpt.rnnkit"
    save_checkpoint(_sequential(), path, epoch=1)
    with pytest.raises(ValueError, match=r"'rnnkit.checkpoint'.*load_checkpoint\(model, path\)"):
        load_model(path)


def test_newer_format_version(saved):
    manifest = json.loads(_member(saved, "rnnkit.json"))
    _rewrite(saved, {"rnnkit.json": {**manifest, "format_version": 2, "rnnkit_version": "9.0"}})
    with pytest.raises(
        ValueError, match=r"format version 2 by a newer rnnkit \(9.0\).*pip install"
    ):
        load_model(saved)
    _rewrite(saved, {"rnnkit.json": {**manifest, "format_version": "one"}})
    with pytest.raises(ValueError, match="format_version 'one' is not valid"):
        load_model(saved)


@pytest.mark.parametrize("member", ["rnnkit.json", "config.json", "compile.json", "optimizer.json"])
def test_corrupt_json(saved, member):
    _rewrite(saved, {member: b'{"format": '})
    with pytest.raises(ValueError, match=f"{member} is not valid JSON"):
        load_model(saved)


def test_missing_member(saved):
    _rewrite(saved, {"config.json": None})
    with pytest.raises(ValueError, match="has no config.json: the file is incomplete"):
        load_model(saved)


@pytest.mark.parametrize("member", ["model.safetensors", "optimizer.safetensors"])
def test_corrupt_safetensors(saved, member):
    _rewrite(saved, {member: _member(saved, member)[:-7]})
    with pytest.raises(ValueError, match=rf"\({member}\) is not a valid safetensors file"):
        load_model(saved)


def test_weights_do_not_fit_architecture(saved):
    more_layers = Sequential([SimpleRNN(4, input_shape=(T, D)), Dense(2), Dense(1)])
    _rewrite(saved, {"config.json": rnnkit.layers.serialize(more_layers)})
    with pytest.raises(ValueError, match=r"holds 5 weight\(s\), but model '.*' has 7.*same layers"):
        load_model(saved, compile=False)
    wider = Sequential([SimpleRNN(6, input_shape=(T, D)), Dense(1)])
    _rewrite(saved, {"config.json": rnnkit.layers.serialize(wider)})
    with pytest.raises(ValueError, match=r"weight 0 is \(3, 4\) in the file .* but \(3, 6\)"):
        load_model(saved, compile=False)


def test_weights_file_given_to_load_model(tmp_path):
    path = tmp_path / "model.weights.h5"
    _sequential().save_weights(path)
    with pytest.raises(ValueError, match=r"safetensors weights file; load it with .*load_weights"):
        load_model(path)


# ----------------------------------------------------------------------- weights files


def test_weights_file_is_safetensors(tmp_path):
    model = _sequential()
    path = tmp_path / "model.weights.h5"  # Keras' suffix, safetensors content
    model.save_weights(path)
    tensors = safetensors.torch.load_file(path)
    assert sorted(tensors) == sorted(
        safetensors.torch.load(_saved_archive_weights(model, tmp_path))
    )
    for key, expected in zip(sorted(tensors), model.get_weights()):
        np.testing.assert_array_equal(tensors[key].numpy(), expected)
    with safetensors.safe_open(path, framework="pt") as f:
        assert f.metadata()["format"] == "rnnkit.weights"
        assert f.metadata()["format_version"] == "1"
    other = _sequential()  # other names (simple_rnn_1): loading goes by order
    other.load_weights(path)
    x, _ = _data()
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


def _saved_archive_weights(model, tmp_path):
    model.save(tmp_path / "archive.rnnkit")
    return _member(tmp_path / "archive.rnnkit", "model.safetensors")


def test_load_weights_from_model_archive(saved):
    model = _sequential()
    model.load_weights(saved)
    _assert_same_weights(model, load_model(saved))


def test_load_weights_errors(tmp_path, saved):
    unbuilt = Sequential([SimpleRNN(4), Dense(1)])
    with pytest.raises(ValueError, match=r"is not built.*model.build\(\(None, timesteps"):
        unbuilt.load_weights(saved)
    with pytest.raises(ValueError, match="is not built.*save its weights"):
        unbuilt.save_weights(tmp_path / "w.safetensors")

    wider = Sequential([SimpleRNN(5, input_shape=(T, D)), Dense(1)])
    with pytest.raises(ValueError, match=r"does not fit model .*weight 0 is \(3, 4\)"):
        wider.load_weights(saved)

    path = tmp_path / "w.safetensors"
    _sequential().save_weights(path)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(
        ValueError, match="not a valid safetensors file: it is corrupt or truncated"
    ):
        _sequential().load_weights(path)

    safetensors.torch.save_file({"kernel": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not one rnnkit wrote"):
        _sequential().load_weights(path)

    with pytest.raises(FileNotFoundError, match="No such file"):
        _sequential().load_weights(tmp_path / "nope.weights.h5")


# ------------------------------------------------------------------------ checkpoints


def test_checkpoint_restores_every_random_generator(tmp_path):
    model = _sequential(dropout=True)
    x, _ = _data(n=4)
    model(x, training=True)  # the seeded generators exist and have moved on
    path = tmp_path / "ckpt.rnnkit"
    save_checkpoint(model, path, epoch=3, extra={"best": 0.25})
    draws = torch.rand(3), np.random.rand(3), random.random()
    masked = model(x, training=True).detach()

    set_random_seed(99)
    model(x, training=True)  # move every generator on
    assert load_checkpoint(model, path) == {"epoch": 3, "extra": {"best": 0.25}}
    assert torch.equal(torch.rand(3), draws[0])
    np.testing.assert_array_equal(np.random.rand(3), draws[1])
    assert random.random() == draws[2]
    assert torch.equal(model(x, training=True), masked)  # the same dropout masks everywhere


def test_resumed_training_equals_uninterrupted(tmp_path):
    x, y = _data()
    set_random_seed(0)
    model = _sequential(dropout=True)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)  # shuffled, with dropout
    path = tmp_path / "ckpt.rnnkit"
    save_checkpoint(model, path, epoch=2)
    model.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0)

    set_random_seed(123)  # another start: everything must come from the checkpoint
    resumed = _sequential(dropout=True)
    resumed.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="mse")
    epoch = load_checkpoint(resumed, path)["epoch"]
    resumed.fit(x, y, epochs=4, initial_epoch=epoch, batch_size=8, verbose=0)
    _assert_same_weights(resumed, model)


def test_checkpoint_errors(tmp_path):
    x, y = _data()
    model = _sequential()
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "ckpt.rnnkit"
    save_checkpoint(model, path, epoch=1)
    with pytest.raises(ValueError, match="holds optimizer state, but model .* is not compiled"):
        load_checkpoint(_sequential(), path)
    other = _sequential()
    other.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="optimizer state does not fit .* SGD.*saved by Adam"):
        load_checkpoint(other, path)
    with pytest.raises(ValueError, match=r"'rnnkit.model'.*rnnkit.load_model\(path\)"):
        model.save(tmp_path / "model.rnnkit")
        load_checkpoint(model, tmp_path / "model.rnnkit")
    with pytest.raises(TypeError, match="extra is stored as JSON"):
        save_checkpoint(model, path, epoch=2, extra={"model": model})
    with pytest.raises(TypeError, match="epoch must be an integer"):
        save_checkpoint(model, path, epoch="2")
    assert load_checkpoint(model, path)["epoch"] == 1  # the failed saves left it alone


def test_weighted_metrics_survive_save_and_load(tmp_path):
    from rnnkit import Sequential, load_model
    from rnnkit.layers import Dense

    model = Sequential([Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile(
        optimizer="sgd",
        loss="binary_crossentropy",
        metrics=["accuracy"],
        weighted_metrics=["accuracy"],
    )
    model.save(tmp_path / "m.rnnkit")
    loaded = load_model(tmp_path / "m.rnnkit")
    assert loaded.metric_identifiers == ["accuracy"]
    assert loaded.weighted_metric_identifiers == ["accuracy"]


def test_load_model_imports_from_where_keras_code_expects_it():
    # `from keras.models import load_model` becomes `from rnnkit.models import load_model`.
    import rnnkit
    from rnnkit.models import load_model

    assert load_model is rnnkit.load_model is rnnkit.saving.load_model


def test_write_outputs_writes_model_metrics_and_files(tmp_path):
    import json
    from pathlib import Path

    from rnnkit import Sequential, load_model
    from rnnkit.layers import Dense
    from rnnkit.saving import write_outputs

    model = Sequential([Dense(1, input_shape=(2,))])
    paths = write_outputs(tmp_path / "run", model, {"rmse": 1.5}, {"plot": ("p.png", b"\x89PNG")})
    assert json.loads(Path(paths["metrics"]).read_text()) == {"rmse": 1.5}
    assert Path(paths["plot"]).read_bytes() == b"\x89PNG"
    assert load_model(paths["model"]).count_params() == 3
    loop = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular"):  # not JSON: nothing is written
        write_outputs(tmp_path / "never", model, {"loop": loop})
    assert not (tmp_path / "never").exists()
