"""`torch.export.export` traces rnnkit models: the exported program gives the model's numbers.

While tracing, the recurrent layers leave the compiled (ctypes) time loops, which the tracer
cannot see into, for their torch code (`rnnkit.kernels.compiled.missing`).
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Embedding, Input
from rnnkit.models import Model, Sequential

# Model caches a weight to ask its device (`weights_device`); export notes that it saw it set.
pytestmark = pytest.mark.filterwarnings("ignore:The tensor attribute self._device_probe")


def assert_exported_matches(model, x):
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        want = model(x)
        got = program.module()(x)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("units", [4, 40], ids=["loop-sized", "kernel-sized"])
def test_sequential_gru(units):
    model = Sequential([Input(shape=(7, 3)), GRU(units, return_sequences=True), GRU(5), Dense(1)])
    assert_exported_matches(model, torch.randn(8, 7, 3))


def test_functional_lstm():
    inputs = Input(shape=(6, 2))
    x = Bidirectional(LSTM(4, return_sequences=True))(inputs)
    model = Model(inputs, Dense(2, activation="softmax")(LSTM(3)(x)))
    assert_exported_matches(model, torch.randn(5, 6, 2))


def test_embedding_lstm_ids():
    model = Sequential([Input(shape=(6,), dtype="int64"), Embedding(10, 4), LSTM(3), Dense(1)])
    assert_exported_matches(model, torch.randint(1, 10, (3, 6)))
