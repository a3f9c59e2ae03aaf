"""Session helpers (fresh layer names, reproducible randomness), and the data helpers Keras
code imports from `keras.utils`."""

from __future__ import annotations

import random

import numpy as np
import torch

from rnnkit.data import PyDataset, pad_sequences, timeseries_dataset_from_array
from rnnkit.layers._base import reset_names

__all__ = [
    "PyDataset",
    "clear_session",
    "pad_sequences",
    "set_random_seed",
    "timeseries_dataset_from_array",
]


def clear_session() -> None:
    """Restart automatic names: the next `SimpleRNN` is `simple_rnn` again."""
    reset_names()


def set_random_seed(seed: int) -> None:
    """Seed Python, numpy and torch so weights, shuffling and dropout repeat exactly."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"set_random_seed takes an integer seed; got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
