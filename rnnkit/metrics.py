"""Stateful metrics with Keras 3 semantics: ``update_state`` per batch, ``result`` per epoch.

Most metrics are a running weighted mean of a per-sample function (``MeanMetricWrapper``);
``Precision``, ``Recall`` and ``AUC`` accumulate confusion counts instead. ``get`` resolves
the strings of ``model.compile(metrics=[...])``, including the shape-dependent meaning of
"accuracy".

Example:
    >>> import torch
    >>> from rnnkit import metrics
    >>> m = metrics.get("accuracy", y_true_shape=(4, 1), y_pred_shape=(4, 1))
    >>> type(m).__name__, m.name
    ('BinaryAccuracy', 'accuracy')
    >>> m.update_state(torch.tensor([[1.0], [0.0], [1.0], [1.0]]),
    ...                torch.tensor([[0.9], [0.2], [0.4], [0.6]]))
    >>> float(m.result())
    0.75
"""

import torch

from rnnkit import losses
from rnnkit.losses import EPSILON, align_ranks

# --------------------------------------------------------------------------- base classes


class Metric:
    """Base class: accumulate with ``update_state``, read with ``result``, clear with
    ``reset_state``.

    Args:
        name: The name shown in logs and History (e.g. "accuracy").

    ``direction`` is "up" when larger is better, "down" when smaller is, None if unknown.
    Calling the metric updates it and returns the new result.
    """

    direction = None

    def __init__(self, name=None):
        self.name = name or losses._snake_case(type(self).__name__)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        """Constructor arguments as a dict; ``type(m).from_config(config)`` rebuilds it."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


def _to_tensor(x, like=None):
    x = torch.as_tensor(x, device=None if like is None else like.device)
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _reduce_to_samples(values, sample_weight):
    """Per-sample means of ``values`` and weights, as Keras' Mean does.

    ``values`` of shape ``(batch, ...)`` are averaged down to the rank of the weights
    (``(batch,)`` weights average each sequence first; ``(batch, timesteps)`` weights
    weight each step), multiplied, and then averaged to ``(batch,)``.
    """
    values = _to_tensor(values)
    if isinstance(sample_weight, (int, float)):  # fit's batch size: no copy to a GPU
        sample_weight = torch.full((), sample_weight, dtype=values.dtype, device=values.device)
    if sample_weight is not None:
        sample_weight = torch.as_tensor(sample_weight, device=values.device).to(values.dtype)
        values, sample_weight = align_ranks(values, sample_weight)
        if values.dim() > sample_weight.dim():
            values = values.mean(dim=tuple(range(sample_weight.dim(), values.dim())))
        try:
            sample_weight = torch.broadcast_to(sample_weight, values.shape)
        except RuntimeError:
            raise ValueError(
                f"sample_weight of shape {tuple(sample_weight.shape)} does not fit metric "
                f"values of shape {tuple(values.shape)}. Pass one weight per sample, shape "
                f"({values.shape[0] if values.dim() else 1},), or one per value."
            ) from None
        values = values * sample_weight
        if sample_weight.dim() > 1:
            sample_weight = sample_weight.mean(dim=tuple(range(1, sample_weight.dim())))
    if values.dim() > 1:
        values = values.mean(dim=tuple(range(1, values.dim())))
    return values, sample_weight


_FOLD = 256  # pending batch sums a Mean keeps at most before adding them up


class Mean(Metric):
    """Running weighted mean of the values passed to ``update_state(values, sample_weight)``.

    Example:
        >>> m = Mean()
        >>> m.update_state([1.0, 3.0, 5.0, 7.0], sample_weight=[1, 1, 0, 0])
        >>> float(m.result())
        2.0
    """

    def reset_state(self):
        # float64 running sums: a long epoch of float32 batch sums would drift.
        self.total = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)
        self._pending = []  # batches' sums and counts not yet added (see update_state)

    def update_state(self, values, sample_weight=None):
        if isinstance(values, torch.Tensor) and values.is_floating_point():
            # fit's every batch: its loss with the batch size as weight, or a metric's values
            # per sample, unweighted. The batch's sum is kept as it is, one op, and added to
            # the running sums when they are read (or every `_FOLD` batches): a dozen ops a
            # batch fewer, and no wait for a GPU.
            batch = None
            if values.dim() == 0 and type(sample_weight) is int:
                batch = (values * sample_weight, sample_weight)
            elif values.dim() == 1 and sample_weight is None:
                batch = (values.sum(), values.shape[0])
            if batch is not None:
                self._pending.append(batch)
                if len(self._pending) >= _FOLD:
                    self._fold()
                return
        values, sample_weight = _reduce_to_samples(values, sample_weight)
        if sample_weight is not None:
            num_samples = sample_weight.sum()
        else:
            num_samples = values.shape[0] if values.dim() >= 1 else 1
        self.total = self.total.to(values.device) + values.sum().double()
        self.count = self.count.to(values.device) + torch.as_tensor(num_samples).double()

    def __copy__(self):
        """A copy with its own pending batches (they are a list, added to in place)."""
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied._pending = list(self._pending)
        return copied

    def _fold(self):
        """Add the pending batches to the running sums: `total` and `count` hold every
        batch only after this (`result()` folds first)."""
        pending, self._pending = self._pending, []
        if pending:
            sums = torch.stack([total for total, _ in pending]).double().sum()
            self.total = self.total.to(sums.device) + sums
            self.count = self.count.to(sums.device) + sum(n for _, n in pending)

    def result(self):
        self._fold()
        if self.count == 0:
            return torch.zeros((), dtype=torch.float32, device=self.total.device)
        return (self.total / self.count).float()


class MeanMetricWrapper(Mean):
    """Running mean of ``fn(y_true, y_pred, **kwargs)``, a per-sample function.

    Args:
        fn: Any function returning per-sample values, e.g. ``losses.mean_absolute_error``.
        name: Name of the metric.
        **kwargs: Passed on to ``fn``.

    Example:
        >>> m = MeanMetricWrapper(losses.mean_absolute_error, name="mae")
        >>> m.update_state([[1.0], [2.0]], [[1.5], [2.5]])
        >>> float(m.result())
        0.5
    """

    def __init__(self, fn, name=None, **kwargs):
        self.fn = fn
        self.fn_kwargs = kwargs
        super().__init__(name=name or "mean_metric_wrapper")

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        """Add one batch.

        Args:
            y_true: Targets.
            y_pred: Predictions.
            sample_weight: Optional per-sample ``(batch,)`` or per-step weights.
            mask: Optional boolean mask shaped like the per-sample values (e.g. the
                ``(batch, timesteps)`` padding mask); masked positions get weight 0.
        """
        values = self.fn(y_true, y_pred, **self.fn_kwargs)
        if mask is not None:
            mask = torch.as_tensor(mask, device=values.device).to(values.dtype)
            if sample_weight is None:
                sample_weight = mask
            else:
                sample_weight = torch.as_tensor(sample_weight, device=values.device)
                mask, sample_weight = align_ranks(mask, sample_weight.to(values.dtype))
                sample_weight = sample_weight * mask
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        if cls is MeanMetricWrapper:
            raise TypeError(
                "MeanMetricWrapper.from_config cannot rebuild an arbitrary function; "
                "create it again with MeanMetricWrapper(fn, ...)."
            )
        return cls(**config)


# --------------------------------------------------------------------------- per-sample functions


def accuracy(y_true, y_pred):
    """1.0 where ``y_pred == y_true`` exactly, else 0.0."""
    y_true, y_pred = align_ranks(*losses._to_tensors(y_true, y_pred))
    return (y_true == y_pred).to(y_pred.dtype)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where ``(y_pred > threshold) == y_true``."""
    y_true, y_pred = align_ranks(*losses._to_tensors(y_true, y_pred))
    return (y_true == (y_pred > threshold).to(y_true.dtype)).to(y_pred.dtype)


def categorical_accuracy(y_true, y_pred):
    """1.0 where the argmax of one-hot ``y_true`` equals the argmax of ``y_pred``."""
    y_true, y_pred = losses._to_tensors(y_true, y_pred)
    _check_class_axis(y_true.shape[:-1], y_pred, "categorical_accuracy", "one-hot ")
    return (torch.argmax(y_true, -1) == torch.argmax(y_pred, -1)).to(y_pred.dtype)


def _sparse_labels(y_true, y_pred):
    y_true, y_pred = losses._to_tensors(y_true, y_pred)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return y_true, y_pred


def _check_class_axis(labels_shape, y_pred, metric_name, kind=""):
    if tuple(labels_shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(
            f"{metric_name}: expected {kind}targets for predictions of shape "
            f"{tuple(y_pred.shape)} (one label per row of scores), got targets whose label "
            f"shape is {tuple(labels_shape)}. Check y_true, or pick the sparse/one-hot "
            "variant of the metric that matches your targets."
        )


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the integer label ``y_true`` equals the argmax of ``y_pred``."""
    y_true, y_pred = _sparse_labels(y_true, y_pred)
    _check_class_axis(y_true.shape, y_pred, "sparse_categorical_accuracy")
    return (y_true == torch.argmax(y_pred, -1).to(y_true.dtype)).to(y_pred.dtype)


def _in_top_k(labels, y_pred, k):
    # A tie with the k-th largest score counts as a hit, as in Keras.
    k = min(k, y_pred.shape[-1])
    kth_largest = torch.topk(y_pred, k, dim=-1).values[..., -1:]
    target_score = torch.gather(y_pred, -1, labels.long().unsqueeze(-1))
    return (target_score >= kth_largest).squeeze(-1).to(y_pred.dtype)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the class of one-hot ``y_true`` is among the ``k`` highest scores."""
    y_true, y_pred = losses._to_tensors(y_true, y_pred)
    _check_class_axis(y_true.shape[:-1], y_pred, "top_k_categorical_accuracy", "one-hot ")
    return _in_top_k(torch.argmax(y_true, -1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the integer label ``y_true`` is among the ``k`` highest scores."""
    y_true, y_pred = _sparse_labels(y_true, y_pred)
    _check_class_axis(y_true.shape, y_pred, "sparse_top_k_categorical_accuracy")
    return _in_top_k(y_true, y_pred, k)


def cosine_proximity(y_true, y_pred, axis=-1):
    """Cosine similarity (positive: 1 means same direction)."""
    return -losses.cosine_similarity(y_true, y_pred, axis=axis)


# --------------------------------------------------------------------------- mean metrics


class Accuracy(MeanMetricWrapper):
    """How often ``y_pred`` equals ``y_true`` exactly."""

    direction = "up"

    def __init__(self, name="accuracy"):
        super().__init__(accuracy, name=name)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches binary labels.

    Args:
        name: Metric name.
        threshold: Predictions above it count as 1.
    """

    direction = "up"

    def __init__(self, name="binary_accuracy", threshold=0.5):
        super().__init__(binary_accuracy, name=name, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of ``y_pred`` matches one-hot labels."""

    direction = "up"

    def __init__(self, name="categorical_accuracy"):
        super().__init__(categorical_accuracy, name=name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of ``y_pred`` matches integer labels."""

    direction = "up"

    def __init__(self, name="sparse_categorical_accuracy"):
        super().__init__(sparse_categorical_accuracy, name=name)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the class of one-hot labels is among the ``k`` highest scores."""

    direction = "up"

    def __init__(self, k=5, name="top_k_categorical_accuracy"):
        super().__init__(top_k_categorical_accuracy, name=name, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often integer labels are among the ``k`` highest scores."""

    direction = "up"

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy"):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, k=k)


class MeanSquaredError(MeanMetricWrapper):
    """Running mean of ``losses.mean_squared_error``."""

    direction = "down"

    def __init__(self, name="mean_squared_error"):
        super().__init__(losses.mean_squared_error, name=name)


class MeanAbsoluteError(MeanMetricWrapper):
    """Running mean of ``losses.mean_absolute_error``."""

    direction = "down"

    def __init__(self, name="mean_absolute_error"):
        super().__init__(losses.mean_absolute_error, name=name)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """Running mean of ``losses.mean_absolute_percentage_error``."""

    direction = "down"

    def __init__(self, name="mean_absolute_percentage_error"):
        super().__init__(losses.mean_absolute_percentage_error, name=name)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    """Running mean of ``losses.mean_squared_logarithmic_error``."""

    direction = "down"

    def __init__(self, name="mean_squared_logarithmic_error"):
        super().__init__(losses.mean_squared_logarithmic_error, name=name)


class CosineSimilarity(MeanMetricWrapper):
    """Running mean of the cosine similarity along ``axis`` (1 is best)."""

    direction = "up"

    def __init__(self, name="cosine_similarity", axis=-1):
        super().__init__(cosine_proximity, name=name, axis=axis)


class Hinge(MeanMetricWrapper):
    """Running mean of ``losses.hinge``."""

    direction = "down"

    def __init__(self, name="hinge"):
        super().__init__(losses.hinge, name=name)


class KLDivergence(MeanMetricWrapper):
    """Running mean of ``losses.kl_divergence``."""

    direction = "down"

    def __init__(self, name="kl_divergence"):
        super().__init__(losses.kl_divergence, name=name)


class Poisson(MeanMetricWrapper):
    """Running mean of ``losses.poisson``."""

    direction = "down"

    def __init__(self, name="poisson"):
        super().__init__(losses.poisson, name=name)


class BinaryCrossentropy(MeanMetricWrapper):
    """Running mean of ``losses.binary_crossentropy`` (same arguments)."""

    direction = "down"

    def __init__(self, name="binary_crossentropy", from_logits=False, label_smoothing=0.0):
        losses._check_label_smoothing(label_smoothing)
        super().__init__(
            losses.binary_crossentropy,
            name=name,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
        )


class CategoricalCrossentropy(MeanMetricWrapper):
    """Running mean of ``losses.categorical_crossentropy`` (same arguments)."""

    direction = "down"

    def __init__(
        self, name="categorical_crossentropy", from_logits=False, label_smoothing=0.0, axis=-1
    ):
        losses._check_label_smoothing(label_smoothing)
        super().__init__(
            losses.categorical_crossentropy,
            name=name,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Running mean of ``losses.sparse_categorical_crossentropy`` (same arguments)."""

    direction = "down"

    def __init__(self, name="sparse_categorical_crossentropy", from_logits=False, axis=-1):
        super().__init__(
            losses.sparse_categorical_crossentropy, name=name, from_logits=from_logits, axis=axis
        )


class RootMeanSquaredError(Mean):
    """Square root of the running (weighted) mean of squared errors.

    Example:
        >>> m = RootMeanSquaredError()
        >>> m.update_state([[0.0, 1.0]], [[3.0, 5.0]])
        >>> round(float(m.result()), 4)
        3.5355
    """

    direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = align_ranks(*losses._to_tensors(y_true, y_pred))
        super().update_state(torch.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self):
        return torch.sqrt(super().result())


# --------------------------------------------------------------------------- confusion metrics


def _check_thresholds(thresholds, owner):
    values = thresholds if isinstance(thresholds, (list, tuple)) else [thresholds]
    bad = [t for t in values if not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0]
    if bad or not values:
        raise ValueError(
            f"{owner}: thresholds must be floats in [0, 1], got {thresholds!r}. "
            "Use e.g. thresholds=0.5 or thresholds=[0.3, 0.5, 0.7]."
        )
    return [float(t) for t in values]


def _confusion_inputs(y_true, y_pred, sample_weight, class_id=None):
    """Flatten labels (bool), predictions and weights the way Keras' confusion metrics do."""
    y_true, y_pred = losses._to_tensors(y_true, y_pred)
    y_pred, y_true = align_ranks(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape for a confusion metric, got "
            f"{tuple(y_true.shape)} and {tuple(y_pred.shape)}."
        )
    if sample_weight is None:
        weight = torch.ones_like(y_pred)
    else:
        weight = torch.as_tensor(sample_weight, device=y_pred.device).to(y_pred.dtype)
        _, aligned = align_ranks(y_true, weight.unsqueeze(-1), expand_rank_1=False)
        try:
            weight = torch.broadcast_to(aligned, y_pred.shape)
        except RuntimeError:
            raise ValueError(
                f"sample_weight of shape {tuple(weight.shape)} does not fit predictions of "
                f"shape {tuple(y_pred.shape)}. Give one weight per prediction, e.g. shape "
                f"{tuple(y_pred.shape[:-1])}, or per sample with shape "
                f"({y_pred.shape[0]},{' 1,' * (y_pred.dim() - 1)})."
            ) from None
    if class_id is not None:
        y_true, y_pred, weight = y_true[..., class_id], y_pred[..., class_id], weight[..., class_id]
    return (y_true != 0).reshape(-1), y_pred.reshape(-1), weight.reshape(-1)


class _ThresholdCounts(Metric):
    """Shared code of Precision and Recall: TP/FP/FN counts at each threshold."""

    direction = "up"

    def __init__(self, thresholds=None, class_id=None, name=None):
        self.init_thresholds = thresholds
        self.thresholds = _check_thresholds(
            0.5 if thresholds is None else thresholds, type(self).__name__
        )
        self.class_id = class_id
        super().__init__(name=name)

    def reset_state(self):
        n = len(self.thresholds)
        self.true_positives = torch.zeros(n, dtype=torch.float64)
        self.false_positives = torch.zeros(n, dtype=torch.float64)
        self.false_negatives = torch.zeros(n, dtype=torch.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        is_pos, y_pred, weight = _confusion_inputs(y_true, y_pred, sample_weight, self.class_id)
        thresholds = torch.tensor(self.thresholds, dtype=y_pred.dtype, device=y_pred.device)
        pred_pos = y_pred[None, :] > thresholds[:, None]  # (thresholds, N)
        weight = weight.double()

        def count(condition):
            return (condition.double() * weight).sum(dim=1).to(self.true_positives.device)

        self.true_positives += count(pred_pos & is_pos)
        self.false_positives += count(pred_pos & ~is_pos)
        self.false_negatives += count(~pred_pos & is_pos)

    def _ratio(self, numerator, other):
        denom = numerator + other
        value = torch.where(denom > 0, numerator / denom, torch.zeros_like(denom)).float()
        return value[0] if len(self.thresholds) == 1 else value

    def get_config(self):
        return {
            **super().get_config(),
            "thresholds": self.init_thresholds,
            "class_id": self.class_id,
        }


class Precision(_ThresholdCounts):
    """``TP / (TP + FP)`` with predictions above ``thresholds`` (default 0.5) counted positive.

    Args:
        thresholds: A float or a list of floats in [0, 1]; a list gives one result each.
        class_id: Restrict to this column of ``(batch, classes)`` predictions.
        name: Metric name.

    Example:
        >>> m = Precision()
        >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        >>> round(float(m.result()), 4)
        0.6667
    """

    def result(self):
        return self._ratio(self.true_positives, self.false_positives)


class Recall(_ThresholdCounts):
    """``TP / (TP + FN)``; arguments as for ``Precision``."""

    def result(self):
        return self._ratio(self.true_positives, self.false_negatives)


class AUC(Metric):
    """Area under the ROC or precision-recall curve, from confusion counts at evenly spaced
    thresholds (Keras' default of 200), summed as Keras does (trapezoids for ROC, the
    Davis & Goadrich interpolation for PR).

    Args:
        num_thresholds: Number of thresholds, > 1 (the ends sit just outside [0, 1]).
        curve: "ROC" or "PR".
        summation_method: "interpolation", "minoring" or "majoring".
        name: Metric name.
        from_logits: Apply a sigmoid to ``y_pred`` first.

    Example:
        >>> m = AUC(num_thresholds=3)
        >>> m.update_state([0, 0, 1, 1], [0.0, 0.5, 0.3, 0.9])
        >>> float(m.result())
        0.75
    """

    direction = "up"

    def __init__(
        self,
        num_thresholds=200,
        curve="ROC",
        summation_method="interpolation",
        name=None,
        from_logits=False,
    ):
        if (
            isinstance(num_thresholds, bool)
            or not isinstance(num_thresholds, int)
            or (num_thresholds <= 1)
        ):
            raise ValueError(f"AUC: num_thresholds must be an integer > 1, got {num_thresholds!r}.")
        if curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR', got {curve!r}.")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(
                "AUC: summation_method must be 'interpolation', 'minoring' or 'majoring', "
                f"got {summation_method!r}."
            )
        self.num_thresholds = num_thresholds
        self.curve = curve
        self.summation_method = summation_method
        self.from_logits = from_logits
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = [0.0 - EPSILON, *inner, 1.0 + EPSILON]
        super().__init__(name=name or "auc")

    def reset_state(self):
        n = self.num_thresholds
        self.true_positives = torch.zeros(n, dtype=torch.float64)
        self.false_positives = torch.zeros(n, dtype=torch.float64)
        self.true_negatives = torch.zeros(n, dtype=torch.float64)
        self.false_negatives = torch.zeros(n, dtype=torch.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            y_pred = torch.sigmoid(torch.as_tensor(y_pred))
        is_pos, y_pred, weight = _confusion_inputs(y_true, y_pred, sample_weight)
        # Thresholds are evenly spaced, so each prediction falls into one bucket: it is
        # above thresholds 0..b and below the rest. Counting per bucket and summing from
        # the top gives all thresholds at once (O(N + T) instead of O(N * T)).
        n = self.num_thresholds
        bucket = torch.ceil(torch.clamp(y_pred, 0.0, 1.0) * (n - 1)) - 1
        bucket = torch.clamp(bucket, min=0).long()
        pos_weight = is_pos.double() * weight.double()
        neg_weight = (~is_pos).double() * weight.double()
        device = self.true_positives.device

        def above_each_threshold(w):
            per_bucket = torch.zeros(n, dtype=torch.float64, device=w.device).index_add_(
                0, bucket, w
            )
            return per_bucket.flip(0).cumsum(0).flip(0).to(device)

        tp, fp = above_each_threshold(pos_weight), above_each_threshold(neg_weight)
        self.true_positives += tp
        self.false_positives += fp
        self.false_negatives += pos_weight.sum().to(device) - tp
        self.true_negatives += neg_weight.sum().to(device) - fp

    def _interpolate_pr_auc(self):
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        p = tp + fp
        dtp = tp[:-1] - tp[1:]
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, torch.clamp(dp, min=0))
        intercept = tp[1:] - slope * p[1:]
        both_positive = (p[:-1] > 0) & (p[1:] > 0)
        ratio = torch.where(
            both_positive, _divide_no_nan(p[:-1], torch.clamp(p[1:], min=0)), torch.ones_like(p[1:])
        )
        increments = _divide_no_nan(
            slope * (dtp + intercept * torch.log(ratio)), torch.clamp(tp[1:] + fn[1:], min=0)
        )
        return increments.sum()

    def result(self):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc().float()
        tp, fp, tn, fn = (
            self.true_positives,
            self.false_positives,
            self.true_negatives,
            self.false_negatives,
        )
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return torch.sum((x[:-1] - x[1:]) * heights).float()

    def get_config(self):
        return {
            **super().get_config(),
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "from_logits": self.from_logits,
        }


def _divide_no_nan(a, b):
    return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)), torch.zeros_like(a))


# --------------------------------------------------------------------------- lookup

_CLASSES = (
    Mean,
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    MeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    RootMeanSquaredError,
    CosineSimilarity,
    Hinge,
    KLDivergence,
    Poisson,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    AUC,
    Precision,
    Recall,
)
# Keras 3 accepts class names, their snake_case forms and these abbreviations.
_BY_NAME = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME.update({losses._snake_case(cls.__name__): cls for cls in _CLASSES})
_BY_NAME.update(
    {
        "mse": MeanSquaredError,
        "MSE": MeanSquaredError,
        "mae": MeanAbsoluteError,
        "MAE": MeanAbsoluteError,
        "mape": MeanAbsolutePercentageError,
        "MAPE": MeanAbsolutePercentageError,
        "msle": MeanSquaredLogarithmicError,
        "MSLE": MeanSquaredLogarithmicError,
        "bce": BinaryCrossentropy,
        "BCE": BinaryCrossentropy,
    }
)
# rnnkit extra (Keras 3 rejects it): the obvious abbreviation.
_BY_NAME.update({"rmse": RootMeanSquaredError, "RMSE": RootMeanSquaredError})

_ACCURACY_FOR_LOSS = {
    losses.binary_crossentropy: BinaryAccuracy,
    losses.categorical_crossentropy: CategoricalAccuracy,
    losses.sparse_categorical_crossentropy: SparseCategoricalAccuracy,
}


def _accuracy_for(loss, y_true_shape, y_pred_shape):
    """Keras 3 compile rule for "accuracy": decided by the target/prediction shapes."""
    if y_true_shape is not None and y_pred_shape is not None:
        y_true_shape, y_pred_shape = tuple(y_true_shape), tuple(y_pred_shape)
        if not y_true_shape or not y_pred_shape:
            raise ValueError(
                f"'accuracy' needs the shapes of one batch, got y_true_shape={y_true_shape} "
                f"and y_pred_shape={y_pred_shape}."
            )
        if y_pred_shape[-1] == 1:
            return BinaryAccuracy
        if len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
            return SparseCategoricalAccuracy
        return CategoricalAccuracy
    if loss is not None:
        loss_fn = getattr(losses.get(loss), "fn", None)
        if loss_fn in _ACCURACY_FOR_LOSS:
            return _ACCURACY_FOR_LOSS[loss_fn]
    raise ValueError(
        "Cannot tell which accuracy 'accuracy' means: Keras decides from the shapes of "
        "targets and predictions. Pass y_true_shape=... and y_pred_shape=... (shapes of one "
        "batch), or a crossentropy loss, e.g. get('accuracy', loss='binary_crossentropy')."
    )


def get(identifier, loss=None, y_true_shape=None, y_pred_shape=None):
    """Resolve a ``compile(metrics=[...])`` entry to a ``Metric`` named as Keras names it.

    Args:
        identifier: A string ("accuracy", "acc", "mae", "mse", "rmse", "auc",
            "binary_accuracy", "Precision", ...), a ``Metric`` instance (returned as is), a
            Metric class, a config dict ``{"class_name": ..., "config": {...}}``, or a
            function ``fn(y_true, y_pred) -> per-sample values`` (wrapped in a running mean).
        loss: The compiled loss; used for "accuracy" only when the shapes are not given.
        y_true_shape: Shape of one batch of targets.
        y_pred_shape: Shape of one batch of predictions.

    "accuracy"/"acc" (any case) follow Keras 3: predictions with last dimension 1 give
    ``BinaryAccuracy``; targets of lower rank than the predictions, or with last dimension
    1, give ``SparseCategoricalAccuracy``; anything else gives ``CategoricalAccuracy``. A
    string identifier becomes the metric's name, as in Keras' History ("acc", "mse", ...).

    Example:
        >>> get("acc", y_true_shape=(32,), y_pred_shape=(32, 10))
        SparseCategoricalAccuracy(name='acc')
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _accuracy_for(loss, y_true_shape, y_pred_shape)(name=identifier)
        if identifier not in _BY_NAME:
            raise ValueError(
                f"Unknown metric {identifier!r}. Known names: accuracy, acc, "
                f"{', '.join(sorted(k for k in _BY_NAME if k.lower() != 'accuracy'))}."
            )
        return _BY_NAME[identifier](name=identifier)
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(identifier.get("class_name"))
        if cls is None or cls.__name__ != identifier["class_name"]:
            raise ValueError(
                f"Cannot build a metric from {identifier!r}. Expected {{'class_name': <one of "
                f"{', '.join(c.__name__ for c in _CLASSES)}>, 'config': {{...}}}}."
            )
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        name = getattr(identifier, "name", None) or losses._snake_case(
            getattr(identifier, "__name__", type(identifier).__name__)
        )
        return MeanMetricWrapper(identifier, name=name)
    raise TypeError(
        f"Expected a metric name, Metric instance, config dict or function, got "
        f"{type(identifier).__name__}: {identifier!r}. Use e.g. metrics=['accuracy']."
    )
