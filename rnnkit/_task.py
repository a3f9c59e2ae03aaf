"""What the task pipelines (forecast, classify, generate, tag) share about their saved models."""

from __future__ import annotations


def task_metadata(model, task: str, fields, name: str, cannot: str, retrain: str = "") -> dict:
    """The metadata that `rnnkit <task>` saved into `model`, checked whole.

    Raises a ValueError naming `name` (the model or its file) when another command, or none,
    saved the model (`cannot` says what it then cannot do), or when `fields` are missing.
    `retrain` is the command line that trains a new one (default: `rnnkit <task>`).
    """
    meta = getattr(model, "metadata", None) or {}
    if meta.get("task") != task:
        raise ValueError(
            f"{name} was not saved by `rnnkit {task}` (its metadata has "
            f"task={meta.get('task')!r}); {cannot}."
        )
    missing = [field for field in fields if field not in meta]
    if missing:
        raise ValueError(
            f"{name} is incomplete: its metadata.json lacks {', '.join(map(repr, missing))}, "
            f"which `rnnkit {task}` writes into every model it saves. The file was edited or "
            f"not written by `rnnkit {task}`; train it again with "
            f"{retrain or f'rnnkit {task}'}."
        )
    return meta


# A memory horizon is a mean over sequences: a few hundred pin it down, and keep its forward
# and backward passes (one per group of output units) a small share of a training run.
MEMORY_SEQUENCES = 256


def memory_horizon(model, x, threshold: float = 0.01) -> dict:
    """How many of the most recent steps `model`'s output depends on, measured on the first
    `MEMORY_SEQUENCES` of the inputs `x` by `rnnkit.explain.memory`: what `rnnkit forecast`,
    `classify` and `tag` record in `metrics.json` as `"memory_horizon"`.

    Returns `{"steps", "threshold", "timesteps", "sequences"}`: the output depends on its
    last `steps` input steps (of `timesteps`), each of which moves it by at least `threshold`
    of the most influential step's share, averaged over `sequences` inputs; `steps` is 0 when
    the output does not depend on the input at all.

    Example:
        >>> import numpy as np
        >>> from rnnkit import Input, Sequential
        >>> from rnnkit.layers import Dense, GRU
        >>> model = Sequential([Input((10, 2)), GRU(4), Dense(1)])
        >>> record = memory_horizon(model, np.random.rand(8, 10, 2).astype("float32"))
        >>> sorted(record), 1 <= record["steps"] <= 10
        (['sequences', 'steps', 'threshold', 'timesteps'], True)
    """
    from rnnkit.explain import memory

    return horizon_record(memory(model, x[:MEMORY_SEQUENCES], threshold=threshold))


def horizon_record(found) -> dict:
    """A `Memory`'s horizon as `memory_horizon` records it (JSON-ready)."""
    return {
        "steps": found.steps,
        "threshold": found.threshold,
        "timesteps": len(found.lags),
        "sequences": found.sequences,
    }


def memory_sentence(record: dict, output: str = "The model's output", step: str = "step") -> str:
    """`memory_horizon`'s record in one line; `output` and `step` name them for the task.

    Example:
        >>> record = {"steps": 6, "threshold": 0.01, "timesteps": 14, "sequences": 219}
        >>> memory_sentence(record)  # doctest: +ELLIPSIS
        "The model's output depends on the last 6 steps (of 14; influence ≥ 1% of its peak, ..."
    """
    steps = record["steps"]
    if steps == 0:
        return f"{output} does not depend on its input (its gradient is zero at every step)."
    count = record["sequences"]
    return (
        f"{output} depends on the last {steps} {step}{'' if steps == 1 else 's'} (of "
        f"{record['timesteps']}; influence ≥ {record['threshold'] * 100:g}% of its peak, over "
        f"{count} sequence{'' if count == 1 else 's'})."
    )
