"""`rnnkit.datasets.imdb` against `keras.datasets.imdb`, and the cached download, offline.

A small archive in Keras' `imdb.npz` format (object arrays of lists of ints, int labels)
stands in for the real file: both loaders read the same bytes and must return the same
arrays. Downloads are served from memory by a stand-in for `urllib.request.urlopen`.
"""

import doctest
import hashlib
import io
import json
import os
import pathlib
import pickle
import re
import urllib.error
import urllib.request
import zipfile

import keras.src.datasets.imdb as keras_imdb
import numpy as np
import pytest

from rnnkit.datasets import _download, imdb

ORIGIN = "https://example.invalid/data.bin"


def _ragged(reviews):
    array = np.empty(len(reviews), dtype=object)
    for i, review in enumerate(reviews):
        array[i] = review
    return array


def _reviews(rng, count, vocabulary=40):
    return [rng.integers(1, vocabulary, size=rng.integers(1, 16)).tolist() for _ in range(count)]


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """An imdb.npz of Keras' format in $RNNKIT_HOME/datasets; its sha256 made the official one."""
    rng = np.random.default_rng(7)
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    path = home / "datasets" / "imdb.npz"
    np.savez(
        path,
        x_train=_ragged(_reviews(rng, 14)),
        y_train=rng.integers(0, 2, size=14),
        x_test=_ragged(_reviews(rng, 11)),
        y_test=rng.integers(0, 2, size=11),
    )
    monkeypatch.setenv("RNNKIT_HOME", str(home))
    monkeypatch.setattr(imdb, "IMDB_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setattr(keras_imdb, "get_file", lambda **kwargs: str(path))
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    return path


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("no network in tests")


def _as_lists(array):
    return [list(review) for review in array]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_words": 20},
        {"num_words": 20, "skip_top": 5},
        {"num_words": 15, "oov_char": None},
        {"maxlen": 10},
        {"maxlen": 12, "num_words": 25, "skip_top": 2, "oov_char": 9},
        {"start_char": None},
        {"start_char": None, "index_from": 0},
        {"start_char": 7, "index_from": 5, "seed": 2},
        {"seed": 0, "skip_top": 4, "oov_char": None},
    ],
)
def test_load_data_matches_keras(archive, kwargs):
    ours = imdb.load_data(**kwargs)
    theirs = keras_imdb.load_data(**kwargs)
    for (x, y), (kx, ky) in zip(ours, theirs):
        assert x.dtype == object and x.ndim == 1
        assert _as_lists(x) == _as_lists(kx)
        assert y.dtype == ky.dtype
        np.testing.assert_array_equal(y, ky)


def test_load_data_maxlen_that_keeps_nothing_raises_like_keras(archive):
    with pytest.raises(ValueError, match="no sequence was kept"):
        keras_imdb.load_data(maxlen=2)
    with pytest.raises(ValueError, match=r"maxlen=2\) kept no review .* Increase maxlen"):
        imdb.load_data(maxlen=2)


def test_load_data_equal_lengths_still_gives_lists(tmp_path, monkeypatch):
    # Keras' np.array(xs, dtype=object) turns equal-length reviews into a 2-D array.
    path = tmp_path / "same.npz"
    same = _ragged([[4, 5], [6, 7], [8, 9]])
    np.savez(path, x_train=same, y_train=np.array([0, 1, 0]), x_test=same, y_test=np.ones(3))
    monkeypatch.setattr(imdb, "IMDB_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    (x_train, _), _ = imdb.load_data(path=str(path), start_char=None)
    assert x_train.shape == (3,)
    # As in Keras, num_words=None keeps the ids below the largest: 12 becomes oov_char 2.
    assert sorted(_as_lists(x_train)) == [[7, 8], [9, 10], [11, 2]]


def test_load_data_argument_errors(archive):
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['nb_words'\]"):
        imdb.load_data(nb_words=100)
    with pytest.raises(
        TypeError, match=r"num_words=...\) expects an int or None, got 10000.0 \(float\)"
    ):
        imdb.load_data(num_words=1e4)
    with pytest.raises(TypeError, match=r"skip_top=...\) expects an int, got None"):
        imdb.load_data(skip_top=None)
    with pytest.raises(ValueError, match=r"maxlen=...\) expects an int >= 0, got -1"):
        imdb.load_data(maxlen=-1)


def test_load_data_from_an_archive_without_the_arrays(tmp_path, monkeypatch):
    path = tmp_path / "other.npz"
    np.savez(path, x_train=np.zeros(3))
    monkeypatch.setattr(imdb, "IMDB_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(ValueError, match=r"has no y_train, x_test, y_test: it is not the IMDB"):
        imdb.load_data(path=str(path))


def test_get_word_index_from_the_cache(tmp_path, monkeypatch):
    index = {"the": 1, "and": 2, "café": 3}
    (tmp_path / "datasets").mkdir()
    path = tmp_path / "datasets" / "imdb_word_index.json"
    path.write_text(json.dumps(index), encoding="utf-8")
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    monkeypatch.setattr(imdb, "WORD_INDEX_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert imdb.get_word_index() == index


def test_official_sources_are_keras():
    source = pathlib.Path(keras_imdb.__file__).read_text()
    assert imdb.IMDB_SHA256 in source and imdb.WORD_INDEX_MD5 in source
    assert imdb.ORIGIN in source


def test_exported_like_keras():
    from rnnkit.datasets import imdb as exported

    assert exported is imdb
    assert "imdb" in __import__("rnnkit.datasets").datasets.__all__


# ------------------------------------------------------------------------- safe loading


def test_load_npz_equals_np_load(archive, tmp_path):
    mixed = tmp_path / "mixed.npz"
    np.savez_compressed(
        mixed,
        floats=np.arange(12, dtype=np.float32).reshape(3, 4),
        fortran=np.asfortranarray(np.arange(6).reshape(2, 3)),
        flags=np.array([True, False]),
        words=np.array(["a", "bé"]),
        scalar_ids=_ragged([[np.int64(3), np.int32(4)], [5]]),
        nested=np.array([[1, "x"], [None, 2.5]], dtype=object),
        zero_d=np.array(7),
    )
    for path in (archive, mixed):
        ours = imdb.load_npz(path)
        with np.load(path, allow_pickle=True) as reference:
            assert sorted(ours) == sorted(reference.files)
            for key in reference.files:
                expected = reference[key]
                assert ours[key].dtype == expected.dtype and ours[key].shape == expected.shape
                assert ours[key].tolist() == expected.tolist()
                assert ours[key].flags.f_contiguous == expected.flags.f_contiguous


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _npz_with_object_member(path, payload: bytes, shape=(1,)):
    """An npz whose x_train.npy announces an object array and holds `payload` as its data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", header.getvalue() + payload)


def test_load_npz_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "ran"
    # Pickling only records os.system and its argument; nothing runs here.
    payload = pickle.dumps(_ragged([_Exploit(f"touch {marker}")]), protocol=3)
    assert b"system" in payload
    path = tmp_path / "evil.npz"
    _npz_with_object_member(path, payload)
    with pytest.raises(
        ValueError, match=r"Refused to load .*evil.npz' \(x_train.npy\).* asks for \w+\.system"
    ):
        imdb.load_npz(path)
    assert not marker.exists()


@pytest.mark.filterwarnings("error")  # numpy 2 warns when numpy.core is imported by name
def test_load_npz_reads_files_written_by_numpy_1(tmp_path):
    ragged = _ragged([[1, 2, 3], [np.int64(4)]])
    payload = pickle.dumps(ragged, protocol=3)
    assert b"numpy._core.multiarray" in payload
    path = tmp_path / "numpy1.npz"
    _npz_with_object_member(path, payload.replace(b"numpy._core.", b"numpy.core."), (2,))
    assert imdb.load_npz(path)["x_train"].tolist() == [[1, 2, 3], [4]]


def test_load_npz_refuses_other_globals(tmp_path):
    path = tmp_path / "builtins.npz"
    _npz_with_object_member(path, b"\x80\x03cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1\x85R.")
    with pytest.raises(ValueError, match=r"asks for builtins\.eval"):
        imdb.load_npz(path)


def test_load_npz_bad_files(tmp_path):
    with pytest.raises(ValueError, match="No such file"):
        imdb.load_npz(tmp_path / "missing.npz")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"is not an \.npz file"):
        imdb.load_npz(text)
    truncated = tmp_path / "truncated.npz"
    _npz_with_object_member(truncated, pickle.dumps(_ragged([[1, 2]]), protocol=3)[:-9])
    with pytest.raises(ValueError, match="not a valid pickled numpy array"):
        imdb.load_npz(truncated)
    not_array = tmp_path / "not_array.npz"
    _npz_with_object_member(not_array, pickle.dumps([1, 2], protocol=3))
    with pytest.raises(
        ValueError, match=r"announces an array of shape \(1,\), the data holds list"
    ):
        imdb.load_npz(not_array)


# ----------------------------------------------------------------------------- download


class _Response(io.BytesIO):
    def __init__(self, data, on_read=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self.on_read = on_read

    def read(self, size=-1):
        if self.on_read:
            self.on_read()
        return super().read(size)


def test_download_is_checked_cached_atomically_and_reused(tmp_path, monkeypatch):
    data = b"payload " * 1000
    folder = tmp_path / "datasets"
    seen = []

    def urlopen(url, timeout=None):
        seen.append(url)
        # While the download runs, only a temporary file exists beside the target.
        return _Response(data, on_read=lambda: seen.append(sorted(os.listdir(folder))))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path))
    sha256 = hashlib.sha256(data).hexdigest()
    path = _download.get_file("data.bin", ORIGIN, sha256)
    assert path == str(folder / "data.bin")
    assert pathlib.Path(path).read_bytes() == data
    assert seen[0] == ORIGIN
    assert all(
        len(names) == 1 and re.fullmatch(r"\.data\.bin\.\w+\.tmp", names[0]) for names in seen[1:]
    )
    assert os.listdir(folder) == ["data.bin"]

    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert _download.get_file("data.bin", ORIGIN, sha256.upper()) == path


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _Response(b"evil"))
    expected = hashlib.sha256(b"good").hexdigest()
    message = (
        rf"download of data.bin from {re.escape(ORIGIN)} has sha256 "
        rf"{hashlib.sha256(b'evil').hexdigest()}, but the file should have sha256 {expected}"
    )
    with pytest.raises(ValueError, match=message):
        _download.get_file("data.bin", ORIGIN, expected, cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == []


def test_cached_file_with_wrong_checksum_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    (tmp_path / "datasets").mkdir()
    path = tmp_path / "datasets" / "data.bin"
    path.write_bytes(b"damaged")
    expected = hashlib.sha256(b"good").hexdigest()
    with pytest.raises(ValueError, match=rf"has sha256 \w+, but data.bin .* has sha256 {expected}"):
        _download.get_file("data.bin", ORIGIN, expected, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"Delete it \(os.remove\("):
        _download.get_file("data.bin", ORIGIN, expected, cache_dir=tmp_path)
    assert path.read_bytes() == b"damaged"


def test_network_error_names_the_manual_path(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    expected = str(tmp_path / "cache" / "datasets" / "data.bin")
    message = (
        rf"data.bin is not in the cache and could not be downloaded from {re.escape(ORIGIN)} "
        rf"\(no network in tests\).* put it at '{re.escape(expected)}'"
    )
    with pytest.raises(OSError, match=message):
        _download.get_file("data.bin", ORIGIN, "0" * 64, cache_dir=tmp_path / "cache")


def test_network_error_mid_download_keeps_nothing(tmp_path, monkeypatch):
    def fail():
        raise ConnectionResetError("connection reset")

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _Response(b"x", fail))
    with pytest.raises(OSError, match=r"\(connection reset\)\. Without a network"):
        _download.get_file("data.bin", ORIGIN, "0" * 64, cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == []


def test_file_hash_must_be_hex(tmp_path):
    with pytest.raises(ValueError, match=r"file_hash must be the file's sha256 as 64 hex digits"):
        _download.get_file("data.bin", ORIGIN, "not-a-hash", cache_dir=tmp_path)


def test_docstring_examples_run():
    for module in (_download, imdb):
        assert doctest.testmod(module).failed == 0
