"""`compile`, `fit` and `evaluate`: the Keras training loop on torch autograd.

One step is the textbook one:

    y_pred = model(x, training=True)
    loss = loss_fn(y, y_pred) + sum(model.losses)     # regularization penalties
    loss.backward(); optimizer.step()                 # torch computes every gradient
    model.apply_constraints()

`History.history` collects the per-epoch `loss`, metrics and `val_*` values.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from rnnkit import _tree, losses, metrics, optimizers
from rnnkit.layers._base import get_mask, to_tensor


class History:
    """What `fit` returns: `history.history["loss"]` is the list of epoch losses."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"<History epochs={len(self.epoch)} keys={sorted(self.history)}>"


def compile_model(model, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, **kwargs):
    """`model.compile(optimizer='adam', loss='mse', metrics=['mae'])`: choose how to train.

    Names are resolved into objects now, so a typo fails here, not mid-training.
    """
    kwargs.pop("run_eagerly", None)  # Keras execution options with no meaning here
    kwargs.pop("jit_compile", None)
    if kwargs:
        raise TypeError(f"compile() got unexpected argument(s) {', '.join(sorted(kwargs))}.")
    if loss is None:
        raise ValueError(
            f"compile() on model '{model.name}' needs a loss, e.g. loss='mse' for regression or "
            "loss='binary_crossentropy' for two classes."
        )
    if isinstance(loss, (list, dict)) or loss_weights is not None:
        raise NotImplementedError(
            "compile(): one loss for one output is supported so far; several losses or "
            "loss_weights are not yet."
        )
    model.optimizer = optimizers.get(optimizer)
    model.loss = losses.get(loss)
    model.metric_identifiers = list(metrics or [])
    for identifier in model.metric_identifiers:
        metrics_module_check(identifier, model.loss)
    model.compiled_metrics = None  # resolved on the first batch, when target shapes are known
    model.compiled = True


def metrics_module_check(identifier, loss) -> None:
    """Fail early on a metric name nobody knows (shape-dependent ones resolve later)."""
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return
    metrics.get(identifier, loss=loss)


def _num(x) -> int:
    first = _tree.flatten(x)[0]
    return int(first.shape[0])


def _tensors(x, device):
    if isinstance(x, dict):
        return {k: to_tensor(v, torch.float32, device) for k, v in x.items()}
    if (
        isinstance(x, (list, tuple))
        and x
        and all(isinstance(v, (np.ndarray, torch.Tensor)) for v in x)
    ):
        return [to_tensor(v, torch.float32, device) for v in x]  # one array per model input
    return to_tensor(x, torch.float32, device)


def _take(x, index):
    if isinstance(x, dict):
        return {k: v[index] for k, v in x.items()}
    if isinstance(x, list):
        return [v[index] for v in x]
    return x[index]


def _check_data(model, x, y, where: str) -> None:
    for name, value in (("x", x), ("y", y)):
        for t in _tree.flatten(value):
            if t.is_floating_point() and not torch.isfinite(t).all():
                bad = int((~torch.isfinite(t)).sum())
                raise ValueError(
                    f"{where}: {name} contains {bad} NaN or infinite value(s). Fill or drop them "
                    "before training (e.g. np.nan_to_num, or pandas .dropna())."
                )
    nx, ny = _num(x), _num(y)
    if nx != ny:
        raise ValueError(
            f"{where}: x has {nx} samples but y has {ny}. They must have the same length along "
            "the first axis (one target per input sequence)."
        )
    if nx == 0:
        raise ValueError(f"{where}: got 0 samples.")


class _Step:
    """Loss, metrics and optimizer for one compiled model."""

    def __init__(self, model):
        self.model = model
        self.loss_tracker = metrics.Mean(name="loss")

    def metrics_for(self, y, y_pred):
        model = self.model
        if model.compiled_metrics is None:
            model.compiled_metrics = [
                metrics.get(
                    m,
                    loss=model.loss,
                    y_true_shape=tuple(y.shape),
                    y_pred_shape=tuple(y_pred.shape),
                )
                for m in model.metric_identifiers
            ]
        return model.compiled_metrics

    def reset(self):
        self.loss_tracker.reset_state()
        for m in self.model.compiled_metrics or []:
            m.reset_state()

    def logs(self, prefix="") -> dict[str, float]:
        out = {prefix + "loss": float(self.loss_tracker.result())}
        for m in self.model.compiled_metrics or []:
            out[prefix + m.name] = float(m.result())
        return out

    def forward(self, x, y, sample_weight, training):
        y_pred = self.model(x, training=training)
        mask = get_mask(y_pred)
        loss = self.model.loss(y, y_pred, sample_weight=sample_weight, mask=mask)
        penalties = self.model.losses
        if penalties:
            loss = loss + torch.stack([p.reshape(()) for p in penalties]).sum()
        with torch.no_grad():
            n = _num(x)
            self.loss_tracker.update_state(loss.detach(), sample_weight=n)
            for m in self.metrics_for(y, y_pred):
                _update_metric(m, y, y_pred.detach(), sample_weight, mask)
        return loss


def _update_metric(metric, y, y_pred, sample_weight, mask):
    if isinstance(metric, metrics.MeanMetricWrapper):
        metric.update_state(y, y_pred, sample_weight=sample_weight, mask=mask)
    else:  # Keras ignores masks for AUC, Precision, Recall, RMSE too
        metric.update_state(y, y_pred, sample_weight=sample_weight)


def fit_model(
    model,
    x=None,
    y=None,
    batch_size=32,
    epochs=1,
    verbose="auto",
    validation_split=0.0,
    validation_data=None,
    shuffle=True,
    sample_weight=None,
    initial_epoch=0,
) -> History:
    """`model.fit(x, y, epochs=10)`: train on `(x, y)` in shuffled batches; returns a `History`."""
    if not getattr(model, "compiled", False):
        raise ValueError(
            f"Model '{model.name}' must be compiled before fit: "
            "model.compile(optimizer='adam', loss='mse') (or the loss that fits your targets)."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"fit: batch_size must be a positive integer; got {batch_size!r}.")
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(
            f"fit: validation_split is the fraction of samples held out and must be in [0, 1); "
            f"got {validation_split}."
        )
    device = next((p.device for p in model.parameters()), None)
    x, y = _tensors(x, device), _tensors(y, device)
    _check_data(model, x, y, "fit")
    if sample_weight is not None:
        sample_weight = to_tensor(sample_weight, torch.float32, device)
    n = _num(x)
    if validation_data is None and validation_split:
        split = int(n * (1.0 - validation_split))
        if split == 0 or split == n:
            raise ValueError(
                f"fit: validation_split={validation_split} of {n} samples leaves an empty "
                "training or validation set; use more data or another fraction."
            )
        tail = slice(split, n)
        validation_data = (_take(x, tail), _take(y, tail))
        x, y = _take(x, slice(0, split)), _take(y, slice(0, split))
        sample_weight = sample_weight[:split] if sample_weight is not None else None
        n = split
    if validation_data is not None:
        vx, vy = _tensors(validation_data[0], device), _tensors(validation_data[1], device)
        _check_data(model, vx, vy, "fit (validation_data)")
    if not model.built:
        with torch.no_grad():
            model(_take(x, slice(0, 1)))
    optimizer = model.optimizer
    optimizer.build(model.trainable_weights)
    step = _Step(model)
    history = History()
    model.history = history
    model.stop_training = False
    show = verbose not in (0, False)
    steps = (n + batch_size - 1) // batch_size
    for epoch in range(initial_epoch, epochs):
        started = time.perf_counter()
        step.reset()
        order = torch.randperm(n) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            xb, yb = _take(x, index), _take(y, index)
            wb = sample_weight[index] if sample_weight is not None else None
            optimizer.zero_grad()
            loss = step.forward(xb, yb, wb, training=True)
            loss.backward()
            optimizer.step()
            model.apply_constraints()
        logs = step.logs()
        if validation_data is not None:
            logs.update(_evaluate(model, step, vx, vy, batch_size, prefix="val_"))
        history.record(epoch, logs)
        if show:
            took = time.perf_counter() - started
            values = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(
                f"Epoch {epoch + 1}/{epochs} - {steps} steps - {took:.1f}s - {values}", flush=True
            )
        if model.stop_training:
            break
    return history


def _evaluate(model, step, x, y, batch_size, prefix=""):
    step.reset()
    n = _num(x)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            index = slice(start, start + batch_size)
            step.forward(_take(x, index), _take(y, index), None, training=False)
    return step.logs(prefix)


def evaluate_model(
    model, x=None, y=None, batch_size=32, verbose="auto", sample_weight=None, return_dict=False
):
    """`model.evaluate(x, y)`: the loss and metrics on `(x, y)`, with dropout off."""
    del verbose, sample_weight
    if not getattr(model, "compiled", False):
        raise ValueError(
            f"Model '{model.name}' must be compiled before evaluate: "
            "model.compile(optimizer='adam', loss='mse')."
        )
    device = next((p.device for p in model.parameters()), None)
    x, y = _tensors(x, device), _tensors(y, device)
    _check_data(model, x, y, "evaluate")
    logs = _evaluate(model, _Step(model), x, y, batch_size)
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values
