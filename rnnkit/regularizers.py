"""Weight penalties in Keras 3 naming: each maps a weight tensor to a scalar loss term.

Example:
    >>> import torch
    >>> from rnnkit import regularizers
    >>> regularizers.get("l2")(torch.ones(5, 5))  # 0.01 * 25
    tensor(0.2500)
    >>> regularizers.serialize(regularizers.L1L2(l1=0.1))
    {'class_name': 'L1L2', 'config': {'l1': 0.1, 'l2': 0.0}}
"""

import math
import numbers

import torch

from rnnkit._registry import lookup, resolve
from rnnkit._registry import serialize as serialize_object


class Regularizer:
    """Base class: subclasses implement `__call__(weight) -> scalar` and `get_config()`."""

    def __call__(self, weight):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(weight).")

    def get_config(self):
        """Return the constructor arguments as a JSON-friendly dict (Keras' keys)."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Build a regularizer from `get_config()` output (Keras configs work too)."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1(Regularizer):
    """`l1 * sum(|w|)`. Example: `L1(0.01)(w)`."""

    def __init__(self, l1=0.01):
        self.l1 = _check_factor(0.01 if l1 is None else l1, "l1", self)

    def __call__(self, weight):
        return self.l1 * weight.abs().sum()

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """`l2 * sum(w^2)` (no factor 1/2). Example: `L2(0.01)(w)`."""

    def __init__(self, l2=0.01):
        self.l2 = _check_factor(0.01 if l2 is None else l2, "l2", self)

    def __call__(self, weight):
        return self.l2 * weight.square().sum()

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    """`l1 * sum(|w|) + l2 * sum(w^2)`; both factors default to 0 as in Keras 3.

    Example:
        >>> L1L2(l1=1.0, l2=1.0)(torch.tensor([-1.0, 2.0]))
        tensor(8.)
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check_factor(0.0 if l1 is None else l1, "l1", self)
        self.l2 = _check_factor(0.0 if l2 is None else l2, "l2", self)

    def __call__(self, weight):
        penalty = weight.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * weight.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * weight.square().sum()
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """`factor` times the mean |cosine| between distinct rows (or columns) of a matrix.

    Rows of a Dense kernel `(in, out)` are the input features' weight vectors; use
    `mode="columns"` to decorrelate the units instead.

    Args:
        factor: non-negative penalty weight.
        mode: "rows" or "columns".

    Example:
        >>> OrthogonalRegularizer(factor=1.0)(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        tensor(0.7071)
    """

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _check_factor(factor, "factor", self)
        if mode not in ("rows", "columns"):
            raise ValueError(
                f"OrthogonalRegularizer: mode must be 'rows' or 'columns', got {mode!r}."
            )
        self.mode = mode

    def __call__(self, weight):
        if weight.ndim != 2:
            raise ValueError(
                "OrthogonalRegularizer: needs a 2-D weight, got shape "
                f"{tuple(weight.shape)}. Apply it to a Dense or recurrent kernel."
            )
        v = weight if self.mode == "rows" else weight.T  # (n, d): the n vectors to decorrelate
        n = v.shape[0]
        if n < 2:
            # No pairs to compare; Keras divides 0 by 0 here and returns NaN.
            return weight.new_zeros(())
        # Unit vectors; like Keras, norms below 1e-7 are treated as 1e-7.
        v = v * torch.rsqrt(v.square().sum(dim=1, keepdim=True)).clamp(max=1e7)
        cosines = v @ v.T  # (n, n)
        off_diagonal = cosines * (1 - torch.eye(n, dtype=v.dtype, device=v.device))
        # Each pair appears twice in the matrix.
        return self.factor * off_diagonal.abs().sum() / (n * (n - 1))

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


def _check_factor(value, name, reg):
    who = type(reg).__name__
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {name} must be a number such as 0.01, got {value!r}.")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{who}: {name} must be a finite number >= 0, got {value}.")
    return float(value)


# Every name keras.regularizers.get accepts, plus "l1_l2" (see `get`).
_BY_NAME = {
    "L1": L1,
    "l1": L1,
    "L2": L2,
    "l2": L2,
    "L1L2": L1L2,
    "l1l2": L1L2,
    "l1_l2": L1L2,
    "OrthogonalRegularizer": OrthogonalRegularizer,
    "orthogonal_regularizer": OrthogonalRegularizer,
}


def _lookup(name):
    return lookup("regularizer", _BY_NAME, name)


def get(identifier):
    """Return the regularizer an identifier describes.

    Args:
        identifier: None (returned as None), a name built with default factors
            (``"l1"``, ``"l2"``, ``"l1l2"``, ``"orthogonal_regularizer"`` and CamelCase
            class names; ``"l1_l2"`` gives ``L1L2(0.01, 0.01)`` as Keras documents), a
            dict ``{"class_name": ..., "config": {...}}``, a `Regularizer` class or
            instance, or any callable `fn(weight) -> scalar`.

    Example:
        >>> get("l1_l2")
        L1L2(l1=0.01, l2=0.01)
    """
    if isinstance(identifier, str) and identifier == "l1_l2":
        # Keras documents l1=l2=0.01 for this name (its Keras 2 meaning); Keras 3.15
        # itself rejects the name, and builds L1L2() with zero factors for "l1l2".
        return L1L2(l1=0.01, l2=0.01)
    return resolve(
        "regularizer",
        identifier,
        Regularizer,
        _BY_NAME,
        "{'class_name': 'L2', 'config': {'l2': 0.01}}",
        "A regularizer must be None, a name such as 'l2', a config dict, a Regularizer "
        "or a callable fn(weight)",
    )


def serialize(regularizer):
    """Return ``{"class_name": ..., "config": ...}`` for a regularizer (None stays None)."""
    return serialize_object(regularizer, Regularizer, "L2(0.01)")
