"""`keras.preprocessing.sequence`: `pad_sequences` (implemented in `rnnkit.data`)."""

from rnnkit.data import pad_sequences

__all__ = ["pad_sequences"]
