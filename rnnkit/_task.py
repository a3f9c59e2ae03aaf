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
