"""rnnkit.regularizers against keras.regularizers (torch backend) on the same weights."""

import doctest
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.regularizers import ALL_OBJECTS_DICT as KERAS_REGULARIZERS  # noqa: E402

from rnnkit import regularizers  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.normal(size=(6, 4)).astype(np.float32)
W[2] = 0.0  # a zero row: OrthogonalRegularizer must not divide by its norm
WEIGHTS = {"dense": W, "wide": W.T.copy(), "recurrent": RNG.normal(size=(5, 5)).astype(np.float32)}

CASES = [
    ("L1", {"l1": 0.3}),
    ("L1", {}),
    ("L2", {"l2": 0.1}),
    ("L2", {}),
    ("L1L2", {"l1": 0.01, "l2": 0.02}),
    ("L1L2", {"l2": 0.1}),
    ("L1L2", {}),
    ("OrthogonalRegularizer", {"factor": 0.5}),
    ("OrthogonalRegularizer", {"factor": 0.5, "mode": "columns"}),
    ("OrthogonalRegularizer", {}),
]


def assert_same_config(ours, theirs):
    # Keras keeps l1 and factor as float32 tensors, so its configs say 0.009999999776...
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        assert value == (pytest.approx(theirs[key], rel=1e-7) if key != "mode" else theirs[key])


def keras_value(name, kwargs, w):
    return float(getattr(keras.regularizers, name)(**kwargs)(torch.from_numpy(w)))


@pytest.mark.parametrize(("name", "kwargs"), CASES)
@pytest.mark.parametrize("weight", sorted(WEIGHTS))
def test_penalty_matches_keras(name, kwargs, weight):
    w = WEIGHTS[weight]
    got = getattr(regularizers, name)(**kwargs)(torch.from_numpy(w))
    assert got.shape == () and got.dtype == torch.float32
    assert got.item() == pytest.approx(keras_value(name, kwargs, w), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_float64_weight_gives_float64_penalty(name, kwargs):
    w = WEIGHTS["dense"].astype(np.float64)
    got = getattr(regularizers, name)(**kwargs)(torch.from_numpy(w))
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(keras_value(name, kwargs, w), rel=1e-6, abs=1e-9)


def test_penalty_has_the_textbook_gradient():
    w = torch.from_numpy(WEIGHTS["dense"]).requires_grad_()
    regularizers.L1L2(l1=0.1, l2=0.2)(w).backward()
    torch.testing.assert_close(w.grad, 0.1 * torch.sign(w.detach()) + 0.4 * w.detach())


def test_orthogonal_regularizer_single_vector_is_zero_not_nan():
    w = torch.ones(1, 4)
    assert regularizers.OrthogonalRegularizer(1.0)(w).item() == 0.0
    # Keras divides by the number of pairs, 0, and returns NaN here.
    assert np.isnan(float(keras.regularizers.OrthogonalRegularizer(1.0)(w)))


def test_orthogonal_regularizer_is_zero_for_orthogonal_rows():
    w = 3.0 * torch.eye(4)[:3]  # (3, 4): orthogonal rows of norm 3
    assert regularizers.OrthogonalRegularizer(1.0)(w).item() == 0.0


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_config_round_trip_and_keras_reads_it(name, kwargs):
    reg = getattr(regularizers, name)(**kwargs)
    config = reg.get_config()
    assert type(reg).from_config(config).get_config() == config
    assert regularizers.get(regularizers.serialize(reg)).get_config() == config
    theirs = keras.regularizers.get(regularizers.serialize(reg))
    assert type(theirs).__name__ == name
    assert_same_config(config, theirs.get_config())
    assert_same_config(regularizers.get(keras.regularizers.serialize(theirs)).get_config(), config)


@pytest.mark.parametrize("name", ["L1", "L2", "L1L2", "OrthogonalRegularizer"])
def test_defaults_are_keras_defaults(name):
    theirs = getattr(keras.regularizers, name)().get_config()
    assert_same_config(getattr(regularizers, name)().get_config(), theirs)


KERAS_NAMES = sorted(n for n, cls in KERAS_REGULARIZERS.items() if cls.__name__ != "Regularizer")


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_get_accepts_every_keras_name(name):
    theirs = keras.regularizers.get(name)
    got = regularizers.get(name)
    assert type(got).__name__ == type(theirs).__name__
    assert_same_config(got.get_config(), theirs.get_config())


def test_l1_l2_name_uses_the_factors_keras_documents():
    # Keras' docstring: "L1L2 may be passed to a layer as a string identifier: 'l1_l2'. In
    # this case, the default values used are l1=0.01 and l2=0.01." (Keras 3.15 rejects it.)
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert regularizers.get("l1l2").get_config() == {"l1": 0.0, "l2": 0.0}  # as Keras 3


def test_get_passes_through_none_instances_classes_and_callables():
    reg = regularizers.L2(0.5)
    assert regularizers.get(None) is None and regularizers.serialize(None) is None
    assert regularizers.get(reg) is reg
    assert isinstance(regularizers.get(regularizers.L1), regularizers.L1)

    def penalty(w):
        return w.sum()

    assert regularizers.get(penalty) is penalty


def test_none_factor_means_the_default():
    assert regularizers.L1(None).l1 == 0.01 and regularizers.L2(None).l2 == 0.01
    assert regularizers.L1L2(None, None).get_config() == {"l1": 0.0, "l2": 0.0}


def test_get_and_serialize_errors():
    with pytest.raises(ValueError, match=r"Unknown regularizer 'l3'.*Known names: .*l1_l2"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="needs a 'class_name' key"):
        regularizers.get({"config": {"l2": 0.1}})
    with pytest.raises(TypeError, match="A regularizer must be None, a name"):
        regularizers.get(0.01)
    with pytest.raises(TypeError, match="serialize expects an rnnkit Regularizer"):
        regularizers.serialize(lambda w: w.sum())


def test_bad_arguments():
    with pytest.raises(ValueError, match="L1: l1 must be a finite number >= 0, got -0.1"):
        regularizers.L1(-0.1)
    with pytest.raises(ValueError, match="L2: l2 must be a finite number >= 0, got nan"):
        regularizers.L2(float("nan"))
    with pytest.raises(ValueError, match="L1L2: l2 must be a finite number >= 0"):
        regularizers.L1L2(l2=float("inf"))
    with pytest.raises(TypeError, match="L1: l1 must be a number such as 0.01, got '0.1'"):
        regularizers.L1("0.1")
    with pytest.raises(ValueError, match="factor must be a finite number >= 0"):
        regularizers.OrthogonalRegularizer(factor=-1.0)
    with pytest.raises(ValueError, match="mode must be 'rows' or 'columns', got 'diagonal'"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match=r"needs a 2-D weight, got shape \(2, 3, 4\)"):
        regularizers.OrthogonalRegularizer()(torch.ones(2, 3, 4))


def test_docstring_examples_run():
    assert doctest.testmod(regularizers, extraglobs={"torch": torch}).failed == 0
