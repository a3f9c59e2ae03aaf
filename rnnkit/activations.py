"""Activation functions on torch tensors, giving the numbers Keras 3 gives.

Every function maps a tensor to a tensor of the same shape and dtype. `get` turns a
Keras-style identifier (a name such as ``"tanh"``, ``None``, or a callable) into a
function; `serialize` turns a function back into the name Keras writes in configs.

Example:
    >>> import torch
    >>> from rnnkit import activations
    >>> activations.get("relu")(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    >>> activations.serialize(activations.swish)
    'silu'
"""

import torch
import torch.nn.functional as F


def linear(x):
    """Return `x` unchanged (the identity; what `activation=None` means)."""
    return x


def tanh(x):
    """Hyperbolic tangent: `(e^x - e^-x) / (e^x + e^-x)`."""
    return torch.tanh(x)


def sigmoid(x):
    """Logistic sigmoid: `1 / (1 + e^-x)`."""
    return torch.sigmoid(x)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit with Keras' optional leak, cap and threshold.

    `f(x) = x` for `x > threshold` (clipped to `[0, max_value]` when `max_value` is
    given) and `negative_slope * (x - threshold)` otherwise.

    Args:
        x: input tensor.
        negative_slope: slope below the threshold.
        max_value: largest value returned, or None for no cap.
        threshold: values at or below it are damped by `negative_slope`.

    Example:
        >>> relu(torch.tensor([-10.0, -5.0, 0.0, 5.0, 10.0]), negative_slope=0.5)
        tensor([-5.0000, -2.5000,  0.0000,  5.0000, 10.0000])
        >>> relu(torch.tensor([-10.0, 5.0, 10.0]), max_value=5.0)
        tensor([0., 5., 5.])
    """
    y = torch.relu(x) if threshold == 0 else torch.where(x > threshold, x, 0.0)
    if max_value is not None:
        # Keras clips from 0 as well, even when a negative threshold let y < 0 through.
        y = y.clamp(0.0, max_value)
    if negative_slope != 0:
        y = y - negative_slope * torch.relu(threshold - x)
    return y


def leaky_relu(x, negative_slope=0.2):
    """`x` for `x >= 0`, `negative_slope * x` below (Keras' default slope is 0.2)."""
    return F.leaky_relu(x, negative_slope)


def relu6(x):
    """ReLU capped at 6: `min(max(x, 0), 6)`."""
    return F.relu6(x)


def hard_sigmoid(x):
    """Piecewise-linear sigmoid of Keras 3: `clip(x / 6 + 0.5, 0, 1)`.

    Keras 2 used `0.2 * x + 0.5`; Keras 3 (and this function) use the slope 1/6.
    """
    return F.hardsigmoid(x)


def hard_silu(x):
    """Hard swish: `x * hard_sigmoid(x)`."""
    return F.hardswish(x)


hard_swish = hard_silu


def softmax(x, axis=-1):
    """`exp(x) / sum(exp(x))` along `axis` (an int, or None for all elements).

    Example:
        >>> softmax(torch.tensor([0.0, 0.0]))
        tensor([0.5000, 0.5000])
    """
    if axis is None:
        return F.softmax(x.reshape(-1), dim=0).reshape(x.shape)
    return F.softmax(x, dim=axis)


def log_softmax(x, axis=-1):
    """`log(softmax(x))` along `axis`, computed stably (None: over all elements)."""
    if axis is None:
        return F.log_softmax(x.reshape(-1), dim=0).reshape(x.shape)
    return F.log_softmax(x, dim=axis)


def softplus(x):
    """`log(1 + e^x)` (torch switches to `x` above 20, as Keras on torch does)."""
    return F.softplus(x)


def softsign(x):
    """`x / (1 + |x|)`."""
    return F.softsign(x)


def elu(x, alpha=1.0):
    """Exponential linear unit: `x` for `x > 0`, `alpha * (e^x - 1)` below."""
    return F.elu(x, alpha)


def selu(x):
    """Scaled ELU: `1.0507 * elu(x, alpha=1.6733)` (constants of Klambauer et al.)."""
    return F.selu(x)


def gelu(x, approximate=False):
    """Gaussian error linear unit `x * Phi(x)`; `approximate=True` uses the tanh form."""
    return F.gelu(x, approximate="tanh" if approximate else "none")


def silu(x):
    """Swish / SiLU: `x * sigmoid(x)`."""
    return F.silu(x)


swish = silu


def exponential(x):
    """`e^x`."""
    return torch.exp(x)


def mish(x):
    """`x * tanh(softplus(x))`."""
    return x * torch.tanh(F.softplus(x))


# Keras' names, which are also what `serialize` writes; aliases point at the same function.
_BY_NAME = {
    fn.__name__: fn
    for fn in (
        linear,
        tanh,
        sigmoid,
        relu,
        leaky_relu,
        relu6,
        hard_sigmoid,
        hard_silu,
        softmax,
        log_softmax,
        softplus,
        softsign,
        elu,
        selu,
        gelu,
        silu,
        exponential,
        mish,
    )
}
_BY_NAME.update(swish=silu, hard_swish=hard_silu)
# function -> the name Keras writes for it (the first name, where aliases share a function)
_NAME_OF = {fn: name for name, fn in reversed(_BY_NAME.items())}


def get(identifier):
    """Return the activation function an identifier names.

    Args:
        identifier: None (meaning `linear`), a Keras name such as ``"tanh"`` or
            ``"swish"``, or a callable, which is returned as is.

    Example:
        >>> get("sigmoid") is sigmoid, get(None) is linear
        (True, True)
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(
                f"Unknown activation {identifier!r}. Known names: {', '.join(sorted(_BY_NAME))}. "
                "Pass one of these, or a callable such as `torch.tanh`."
            )
        return _BY_NAME[identifier]
    if callable(identifier):
        return identifier
    raise TypeError(
        "An activation must be None, a name such as 'tanh', or a callable; "
        f"got {identifier!r} of type {type(identifier).__name__}."
    )


def serialize(fn):
    """Return the name Keras writes for an activation (a callable's `__name__` otherwise).

    Example:
        >>> serialize(hard_swish), serialize(torch.nn.functional.gelu)
        ('hard_silu', 'gelu')
    """
    try:
        name = _NAME_OF.get(fn)
    except TypeError:  # an unhashable callable object: not one of ours
        name = None
    if name is not None:
        return name
    if not callable(fn):
        raise TypeError(
            f"serialize expects an activation function such as `tanh`; got {fn!r} "
            f"of type {type(fn).__name__}."
        )
    return getattr(fn, "__name__", type(fn).__name__)


class Attribute:
    """A layer attribute that holds an activation and takes what the constructor takes.

    `layer.activation = None` (linear), `= "relu"` or `= torch.tanh` after construction
    all work, as in Keras, instead of leaving `None` or a name where a function is called.

    Example:
        >>> class Cell:
        ...     activation = Attribute()
        >>> cell = Cell()
        >>> cell.activation = None
        >>> cell.activation is linear
        True
    """

    def __set_name__(self, owner, name):
        self.name, self.slot = name, f"_{name}_fn"

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        # An activation that is a torch.nn.Module (torch.nn.ReLU()): torch's __setattr__ keeps
        # it with the layer's sub-modules instead of calling __set__.
        module = obj.__dict__.get("_modules", {}).get(self.name)
        return module if module is not None else obj.__dict__[self.slot]

    def __set__(self, obj, value):
        obj.__dict__.get("_modules", {}).pop(self.name, None)
        obj.__dict__[self.slot] = get(value)
