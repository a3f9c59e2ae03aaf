"""Learning-rate schedules with Keras 3 formulas: ``schedule(step) -> learning rate``.

An optimizer given a schedule calls it with its ``iterations`` count before each update,
so the first update uses ``schedule(0)``.

Example:
    >>> from rnnkit import optimizers, schedules
    >>> lr = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> lr(0), lr(10), lr(20)
    (0.1, 0.05, 0.025)
    >>> opt = optimizers.SGD(learning_rate=lr)
"""

import math


def _check_decay_steps(owner, decay_steps):
    if not decay_steps > 0:
        raise ValueError(f"{owner}: decay_steps must be > 0, got {decay_steps!r}.")


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step) -> float`` and ``get_config``."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class _StepDecay(LearningRateSchedule):
    """The settings ExponentialDecay and InverseTimeDecay share; ``_progress(step)`` is
    ``step / decay_steps``, floored with ``staircase``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        _check_decay_steps(type(self).__name__, decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = type(self).__name__ if name is None else name

    def _progress(self, step):
        p = float(step) / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    Args:
        initial_learning_rate: Learning rate at step 0.
        decay_steps: Steps over which the rate is multiplied by ``decay_rate``; > 0.
        decay_rate: The factor per ``decay_steps``.
        staircase: Use ``floor(step / decay_steps)``: decay in discrete jumps.
        name: Kept in the config, as in Keras.
    """

    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.

    Args:
        boundaries: Increasing step numbers.
        values: One more learning rate than there are boundaries.
        name: Kept in the config, as in Keras.

    Example:
        >>> lr = PiecewiseConstantDecay([2, 4], [1.0, 0.5, 0.1])
        >>> [lr(s) for s in range(6)]
        [1.0, 1.0, 1.0, 0.5, 0.5, 0.1]
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "PiecewiseConstantDecay: values must have one more entry than boundaries, got "
                f"{len(boundaries)} boundaries and {len(values)} values. Example: "
                "boundaries=[100, 200], values=[1.0, 0.5, 0.1]."
            )
        if any(b >= c for b, c in zip(boundaries[:-1], boundaries[1:], strict=True)):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must increase, got {boundaries}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        step = float(step)
        for boundary, value in zip(self.boundaries, self.values[:-1], strict=True):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``, ``step`` capped at
    ``decay_steps`` (or, with ``cycle``, ``decay_steps`` stretched to the next multiple).

    Args:
        initial_learning_rate: Learning rate at step 0.
        decay_steps: Steps to reach ``end_learning_rate``; > 0.
        end_learning_rate: The final learning rate.
        power: Exponent of the polynomial (1.0 is linear).
        cycle: Restart the decay after each multiple of ``decay_steps``.
        name: Kept in the config, as in Keras.
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name="PolynomialDecay",
    ):
        _check_decay_steps("PolynomialDecay", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step):
        step, decay_steps = float(step), float(self.decay_steps)
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / decay_steps)
        else:
            step = min(step, decay_steps)
        fraction_left = 1.0 - step / decay_steps
        span = self.initial_learning_rate - self.end_learning_rate
        return span * fraction_left**self.power + self.end_learning_rate

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``.

    Args:
        initial_learning_rate: Learning rate at step 0.
        decay_steps: Step scale; > 0.
        decay_rate: How fast the rate falls.
        staircase: Use ``floor(step / decay_steps)``.
        name: Kept in the config, as in Keras.
    """

    def __call__(self, step):
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._progress(step))


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup, then a half cosine from the peak down to ``alpha * peak``.

    Without warmup (``warmup_target=None``) the peak is ``initial_learning_rate``:
    ``lr(step) = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)``
    with ``s = min(step, decay_steps)``. With warmup, the rate rises linearly from
    ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``, then decays from
    ``warmup_target`` over ``decay_steps``.

    Args:
        initial_learning_rate: Learning rate at step 0.
        decay_steps: Length of the cosine part; > 0.
        alpha: Final rate as a fraction of the peak.
        name: Kept in the config, as in Keras.
        warmup_target: Peak rate after warmup, or None for no warmup.
        warmup_steps: Length of the warmup.
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        alpha=0.0,
        name="CosineDecay",
        warmup_target=None,
        warmup_steps=0,
    ):
        _check_decay_steps("CosineDecay", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _cosine(self, step, peak):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        step = float(step)
        if self.warmup_target is None:
            return self._cosine(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return rise * step / self.warmup_steps + self.initial_learning_rate
        return self._cosine(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


_CLASSES = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
    )
}


def serialize(schedule):
    """``{"class_name": ..., "config": {...}}``, the shape Keras uses."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """Rebuild a schedule from ``serialize``'s output (Keras' serialized form works too).

    Example:
        >>> deserialize({"class_name": "InverseTimeDecay",
        ...              "config": {"initial_learning_rate": 1.0, "decay_steps": 1,
        ...                         "decay_rate": 1.0}})(1)
        0.5
    """
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in _CLASSES:
        raise ValueError(
            f"Cannot build a learning-rate schedule from {config!r}. Expected "
            f"{{'class_name': <one of {', '.join(_CLASSES)}>, 'config': {{...}}}}."
        )
    return _CLASSES[name].from_config(config.get("config", {}))
