"""Callbacks: hooks into `fit` (early stopping, checkpoints, logging, ...)."""

from rnnkit.callbacks._base import Callback, CallbackList, History
from rnnkit.callbacks._progress import EpochLogger, ProgressBar

__all__ = ["Callback", "CallbackList", "EpochLogger", "History", "ProgressBar"]
