"""`PyDataset`: batches made on demand by Python code, as Keras' `keras.utils.PyDataset`."""

from __future__ import annotations


class PyDataset:
    """A sequence of batches: subclass it with `__len__` (batches per epoch) and
    `__getitem__(i)` (batch `i`, as `(x, y)` or `(x, y, sample_weight)`).

    `fit`, `evaluate` and `predict` take one as `x` and read it batch by batch, a full pass
    each epoch, calling `on_epoch_end()` after each (to reshuffle, for example).

    Example:
        >>> import numpy as np
        >>> class Ramp(PyDataset):
        ...     def __len__(self):
        ...         return 3
        ...     def __getitem__(self, i):
        ...         return np.full((2, 1), i, "float32"), np.full((2, 1), 2 * i, "float32")
        >>> [float(y[0, 0]) for _, y in Ramp()]
        [0.0, 2.0, 4.0]
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size=10):
        # Accepted for Keras compatibility; rnnkit reads the batches in this thread.
        del workers, use_multiprocessing, max_queue_size

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__ (batches per epoch).")

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index).")

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]

    def on_epoch_end(self) -> None:
        """Called after each epoch of `fit`; override to reshuffle."""
