"""rnnkit: recurrent neural networks you can read, check against Keras, and train on PyTorch.

from rnnkit import Sequential
from rnnkit.layers import SimpleRNN, Dense

model = Sequential([SimpleRNN(3, input_shape=(4, 5)), Dense(1, activation="sigmoid")])
model.summary()
"""

from rnnkit import layers, models, preprocessing, saving, utils
from rnnkit.layers import Input
from rnnkit.models import Ensemble, Model, Sequential
from rnnkit.saving import load_model

__version__ = "0.1.0"

__all__ = [
    "Ensemble",
    "Input",
    "Model",
    "Sequential",
    "layers",
    "load_model",
    "models",
    "preprocessing",
    "saving",
    "utils",
    "__version__",
]
