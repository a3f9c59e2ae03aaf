"""rnnkit.losses against Keras 3 (torch backend) on the same inputs."""

import os
import zlib

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src import backend as keras_backend  # noqa: E402
from keras.src.losses import ALL_OBJECTS_DICT as KERAS_LOSS_NAMES  # noqa: E402
from keras.src.trainers.compile_utils import get_loss as keras_compile_loss  # noqa: E402

from rnnkit import losses  # noqa: E402

B, T, K = 4, 5, 3


def _rng(seed):
    return np.random.default_rng(seed)


def _f32(x):
    return np.asarray(x, dtype="float32")


# Data makers: (rng, shape) -> (y_true, y_pred), shape being the shape of y_pred.
def regression(rng, shape):
    return _f32(rng.normal(size=shape)), _f32(rng.normal(size=shape))


def positive(rng, shape):
    return _f32(rng.uniform(0.0, 3.0, size=shape)), _f32(rng.uniform(0.05, 3.0, size=shape))


def plus_minus_one(rng, shape):
    return _f32(rng.choice([-1.0, 1.0], size=shape)), _f32(rng.normal(size=shape))


def zero_one_labels(rng, shape):
    return _f32(rng.integers(0, 2, size=shape)), _f32(rng.normal(size=shape))


def distributions(rng, shape):
    y_true = torch.softmax(torch.tensor(rng.normal(size=shape)), -1).numpy()
    y_pred = torch.softmax(torch.tensor(rng.normal(size=shape)), -1).numpy()
    return _f32(y_true), _f32(y_pred)


def binary_probs(rng, shape):
    """Labels in {0, 1}, probabilities including exact 0 and 1 (the clipping path)."""
    y_pred = rng.uniform(size=shape)
    y_pred.flat[0], y_pred.flat[-1] = 0.0, 1.0
    return _f32(rng.integers(0, 2, size=shape)), _f32(y_pred)


def binary_logits(rng, shape):
    return _f32(rng.integers(0, 2, size=shape)), _f32(rng.normal(scale=3.0, size=shape))


def one_hot_probs(rng, shape):
    y_true = np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    y_pred = rng.uniform(size=shape)
    y_pred.flat[0] = 0.0  # a zero probability: log is clipped
    return _f32(y_true), _f32(y_pred)


def one_hot_logits(rng, shape):
    y_true = np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    return _f32(y_true), _f32(rng.normal(scale=3.0, size=shape))


def sparse_probs(rng, shape):
    return _f32(rng.integers(0, shape[-1], size=shape[:-1])), _f32(rng.uniform(size=shape))


def sparse_probs_clipped(rng, shape):
    """Rows whose label has probability 0 or 1 (the clipped paths), and ordinary rows."""
    labels, y_pred = sparse_probs(rng, shape)
    rows, picked = y_pred.reshape(-1, shape[-1]), labels.reshape(-1).astype(int)
    rows[0, picked[0]] = 0.0  # -log clips at eps: no gradient through it
    rows[1] = 0.0
    rows[1, picked[1]] = 1.0  # p = 1 clips at 1 - eps
    return labels, y_pred


def sparse_logits(rng, shape):
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    return _f32(labels), _f32(rng.normal(scale=3.0, size=shape))


# (rnnkit class, Keras class, constructor kwargs, data maker)
CASES = [
    (losses.MeanSquaredError, keras.losses.MeanSquaredError, {}, regression),
    (losses.MeanAbsoluteError, keras.losses.MeanAbsoluteError, {}, regression),
    (losses.MeanAbsolutePercentageError, keras.losses.MeanAbsolutePercentageError, {}, positive),
    (losses.MeanSquaredLogarithmicError, keras.losses.MeanSquaredLogarithmicError, {}, regression),
    (losses.Huber, keras.losses.Huber, {"delta": 0.7}, regression),
    (losses.LogCosh, keras.losses.LogCosh, {}, regression),
    (losses.Hinge, keras.losses.Hinge, {}, plus_minus_one),
    (losses.Hinge, keras.losses.Hinge, {}, zero_one_labels),
    (losses.KLDivergence, keras.losses.KLDivergence, {}, distributions),
    (losses.Poisson, keras.losses.Poisson, {}, positive),
    (losses.CosineSimilarity, keras.losses.CosineSimilarity, {}, regression),
    (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy, {}, binary_probs),
    (
        losses.BinaryCrossentropy,
        keras.losses.BinaryCrossentropy,
        {"label_smoothing": 0.2},
        binary_probs,
    ),
    (
        losses.BinaryCrossentropy,
        keras.losses.BinaryCrossentropy,
        {"from_logits": True},
        binary_logits,
    ),
    (
        losses.BinaryCrossentropy,
        keras.losses.BinaryCrossentropy,
        {"from_logits": True, "label_smoothing": 0.1},
        binary_logits,
    ),
    (losses.CategoricalCrossentropy, keras.losses.CategoricalCrossentropy, {}, one_hot_probs),
    (
        losses.CategoricalCrossentropy,
        keras.losses.CategoricalCrossentropy,
        {"from_logits": True, "label_smoothing": 0.1},
        one_hot_logits,
    ),
    (
        losses.SparseCategoricalCrossentropy,
        keras.losses.SparseCategoricalCrossentropy,
        {},
        sparse_probs,
    ),
    (
        losses.SparseCategoricalCrossentropy,
        keras.losses.SparseCategoricalCrossentropy,
        {"from_logits": True},
        sparse_logits,
    ),
]
CASE_IDS = [f"{c[0].__name__}-{c[3].__name__}-{c[2]}" for c in CASES]

# (shape of y_pred, shape of sample_weight or None)
WEIGHTINGS = [
    ((B, K), None),
    ((B, K), (B,)),
    ((B, K), (B, 1)),
    ((B, K), ()),
    ((B, T, K), None),
    ((B, T, K), (B, T)),  # one weight per timestep
    ((B, T, K), (B, 1)),  # one weight per sequence
]


def _numpy(x):
    return torch.as_tensor(x).detach().cpu().numpy()


def _assert_close(ours, theirs):
    np.testing.assert_allclose(_numpy(ours), _numpy(theirs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("ours_cls", "keras_cls", "kwargs", "make"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize(("shape", "weight_shape"), WEIGHTINGS)
def test_loss_matches_keras(ours_cls, keras_cls, kwargs, make, shape, weight_shape):
    rng = _rng(zlib.crc32(repr((ours_cls.__name__, kwargs, shape, weight_shape)).encode()))
    y_true, y_pred = make(rng, shape)
    weight = None if weight_shape is None else _f32(rng.uniform(0.0, 2.0, size=weight_shape))
    ours = ours_cls(**kwargs)(torch.from_numpy(y_true), torch.from_numpy(y_pred), weight)
    _assert_close(ours, keras_cls(**kwargs)(y_true, y_pred, sample_weight=weight))


@pytest.mark.parametrize(("ours_cls", "keras_cls", "kwargs", "make"), CASES, ids=CASE_IDS)
def test_per_sample_loss_matches_keras_unreduced(ours_cls, keras_cls, kwargs, make):
    y_true, y_pred = make(_rng(1), (B, T, K))
    ours = ours_cls(**kwargs).per_sample_loss(torch.from_numpy(y_true), torch.from_numpy(y_pred))
    theirs = keras_cls(**kwargs, reduction=None)(y_true, y_pred)
    assert tuple(ours.shape) == (B, T)
    _assert_close(ours, theirs)


@pytest.mark.parametrize("reduction", ["sum", "mean", "mean_with_sample_weight", "none", None])
@pytest.mark.parametrize("weight_shape", [None, (B, T), (B, 1)])
def test_reductions_match_keras(reduction, weight_shape):
    rng = _rng(2)
    y_true, y_pred = regression(rng, (B, T, K))
    weight = None if weight_shape is None else _f32(rng.uniform(0.0, 2.0, size=weight_shape))
    ours = losses.Huber(reduction=reduction)(y_true, y_pred, sample_weight=weight)
    theirs = keras.losses.Huber(reduction=reduction)(y_true, y_pred, sample_weight=weight)
    _assert_close(ours, theirs)


@pytest.mark.parametrize(
    ("y_true_shape", "y_pred_shape"),
    [((B,), (B, 1)), ((B, 1), (B,)), ((B, T), (B, T, 1)), ((B,), (B,))],
)
def test_rank_alignment_matches_keras(y_true_shape, y_pred_shape):
    rng = _rng(3)
    y_true = _f32(rng.integers(0, 2, size=y_true_shape))
    y_pred = _f32(rng.uniform(size=y_pred_shape))
    weight = _f32(rng.uniform(size=(B,)))
    for ours, theirs in [
        (losses.BinaryCrossentropy(), keras.losses.BinaryCrossentropy()),
        (losses.MeanSquaredError(), keras.losses.MeanSquaredError()),
    ]:
        _assert_close(ours(y_true, y_pred, weight), theirs(y_true, y_pred, sample_weight=weight))


@pytest.mark.parametrize("labels_shape", [(B,), (B, 1), (B, T)])
def test_sparse_labels_shapes_match_keras(labels_shape):
    rng = _rng(4)
    shape = (*labels_shape[:1], K) if labels_shape != (B, T) else (B, T, K)
    y_true = rng.integers(0, K, size=labels_shape).astype("int64")
    y_pred = _f32(rng.normal(size=shape))
    ours = losses.SparseCategoricalCrossentropy(from_logits=True)(y_true, y_pred)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y_true, y_pred)
    _assert_close(ours, theirs)


@pytest.mark.parametrize("weight_shape", [None, (B, T)])
def test_ignore_class_averages_over_kept_positions_like_keras(weight_shape):
    rng = _rng(5)
    y_true = rng.integers(0, K, size=(B, T)).astype("int64")
    y_true[:, -2:] = -1  # padding
    y_pred = _f32(rng.normal(size=(B, T, K)))
    weight = None if weight_shape is None else _f32(rng.uniform(size=weight_shape))
    kwargs = {"from_logits": True, "ignore_class": -1}
    ours = losses.SparseCategoricalCrossentropy(**kwargs)(y_true, y_pred, weight)
    theirs = keras.losses.SparseCategoricalCrossentropy(**kwargs)(
        y_true, y_pred, sample_weight=weight
    )
    _assert_close(ours, theirs)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
def test_mask_matches_keras_mask(reduction):
    rng = _rng(6)
    y_true, y_pred = one_hot_logits(rng, (B, T, K))
    mask = rng.uniform(size=(B, T)) > 0.3
    weight = _f32(rng.uniform(size=(B, T)))
    ours = losses.CategoricalCrossentropy(from_logits=True, reduction=reduction)(
        y_true, y_pred, sample_weight=weight, mask=torch.from_numpy(mask)
    )
    keras_pred = torch.from_numpy(y_pred)
    keras_backend.set_keras_mask(keras_pred, torch.from_numpy(mask))
    theirs = keras.losses.CategoricalCrossentropy(from_logits=True, reduction=reduction)(
        y_true, keras_pred, sample_weight=weight
    )
    _assert_close(ours, theirs)


FUNCTIONS = [
    (losses.mse, keras.losses.mean_squared_error, regression),
    (losses.mae, keras.losses.mean_absolute_error, regression),
    (losses.mape, keras.losses.mean_absolute_percentage_error, positive),
    (losses.msle, keras.losses.mean_squared_logarithmic_error, positive),
    (losses.huber, keras.losses.huber, regression),
    (losses.log_cosh, keras.losses.log_cosh, regression),
    (losses.hinge, keras.losses.hinge, plus_minus_one),
    (losses.kld, keras.losses.kl_divergence, distributions),
    (losses.poisson, keras.losses.poisson, positive),
    (losses.cosine_similarity, keras.losses.cosine_similarity, regression),
    (losses.bce, keras.losses.binary_crossentropy, binary_probs),
    (losses.categorical_crossentropy, keras.losses.categorical_crossentropy, one_hot_probs),
    (
        losses.sparse_categorical_crossentropy,
        keras.losses.sparse_categorical_crossentropy,
        sparse_probs,
    ),
]


@pytest.mark.parametrize(("ours", "theirs", "make"), FUNCTIONS, ids=lambda f: f.__name__)
def test_function_forms_match_keras(ours, theirs, make):
    y_true, y_pred = make(_rng(7), (B, T, K))
    _assert_close(ours(y_true, y_pred), theirs(y_true, y_pred))


@pytest.mark.parametrize(
    ("ours", "theirs", "make"),
    [
        (losses.BinaryCrossentropy(), keras.losses.BinaryCrossentropy(), binary_probs),
        (
            losses.BinaryCrossentropy(from_logits=True),
            keras.losses.BinaryCrossentropy(from_logits=True),
            binary_logits,
        ),
        (
            losses.CategoricalCrossentropy(label_smoothing=0.1),
            keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
            one_hot_probs,
        ),
        (
            losses.SparseCategoricalCrossentropy(from_logits=True),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            sparse_logits,
        ),
        (
            losses.SparseCategoricalCrossentropy(),
            keras.losses.SparseCategoricalCrossentropy(),
            sparse_probs,
        ),
        (
            losses.SparseCategoricalCrossentropy(),
            keras.losses.SparseCategoricalCrossentropy(),
            sparse_probs_clipped,
        ),
        (losses.LogCosh(), keras.losses.LogCosh(), regression),
        (losses.Huber(), keras.losses.Huber(), regression),
    ],
    ids=[
        "bce",
        "bce_logits",
        "cce_smoothing",
        "sparse_logits",
        "sparse_probs",
        "sparse_probs_clipped",
        "log_cosh",
        "huber",
    ],
)
def test_gradients_match_keras(ours, theirs, make):
    y_true, y_pred = make(_rng(8), (B, T, K))
    grads = []
    for loss in (ours, theirs):
        pred = torch.tensor(y_pred, requires_grad=True)
        loss(torch.from_numpy(y_true), pred).backward()
        grads.append(pred.grad)
    _assert_close(grads[0], grads[1])


def test_from_logits_is_stable_for_huge_logits():
    y_true = _f32([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    logits = torch.tensor([[1000.0, -1000.0, 0.0], [-500.0, 500.0, 20.0]], requires_grad=True)
    for ours, theirs in [
        (losses.BinaryCrossentropy(from_logits=True), keras.losses.BinaryCrossentropy(True)),
        (
            losses.CategoricalCrossentropy(from_logits=True),
            keras.losses.CategoricalCrossentropy(True),
        ),
    ]:
        value = ours(y_true, logits)
        (grad,) = torch.autograd.grad(value, logits)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
        _assert_close(value, theirs(y_true, logits.detach()))


# Every string Keras' compile accepts for the losses rnnkit implements.
_IMPLEMENTED = {cls.__name__ for cls in losses._CLASSES}
_KERAS_CLASS_OF_FN = {
    cls().fn: cls.__name__ for cls in (getattr(keras.losses, name) for name in _IMPLEMENTED)
}
_KERAS_STRINGS = {
    s: (obj.__name__ if isinstance(obj, type) else _KERAS_CLASS_OF_FN.get(obj))
    for s, obj in KERAS_LOSS_NAMES.items()
}
_KERAS_STRINGS = {s: c for s, c in _KERAS_STRINGS.items() if c in _IMPLEMENTED}
_DATA_FOR = {
    "BinaryCrossentropy": binary_probs,
    "CategoricalCrossentropy": one_hot_probs,
    "SparseCategoricalCrossentropy": sparse_probs,
    "KLDivergence": distributions,
    "Hinge": plus_minus_one,
    "Poisson": positive,
    "MeanAbsolutePercentageError": positive,
}


def test_get_accepts_exactly_the_keras_strings():
    assert len(_KERAS_STRINGS) > 30
    ours = set(losses._CLASS_BY_NAME) | set(losses._STRING_TO_FUNCTION)
    assert ours == set(_KERAS_STRINGS)


@pytest.mark.parametrize("identifier", sorted(_KERAS_STRINGS))
def test_get_resolves_like_keras_compile(identifier):
    expected_class = _KERAS_STRINGS[identifier]
    y_true, y_pred = _DATA_FOR.get(expected_class, regression)(_rng(9), (B, K))
    ours = losses.get(identifier)
    theirs = keras_compile_loss(identifier, y_true, y_pred)
    assert type(ours).__name__ == expected_class
    assert ours.name == theirs.name
    _assert_close(ours(y_true, y_pred), theirs(y_true, y_pred))


@pytest.mark.parametrize(
    "loss",
    [
        losses.MeanSquaredError(),
        losses.Huber(delta=2.0, reduction="sum"),
        losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
        losses.CategoricalCrossentropy(axis=-1),
        losses.SparseCategoricalCrossentropy(ignore_class=0),
        losses.CosineSimilarity(),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_config_contains_keras_config_and_round_trips(loss):
    keras_config = getattr(keras.losses, type(loss).__name__)(**loss.get_config()).get_config()
    config = loss.get_config()
    assert {k: config[k] for k in keras_config} == keras_config
    rebuilt = losses.get({"class_name": type(loss).__name__, "config": config})
    assert type(rebuilt) is type(loss) and rebuilt.get_config() == config


def test_get_passes_instances_and_wraps_functions():
    loss = losses.Huber()
    assert losses.get(loss) is loss
    assert losses.get(None) is None
    assert isinstance(losses.get(losses.Poisson), losses.Poisson)

    def my_abs_error(y_true, y_pred):
        return torch.mean(torch.abs(y_true - y_pred), dim=-1)

    wrapped = losses.get(my_abs_error)
    assert wrapped.name == "my_abs_error"
    y_true, y_pred = regression(_rng(10), (B, K))
    _assert_close(wrapped(y_true, y_pred), keras.losses.MeanAbsoluteError()(y_true, y_pred))


# --------------------------------------------------------------------------- errors


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match=r"Unknown loss 'msee'\. Known names: .*mse"):
        losses.get("msee")


def test_bad_identifier_type():
    with pytest.raises(TypeError, match="Expected a loss name.*got int"):
        losses.get(3)


def test_bad_config_dict():
    with pytest.raises(ValueError, match="Cannot build a loss from"):
        losses.get({"class_name": "Nope", "config": {}})


@pytest.mark.parametrize("value", [-0.1, 1.5, True])
def test_label_smoothing_out_of_range(value):
    with pytest.raises(ValueError, match=r"label_smoothing must be a float in \[0, 1\]"):
        losses.BinaryCrossentropy(label_smoothing=value)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.categorical_crossentropy([[1.0, 0.0]], [[0.5, 0.5]], label_smoothing=value)


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.MeanSquaredError(reduction="average")


def test_negative_huber_delta():
    with pytest.raises(ValueError, match="delta must be >= 0"):
        losses.Huber(delta=-1.0)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same shape, got y_true \(4, 2\) and y_pred \(4, 3\)"):
        losses.MeanSquaredError()(torch.zeros(4, 2), torch.zeros(4, 3))


def test_integer_labels_for_categorical_crossentropy_suggest_sparse():
    with pytest.raises(ValueError, match="use 'sparse_categorical_crossentropy'"):
        losses.CategoricalCrossentropy()(torch.zeros(4, 1), torch.full((4, 3), 1 / 3))


def test_sparse_labels_wrong_shape():
    with pytest.raises(ValueError, match=r"one class index per prediction, shape \(4, 5\)"):
        losses.SparseCategoricalCrossentropy()(torch.zeros(4, 3), torch.full((4, 5, 3), 1 / 3))


def test_sparse_label_out_of_range():
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 3\), got .* to 3"):
        losses.SparseCategoricalCrossentropy()(torch.tensor([0, 3]), torch.full((2, 3), 1 / 3))


def test_per_sample_weight_for_sequence_output_needs_trailing_axis():
    y = torch.zeros(B, T, K)
    with pytest.raises(ValueError, match=r"sample_weight of shape \(4,\) does not fit.*\(4, 1\)"):
        losses.MeanSquaredError()(y, y, sample_weight=torch.ones(B))


def test_wrapper_without_function_cannot_be_rebuilt_from_config():
    with pytest.raises(TypeError, match="cannot rebuild an arbitrary function"):
        losses.LossFunctionWrapper.from_config({"name": "x"})
