"""`fit` and `evaluate` on many processes: each takes its slice of every global batch.

Used only when `rnnkit.distribution.distribution()` is not None (a process group with
more than one process); one process runs `_fit`'s own step, untouched. See
`rnnkit.distribution` for the step's equation.
"""

from __future__ import annotations

import copy

import torch

from rnnkit import losses
from rnnkit.layers._base import get_mask
from rnnkit.training._data import ArrayBatches, num_samples, take


class ShardedBatches:
    """Each global batch of `data` cut to this process's rows (`DataParallel.rows`).

    In-memory arrays are shuffled with rank 0's permutation on every process; a DataLoader
    or generator must yield the same batches on every process (seed it the same).
    """

    def __init__(self, data, dp):
        self.data, self.dp = data, dp
        if isinstance(data, ArrayBatches):
            data.permute = lambda n: dp.broadcast(torch.randperm(n))

    @property
    def num_batches(self):
        return self.data.num_batches

    def peek(self):
        return self.data.peek()

    def __iter__(self):
        for xb, yb, wb in self.data:
            rows = self.dp.rows(num_samples(xb))
            yield take(xb, rows), take(yb, rows), take(wb, rows)


def loss_and_divisor(loss_fn, y, y_pred, sample_weight, mask):
    """The loss of this slice, and what it divided the weighted sum by (None: a sum).

    The batch's loss is then `sum(loss_r * D_r) / sum(D_r)` over the slices, exactly the
    loss one process computes on the whole batch.
    """
    reduction = getattr(loss_fn, "reduction", "sum_over_batch_size")
    if reduction == "sum":
        return loss_fn(y, y_pred, sample_weight=sample_weight, mask=mask), None
    if not hasattr(loss_fn, "_values_and_mask"):  # a loss of one's own: rows decide
        loss = loss_fn(y, y_pred, sample_weight=sample_weight, mask=mask)
        return loss, float(num_samples(y_pred))
    values, own_mask = loss_fn._values_and_mask(y, y_pred)
    if own_mask is not None:
        mask = own_mask if mask is None else own_mask & torch.as_tensor(mask).bool()
    loss = losses.reduce_weighted_values(values, sample_weight, mask, reduction)
    if mask is not None and reduction != "mean_with_sample_weight":
        return loss, float(mask.sum())  # the mean over unmasked positions
    if reduction == "mean_with_sample_weight" and (sample_weight is not None or mask is not None):
        weight = torch.ones(()) if sample_weight is None else torch.as_tensor(sample_weight)
        weight = weight.to(values.device, values.dtype)
        if mask is not None:
            m, weight = losses.align_ranks(torch.as_tensor(mask).to(values.dtype), weight)
            weight = weight * m
        values, weight = losses.align_ranks(values, weight)
        return loss, float((values * 0 + weight).sum())
    weight = None if sample_weight is None else torch.as_tensor(sample_weight)
    if weight is not None:
        values, weight = losses.align_ranks(values, weight)
        return loss, float(torch.broadcast_shapes(values.shape, weight.shape).numel())
    return loss, float(values.numel())


def _penalty(step):
    penalties = step.model.losses if step.penalized else None
    if not penalties:
        return None
    return torch.stack([p.reshape(()) for p in penalties]).sum()


def _slice_loss(step, xb, yb, wb, training):
    """(data loss, divisor, penalty, predictions, mask) of this slice; Nones without rows."""
    if num_samples(xb) == 0:
        return None, 0.0, None, None, None
    y_pred = step.model(xb, training=training)
    mask = get_mask(y_pred)
    loss, divisor = loss_and_divisor(step.model.loss, yb, y_pred, wb, mask)
    return loss, divisor, _penalty(step), y_pred, mask


def train_step(model, step, dp, xb, yb, wb):
    """One global batch: this slice's forward and backward, the gradients summed over the
    processes (weighted by each slice's share of the loss), the update. Returns the batch's
    loss, the same on every process."""
    rows = num_samples(xb)
    if step.trains:
        model.optimizer.zero_grad()
    loss, divisor, penalty, y_pred, mask = _slice_loss(step, xb, yb, wb, training=True)
    sums = dp.all_reduce([divisor or 0.0, rows, float(rows > 0)])
    objective = torch.zeros(())
    if rows:
        share = 1.0 if divisor is None else (divisor / sums[0] if sums[0] else 0.0)
        objective = share * loss
        if penalty is not None:  # the same on every slice: counted once in the sum
            objective = objective + penalty / sums[2]
        if step.trains:
            objective.backward()
        objective = objective.detach()
    if step.trains:
        params = model.optimizer.params
        had = [p.grad is not None for p in params]
        # the loss and which gradients exist ride along with the gradients
        extra = torch.tensor([float(objective), *map(float, had)], dtype=torch.float64)
        extra = dp.all_reduce_gradients(params, extra)
        for p, count in zip(params, extra[1:].tolist()):
            if count == 0:  # no process has one: the optimizer skips it, as on one process
                p.grad = None
        batch_loss = extra[0]
    else:
        batch_loss = torch.tensor(dp.all_reduce([float(objective)])[0])
    batch_loss = batch_loss.to(torch.float32 if loss is None else loss.dtype)
    step.loss_tracker.update_state(batch_loss, sample_weight=int(sums[1]))
    if rows:
        step.track_metrics(yb, wb, y_pred, mask)
    if step.trains:
        model.optimizer.step()
        if step.constrained:
            model.apply_constraints()
    return batch_loss


@torch.no_grad()
def test_step(step, dp, xb, yb, wb):
    """One global batch of evaluation; returns the batch's loss, the same everywhere."""
    rows = num_samples(xb)
    loss, divisor, penalty, y_pred, mask = _slice_loss(step, xb, yb, wb, training=False)
    weighted = 0.0 if loss is None else float(loss) * (1.0 if divisor is None else divisor)
    penalty = 0.0 if penalty is None else float(penalty)
    total, divisors, count, active, penalties = dp.all_reduce(
        [weighted, divisor or 0.0, rows, float(rows > 0), penalty]
    )
    sums_up = getattr(step.model.loss, "reduction", None) == "sum"
    value = total if sums_up else (total / divisors if divisors else 0.0)
    batch_loss = torch.tensor(value + (penalties / active if active else 0.0))
    step.loss_tracker.update_state(batch_loss, sample_weight=int(count))
    if rows:
        step.track_metrics(yb, wb, y_pred, mask)
    return batch_loss


def global_logs(step, dp) -> dict[str, float]:
    """`step.logs()` over every process's rows: the metrics' sums added up (the loss
    tracker is the same everywhere already)."""
    metric_list = [copy.copy(m) for m in step.model.compiled_metrics or []]
    dp.reduce_metrics(metric_list)
    out = {"loss": float(step.loss_tracker.result())}
    for m in metric_list:
        out[m.name] = float(m.result())
    return out


def check_model(model, batch_size, dp, where):
    stateful = [m.name for m in model.modules() if getattr(m, "stateful", False)]
    if stateful:
        raise ValueError(
            f"{where}: layer(s) {stateful} are stateful, which carries states per batch row; "
            "on many processes the rows are split, so train a stateful model on one process."
        )
    if batch_size < dp.world_size:
        raise ValueError(
            f"{where}: batch_size={batch_size} is the global batch, split over "
            f"{dp.world_size} processes; it must be at least {dp.world_size} (one row each)."
        )
