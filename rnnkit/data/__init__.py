"""Data preparation: windows over time series, chronological splits, scaling, missing values.

from rnnkit.data import chronological_split, make_windows, StandardScaler
"""

from rnnkit.data._pydataset import PyDataset
from rnnkit.data._scaling import (
    MinMaxScaler,
    StandardScaler,
    fill_missing,
    scaler_from_config,
)
from rnnkit.data._text import (
    Tokenizer,
    pad_sequences,
    text_to_word_sequence,
    tokenizer_from_json,
)
from rnnkit.data._timeseries import (
    Split,
    WindowBatches,
    chronological_split,
    make_windows,
    timeseries_dataset_from_array,
)

__all__ = [
    "MinMaxScaler",
    "PyDataset",
    "Split",
    "StandardScaler",
    "Tokenizer",
    "WindowBatches",
    "chronological_split",
    "fill_missing",
    "make_windows",
    "pad_sequences",
    "scaler_from_config",
    "text_to_word_sequence",
    "timeseries_dataset_from_array",
    "tokenizer_from_json",
]
