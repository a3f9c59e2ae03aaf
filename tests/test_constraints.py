"""rnnkit.constraints against keras.constraints (torch backend) on the same weights."""

import doctest
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.constraints import ALL_OBJECTS_DICT as KERAS_CONSTRAINTS  # noqa: E402

from rnnkit import constraints  # noqa: E402

RNG = np.random.default_rng(0)
DENSE = (RNG.normal(size=(6, 4)) * [[0.1, 1.0, 3.0, 0.0]]).astype(np.float32)  # a zero column
CONV = RNG.normal(size=(3, 3, 2, 5)).astype(np.float32)

CASES = [
    ("MaxNorm", {}, DENSE),
    ("MaxNorm", {"max_value": 1.5}, DENSE),
    ("MaxNorm", {"max_value": 1.0, "axis": 1}, DENSE),
    ("MaxNorm", {"max_value": 2.0, "axis": [0, 1, 2]}, CONV),
    ("MinMaxNorm", {}, DENSE),
    ("MinMaxNorm", {"min_value": 0.5, "max_value": 1.0, "rate": 0.7}, DENSE),
    ("MinMaxNorm", {"min_value": 1.0, "max_value": 2.0, "axis": -1}, CONV),
    ("NonNeg", {}, DENSE),
    ("NonNeg", {}, CONV),
    ("UnitNorm", {}, DENSE),
    ("UnitNorm", {"axis": 1}, DENSE),
    ("UnitNorm", {"axis": (0, 1, 2)}, CONV),
]
IDS = [f"{name}-{kwargs}" for name, kwargs, _ in CASES]


@pytest.mark.parametrize(("name", "kwargs", "w"), CASES, ids=IDS)
def test_projection_matches_keras(name, kwargs, w):
    got = getattr(constraints, name)(**kwargs)(torch.from_numpy(w))
    want = getattr(keras.constraints, name)(**kwargs)(torch.from_numpy(w))
    assert got.shape == w.shape and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want.detach().cpu().numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("name", "kwargs", "w"), CASES, ids=IDS)
def test_float64_matches_keras(name, kwargs, w):
    w = w.astype(np.float64)
    got = getattr(constraints, name)(**kwargs)(torch.from_numpy(w))
    want = getattr(keras.constraints, name)(**kwargs)(torch.from_numpy(w))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want.detach().cpu().numpy(), rtol=1e-12, atol=1e-15)


def test_norms_end_up_where_documented():
    w = torch.from_numpy(DENSE)
    norms = w.norm(dim=0)  # per unit: incoming weights of a Dense kernel
    torch.testing.assert_close(constraints.MaxNorm(1.0)(w).norm(dim=0), norms.clamp(max=1.0))
    unit = constraints.UnitNorm()(w).norm(dim=0)
    torch.testing.assert_close(unit[:3], torch.ones(3))
    assert unit[3] == 0  # the zero column stays zero


@pytest.mark.parametrize(("name", "kwargs", "w"), CASES, ids=IDS)
def test_config_round_trip_and_keras_reads_it(name, kwargs, w):
    c = getattr(constraints, name)(**kwargs)
    config = c.get_config()
    assert type(c).from_config(config).get_config() == config
    assert constraints.get(constraints.serialize(c)).get_config() == config
    theirs = keras.constraints.get(constraints.serialize(c))
    assert type(theirs).__name__ == name and theirs.get_config() == config
    assert constraints.get(keras.constraints.serialize(theirs)).get_config() == config


@pytest.mark.parametrize("name", ["MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"])
def test_defaults_are_keras_defaults(name):
    assert (
        getattr(constraints, name)().get_config() == getattr(keras.constraints, name)().get_config()
    )


KERAS_NAMES = sorted(n for n, cls in KERAS_CONSTRAINTS.items() if cls.__name__ != "Constraint")


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_get_accepts_every_keras_name(name):
    theirs = keras.constraints.get(name)
    got = constraints.get(name)
    assert type(got).__name__ == type(theirs).__name__
    assert got.get_config() == theirs.get_config()


def test_get_passes_through_none_instances_classes_and_callables():
    c = constraints.NonNeg()
    assert constraints.get(None) is None and constraints.serialize(None) is None
    assert constraints.get(c) is c
    assert isinstance(constraints.get(constraints.UnitNorm), constraints.UnitNorm)
    assert constraints.get(torch.abs) is torch.abs


def test_get_and_serialize_errors():
    with pytest.raises(ValueError, match=r"Unknown constraint 'maxnorm'.*Known names: .*max_norm"):
        constraints.get("maxnorm")
    with pytest.raises(ValueError, match="needs a 'class_name' key"):
        constraints.get({"config": {}})
    with pytest.raises(TypeError, match="A constraint must be None, a name"):
        constraints.get(2)
    with pytest.raises(TypeError, match="serialize expects an rnnkit Constraint"):
        constraints.serialize(torch.abs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="MaxNorm: max_value must be >= 0, got -1"):
        constraints.MaxNorm(-1)
    with pytest.raises(TypeError, match="MaxNorm: max_value must be a number, got '2'"):
        constraints.MaxNorm("2")
    with pytest.raises(ValueError, match="MinMaxNorm: min_value must not exceed max_value"):
        constraints.MinMaxNorm(min_value=2.0, max_value=1.0)
    with pytest.raises(ValueError, match=r"MinMaxNorm: rate must be in \[0, 1\], got 1.5"):
        constraints.MinMaxNorm(rate=1.5)
    with pytest.raises(ValueError, match="MinMaxNorm: rate must be >= 0"):
        constraints.MinMaxNorm(rate=-0.5)
    with pytest.raises(TypeError, match="UnitNorm: axis must be an int or a non-empty list"):
        constraints.UnitNorm(axis="0")
    with pytest.raises(TypeError, match="axis must be an int or a non-empty list"):
        constraints.MaxNorm(axis=[])


def test_axis_out_of_range():
    with pytest.raises(ValueError, match=r"UnitNorm: axis 2 is out of range .*\(6, 4\)"):
        constraints.UnitNorm(axis=2)(torch.from_numpy(DENSE))
    with pytest.raises(ValueError, match=r"MaxNorm: axis -5 is out of range.*\[-4, 3\]"):
        constraints.MaxNorm(axis=[0, -5])(torch.from_numpy(CONV))


def test_docstring_examples_run():
    assert doctest.testmod(constraints, extraglobs={"torch": torch}).failed == 0
