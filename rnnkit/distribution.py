"""Data-parallel training on `torch.distributed`: the same model on every process, each
training on its slice of every batch.

`fit` runs data-parallel by itself once a process group is initialised (started by
`torchrun --nproc_per_node 2 train.py`, or by `launch(main, workers=2)` here). As in
Keras' `DataParallel`, `batch_size` is the global batch: each batch of the epoch's
shuffled pass (rank 0's permutation, sent to all) is cut into contiguous slices, one per
process, the first ones a row longer when it does not divide (a process may get none).
One step, on every process:

    loss_r = loss(y_r, model(x_r))                  # this process's slice of the batch
    share_r = D_r / sum(D)                          # D: what the loss divides by (rows, or
    (share_r * loss_r).backward()                   #    unmasked steps), summed over slices
    all_reduce(grads, SUM); optimizer.step()        # the gradient of the batch's mean loss

so the step equals one process's step on the whole batch, and the weights stay equal
everywhere. Logs and validation are global; rank 0 alone prints and writes files (the
others wait for it at a barrier). `predict` runs the whole input on every process.

A process that dies leaves the others waiting in a collective until the group's timeout
(`init_process_group(timeout=...)`, 30 minutes by default for gloo); gloo usually notices
a closed connection at once. Either way the survivors raise and exit non-zero.
"""

from __future__ import annotations

import copy
import datetime
import functools
import os
import socket

import torch
import torch.distributed as dist

BUCKET_BYTES = 25 * 2**20  # gradients all-reduced per message (DDP's default bucket size)


class DataParallel:
    """Keras' `keras.distribution.DataParallel`: replicate the model, split every batch.

    Args:
        group: the `torch.distributed` process group (default: the global one, which must
            be initialised first: `torch.distributed.init_process_group("gloo")`).

    Example:
        >>> import rnnkit.distribution as distribution
        >>> distribution.distribution() is None   # no process group here
        True
    """

    def __init__(self, group=None):
        if not is_initialized():
            raise ValueError(
                "DataParallel needs a torch.distributed process group; start the script with "
                "`torchrun --nproc_per_node 2 train.py` and call "
                "torch.distributed.init_process_group('gloo') first, or use "
                "rnnkit.distribution.launch(main, workers=2)."
            )
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def __repr__(self):
        return f"DataParallel(rank={self.rank}, world_size={self.world_size})"

    def rows(self, n: int) -> slice:
        """This process's contiguous slice of a global batch of `n` rows."""
        per = -(-n // self.world_size)  # ceil: the last processes get fewer rows, or none
        start = min(n, self.rank * per)
        return slice(start, min(n, start + per))

    def all_reduce(self, values: list[float], like: torch.Tensor | None = None) -> list[float]:
        """Sums of a few numbers over the processes."""
        device = like.device if like is not None else None
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, group=self.group)
        return t.tolist()

    def broadcast_weights(self, model) -> None:
        """Rank 0's weights (and buffers) on every process, e.g. before training."""
        with torch.no_grad():
            for t in [*model.parameters(), *model.buffers()]:
                dist.broadcast(t.data, src=0, group=self.group)

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        dist.broadcast(t, src=0, group=self.group)
        return t

    def all_reduce_gradients(self, params, extra: torch.Tensor) -> torch.Tensor:
        """Sum every parameter's gradient (None: zeros) and the numbers `extra` over the
        processes, in flat buckets of about BUCKET_BYTES; returns the summed `extra`."""
        grads = []
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        # in the gradients' dtype: a float64 tail would make the whole message float64
        tensors = [*grads, extra.reshape(-1).to(grads[0].dtype if grads else extra.dtype)]
        bucket, size = [], 0
        for t in tensors:
            bucket.append(t)
            size += t.numel() * t.element_size()
            if size >= BUCKET_BYTES:
                self._reduce_flat(bucket)
                bucket, size = [], 0
        if bucket:
            self._reduce_flat(bucket)
        return tensors[-1]

    def _reduce_flat(self, tensors):
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, group=self.group)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()

    def reduce_metrics(self, metric_list) -> None:
        """Each metric's running sums (total/count, confusion counts) summed over the
        processes, in place: call on a copy."""
        for m in metric_list:  # a Mean's pending batch sums (a copy's fold leaves the original's)
            getattr(m, "_fold", lambda: None)()
        states = [(m, name) for m in metric_list for name in _state_names(m)]
        if not states:
            return
        flat = torch.cat([getattr(m, name).double().reshape(-1) for m, name in states])
        dist.all_reduce(flat, group=self.group)
        offset = 0
        for m, name in states:
            old = getattr(m, name)
            setattr(m, name, flat[offset : offset + old.numel()].view_as(old).to(old.dtype))
            offset += old.numel()


def _state_names(metric) -> list[str]:
    """The tensors a metric accumulates: those `reset_state` sets to zeros (not, e.g., the
    thresholds it keeps)."""
    fresh = copy.copy(metric)
    fresh.reset_state()
    return [
        k
        for k, v in vars(fresh).items()
        if isinstance(v, torch.Tensor) and v.numel() and not v.any()
    ]


_chosen: DataParallel | None = None


def set_distribution(value: DataParallel | None) -> None:
    """Keras' `set_distribution`: the distribution `fit` uses (None: the default, which is
    `DataParallel()` over the global process group when one is initialised)."""
    global _chosen
    if value is not None and not isinstance(value, DataParallel):
        raise TypeError(f"set_distribution takes a DataParallel or None; got {value!r}.")
    _chosen = value


def distribution() -> DataParallel | None:
    """The distribution in use: the one set, else DataParallel over the global process
    group if there is one with more than one process, else None (one process)."""
    if _chosen is not None:
        return _chosen
    if is_initialized() and dist.get_world_size() > 1:
        return DataParallel()
    return None


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_writer() -> bool:
    """True on the process that prints and writes files: rank 0, or the only one."""
    return not is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def gather_to_writer(obj) -> list | None:
    """Every process's `obj` (picklable), in rank order, on rank 0; None on the others.
    One process: `[obj]`."""
    if not is_initialized():
        return [obj]
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def rank() -> int:
    """This process's rank; 0 without a process group."""
    return dist.get_rank() if is_initialized() else 0


_writing = False  # inside a rank_zero_writes function, on rank 0


def rank_zero_writes(save):
    """Run a saving function on rank 0 only; every process returns once the file is
    written (a barrier), so none reads it half-written. One called inside another (e.g.
    save_model in write_outputs) runs directly: rank 0 is alone there."""

    @functools.wraps(save)
    def wrapper(*args, **kwargs):
        global _writing
        if not is_initialized() or _writing:
            return save(*args, **kwargs)
        result = None
        try:
            if dist.get_rank() == 0:
                _writing = True
                result = save(*args, **kwargs)
        finally:
            _writing = False
            dist.barrier()
        return result

    return wrapper


def launch(fn, workers: int = 2, args=(), timeout: float = 1800.0, threads: int | None = None):
    """Run `fn(*args)` in `workers` local processes joined in a gloo process group.

    For scripts started without torchrun. Each process gets `RANK`, `WORLD_SIZE` and a free
    port on localhost; `fn` must be importable (defined at a module's top level). If one
    process fails, the others are stopped and this raises. `timeout` (seconds) bounds every
    collective, so a process that hangs is found; `threads` sets torch's threads each.

    Example (in a script, under `if __name__ == "__main__":`):
        >>> # rnnkit.distribution.launch(main, workers=2)
    """
    if workers < 1:
        raise ValueError(f"launch: workers must be at least 1; got {workers!r}.")
    import torch.multiprocessing as mp

    port = _free_port()
    mp.spawn(_worker, args=(fn, workers, port, tuple(args), timeout, threads), nprocs=workers)


def _worker(rank, fn, workers, port, args, timeout, threads):
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(workers),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    if threads is not None:
        torch.set_num_threads(threads)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
    fn(*args)
    # Leave together: a process that tears gloo down while another still talks to it can
    # abort that one ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
