"""Session helpers: fresh layer names and reproducible randomness."""

from __future__ import annotations

import random

import numpy as np
import torch

from rnnkit.layers._base import reset_names


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
