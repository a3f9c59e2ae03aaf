"""rnnkit.activations against keras.activations (torch backend) on the same inputs."""

import doctest
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.activations import ALL_OBJECTS_DICT as KERAS_ACTIVATIONS  # noqa: E402

from rnnkit import activations  # noqa: E402

# Negatives, zero, the kinks of relu6 / hard_sigmoid / softplus, and large magnitudes.
_POINTS = [-100.0, -20.5, -6.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 6.0, 20.5, 25.0, 100.0]
X = np.concatenate([np.linspace(-30, 30, 599), _POINTS]).astype(np.float32).reshape(47, 13)

NAMES = sorted(activations._BY_NAME)


def keras_np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def assert_matches_keras(ours, theirs, x=X):
    got = ours(torch.from_numpy(x)).numpy()
    want = keras_np(theirs(x))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_every_name_matches_keras(name):
    assert_matches_keras(activations.get(name), keras.activations.get(name))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"negative_slope": 0.3},
        {"max_value": 6.0},
        {"max_value": 2.5},
        {"threshold": 1.5},
        {"threshold": -1.0},
        {"negative_slope": 0.2, "max_value": 4.0, "threshold": 1.0},
        {"negative_slope": 0.1, "threshold": -2.0},
        {"max_value": 3.0, "threshold": -2.0},  # Keras clips the (-2, 0) band to 0
    ],
)
def test_relu_options_match_keras(kwargs):
    assert_matches_keras(
        lambda x: activations.relu(x, **kwargs), lambda x: keras.activations.relu(x, **kwargs)
    )


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("leaky_relu", {"negative_slope": 0.05}),
        ("elu", {"alpha": 0.5}),
        ("gelu", {"approximate": True}),
        ("softmax", {"axis": 0}),
        ("softmax", {"axis": None}),
        ("log_softmax", {"axis": 0}),
        ("log_softmax", {"axis": None}),
    ],
)
def test_arguments_match_keras(name, kwargs):
    ours, theirs = getattr(activations, name), getattr(keras.activations, name)
    assert_matches_keras(lambda x: ours(x, **kwargs), lambda x: theirs(x, **kwargs))


def test_hard_sigmoid_is_the_keras3_slope_one_sixth():
    x = torch.tensor([-4.0, -3.0, 0.0, 1.5, 3.0, 4.0])
    expected = torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0])  # clip(x / 6 + 1/2, 0, 1)
    torch.testing.assert_close(activations.hard_sigmoid(x), expected)


@pytest.mark.parametrize("name", NAMES)
def test_float64_stays_float64_and_matches_keras(name):
    x = X.astype(np.float64)
    got = activations.get(name)(torch.from_numpy(x))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(
        got.numpy(), keras_np(keras.activations.get(name)(x)), rtol=1e-12, atol=1e-12
    )


def test_names_are_keras_names_and_aliases_share_a_function():
    assert set(NAMES) <= set(KERAS_ACTIVATIONS)
    assert activations.get("swish") is activations.silu is activations.swish
    assert activations.get("hard_swish") is activations.hard_silu is activations.hard_swish


def test_get_none_and_callables():
    assert activations.get(None) is activations.linear
    assert activations.get(torch.sin) is torch.sin
    x = torch.randn(3)
    assert activations.get(None)(x) is x


@pytest.mark.parametrize("name", NAMES)
def test_serialize_gives_the_keras_name(name):
    keras_name = keras.activations.serialize(keras.activations.get(name))
    assert activations.serialize(activations.get(name)) == keras_name
    assert activations.get(keras_name) is activations.get(name)


def test_serialize_user_callable_uses_its_name():
    def scaled_tanh(x):
        return 1.7 * torch.tanh(x)

    assert activations.serialize(scaled_tanh) == "scaled_tanh"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown activation 'tanhh'.*Known names: .*tanh"):
        activations.get("tanhh")


def test_get_rejects_non_callables():
    with pytest.raises(TypeError, match="An activation must be None, a name .* got 3"):
        activations.get(3)


def test_serialize_rejects_non_callables():
    with pytest.raises(TypeError, match="serialize expects an activation function"):
        activations.serialize("tanh")


def test_docstring_examples_run():
    assert doctest.testmod(activations, extraglobs={"torch": torch}).failed == 0
