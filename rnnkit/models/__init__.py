"""rnnkit models: `Sequential` stacks and functional `Model(inputs, outputs)` graphs.

from rnnkit.models import Sequential, Model, load_model   # was: from keras.models import ...
"""

from rnnkit.models._ensemble import Ensemble
from rnnkit.models._model import Functional, Model
from rnnkit.models._sequential import Sequential
from rnnkit.saving import load_model

__all__ = ["Ensemble", "Functional", "Model", "Sequential", "load_model"]
