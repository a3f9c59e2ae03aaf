"""rnnkit models: `Sequential` stacks and functional `Model(inputs, outputs)` graphs."""

from rnnkit.models._model import Functional, Model
from rnnkit.models._sequential import Sequential

__all__ = ["Functional", "Model", "Sequential"]
