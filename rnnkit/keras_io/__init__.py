"""Keras' own model files, read and written without importing Keras.

    rnnkit.load_model("model.keras")   # a Keras 3 .keras file (keras_file)
    rnnkit.load_model("model.h5")      # a Keras 2 / tf.keras HDF5 model (legacy_h5)
    model.save("model.keras")          # a .keras file keras.saving.load_model opens

`rnnkit.saving` sends files here by their content (load) or suffix (save); the
configs in them pass through `_config`'s allowlist, so no code named in a file runs.
"""

from rnnkit.keras_io.keras_file import load_keras, save_keras
from rnnkit.keras_io.legacy_h5 import load_legacy_h5

__all__ = ["load_keras", "load_legacy_h5", "save_keras"]
