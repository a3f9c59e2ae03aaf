"""IMDB movie reviews labelled by sentiment, with the `keras.datasets.imdb` interface.

    from rnnkit.datasets import imdb
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=10000)

25,000 training and 25,000 test reviews (Maas et al., 2011), each a list of word ids, with
label 1 for positive and 0 for negative. The file is Keras' own `imdb.npz` (17 MB), downloaded
once from the URL Keras uses, checked against the same sha256, and cached (see `get_file`);
the same arguments give the same arrays as `keras.datasets.imdb.load_data`.

The reviews are ragged, so `imdb.npz` stores them as pickled numpy object arrays, which
`np.load` reads only with `allow_pickle=True`, and a pickle can run any code. `load_npz`
reads the file instead with an unpickler that can build nothing but numpy arrays, numpy
scalars and Python lists and numbers: loading a tampered file raises, and runs nothing.
"""

from __future__ import annotations

import json
import numbers
import os
import pickle
import zipfile

import numpy as np

from rnnkit.datasets._download import get_file

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
IMDB_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"  # Keras lists this file by md5 only
_SPLITS = (("x_train", "y_train"), ("x_test", "y_test"))


def load_data(
    path="imdb.npz",
    num_words=None,
    skip_top=0,
    maxlen=None,
    seed=113,
    start_char=1,
    oov_char=2,
    index_from=3,
    **kwargs,
):
    """The IMDB reviews as word ids: `(x_train, y_train), (x_test, y_test)`.

    A review's ids rank its words by frequency in the training set: raw id 1 is the most
    frequent word. The returned ids are the raw ids plus `index_from`, after `start_char`,
    so that 0 stays free for padding and 1 and 2 for the start and out-of-vocabulary marks.

    Args:
        path: the file's name in the cache folder, `$RNNKIT_HOME/datasets` or
            `~/.rnnkit/datasets` (an absolute path is used as it is).
        num_words: keep the ids below `num_words` (the `num_words - 1` most frequent words,
            counting the reserved ids); others become `oov_char`. None or 0: keep all but
            the largest id, as Keras does.
        skip_top: ids below `skip_top` (`start_char` among them) also become `oov_char`.
        maxlen: keep only the reviews shorter than `maxlen` ids, counting `start_char`; a
            longer review is dropped, not cut (as Keras' code does). None or 0: keep all.
        seed: shuffles the training set and then the test set, as Keras does.
        start_char: the id put before each review; None puts none.
        oov_char: the id that replaces words cut by `num_words` or `skip_top`; None drops
            those words instead.
        index_from: added to every raw word id.

    Returns:
        `x_train`, `x_test`: 1-D object arrays of reviews, each a list of int ids.
        `y_train`, `y_test`: int arrays of labels, 1 positive and 0 negative.

    Example (downloads 17 MB on first use):
        >>> (x_train, y_train), (x_test, y_test) = load_data(num_words=10000)  # doctest: +SKIP
        >>> x_train.shape, y_train.shape, x_train[0][:4]  # doctest: +SKIP
        ((25000,), (25000,), [1, 14, 22, 16])
    """
    if kwargs:
        raise TypeError(
            f"imdb.load_data() got unexpected keyword arguments {sorted(kwargs)}; it takes "
            "path, num_words, skip_top, maxlen, seed, start_char, oov_char and index_from."
        )
    for name, value, allow_none, example in (
        ("num_words", num_words, True, 10000),
        ("skip_top", skip_top, False, 0),
        ("maxlen", maxlen, True, 200),
        ("index_from", index_from, False, 3),
        ("start_char", start_char, True, 1),
        ("oov_char", oov_char, True, 2),
    ):
        _check_count(name, value, allow_none, example)
    file = get_file(path, ORIGIN + "imdb.npz", IMDB_SHA256)
    arrays = load_npz(file)
    missing = [key for split in _SPLITS for key in split if key not in arrays]
    if missing:
        raise ValueError(
            f"'{file}' has no {', '.join(missing)}: it is not the IMDB archive (it holds "
            f"{', '.join(arrays) or 'no arrays'}). Delete it and call again to download it."
        )

    rng = np.random.RandomState(seed)  # one generator: the train order, then the test order
    splits = []
    for x_key, y_key in _SPLITS:
        order = np.arange(len(arrays[x_key]))
        rng.shuffle(order)
        reviews, labels = arrays[x_key][order], arrays[y_key][order]
        head = [] if start_char is None else [start_char]
        reviews = [head + [w + index_from for w in review] for review in reviews]
        if maxlen:
            keep = np.array([len(review) < maxlen for review in reviews], dtype=bool)
            reviews = [review for review, kept in zip(reviews, keep) if kept]
            labels = labels[keep]
        splits.append((reviews, labels))
    if maxlen and not all(reviews for reviews, _ in splits):
        raise ValueError(
            f"imdb.load_data(maxlen={maxlen}) kept no review of the "
            f"{'training' if not splits[0][0] else 'test'} set: every one has {maxlen} ids or "
            "more, counting start_char. Increase maxlen, or pass maxlen=None to keep all."
        )

    if not num_words:  # Keras' bound: all ids, except that the largest is not below itself
        ids = (w for reviews, _ in splits for review in reviews for w in review)
        num_words = max(ids, default=0)

    def in_vocabulary(w):
        return skip_top <= w < num_words

    out = []
    for reviews, labels in splits:
        if oov_char is None:
            reviews = [[w for w in review if in_vocabulary(w)] for review in reviews]
        else:
            reviews = [[w if in_vocabulary(w) else oov_char for w in review] for review in reviews]
        out.append((_object_array(reviews), labels))
    return tuple(out)


def get_word_index(path="imdb_word_index.json"):
    """The IMDB vocabulary: `{word: raw id}`, the id before `index_from` is added.

    Args:
        path: the file's name in the cache folder (an absolute path is used as it is).

    Example (downloads 1.6 MB on first use), decoding a review back into words:
        >>> index_from = 3
        >>> words = {i + index_from: w for w, i in get_word_index().items()}  # doctest: +SKIP
        >>> words |= {0: "[PAD]", 1: "[START]", 2: "[OOV]"}  # doctest: +SKIP
        >>> (x_train, _), _ = load_data(index_from=index_from)  # doctest: +SKIP
        >>> " ".join(words[i] for i in x_train[0][:4])  # doctest: +SKIP
        '[START] this film was'
    """
    file = get_file(path, ORIGIN + "imdb_word_index.json", WORD_INDEX_MD5)
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def _check_count(name, value, allow_none, example):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        expected = "an int or None" if allow_none else "an int"
        raise TypeError(
            f"imdb.load_data({name}=...) expects {expected}, got {value!r} "
            f"({type(value).__name__}). Pass a whole number, e.g. {name}={example}."
        )
    if value < 0:
        raise ValueError(
            f"imdb.load_data({name}=...) expects an int >= 0, got {value}; e.g. {name}={example}."
        )


def _object_array(reviews: list) -> np.ndarray:
    # Filled one by one: np.array(reviews, dtype=object) would make a 2-D array of ints
    # when all reviews happen to have the same length.
    array = np.empty(len(reviews), dtype=object)
    for i, review in enumerate(reviews):
        array[i] = review
    return array


# ------------------------------------------------------------------- reading npz safely

# What rebuilding an object array of lists and numbers needs, and nothing more: numpy
# pickles an array as `_reconstruct(ndarray, shape, dtype)` plus its state, and a numpy
# scalar as `scalar(dtype, bytes)`. Files written by numpy 1.x name the module
# `numpy.core.multiarray`, by numpy 2.x `numpy._core.multiarray`. The objects are looked up
# here rather than imported by name, so the old spelling raises no deprecation warning.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_SCALAR = np.int64(0).__reduce__()[0]
_SAFE_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
}


class _Refused(pickle.UnpicklingError):
    pass


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays of Python lists and numbers; refuses any other global."""

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[module, name]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        raise _Refused(f"persistent object {pid!r}")


def load_npz(path) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` file, as `np.load(path, allow_pickle=True)` gives, safely.

    Numeric arrays are read with `allow_pickle=False`. Object arrays, which numpy can only
    store pickled, are unpickled by an unpickler that builds numpy arrays, numpy scalars and
    Python lists and numbers, and raises ValueError on anything else (a function to call,
    a class to build), so that loading the file never runs code from it.

    Args:
        path: an `.npz` file, from `np.savez` or `np.savez_compressed`.

    Returns:
        `{name: array}` for each `name.npy` in the archive (other members are skipped).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "ragged.npz")
        >>> ragged = np.empty(2, dtype=object)
        >>> ragged[0], ragged[1] = [1, 2, 3], [4]
        >>> np.savez(path, x=ragged, y=np.array([0, 1]))
        >>> arrays = load_npz(path)
        >>> arrays["x"].tolist(), arrays["y"]
        ([[1, 2, 3], [4]], array([0, 1]))
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No such file: '{path}'.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"'{path}' is not an .npz file (a zip archive of .npy arrays).")
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                with archive.open(member) as stream:
                    arrays[member[: -len(".npy")]] = _read_npy(stream, f"'{path}' ({member})")
    return arrays


def _read_npy(stream, where: str) -> np.ndarray:
    """One `.npy` array from a seekable binary stream; `where` names it in errors."""
    try:
        version = np.lib.format.read_magic(stream)
        # Format 3.0 differs from 2.0 only in allowing utf-8 in the header, which matters
        # for field names of structured dtypes, not for telling an object array apart.
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(stream)
        if not dtype.hasobject:
            stream.seek(0)
            return np.lib.format.read_array(stream, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{where} is not a valid .npy array: {err}") from None
    try:
        array = _ArrayUnpickler(stream).load()
    except _Refused as err:
        raise ValueError(
            f"Refused to load {where}: its pickled data asks for {err}, and a dataset file "
            "may only rebuild numpy arrays of lists and numbers (loading never runs code "
            "from a file). The file is damaged or was tampered with: delete it and download "
            "it again from its source."
        ) from None
    except Exception as err:  # a malformed pickle fails in many ways; all mean a bad file
        raise ValueError(f"{where} is not a valid pickled numpy array: {err!r}") from None
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise ValueError(
            f"{where}: the header announces an array of shape {shape}, the data holds "
            f"{type(array).__name__} {getattr(array, 'shape', '')}. The file is damaged."
        )
    return array
