"""Where Keras code imports its preprocessing from, so it runs with `keras` -> `rnnkit`.

from rnnkit.preprocessing.text import Tokenizer
from rnnkit.preprocessing.sequence import pad_sequences

The work is done in `rnnkit.data`; these modules only re-export it.
"""

from rnnkit.data import timeseries_dataset_from_array
from rnnkit.preprocessing import sequence, text

__all__ = ["sequence", "text", "timeseries_dataset_from_array"]
