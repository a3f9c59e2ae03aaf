"""`rnnkit export MODEL --format onnx|keras|rnnkit --output PATH`."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import rnnkit
from rnnkit.cli import main
from rnnkit.layers import GRU, Dense, Input
from rnnkit.models import Sequential


@pytest.fixture
def saved(tmp_path):
    model = Sequential([Input(shape=(None, 3)), GRU(4), Dense(1)])
    path = tmp_path / "model.rnnkit"
    model.save(path)
    return model, path


def export(*args):
    return CliRunner().invoke(main, ["export", *map(str, args)])


def test_onnx_runs_as_the_model_predicts(saved, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model, path = saved
    out = tmp_path / "model.onnx"
    result = export(path, "--format", "onnx", "--output", out)
    assert result.exit_code == 0, result.output
    assert f"Wrote {out} (onnx)" in result.output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype("float32")
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model.predict(x), atol=1e-5, rtol=0)


def test_rnnkit_and_keras_formats_load_back_the_same(saved, tmp_path):
    model, path = saved
    x = np.random.default_rng(1).normal(size=(2, 5, 3)).astype("float32")
    own = tmp_path / "copy.rnnkit"
    assert export(path, "--format", "rnnkit", "--output", own).exit_code == 0
    np.testing.assert_allclose(rnnkit.load_model(own).predict(x), model.predict(x), atol=1e-6)
    pytest.importorskip("rnnkit.keras_io")
    keras_file = tmp_path / "copy.keras"
    result = export(path, "--format", "keras", "--output", keras_file)
    assert result.exit_code == 0, result.output
    assert "config.json" in zipfile.ZipFile(keras_file).namelist()  # Keras 3's layout
    loaded = rnnkit.load_model(keras_file)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), atol=1e-6)


def test_refused_model_is_one_line_and_writes_nothing(tmp_path):
    model = Sequential([Input(batch_shape=(2, 5, 3)), GRU(3, stateful=True)])
    path = tmp_path / "stateful.rnnkit"
    model.save(path)
    out = tmp_path / "stateful.onnx"
    result = export(path, "--format", "onnx", "--output", out)
    assert result.exit_code == 1
    assert "Error: GRU 'gru" in result.output and "stateful=False" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "fmt, name, message",
    [
        ("keras", "model.h5", r"--format keras writes a Keras 3 \.keras file.*'.*model\.keras'"),
        ("rnnkit", "model.keras", r"ends in \.keras.*--format keras"),
    ],
)
def test_output_name_must_fit_the_format(saved, tmp_path, fmt, name, message):
    _, path = saved
    result = export(path, "--format", fmt, "--output", tmp_path / name)
    assert result.exit_code == 1
    assert re.search(message, result.output), result.output
    assert not (tmp_path / name).exists()


def test_missing_model_file(tmp_path):
    result = export(tmp_path / "nope.rnnkit", "--format", "onnx", "--output", tmp_path / "m.onnx")
    assert result.exit_code == 2
    assert "does not exist" in result.output
