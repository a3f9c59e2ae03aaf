"""rnnkit.metrics against Keras 3 metrics (torch backend) over several update_state calls."""

import copy
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.metrics import ALL_OBJECTS_DICT as KERAS_METRIC_NAMES  # noqa: E402
from keras.src.trainers.compile_utils import get_metric as keras_compile_metric  # noqa: E402

from rnnkit import losses, metrics  # noqa: E402

B, T, K = 6, 4, 5


def _f32(x):
    return np.asarray(x, dtype="float32")


def _numpy(x):
    return torch.as_tensor(x).detach().cpu().numpy()


def _assert_close(ours, theirs):
    np.testing.assert_allclose(_numpy(ours), _numpy(theirs), rtol=1e-6, atol=1e-6)


# Batch makers: (rng, shape of y_pred) -> (y_true, y_pred)
def binary_probs(rng, shape):
    return _f32(rng.integers(0, 2, size=shape)), _f32(rng.uniform(size=shape))


def on_thresholds(rng, shape):
    """Probabilities sitting exactly on thresholds (a prediction equal to one is negative)."""
    values = np.array([0.0, 0.2, 0.5, 0.7, 1.0])
    return _f32(rng.integers(0, 2, size=shape)), _f32(rng.choice(values, size=shape))


def binary_logits(rng, shape):
    return _f32(rng.integers(0, 2, size=shape)), _f32(rng.normal(scale=2.0, size=shape))


def one_hot(rng, shape):
    y_true = np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    return _f32(y_true), _f32(rng.uniform(size=shape))


def sparse(rng, shape):
    return _f32(rng.integers(0, shape[-1], size=shape[:-1])), _f32(rng.uniform(size=shape))


def sparse_column(rng, shape):
    y_true, y_pred = sparse(rng, shape)
    return y_true[..., None], y_pred


def regression(rng, shape):
    return _f32(rng.normal(size=shape)), _f32(rng.normal(size=shape))


def positive(rng, shape):
    return _f32(rng.uniform(0.1, 3.0, size=shape)), _f32(rng.uniform(0.1, 3.0, size=shape))


def distributions(rng, shape):
    p = torch.softmax(torch.tensor(rng.normal(size=(2, *shape))), -1).numpy()
    return _f32(p[0]), _f32(p[1])


def integers(rng, shape):
    return _f32(rng.integers(0, 3, size=shape)), _f32(rng.integers(0, 3, size=shape))


def ties(rng, shape):
    """Scores with many ties (top-k counts a tie with the k-th score as a hit)."""
    y_true, _ = one_hot(rng, shape)
    return y_true, _f32(rng.integers(0, 3, size=shape))


def sparse_ties(rng, shape):
    y_true, _ = sparse(rng, shape)
    return y_true, _f32(rng.integers(0, 3, size=shape))


# (rnnkit class, Keras class, kwargs, batch maker, y_pred shape)
CASES = [
    ("BinaryAccuracy", {}, binary_probs, (B, 1)),
    ("BinaryAccuracy", {"threshold": 0.3}, binary_probs, (B, T, 1)),
    ("Accuracy", {}, integers, (B, 3)),
    ("CategoricalAccuracy", {}, one_hot, (B, K)),
    ("CategoricalAccuracy", {}, one_hot, (B, T, K)),
    ("SparseCategoricalAccuracy", {}, sparse, (B, K)),
    ("SparseCategoricalAccuracy", {}, sparse_column, (B, K)),
    ("SparseCategoricalAccuracy", {}, sparse, (B, T, K)),
    ("TopKCategoricalAccuracy", {"k": 2}, ties, (B, K)),
    ("TopKCategoricalAccuracy", {"k": 3}, one_hot, (B, T, K)),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, sparse_ties, (B, K)),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, sparse, (B, T, K)),
    ("MeanSquaredError", {}, regression, (B, 3)),
    ("MeanSquaredError", {}, regression, (B, T, 3)),
    ("MeanAbsoluteError", {}, regression, (B, T, 3)),
    ("RootMeanSquaredError", {}, regression, (B, 3)),
    ("RootMeanSquaredError", {}, regression, (B, T, 3)),
    ("MeanAbsolutePercentageError", {}, positive, (B, 3)),
    ("MeanSquaredLogarithmicError", {}, positive, (B, 3)),
    ("CosineSimilarity", {}, regression, (B, T, 3)),
    ("Hinge", {}, binary_logits, (B, 3)),
    ("KLDivergence", {}, distributions, (B, K)),
    ("Poisson", {}, positive, (B, 3)),
    ("BinaryCrossentropy", {"from_logits": True}, binary_logits, (B, T, 1)),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, one_hot, (B, K)),
    ("SparseCategoricalCrossentropy", {}, sparse, (B, T, K)),
    ("Precision", {}, binary_probs, (B, 1)),
    ("Precision", {"thresholds": [0.2, 0.5, 0.8]}, binary_probs, (B, 3)),
    ("Precision", {"class_id": 2}, one_hot, (B, K)),
    ("Recall", {}, binary_probs, (B, T, 1)),
    ("Recall", {"thresholds": [0.0, 0.7]}, binary_probs, (B, 3)),
    ("Precision", {"thresholds": [0.0, 0.2, 0.5, 0.7, 1.0]}, on_thresholds, (B, 3)),
    ("Recall", {}, on_thresholds, (B, 3)),
    ("BinaryAccuracy", {}, on_thresholds, (B, 3)),
    ("AUC", {"num_thresholds": 11}, on_thresholds, (B, 3)),
    ("AUC", {}, binary_probs, (B, 1)),
    ("AUC", {"num_thresholds": 13}, binary_probs, (B, T, 1)),
    ("AUC", {"curve": "PR"}, binary_probs, (B, 1)),
    ("AUC", {"summation_method": "minoring"}, binary_probs, (B, 1)),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, binary_probs, (B, 1)),
    ("AUC", {"from_logits": True}, binary_logits, (B, 1)),
]


def _weight_options(class_name, shape):
    """Weight shapes to try for a batch whose y_pred has ``shape``."""
    if len(shape) == 2:
        return [None, (shape[0],)]
    if class_name in ("Precision", "Recall", "AUC"):
        # Keras' confusion metrics broadcast (batch,) weights against (batch, T, 1) and fail.
        return [None, shape[:2], (shape[0], 1, 1)]
    return [None, (shape[0],), shape[:2]]


def _run(metric, batches):
    for y_true, y_pred, weight in batches:
        metric.update_state(y_true, y_pred, sample_weight=weight)
    return metric.result()


@pytest.mark.parametrize(
    ("class_name", "kwargs", "make", "shape"),
    CASES,
    ids=[f"{c[0]}-{c[2].__name__}-{len(c[3])}d-{c[1]}" for c in CASES],
)
def test_metric_matches_keras_over_several_batches(class_name, kwargs, make, shape):
    rng = np.random.default_rng(len(class_name) + len(shape))
    for weight_shape in _weight_options(class_name, shape):
        batches = []
        for _ in range(3):
            y_true, y_pred = make(rng, shape)
            weight = None if weight_shape is None else _f32(rng.uniform(size=weight_shape))
            batches.append((y_true, y_pred, weight))
        ours = getattr(metrics, class_name)(**kwargs)
        theirs = getattr(keras.metrics, class_name)(**kwargs)
        torch_batches = [(torch.from_numpy(t), torch.from_numpy(p), w) for t, p, w in batches]
        _assert_close(_run(ours, torch_batches), _run(theirs, batches))
        # reset_state forgets everything: the next result covers only new batches.
        ours.reset_state()
        theirs.reset_state()
        _assert_close(_run(ours, torch_batches[1:]), _run(theirs, batches[1:]))


@pytest.mark.parametrize("weights", [None, [1.0, 0.0, 2.0, 0.5]])
def test_mean_matches_keras(weights):
    values = [[1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 6.0, 9.0]]
    ours, theirs = metrics.Mean(), keras.metrics.Mean()
    for v in values:
        ours.update_state(v, sample_weight=weights)
        theirs.update_state(_f32(v), sample_weight=None if weights is None else _f32(weights))
    _assert_close(ours.result(), theirs.result())


def test_mean_metric_wrapper_with_mask_matches_keras_mask():
    from keras.src import backend as keras_backend

    rng = np.random.default_rng(0)
    y_true, y_pred = regression(rng, (B, T, 3))
    mask = rng.uniform(size=(B, T)) > 0.4
    ours = metrics.MeanMetricWrapper(losses.mean_absolute_error, name="mae")
    ours.update_state(y_true, y_pred, mask=torch.from_numpy(mask))
    theirs = keras.metrics.MeanMetricWrapper(keras.losses.mean_absolute_error)
    keras_pred = torch.from_numpy(y_pred)
    keras_backend.set_keras_mask(keras_pred, torch.from_numpy(mask))
    theirs.update_state(y_true, keras_pred)
    _assert_close(ours.result(), theirs.result())


# --------------------------------------------------------------------------- resolution


ACCURACY_TABLE = [
    ((B, 1), (B, 1)),
    ((B,), (B, 1)),
    ((B,), (B, K)),
    ((B, 1), (B, K)),
    ((B, K), (B, K)),
    ((B, T), (B, T, K)),
    ((B, T, 1), (B, T, K)),
    ((B, T, K), (B, T, K)),
    ((B, T, 1), (B, T, 1)),
    ((B, T), (B, T, 1)),
    ((B,), (B,)),
]


@pytest.mark.parametrize("identifier", ["accuracy", "acc", "Accuracy", "ACC"])
@pytest.mark.parametrize(("y_true_shape", "y_pred_shape"), ACCURACY_TABLE)
def test_accuracy_resolves_like_keras_compile(identifier, y_true_shape, y_pred_shape):
    theirs = keras_compile_metric(identifier, np.zeros(y_true_shape), np.zeros(y_pred_shape))
    for loss in (None, "mse", "binary_crossentropy"):  # Keras 3 ignores the loss
        ours = metrics.get(
            identifier, loss=loss, y_true_shape=y_true_shape, y_pred_shape=y_pred_shape
        )
        assert type(ours).__name__ == type(theirs).__name__
        assert ours.name == theirs.name == identifier


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ("binary_crossentropy", metrics.BinaryAccuracy),
        ("bce", metrics.BinaryAccuracy),
        (losses.BinaryCrossentropy(from_logits=True), metrics.BinaryAccuracy),
        ("categorical_crossentropy", metrics.CategoricalAccuracy),
        ("sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
        (losses.sparse_categorical_crossentropy, metrics.SparseCategoricalAccuracy),
    ],
)
def test_accuracy_falls_back_to_the_loss_without_shapes(loss, expected):
    assert type(metrics.get("accuracy", loss=loss)) is expected


# Every string Keras 3 accepts as a metric for the classes rnnkit implements.
_IMPLEMENTED = {cls.__name__ for cls in metrics._CLASSES}
_KERAS_STRINGS = sorted(
    s
    for s, cls in KERAS_METRIC_NAMES.items()
    if isinstance(cls, type) and cls.__name__ in _IMPLEMENTED and s.lower() != "accuracy"
)
_DATA_FOR = {
    "Accuracy": integers,
    "BinaryAccuracy": binary_probs,
    "CategoricalAccuracy": one_hot,
    "SparseCategoricalAccuracy": sparse,
    "TopKCategoricalAccuracy": one_hot,
    "SparseTopKCategoricalAccuracy": sparse,
    "BinaryCrossentropy": binary_probs,
    "CategoricalCrossentropy": one_hot,
    "SparseCategoricalCrossentropy": sparse,
    "KLDivergence": distributions,
    "Poisson": positive,
    "MeanAbsolutePercentageError": positive,
    "MeanSquaredLogarithmicError": positive,
    "AUC": binary_probs,
    "Precision": binary_probs,
    "Recall": binary_probs,
    "Hinge": binary_logits,
}


def test_get_accepts_every_keras_string_for_implemented_metrics():
    assert len(_KERAS_STRINGS) > 40
    ours = {s for s in metrics._BY_NAME if s not in ("rmse", "RMSE") and s.lower() != "accuracy"}
    assert ours == set(_KERAS_STRINGS)


@pytest.mark.parametrize("identifier", _KERAS_STRINGS)
def test_get_resolves_and_names_like_keras_compile(identifier):
    expected = KERAS_METRIC_NAMES[identifier].__name__
    y_true, y_pred = _DATA_FOR.get(expected, regression)(np.random.default_rng(3), (B, K))
    if expected == "Mean":
        ours, theirs = metrics.get(identifier), keras_compile_metric(identifier, None, None)
        ours.update_state(y_pred)
        theirs.update_state(y_pred)
    else:
        ours = metrics.get(identifier, y_true_shape=y_true.shape, y_pred_shape=y_pred.shape)
        theirs = keras_compile_metric(identifier, y_true, y_pred)
        ours.update_state(y_true, y_pred)
        theirs.update_state(y_true, y_pred)
    assert type(ours).__name__ == expected
    assert ours.name == theirs.name
    _assert_close(ours.result(), theirs.result())


def test_rmse_is_an_rnnkit_extra_that_keras_rejects():
    with pytest.raises(ValueError):
        keras_compile_metric("rmse", np.zeros((B, 1)), np.zeros((B, 1)))
    m = metrics.get("rmse")
    assert isinstance(m, metrics.RootMeanSquaredError) and m.name == "rmse"


def test_functions_and_loss_objects_are_wrapped_and_named_like_keras():
    y_true, y_pred = regression(np.random.default_rng(4), (B, 3))
    for ours_id, keras_id in [
        (losses.mean_absolute_error, keras.losses.mean_absolute_error),
        (losses.Huber(), keras.losses.Huber()),
    ]:
        ours, theirs = metrics.get(ours_id), keras_compile_metric(keras_id, y_true, y_pred)
        ours.update_state(y_true, y_pred)
        theirs.update_state(y_true, y_pred)
        assert ours.name == theirs.name
        _assert_close(ours.result(), theirs.result())


def test_get_passes_instances_and_builds_from_config():
    m = metrics.AUC(num_thresholds=50)
    assert metrics.get(m) is m
    assert isinstance(metrics.get(metrics.Recall), metrics.Recall)
    rebuilt = metrics.get({"class_name": "AUC", "config": m.get_config()})
    assert isinstance(rebuilt, metrics.AUC) and rebuilt.get_config() == m.get_config()


@pytest.mark.parametrize(
    "metric",
    [
        metrics.BinaryAccuracy(threshold=0.3),
        metrics.TopKCategoricalAccuracy(k=3),
        metrics.Precision(thresholds=[0.2, 0.4], class_id=1),
        metrics.AUC(num_thresholds=20, curve="PR"),
        metrics.RootMeanSquaredError(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_config_agrees_with_keras(metric):
    theirs = getattr(keras.metrics, type(metric).__name__)(**metric.get_config()).get_config()
    ours = metric.get_config()
    assert {k: theirs[k] for k in ours} == ours


def test_direction_matches_keras():
    for cls in metrics._CLASSES:
        if cls is metrics.Mean:
            continue
        keras_direction = getattr(getattr(keras.metrics, cls.__name__)(), "_direction", None)
        assert cls.direction == keras_direction, cls.__name__


# --------------------------------------------------------------------------- errors


def test_accuracy_without_shapes_or_loss():
    with pytest.raises(ValueError, match=r"Pass y_true_shape=\.\.\. and y_pred_shape=\.\.\."):
        metrics.get("accuracy")
    with pytest.raises(ValueError, match="Cannot tell which accuracy"):
        metrics.get("accuracy", loss="mse")


def test_unknown_metric_lists_known_names():
    with pytest.raises(ValueError, match=r"Unknown metric 'accuracyy'\. Known names: .*auc"):
        metrics.get("accuracyy")


def test_bad_metric_identifier_type():
    with pytest.raises(TypeError, match="Expected a metric name.*got float"):
        metrics.get(0.5)


def test_bad_metric_config():
    with pytest.raises(ValueError, match="Cannot build a metric from"):
        metrics.get({"class_name": "auc", "config": {}})


@pytest.mark.parametrize("thresholds", [1.5, [0.2, -0.1], []])
def test_thresholds_out_of_range(thresholds):
    with pytest.raises(ValueError, match=r"thresholds must be floats in \[0, 1\]"):
        metrics.Precision(thresholds=thresholds)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_thresholds": 1}, "num_thresholds must be an integer > 1"),
        ({"curve": "roc"}, "curve must be 'ROC' or 'PR'"),
        ({"summation_method": "trapezoid"}, "summation_method must be"),
    ],
)
def test_bad_auc_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.AUC(**kwargs)


def test_label_smoothing_checked_in_crossentropy_metrics():
    with pytest.raises(ValueError, match="label_smoothing must be a float"):
        metrics.CategoricalCrossentropy(label_smoothing=2.0)


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape for a confusion metric"):
        metrics.Precision().update_state(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="sparse_categorical_accuracy: expected targets"):
        metrics.SparseCategoricalAccuracy().update_state(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="categorical_accuracy: expected one-hot targets"):
        metrics.CategoricalAccuracy().update_state(torch.zeros(4), torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"sample_weight of shape \(4,\) does not fit pred"):
        metrics.AUC().update_state(torch.zeros(4, 5, 1), torch.zeros(4, 5, 1), torch.ones(4))
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\) does not fit"):
        metrics.MeanSquaredError().update_state(
            torch.zeros(4, 2), torch.zeros(4, 2), sample_weight=torch.ones(3)
        )


def test_wrapper_without_function_cannot_be_rebuilt_from_config():
    with pytest.raises(TypeError, match="cannot rebuild an arbitrary function"):
        metrics.MeanMetricWrapper.from_config({"name": "x"})


def test_a_mean_fed_batch_by_batch_keeps_its_sums_pending_and_adds_them_exactly():
    """fit's batches take the Mean's one-op path (each batch's sum kept, added when read or
    every 256 batches); the result is the general path's, across folds, and a copy (as the
    data-parallel reduction makes) folds without touching the original."""
    torch.manual_seed(0)
    batches = [torch.rand(7, dtype=torch.float32) for _ in range(600)]
    losses_ = [torch.rand((), dtype=torch.float32) for _ in range(600)]
    fast, slow = metrics.Mean(), metrics.Mean()
    tracked, expected = metrics.Mean(), metrics.Mean()
    for values, loss in zip(batches, losses_):
        fast.update_state(values)
        slow.update_state(values, sample_weight=torch.ones(7))  # the general path
        tracked.update_state(loss, sample_weight=7)
        expected.update_state(loss.reshape(1), sample_weight=torch.full((1,), 7.0))
    assert fast._pending  # some sums still pending
    copied = copy.copy(fast)
    copied._fold()
    assert fast._pending  # the original keeps its own
    torch.testing.assert_close(fast.result(), slow.result(), rtol=1e-6, atol=0)
    torch.testing.assert_close(copied.result(), fast.result())
    torch.testing.assert_close(tracked.result(), expected.result(), rtol=1e-6, atol=0)
    assert float(fast.count) == 7 * 600


def test_a_copied_mean_keeps_its_own_pending_batches():
    original = metrics.Mean()
    original.update_state(torch.ones(2))
    copied = copy.copy(original)
    copied.update_state(torch.full((2,), 10.0))
    assert float(original.result()) == 1.0 and float(copied.result()) == 5.5
