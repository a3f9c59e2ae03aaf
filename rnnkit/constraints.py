"""Weight constraints in Keras 3 naming: projections applied to a weight after each update.

Norms are taken along `axis` (default 0): for a Dense kernel `(in, out)` that is the
vector of incoming weights of each unit. A list of axes works too, e.g. `[0, 1, 2]` for
a conv kernel `(h, w, in, out)`.

Example:
    >>> import torch
    >>> from rnnkit import constraints
    >>> constraints.get("non_neg")(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
"""

import numbers

from rnnkit._registry import lookup, resolve
from rnnkit._registry import serialize as serialize_object

# Keras' fuzz factor, added to norms before dividing by them.
_EPSILON = 1e-7


class Constraint:
    """Base class: subclasses implement `__call__(weight) -> weight` and `get_config()`."""

    def __call__(self, weight):
        return weight

    def get_config(self):
        """Return the constructor arguments as a JSON-friendly dict (Keras' keys)."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Build a constraint from `get_config()` output (Keras configs work too)."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MaxNorm(Constraint):
    """Scale down each weight vector whose L2 norm exceeds `max_value`.

    Args:
        max_value: largest allowed norm (>= 0).
        axis: axis or list of axes along which norms are taken.

    Example:
        >>> import torch
        >>> MaxNorm(1.0)(torch.tensor([[3.0], [4.0]]))
        tensor([[0.6000],
                [0.8000]])
    """

    def __init__(self, max_value=2, axis=0):
        self.max_value = _check_bound(max_value, "max_value", self)
        self.axis = _check_axis(axis, self)

    def __call__(self, weight):
        norms = _norms(weight, self.axis, self)
        return weight * (norms.clamp(0, self.max_value) / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class MinMaxNorm(Constraint):
    """Move each weight vector's L2 norm into `[min_value, max_value]` at speed `rate`.

    The new norm is `rate * clip(norm, min_value, max_value) + (1 - rate) * norm`.

    Args:
        min_value, max_value: bounds on the norm, `0 <= min_value <= max_value`.
        rate: 1 enforces the bounds at once; smaller values move toward them slowly.
        axis: axis or list of axes along which norms are taken.

    Example:
        >>> import torch
        >>> MinMaxNorm(min_value=1.0, max_value=2.0)(torch.tensor([[0.3], [0.4]]))
        tensor([[0.6000],
                [0.8000]])
    """

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _check_bound(min_value, "min_value", self)
        self.max_value = _check_bound(max_value, "max_value", self)
        if min_value > max_value:
            raise ValueError(
                f"MinMaxNorm: min_value must not exceed max_value, got min_value={min_value}, "
                f"max_value={max_value}."
            )
        self.rate = _check_bound(rate, "rate", self)
        if rate > 1:
            raise ValueError(f"MinMaxNorm: rate must be in [0, 1], got {rate}.")
        self.axis = _check_axis(axis, self)

    def __call__(self, weight):
        norms = _norms(weight, self.axis, self)
        desired = self.rate * norms.clamp(self.min_value, self.max_value) + (1 - self.rate) * norms
        return weight * (desired / (_EPSILON + norms))

    def get_config(self):
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


class NonNeg(Constraint):
    """Set negative weights to zero. Example: `NonNeg()(w)`."""

    def __call__(self, weight):
        return weight.clamp(min=0)


class UnitNorm(Constraint):
    """Scale each weight vector to unit L2 norm (zero vectors stay zero).

    Example:
        >>> import torch
        >>> UnitNorm()(torch.tensor([[3.0], [4.0]]))
        tensor([[0.6000],
                [0.8000]])
    """

    def __init__(self, axis=0):
        self.axis = _check_axis(axis, self)

    def __call__(self, weight):
        return weight / (_EPSILON + _norms(weight, self.axis, self))

    def get_config(self):
        return {"axis": self.axis}


def _norms(weight, axis, constraint):
    axes = [axis] if isinstance(axis, int) else list(axis)
    for a in axes:
        if not -weight.ndim <= a < weight.ndim:
            raise ValueError(
                f"{type(constraint).__name__}: axis {a} is out of range for a weight of shape "
                f"{tuple(weight.shape)}; pick axes in [{-weight.ndim}, {weight.ndim - 1}]."
            )
    return weight.square().sum(dim=axes, keepdim=True).sqrt()


def _check_axis(axis, constraint):
    is_int = isinstance(axis, int) and not isinstance(axis, bool)
    is_int_list = isinstance(axis, (list, tuple)) and all(
        isinstance(a, int) and not isinstance(a, bool) for a in axis
    )
    if not (is_int or (is_int_list and axis)):
        raise TypeError(
            f"{type(constraint).__name__}: axis must be an int or a non-empty list of ints "
            f"such as [0, 1, 2], got {axis!r}."
        )
    return axis


def _check_bound(value, name, constraint):
    who = type(constraint).__name__
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {name} must be a number, got {value!r}.")
    if value < 0:
        raise ValueError(f"{who}: {name} must be >= 0, got {value}.")
    return value


# Every name keras.constraints.get accepts for these classes.
_BY_NAME = {
    "MaxNorm": MaxNorm,
    "max_norm": MaxNorm,
    "MinMaxNorm": MinMaxNorm,
    "min_max_norm": MinMaxNorm,
    "NonNeg": NonNeg,
    "non_neg": NonNeg,
    "UnitNorm": UnitNorm,
    "unit_norm": UnitNorm,
}


def _lookup(name):
    return lookup("constraint", _BY_NAME, name)


def get(identifier):
    """Return the constraint an identifier describes.

    Args:
        identifier: None (returned as None), a name (``"max_norm"``, ``"non_neg"``,
            ``"unit_norm"``, ``"min_max_norm"`` or the CamelCase class name) built with
            default arguments, a dict ``{"class_name": ..., "config": {...}}``, a
            `Constraint` class or instance, or any callable `fn(weight) -> weight`.

    Example:
        >>> get({"class_name": "MaxNorm", "config": {"max_value": 3}})
        MaxNorm(max_value=3, axis=0)
    """
    return resolve(
        "constraint",
        identifier,
        Constraint,
        _BY_NAME,
        "{'class_name': 'MaxNorm', 'config': {'max_value': 2}}",
        "A constraint must be None, a name such as 'max_norm', a config dict, a Constraint "
        "or a callable fn(weight)",
    )


def serialize(constraint):
    """Return ``{"class_name": ..., "config": ...}`` for a constraint (None stays None)."""
    return serialize_object(constraint, Constraint, "MaxNorm(2)")
