"""Weight initializers in Keras 3 layout and naming.

An initializer is called as `init(shape, dtype=torch.float32)` and returns a new tensor.
Shapes are Keras' weight layout: a Dense kernel is `(in, out)`, a recurrent kernel
`(units, units * gates)`, a conv kernel `(..., in_channels, out_channels)`.

Seeds: `seed=None` draws from torch's global RNG, so `torch.manual_seed` makes runs
repeatable and each call gives new values. An int seed gives the same tensor on every
call and, on CPU, the very numbers Keras 3 on the torch backend gives for that seed
(truncated normals differ only where all four of Keras' candidates miss, p ~ 4e-6).

Example:
    >>> import torch
    >>> from rnnkit import initializers
    >>> init = initializers.get("glorot_uniform")
    >>> init((3, 4)).shape
    torch.Size([3, 4])
    >>> initializers.serialize(initializers.Orthogonal(gain=2.0, seed=1))
    {'class_name': 'Orthogonal', 'config': {'seed': 1, 'gain': 2.0}}
"""

import math
import numbers
import operator

import torch

from rnnkit._registry import lookup, resolve
from rnnkit._registry import serialize as serialize_object

# Standard deviation of a unit normal truncated to (-2, 2); VarianceScaling divides by it
# so that the truncated draw has the variance it asks for.
_TRUNCATED_STD = 0.87962566103423978


def compute_fans(shape, input_axes=None, output_axes=None):
    """Return `(fan_in, fan_out)` of a weight shape, as Keras counts them.

    Rank 0 gives (1, 1), rank 1 gives (n, n), rank 2 is `(in, out)`, and higher ranks are
    conv kernels `(*receptive_field, in, out)` whose fans are multiplied by the receptive
    field size. If both `input_axes` and `output_axes` are given, the fans are the
    products of those axes instead.

    Example:
        >>> compute_fans((3, 3, 16, 32))
        (144, 288)
    """
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class Initializer:
    """Base class: subclasses implement `__call__(shape, dtype)` and `get_config()`."""

    def __call__(self, shape, dtype=torch.float32):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(shape, dtype).")

    def get_config(self):
        """Return the constructor arguments as a JSON-friendly dict (Keras' keys)."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Build an initializer from `get_config()` output (Keras configs work too)."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros. Example: `Zeros()((2, 3))`."""

    def __call__(self, shape, dtype=torch.float32):
        return torch.zeros(_check_shape(shape, self), dtype=_check_dtype(dtype, self))


class Ones(Initializer):
    """All ones. Example: `Ones()((2, 3))`."""

    def __call__(self, shape, dtype=torch.float32):
        return torch.ones(_check_shape(shape, self), dtype=_check_dtype(dtype, self))


class Constant(Initializer):
    """Every element equal to one scalar `value`.

    Example:
        >>> Constant(0.5)((2,))
        tensor([0.5000, 0.5000])
    """

    def __init__(self, value=0.0):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if not isinstance(value, numbers.Number):
            raise TypeError(
                f"Constant: value must be a scalar such as 0.5, got {type(value).__name__}. "
                "For a whole array, copy it into the weight after building the layer."
            )
        self.value = value

    def __call__(self, shape, dtype=torch.float32):
        return torch.full(_check_shape(shape, self), self.value, dtype=_check_dtype(dtype, self))

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    """`gain` times the identity matrix (ones on the main diagonal of a 2-D shape).

    Example:
        >>> Identity(gain=2.0)((2, 3))
        tensor([[2., 0., 0.],
                [0., 2., 0.]])
    """

    def __init__(self, gain=1.0):
        self.gain = _check_number(gain, "gain", self)

    def __call__(self, shape, dtype=torch.float32):
        shape = _check_shape(shape, self)
        if len(shape) != 2:
            raise ValueError(
                f"Identity: needs a 2-D shape (rows, cols), got {shape}. "
                "Use it for square matrices such as a recurrent kernel."
            )
        dtype = _check_dtype(dtype, self)
        return (self.gain * torch.eye(*shape, dtype=dtype)).to(dtype)

    def get_config(self):
        return {"gain": self.gain}


class RandomInitializer(Initializer):
    """Base class of the random initializers: holds the seed (None or an int)."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(
                f"{type(self).__name__}: seed must be None or an int such as 42, got {seed!r}."
            )
        self.seed = seed

    def _generator(self):
        """A fresh generator for an int seed (so each call repeats), else None (global)."""
        if self.seed is None:
            return None
        # Keras on torch seeds its generator with the seed taken as an unsigned 32-bit int.
        return torch.Generator().manual_seed(self.seed % 2**32)

    def get_config(self):
        return {"seed": self.seed}


class RandomUniform(RandomInitializer):
    """Uniform on `[minval, maxval)`.

    Example:
        >>> w = RandomUniform(-1.0, 1.0, seed=0)((100,))
        >>> bool(w.min() >= -1 and w.max() < 1)
        True
    """

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = _check_number(minval, "minval", self)
        self.maxval = _check_number(maxval, "maxval", self)
        if minval > maxval:
            raise ValueError(
                f"RandomUniform: minval must not exceed maxval, got minval={minval}, "
                f"maxval={maxval}. Swap them: RandomUniform({maxval}, {minval})."
            )

    def __call__(self, shape, dtype=torch.float32):
        shape, dtype = _check_shape(shape, self), _check_float_dtype(dtype, self)
        return _uniform(shape, self.minval, self.maxval, dtype, self._generator())

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class RandomNormal(RandomInitializer):
    """Normal with mean `mean` and standard deviation `stddev`.

    Example:
        >>> RandomNormal(stddev=1.0, seed=0)((1000,)).std().round(decimals=1)
        tensor(1.)
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = _check_number(mean, "mean", self)
        self.stddev = _check_stddev(stddev, self)

    def __call__(self, shape, dtype=torch.float32):
        shape, dtype = _check_shape(shape, self), _check_float_dtype(dtype, self)
        return torch.normal(
            self.mean, self.stddev, size=shape, generator=self._generator(), dtype=dtype
        )

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomInitializer):
    """Normal(mean, stddev) with draws beyond two stddevs from the mean redrawn.

    The values are bounded by `mean ± 2 * stddev`; their standard deviation is about
    `0.88 * stddev`.

    Example:
        >>> bool(TruncatedNormal(stddev=1.0, seed=0)((1000,)).abs().max() < 2)
        True
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = _check_number(mean, "mean", self)
        self.stddev = _check_stddev(stddev, self)

    def __call__(self, shape, dtype=torch.float32):
        shape, dtype = _check_shape(shape, self), _check_float_dtype(dtype, self)
        return _truncated_normal(shape, self.mean, self.stddev, dtype, self._generator())

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class VarianceScaling(RandomInitializer):
    """Zero-mean draws with variance `scale / n`, `n` a fan of the weight's shape.

    `n` is fan_in, fan_out or their mean (`mode`); see `compute_fans`. The draw is
    uniform on `±sqrt(3 * scale / n)`, a normal truncated at two stddevs and rescaled so
    its stddev is `sqrt(scale / n)`, or an untruncated normal (`distribution`).

    Args:
        scale: positive variance factor (1 for Glorot/LeCun, 2 for He).
        mode: "fan_in", "fan_out" or "fan_avg".
        distribution: "truncated_normal" (alias "normal"), "untruncated_normal" or
            "uniform".
        seed: None (torch's global RNG) or an int.
        input_axes, output_axes: optional axes whose sizes multiply into the fans.

    Example:
        >>> w = VarianceScaling(2.0, "fan_in", "uniform", seed=0)((600, 10))
        >>> bool(w.abs().max() <= math.sqrt(3 * 2.0 / 600))
        True
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(
        self,
        scale=1.0,
        mode="fan_in",
        distribution="truncated_normal",
        seed=None,
        input_axes=None,
        output_axes=None,
    ):
        super().__init__(seed)
        name = type(self).__name__
        if _check_number(scale, "scale", self) <= 0:
            raise ValueError(f"{name}: scale must be positive, got {scale}. Example: scale=1.0.")
        if mode not in self._MODES:
            raise ValueError(f"{name}: mode must be one of {self._MODES}, got {mode!r}.")
        if isinstance(distribution, str):
            distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(
                f"{name}: distribution must be one of {self._DISTRIBUTIONS} (or 'normal'), "
                f"got {distribution!r}."
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.input_axes, self.output_axes = input_axes, output_axes

    def __call__(self, shape, dtype=torch.float32):
        shape, dtype = _check_shape(shape, self), _check_float_dtype(dtype, self)
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        generator = self._generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return _uniform(shape, -limit, limit, dtype, generator)
        if self.distribution == "untruncated_normal":
            return torch.normal(
                0.0, math.sqrt(variance), size=shape, generator=generator, dtype=dtype
            )
        stddev = math.sqrt(variance) / _TRUNCATED_STD
        return _truncated_normal(shape, 0.0, stddev, dtype, generator)

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


class _Preset(VarianceScaling):
    """VarianceScaling with `(scale, mode, distribution)` fixed by the subclass."""

    _preset = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(*self._preset, seed=seed, input_axes=input_axes, output_axes=output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}


class GlorotUniform(_Preset):
    """Xavier uniform: `U(±sqrt(6 / (fan_in + fan_out)))`. Keras' default kernel init."""

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Xavier normal: truncated normal with stddev `sqrt(2 / (fan_in + fan_out))`."""

    _preset = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_Preset):
    """He uniform: `U(±sqrt(6 / fan_in))`, for ReLU layers."""

    _preset = (2.0, "fan_in", "uniform")


class HeNormal(_Preset):
    """He normal: truncated normal with stddev `sqrt(2 / fan_in)`."""

    _preset = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """LeCun uniform: `U(±sqrt(3 / fan_in))`."""

    _preset = (1.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """LeCun normal: truncated normal with stddev `sqrt(1 / fan_in)` (for SELU)."""

    _preset = (1.0, "fan_in", "truncated_normal")


class Orthogonal(RandomInitializer):
    """`gain` times a random orthogonal matrix (Keras' default recurrent kernel init).

    The shape is flattened to `(prod(shape[:-1]), shape[-1])`. A tall matrix gets
    orthonormal columns (`W^T W = I`), a wide one orthonormal rows (`W W^T = I`). The
    matrix is the Q of a QR decomposition of a Gaussian draw, with column signs fixed
    by `diag(R)` so that it is uniformly distributed.

    Example:
        >>> w = Orthogonal(seed=0)((4, 4))
        >>> torch.allclose(w @ w.T, torch.eye(4), atol=1e-6)
        True
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = _check_number(gain, "gain", self)

    def __call__(self, shape, dtype=torch.float32):
        shape, dtype = _check_shape(shape, self), _check_float_dtype(dtype, self)
        if len(shape) < 2:
            raise ValueError(
                f"Orthogonal: needs a shape of rank 2 or more, got {shape}. "
                "For a bias vector use Zeros() or RandomNormal()."
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        work = dtype if dtype in (torch.float32, torch.float64) else torch.float32  # QR needs it
        a = torch.normal(
            0.0,
            1.0,
            size=(max(rows, cols), min(rows, cols)),
            generator=self._generator(),
            dtype=work,
        )  # (long side, short side): QR of a tall matrix
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).to(dtype)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


def _uniform(shape, minval, maxval, dtype, generator):
    # Same expression and draw order as Keras 3 on torch, so seeded values match it.
    return (maxval - minval) * torch.rand(shape, generator=generator, dtype=dtype) + minval


def _truncated_normal(shape, mean, stddev, dtype, generator):
    # Keras 3 on torch draws four candidates per element and keeps the first one inside
    # (-2, 2). When all four miss (p ~ 4e-6) Keras keeps a miss; we redraw instead.
    candidates = torch.normal(0.0, 1.0, size=(*shape, 4), generator=generator, dtype=dtype)
    first_inside = (candidates.abs() < 2).to(torch.uint8).argmax(dim=-1, keepdim=True)
    x = candidates.gather(-1, first_inside).squeeze(-1)  # (*shape)
    outside = x.abs() >= 2
    while outside.any():
        size = (int(outside.sum()),)
        x[outside] = torch.normal(0.0, 1.0, size=size, generator=generator, dtype=dtype)
        outside = x.abs() >= 2
    return x * stddev + mean


def _check_shape(shape, init):
    try:
        dims = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(
            f"{type(init).__name__}: shape must be a tuple of ints such as (64, 32), got {shape!r}."
        ) from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{type(init).__name__}: shape sizes must be >= 0, got {shape!r}.")
    return dims


def _check_dtype(dtype, init):
    dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(dtype, torch.dtype):
        raise TypeError(
            f"{type(init).__name__}: dtype must be a torch dtype such as torch.float32 "
            f"(or its name, 'float32'), got {dtype!r}."
        )
    return dtype


def _check_float_dtype(dtype, init):
    dtype = _check_dtype(dtype, init)
    if not dtype.is_floating_point:
        raise TypeError(
            f"{type(init).__name__}: random values need a floating dtype such as "
            f"torch.float32, got {dtype}."
        )
    return dtype


def _check_number(value, name, init):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{type(init).__name__}: {name} must be a real number, got {value!r} "
            f"of type {type(value).__name__}."
        )
    return value


def _check_stddev(stddev, init):
    if _check_number(stddev, "stddev", init) < 0:
        raise ValueError(
            f"{type(init).__name__}: stddev must be >= 0, got {stddev}. "
            f"Pass its absolute value, stddev={abs(stddev)}."
        )
    return stddev


_CLASSES = (
    Zeros,
    Ones,
    Constant,
    Identity,
    RandomUniform,
    RandomNormal,
    TruncatedNormal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
    Orthogonal,
)
# Every name keras.initializers.get accepts for these classes.
_BY_NAME = {cls.__name__: cls for cls in _CLASSES} | {
    "zeros": Zeros,
    "zero": Zeros,
    "ones": Ones,
    "one": Ones,
    "constant": Constant,
    "identity": Identity,
    "IdentityInitializer": Identity,
    "random_uniform": RandomUniform,
    "uniform": RandomUniform,
    "random_normal": RandomNormal,
    "normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
    "OrthogonalInitializer": Orthogonal,
}


def _lookup(name):
    return lookup("initializer", _BY_NAME, name)


def get(identifier):
    """Return the initializer an identifier describes.

    Args:
        identifier: None (returned as None), a name (``"glorot_uniform"``,
            ``"Orthogonal"``, ...) built with default arguments, a dict
            ``{"class_name": ..., "config": {...}}`` (Keras' serialized form works),
            an `Initializer` class or instance, or any callable `fn(shape, dtype)`.

    Example:
        >>> get({"class_name": "RandomNormal", "config": {"stddev": 0.1}})
        RandomNormal(seed=None, mean=0.0, stddev=0.1)
    """
    return resolve(
        "initializer",
        identifier,
        Initializer,
        _BY_NAME,
        "{'class_name': 'Orthogonal', 'config': {'gain': 1.0}}",
        "An initializer must be a name such as 'glorot_uniform', a config dict, an "
        "Initializer or a callable fn(shape, dtype)",
    )


def serialize(initializer):
    """Return ``{"class_name": ..., "config": ...}`` for an initializer (None stays None).

    Example:
        >>> serialize(RandomUniform(-1.0, 1.0))
        {'class_name': 'RandomUniform', 'config': {'seed': None, 'minval': -1.0, 'maxval': 1.0}}
    """
    return serialize_object(
        initializer, Initializer, "GlorotUniform()", " Plain functions have no config to save."
    )
