"""Datasets that ship with rnnkit's dependencies, and loaders for the user's own files.

The tables come from files installed with `vega_datasets`; only `imdb` needs the network,
once, to download Keras' file into the cache (see `imdb.load_data`).

from rnnkit.datasets import imdb, seattle_weather
"""

from rnnkit.datasets import imdb
from rnnkit.datasets._tables import load_csv, seattle_weather, stocks, us_employment
from rnnkit.datasets._tagging import load_tagged, tagging_sentences
from rnnkit.datasets._text import (
    lady_susan,
    language_sentences,
    load_text_csv,
    load_text_file,
    python_docs,
)
from rnnkit.datasets.m3 import m3

__all__ = [
    "imdb",
    "lady_susan",
    "language_sentences",
    "load_csv",
    "load_tagged",
    "load_text_csv",
    "load_text_file",
    "m3",
    "python_docs",
    "seattle_weather",
    "stocks",
    "tagging_sentences",
    "us_employment",
]
