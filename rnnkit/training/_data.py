"""Turn what users pass to `fit` into batches of tensors `(x, y, sample_weight)`.

Accepted: numpy arrays, pandas objects, torch tensors, nested lists, a list or
dict of those for several inputs; a `torch.utils.data.Dataset` or `DataLoader`
yielding `(x, y)` or `(x, y, sample_weight)`; a Python generator of such batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rnnkit import _tree
from rnnkit.data._pydataset import PyDataset
from rnnkit.layers._base import to_tensor


def to_tensors(x, device=None):
    """Arrays -> tensors, keeping a list/dict of several inputs as a list/dict."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: to_tensor(v, torch.float32, device) for k, v in x.items()}
    if (
        isinstance(x, (list, tuple))
        and x
        and all(isinstance(v, (np.ndarray, torch.Tensor)) or hasattr(v, "to_numpy") for v in x)
    ):
        return [to_tensor(v, torch.float32, device) for v in x]  # one array per model input
    return to_tensor(x, torch.float32, device)


def num_samples(x) -> int:
    return int(_tree.flatten(x)[0].shape[0])


def take(x, index):
    """Rows `index` (a slice or index tensor) of a tensor, list or dict of tensors."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: v[index] for k, v in x.items()}
    if isinstance(x, list):
        return [v[index] for v in x]
    return x[index]


def is_array_like(x) -> bool:
    return not isinstance(x, (Dataset, DataLoader, Iterator, PyDataset)) and not (
        hasattr(x, "__iter__") and hasattr(x, "__next__")
    )


class ArrayBatches:
    """In-memory data: each epoch, a (shuffled) pass in batches of `batch_size`."""

    def __init__(self, x, y, sample_weight, batch_size: int, shuffle: bool):
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size, self.shuffle = batch_size, shuffle
        self.n = num_samples(x)

    @property
    def num_batches(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def peek(self):
        """The first batch's inputs with every target and weight: enough to check them all."""
        return take(self.x, slice(0, self.batch_size)), self.y, self.sample_weight

    def __iter__(self):
        order = torch.randperm(self.n) if self.shuffle else None
        for start in range(0, self.n, self.batch_size):
            index = (
                order[start : start + self.batch_size]
                if order is not None
                else slice(start, start + self.batch_size)
            )
            yield take(self.x, index), take(self.y, index), take(self.sample_weight, index)


class IterableBatches:
    """Batches from a DataLoader (a fresh pass each epoch) or a generator (drawn on across
    epochs), at most `steps` per epoch (`None`: until the source runs out)."""

    def __init__(self, source, steps: int | None, device):
        self.source, self.steps, self.device = source, steps, device
        self.reiterable = isinstance(source, (DataLoader, PyDataset))
        self._iterator = None
        self._pending = None  # a batch taken from a generator by peek(), yielded first

    def peek(self):
        """The first batch, without losing it from a generator."""
        if self.reiterable:
            return unpack(next(iter(self.source)), self.device)
        if self._pending is None:
            self._iterator = self._iterator or iter(self.source)
            try:
                self._pending = unpack(next(self._iterator), self.device)
            except StopIteration:
                raise ValueError(
                    f"The {type(self.source).__name__} given to fit is empty."
                ) from None
        return self._pending

    @property
    def num_batches(self) -> int | None:
        """Batches per epoch; None for a generator without `steps` (it runs until it ends)."""
        if self.steps is not None:
            return self.steps
        return len(self.source) if hasattr(self.source, "__len__") else None

    def __iter__(self):
        if self.reiterable or self._iterator is None:
            self._iterator = iter(self.source)
        count = 0
        if self._pending is not None:
            pending, self._pending = self._pending, None
            yield pending
            count += 1
        while self.steps is None or count < self.steps:
            try:
                batch = next(self._iterator)
            except StopIteration:
                break
            yield unpack(batch, self.device)
            count += 1
        if isinstance(self.source, PyDataset):
            self.source.on_epoch_end()
        if count == 0:
            raise ValueError(
                f"The {type(self.source).__name__} given to fit yielded no batches this epoch. "
                "A generator is used up after one pass: pass steps_per_epoch= so each epoch "
                "takes that many batches, or give a DataLoader, which restarts every epoch."
            )


def unpack(batch, device):
    if not isinstance(batch, (list, tuple)) or len(batch) not in (2, 3):
        raise ValueError(
            "Each batch from a Dataset, DataLoader or generator must be (x, y) or "
            f"(x, y, sample_weight); got {type(batch).__name__}"
            f"{' of length ' + str(len(batch)) if isinstance(batch, (list, tuple)) else ''}."
        )
    x, y = to_tensors(batch[0], device), to_tensors(batch[1], device)
    w = to_tensors(batch[2], device) if len(batch) == 3 else None
    return x, y, w


def make_batches(x, y, sample_weight, batch_size, shuffle, steps, device):
    """Data in any accepted form -> an iterable of `(x, y, sample_weight)` batches."""
    if isinstance(x, Dataset):
        if y is not None:
            raise ValueError(
                "fit got a Dataset as x and also y; a Dataset yields (x, y) pairs itself, so "
                "leave y out."
            )
        iterable = isinstance(x, torch.utils.data.IterableDataset)
        loader = DataLoader(x, batch_size=batch_size, shuffle=shuffle and not iterable)
        return IterableBatches(loader, steps, device)
    if isinstance(x, DataLoader) or not is_array_like(x):
        if y is not None:
            raise ValueError(
                f"fit got a {type(x).__name__} as x and also y; it must yield (x, y) batches "
                "itself, so leave y out."
            )
        return IterableBatches(x, steps, device)
    return ArrayBatches(x, y, sample_weight, batch_size, shuffle)
