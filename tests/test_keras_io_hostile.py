"""Hostile Keras files: every refusal is a ValueError naming the file and the item, and
nothing a file names is imported or run."""

import io
import json
import shutil
import sys
import zipfile

import h5py
import keras
import pytest

import rnnkit

DATA = __import__("pathlib").Path(__file__).parent / "data" / "keras_h5"


@pytest.fixture
def keras_file(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(2), keras.layers.Dense(1)])
    path = tmp_path / "m.keras"
    model.save(path)
    return path


def _edit_config(path, edit):
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _dense(config):
    return config["config"]["layers"][-1]


def test_unknown_class_is_refused(keras_file):
    _edit_config(keras_file, lambda c: _dense(c).update(class_name="EvilLayer"))
    with pytest.raises(ValueError, match=r"m\.keras.*config\.json.*'EvilLayer'"):
        rnnkit.load_model(keras_file)


def test_lambda_layer_is_refused(keras_file):
    def edit(config):
        _dense(config).update(
            class_name="Lambda",
            config={"function": {"class_name": "__lambda__", "config": {"code": "4wEAAA"}}},
        )

    _edit_config(keras_file, edit)
    with pytest.raises(ValueError, match=r"m\.keras.*'Lambda'.*Python code"):
        rnnkit.load_model(keras_file)


def test_module_outside_keras_is_refused_and_never_imported(keras_file, tmp_path, monkeypatch):
    # a module that would announce itself if anything imported it
    (tmp_path / "evil_module.py").write_text("raise SystemExit('evil_module was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _edit_config(keras_file, lambda c: _dense(c).update(module="evil_module"))
    before = set(sys.modules)
    with pytest.raises(ValueError, match=r"m\.keras.*'Dense'.*module 'evil_module', not Keras"):
        rnnkit.load_model(keras_file)
    assert "evil_module" not in sys.modules
    assert set(sys.modules) - before == set()


def test_unknown_registered_name_is_refused(keras_file):
    _edit_config(keras_file, lambda c: _dense(c).update(registered_name="evilpkg>Dense"))
    with pytest.raises(ValueError, match=r"m\.keras.*'Dense'.*registered as 'evilpkg>Dense'"):
        rnnkit.load_model(keras_file)


def test_unknown_optimizer_in_compile_config_is_refused(keras_file):
    def edit(config):
        config["compile_config"] = {
            "optimizer": {"module": "evil", "class_name": "Adam", "config": {}},
            "loss": "mse",
        }

    _edit_config(keras_file, edit)
    with pytest.raises(ValueError, match=r"m\.keras.*compile_config.*module 'evil'"):
        rnnkit.load_model(keras_file)


def test_truncated_keras_file(keras_file):
    keras_file.write_bytes(keras_file.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"m\.keras.*truncated"):
        rnnkit.load_model(keras_file)


def test_keras_file_with_a_missing_weight(keras_file):
    with zipfile.ZipFile(keras_file) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        del h5["layers/dense/vars/1"]
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(keras_file, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(ValueError, match=r"m\.keras.*no weight 'layers/dense/vars/1'"):
        rnnkit.load_model(keras_file)


def test_keras_file_with_a_misshaped_weight(keras_file):
    # the config asks for a bigger Dense than the weights hold: refused before allocating
    _edit_config(keras_file, lambda c: _dense(c)["config"].update(units=50000))
    with pytest.raises(ValueError, match=r"m\.keras.*layers/dense/vars/0.*\(2, 1\).*\(2, 50000\)"):
        rnnkit.load_model(keras_file)


@pytest.fixture
def h5_file(tmp_path):
    path = tmp_path / "m.h5"
    shutil.copy(DATA / "gru_both.h5", path)
    return path


def test_h5_with_a_missing_dataset(h5_file):
    with h5py.File(h5_file, "r+") as h5:
        del h5["model_weights/dense_1/dense_1/bias:0"]
    with pytest.raises(ValueError, match=r"m\.h5.*weight dense_1/dense_1/bias:0 is missing"):
        rnnkit.load_model(h5_file)


def test_h5_with_a_misshaped_dataset(h5_file):
    with h5py.File(h5_file, "r+") as h5:
        del h5["model_weights/dense_1/dense_1/kernel:0"]
        h5["model_weights/dense_1/dense_1/kernel:0"] = [[1.0, 2.0]]
    with pytest.raises(ValueError, match=r"m\.h5.*dense_1/dense_1/kernel:0 is \(1, 2\).*\(2, 1\)"):
        rnnkit.load_model(h5_file)


def test_h5_naming_a_lambda(h5_file):
    with h5py.File(h5_file, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        config["config"]["layers"][-1]["class_name"] = "Lambda"
        h5.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ValueError, match=r"m\.h5.*model_config.*'Lambda'"):
        rnnkit.load_model(h5_file)


def test_truncated_h5(h5_file):
    h5_file.write_bytes(h5_file.read_bytes()[:4000])
    with pytest.raises(ValueError, match=r"m\.h5.*corrupt or truncated"):
        rnnkit.load_model(h5_file)
