"""Shared fixtures for the Keras-parity tests.

Keras 3 on the torch backend is the oracle: a test builds the same layer or model in
Keras and in rnnkit, gives Keras random weights, copies them into rnnkit with
`set_weights(keras.get_weights())`, and compares what both compute.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"
# Keras on torch moves to a GPU when there is one; the oracle stays on the CPU, in full
# float32 (cuDNN would round to TF32), where rnnkit's CPU layers are compared with it.
os.environ["KERAS_TORCH_DEVICE"] = "cpu"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnkit  # noqa: E402

ATOL = 1e-5


def pytest_configure(config):
    # Keras' own noise: numpy 2 copy= deprecations and its advice against input_shape=.
    for line in (
        "ignore::DeprecationWarning:keras.*",
        "ignore:Do not pass an `input_shape`:UserWarning",
        "ignore:Argument `input_length` is deprecated:UserWarning",
    ):
        config.addinivalue_line("filterwarnings", line)


@pytest.fixture(autouse=True)
def fresh_session():
    """Automatic layer names restart in both libraries, so `simple_rnn` lines up."""
    keras.utils.clear_session(free_memory=False)
    rnnkit.utils.clear_session()
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def to_numpy(value):
    """A tensor (either library), numpy array or nested list/tuple of them -> numpy."""
    if isinstance(value, (list, tuple)):
        return [to_numpy(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # keras.Variable
        return keras.ops.convert_to_numpy(value)
    return np.asarray(value)


def weight_shapes(obj):
    return [tuple(w.shape) for w in obj.get_weights()]


def randomize_weights(keras_obj, rng, scale=0.5):
    """Give every Keras weight random values (biases too, so they are exercised)."""
    keras_obj.set_weights(
        [rng.normal(0.0, scale, size=w.shape).astype(np.float32) for w in keras_obj.get_weights()]
    )


def copy_weights(keras_obj, ours, rng=None, scale=0.5):
    """Optionally randomize the Keras weights, then load them into the rnnkit object.

    Checks first that both expose the same weight shapes in the same order. Wide or long
    recurrences want a small `scale`: a recurrent kernel with spectral radius > 1 makes
    the dynamics chaotic, and float32 rounding then decides the output.
    """
    assert weight_shapes(ours) == weight_shapes(keras_obj)
    if rng is not None:
        randomize_weights(keras_obj, rng, scale)
    ours.set_weights(keras_obj.get_weights())


def assert_close(ours, theirs, atol=ATOL):
    ours, theirs = to_numpy(ours), to_numpy(theirs)
    if isinstance(theirs, list):
        assert isinstance(ours, list), f"Keras returned {len(theirs)} tensors, rnnkit one"
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_close(a, b, atol)
        return
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)


def capture_summary(model) -> str:
    """The text `model.summary()` prints, from either library."""
    chunks = []
    model.summary(print_fn=lambda text, *args, **kwargs: chunks.append(text))
    return "\n".join(chunks)


def parse_summary(text: str):
    """`(model line, rows, totals)`; a row is the stripped text of each cell.

    Cells that wrap over several lines are joined with a space.
    """
    lines = text.splitlines()
    model_line = next(line.strip() for line in lines if line.startswith("Model:"))
    rows, current = [], None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("│") or stripped.startswith("┃"):
            cells = [c.strip() for c in stripped.strip("│┃").split("│" if "│" in stripped else "┃")]
            if current is None:
                current = cells
            else:
                current = [f"{a} {b}".strip() for a, b in zip(current, cells)]
        elif current is not None:
            rows.append(current)
            current = None
    totals = [line.strip() for line in lines if "params:" in line]
    return model_line, rows, totals


@pytest.fixture
def python_loops(monkeypatch):
    """Run the fused kernels' time loops in Python, as where the compiled loops are not built:
    LSTM then runs torch's own kernel on CPU (its path where the loops are missing)."""
    from kernel_cases import turn_off_loops

    turn_off_loops(monkeypatch)
