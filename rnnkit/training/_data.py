"""Turn what users pass to `fit` into batches of tensors `(x, y, sample_weight)`.

Accepted: numpy arrays, pandas objects, torch tensors, nested lists, a list or
dict of those for several inputs; a `torch.utils.data.Dataset` or `DataLoader`
yielding `(x, y)` or `(x, y, sample_weight)`; a Python generator of such batches.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rnnkit import _tree
from rnnkit.data._pydataset import PyDataset
from rnnkit.layers._base import to_tensor


def to_tensors(x, device=None, name="x", dtype=torch.float32):
    """Arrays -> tensors, keeping a list/dict of several inputs as a list/dict.

    Floats become `dtype` (a model's inputs: `input_dtype(model)`). Integer and bool arrays
    keep their dtype: the model's first layer decides what they are (an Embedding's ids, or
    numbers it casts to its float dtype). Text and ragged lists fail here with the fix; `name`
    ("x", "y", "sample_weight") names the data in that message.
    """
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: _to_tensor(v, device, f"{name}[{k!r}]", dtype) for k, v in x.items()}
    if (
        isinstance(x, (list, tuple))
        and x
        and all(isinstance(v, (np.ndarray, torch.Tensor)) or hasattr(v, "to_numpy") for v in x)
    ):  # one array per model input
        return [_to_tensor(v, device, f"{name}[{i}]", dtype) for i, v in enumerate(x)]
    return _to_tensor(x, device, name, dtype)


def input_dtype(model) -> torch.dtype:
    """The float dtype a model's data (inputs and targets) are made: its (first) Input's, else
    its weights'. A float64 model keeps float64 data whole; a float32 one gets it converted
    once, not per batch."""
    inputs = getattr(model, "inputs", None)
    if inputs and inputs[0].dtype.is_floating_point:
        return inputs[0].dtype
    weight = next(model.parameters(), None)
    return weight.dtype if weight is not None and weight.is_floating_point() else torch.float32


def _to_tensor(value, device, name, dtype):
    if not isinstance(value, torch.Tensor):
        value = _numbers(value, name)
    return to_tensor(value, dtype, device)


def _numbers(value, name) -> np.ndarray:
    """`value` as a numpy array, unless it holds text or sequences of different lengths."""
    if hasattr(value, "to_numpy"):  # pandas Series / DataFrame
        value = value.to_numpy()
    try:
        array = np.asarray(value)
    except ValueError as error:  # numpy: "... inhomogeneous shape ..."
        raise _ragged(name, value, error) from None
    if array.dtype.kind in "US" or (array.dtype == object and _has_text(array)):
        raise _text(name, array)
    if array.dtype == object and any(isinstance(v, (list, tuple, np.ndarray)) for v in array.flat):
        raise _ragged(name, value, None)
    return array


def _has_text(array) -> bool:
    return any(isinstance(v, (str, bytes)) for v in array.flat)


def _text(name, array) -> TypeError:
    example = next((v for v in array.flat if isinstance(v, (str, bytes))), "")
    got = f"{name} holds text (e.g. {str(example)[:40]!r}), but a model takes numbers."
    if name.startswith("y"):
        return TypeError(
            f"{got} Encode the labels as integer class ids: "
            f"`classes, {name} = np.unique({name}, return_inverse=True)`, then "
            "loss='sparse_categorical_crossentropy' and `classes[pred.argmax(-1)]` to read "
            "predictions back as labels."
        )
    return TypeError(
        f"{got} Turn text into integer ids and pad them to one length: "
        "`tok = rnnkit.preprocessing.text.Tokenizer(); tok.fit_on_texts(texts); "
        "x = rnnkit.utils.pad_sequences(tok.texts_to_sequences(texts))`, "
        "with an Embedding as the model's first layer."
    )


def _ragged(name, value, error) -> ValueError:
    rows = value if isinstance(value, (list, tuple, np.ndarray)) else []
    lengths = sorted({len(v) for v in rows if hasattr(v, "__len__")})
    got = (
        f"sequences of {len(lengths)} different lengths, from {lengths[0]} to {lengths[-1]}"
        if len(lengths) > 1
        else f"rows of different shapes ({error or 'nested sequences'})"
    )
    return ValueError(
        f"{name} is a ragged list: {got}; a batch needs one length. Pad them: "
        f"`{name} = rnnkit.utils.pad_sequences({name})` (maxlen=, padding='post' to choose how), "
        "and mask the padding with Embedding(..., mask_zero=True) or Masking()."
    )


def num_samples(x) -> int:
    first = _tree.flatten(x)[0]
    if first is None:  # predict(None)
        raise TypeError(
            "Expected the inputs (x): a numpy array, torch tensor, pandas object or a list of "
            "them; got None. Pass the data, e.g. model.predict(x_test)."
        )
    return int(first.shape[0])


def check_count(where, name, value, minimum=1, allow_none=False) -> int | None:
    """`value` as a Python int, if it is an integer >= `minimum` (numpy's integers too:
    `np.int64(4)` from an array's shape or a sweep is a count like 4)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{where}: {name} must be {kind}; got {value!r}.")
    return int(value)


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
    """In-memory data: each epoch, a (shuffled) pass in batches of `batch_size`.

    With `steps`, an epoch is that many batches of the pass, as in Keras: evaluation takes
    the first `steps` batches every time; training (`carry_over`) goes on where the last
    epoch stopped, and a pass that runs out mid-epoch ends that epoch early, the next one
    starting a fresh (reshuffled) pass.
    """

    def __init__(self, x, y, sample_weight, batch_size, shuffle, steps=None, carry_over=False):
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size, self.shuffle = batch_size, shuffle
        self.steps, self.carry_over = steps, carry_over
        self.n = num_samples(x)
        self.permute = torch.randperm  # each pass's order (data-parallel: rank 0's, sent)
        self._pass = None  # the pass epochs carry over, as an iterator of batches
        self._left = 0  # batches left in it

    @property
    def num_batches(self) -> int:
        return self.steps or self.per_pass

    @property
    def per_pass(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def peek(self):
        """The first batch's inputs with every target and weight: enough to check them all."""
        return take(self.x, slice(0, self.batch_size)), self.y, self.sample_weight

    def __iter__(self):
        if self.steps is None:
            yield from self._one_pass()
            return
        if self._pass is None or not self.carry_over:
            self._pass, self._left = self._one_pass(), self.per_pass
        for _ in range(min(self.steps, self._left)):
            self._left -= 1
            yield next(self._pass)
        if self._left == 0:
            self._pass = None

    def _one_pass(self):
        arrays = (self.x, self.y, self.sample_weight)
        order = self.permute(self.n) if self.shuffle else None
        if order is not None and _nbytes(arrays) <= SHUFFLE_WHOLE_BELOW:
            # the pass's order gathered once; each batch is then a view, not a gather
            arrays, order = tuple(take(a, order) for a in arrays), None
        for start in range(0, self.n, self.batch_size):
            index = (
                order[start : start + self.batch_size]
                if order is not None
                else slice(start, start + self.batch_size)
            )
            yield tuple(take(a, index) for a in arrays)


# Data up to this size is shuffled whole at the start of each pass, a copy of it, and sliced
# into batches; larger data is gathered batch by batch, which keeps memory flat.
SHUFFLE_WHOLE_BELOW = 64 * 2**20


def _nbytes(arrays) -> int:
    return sum(t.numel() * t.element_size() for t in _tree.flatten(arrays) if t is not None)


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
    x, y = to_tensors(batch[0], device), to_tensors(batch[1], device, "y")
    w = to_tensors(batch[2], device, "sample_weight") if len(batch) == 3 else None
    return x, y, w


def make_batches(x, y, sample_weight, batch_size, shuffle, steps, device, training=False):
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
    return ArrayBatches(x, y, sample_weight, batch_size, shuffle, steps, carry_over=training)
