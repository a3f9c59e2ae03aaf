"""Loss functions and Loss classes with Keras 3 semantics, on torch tensors.

Every loss comes in two forms:

* a function ``fn(y_true, y_pred) -> per-sample values`` (``mse``, ``binary_crossentropy``,
  ...). Element-wise losses are averaged over the last axis, so a ``(batch, timesteps, k)``
  prediction gives ``(batch, timesteps)`` values;
* a class (``MeanSquaredError()``, ...) whose ``__call__(y_true, y_pred, sample_weight=None)``
  weights those values and reduces them to a scalar ("sum_over_batch_size" by default:
  ``sum(values * sample_weight) / values.numel()``). ``loss.per_sample_loss(y_true, y_pred)``
  returns the unreduced values.

Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` exactly where Keras clips them; the
``from_logits=True`` paths use log-softmax / log-sigmoid forms that never overflow.

Example:
    >>> import torch
    >>> from rnnkit import losses
    >>> y_true = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    >>> y_pred = torch.tensor([[0.1, 0.8], [0.7, 0.9]])
    >>> round(float(losses.get("mse")(y_true, y_pred)), 4)
    0.0375
"""

import math
import re

import torch
import torch.nn.functional as F

from rnnkit._capture import in_graph

EPSILON = 1e-7  # Keras' backend.epsilon(): the clip margin for probabilities.
_aten = torch.ops.aten
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# --------------------------------------------------------------------------- helpers


def _to_tensors(y_true, y_pred):
    """Convert both to tensors; y_pred sets the float dtype and the device."""
    y_pred = torch.as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.get_default_dtype())
    y_true = torch.as_tensor(y_true, device=y_pred.device).to(y_pred.dtype)
    return y_true, y_pred


def align_ranks(x1, x2, expand_rank_1=True):
    """Keras' rank rule: if ranks differ by one and the extra axis has size 1, fix it.

    The longer tensor is squeezed on its last axis, except that a rank-1 partner is
    expanded instead (when ``expand_rank_1``). ``(batch,)`` vs ``(batch, 1)`` becomes
    ``(batch, 1)`` and ``(batch, steps)`` vs ``(batch, steps, 1)`` becomes ``(batch, steps)``.
    """
    if x1.dim() == x2.dim() + 1 and x1.shape[-1] == 1:
        if x2.dim() == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif x2.dim() == x1.dim() + 1 and x2.shape[-1] == 1:
        if x1.dim() == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def _prepare(y_true, y_pred, loss_name):
    """Tensors of equal shape, or a ValueError that says which shapes came."""
    y_true, y_pred = _to_tensors(y_true, y_pred)
    y_true, y_pred = align_ranks(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        hint = ""
        if loss_name == "categorical_crossentropy" and y_true.shape[:-1] == y_pred.shape[:-1]:
            hint = " If y_true holds class indices, use 'sparse_categorical_crossentropy'."
        raise ValueError(
            f"{loss_name}: y_true and y_pred must have the same shape, got "
            f"y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}. Make the target "
            f"match the model output (e.g. y.reshape({tuple(y_pred.shape)})).{hint}"
        )
    return y_true, y_pred


def _check_label_smoothing(label_smoothing):
    if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"label_smoothing must be a float in [0, 1], got {label_smoothing!r}. "
            "Use e.g. label_smoothing=0.1."
        )


# --------------------------------------------------------------------------- functions


def mean_squared_error(y_true, y_pred):
    """``mean((y_true - y_pred) ** 2, axis=-1)``; shape ``y_pred.shape[:-1]``."""
    y_true, y_pred = _prepare(y_true, y_pred, "mean_squared_error")
    return torch.mean(torch.square(y_true - y_pred), dim=-1)


def mean_absolute_error(y_true, y_pred):
    """``mean(|y_true - y_pred|, axis=-1)``."""
    y_true, y_pred = _prepare(y_true, y_pred, "mean_absolute_error")
    return torch.mean(torch.abs(y_true - y_pred), dim=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7), axis=-1)``."""
    y_true, y_pred = _prepare(y_true, y_pred, "mean_absolute_percentage_error")
    diff = torch.abs((y_true - y_pred) / torch.clamp(torch.abs(y_true), min=EPSILON))
    return 100.0 * torch.mean(diff, dim=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """``mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1)) ** 2, axis=-1)``."""
    y_true, y_pred = _prepare(y_true, y_pred, "mean_squared_logarithmic_error")
    first = torch.log(torch.clamp(y_pred, min=EPSILON) + 1.0)
    second = torch.log(torch.clamp(y_true, min=EPSILON) + 1.0)
    return torch.mean(torch.square(first - second), dim=-1)


def huber(y_true, y_pred, delta=1.0):
    """Quadratic ``0.5 * e**2`` for ``|e| <= delta``, linear ``delta * (|e| - delta / 2)``
    beyond; averaged over the last axis."""
    y_true, y_pred = _prepare(y_true, y_pred, "huber")
    error = y_pred - y_true
    abs_error = torch.abs(error)
    quadratic = 0.5 * torch.square(error)
    linear = delta * abs_error - 0.5 * delta**2
    return torch.mean(torch.where(abs_error <= delta, quadratic, linear), dim=-1)


def log_cosh(y_true, y_pred):
    """``mean(log(cosh(y_pred - y_true)), axis=-1)``, computed without overflow as
    ``x + softplus(-2x) - log(2)``."""
    y_true, y_pred = _prepare(y_true, y_pred, "log_cosh")
    x = y_pred - y_true
    return torch.mean(x + F.softplus(-2.0 * x) - math.log(2.0), dim=-1)


def hinge(y_true, y_pred):
    """``mean(max(1 - y_true * y_pred, 0), axis=-1)``; labels in {0, 1} become {-1, 1}."""
    y_true, y_pred = _prepare(y_true, y_pred, "hinge")
    if torch.all((y_true == 0) | (y_true == 1)):
        y_true = 2.0 * y_true - 1.0
    return torch.mean(torch.clamp(1.0 - y_true * y_pred, min=0.0), dim=-1)


def kl_divergence(y_true, y_pred):
    """``sum(y_true * log(y_true / y_pred), axis=-1)`` with both clipped to ``[eps, 1]``."""
    y_true, y_pred = _prepare(y_true, y_pred, "kl_divergence")
    y_true = torch.clamp(y_true, EPSILON, 1.0)
    y_pred = torch.clamp(y_pred, EPSILON, 1.0)
    return torch.sum(y_true * torch.log(y_true / y_pred), dim=-1)


def poisson(y_true, y_pred):
    """``mean(y_pred - y_true * log(y_pred + eps), axis=-1)``."""
    y_true, y_pred = _prepare(y_true, y_pred, "poisson")
    return torch.mean(y_pred - y_true * torch.log(y_pred + EPSILON), dim=-1)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Negative cosine similarity along ``axis``: -1 means same direction, 0 orthogonal.

    Each vector is scaled by ``min(1 / ||v||, 1 / eps)``, so a zero vector gives 0.
    """
    y_true, y_pred = _prepare(y_true, y_pred, "cosine_similarity")

    def unit(v):
        inv_norm = torch.rsqrt(torch.sum(torch.square(v), dim=axis, keepdim=True))
        return v * torch.clamp(inv_norm, max=1.0 / EPSILON)

    return -torch.sum(unit(y_true) * unit(y_pred), dim=axis)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """``-(y log p + (1 - y) log(1 - p))`` averaged over ``axis``.

    Args:
        y_true: Targets in [0, 1], same shape as ``y_pred`` (``(batch,)`` vs ``(batch, 1)``
            is accepted).
        y_pred: Probabilities (clipped to ``[eps, 1 - eps]``) or, with ``from_logits``, logits.
        from_logits: Treat ``y_pred`` as logits and use the stable log-sigmoid form.
        label_smoothing: Squeeze targets towards 0.5: ``y * (1 - s) + 0.5 * s``.
        axis: The axis averaged over.
    """
    _check_label_smoothing(label_smoothing)
    y_true, y_pred = _prepare(y_true, y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        # max(x, 0) - x * y + log(1 + exp(-|x|)): never overflows.
        per_element = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        p = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
        per_element = -(y_true * torch.log(p) + (1.0 - y_true) * torch.log(1.0 - p))
    return torch.mean(per_element, dim=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """``-sum(y_true * log(p), axis)`` for one-hot (or soft) targets.

    Args:
        y_true: One-hot targets, shape ``(..., classes)``.
        y_pred: Probabilities (renormalised to sum to 1, then clipped to ``[eps, 1 - eps]``)
            or, with ``from_logits``, logits (log-softmax is used).
        from_logits: Whether ``y_pred`` holds logits.
        label_smoothing: Mix targets with the uniform distribution:
            ``y * (1 - s) + s / classes``.
        axis: The class axis.
    """
    _check_label_smoothing(label_smoothing)
    y_true, y_pred = _prepare(y_true, y_pred, "categorical_crossentropy")
    if label_smoothing:
        num_classes = y_true.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    if from_logits:
        log_prob = F.log_softmax(y_pred, dim=axis)
    else:
        p = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
        log_prob = torch.log(torch.clamp(p, EPSILON, 1.0 - EPSILON))
    return -torch.sum(y_true * log_prob, dim=axis)


def _sparse_crossentropy_and_mask(y_true, y_pred, from_logits, ignore_class, axis):
    """Per-position loss, plus the boolean mask of positions that count (or None)."""
    y_true, y_pred = _to_tensors(y_true, y_pred)
    if y_true.dim() == y_pred.dim() and y_true.shape[axis] == 1:
        y_true = y_true.squeeze(axis)
    y_pred = torch.movedim(y_pred, axis, -1)  # (..., classes)
    num_classes = y_pred.shape[-1]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(
            "sparse_categorical_crossentropy: y_true must hold one class index per "
            f"prediction, shape {tuple(y_pred.shape[:-1])} (or with a trailing 1), got "
            f"{tuple(y_true.shape)} for y_pred {tuple(y_pred.shape)}. For one-hot targets "
            "use 'categorical_crossentropy'."
        )
    labels = y_true.long()
    valid = None
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = torch.where(valid, labels, torch.zeros_like(labels))
    low, high = 0, 0  # fit checked the labels before recording the step in a CUDA graph
    if labels.numel() and not in_graph():
        low, high = torch.stack(torch.aminmax(labels)).tolist()
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"sparse_categorical_crossentropy: class indices must be in [0, {num_classes}), "
            f"got values from {low} to {high}. Check the labels, "
            "or set ignore_class for a padding label."
        )
    picked = labels.unsqueeze(-1)
    if from_logits:
        loss = -torch.gather(F.log_softmax(y_pred, dim=-1), -1, picked).squeeze(-1)
    else:
        # Keras' -log(clip(p / sum(p), eps, 1 - eps)) at the label; the element-wise steps
        # commute with picking the label, so they run on one value per position, not on all
        # the classes (the same numbers).
        p = torch.gather(y_pred, -1, picked) / torch.sum(y_pred, dim=-1, keepdim=True)
        loss = -torch.log(torch.clamp(p, EPSILON, 1.0 - EPSILON)).squeeze(-1)
    if valid is not None:
        loss = torch.where(valid, loss, torch.zeros_like(loss))
    return loss, valid


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Categorical crossentropy with integer targets: ``-log p[y_true]``.

    Args:
        y_true: Class indices, shape ``y_pred.shape`` without the class axis (a trailing
            axis of size 1 is allowed).
        y_pred: Probabilities or logits, shape ``(..., classes)``.
        from_logits: Whether ``y_pred`` holds logits.
        ignore_class: A label (e.g. a padding id) whose positions get loss 0. The class form
            also leaves them out of the average.
        axis: The class axis of ``y_pred``.
    """
    loss, _ = _sparse_crossentropy_and_mask(y_true, y_pred, from_logits, ignore_class, axis)
    return loss


# Short names Keras accepts as strings; also handy as functions.
mse = mean_squared_error
mae = mean_absolute_error
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error
bce = binary_crossentropy
kld = kl_divergence


# --------------------------------------------------------------------------- reduction


def _check_weight_shape(weight, values):
    if weight.dim() == 0 or values.dim() == 0:
        return
    fits = weight.dim() == values.dim() and all(
        w in (1, v) for w, v in zip(weight.shape, values.shape, strict=True)
    )
    if not fits:
        raise ValueError(
            f"sample_weight of shape {tuple(weight.shape)} does not fit per-sample losses "
            f"of shape {tuple(values.shape)}. Pass one weight per sample with shape "
            f"({values.shape[0]}, 1) or one per position with shape {tuple(values.shape)}."
        )


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size"):
    """Weight per-sample values and reduce them as a Keras Loss does.

    Args:
        values: Per-sample losses, e.g. ``(batch,)`` or ``(batch, timesteps)``.
        sample_weight: None, a scalar, or a tensor matching ``values`` (a trailing axis of
            size 1 is squeezed/expanded, e.g. ``(batch, 1)`` weights whole sequences).
        mask: Optional boolean tensor shaped like ``values``; masked-out positions get
            weight 0 and, for the mean reductions, the mean is over unmasked positions.
        reduction: "sum_over_batch_size" / "mean" (sum divided by ``values.numel()``),
            "sum", "mean_with_sample_weight" (sum divided by the sum of weights), or
            None / "none" (no reduction).
    """
    if mask is not None:
        mask = torch.as_tensor(mask, device=values.device)
        if reduction in ("mean", "sum_over_batch_size"):
            # Weight kept positions by total/valid so that the division by numel()
            # below turns into a division by the number of kept positions.
            valid = mask.to(values.dtype).sum()
            scale = torch.where(valid > 0, mask.numel() / valid, torch.zeros_like(valid))
            float_mask = torch.where(mask.bool(), scale, torch.zeros_like(scale))
        else:
            float_mask = mask.to(values.dtype)
        if sample_weight is None:
            sample_weight = float_mask
        else:
            sample_weight = torch.as_tensor(sample_weight, device=values.device)
            float_mask, sample_weight = align_ranks(float_mask, sample_weight.to(values.dtype))
            sample_weight = sample_weight * float_mask
    if sample_weight is not None:
        sample_weight = torch.as_tensor(sample_weight, device=values.device).to(values.dtype)
        values, sample_weight = align_ranks(values, sample_weight)
        _check_weight_shape(sample_weight, values)
        values = values * sample_weight
    if reduction in (None, "none") or values.dim() == 0 or tuple(values.shape) == (0,):
        return values
    total = torch.sum(values)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = torch.sum(sample_weight)
    else:
        # Made where `total` is (a fill, not a copy that waits for a GPU).
        divisor = torch.full((), float(values.numel()), dtype=total.dtype, device=total.device)
    return torch.where(divisor != 0, total / divisor, torch.zeros_like(total))


# --------------------------------------------------------------------------- classes


class Loss:
    """Base class: ``per_sample_loss`` gives the values, ``__call__`` weights and reduces.

    Args:
        name: Name of the loss (used in configs and logs).
        reduction: One of "sum_over_batch_size" (default), "sum", "mean",
            "mean_with_sample_weight", "none" or None; see ``reduce_weighted_values``.

    Subclasses implement ``per_sample_loss(y_true, y_pred)``.
    """

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: reduction must be one of {list(REDUCTIONS)}, "
                f"got {reduction!r}. The default is reduction='sum_over_batch_size'."
            )
        self.name = name or _snake_case(type(self).__name__)
        self.reduction = reduction

    def per_sample_loss(self, y_true, y_pred):
        """Unreduced loss values, shape ``y_pred.shape[:-1]`` for most losses."""
        raise NotImplementedError

    def _values_and_mask(self, y_true, y_pred):
        return self.per_sample_loss(y_true, y_pred), None

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        """Scalar loss (unless ``reduction`` is "none").

        Args:
            y_true: Targets.
            y_pred: Predictions, e.g. ``(batch, k)`` or ``(batch, timesteps, k)``.
            sample_weight: Optional weights: a scalar, ``(batch,)`` / ``(batch, 1)`` per
                sample, or ``(batch, timesteps)`` per timestep.
            mask: Optional boolean mask shaped like the per-sample values, e.g. the
                ``(batch, timesteps)`` padding mask of a sequence output.
        """
        values, own_mask = self._values_and_mask(y_true, y_pred)
        if own_mask is not None:
            mask = own_mask if mask is None else own_mask & torch.as_tensor(mask).bool()
        return reduce_weighted_values(values, sample_weight, mask, self.reduction)

    def get_config(self):
        """Constructor arguments as a dict; ``type(loss).from_config(config)`` rebuilds it."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class LossFunctionWrapper(Loss):
    """A Loss built from any ``fn(y_true, y_pred, **kwargs) -> per-sample values``.

    Example:
        >>> loss = LossFunctionWrapper(mean_absolute_error, name="mae")
        >>> float(loss([[1.0, 2.0]], [[1.5, 2.5]]))
        0.5
    """

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name or _snake_case(fn.__name__), reduction=reduction)
        self.fn = fn
        self.fn_kwargs = kwargs

    def per_sample_loss(self, y_true, y_pred):
        y_true, y_pred = _to_tensors(y_true, y_pred)
        y_true, y_pred = align_ranks(y_true, y_pred)
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self):
        return {**super().get_config(), **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        if cls is LossFunctionWrapper:
            raise TypeError(
                "LossFunctionWrapper.from_config cannot rebuild an arbitrary function; "
                "create it again with LossFunctionWrapper(fn, ...)."
            )
        return cls(**config)


class MeanSquaredError(LossFunctionWrapper):
    """Mean of squared errors over the last axis, then reduced. See ``mean_squared_error``."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(mean_squared_error, name=name, reduction=reduction)


class MeanAbsoluteError(LossFunctionWrapper):
    """Mean of absolute errors. See ``mean_absolute_error``."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(mean_absolute_error, name=name, reduction=reduction)


class MeanAbsolutePercentageError(LossFunctionWrapper):
    """Mean absolute percentage error. See ``mean_absolute_percentage_error``."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error"):
        super().__init__(mean_absolute_percentage_error, name=name, reduction=reduction)


class MeanSquaredLogarithmicError(LossFunctionWrapper):
    """Mean squared logarithmic error. See ``mean_squared_logarithmic_error``."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error"):
        super().__init__(mean_squared_logarithmic_error, name=name, reduction=reduction)


class Huber(LossFunctionWrapper):
    """Huber loss with threshold ``delta``. See ``huber``."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        if delta < 0:
            raise ValueError(f"Huber: delta must be >= 0, got {delta!r}. Use e.g. delta=1.0.")
        super().__init__(huber, name=name, reduction=reduction, delta=delta)


class LogCosh(LossFunctionWrapper):
    """Log of the hyperbolic cosine of the error. See ``log_cosh``."""

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh"):
        super().__init__(log_cosh, name=name, reduction=reduction)


class Hinge(LossFunctionWrapper):
    """Hinge loss for labels in {-1, 1} (or {0, 1}). See ``hinge``."""

    def __init__(self, reduction="sum_over_batch_size", name="hinge"):
        super().__init__(hinge, name=name, reduction=reduction)


class KLDivergence(LossFunctionWrapper):
    """Kullback-Leibler divergence of ``y_pred`` from ``y_true``. See ``kl_divergence``."""

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence"):
        super().__init__(kl_divergence, name=name, reduction=reduction)


class Poisson(LossFunctionWrapper):
    """Poisson negative log-likelihood (up to a constant). See ``poisson``."""

    def __init__(self, reduction="sum_over_batch_size", name="poisson"):
        super().__init__(poisson, name=name, reduction=reduction)


class CosineSimilarity(LossFunctionWrapper):
    """Negative cosine similarity along ``axis``. See ``cosine_similarity``."""

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity"):
        super().__init__(cosine_similarity, name=name, reduction=reduction, axis=axis)


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary crossentropy; see ``binary_crossentropy`` for the arguments.

    Example:
        >>> loss = BinaryCrossentropy(from_logits=True)
        >>> round(float(loss([[1.0], [0.0]], [[2.0], [-1.0]])), 4)
        0.2201
    """

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_crossentropy",
    ):
        _check_label_smoothing(label_smoothing)
        super().__init__(
            binary_crossentropy,
            name=name,
            reduction=reduction,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy for one-hot targets; see ``categorical_crossentropy``."""

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_crossentropy",
    ):
        _check_label_smoothing(label_smoothing)
        super().__init__(
            categorical_crossentropy,
            name=name,
            reduction=reduction,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy for integer targets; see ``sparse_categorical_crossentropy``.

    With ``ignore_class``, positions holding that label count neither in the sum nor in
    the number of samples the mean divides by.

    Example:
        >>> loss = SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
        >>> logits = torch.zeros(1, 3, 4)  # (batch, timesteps, classes)
        >>> round(float(loss(torch.tensor([[2, 1, 0]]), logits)), 4)  # last step ignored
        1.3863
    """

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        axis=-1,
        name="sparse_categorical_crossentropy",
    ):
        super().__init__(
            sparse_categorical_crossentropy,
            name=name,
            reduction=reduction,
            from_logits=from_logits,
            ignore_class=ignore_class,
            axis=axis,
        )

    def per_sample_loss(self, y_true, y_pred):
        return self._values_and_mask(y_true, y_pred)[0]

    def _values_and_mask(self, y_true, y_pred):
        y_true, y_pred = _to_tensors(y_true, y_pred)
        return _sparse_crossentropy_and_mask(y_true, y_pred, **self.fn_kwargs)


# --------------------------------------------------------------------------- lookup


def _snake_case(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


_CLASSES = (
    MeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    Huber,
    LogCosh,
    Hinge,
    KLDivergence,
    Poisson,
    CosineSimilarity,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
)
_CLASS_OF_FUNCTION = {
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError,
    huber: Huber,
    log_cosh: LogCosh,
    hinge: Hinge,
    kl_divergence: KLDivergence,
    poisson: Poisson,
    cosine_similarity: CosineSimilarity,
    binary_crossentropy: BinaryCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
}
# The strings Keras 3 accepts: class names, function names and a few abbreviations.
_STRING_TO_FUNCTION = {fn.__name__: fn for fn in _CLASS_OF_FUNCTION}
for _short, _fn in [("mse", mse), ("mae", mae), ("mape", mape), ("msle", msle)]:
    _STRING_TO_FUNCTION.update({_short: _fn, _short.upper(): _fn})
_STRING_TO_FUNCTION.update({"bce": bce, "BCE": bce, "kld": kld, "KLD": kld})
_CLASS_BY_NAME = {cls.__name__: cls for cls in _CLASSES}


def get(identifier):
    """Resolve a loss identifier to a ``Loss`` instance.

    Args:
        identifier: A string Keras accepts ("mse", "MSE", "mean_squared_error",
            "MeanSquaredError", "huber", "binary_crossentropy", "bce", ...), a ``Loss``
            instance (returned as is), a Loss class, a config dict
            ``{"class_name": ..., "config": {...}}``, or a function
            ``fn(y_true, y_pred) -> per-sample values`` (wrapped). None gives None.

    A function name or abbreviation gives the matching class with default arguments,
    named after the string (``get("mse").name == "mse"``), as Keras' ``compile`` does.

    Example:
        >>> get("binary_crossentropy")
        BinaryCrossentropy(name='binary_crossentropy')
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier in _CLASS_BY_NAME:
            return _CLASS_BY_NAME[identifier]()
        if identifier in _STRING_TO_FUNCTION:
            return _CLASS_OF_FUNCTION[_STRING_TO_FUNCTION[identifier]](name=identifier)
        known = sorted(set(_CLASS_BY_NAME) | set(_STRING_TO_FUNCTION))
        raise ValueError(f"Unknown loss {identifier!r}. Known names: {', '.join(known)}.")
    if isinstance(identifier, dict):
        if set(identifier) - {"class_name", "config", "module", "registered_name"} or (
            identifier.get("class_name") not in _CLASS_BY_NAME
        ):
            raise ValueError(
                f"Cannot build a loss from {identifier!r}. Expected "
                "{'class_name': <one of " + ", ".join(_CLASS_BY_NAME) + ">, 'config': {...}}."
            )
        return _CLASS_BY_NAME[identifier["class_name"]].from_config(identifier.get("config", {}))
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise TypeError(
        f"Expected a loss name, Loss instance, config dict or function, got "
        f"{type(identifier).__name__}: {identifier!r}. Use e.g. loss='mse'."
    )


# --------------------------------------------------------------------------- gradients


def value_and_gradient(loss, y_true, y_pred, sample_weight=None):
    """`(loss(y_true, y_pred, sample_weight), ∂loss/∂y_pred)`, with no graph left behind.

    fit's direct step (`rnnkit.training._direct`) starts its backward pass here. The
    gradient is written out for the common losses as compiled (mean squared and absolute
    error, binary and sparse categorical crossentropy, default reduction, no weights); any
    other loss, or weights, take autograd through the loss alone. The tests hold both to
    autograd.
    """
    written = None
    if sample_weight is None and loss.reduction == "sum_over_batch_size":
        written = _WRITTEN.get(type(loss))
    if written is not None:
        out = written(y_true, y_pred, **loss.fn_kwargs)
        if out is not None:
            return out
    with torch.enable_grad():
        leaf = y_pred.detach().requires_grad_()
        value = loss(y_true, leaf, sample_weight=sample_weight)
        (grad,) = torch.autograd.grad(value, leaf)
    return value.detach(), grad


def _same_shape(y_true, y_pred):
    """`y_true` as `_prepare` aligns it to `y_pred`, or None where the written gradients do
    not apply (shapes that differ: the loss itself will say how)."""
    if y_true.shape == y_pred.shape and y_true.dtype == y_pred.dtype:
        return y_true  # fit's usual batch
    if y_true.dtype != y_pred.dtype:
        y_true = y_true.to(y_pred.dtype)
    y_true, aligned = align_ranks(y_true, y_pred)
    return y_true if aligned is y_pred and y_true.shape == y_pred.shape else None


def _squared_gradient(y_true, y_pred):
    y_true = _same_shape(y_true, y_pred)
    if y_true is None:
        return None
    diff = y_pred - y_true
    return torch.mean(torch.square(diff)), diff.mul_(2.0 / diff.numel())


def _absolute_gradient(y_true, y_pred):
    y_true = _same_shape(y_true, y_pred)
    if y_true is None:
        return None
    diff = y_pred - y_true
    return torch.mean(torch.abs(diff)), diff.sign_().div_(diff.numel())


def _binary_gradient(y_true, y_pred, from_logits, label_smoothing, axis):
    y_true = _same_shape(y_true, y_pred)
    if y_true is None:
        return None
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        value = F.binary_cross_entropy_with_logits(y_pred, y_true)
        return value, (torch.sigmoid(y_pred) - y_true).div_(y_pred.numel())
    # Keras' -(y log p + (1 - y) log(1 - p)) on p clipped to [eps, 1 - eps]: torch's kernels
    # compute it, and its gradient (p - y) / (p (1 - p)), in one op each; the clip passes no
    # gradient where it bit
    p = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
    value = _aten.binary_cross_entropy(p, y_true, None, 1)  # 1: the mean
    grad = _aten.binary_cross_entropy_backward(_one(value), p, y_true, None, 1)
    return value, grad.mul_(p == y_pred)


_ONES: dict = {}


def _one(like):
    """A 0-d one like `like`, made once per dtype and device."""
    key = (like.dtype, like.device)
    one = _ONES.get(key)
    if one is None:
        one = _ONES[key] = torch.ones((), dtype=like.dtype, device=like.device)
    return one


def _sparse_gradient(y_true, y_pred, from_logits, ignore_class, axis):
    if ignore_class is not None or axis not in (-1, y_pred.dim() - 1):
        return None
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_true.shape != y_pred.shape[:-1]:
        return None
    labels = y_true.long().unsqueeze(-1)
    n = labels.numel()
    if from_logits:
        log_p = F.log_softmax(y_pred, dim=-1)
        value = -torch.gather(log_p, -1, labels).mean()
        grad = log_p.exp_().scatter_add_(-1, labels, torch.full_like(log_p[..., :1], -1.0))
        return value, grad.div_(n)
    # -log(clip(p_l / S)), S the sum over classes: ∂/∂p_j = 1/S - [j = l]/p_l inside the clip
    total = torch.sum(y_pred, dim=-1, keepdim=True)
    picked = torch.gather(y_pred, -1, labels)
    share = picked / total
    value = -torch.log(torch.clamp(share, EPSILON, 1.0 - EPSILON)).mean()
    grad = total.reciprocal().expand_as(y_pred).clone()
    grad.scatter_add_(-1, labels, -picked.reciprocal())
    inside = (share >= EPSILON) & (share <= 1.0 - EPSILON)
    return value, torch.where(inside, grad, 0.0).div_(n)  # 1/p_l may be inf where clipped


_WRITTEN = {
    MeanSquaredError: _squared_gradient,
    MeanAbsoluteError: _absolute_gradient,
    BinaryCrossentropy: _binary_gradient,
    SparseCategoricalCrossentropy: _sparse_gradient,
}
