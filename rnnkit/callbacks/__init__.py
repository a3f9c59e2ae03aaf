"""Callbacks: hooks into `fit` (early stopping, checkpoints, logging, ...)."""

from rnnkit.callbacks._backup import BackupAndRestore
from rnnkit.callbacks._base import Callback, CallbackList, History
from rnnkit.callbacks._checkpoint import ModelCheckpoint
from rnnkit.callbacks._gradient_flow import GradientFlow
from rnnkit.callbacks._lambda import LambdaCallback
from rnnkit.callbacks._logging import CSVLogger
from rnnkit.callbacks._lr import LearningRateScheduler, ReduceLROnPlateau
from rnnkit.callbacks._progress import EpochLogger, ProgressBar, TrainingProgress
from rnnkit.callbacks._stopping import EarlyStopping, TerminateOnNaN

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "EpochLogger",
    "GradientFlow",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgressBar",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "TrainingProgress",
]
